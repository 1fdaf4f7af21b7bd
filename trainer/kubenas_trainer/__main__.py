"""kubenas-trainer: run one trial from a trial spec and report its result.

Input: --spec FILE, or the JSON text in KUBENAS_TRIAL_SPEC (how a Kubernetes Job passes it).
Output: OUTPUT/result.json and, on a cluster, the same JSON as the container's termination message
(path from KUBENAS_TERMINATION_LOG, default /dev/termination-log), which the operator reads.
--resume continues from OUTPUT/checkpoint.pt when one is there (a restarted pod picks up its work,
a promoted trial goes on from its rung); it takes precedence over the spec's startFrom.
A trial with stopAtEpoch before its last epoch pauses there: it reports phase Paused and exits 0.
Exit status: 0 succeeded or paused, 1 training failed, 2 unusable spec (including one that cannot run on its
data set, e.g. conv2d on tabular data), 143 stopped by SIGTERM after writing a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from pydantic import ValidationError

from kubenas_trainer.spec import CHECKPOINT_FILE, TrialResult, TrialSpec, UnusableSpec

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
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt if it exists"
    )
    args = parser.parse_args(argv)
    output_dir = Path(args.output)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        spec = _read_spec(args)
    except (ValueError, OSError, ValidationError) as error:
        name = os.environ.get("KUBENAS_TRIAL_NAME", "unknown")
        _report(TrialResult(name=name, phase="Failed", message=f"invalid trial spec: {error}"), output_dir)
        return 2

    checkpoint = output_dir / CHECKPOINT_FILE
    if args.resume and spec.resume_from is None and checkpoint.is_file():
        spec = spec.model_copy(update={"resume_from": str(checkpoint)})

    from kubenas_trainer.train import Interrupted, train  # torch only once the spec is known to be usable

    try:
        result = train(spec, output_dir)
    except UnusableSpec as error:
        _report(
            TrialResult(name=spec.name, phase="Failed", message=f"invalid trial spec: {error}"), output_dir
        )
        return 2
    except Interrupted as error:
        _report(TrialResult(name=spec.name, phase="Failed", message=str(error)), output_dir)
        return 143
    except Exception as error:  # the trial fails, the report must still go out
        traceback.print_exc()
        result = TrialResult(name=spec.name, phase="Failed", message=f"{type(error).__name__}: {error}")
    _report(result, output_dir)
    return 0 if result.phase in ("Succeeded", "Paused") else 1


if __name__ == "__main__":
    sys.exit(main())
