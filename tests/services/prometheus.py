"""Prometheus (Debian's package) on a loopback port, scraping the targets a test names every second."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import yaml

from .net import free_port, wait_http

INTERVAL = "1s"  # scrape and rule evaluation


class ScrapeJob(NamedTuple):
    """One static scrape target. A Pushgateway needs ``honor_labels=True``: the labels a client pushed
    (job, namespace, experiment, trial) then win over the target's own, instead of becoming ``exported_*``."""

    name: str
    target: str  # host:port, scraped at /metrics
    honor_labels: bool = False


class PrometheusError(RuntimeError):
    """Prometheus's HTTP API refused a request; the message carries its error text."""


class Prometheus:
    """`start()` runs it (again, on the same port and storage, after `stop()`); `url` is its HTTP API.

    ``jobs`` are ``ScrapeJob``s or plain ``(name, "host:port", honor_labels)`` tuples. With ``lifecycle``
    the server takes ``/-/reload`` (see :meth:`reload`).
    """

    def __init__(
        self,
        workdir: Path,
        jobs: Iterable[ScrapeJob | tuple[str, str, bool]],
        port: int | None = None,
        lifecycle: bool = False,
    ) -> None:
        self.workdir = workdir
        self.jobs = [ScrapeJob(*job) for job in jobs]
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lifecycle = lifecycle
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.workdir / "prometheus.yml"

    def config(self) -> dict[str, Any]:
        """The configuration it runs with (written to `config_file` by `start` and `reload`)."""
        return {
            "global": {
                "scrape_interval": INTERVAL,
                "scrape_timeout": INTERVAL,
                "evaluation_interval": INTERVAL,
            },
            "scrape_configs": [
                {
                    "job_name": job.name,
                    "honor_labels": job.honor_labels,
                    "static_configs": [{"targets": [job.target]}],
                }
                for job in self.jobs
            ],
        }

    def start(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: run tests/services/install.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        argv = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        if self.lifecycle:
            argv.append("--web.enable-lifecycle")
        with open(self.workdir / "prometheus.log", "ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_http(f"{self.url}/-/ready")
        except AssertionError:
            self.stop()
            raise AssertionError(f"Prometheus did not start; its log:\n{self.log()[-4000:]}") from None
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def reload(self, jobs: Iterable[ScrapeJob | tuple[str, str, bool]]) -> None:
        """Scrape these jobs from now on (needs ``lifecycle=True``)."""
        if not self.lifecycle:
            raise RuntimeError("reload needs Prometheus(..., lifecycle=True)")
        self.jobs = [ScrapeJob(*job) for job in jobs]
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self._call("/-/reload", {}, method="POST")

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- the HTTP API ---------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: the result vector, each ``{"metric": {labels}, "value": [time, "value"]}``
        (a scalar comes back as one such item with no labels). PrometheusError with the API's error text
        if the query is refused (a parse error, an unknown function, ...)."""
        params = {"query": promql, **({"time": str(at)} if at is not None else {})}
        data = self._call("/api/v1/query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query: one ``{"metric": {labels}, "values": [[time, "value"], ...]}`` per series."""
        params = {"query": promql, "start": str(start), "end": str(end), "step": str(step)}
        result: list[dict[str, Any]] = self._call("/api/v1/query_range", params)["result"]
        return result

    def wait_for_series(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Until the instant query `promql` returns at least one series; AssertionError after `timeout`
        (a refused query raises at once)."""
        deadline = time.monotonic() + timeout
        while not (result := self.query(promql)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no series for {promql!r} within {timeout:.0f}s")
            time.sleep(0.2)
        return result

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health (``up``/``down``/``unknown``) and last error."""
        active: list[dict[str, Any]] = self._call("/api/v1/targets", {"state": "active"})["activeTargets"]
        return active

    def _call(self, path: str, params: dict[str, str], method: str = "GET") -> Any:
        """GET `path` with `params` and return the answer's ``data`` (POST: no answer expected)."""
        query = urllib.parse.urlencode(params)
        if method == "GET":
            request = urllib.request.Request(f"{self.url}{path}?{query}")
        else:
            request = urllib.request.Request(f"{self.url}{path}", data=query.encode(), method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read()
        except urllib.error.HTTPError as error:  # the API's 400 / 422 carry the error as JSON
            text = error.read()
            if error.code not in (400, 422, 503):
                raise PrometheusError(f"{path}: HTTP {error.code}: {text.decode(errors='replace')}") from None
        if method != "GET":
            return None
        answer = json.loads(text)
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
