"""`kubenas report` on synthetic run directories (no training): figures, analysis, page, command."""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kubenas.api.status import TrialPhase
from kubenas.cli import main
from kubenas.inspect import analysis
from kubenas.inspect.report import REPORT_FILE, write_report
from kubenas.inspect.rundata import ExperimentData, load_run_dir

from .png import assert_sensible_png, png_size
from .synthetic import MODES, write_run_dir

COMMON = {"best_so_far", "learning_curves", "parallel_coordinates", "importance", "costs"}
EXPECTED = {
    "random": COMMON,
    "asha": COMMON,
    "pbt": (COMMON - {"importance"}) | {"lineage"},
    "nsga2": COMMON | {"pareto_front"},
}
TRIALS = 40


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {mode: write_run_dir(root, TRIALS, mode, seed=1, name=mode) for mode in MODES}


@pytest.fixture(scope="module")
def reports(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    return {mode: write_report(load_run_dir(path), root / mode) for mode, path in runs.items()}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_draws_its_figures_as_sensible_pngs(reports: dict[str, Path], mode: str) -> None:
    out = reports[mode].parent
    assert {p.stem for p in out.glob("*.png")} == EXPECTED[mode]
    for png in out.glob("*.png"):
        assert_sensible_png(png)


@pytest.mark.parametrize("mode", MODES)
def test_the_page_embeds_every_figure_and_references_nothing_outside(
    reports: dict[str, Path], mode: str
) -> None:
    page = reports[mode].read_text()
    sources = re.findall(r'<img class="figure" id="([a-z_]+)" alt="[^"]*" src="([^"]*)"', page)
    assert {name for name, _ in sources} == EXPECTED[mode]
    for name, src in sources:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :]) == (reports[mode].parent / f"{name}.png").read_bytes()
    assert len(re.findall(r"<img\b", page)) == len(sources)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_best_so_far_counts_each_trials_own_epochs_and_only_improves(runs: dict[str, Path]) -> None:
    for mode in MODES:
        data = load_run_dir(runs[mode])
        progress = analysis.best_so_far(data)
        assert [p.epochs_spent for p in progress] == sorted(p.epochs_spent for p in progress)
        assert progress[-1].epochs_spent == sum(t.own_epochs for t in data.trials)
        bests = [p.best for p in progress if p.best is not None]
        assert bests == sorted(bests) and bests[-1] == max(
            t.status.objective_value for t in data.trials if t.status.objective_value is not None
        )
        seconds = [p.seconds for p in progress]
        assert all(s is not None and s >= 0 for s in seconds)
    # PBT members train 2 epochs each, however many they inherit from the checkpoint they continue.
    pbt = load_run_dir(runs["pbt"])
    assert analysis.best_so_far(pbt)[-1].epochs_spent == 2 * TRIALS
    for trial in pbt.trials:
        assert trial.inherited_epochs == 2 * (trial.spec.index // 4)
        assert len(trial.epochs) == trial.inherited_epochs + 2


def test_asha_marks_promotions_at_rungs_and_where_trials_ended(runs: dict[str, Path]) -> None:
    data = load_run_dir(runs["asha"])
    by_epochs = {len(t.epochs): t for t in data.trials if t.status.phase is not TrialPhase.FAILED}
    assert [(m.epoch, m.kind) for m in analysis.marks(data, by_epochs[9])] == [
        (1, "promoted"),
        (3, "promoted"),
        (9, "succeeded"),
    ]
    assert [(m.epoch, m.kind) for m in analysis.marks(data, by_epochs[3])] == [
        (1, "promoted"),
        (3, "stopped"),
    ]
    assert [(m.epoch, m.kind) for m in analysis.marks(data, by_epochs[1])] == [(1, "stopped")]
    # PBT: a member whose checkpoint the next generation continued is marked so, not as stopped.
    pbt = load_run_dir(runs["pbt"].parent / "pbt")
    parents = {t.spec.start_from for t in pbt.trials}
    for trial in pbt.trials:
        kinds = [m.kind for m in analysis.marks(pbt, trial)]
        assert kinds == (["continued"] if trial.name in parents else [trial.status.phase.lower()])


def _with_metrics(data: ExperimentData, values: dict[str, dict[str, float]]) -> ExperimentData:
    """The first trials of data, succeeded, with these metrics (and objective accuracy)."""
    trials = []
    for trial, (name, metrics) in zip(data.trials, values.items(), strict=False):
        status = trial.status.model_copy(
            update={"phase": TrialPhase.SUCCEEDED, "metrics": metrics, "objective_value": metrics["accuracy"]}
        )
        trials.append(dataclasses.replace(trial, name=name, status=status))
    return dataclasses.replace(data, trials=trials)


def test_the_pareto_front_takes_each_objectives_direction(runs: dict[str, Path]) -> None:
    data = load_run_dir(runs["nsga2"])
    goals = analysis.pareto_goals(data)
    assert [(g.metric, g.sign) for g in goals] == [("accuracy", 1.0), ("trainingSeconds", -1.0)]
    points = {
        "a": {"accuracy": 0.9, "trainingSeconds": 10.0},
        "b": {"accuracy": 0.8, "trainingSeconds": 5.0},
        "c": {"accuracy": 0.85, "trainingSeconds": 20.0},  # a is more accurate and faster
        "d": {"accuracy": 0.9, "trainingSeconds": 12.0},  # as accurate as a, slower
        "e": {"accuracy": 0.95, "trainingSeconds": 30.0},
    }
    front = {p.trial for p in analysis.pareto_points(_with_metrics(data, points), goals) if p.front}
    assert front == {"a", "b", "e"}
    assert analysis.pareto_goals(load_run_dir(runs["random"])) == []


def test_importance_ranks_the_parameter_the_objective_depends_on(runs: dict[str, Path]) -> None:
    data = load_run_dir(runs["random"])
    trials = []
    for trial in data.trials:
        lr = trial.spec.candidate.hyperparameters.learning_rate
        value = 1.0 - abs(math.log10(lr) + 2.5) / 3  # best at 10^-2.5, nothing else matters
        status = trial.status.model_copy(update={"phase": TrialPhase.SUCCEEDED, "objective_value": value})
        trials.append(dataclasses.replace(trial, status=status))
    result = analysis.importance(dataclasses.replace(data, trials=trials))
    assert result.trials == TRIALS and "PedAnova" in result.evaluator
    assert max(result.values, key=lambda k: result.values[k]) == "learningRate", result.values
    assert result.values["learningRate"] > 0.5
    assert math.isclose(sum(result.values.values()), 1.0, rel_tol=1e-6)


def test_importance_is_skipped_with_a_note_below_three_trials(runs: dict[str, Path], tmp_path: Path) -> None:
    data = load_run_dir(runs["random"])
    few = dataclasses.replace(
        data, trials=[t for t in data.trials if t.status.phase is TrialPhase.SUCCEEDED][:2]
    )
    result = analysis.importance(few)
    assert result.values == {} and result.note == "not computed: 2 succeeded trial(s), at least 3 are needed"
    page = write_report(few, tmp_path).read_text()
    assert f'<p class="note">{result.note}</p>' in page
    assert not (tmp_path / "importance.png").exists()
    # PBT's succeeded members share one candidate: nothing to rank.
    pbt = analysis.importance(load_run_dir(runs["pbt"]))
    assert pbt.values == {} and "no parameter takes different values" in pbt.note


def test_the_cost_table_shows_what_trials_reported(reports: dict[str, Path], runs: dict[str, Path]) -> None:
    data = load_run_dir(runs["random"])
    costs = {c.trial: c for c in analysis.costs(data)}
    succeeded = next(t for t in data.trials if t.status.phase is TrialPhase.SUCCEEDED)
    cost = costs[succeeded.name]
    assert cost.metrics["parameters"] == succeeded.status.metrics["parameters"]
    assert cost.metrics["peakMemoryBytes"] == succeeded.status.metrics["peakMemoryBytes"] / 2**20
    assert cost.training_seconds == pytest.approx(sum(r["epochSeconds"] for r in succeeded.epochs))
    assert cost.wall_seconds is not None and cost.wall_seconds > 0
    page = reports["random"].read_text()
    for heading in (
        "training s",
        "parameters",
        "FLOPs",
        "peak memory (MiB)",
        "GPU util. (%)",
        "GPU power (W)",
    ):
        assert f"<th>{heading}</th>" in page


def test_lineage_lists_every_trial_with_its_parent_and_note(
    runs: dict[str, Path], reports: dict[str, Path]
) -> None:
    data = load_run_dir(runs["pbt"])
    segments = analysis.lineage(data)
    assert [s.trial for s in segments] == [t.name for t in data.trials]
    for segment, trial in zip(segments, data.trials, strict=True):
        assert segment.parent == trial.spec.start_from
        assert (segment.first_epoch, segment.last_epoch) == (
            2 * (trial.spec.index // 4) + 1,
            len(trial.epochs),
        )
    page = reports["pbt"].read_text()
    assert page.count("<pre>PBT generation ") == TRIALS - 4
    assert analysis.lineage(load_run_dir(runs["random"])) == []


def test_the_command_writes_the_report_and_refuses_what_is_not_a_run(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(runs["asha"]), "--output", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'out' / REPORT_FILE}"
    assert {p.stem for p in (tmp_path / "out").glob("*.png")} == EXPECTED["asha"]
    assert png_size(tmp_path / "out" / "learning_curves.png") == (1100, 500)
    assert main(["report", str(tmp_path)]) == 1
    assert "not a kubenas run directory (no experiment.yaml)" in capsys.readouterr().err


def test_the_operator_never_imports_matplotlib() -> None:
    """The data loading and the analysis are import-cheap; only drawing a report pulls matplotlib in."""
    code = (
        "import sys, kubenas.cli, kubenas.inspect.rundata, kubenas.inspect.analysis\n"
        "assert 'matplotlib' not in sys.modules and 'torch' not in sys.modules, 'imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
