"""The terminal of `kubenas run`: plain lines for a scripted run, the live view's table and estimate."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.manifest import parse_manifest
from kubenas.api.status import BestTrial, NASExperimentStatus, NASTrialSpec, NASTrialStatus, TrialCounts
from kubenas.api.status import TrialPhase as P
from kubenas.engine.events import Event, describe
from kubenas.local.console import Console, PlainView
from kubenas.local.live_view import LiveView
from kubenas.local.progress import Plan, Progress, short, successive_halving_epochs
from kubenas.schedulers import Bracket
from kubenas_trainer.spec import Candidate
from rich.console import Console as RichConsole

ROOT = Path(__file__).resolve().parents[2]


def spec_of(**changes: Any) -> NASExperimentSpec:
    doc = yaml.safe_load((ROOT / "examples" / "digits.yaml").read_text())
    doc["spec"].update(changes)
    return parse_manifest(doc).spec


def candidate(*units: int, activation: str = "relu", lr: float = 0.00636, batch: int = 32) -> Candidate:
    layers = [{"type": "dense", "units": u, "activation": activation} for u in units]
    return Candidate.model_validate(
        {
            "architecture": {"layers": layers},
            "hyperparameters": {"learningRate": lr, "optimizer": "adam", "batchSize": batch},
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Trials:
    """The recorded trials, as the runner's reader gives them to the console."""

    def __init__(self) -> None:
        self.recorded: dict[str, tuple[NASTrialSpec, NASTrialStatus]] = {}

    def add(self, name: str, cand: Candidate, note: str = "", start_from: str | None = None) -> None:
        index = int(name.rsplit("-", 1)[1])
        spec = NASTrialSpec(
            experiment="digits",
            index=index,
            candidate_key=cand.key(),
            seed=index,
            candidate=cand,
            note=note,
            start_from=start_from,
        )
        self.recorded[name] = (spec, NASTrialStatus())

    def status(self, name: str, **fields: Any) -> None:
        self.recorded[name] = (self.recorded[name][0], NASTrialStatus(**fields))

    def __call__(self, name: str) -> tuple[NASTrialSpec, NASTrialStatus] | None:
        return self.recorded.get(name)


def created(name: str, cand: Candidate, note: str = "") -> Event:
    return Event("Normal", "TrialCreated", name, "\n".join([describe(cand), *note.splitlines()]))


def write_epochs(path: Path, rows: list[dict[str, float]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def row(epoch: int, accuracy: float, loss: float) -> dict[str, float]:
    return {
        "epoch": epoch,
        "accuracy": accuracy,
        "f1": 0.5,
        "loss": loss,
        "trainLoss": 1.0,
        "epochSeconds": 0.1,
    }


def scripted_run(console: Console, trials: Trials, tmp_path: Path, clock: Clock) -> None:
    """An ASHA run (rungs at 1 and 3 of 9 epochs) with a reuse, a stop and a failure."""
    a, b = candidate(128, 64), candidate(32, activation="gelu", lr=0.02, batch=64)
    trials.add("digits-0", a)
    trials.add("digits-1", b)
    console.segment_started("digits-0", 0)
    console.event(created("digits-0", a))
    console.segment_started("digits-1", 0)
    console.event(created("digits-1", b))
    clock.now += 10
    write_epochs(tmp_path / "0.jsonl", [row(1, 0.5, 1.5)])
    console.epoch_lines("digits-0", tmp_path / "0.jsonl")
    write_epochs(tmp_path / "1.jsonl", [row(1, 0.875, 0.4)])
    console.epoch_lines("digits-1", tmp_path / "1.jsonl")
    for name, value in (("digits-0", 0.5), ("digits-1", 0.875)):
        trials.status(name, phase=P.PAUSED, objective_value=value, epochs=1)
        console.event(Event("Normal", "TrialPaused", name, f"paused after epoch 1 of 9, accuracy={value:g}"))
    console.event(Event("Normal", "TrialPromoted", "digits-1", "continues after epoch 1 to epoch 3"))
    console.segment_started("digits-1", 1)
    write_epochs(tmp_path / "1.jsonl", [row(1, 0.875, 0.4), row(2, 0.9, 0.3), row(3, 0.95, 0.2)])
    console.epoch_lines("digits-1", tmp_path / "1.jsonl")
    trials.add("digits-2", a)
    trials.status("digits-2", phase=P.SUCCEEDED, objective_value=0.5, epochs=1)
    console.event(
        Event("Normal", "TrialReused", "digits-2", "reused the result of digits-0 (same candidate)")
    )
    console.event(
        Event(
            "Normal", "TrialStopped", "digits-0", "early stopping: best 0.5 below the median 0.875 at epoch 1"
        )
    )
    trials.add("digits-3", b)
    console.segment_started("digits-3", 0)
    console.event(created("digits-3", b))
    tail = (
        "trainer exited with code 1 without a result: Traceback (most recent call last):\n"
        "  File x\n"
        "ValueError: " + "x" * 200
    )
    console.event(Event("Warning", "TrialFailed", "digits-3", tail))
    console.warning("CreateFailure", "process of digits-4 not started: no space left")
    clock.now += 81
    status = NASExperimentStatus(
        phase="Succeeded",
        trials=TrialCounts(created=4, succeeded=2, failed=1, stopped=1),
        best=BestTrial(trial="digits-1", objective_value=0.95, candidate=b),
    )
    console.summary(status)


EXPECTED = [
    "digits-0 started: dense 128-64 relu, adam lr=0.0064 bs=32",
    "digits-1 started: dense 32 gelu, adam lr=0.02 bs=64",
    "digits-0 paused after epoch 1 of 9, accuracy=0.5 (asha rung 1 of 2)",
    "digits-1 paused after epoch 1 of 9, accuracy=0.875 (asha rung 1 of 2)",
    "digits-1 promoted: continues after epoch 1 to epoch 3",
    "digits-2 reused the result of digits-0 (same candidate)",
    "digits-0 stopped: early stopping: best 0.5 below the median 0.875 at epoch 1",
    "digits-3 started: dense 32 gelu, adam lr=0.02 bs=64",
    "digits-3 failed: ValueError: " + "x" * 105 + "...",  # cut to 120 characters
    "warning: CreateFailure: process of digits-4 not started: no space left",
    "experiment digits Succeeded after 1:31: 2 succeeded, 1 failed, 1 stopped, 4 epochs trained; "
    "best digits-1 accuracy=0.95",
]
EPOCHS = [
    "digits-0 epoch 1/9 accuracy=0.5 loss=1.5",
    "digits-1 epoch 1/9 accuracy=0.875 loss=0.4",
    "digits-1 epoch 2/9 accuracy=0.9 loss=0.3",
    "digits-1 epoch 3/9 accuracy=0.95 loss=0.2",
]
ASHA = {"earlyStopping": {"rule": "asha", "minEpochs": 1, "reductionFactor": 3}}


def asha_spec(metric: str = "accuracy") -> NASExperimentSpec:
    """6 trials of 9 epochs, rungs at 1 and 3 epochs."""
    return spec_of(**ASHA, objective={"metric": metric}, training={"dataset": "digits", "epochs": 9})


def plain(tmp_path: Path, verbose: bool) -> list[str]:
    spec, out, clock, trials = asha_spec(), io.StringIO(), Clock(), Trials()
    plan = Plan.of(spec, "digits")
    console = Console(
        "accuracy",
        9,
        plan=plan,
        view=lambda progress: PlainView(progress, out, verbose=verbose),
        reader=trials,
        clock=clock,
    )
    scripted_run(console, trials, tmp_path, clock)
    return out.getvalue().splitlines()


def test_plain_lines_say_what_happened_to_each_trial_and_why(tmp_path: Path) -> None:
    assert plain(tmp_path, verbose=False) == EXPECTED


def test_verbose_adds_one_short_line_per_epoch_with_the_objective_and_the_loss(tmp_path: Path) -> None:
    lines = plain(tmp_path, verbose=True)
    assert [line for line in lines if " epoch " in line and "/9 " in line] == EPOCHS
    assert [line for line in lines if line not in EPOCHS] == EXPECTED
    assert lines.index(EPOCHS[0]) < lines.index(EXPECTED[2])  # in the order it happened


def test_a_trial_made_from_another_shows_the_strategys_note_and_only_its_own_epochs(tmp_path: Path) -> None:
    spec = spec_of(
        strategy={"name": "pbt", "seed": 1, "settings": {"populationSize": 2, "interval": 2}},
        budget={"maxTrials": 4, "parallelTrials": 2},
        training={"dataset": "digits", "epochs": 4},
    )
    out, trials = io.StringIO(), Trials()
    plan = Plan.of(spec, "digits")
    console = Console("accuracy", 4, plan=plan, view=lambda p: PlainView(p, out, verbose=True), reader=trials)
    note = (
        "PBT generation 1, member 0: digits-0 (accuracy 0.5) is replaced by a copy of digits-1 "
        "(accuracy 0.9)\n"
        "hyperparameters.learningRate: 0.001 -> 0.0012 (perturbed x1.2)"
    )
    trials.add("digits-2", candidate(32), note=note, start_from="digits-1")
    console.segment_started("digits-2", 2)
    console.event(created("digits-2", candidate(32), note))
    write_epochs(tmp_path / "m.jsonl", [row(e, 0.9, 0.3) for e in (1, 2, 3)])  # two came with the checkpoint
    console.epoch_lines("digits-2", tmp_path / "m.jsonl")
    trials.status("digits-2", phase=P.PAUSED, objective_value=0.9, epochs=3)
    console.event(Event("Normal", "TrialPaused", "digits-2", "paused after epoch 3 of 4, accuracy=0.9"))
    assert out.getvalue().splitlines() == [
        "digits-2 started: " + note.splitlines()[0],
        "digits-2   hyperparameters.learningRate: 0.001 -> 0.0012 (perturbed x1.2)",
        "digits-2 epoch 3/4 accuracy=0.9 loss=0.3",
        "digits-2 paused after epoch 3 of 4, accuracy=0.9 (PBT generation 1, member 0)",
    ]
    assert console.progress.trained == 1 and console.progress.trials["digits-2"].inherited == 2


def test_budgets_follow_the_strategy_and_the_fidelity() -> None:
    assert successive_halving_epochs(Bracket(1, 9, 3), 6) == 6 * 1 + 2 * 2 + 1 * 6
    assert successive_halving_epochs(Bracket(9, 9, 3), 4) == 4 * 9  # no rung: every trial to the end
    plain_plan = Plan.of(spec_of(budget={"maxTrials": 6, "parallelTrials": 2}), "digits")
    assert (plain_plan.trials, plain_plan.scheduled) == (6, None)
    assert plain_plan.basis == "6 trials x 15 epochs, at most"  # the example's objective has a target
    asha = Plan.of(asha_spec(), "d")
    assert (asha.scheduled, asha.basis) == (16, "asha: about 16 epochs over 6 trials")
    hyperband = Plan.of(
        spec_of(
            earlyStopping={"rule": "hyperband", "minEpochs": 1, "reductionFactor": 3},
            training={"dataset": "digits", "epochs": 9},
        ),
        "d",
    )
    # Brackets with first rungs 1, 3 and 9 take trials 0 and 3, 1 and 4, 2 and 5.
    assert hyperband.scheduled == (2 * 1 + 1 * 2 + 1 * 6) + (2 * 3 + 1 * 6) + 2 * 9
    pbt = Plan.of(
        spec_of(
            strategy={"name": "pbt", "seed": 1, "settings": {"populationSize": 3, "interval": 2}},
            budget={"maxTrials": 9, "parallelTrials": 3},
            training={"dataset": "digits", "epochs": 6},
        ),
        "d",
    )
    assert (pbt.trials, pbt.scheduled) == (9, 18)
    settings = {"runUpEpochs": 2, "cycles": 2, "populationSize": 3, "cycleEpochs": 1, "continueEpochs": 1}
    miha = Plan.of(
        spec_of(
            strategy={"name": "miha", "seed": 1, "settings": settings},
            budget={"maxTrials": 12, "parallelTrials": 3},
            training={"dataset": "digits", "epochs": 7},
        ),
        "d",
    )
    # run-up 2; per cycle 3 clones x 1 + a continuation of 1; the final trial from epoch 6 to 7
    assert (miha.trials, miha.scheduled) == (1 + 2 * (3 + 1) + 1, 2 + 2 * (3 + 1) + 1)


def test_time_left_counts_the_open_trials_epochs_and_the_trials_not_yet_created() -> None:
    clock = Clock()
    progress = Progress(Plan("accuracy", 10, trials=5), clock)
    for name, epoch in (("d-0", 10), ("d-1", 4), ("d-2", 0)):
        trial = progress.segment(name, 0, None)
        for e in range(1, epoch + 1):
            progress.epoch(name, {"epoch": e, "accuracy": 0.5})
        trial.phase = "succeeded" if epoch == 10 else "running"
    progress.status = NASExperimentStatus(trials=TrialCounts(created=3, running=2, succeeded=1))
    clock.now += 28
    # d-1 has 6 epochs left, d-2 10, and 2 trials are still to come: 16 + 20 epochs at 14 / 28 s.
    assert progress.remaining_epochs() == 36
    assert progress.rate() == 0.5
    assert progress.seconds_left() == 72
    progress.finished = True
    assert progress.seconds_left() == 0


def test_a_resumed_run_counts_what_the_earlier_run_trained() -> None:
    spec = asha_spec()
    console = Console("accuracy", 9, plan=Plan.of(spec, "digits"), view=lambda p: PlainView(p, io.StringIO()))
    trials = Trials()
    trials.add("digits-0", candidate(16))
    trials.add("digits-1", candidate(16))
    console.recorded(
        [
            ("digits-0", trials.recorded["digits-0"][0], NASTrialStatus(phase=P.PAUSED, epochs=3)),
            ("digits-1", trials.recorded["digits-1"][0], NASTrialStatus(phase=P.RUNNING, epochs=1)),
        ]
    )
    assert console.progress.trained == 4
    assert console.progress.trials["digits-0"].phase == "paused"
    assert console.progress.remaining_epochs() == 16 - 4


def render(view: LiveView, width: int = 150) -> str:
    screen = RichConsole(record=True, width=width, file=io.StringIO(), color_system=None)
    screen.print(view.render())
    return screen.export_text()


def test_the_live_view_shows_the_trials_the_best_and_the_time_left(tmp_path: Path) -> None:
    spec = asha_spec()
    clock, trials = Clock(), Trials()
    above = RichConsole(record=True, width=150, file=io.StringIO(), color_system=None)
    views: list[LiveView] = []

    def live(progress: Progress) -> LiveView:
        views.append(LiveView(progress, console=above))
        return views[0]

    console = Console("accuracy", 9, plan=Plan.of(spec, "digits"), view=live, reader=trials, clock=clock)
    a, b = candidate(128, 64), candidate(32, activation="gelu", lr=0.02, batch=64)
    trials.add("digits-0", a)
    trials.add("digits-1", b)
    console.segment_started("digits-0", 0)
    console.event(created("digits-0", a))
    console.segment_started("digits-1", 0)
    console.event(created("digits-1", b))
    write_epochs(tmp_path / "1.jsonl", [row(1, 0.875, 0.4)])
    console.epoch_lines("digits-1", tmp_path / "1.jsonl")
    trials.status("digits-1", phase=P.PAUSED, objective_value=0.875, epochs=1)
    console.event(Event("Normal", "TrialPaused", "digits-1", "paused after epoch 1 of 9, accuracy=0.875"))
    console.event(Event("Normal", "TrialPromoted", "digits-1", "continues after epoch 1 to epoch 3"))
    console.segment_started("digits-1", 1)
    write_epochs(tmp_path / "1.jsonl", [row(1, 0.875, 0.4), row(2, 0.9, 0.3)])
    console.epoch_lines("digits-1", tmp_path / "1.jsonl")
    clock.now += 6  # 2 epochs in 6 s
    status = NASExperimentStatus(
        phase="Running",
        trials=TrialCounts(created=2, running=2),
        best=BestTrial(trial="digits-1", objective_value=0.875, candidate=b),
    )
    console.status(status)
    text = render(views[0])
    lines = text.splitlines()
    # The header: trials so far, elapsed, and the budget left (16 planned - 2 trained) at 1/3 epoch a second.
    assert lines[0] == "digits  random + asha  trials 2/6  elapsed 0:06  ~0:42 left"
    assert lines[-1] == "14 epochs to go at 0.33/s (budget: asha: about 16 epochs over 6 trials)"
    row0 = next(line for line in lines if line.startswith("digits-0"))
    row1 = next(line for line in lines if line.startswith("digits-1"))
    assert "dense 128-64 relu, adam lr=0.0064 bs=32" in row0
    assert row0.split()[-3:] == ["0/9", ">1", "running"]  # no epoch yet; it pauses at the first rung
    assert "dense 32 gelu, adam lr=0.02 bs=64" in row1
    assert row1.split()[-4:] == ["2/9", ">3", "0.9000", "running"]
    assert "best digits-1 accuracy=0.8750  dense 32 gelu, adam lr=0.02 bs=64" in text
    assert "running 2  pending 0  paused 0  succeeded 0  failed 0  stopped 0" in text
    # Above the live display: what the table cannot keep, with the why (new trials are rows only).
    printed = above.export_text()
    assert "digits-1 paused after epoch 1 of 9, accuracy=0.875 (asha rung 1 of 2)" in printed
    assert "digits-1 promoted: continues after epoch 1 to epoch 3" in printed
    assert "started" not in printed
    console.summary(status.model_copy(update={"phase": "Succeeded"}))
    assert "experiment digits Succeeded after 0:06" in above.export_text()
    assert views[0]._live is None  # the terminal is released


def test_the_live_table_keeps_the_running_trials_and_the_most_recent_others() -> None:
    clock = Clock()
    progress = Progress(Plan("accuracy", 3, "exp", trials=20), clock)
    for i in range(8):
        clock.now += 1
        trial = progress.segment(f"exp-{i}", 0, None)
        trial.phase = "running" if i in (0, 5) else "succeeded"
    view = LiveView(progress, console=RichConsole(file=io.StringIO()), rows=4)
    assert [t.name for t in view.shown()] == ["exp-0", "exp-5", "exp-6", "exp-7"]
    assert "4 more trials not shown" in render(view)


@pytest.mark.parametrize(
    ("cand", "expected"),
    [
        (candidate(256, 32, 32), "dense 256-32-32 relu, adam lr=0.0064 bs=32"),
        (candidate(8, lr=0.000123, batch=128), "dense 8 relu, adam lr=0.00012 bs=128"),
    ],
)
def test_a_candidate_in_short(cand: Candidate, expected: str) -> None:
    assert short(cand) == expected


def test_mixed_layer_types_and_activations_in_short() -> None:
    cand = Candidate.model_validate(
        {
            "architecture": {
                "layers": [
                    {"type": "conv2d", "units": 16, "activation": "relu"},
                    {"type": "dense", "units": 64, "activation": "tanh"},
                ]
            },
            "hyperparameters": {"learningRate": 0.01, "optimizer": "sgd", "batchSize": 64},
        }
    )
    assert short(cand) == "conv2d16-dense64 relu/tanh, sgd lr=0.01 bs=64"


@pytest.mark.parametrize(("metric", "leader"), [("accuracy", "digits-1"), ("loss", "digits-0")])
def test_before_any_trial_finishes_the_best_so_far_is_the_leading_one(metric: str, leader: str) -> None:
    progress = Progress(Plan.of(asha_spec(metric), "digits"))  # loss: the lower the better
    for name, value in (("digits-0", 0.25), ("digits-1", 0.75), ("digits-2", 0.1)):
        progress.segment(name, 0, None)
        progress.epoch(name, {"epoch": 1, metric: value})
        progress.trials[name].phase = "failed" if name == "digits-2" else "paused"
    text = render(LiveView(progress, console=RichConsole(file=io.StringIO())))
    value = progress.trials[leader].objective
    assert f"best so far {leader} {metric}={value:.4f} (paused at epoch 1/9)" in text


def test_in_a_narrow_terminal_only_the_candidate_is_cut() -> None:
    progress = Progress(Plan("accuracy", 15, "digits", trials=6))
    trial = progress.segment("digits-10", 0, None)
    trial.candidate = short(candidate(256, 256, 128, 64, activation="gelu", lr=0.000123, batch=128))
    progress.epoch("digits-10", {"epoch": 3, "accuracy": 0.91234})
    trial.phase = "succeeded"
    view = LiveView(progress, console=RichConsole(width=72, file=io.StringIO()))
    line = next(line for line in render(view, width=72).splitlines() if line.startswith("digits-"))
    assert len(line.rstrip()) <= 72
    assert line.split()[0] == "digits-10" and line.split()[-3:] == ["3/15", "0.9123", "succeeded"]
    assert "dense 256-256-128-64 ge…" in line
