"""The Grafana dashboard: the committed JSON is current, every panel queries only the metrics kubenas
exports (the contract below), and its variables are there. Its queries run against a real Prometheus in
tests/services/test_dashboard_queries.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubenas.dashboard import PANEL_QUERIES, VARIABLES, fill_variables, render

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "helm/kubenas/dashboards/kubenas.json"

# The contract with the trainer (pushed through the Pushgateway, labels namespace/experiment/trial) and the
# operator (its /metrics, scrape job kubenas-operator).
TRIAL_METRICS = {
    "kubenas_trial_metric",
    "kubenas_trial_latest",
    "kubenas_trial_epochs",
    "kubenas_trial_epoch_end_timestamp_seconds",
}
OPERATOR_METRICS = {
    "kubenas_experiment_trials",
    "kubenas_experiment_best_objective",
    "kubenas_experiment_objective",
    "kubenas_jobs_created_total",
    "kubenas_errors_total",
    "up",
}
HISTOGRAMS = {
    "kubenas_reconcile_duration_seconds",
    "kubenas_strategy_ask_duration_seconds",
    "kubenas_next_job_delay_seconds",
    "kubenas_metrics_delay_seconds",
}
PROCESS = re.compile(r"process_\w+")  # prometheus-client's defaults
TRIAL_METRIC_LABELS = {
    "accuracy",
    "loss",
    "f1",
    "mse",
    "trainLoss",
    "learningRate",
    "epochSeconds",
    "samplesPerSecond",
    "trainingSeconds",
    "gpuUtilization",
    "gpuPowerWatts",
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left"}


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, keywords or labels)."""
    text = _STRING.sub('""', promql)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name not in _KEYWORDS}


def known(name: str) -> bool:
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return name in TRIAL_METRICS | OPERATOR_METRICS or base in HISTOGRAMS or bool(PROCESS.fullmatch(name))


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    pytest.importorskip("grafana_foundation_sdk")
    from kubenas.dashboard import build_dashboard

    return build_dashboard()


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, strategy) (rate(kubenas_x_bucket{a=~"b.c"}[$__rate_interval])))'
        ' + on (namespace) group_left () time() - max(up{job="kubenas-operator"} offset 5m) and other_metric'
    )
    assert metric_names(expr) == {"kubenas_x_bucket", "up", "other_metric"}


def test_committed_json_is_current(model: dict[str, Any]) -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(model), (
        "stale: run `python -m kubenas.dashboard --output helm/kubenas/dashboards/kubenas.json`"
    )


def test_every_panel_has_a_query_and_ids_are_unique(model: dict[str, Any]) -> None:
    found = {p["title"]: tuple(t["expr"] for t in p["targets"]) for p in panels(model)}
    assert found == PANEL_QUERIES
    assert all(exprs and all(e.strip() for e in exprs) for exprs in found.values())
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(model):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


@pytest.mark.parametrize("title", sorted(PANEL_QUERIES))
def test_panel_queries_only_the_contract(title: str) -> None:
    for expr in PANEL_QUERIES[title]:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert all(known(name) for name in names), f"{title}: unknown metric in {sorted(names)}"
        assert set(re.findall(r'\bmetric="(\w+)"', expr)) <= TRIAL_METRIC_LABELS
        if names & (
            TRIAL_METRICS
            | {
                "kubenas_experiment_trials",
                "kubenas_experiment_best_objective",
                "kubenas_experiment_objective",
            }
        ):
            # An experiment's own series follow the dashboard's selection.
            assert expr.count('namespace=~"$namespace"') == expr.count('experiment=~"$experiment"') >= 1


def test_variables(model: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert set(variables) == {"datasource", "namespace", "experiment"}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    for name in ("namespace", "experiment"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert (variable["multi"], variable["includeAll"], variable["allValue"]) == (True, True, ".*")
        assert variable["datasource"]["uid"] == "${datasource}"
        selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]).groups()  # type: ignore[union-attr]
        assert label == name
        assert metric_names(selector) == {"kubenas_experiment_trials"}
    assert [v.name for v in VARIABLES] == ["namespace", "experiment"]


def test_fill_variables() -> None:
    expr = 'rate(x{namespace=~"$namespace", experiment=~"${experiment}"}[$__rate_interval])'
    assert fill_variables(expr) == 'rate(x{namespace=~".*", experiment=~".*"}[1m])'
    assert fill_variables(expr, {"namespace": "team-a"}).startswith('rate(x{namespace=~"team-a"')
    for exprs in PANEL_QUERIES.values():
        assert all("$" not in fill_variables(e) for e in exprs)


def test_generator_writes_and_checks(tmp_path: Path) -> None:
    pytest.importorskip("grafana_foundation_sdk")
    from kubenas.dashboard.__main__ import main

    path = tmp_path / "dashboards" / "kubenas.json"
    assert main(["--output", str(path), "--check"]) == 1  # missing
    assert main(["--output", str(path)]) == 0
    assert json.loads(path.read_text(encoding="utf-8"))["uid"] == "kubenas"
    assert main(["--output", str(path), "--check"]) == 0
    path.write_text(path.read_text(encoding="utf-8").replace("kubenas", "kubenas2", 1), encoding="utf-8")
    assert main(["--output", str(path), "--check"]) == 1


def test_imports_without_the_sdk() -> None:
    """The operator image has no grafana-foundation-sdk: the package (and its queries) still import."""
    code = (
        "import sys; sys.modules['grafana_foundation_sdk'] = None\n"
        "import kubenas.dashboard as d\n"
        "assert d.PANEL_QUERIES\n"
        "try:\n    d.build_dashboard()\nexcept ImportError:\n    print('no sdk')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "operator")},
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "no sdk"), done.stderr
