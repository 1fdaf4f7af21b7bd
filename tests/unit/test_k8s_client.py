"""KubeApi's idempotent creates: only AlreadyExists means the object is there."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubenas.k8s.client import KubeApi
from kubernetes.client.exceptions import ApiException


def conflict(reason: str, message: str) -> ApiException:
    error = ApiException(status=409, reason="Conflict")
    error.body = json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "message": message})
    return error


class Batch:
    def __init__(self, error: ApiException) -> None:
        self.error = error

    def create_namespaced_job(self, namespace: str, body: Any, **_: Any) -> Any:
        raise self.error


def api_raising(error: ApiException) -> KubeApi:
    api = KubeApi.__new__(KubeApi)  # no kubeconfig: only the Jobs client is used
    api.batch = Batch(error)  # type: ignore[assignment]
    return api


def test_a_job_that_already_exists_is_success() -> None:
    error = conflict("AlreadyExists", 'jobs.batch "x-0" already exists')
    assert api_raising(error).create_job("ns", {"metadata": {"name": "x-0"}}) is False


def test_a_quota_conflict_is_not_mistaken_for_an_existing_job() -> None:
    """Quota admission answers 409 Conflict when it loses a race on the quota's usage; no Job exists."""
    message = 'Operation cannot be fulfilled on resourcequotas "q": the object has been modified'
    with pytest.raises(ApiException):
        api_raising(conflict("Conflict", message)).create_job("ns", {"metadata": {"name": "x-0"}})
