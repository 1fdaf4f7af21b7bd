"""`kubenas status` rendering: sort orders, the best trial, JSON/YAML round trips, the cluster loader's
objects -> ExperimentData, on synthetic experiments."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubenas.api.errors import SpecError
from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus
from kubenas.engine.events import describe
from kubenas.inspect.cluster import ClusterReadError, connect, experiment_data
from kubenas.inspect.rundata import ExperimentData, TrialData
from kubenas.inspect.status import (
    SORT_KEYS,
    format_seconds,
    phase_condition,
    render_json,
    render_text,
    render_yaml,
    show,
    sort_trials,
    trial_table,
)

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


def candidate(units: int) -> dict[str, Any]:
    return {
        "architecture": {"layers": [{"type": "dense", "units": units, "activation": "relu"}]},
        "hyperparameters": {"learningRate": 0.01, "optimizer": "adam", "batchSize": 32},
    }


def trial(
    index: int,
    phase: str,
    value: float | None = None,
    epochs: int | None = None,
    rows: int = 0,
    start: str | None = None,
    end: str | None = None,
    **status: Any,
) -> TrialData:
    name = f"exp-{index}"
    spec = NASTrialSpec.model_validate(
        {"experiment": "exp", "index": index, "candidateKey": f"k{index}", "seed": index}
        | {"candidate": candidate(16 * (index + 1))}
    )
    fields: dict[str, Any] = {"phase": phase, "objectiveValue": value, "epochs": epochs}
    fields |= {"startTime": start, "completionTime": end, **status}
    trial_status = NASTrialStatus.model_validate({k: v for k, v in fields.items() if v is not None})
    reported = [{"epoch": float(e), "accuracy": 0.1 * e} for e in range(1, rows + 1)]
    return TrialData(name, spec, trial_status, reported)


def experiment(trials: list[TrialData], objective: dict[str, Any], **status: Any) -> ExperimentData:
    spec = NASExperimentSpec.model_validate({"objective": objective, "training": {"epochs": 5}})
    scored = [t for t in trials if t.status.objective_value is not None]
    best = None
    if scored:
        pick = (max if spec.objective.sign > 0 else min)(scored, key=lambda t: t.status.objective_value or 0)
        best = {
            "trial": pick.name,
            "objectiveValue": pick.status.objective_value,
            "candidate": pick.spec.candidate.to_dict(),
            "metrics": pick.status.metrics,
        }
    doc = {"phase": "Running", "progress": f"0/{len(trials)}", "best": best, **status}
    return ExperimentData(
        "exp",
        spec,
        NASExperimentStatus.model_validate({k: v for k, v in doc.items() if v is not None}),
        trials,
    )


def mixed(objective: dict[str, Any]) -> ExperimentData:
    """Five trials in every state: two scored, one running (metrics rows, no status epochs yet), one
    failed, one pending."""
    return experiment(
        [
            trial(0, "Succeeded", 0.80, 5, 5, "2026-01-01T00:00:00Z", "2026-01-01T00:02:00Z"),
            trial(
                1,
                "Failed",
                start="2026-01-01T00:00:00Z",
                end="2026-01-01T00:00:30Z",
                reason="TrainingFailed",
                message="loss diverged\nat epoch 1",
            ),
            trial(2, "Succeeded", 0.95, 5, 5, "2026-01-01T00:01:00Z", "2026-01-01T00:04:00Z"),
            trial(3, "Running", None, None, 3, "2026-01-01T00:05:00Z"),
            trial(4, "Pending"),
        ],
        objective,
    )


def names(trials: list[TrialData]) -> list[str]:
    return [t.name for t in trials]


def test_objective_sorts_best_first_in_its_direction_and_unscored_trials_last() -> None:
    # exp-2 0.95 and exp-0 0.80 finished; running exp-3 has reported 0.1, 0.2, 0.3 so far (its best so
    # far counts: 0.3 when maximising, 0.1 when minimising); exp-1 failed and exp-4 pending have none.
    maximise = mixed({"metric": "accuracy"})
    assert names(sort_trials(maximise, now=NOW)) == ["exp-2", "exp-0", "exp-3", "exp-1", "exp-4"]
    minimise = mixed({"metric": "accuracy", "direction": "minimize"})
    assert names(sort_trials(minimise, now=NOW)) == ["exp-3", "exp-0", "exp-2", "exp-1", "exp-4"]
    reverse = sort_trials(maximise, reverse=True, now=NOW)
    assert names(reverse) == ["exp-3", "exp-0", "exp-2", "exp-1", "exp-4"]  # unscored stay last
    running = {row.cells[1]: row.cells[3] for row in trial_table(minimise, minimise.trials, NOW).rows}
    assert running["exp-3"] == "0.1" and running["exp-1"] == running["exp-4"] == "-"


def test_a_metric_sorts_in_its_own_direction_whatever_the_objective() -> None:
    runs = [
        trial(i, "Succeeded", acc, 5, metrics={"accuracy": acc, "loss": loss})
        for i, (acc, loss) in enumerate([(0.9, 0.5), (0.7, 0.2), (0.8, 0.9)])
    ]
    # A running trial's best so far: its lowest loss reported (0.3); it has reported no accuracy.
    running = replace(trial(4, "Running"), epochs=[{"epoch": 1, "loss": 0.6}, {"epoch": 2, "loss": 0.3}])
    data = experiment(
        [*runs, trial(3, "Succeeded", 0.6, 5, metrics={"accuracy": 0.6}), running], {"metric": "accuracy"}
    )
    by_loss = ["exp-1", "exp-4", "exp-0", "exp-2", "exp-3"]  # lowest first, exp-3 reported none
    assert names(sort_trials(data, "loss", now=NOW)) == by_loss
    assert names(sort_trials(data, "accuracy", now=NOW)) == ["exp-0", "exp-2", "exp-1", "exp-3", "exp-4"]


def test_name_phase_epochs_started_and_duration_orders() -> None:
    data = mixed({"metric": "accuracy"})
    many = experiment([trial(i, "Pending") for i in (10, 2, 1)], {"metric": "accuracy"})
    assert names(sort_trials(many, "name", now=NOW)) == ["exp-1", "exp-2", "exp-10"]  # as numbers read
    assert names(sort_trials(data, "phase", now=NOW)) == ["exp-3", "exp-4", "exp-0", "exp-2", "exp-1"]
    # Running exp-3 has no epochs in its status yet: its 3 metrics rows count.
    assert names(sort_trials(data, "epochs", now=NOW)) == ["exp-0", "exp-2", "exp-3", "exp-1", "exp-4"]
    assert names(sort_trials(data, "started", now=NOW)) == ["exp-0", "exp-1", "exp-2", "exp-3", "exp-4"]
    # exp-3 has run for 5 minutes at NOW (longest), exp-2 took 3, exp-0 2, exp-1 30 s; exp-4 never ran.
    assert names(sort_trials(data, "duration", now=NOW)) == ["exp-3", "exp-2", "exp-0", "exp-1", "exp-4"]
    with pytest.raises(ValueError, match="unknown sort key 'speed'"):
        sort_trials(data, "speed")
    assert {"objective", "name", "phase", "epochs", "loss"} <= set(SORT_KEYS)


def test_table_marks_the_best_and_shows_each_trials_cells() -> None:
    data = mixed({"metric": "accuracy"})
    table = trial_table(data, sort_trials(data, now=NOW), NOW)
    assert [c.heading for c in table.columns] == [
        "",
        "TRIAL",
        "PHASE",
        "ACCURACY",
        "EPOCHS",
        "TIME",
        "CANDIDATE",
        "MESSAGE",
    ]
    rows = {row.cells[1]: row for row in table.rows}
    assert [row.cells[1] for row in table.rows if row.best] == ["exp-2"]
    assert rows["exp-2"].cells[0] == "*" and rows["exp-0"].cells[0] == ""
    assert rows["exp-2"].cells[2:6] == ("Succeeded", "0.95", "5/5", "3m00s")
    assert rows["exp-3"].cells[3:6] == ("0.3", "3/5", "5m00s")  # running: rows so far, time until NOW
    assert rows["exp-4"].cells[3:6] == ("-", "0/5", "-")
    assert rows["exp-1"].cells[7] == "TrainingFailed: loss diverged"  # reason, then the first line
    assert rows["exp-2"].cells[6] == describe(data.trials[2].spec.candidate)
    quiet = experiment([trial(0, "Succeeded", 0.5, 5)], {"metric": "accuracy"})
    assert [c.heading for c in trial_table(quiet, quiet.trials, NOW).columns][-1] == "CANDIDATE"


def test_text_view_tells_phase_reason_and_the_best_trial() -> None:
    data = mixed({"metric": "accuracy", "target": 0.99})
    conditions = [
        {"type": "Running", "status": "True", "reason": "TrialsRunning", "message": "1 running"},
        {"type": "MetricsAvailable", "status": "False", "reason": "PrometheusUnreachable"},
    ]
    data = ExperimentData(
        data.name,
        data.spec,
        data.status.model_copy(
            update={"conditions": NASExperimentStatus.model_validate({"conditions": conditions}).conditions}
        ),
        data.trials,
    )
    text = render_text(data, sort_trials(data, now=NOW), NOW)
    lines = text.splitlines()
    assert lines[0].split() == ["experiment", "exp:", "Running", "(TrialsRunning)"]
    assert lines[1].strip() == "1 running"
    assert "objective   accuracy (maximize, target 0.99)" in lines
    assert "condition   MetricsAvailable=False PrometheusUnreachable" in lines
    best_line = next(line for line in lines if line.startswith("best"))
    assert best_line.split()[1:] == ["exp-2", "accuracy=0.95"]
    assert f"candidate   {describe(data.trials[2].spec.candidate)}" in lines
    table = lines[lines.index("") + 1 :]
    assert table[0].split()[:2] == ["TRIAL", "PHASE"]
    assert table[1].startswith("*  exp-2  ") and table[2].startswith("   exp-0  ")


def test_pending_experiment_is_explained_by_its_running_condition() -> None:
    data = experiment([], {"metric": "loss"}, phase="Pending")
    running = {"type": "Running", "status": "False", "reason": "CreateFailure", "message": "Job exp-0: quota"}
    status = NASExperimentStatus.model_validate({"phase": "Pending", "conditions": [running]})
    why = phase_condition(status)
    assert why is not None and why.reason == "CreateFailure"
    text = render_text(ExperimentData("exp", data.spec, status, []), [], NOW)
    assert "exp: Pending (CreateFailure)" in text and "Job exp-0: quota" in text
    assert "best        none yet" in text and text.rstrip().endswith("no trials yet")


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_machine_readable_output_round_trips_the_status_and_trials_in_sort_order(output: str) -> None:
    data = mixed({"metric": "loss"})
    ordered = sort_trials(data, now=NOW)
    text = render_json(data, ordered) if output == "json" else render_yaml(data, ordered)
    doc = json.loads(text) if output == "json" else yaml.safe_load(text)
    assert doc["name"] == "exp" and doc["objective"] == {"metric": "loss", "direction": "minimize"}
    assert NASExperimentStatus.model_validate(doc["status"]) == data.status
    assert doc["status"]["best"]["trial"] == "exp-0"  # the lowest loss
    assert (
        [t["name"] for t in doc["trials"]] == names(ordered) == ["exp-0", "exp-2", "exp-1", "exp-3", "exp-4"]
    )
    by_name = {t.name: t for t in data.trials}
    for entry in doc["trials"]:
        assert NASTrialSpec.model_validate(entry["spec"]) == by_name[entry["name"]].spec
        assert NASTrialStatus.model_validate(entry["status"]) == by_name[entry["name"]].status


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_show_uses_plain_text_off_a_terminal_and_rich_on_one() -> None:
    data = mixed({"metric": "accuracy"})
    piped = io.StringIO()
    show(data, "table", "name", out=piped, now=NOW)
    assert piped.getvalue() == render_text(data, sort_trials(data, "name", now=NOW), NOW)
    terminal = Terminal()
    show(data, "table", out=terminal, now=NOW)
    shown = terminal.getvalue()
    assert "\x1b[" in shown  # styled
    table = shown[shown.index("TRIAL") :]
    assert table.index("exp-2") < table.index("exp-0") < table.index("exp-1") < table.index("exp-4")
    as_json = io.StringIO()
    show(data, "json", "phase", reverse=True, out=as_json, now=NOW)  # ties (Succeeded) stay by index
    assert [t["name"] for t in json.loads(as_json.getvalue())["trials"]][:3] == ["exp-1", "exp-0", "exp-2"]
    with pytest.raises(ValueError, match="unknown output 'xml'"):
        show(data, "xml", out=io.StringIO(), now=NOW)


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0.4, 59.4, 60, 3599, 3600, 7325)] == [
        "0s",
        "59s",
        "1m00s",
        "59m59s",
        "1h00m",
        "2h02m",
    ]


def cluster_object(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 1}
    return {
        "apiVersion": "kubenas.dev/v1alpha1",
        "kind": kind,
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


def nastrial(index: int, status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    fields = {"experiment": "exp", "index": index, "candidateKey": "k", "seed": 1, "candidate": candidate(8)}
    return cluster_object("NASTrial", f"exp-{index}", fields | spec, status)


def test_cluster_objects_load_with_their_curves_as_epoch_rows() -> None:
    nasx = cluster_object(
        "NASExperiment",
        "exp",
        {"objective": {"metric": "loss"}, "training": {"epochs": 4}},
        {"phase": "Running", "progress": "0/2"},
    )
    parent = nastrial(0, {"phase": "Paused", "epochs": 2, "curve": [0.9, 0.5]})
    child = nastrial(1, {"phase": "Running", "epochs": 3, "curve": [0.9, 0.5, 0.4]}, startFrom="exp-0")
    data = experiment_data(nasx, [child, nastrial(2, {}), parent])
    assert data.name == "exp" and data.spec.objective.metric == "loss" and data.status.progress == "0/2"
    assert [t.name for t in data.trials] == ["exp-0", "exp-1", "exp-2"]  # by index
    assert data.trials[1].epochs == [
        {"epoch": 1, "loss": 0.9},
        {"epoch": 2, "loss": 0.5},
        {"epoch": 3, "loss": 0.4},
    ]
    assert data.trials[1].inherited_epochs == 2 and data.trials[1].own_epochs == 1  # continued exp-0
    assert data.trials[2].status.phase == "Pending" and data.trials[2].epochs == []


def test_cluster_objects_that_do_not_parse_are_named() -> None:
    nasx = cluster_object("NASExperiment", "exp", {"budget": {"maxTrials": 0}}, {})
    with pytest.raises(SpecError) as bad_spec:
        experiment_data(nasx, [])
    assert bad_spec.value.problems[0].startswith("spec.budget.maxTrials")
    good = cluster_object("NASExperiment", "exp", {}, {})
    with pytest.raises(SpecError) as bad_trial:
        experiment_data(good, [nastrial(0, {"phase": "Exploded"})])
    assert bad_trial.value.problems[0].startswith("NASTrial exp-0: phase")


def test_connect_takes_the_contexts_namespace_and_names_an_unreadable_kubeconfig(tmp_path: Path) -> None:
    def kubeconfig(namespace: str | None) -> str:
        context = {"cluster": "c", "user": "u"} | ({"namespace": namespace} if namespace else {})
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": context}],
            "current-context": "x",
        }
        path = tmp_path / f"config-{namespace}"
        path.write_text(yaml.safe_dump(doc))
        return str(path)

    api_client, namespace = connect(kubeconfig("team"))
    assert namespace == "team" and api_client.configuration.host == "https://127.0.0.1:6443"
    assert connect(kubeconfig(None))[1] == "default"
    (tmp_path / "broken").write_text("clusters: [\n")
    for path in (tmp_path / "broken", tmp_path / "absent", tmp_path):
        with pytest.raises(ClusterReadError, match=f"^kubeconfig {re.escape(str(path))}: "):
            connect(str(path))
