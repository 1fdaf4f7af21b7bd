"""kubenas_trainer.worker's protocol, in this process: a request in, the trial's files and a reply out."""

from __future__ import annotations

import io
import json
from pathlib import Path

from kubenas_trainer.worker import Worker


def test_a_request_runs_the_trial_into_its_directory_and_replies_with_its_exit_status(tmp_path: Path) -> None:
    output = tmp_path / "t-0"
    requests = [
        {"spec": "{}", "output": str(output), "resume": True, "env": {"KUBENAS_TRIAL_NAME": "t-0"}},
        {"spec": "not json", "output": str(tmp_path / "t-1"), "env": {"KUBENAS_TRIAL_NAME": "t-1"}},
    ]
    replies = io.StringIO()
    Worker(replies).serve(io.StringIO("".join(json.dumps(r) + "\n" for r in requests)))

    # Both specs are unusable: status 2, as `python -m kubenas_trainer` exits with, and a Failed result.
    assert [json.loads(line) for line in replies.getvalue().splitlines()] == [
        {"name": "t-0", "code": 2},
        {"name": "t-1", "code": 2},
    ]
    result = json.loads((output / "result.json").read_text())
    assert result["phase"] == "Failed" and result["reason"] == "InvalidSpec"
    assert "invalid trial spec" in result["message"]
    # What the trial printed went to its own log, not to the replies.
    assert '"phase": "Failed"' in (output / "trainer.log").read_text()
