"""shellcheck on every shell script of the repository (*.sh, and scripts with a sh/bash shebang).
shellcheck comes from Debian's package (tests/services/install.sh)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .dockerfile import ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck is not installed (tests/services/install.sh)"
)


def shell_scripts() -> list[str]:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = []
    for name in files:
        path = ROOT / name
        if not path.is_file():
            continue
        if name.endswith(".sh"):
            found.append(name)
            continue
        with path.open("rb") as head:
            first = head.readline(200)
        if first.startswith(b"#!") and first.rstrip().split(b"/")[-1].split()[-1] in (b"sh", b"bash"):
            found.append(name)
    return sorted(found)


def test_the_scripts_are_found() -> None:
    scripts = shell_scripts()
    for expected in ("tests/controlplane/build.sh", "tests/services/install.sh", ".ci/run"):
        assert expected in scripts


@pytest.mark.parametrize("script", shell_scripts())
def test_shellcheck_passes(script: str) -> None:
    done = subprocess.run(["shellcheck", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
