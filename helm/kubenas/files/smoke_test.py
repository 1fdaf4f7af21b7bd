"""`helm test`: create a small NASExperiment, wait for it to succeed, delete it.

Runs in the test pod (the operator image: python and the kubernetes client) as its own ServiceAccount,
which may only get, create and delete NASExperiments in its namespace. Settings come from the
environment: SMOKE_NAMESPACE, SMOKE_NAME, SMOKE_MANIFEST (the experiment as JSON), SMOKE_TIMEOUT
(seconds). Exit 0 when the experiment succeeded, 1 otherwise, with its status on stdout.
"""

import json
import os
import sys
import time

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "kubenas.dev", "v1alpha1", "nasexperiments"


def main() -> int:
    namespace, name = os.environ["SMOKE_NAMESPACE"], os.environ["SMOKE_NAME"]
    manifest = json.loads(os.environ["SMOKE_MANIFEST"])
    timeout = float(os.environ.get("SMOKE_TIMEOUT", "600"))
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()  # outside a cluster's pod: $KUBECONFIG
    api = client.CustomObjectsApi()

    def get() -> dict | None:
        try:
            return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete() -> None:
        try:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as error:
            if error.status != 404:
                raise
        deadline = time.monotonic() + 60
        while get() is not None and time.monotonic() < deadline:
            time.sleep(1)

    delete()  # a previous run's experiment, if any
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    print(f"created NASExperiment {namespace}/{name}; waiting up to {timeout:.0f}s", flush=True)
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        status = (get() or {}).get("status") or {}
        phase = status.get("phase", "")
        line = f"phase={phase or '-'} trials={json.dumps(status.get('trials', {}), sort_keys=True)}"
        if line != last:
            print(line, flush=True)
            last = line
        if phase in ("Succeeded", "Failed"):
            print(json.dumps({"conditions": status.get("conditions"), "best": status.get("best")}, indent=1))
            if phase == "Succeeded":
                delete()
                return 0
            return 1
        time.sleep(2)
    print(f"timed out after {timeout:.0f}s: {last}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
