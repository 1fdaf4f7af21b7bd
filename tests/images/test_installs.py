"""The images' install commands, run here as far as this machine allows (no container engine): the
operator's builder stage in a fresh venv from a build context cut by .dockerignore; the trainer's
[trainer] extra resolved by pip (its torch index, download.pytorch.org, is not reachable here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from .dockerfile import DOCKERFILES, ROOT, stages
from .imports import package_modules, third_party_imports
from .test_dockerfiles import _sent

pytestmark = pytest.mark.slow
PIP_DRY_RUN = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]


def build_context(into: Path) -> Path:
    """A copy of what `docker build .` would send: the working tree's files (untracked ones too, not
    ignored by git) that .dockerignore lets through."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if _sent(name, patterns) and (ROOT / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


def run_builder_stage(image: str, context: Path, venv: Path) -> None:
    """The builder stage's RUN lines, with /opt/venv at `venv` and the stage's ENV, in a copy of the
    build context laid out as the stage's COPY lines lay it out (here: as in the repository)."""
    builder = stages(DOCKERFILES[image])[1][0]
    env = {
        **os.environ,
        **builder.env(),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("VIRTUAL_ENV", None)
    for run in builder.all("RUN"):
        command = run.replace("/opt/venv", str(venv))
        done = subprocess.run(["bash", "-c", command], cwd=context, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"RUN {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_the_operator_builder_stage_makes_a_venv_without_torch_that_runs_the_operator(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run_builder_stage("operator", build_context(tmp_path / "context"), venv)
    python = str(venv / "bin" / "python")

    torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert "No module named 'torch'" in torch.stderr, torch.stderr
    pip = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
    assert pip.returncode != 0, "pip is left in the venv the final stage copies"
    help_ = subprocess.run(
        [str(venv / "bin" / "kubenas"), "operator", "--help"], capture_output=True, text=True
    )
    assert help_.returncode == 0 and "--leader-election" in help_.stdout, help_.stderr
    # Every third-party module the operator's code imports (lazily too) is there.
    modules = sorted(third_party_imports(["kubenas.k8s.main"]))
    assert "kopf" in modules and "torch" not in modules
    missing = subprocess.run(
        [
            python,
            "-c",
            f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m) is None])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert missing == "[]", f"imported by the operator's code, not installed by .[operator]: {missing}"


def test_the_trainer_extra_resolves_to_everything_the_trainer_imports(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [*PIP_DRY_RUN, "--report", str(report), ".[trainer]"],
        cwd=context,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {
        item["metadata"]["name"].lower().replace("_", "-")
        for item in json.loads(report.read_text())["install"]
    }
    assert "torch" in resolved
    owners = packages_distributions()  # this (dev) environment knows every module's distribution
    missing = {
        module: sorted(users)[:3]
        for module, users in third_party_imports(package_modules("kubenas_trainer")).items()
        if not {d.lower().replace("_", "-") for d in owners.get(module, [module])} & resolved
    }
    assert missing == {}, f"imported by the trainer, not installed by .[trainer]: {missing}"
