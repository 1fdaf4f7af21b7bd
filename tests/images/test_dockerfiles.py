"""Static checks of the images' Dockerfiles and .dockerignore (no container engine here: the builds
themselves run in .github/workflows/images.yml; hadolint is a Haskell program, not installable here)."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib

import pytest

from .dockerfile import DOCKERFILES, ROOT, Stage, project_installs, stages

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
IMAGE_EXTRA = {"operator": "operator", "trainer": "trainer"}  # the extra each image installs
DIGEST = re.compile(r"^[\w./:-]+@sha256:[0-9a-f]{64}$")
WRITABLE = "/tmp"  # the emptyDir under a read-only root filesystem


def expand(extras: set[str]) -> set[str]:
    """The extras, with those they pull in through `kubenas[...]` requirements."""
    out, todo = set(), list(extras)
    while todo:
        extra = todo.pop()
        if extra in out:
            continue
        out.add(extra)
        for requirement in EXTRAS[extra]:
            if match := re.match(r"kubenas\[([^\]]+)\]", requirement):
                todo += match.group(1).split(",")
    return out


def requirement_names(extras: set[str]) -> set[str]:
    names = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for e in expand(extras) for r in EXTRAS[e]}
    return names - {"kubenas"}


def extras_the_tests_install() -> set[str]:
    """The extras the tests run with: what the Makefile installs into the test environment."""
    makefile = (ROOT / "Makefile").read_text()
    installs = re.findall(r"pip install [^\n]*?-e \"?\.\[([a-z,]+)\]", makefile)
    assert installs, "the Makefile installs no .[extras] with pip install -e"
    return expand({e for group in installs for e in group.split(",")})


def final(image: str) -> Stage:
    return stages(DOCKERFILES[image])[1][-1]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_every_base_image_is_pinned_by_digest(image: str) -> None:
    args, found = stages(DOCKERFILES[image])
    names = {s.name for s in found if s.name}
    for stage in found:
        reference = stage.image
        for key, value in args.items():
            reference = reference.replace(f"${{{key}}}", value).replace(f"${key}", value)
        assert reference in names or DIGEST.match(reference), f"FROM {stage.image} is not pinned by digest"
    assert len(found) >= 2, "multi-stage: a builder and a final stage"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_final_stage_runs_as_a_numeric_non_root_user(image: str) -> None:
    users = final(image).all("USER")
    assert users, "the final stage sets no USER (it would run as root)"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: numeric and not 0 (runAsNonRoot checks uid)"
    assert not group or (group.isdigit() and int(group) != 0), f"USER {users[-1]}: a numeric non-root group"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_final_stage_has_no_build_tools_and_copies_the_built_venv(image: str) -> None:
    stage = final(image)
    runs = " ".join(stage.all("RUN"))
    assert "apt-get install" not in runs and "apk add" not in runs, "packages installed in the final stage"
    assert not re.search(r"pip[0-9.]* install", runs), "pip install in the final stage: build in the builder"
    assert re.search(r"pip uninstall --yes pip setuptools wheel", runs), "the base image's pip is left in"
    copies = [c for c in stage.all("COPY") if c.startswith("--from=")]
    assert any("/opt/venv" in c for c in copies), "the final stage does not copy the builder's venv"
    assert "/opt/venv/bin" in final(image).env().get("PATH", "")


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_final_stage_writes_only_under_tmp(image: str) -> None:
    """readOnlyRootFilesystem: home, temp files and every cache on the writable emptyDir."""
    env = final(image).env()
    for key in ("HOME", "TMPDIR", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        assert env.get(key, "").startswith(WRITABLE), f"{key}={env.get(key)!r} is not under {WRITABLE}"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PIP_NO_CACHE_DIR") == "1"
    workdirs = final(image).all("WORKDIR")
    assert workdirs and workdirs[-1].startswith(WRITABLE), f"WORKDIR {workdirs[-1:]} is not writable"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_each_image_installs_its_extra_and_the_tests_install_it_too(image: str) -> None:
    builder = stages(DOCKERFILES[image])[1][0]
    installs = project_installs(builder)
    assert [extras for _, extras in installs] == [{IMAGE_EXTRA[image]}], installs
    assert IMAGE_EXTRA[image] in EXTRAS, f"pyproject.toml has no [{IMAGE_EXTRA[image]}] extra"
    assert IMAGE_EXTRA[image] in extras_the_tests_install(), (
        "the image installs an extra the tests never install"
    )


def test_the_operator_image_has_no_torch_and_the_trainer_image_has() -> None:
    assert "torch" not in requirement_names({IMAGE_EXTRA["operator"]})
    assert "torch" in requirement_names({IMAGE_EXTRA["trainer"]})
    runs = " ".join(stages(DOCKERFILES["trainer"])[1][0].all("RUN"))
    assert '--index-url "${TORCH_INDEX_URL}"' in runs, (
        "the trainer's torch does not come from TORCH_INDEX_URL"
    )
    assert any(i.startswith("TORCH_INDEX_URL=") for i in stages(DOCKERFILES["trainer"])[1][0].all("ARG"))


def _sent(path: str, patterns: list[str]) -> bool:
    """Whether `docker build` sends this path, by .dockerignore's rules: the last pattern matching the
    path or one of its parent directories decides; `!` re-includes (moby's patternmatcher)."""

    def regex(pattern: str) -> re.Pattern[str]:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            else:
                c = pattern[i]
                out += "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
                i += 1
        return re.compile(out)

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    sent = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        compiled = regex(pattern.lstrip("!").strip("/"))
        if any(compiled.fullmatch(p) for p in prefixes):
            sent = negate
    return sent


def test_dockerignore_sends_the_sources_and_nothing_else() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    needed = [p for p in tracked if p.split("/")[0] in ("operator", "trainer") and p.endswith(".py")]
    needed += ["pyproject.toml", "README.md"]
    assert len(needed) > 50
    assert [p for p in needed if not _sent(p, patterns)] == []
    kept_out = [
        ".venv/bin/python",
        ".git/config",
        "tests/cluster/conftest.py",
        "runs/digits/status.json",
        "operator/kubenas/__pycache__/cli.cpython-311.pyc",
        "kubenas.egg-info/PKG-INFO",
        ".env",
    ]
    assert [p for p in kept_out if _sent(p, patterns)] == []
    # What the Dockerfiles COPY from the context is sent.
    for path in DOCKERFILES.values():
        for stage in stages(path)[1]:
            for copy in stage.all("COPY"):
                words = shlex.split(copy)
                if not words[0].startswith("--from"):
                    assert all(_sent(source, patterns) for source in words[:-1]), copy
