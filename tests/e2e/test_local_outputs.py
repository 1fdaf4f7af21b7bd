"""`kubenas run` with spec.metrics and spec.storage: the same trainer code pushes every epoch and uploads
each trial's run directory, while the run directory stays the local record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.services.pushgateway import Pushgateway
from tests.services.s3 import S3Server

from .local_run import run_manifest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_a_local_run_pushes_metrics_and_uploads_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Pushgateway(tmp_path / "pushgateway") as pushgateway, S3Server() as s3:
        s3.client().create_bucket(Bucket="runs")
        for key, value in s3.env.items():
            monkeypatch.setenv(key, value)  # the trainers' credentials: their environment, never the spec
        doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
        doc["spec"]["budget"] = {"maxTrials": 2, "parallelTrials": 2}
        doc["spec"]["training"]["epochs"] = 3
        doc["spec"]["objective"] = {"metric": "accuracy"}
        doc["spec"]["metrics"] = {"pushgateway": pushgateway.url}
        doc["spec"]["storage"] = {"bucket": "runs", "prefix": "local", "endpoint": s3.endpoint}
        run_manifest(doc, tmp_path)
        pushed = pushgateway.metrics()
        listing = s3.client().list_objects_v2(Bucket="runs", Prefix="local/default/digits/")
        keys = {o["Key"] for o in listing.get("Contents", [])}

    run_dir = tmp_path / "runs" / "digits"
    best = json.loads((run_dir / "best.json").read_text())
    assert best["modelUri"] == f"s3://runs/local/default/digits/{best['trial']}/model.pt2"
    for trial in ("digits-0", "digits-1"):
        status = json.loads((run_dir / "trials" / trial / "status.json").read_text())
        assert status["artifacts"] == f"s3://runs/local/default/digits/{trial}/"
        assert {
            f"local/default/digits/{trial}/{f}" for f in ("result.json", "model.pt2", "metrics.jsonl")
        } <= keys
        assert (run_dir / "trials" / trial / "model.pt2").is_file()  # the run directory keeps everything
        # the group was deleted once the trial ended: nothing of it is left to go stale
        assert f'trial="{trial}"' not in pushed
    # what the gateway served: a push per epoch of each trial, a deletion per trial
    assert requests(pushed, "push", "put") >= 2 * 3 and requests(pushed, "delete", "delete") >= 2


def requests(exposition: str, handler: str, method: str) -> float:
    """The Pushgateway's own count of successful requests to one of its handlers."""
    total = 0.0
    wanted = ("pushgateway_http_requests_total{", f'handler="{handler}"', f'method="{method}"', 'code="2')
    for line in exposition.splitlines():
        if all(part in line for part in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total
