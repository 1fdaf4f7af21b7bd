"""`kubenas report` on real finished local runs of each strategy family (tiny runs on digits)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kubenas.api.status import TrialPhase
from kubenas.inspect import analysis
from kubenas.inspect.rundata import ExperimentData, load_run_dir

from .browser import render
from .png import assert_sensible_png
from .runs import FAMILIES, manifest
from .test_browser import figures_loaded

pytestmark = pytest.mark.slow


def kubenas(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "kubenas.cli", *args],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[ExperimentData, Path]]:
    """One real run and its report per family, made the first time a test asks for it."""
    root = tmp_path_factory.mktemp("families")
    done: dict[str, tuple[ExperimentData, Path]] = {}

    def get(family: str) -> tuple[ExperimentData, Path]:
        if family not in done:
            path = root / f"{family}.yaml"
            path.write_text(yaml.safe_dump(manifest(family)))
            kubenas("run", str(path), "--output", str(root / "runs"))
            run_dir = root / "runs" / family
            out = kubenas("report", str(run_dir))
            page = run_dir / "report" / "report.html"
            assert out.strip().splitlines()[-1] == f"report: {page}"
            done[family] = (load_run_dir(run_dir), page)
        return done[family]

    return get


def figure_names(page: Path) -> set[str]:
    return {p.stem for p in page.parent.glob("*.png")}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_report_of_each_family_renders_its_figures(
    reported: Callable[[str], tuple[ExperimentData, Path]], family: str, tmp_path: Path
) -> None:
    data, page = reported(family)
    assert data.status.phase == "Succeeded"
    names = figure_names(page)
    assert {"best_so_far", "learning_curves", "parallel_coordinates", "costs"} <= names
    for png in page.parent.glob("*.png"):
        assert_sensible_png(png)
    rendered = render(page, tmp_path / "screenshot.png")
    assert rendered.console == []
    assert figures_loaded(rendered.dom) == len(names)
    assert_sensible_png(tmp_path / "screenshot.png")
    # The best-so-far trace ends at the experiment's best, after every epoch every trial trained itself.
    progress = analysis.best_so_far(data)
    assert data.status.best is not None and progress[-1].best == data.status.best.objective_value
    assert progress[-1].epochs_spent == sum(t.own_epochs for t in data.trials)
    # Importance: a figure from three succeeded trials with differing candidates, else a note saying why.
    html = page.read_text()
    result = analysis.importance(data)
    if result.values:
        assert "importance" in names
    else:
        assert "importance" not in names and f'<p class="note">{result.note}</p>' in html


def test_random_ranks_hyperparameters(reported: Callable[[str], tuple[ExperimentData, Path]]) -> None:
    _, page = reported("random")
    assert "importance" in figure_names(page)  # five different candidates, all trained fully
    assert "<th>parameters</th>" in page.read_text() and "<th>FLOPs</th>" in page.read_text()


def test_asha_shows_its_rungs_pauses_and_promotions(
    reported: Callable[[str], tuple[ExperimentData, Path]],
) -> None:
    data, _ = reported("asha")
    marks = {t.name: [(m.epoch, m.kind) for m in analysis.marks(data, t)] for t in data.trials}
    full = [t for t in data.trials if t.status.phase is TrialPhase.SUCCEEDED]
    assert full and all(len(t.epochs) == 9 for t in full)
    for trial in full:  # the rungs are 1 and 3 epochs (minEpochs 1, reductionFactor 3, 9 epochs)
        assert marks[trial.name] == [(1, "promoted"), (3, "promoted"), (9, "succeeded")]
    stopped = [t for t in data.trials if t.status.phase is TrialPhase.STOPPED]
    assert stopped and all(marks[t.name][-1] == (len(t.epochs), "stopped") for t in stopped)
    assert all(len(t.epochs) in (1, 3) for t in stopped)


@pytest.mark.parametrize("family", ["pbt", "miha"])
def test_lineages_show_who_continued_whom(
    reported: Callable[[str], tuple[ExperimentData, Path]], family: str
) -> None:
    data, page = reported(family)
    assert "lineage" in figure_names(page)
    html = page.read_text()
    continued = [t for t in data.trials if t.spec.start_from]
    assert continued
    for trial in continued:
        parent = data.trial(trial.spec.start_from or "")
        assert parent is not None and trial.inherited_epochs > 0
        assert trial.epochs[: trial.inherited_epochs] == parent.epochs[: trial.inherited_epochs]
        first_line = trial.spec.note.splitlines()[0]
        assert first_line.split()[0] == family.upper()  # "PBT generation ..." / "MIHA ..."
        assert re.search(rf"<td>{re.escape(trial.name)}</td><td>{re.escape(parent.name)}</td>", html)
    assert html.count("<pre>") == len(data.trials)


def test_nsga2_draws_the_pareto_front_the_status_records(
    reported: Callable[[str], tuple[ExperimentData, Path]],
) -> None:
    data, page = reported("nsga2")
    assert "pareto_front" in figure_names(page)
    goals = analysis.pareto_goals(data)
    front = {p.trial for p in analysis.pareto_points(data, goals) if p.front}
    recorded = json.loads((page.parent.parent / "status.json").read_text())
    assert front == {m["trial"] for m in recorded["paretoFront"]}
    assert recorded["paretoFrontSize"] == len(front)
