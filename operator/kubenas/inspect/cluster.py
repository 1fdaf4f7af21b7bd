"""An experiment read back from a cluster: its NASExperiment and NASTrials, through the Kubernetes API.

Per-epoch metrics of a cluster's trials live in Prometheus, not in the API server; what a NASTrial holds
is its curve (the validation objective after each epoch, as of its last pause or its end). A trial's
`epochs` are therefore that curve as rows {"epoch": n, <objective metric>: value}: the same shape as a
local run's metrics.jsonl rows, with the objective only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from kubenas.api.errors import SpecError, format_validation_error, parse_model
from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus
from kubenas.inspect.rundata import ExperimentData, TrialData, with_inheritance
from kubenas.k8s.client import KubeApi, Obj

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ClusterReadError(Exception):
    """The experiment could not be read: no kubeconfig, the API server unreachable or refusing, or an
    object that does not parse. The message says which and names the experiment."""


class ExperimentNotFound(ClusterReadError):
    pass


def connect(kubeconfig: str | None = None) -> tuple[client.ApiClient, str]:
    """A client for `kubeconfig` (default: $KUBECONFIG, then ~/.kube/config, then the service account of
    the pod this runs in), and the namespace of its current context ("default" if it names none)."""
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return api_client, (active.get("context") or {}).get("namespace") or "default"
    except (yaml.YAMLError, OSError) as error:  # there is a kubeconfig, and it cannot be read
        named = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ClusterReadError(f"kubeconfig {named}: {error}") from None
    except config.ConfigException as error:
        if kubeconfig is not None:
            raise ClusterReadError(f"kubeconfig {kubeconfig}: {error}") from None
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            raise ClusterReadError(f"no cluster to read: {error} (set --kubeconfig or $KUBECONFIG)") from None
        return client.ApiClient(configuration), SERVICE_ACCOUNT_NAMESPACE.read_text().strip()


def _api_message(error: ApiException) -> str:
    """The API server's own words (its Status message), else the HTTP status."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else f"{error.status} {error.reason}"


def _curve_rows(metric: str, status: NASTrialStatus) -> list[dict[str, float]]:
    return [{"epoch": epoch, metric: value} for epoch, value in enumerate(status.curve, start=1)]


def experiment_data(experiment: Obj, trials: list[Obj]) -> ExperimentData:
    """An ExperimentData from a NASExperiment object and its NASTrials as the API server returns them
    (SpecError for a spec or status that does not parse, naming the field)."""
    name = experiment["metadata"]["name"]
    spec = parse_model(NASExperimentSpec, experiment.get("spec") or {}, prefix="spec")
    status = parse_model(NASExperimentStatus, experiment.get("status") or {}, prefix="status")
    out = []
    for trial in trials:
        trial_name = trial["metadata"]["name"]
        try:
            trial_spec = NASTrialSpec.model_validate(trial.get("spec") or {})
            trial_status = NASTrialStatus.model_validate(trial.get("status") or {})
        except ValidationError as error:
            problems = format_validation_error(error)
            raise SpecError([f"NASTrial {trial_name}: {problem}" for problem in problems]) from None
        rows = _curve_rows(spec.objective.metric, trial_status)
        out.append(TrialData(trial_name, trial_spec, trial_status, rows))
    return ExperimentData(name=name, spec=spec, status=status, trials=with_inheritance(out))


def load_cluster(name: str, namespace: str | None = None, kubeconfig: str | None = None) -> ExperimentData:
    """The NASExperiment `name` in `namespace` (default: the kubeconfig context's) with its NASTrials
    (those labelled kubenas.dev/experiment=<name>).

    ExperimentNotFound when there is no such experiment; ClusterReadError when the cluster cannot be
    reached or refuses, or an object does not parse.
    """
    api_client, default_namespace = connect(kubeconfig)
    namespace = namespace or default_namespace
    where = f"NASExperiment {name!r} in namespace {namespace!r}"
    with api_client:
        api = KubeApi(api_client)
        try:
            experiment = api.get_experiment(namespace, name)
            if experiment is None:
                raise ExperimentNotFound(f"no {where}")
            trials = api.list_trials(namespace, name)
        except ApiException as error:
            raise ClusterReadError(f"cannot read {where}: {_api_message(error)}") from None
        except HTTPError as error:  # unreachable: urllib3 gave up retrying; its reason says why
            reason = getattr(error, "reason", None) or error
            server = api_client.configuration.host
            raise ClusterReadError(f"cannot read {where} from {server}: {reason}") from None
    try:
        return experiment_data(experiment, trials)
    except SpecError as error:
        raise ClusterReadError(f"{where}: {'; '.join(error.problems)}") from None
