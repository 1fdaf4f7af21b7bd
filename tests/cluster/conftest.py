"""Fixtures of the cluster tests: one real control plane per session, CRDs applied, a namespace per test."""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .fixtures import Cluster, cluster

ROOT = Path(__file__).resolve().parents[2]
_namespaces = itertools.count()


@pytest.fixture(scope="session")
def kube() -> Iterator[Cluster]:
    # The node agent runs `kubenas-trainer` from the pods' command: find this interpreter's console scripts.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with cluster() as c:
        c.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        c.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/nasexperiments.kubenas.dev",
            "crd/nastrials.kubenas.dev",
        )
        yield c


@pytest.fixture
def namespace(kube: Cluster) -> str:
    name = f"t{os.getpid()}-{next(_namespaces)}"
    kube.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 30  # pods need the namespace's default ServiceAccount
    while kube.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
        assert time.monotonic() < deadline, "default ServiceAccount never appeared"
        time.sleep(0.2)
    return name


def get_json(kube: Cluster, *args: str) -> Any:
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, on_timeout: Callable[[], str] = str
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}")
        time.sleep(0.5)
