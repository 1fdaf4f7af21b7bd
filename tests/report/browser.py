"""A real headless Chromium (Debian's `chromium` package) rendering a page from a file.

Chromium logs every console message of the page (console.* calls and uncaught errors) to stderr as
`...:INFO:CONSOLE...] "message", source: ...` with --enable-logging=stderr; a report page logs nothing,
so any such line is an error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\] (.*)$", re.MULTILINE)
INSTALL_HINT = (
    "install it with tests/services/install.sh (Debian's chromium package: apt-get install chromium)"
)


def chromium() -> str:
    """The Chromium binary; a failing AssertionError naming the fix when there is none."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    raise AssertionError(f"no chromium on PATH: {INSTALL_HINT}")


@dataclass(frozen=True)
class Rendered:
    dom: str  # the DOM after the load event (--dump-dom)
    console: list[str]  # every console message the page produced, in either run


def _run(page: Path, flags: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        *flags,
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def render(page: Path, screenshot: Path, window: tuple[int, int] = (1280, 3000)) -> Rendered:
    """Load the page twice, offline: once dumping its DOM, once taking a screenshot."""
    with tempfile.TemporaryDirectory(prefix="kubenas-chromium-") as profile:
        offline = ["--host-resolver-rules=MAP * ~NOTFOUND"]  # nothing from the network, were it asked
        dom = _run(page, [*offline, "--dump-dom"], Path(profile))
        shot = _run(
            page,
            [*offline, f"--screenshot={screenshot}", f"--window-size={window[0]},{window[1]}"],
            Path(profile),
        )
    console = CONSOLE.findall(dom.stderr) + CONSOLE.findall(shot.stderr)
    return Rendered(dom.stdout, console)
