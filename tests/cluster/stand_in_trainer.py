"""A stand-in for kubenas-trainer where trials cannot train real models (scale benchmarks): it trains
nothing, reports a valid result at once and then sleeps, so that a pod costs a ``sleep`` process.

Run it with ``python -S`` (standard library only: no torch, no pydantic, no site-packages; a start costs
about 10 ms of CPU). It reads the trial as the trainer would (``$KUBENAS_TRIAL_NAME``,
``$KUBENAS_TRIAL_SPEC``), writes a ``kubenas.dev/trial-result/v1`` TrialResult to
``$KUBENAS_TERMINATION_LOG`` (phase Succeeded, an ``accuracy`` in [0.5, 0.99) drawn from the trial's
name, ``epochs`` and a curve of the spec's training epochs), then replaces itself with ``sleep
$KUBENAS_STAND_IN_SECONDS`` (default 10). The node agent reads the message when the container exits,
so the result is reported only at the end, as the real trainer's is.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

SECONDS_ENV = "KUBENAS_STAND_IN_SECONDS"


def result(name: str, epochs: int) -> dict[str, object]:
    """The TrialResult document (camelCase, as kubenas_trainer.spec.TrialResult.to_dict writes it)."""
    draw = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") / 2**32
    accuracy = round(0.5 + 0.49 * draw, 6)
    curve = [round(accuracy * (epoch + 1) / epochs, 6) for epoch in range(epochs)]
    return {
        "apiVersion": "kubenas.dev/trial-result/v1",
        "name": name,
        "phase": "Succeeded",
        "metrics": {"accuracy": accuracy, "trainingSeconds": 0.0},
        "epochs": epochs,
        "bestEpoch": epochs,
        "curve": curve,
        "message": "stand-in trainer: no model was trained",
    }


def main() -> None:
    spec = json.loads(os.environ.get("KUBENAS_TRIAL_SPEC") or "{}")
    name = os.environ.get("KUBENAS_TRIAL_NAME") or spec.get("name") or "stand-in"
    epochs = int((spec.get("training") or {}).get("epochs") or 1)
    text = json.dumps(result(name, epochs), separators=(",", ":"))
    path = os.environ.get("KUBENAS_TERMINATION_LOG")
    if path:
        with open(path, "w") as out:
            out.write(text)
    else:
        print(text)
    sys.stdout.flush()
    seconds = os.environ.get(SECONDS_ENV, "10")
    os.execvp("sleep", ["sleep", seconds])


if __name__ == "__main__":
    main()
