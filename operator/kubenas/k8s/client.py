"""The operator's API calls, each idempotent: 409 on create and 404 on delete are success."""

from __future__ import annotations

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
            GROUP, VERSION, namespace, "nastrials", label_selector=f"{EXPERIMENT_LABEL}={experiment}"
        )
        return list(cast(Obj, out)["items"])

    def list_jobs(self, namespace: str, experiment: str) -> list[Obj]:
        out = self.batch.list_namespaced_job(namespace, label_selector=f"{EXPERIMENT_LABEL}={experiment}")
        return [self._dict(job) for job in out.items]

    def list_pods(self, namespace: str, experiment: str) -> list[Obj]:
        out = self.core.list_namespaced_pod(namespace, label_selector=f"{EXPERIMENT_LABEL}={experiment}")
        return [self._dict(pod) for pod in out.items]

    def create_trial(self, namespace: str, body: Obj) -> Obj:
        """Create the NASTrial, or return the one that already has this name."""
        try:
            return cast(
                Obj, self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "nastrials", body)
            )
        except ApiException as error:
            if error.status != 409:
                raise
            name = body["metadata"]["name"]
            return cast(
                Obj, self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "nastrials", name)
            )

    def create_job(self, namespace: str, body: Obj) -> bool:
        """Create the Job; False if one of that name exists already."""
        try:
            self.batch.create_namespaced_job(namespace, cast(Any, body))
        except ApiException as error:
            if error.status != 409:
                raise
            return False
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
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
            return cast(
                Obj,
                self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "nasexperiments", name),
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _dict(self, obj: Any) -> Obj:
        return cast(Obj, self.core.api_client.sanitize_for_serialization(obj))
