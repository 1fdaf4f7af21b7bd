"""The trial contract, which the control plane shares with the trainer image (no torch here)."""

import json
import subprocess
import sys

from kubenas_trainer.spec import TERMINATION_MESSAGE_LIMIT, TrialResult


def test_termination_message_fits_the_kubernetes_limit() -> None:
    result = TrialResult(name="t", phase="Failed", message="x" * 10_000, metrics={"loss": 1.0})
    text = result.to_termination_message()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = TrialResult.model_validate(json.loads(text))
    assert parsed.metrics == {"loss": 1.0} and parsed.message.startswith("xxx")


def test_control_plane_does_not_import_torch() -> None:
    # Other tests in this process import torch for training: check in a clean interpreter.
    code = "import sys, kubenas.engine, kubenas.local, kubenas.cli; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ":".join(sys.path)},
    )
    assert out.stdout.strip() == "False"
