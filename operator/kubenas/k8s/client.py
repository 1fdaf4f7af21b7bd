"""The operator's API calls, each idempotent: AlreadyExists on create and 404 on delete are success.
(Not every 409 means the object exists: quota admission answers Conflict when it loses a race on the
ResourceQuota's usage, and nothing was created then.)

Reads and Job writes take the response's JSON as is (`_preload_content=False`): the client's models
would build an object per field and serialise it back, the larger part of a pass's CPU at scale.
"""

from __future__ import annotations

import json
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubenas.api.experiment import GROUP, VERSION
from kubenas.k8s.labels import EXPERIMENT_LABEL

Obj = dict[str, Any]


def load_config() -> None:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


class KubeApi:
    def __init__(self, api_client: client.ApiClient | None = None):
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def list_trials(self, namespace: str, experiment: str) -> list[Obj]:
        out = self.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "nastrials",
            label_selector=_selector(experiment),
            _preload_content=False,
        )
        return list(_json(out)["items"])

    def list_jobs(self, namespace: str, experiment: str) -> list[Obj]:
        out = self.batch.list_namespaced_job(
            namespace, label_selector=_selector(experiment), _preload_content=False
        )
        return list(_json(out)["items"])

    def list_pods(self, namespace: str, experiment: str) -> list[Obj]:
        out = self.core.list_namespaced_pod(
            namespace, label_selector=_selector(experiment), _preload_content=False
        )
        return list(_json(out)["items"])

    def create_trial(self, namespace: str, body: Obj) -> Obj:
        """Create the NASTrial, or return the one that already has this name."""
        try:
            return cast(
                Obj, self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "nastrials", body)
            )
        except ApiException as error:
            if not _already_exists(error):
                raise
            name = body["metadata"]["name"]
            return cast(
                Obj, self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "nastrials", name)
            )

    def create_job(self, namespace: str, body: Obj) -> bool:
        """Create the Job; False if one of that name exists already."""
        try:
            _drain(self.batch.create_namespaced_job(namespace, cast(Any, body), _preload_content=False))
        except ApiException as error:
            if not _already_exists(error):
                raise
            return False
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            _drain(
                self.batch.delete_namespaced_job(
                    name, namespace, propagation_policy="Background", _preload_content=False
                )
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def patch_trial_status(self, namespace: str, name: str, status: Obj) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "nastrials", name, {"status": status}
        )

    def patch_experiment_status(self, namespace: str, name: str, status: Obj) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "nasexperiments", name, {"status": status}
        )

    def get_experiment(self, namespace: str, name: str) -> Obj | None:
        try:
            return _json(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "nasexperiments", name, _preload_content=False
                )
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise


def _selector(experiment: str) -> str:
    return f"{EXPERIMENT_LABEL}={experiment}"


def _json(response: Any) -> Obj:
    """The body of a `_preload_content=False` response (reading it whole returns the connection)."""
    return cast(Obj, json.loads(response.data))


def _drain(response: Any) -> None:
    """Discard a `_preload_content=False` response's body and return its connection to the pool."""
    response.drain_conn()
    response.release_conn()


def _already_exists(error: ApiException) -> bool:
    if error.status != 409:
        return False
    try:
        return bool(json.loads(error.body or "{}").get("reason") == "AlreadyExists")
    except (ValueError, AttributeError):
        return False
