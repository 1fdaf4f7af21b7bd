"""kubenas command line: run | validate | crd | operator."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml

from kubenas.api.errors import SpecError, parse_model
from kubenas.api.manifest import load_manifest
from kubenas.inspect.status import OUTPUTS, SORT_KEYS
from kubenas.k8s.defaults import OperatorDefaults, parse_trial_defaults

if TYPE_CHECKING:
    from kubenas.inspect.rundata import ExperimentData
    from kubenas.k8s.leader import ElectionConfig


def _validate(path: str) -> int:
    from kubenas.engine.feasibility import check_feasible
    from kubenas.strategies import make_strategy

    experiment = load_manifest(path)
    make_strategy(experiment.spec)
    check_feasible(experiment.spec)
    print(f"{path}: NASExperiment {experiment.metadata.name} is valid")
    return 0


def _run(
    path: str, output: str, progress: str = "auto", verbose: bool = False, fresh_processes: bool = False
) -> int:
    from kubenas.engine.feasibility import check_feasible
    from kubenas.local import run_experiment
    from kubenas.strategies import make_strategy

    experiment = load_manifest(path)
    make_strategy(experiment.spec)  # reject a bad strategy, or an impossible space, before anything starts
    check_feasible(experiment.spec)
    if progress == "auto":  # a live table in a terminal; plain lines for pipes, CI and `kubectl logs`
        terminal = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
        progress = "live" if terminal and importlib.util.find_spec("rich") is not None else "plain"
    mode: Literal["live", "plain"] = "live" if progress == "live" else "plain"
    status = run_experiment(experiment, Path(output), mode, verbose, fresh_processes)
    run_dir = Path(output) / experiment.metadata.name
    if status.best is not None:
        print(f"best trial: {status.best.trial}")
        print(yaml.safe_dump(status.best.to_dict(), sort_keys=False).rstrip())
    print(f"results: {run_dir}")
    return 0 if status.phase == "Succeeded" else 1


def _crd(output: str | None, check: bool) -> int:
    from kubenas.api.crd import custom_resource_definitions

    documents = custom_resource_definitions()
    if output is None:
        print(yaml.safe_dump_all(documents.values(), sort_keys=False), end="")
        return 0
    stale = []
    for filename, document in documents.items():
        path = Path(output) / filename
        text = yaml.safe_dump(document, sort_keys=False)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(
            f"stale CRDs (regenerate with `kubenas crd --output {output}`): {', '.join(stale)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _load(args: argparse.Namespace) -> ExperimentData | None:
    """The experiment `status` and `report` show: a local run directory or, with --cluster, a
    NASExperiment read from the API server; None (the error said on stderr) when it cannot be read."""
    from kubenas.inspect.rundata import load_run_dir

    if args.cluster is not None:
        from kubenas.inspect.cluster import ClusterReadError, load_cluster

        try:
            return load_cluster(args.cluster, args.namespace, args.kubeconfig)
        except ClusterReadError as error:
            print(f"error: {error}", file=sys.stderr)
            return None
    try:
        return load_run_dir(Path(args.run_dir))
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def _status(args: argparse.Namespace) -> int:
    from kubenas.inspect.status import show

    data = _load(args)
    if data is None:
        return 1
    show(data, args.output, args.sort, args.reverse)
    return 0


def _report(args: argparse.Namespace) -> int:
    data = _load(args)
    if data is None:
        return 1
    from kubenas.inspect.report import write_report  # imports matplotlib: only here

    default = Path(args.run_dir) / "report" if args.cluster is None else Path(f"{data.name}-report")
    page = write_report(data, Path(args.output) if args.output else default)
    print(f"report: {page}")
    return 0


def _add_target(command: argparse.ArgumentParser) -> None:
    """RUN_DIR, or --cluster EXPERIMENT [-n NAMESPACE] [--kubeconfig PATH]."""
    target = command.add_mutually_exclusive_group(required=True)
    target.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a local run, e.g. runs/digits")
    target.add_argument("--cluster", metavar="EXPERIMENT", help="a NASExperiment, read from the API server")
    command.add_argument("-n", "--namespace", help="with --cluster (default: the kubeconfig context's)")
    command.add_argument(
        "--kubeconfig", help="with --cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster)"
    )


def _defaults(args: argparse.Namespace) -> OperatorDefaults:
    """The operator's defaults for spec.metrics, spec.storage and spec.trialTemplate, from its flags
    (SpecError naming the field if bad)."""
    from kubenas.api.outputs import MetricsSpec, StorageSpec

    metrics = storage = None
    if args.pushgateway:
        metrics = parse_model(
            MetricsSpec, {"pushgateway": args.pushgateway, "prometheus": args.prometheus}, "--metrics"
        )
    if args.storage_bucket:
        fields = {
            "bucket": args.storage_bucket,
            "prefix": args.storage_prefix,
            "endpoint": args.storage_endpoint,
            "region": args.storage_region,
            "secretName": args.storage_secret,
        }
        storage = parse_model(StorageSpec, {k: v for k, v in fields.items() if v is not None}, "--storage")
    template = parse_trial_defaults(args.trial_defaults) if args.trial_defaults else None
    return OperatorDefaults(metrics=metrics, storage=storage, trial_template=template)


_ELECTION_TIMINGS = (  # flag, default, meaning; ElectionConfig's field is the flag without --leader-election-
    ("--leader-election-lease-duration", 15.0, "seconds a standby waits for the Lease to expire"),
    ("--leader-election-renew-deadline", 10.0, "seconds the leader leads on without a renewal"),
    ("--leader-election-retry-period", 2.0, "seconds between tries to take or renew the Lease"),
)


def _election(args: argparse.Namespace) -> ElectionConfig | None:
    """The Lease to hold, from the operator's flags (SpecError naming the flags if the timings clash)."""
    from kubenas.k8s.leader import ElectionConfig

    if not args.leader_election:
        return None
    fields = {
        flag.removeprefix("--leader-election-").replace("-", "_"): flag for flag, _, _ in _ELECTION_TIMINGS
    }
    try:
        return ElectionConfig(
            namespace=args.leader_election_namespace,
            name=args.leader_election_id,
            **{field: getattr(args, flag[2:].replace("-", "_")) for field, flag in fields.items()},
        )
    except ValueError as error:
        message = str(error)
        for field, flag in fields.items():
            message = message.replace(field, flag)
        raise SpecError([message]) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubenas", description="Kubernetes-native neural architecture search"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an experiment on this machine (trials as local processes)")
    run.add_argument("manifest")
    run.add_argument("--output", default="runs", help="results directory (default: runs)")
    run.add_argument(
        "--progress",
        choices=("auto", "live", "plain"),
        default="auto",
        help="live: a table of the trials, redrawn; plain: a line per trial event (default: auto, live "
        "when stdout is a terminal)",
    )
    run.add_argument("--verbose", action="store_true", help="also a line per epoch: the objective and loss")
    run.add_argument(
        "--fresh-processes",
        action="store_true",
        help="start a new trainer process for every trial segment (default: reuse one worker process "
        "per parallel trial, which imports torch and reads the data once)",
    )
    validate = commands.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("manifest")
    crd = commands.add_parser("crd", help="print or write the CustomResourceDefinitions")
    crd.add_argument("--output", help="directory to write one file per CRD into")
    crd.add_argument("--check", action="store_true", help="fail if the files in --output are stale")
    status_cmd = commands.add_parser(
        "status", help="show an experiment: phase and why, the best trial, every trial (sortable)"
    )
    _add_target(status_cmd)
    status_cmd.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="objective",
        help="order of the trials: the objective or a metric best first (default: objective), name, "
        "phase, most epochs, started, longest duration",
    )
    status_cmd.add_argument("--reverse", action="store_true", help="reverse the order")
    status_cmd.add_argument("-o", "--output", choices=OUTPUTS, default="table", help="default: table")
    report = commands.add_parser(
        "report", help="write an HTML report with figures of an experiment (report.html and PNGs)"
    )
    _add_target(report)
    report.add_argument(
        "--output",
        help="where to write report.html and figures (default: RUN_DIR/report, or <experiment>-report)",
    )
    op = commands.add_parser("operator", help="run the Kubernetes operator (kopf)")
    op.add_argument("--namespace", action="append", help="watch only these namespaces (default: all)")
    op.add_argument(
        "--interval", type=float, default=2.0, help="seconds between reconciles of a running experiment"
    )
    op.add_argument("--verbose", action="store_true")
    op.add_argument("--liveness", help="serve a liveness probe here, e.g. http://0.0.0.0:8080/healthz")
    op.add_argument("--metrics-port", type=int, help="serve the operator's Prometheus /metrics on this port")
    op.add_argument("--pushgateway", help="default spec.metrics.pushgateway (trials push per-epoch metrics)")
    op.add_argument("--prometheus", help="default spec.metrics.prometheus (the operator reads them back)")
    op.add_argument("--storage-bucket", help="default spec.storage.bucket (trials' outputs and checkpoints)")
    op.add_argument("--storage-prefix", default="kubenas", help="default spec.storage.prefix")
    op.add_argument("--storage-endpoint", help="default spec.storage.endpoint (an S3-compatible URL)")
    op.add_argument("--storage-region", help="default spec.storage.region")
    op.add_argument("--storage-secret", help="default spec.storage.secretName (credentials of trial pods)")
    op.add_argument(
        "--trial-defaults",
        metavar="JSON",
        help='defaults of spec.trialTemplate, a JSON object such as \'{"image": "...", "priorityClassName": '
        '"batch"}\'; each field an experiment sets wins',
    )
    op.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold a Lease before reconciling, so of several replicas one reconciles (default: on)",
    )
    op.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE") or "default",
        help="the Lease's namespace (default: $POD_NAMESPACE, else default)",
    )
    op.add_argument(
        "--leader-election-id",
        default="kubenas-operator",
        help="the Lease's name (default: kubenas-operator)",
    )
    for flag, default, meaning in _ELECTION_TIMINGS:
        op.add_argument(
            flag, type=float, default=default, help=f"{meaning} (default: {default:g}, as client-go)"
        )
    op.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    op.add_argument("--log-format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args.manifest, args.output, args.progress, args.verbose, args.fresh_processes)
        if args.command == "validate":
            return _validate(args.manifest)
        if args.command == "crd":
            return _crd(args.output, args.check)
        if args.command in ("status", "report"):
            if args.cluster is None and (args.namespace or args.kubeconfig):
                (status_cmd if args.command == "status" else report).error(
                    "--namespace and --kubeconfig go with --cluster"
                )
            return _status(args) if args.command == "status" else _report(args)
        from kubenas.k8s.main import run_operator

        return run_operator(
            args.namespace or [],
            args.interval,
            args.verbose,
            args.liveness,
            args.metrics_port,
            _defaults(args),
            _election(args),
            args.log_level,
            args.log_format,
        )
    except SpecError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
