"""What `kubenas run` prints where stdout is no terminal (CI, `kubectl logs`): short lines, one per trial
event, no per-epoch flood; and the live view's last frame when it is forced."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

EPOCH_LINE = re.compile(r"^digits-\d+ epoch \d+/\d+ ")


def tiny_manifest(tmp_path: Path, trials: int, epochs: int) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["searchSpace"]["layers"]["count"] = {"values": [1]}
    doc["spec"]["budget"] = {"maxTrials": trials, "parallelTrials": min(trials, 2)}
    doc["spec"]["training"]["epochs"] = epochs
    doc["spec"]["objective"] = {"metric": "accuracy"}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def kubenas_run(path: Path, tmp_path: Path, *args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "kubenas.cli", "run", str(path), "--output", str(tmp_path / "runs"), *args],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "140"},
        text=True,
        stdout=subprocess.PIPE,  # no terminal: --progress auto is plain
        stderr=subprocess.STDOUT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout
    return proc.stdout.splitlines()


def test_a_piped_run_prints_a_short_line_per_trial_event_and_no_epochs(tmp_path: Path) -> None:
    lines = kubenas_run(tiny_manifest(tmp_path, trials=3, epochs=3), tmp_path)
    assert all(len(line) < 160 for line in lines), [line for line in lines if len(line) >= 160]
    assert not [line for line in lines if EPOCH_LINE.match(line)]
    events = [line for line in lines if re.match(r"^digits-\d+ ", line)]
    # Each trial started and succeeded: two events, two lines, in that order.
    for index in range(3):
        mine = [line for line in events if line.startswith(f"digits-{index} ")]
        assert len(mine) == 2, events
        assert re.fullmatch(rf"digits-{index} started: dense \d+ \w+, \w+ lr=\S+ bs=\d+", mine[0])
        assert re.fullmatch(rf"digits-{index} succeeded: accuracy=[\d.]+ after 3 epochs", mine[1])
    assert len(events) == 6
    summary = [line for line in lines if line.startswith("experiment digits ")]
    assert len(summary) == 1
    assert re.fullmatch(
        r"experiment digits Succeeded after \d+:\d\d: 3 succeeded, 0 failed, 0 stopped, 9 epochs trained; "
        r"best digits-\d accuracy=[\d.]+",
        summary[0],
    )
    assert lines.index(summary[0]) > max(lines.index(line) for line in events)


def test_verbose_adds_a_line_per_epoch_and_live_can_be_forced(tmp_path: Path) -> None:
    path = tiny_manifest(tmp_path, trials=1, epochs=2)
    lines = kubenas_run(path, tmp_path, "--verbose", "--progress", "plain")
    epochs = [line for line in lines if EPOCH_LINE.match(line)]
    assert [line.split(" accuracy=")[0] for line in epochs] == ["digits-0 epoch 1/2", "digits-0 epoch 2/2"]
    assert all(re.fullmatch(r"digits-0 epoch \d/2 accuracy=[\d.]+ loss=[\d.]+", line) for line in epochs)

    again = tmp_path / "again.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["metadata"]["name"] = "again"
    again.write_text(yaml.safe_dump(doc))
    lines = kubenas_run(again, tmp_path, "--progress", "live")
    text = "\n".join(line.rstrip() for line in lines)
    # Not a terminal, so rich draws only the last frame: the table, the best, the counts, then the summary.
    assert re.search(r"^again  random  trials 1/1  elapsed \d+:\d\d  done$", text, re.MULTILINE), text
    assert re.search(
        r"^again-0 +dense \d+ \w+, \w+ lr=\S+ bs=\d+ .* 2/2 +[\d.]+ +succeeded$", text, re.MULTILINE
    )
    assert re.search(r"^best again-0 accuracy=[\d.]+", text, re.MULTILINE)
    assert "running 0  pending 0  paused 0  succeeded 1  failed 0  stopped 0" in text
    assert re.search(r"^experiment again Succeeded after", text, re.MULTILINE)
