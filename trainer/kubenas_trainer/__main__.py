"""kubenas-trainer: run one trial from a trial spec and report its result.

Input: --spec FILE, or the JSON text in KUBENAS_TRIAL_SPEC (how a Kubernetes Job passes it).
Output: OUTPUT/result.json and, on a cluster, the same JSON as the container's termination message
(path from KUBENAS_TERMINATION_LOG, default /dev/termination-log), which the operator reads.
--resume continues from OUTPUT/checkpoint.pt when one is there (a restarted pod picks up its work,
a promoted trial goes on from its rung); it takes precedence over the spec's startFrom.
A trial with stopAtEpoch before its last epoch pauses there: it reports phase Paused and exits 0.
With a spec's `report`, every epoch's metrics are pushed to a Pushgateway (kubenas_trainer.report); with
its `storage`, the run directory goes to object storage as the trial runs and at its end, result.json last
(kubenas_trainer.uploader), and --resume without a local checkpoint continues the stored one. Storage
calls are retried ($KUBENAS_STORAGE_BACKOFF_SECONDS, default 0.5, doubling to 10 s) until
$KUBENAS_STORAGE_DEADLINE_SECONDS (default 600; 20 at most after SIGTERM); credentials come from the
environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...).
Before torch is imported, kubenas_trainer.preflight checks what it can (a built-in set's task and sample
shape against the objective and the candidate) and makes the data set local, so that a trial that cannot
run fails in seconds.
A Failed result says why in `reason` (spec.FailureReason): InvalidCandidate (the candidate cannot be built
for its data: another candidate can avoid it), InvalidSpec (the spec cannot run whatever the candidate),
DataUnavailable (training.dataset cannot be loaded: no such file, bucket or object, no credentials or no
access, a failed download, an unreadable file), Interrupted (SIGTERM), TrainingFailed (anything else).
Exit status: 0 succeeded or paused, 1 training failed (TrainingFailed), 2 unusable spec (InvalidCandidate,
InvalidSpec, DataUnavailable: running it again cannot help), 143 stopped by SIGTERM after writing a
checkpoint (Interrupted).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from kubenas_trainer.shapes import ArchitectureError
from kubenas_trainer.spec import (
    CHECKPOINT_FILE,
    RESULT_FILE,
    DataUnavailable,
    FailureReason,
    TrialResult,
    TrialSpec,
    UnusableSpec,
)
from kubenas_trainer.stopping import Interrupted, StopFlag

if TYPE_CHECKING:
    from kubenas_trainer.train import Observer

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
# After SIGTERM, Kubernetes kills the pod at the end of its grace period (30 s by default).
INTERRUPTED_UPLOAD_SECONDS = 20.0


def reason_of(error: BaseException) -> FailureReason:
    """Why a trial failed, from the error that ended it."""
    if isinstance(error, ArchitectureError):
        return FailureReason.INVALID_CANDIDATE
    if isinstance(error, DataUnavailable):
        return FailureReason.DATA_UNAVAILABLE
    if isinstance(error, UnusableSpec):
        return FailureReason.INVALID_SPEC
    if isinstance(error, Interrupted):
        return FailureReason.INTERRUPTED
    return FailureReason.TRAINING_FAILED


def failed(name: str, reason: FailureReason, message: str) -> TrialResult:
    return TrialResult(name=name, phase="Failed", message=message, reason=reason)


def _read_spec(spec_file: str | None) -> TrialSpec:
    text = Path(spec_file).read_text() if spec_file else os.environ.get("KUBENAS_TRIAL_SPEC")
    if not text:
        raise ValueError("no trial spec: pass --spec FILE or set KUBENAS_TRIAL_SPEC")
    return TrialSpec.model_validate(json.loads(text))


def _write(result: TrialResult, output_dir: Path) -> None:
    (output_dir / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n")


def _announce(result: TrialResult) -> None:
    termination_log = Path(os.environ.get("KUBENAS_TERMINATION_LOG", DEFAULT_TERMINATION_LOG))
    if termination_log.parent.is_dir() and os.access(termination_log.parent, os.W_OK):
        termination_log.write_text(result.to_termination_message())
    print(json.dumps(result.to_dict()), flush=True)


def _report(result: TrialResult, output_dir: Path) -> None:
    _write(result, output_dir)
    _announce(result)


def _resume_point(spec: TrialSpec, resume: bool, output_dir: Path) -> TrialSpec:
    """With --resume: continue OUTPUT/checkpoint.pt, fetched from storage when only there (a pod
    restarted on another node); neither: start afresh."""
    checkpoint = output_dir / CHECKPOINT_FILE
    if not resume or spec.resume_from is not None:
        return spec
    if not checkpoint.is_file() and spec.storage is not None:
        from kubenas_trainer.storage import Retry, Store, deadline_seconds

        stored = spec.storage.uri + CHECKPOINT_FILE
        if Store(spec.storage).download(stored, checkpoint, Retry.within(deadline_seconds())):
            print(f"fetched {stored}", flush=True)
    return spec.model_copy(update={"resume_from": str(checkpoint)}) if checkpoint.is_file() else spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubenas-trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="trial spec JSON file (default: $KUBENAS_TRIAL_SPEC)")
    parser.add_argument("--output", default=os.environ.get("KUBENAS_OUTPUT_DIR", "kubenas-trial"))
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT/checkpoint.pt if it exists (else from the spec's storage)",
    )
    args = parser.parse_args(argv)
    return run_trial(args.spec, Path(args.output), args.resume)


def run_trial(spec_file: str | None, output_dir: Path, resume: bool, stop: StopFlag | None = None) -> int:
    """One trial from its spec (spec_file, else $KUBENAS_TRIAL_SPEC) into output_dir; the exit status.
    kubenas_trainer.worker calls it once per trial, with the StopFlag its SIGTERM handler sets."""
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        spec = _read_spec(spec_file)
    except (ValueError, OSError, ValidationError) as error:
        name = os.environ.get("KUBENAS_TRIAL_NAME", "unknown")
        _report(failed(name, FailureReason.INVALID_SPEC, f"invalid trial spec: {error}"), output_dir)
        return 2
    try:
        spec = _resume_point(spec, resume, output_dir)
    except Exception as error:  # storage still failing at its deadline: retraining would repeat epochs
        _report(failed(spec.name, FailureReason.TRAINING_FAILED, f"--resume: {error}"), output_dir)
        return 1

    return _run(spec, output_dir, stop)


def _run(spec: TrialSpec, output_dir: Path, stop: StopFlag | None = None) -> int:
    """Train with the spec's channels beside training (live metrics, storage), report; the exit status."""
    from kubenas_trainer.report import Pusher
    from kubenas_trainer.storage import deadline_seconds
    from kubenas_trainer.uploader import Uploader

    try:
        uploader = Uploader(spec.storage, output_dir) if spec.storage is not None else None
    except ValueError as error:  # e.g. an endpoint that is no URL
        _report(failed(spec.name, FailureReason.INVALID_SPEC, f"storage: {error}"), output_dir)
        return 2
    pusher = Pusher(spec.report) if spec.report is not None else None
    status, upload_seconds = None, None
    try:
        result = _train(spec, output_dir, [o for o in (pusher, uploader) if o is not None], stop)
    except UnusableSpec as error:  # the data set's message names training.dataset and the cause
        message = str(error) if isinstance(error, DataUnavailable) else f"invalid trial spec: {error}"
        result, status = failed(spec.name, reason_of(error), message), 2
    except Interrupted as error:
        result = failed(spec.name, reason_of(error), str(error))
        status, upload_seconds = 143, min(INTERRUPTED_UPLOAD_SECONDS, deadline_seconds())
    except Exception as error:  # the trial fails, the report must still go out
        traceback.print_exc()
        result = failed(spec.name, reason_of(error), f"{type(error).__name__}: {error}")
    finally:
        if pusher is not None:
            pusher.close()
    if uploader is not None:  # result.json last, after the rest of the run directory
        result = uploader.finish(result, lambda written: _write(written, output_dir), upload_seconds)
    else:
        _write(result, output_dir)
    _announce(result)
    if status is not None:
        return status
    return 0 if result.phase in ("Succeeded", "Paused") else 1


def _train(
    spec: TrialSpec, output_dir: Path, observers: Sequence[Observer], stop: StopFlag | None
) -> TrialResult:
    from kubenas_trainer.preflight import preflight

    preflight(spec)  # a spec that cannot run fails here, in seconds
    from kubenas_trainer.train import train  # torch only once the spec is usable

    return train(spec, output_dir, stop=stop, observers=observers)


if __name__ == "__main__":
    sys.exit(main())
