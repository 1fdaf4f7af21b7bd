"""`kubenas run` with strategy miha: one lineage of trials on digits, each starting from a checkpoint."""

import json
from pathlib import Path

import pytest
import yaml

from .local_run import assert_one_split, run_manifest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_miha_runs_clones_from_one_checkpoint_and_continues_the_fittest(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["searchSpace"] = {  # a small, fixed architecture; several choices for the clones to mutate
        "layers": {
            "count": {"values": [1]},
            "units": {"values": [32]},
            "activations": ["relu", "tanh", "gelu"],
        },
        "hyperparameters": {
            "learningRate": {"values": [0.001, 0.003, 0.01, 0.03]},
            "optimizers": ["adam", "adamw", "sgd"],
            "batchSize": {"values": [32, 64, 128]},
        },
    }
    settings = {"runUpEpochs": 2, "cycles": 2, "populationSize": 3, "cycleEpochs": 1, "continueEpochs": 1}
    doc["spec"]["strategy"] = {"name": "miha", "seed": 1, "settings": settings}
    doc["spec"]["budget"] = {"maxTrials": 12, "parallelTrials": 3}  # the schedule takes 10
    doc["spec"]["training"]["epochs"] = 7
    doc["spec"]["objective"] = {"metric": "accuracy"}
    out = run_manifest(doc, tmp_path)

    run_dir = tmp_path / "runs" / "digits"
    trials_dir = run_dir / "trials"
    status = json.loads((run_dir / "status.json").read_text())
    specs = {p.parent.name: json.loads(p.read_text()) for p in trials_dir.glob("*/trial.json")}
    results = {p.parent.name: json.loads(p.read_text()) for p in trials_dir.glob("*/status.json")}
    assert sorted(specs, key=lambda n: int(n.split("-")[1])) == [f"digits-{i}" for i in range(10)]
    assert status["phase"] == "Succeeded" and status["conditions"][-1]["reason"] == "ScheduleCompleted"
    assert status["best"]["trial"] == "digits-9"
    assert results["digits-9"]["phase"] == "Succeeded" and results["digits-9"]["epochs"] == 7
    curve = (trials_dir / "digits-9" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in curve] == list(range(1, 8))  # one unbroken lineage
    # Every other trial paused at its segment's end and was stopped when the experiment ended.
    assert all(results[n]["phase"] == "Stopped" for n in specs if n != "digits-9"), results
    assert_one_split(run_dir)

    def started_from(name: str) -> tuple[str, int]:
        """The trial whose checkpoint `name` started from, and after which epoch (its trainer.log)."""
        parent = specs[name]["startFrom"]
        log = (trials_dir / name / "trainer.log").read_text()
        for epochs in range(1, 8):
            if f"started from {trials_dir / parent / 'checkpoint.pt'} after epoch {epochs}\n" in log:
                return parent, epochs
        raise AssertionError(f"{name} did not start from {parent}'s checkpoint: {log}")

    assert "startFrom" not in specs["digits-0"]
    for cycle, (base, first, epochs) in enumerate([("digits-0", 1, 2), ("digits-4", 5, 4)], start=1):
        clones = [f"digits-{first + i}" for i in range(3)]
        for i, name in enumerate(clones, start=1):
            assert started_from(name) == (base, epochs)
            assert specs[name]["stopAtEpoch"] == epochs + 1
            assert specs[name]["note"].startswith(f"MIHA cycle {cycle}/2, clone {i}/3 of {base}: ")
            # the runner says why
            assert f"{name} started: MIHA cycle {cycle}/2, clone {i}/3 of {base}: " in out
        losses = {name: results[name]["metrics"]["loss"] for name in clones}  # each one's last epoch's
        fittest = min(clones, key=lambda n: (losses[n], int(n.split("-")[1])))
        continuation = f"digits-{first + 3}"
        assert started_from(continuation) == (fittest, epochs + 1)
        assert specs[continuation]["candidate"] == specs[fittest]["candidate"]
        assert specs[continuation]["note"].startswith(
            f"MIHA cycle {cycle}/2: continue the fittest clone {fittest} to epoch {epochs + 2} "
            f"(validation loss {losses[fittest]:.4g} per example"
        )
    assert started_from("digits-9") == ("digits-8", 6)
    assert (
        specs["digits-9"]["note"]
        == "MIHA final: continue digits-8 from epoch 6 to epoch 7, the end of training"
    )
