"""kubenas-trainer: run one trial from a trial spec and report its result.

Input: --spec FILE, or the JSON text in KUBENAS_TRIAL_SPEC (how a Kubernetes Job passes it).
Output: OUTPUT/result.json and, on a cluster, the same JSON as the container's termination message
(path from KUBENAS_TERMINATION_LOG, default /dev/termination-log), which the operator reads.
Exit status: 0 succeeded, 1 training failed, 2 unusable spec.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from pydantic import ValidationError

from kubenas_trainer.spec import TrialResult, TrialSpec

DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def _read_spec(args: argparse.Namespace) -> TrialSpec:
    text = Path(args.spec).read_text() if args.spec else os.environ.get("KUBENAS_TRIAL_SPEC")
    if not text:
        raise ValueError("no trial spec: pass --spec FILE or set KUBENAS_TRIAL_SPEC")
    return TrialSpec.model_validate(json.loads(text))


def _report(result: TrialResult, output_dir: Path) -> None:
    (output_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    termination_log = Path(os.environ.get("KUBENAS_TERMINATION_LOG", DEFAULT_TERMINATION_LOG))
    if termination_log.parent.is_dir() and os.access(termination_log.parent, os.W_OK):
        termination_log.write_text(result.to_termination_message())
    print(json.dumps(result.to_dict()), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubenas-trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="trial spec JSON file (default: $KUBENAS_TRIAL_SPEC)")
    parser.add_argument("--output", default=os.environ.get("KUBENAS_OUTPUT_DIR", "kubenas-trial"))
    args = parser.parse_args(argv)
    output_dir = Path(args.output)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        spec = _read_spec(args)
    except (ValueError, OSError, ValidationError) as error:
        name = os.environ.get("KUBENAS_TRIAL_NAME", "unknown")
        _report(TrialResult(name=name, phase="Failed", message=f"invalid trial spec: {error}"), output_dir)
        return 2

    from kubenas_trainer.train import train  # torch is imported only once the spec is known to be usable

    try:
        result = train(spec, output_dir)
    except Exception as error:  # the trial fails, the report must still go out
        traceback.print_exc()
        result = TrialResult(name=spec.name, phase="Failed", message=f"{type(error).__name__}: {error}")
    _report(result, output_dir)
    return 0 if result.phase == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
