"""The local run directory's store: trials are parsed once per runner; a restart reads what was written."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubenas.api import NASExperimentSpec, NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.local.store import RunStore
from kubenas.strategies import make_strategy

SPEC = NASExperimentSpec.model_validate(
    {
        "searchSpace": {"layers": {"types": ["dense"], "units": {"values": [8, 16]}}},
        "budget": {"maxTrials": 2},
    }
)


def trial(index: int) -> NASTrialSpec:
    candidate = make_strategy(SPEC).ask([], index + 1)[index]
    return NASTrialSpec(
        experiment="exp", index=index, candidate_key=candidate.key(), seed=index, candidate=candidate
    )


def test_a_restarted_store_reads_every_trial_as_written(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "exp")
    store.create_trial("exp-0", trial(0))
    store.create_trial("exp-1", trial(1))
    store.write_status("exp-0", NASTrialStatus(phase=TrialPhase.SUCCEEDED, metrics={"accuracy": 0.9}))
    restarted = RunStore(tmp_path / "exp").trials()
    assert restarted == store.trials()
    assert [(name, status.phase, status.metrics) for name, _, status in restarted] == [
        ("exp-0", TrialPhase.SUCCEEDED, {"accuracy": 0.9}),
        ("exp-1", TrialPhase.PENDING, {}),
    ]


def test_a_pass_parses_no_trial_file_it_wrote_or_read_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(tmp_path / "exp")
    store.create_trial("exp-0", trial(0))
    store.write_status("exp-0", NASTrialStatus(phase=TrialPhase.RUNNING))
    RunStore(tmp_path / "exp").create_trial("exp-1", trial(1))  # recorded before a restart, say
    store.trials()  # reads exp-1's spec once
    parsed: list[str] = []
    for model in (NASTrialSpec, NASTrialStatus):
        original = model.model_validate_json
        monkeypatch.setattr(
            model,
            "model_validate_json",
            lambda text, _o=original, **kw: parsed.append(text) or _o(text, **kw),
        )
    names = [(name, status.phase) for name, _, status in store.trials()]
    assert names == [("exp-0", TrialPhase.RUNNING), ("exp-1", TrialPhase.PENDING)]
    assert parsed == []
