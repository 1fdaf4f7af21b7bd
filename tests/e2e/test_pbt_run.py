"""`kubenas run` with the pbt strategy: generations of paused trials, exploits from checkpoints, notes."""

import json
from pathlib import Path

import pytest
import yaml

from .local_run import assert_one_split, run_manifest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_pbt_trains_generations_and_copies_the_best_members_checkpoints(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"]["searchSpace"] = {  # small models: only the hyperparameters vary, as PBT changes them
        "layers": {"count": {"values": [1]}, "units": {"values": [32]}, "activations": ["relu"]},
        "hyperparameters": {
            "learningRate": {"min": 0.0003, "max": 0.03, "log": True},
            "optimizers": ["adam", "sgd"],
            "batchSize": {"values": [32, 64]},
        },
    }
    doc["spec"]["objective"] = {"metric": "accuracy"}
    doc["spec"]["strategy"] = {"name": "pbt", "seed": 3, "settings": {"populationSize": 3, "interval": 2}}
    doc["spec"]["budget"] = {"maxTrials": 9, "parallelTrials": 3}
    doc["spec"]["training"]["epochs"] = 6
    out = run_manifest(doc, tmp_path, "--verbose")

    run_dir = tmp_path / "runs" / "digits"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["phase"] == "Succeeded", status
    names = [f"digits-{i}" for i in range(9)]
    trials = {n: json.loads((run_dir / "trials" / n / "status.json").read_text()) for n in names}
    specs = {n: json.loads((run_dir / "trials" / n / "trial.json").read_text()) for n in names}
    assert not (run_dir / "trials" / "digits-9").exists()
    # generations 0 and 1 paused after epochs 2 and 4 and were stopped at the end; generation 2 finished
    for index, name in enumerate(names):
        generation = index // 3
        assert specs[name]["stopAtEpoch"] == 2 * (generation + 1)
        if generation < 2:
            assert trials[name]["phase"] == "Stopped" and trials[name]["epochs"] == 2 * (generation + 1)
        else:
            assert trials[name]["phase"] == "Succeeded" and trials[name]["epochs"] == 6
    assert status["best"]["trial"] in names[6:]
    assert_one_split(run_dir)

    exploits = 0
    for index, name in enumerate(names[3:], start=3):
        generation, member = divmod(index, 3)
        parent = specs[name]["startFrom"]
        assert int(parent.split("-")[1]) // 3 == generation - 1
        note = specs[name]["note"]
        head, *changes = note.splitlines()
        assert head.startswith(f"PBT generation {generation}, member {member}: ")
        assert f"{name} started: {head}\n" in out  # the runner prints the note when the trial starts
        for line in changes:
            assert f"{name}   {line}\n" in out
        checkpoint = run_dir / "trials" / parent / "checkpoint.pt"
        log = (run_dir / "trials" / name / "trainer.log").read_text()
        assert f"started from {checkpoint} after epoch {2 * generation}\n" in log
        curve = (run_dir / "trials" / name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in curve] == list(range(1, 2 * generation + 3))
        # The runner shows the trial's own epochs, not the ones its checkpoint inherited.
        assert f"{name} epoch {2 * generation + 1}/6 " in out and f"{name} epoch 1/6 " not in out
        own = names[index - 3]
        if parent == own:
            assert head.endswith(f"continues {own} (accuracy {trials[own]['metrics']['accuracy']:.4g})")
            assert specs[name]["candidate"] == specs[own]["candidate"]
            continue
        assert f"{own} (accuracy " in head and f"is replaced by a copy of {parent} (accuracy" in head
        source, child = specs[parent]["candidate"], specs[name]["candidate"]
        assert child["architecture"] == source["architecture"]  # the weights are copied: same shapes
        changed = {k for k, v in child["hyperparameters"].items() if v != source["hyperparameters"].get(k)}
        assert {line.split(":")[0] for line in changes} == {f"hyperparameters.{k}" for k in changed}
        exploits += bool(changed)
    assert exploits >= 1  # at least one exploit changed a hyperparameter
