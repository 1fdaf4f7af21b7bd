"""kubenas command line: run | validate | crd | operator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from kubenas.api.errors import SpecError
from kubenas.api.manifest import load_manifest


def _validate(path: str) -> int:
    from kubenas.strategies import make_strategy

    experiment = load_manifest(path)
    make_strategy(experiment.spec)
    print(f"{path}: NASExperiment {experiment.metadata.name} is valid")
    return 0


def _run(path: str, output: str) -> int:
    from kubenas.local import run_experiment
    from kubenas.strategies import make_strategy

    experiment = load_manifest(path)
    make_strategy(experiment.spec)  # reject a bad strategy before anything starts
    status = run_experiment(experiment, Path(output))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubenas", description="Kubernetes-native neural architecture search"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run an experiment on this machine (trials as local processes)")
    run.add_argument("manifest")
    run.add_argument("--output", default="runs", help="results directory (default: runs)")
    validate = commands.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("manifest")
    crd = commands.add_parser("crd", help="print or write the CustomResourceDefinitions")
    crd.add_argument("--output", help="directory to write one file per CRD into")
    crd.add_argument("--check", action="store_true", help="fail if the files in --output are stale")
    op = commands.add_parser("operator", help="run the Kubernetes operator (kopf)")
    op.add_argument("--namespace", action="append", help="watch only these namespaces (default: all)")
    op.add_argument(
        "--interval", type=float, default=2.0, help="seconds between reconciles of a running experiment"
    )
    op.add_argument("--verbose", action="store_true")
    op.add_argument("--liveness", help="serve a liveness probe here, e.g. http://0.0.0.0:8080/healthz")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args.manifest, args.output)
        if args.command == "validate":
            return _validate(args.manifest)
        if args.command == "crd":
            return _crd(args.output, args.check)
        from kubenas.k8s.main import run_operator

        return run_operator(args.namespace or [], args.interval, args.verbose, args.liveness)
    except SpecError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
