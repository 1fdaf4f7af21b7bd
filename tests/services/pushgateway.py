"""Prometheus's Pushgateway (Debian's prometheus-pushgateway) on a loopback port."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from .net import free_port, wait_http


class Pushgateway:
    """`start()` runs it (again, on the same port, after `stop()`); `url` is what clients push to."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Pushgateway:
        binary = shutil.which("prometheus-pushgateway")
        if binary is None:
            raise RuntimeError("prometheus-pushgateway is not installed: run tests/services/install.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "pushgateway.log", "ab") as log:
            self.process = subprocess.Popen(
                # Debian's default persists to /var/lib/prometheus: every test would share its groups.
                [binary, f"--web.listen-address=127.0.0.1:{self.port}", "--persistence.file="],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_http(f"{self.url}/-/ready")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def metrics(self) -> str:
        """What Prometheus would scrape from it (the text exposition format)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text

    def __enter__(self) -> Pushgateway:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
