"""What a report shows, computed from an ExperimentData: plain numbers and rows, no drawing.

Every function here is pure and linear in trials and epochs, except the Pareto front (quadratic in the
trials reporting every objective) and importance(), which builds an optuna study and imports optuna on
first use. figures.py draws the results and report.py tabulates them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kubenas.api.experiment import MetricGoal, Objective
from kubenas.api.status import TrialPhase
from kubenas.engine.fidelity import Fidelity
from kubenas.inspect.rundata import ExperimentData, TrialData
from kubenas.space.encoding import COUNT, CandidateCodec
from kubenas.space.params import Categorical, Integer, Value
from kubenas.strategies.nsga2 import dominates

if TYPE_CHECKING:
    import optuna

# Trials needed before a parameter importance means anything; below it the report says why it has none.
MIN_IMPORTANCE_TRIALS = 3


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp of a status (`...Z`), or None."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def short_name(param: str) -> str:
    """A parameter's name for axes and tables: `hyperparameters.` dropped, layers' kept."""
    return param.removeprefix("hyperparameters.")


def objective(data: ExperimentData) -> Objective:
    return data.spec.objective


def metric_curve(trial: TrialData, metric: str) -> list[tuple[int, float]]:
    """(epoch, value) of the metric over the trial's metrics.jsonl rows that report it."""
    return [(int(row["epoch"]), float(row[metric])) for row in trial.epochs if metric in row]


def own_training_seconds(trial: TrialData) -> float | None:
    """Seconds this trial spent training its own epochs (inherited ones excluded); None if unknown."""
    own = trial.epochs[trial.inherited_epochs :]
    if own and all("epochSeconds" in row for row in own):
        return float(sum(row["epochSeconds"] for row in own))
    seconds = trial.status.metrics.get("trainingSeconds")
    return float(seconds) if seconds is not None and not trial.spec.start_from else None


def wall_seconds(trial: TrialData) -> float | None:
    """From the trial's start to its completion (or last pause), as its status records them."""
    start, end = parse_time(trial.status.start_time), parse_time(trial.status.completion_time)
    return (end - start).total_seconds() if start is not None and end is not None else None


@dataclass(frozen=True)
class Progress:
    """One trial's completion in a best-so-far trace."""

    trial: str
    epochs_spent: int  # cumulative own epochs of every trial completed so far, this one included
    seconds: float | None  # since the experiment started, when the timestamps are known
    value: float | None  # the trial's objective value (None: failed)
    best: float | None  # the best objective value so far


def completion_order(data: ExperimentData) -> list[TrialData]:
    """Trials that completed or paused, by completion time (then index): the order they reported."""
    done = [t for t in data.trials if t.status.completion_time is not None]
    return sorted(done, key=lambda t: (t.status.completion_time or "", t.spec.index))


def best_so_far(data: ExperimentData) -> list[Progress]:
    """The best objective after each trial's completion, against the epochs and the time spent."""
    goal = objective(data)
    start = parse_time(data.status.start_time)
    if start is None:
        times = [parse_time(t.status.start_time) for t in data.trials]
        start = min((t for t in times if t is not None), default=None)
    out: list[Progress] = []
    spent, best = 0, None
    for trial in completion_order(data):
        spent += trial.own_epochs
        value = trial.status.objective_value
        if value is not None and math.isfinite(value) and (best is None or goal.better(value, best)):
            best = value
        end = parse_time(trial.status.completion_time)
        seconds = (end - start).total_seconds() if end is not None and start is not None else None
        out.append(Progress(trial.name, spent, seconds, value, best))
    return out


@dataclass(frozen=True)
class Mark:
    """A scheduling event on a trial's learning curve."""

    epoch: int
    kind: str  # "promoted", "continued", "paused", "stopped", "succeeded", "failed"


def rungs(data: ExperimentData, trial: TrialData) -> list[int]:
    """The ASHA / Hyperband rungs (epochs) of the trial's bracket; [] without such a rule."""
    bracket = Fidelity(data.spec).bracket(trial.spec.index)
    return bracket.rungs if bracket is not None else []


def continued_trials(data: ExperimentData) -> set[str]:
    """The trials whose checkpoints other trials started from."""
    return {t.spec.start_from for t in data.trials if t.spec.start_from}


def marks(data: ExperimentData, trial: TrialData, continued: set[str] | None = None) -> list[Mark]:
    """Where the trial was promoted past a rung, and where it ended: paused, stopped, failed, succeeded,
    or "continued" when another trial started from its checkpoint there (PBT, MIHA). `continued`:
    continued_trials(data), when the caller has it."""
    last = len(trial.epochs)
    out = [Mark(rung, "promoted") for rung in rungs(data, trial) if rung < last]
    if continued is None:
        continued = continued_trials(data)
    if last > 0 and trial.name in continued:
        return [*out, Mark(last, "continued")]
    end = {
        TrialPhase.PAUSED: "paused",
        TrialPhase.STOPPED: "stopped",
        TrialPhase.SUCCEEDED: "succeeded",
        TrialPhase.FAILED: "failed",
    }.get(trial.status.phase)
    if end is not None and last > 0:
        out.append(Mark(last, end))
    return out


@dataclass(frozen=True)
class Column:
    """One axis of the parallel coordinates: a parameter or a summary number, and its values."""

    name: str
    values: list[Value | None]  # one per trial of ParamTable.trials; None: not active for that trial
    choices: tuple[Value, ...] | None = None  # categorical: the axis' ordered labels
    log: bool = False


@dataclass(frozen=True)
class ParamTable:
    trials: list[TrialData]
    objective: list[float]
    columns: list[Column]


def _summary_numbers(trial: TrialData) -> dict[str, float]:
    layers = trial.spec.candidate.architecture.layers
    out = {"layers": float(len(layers)), "total units": float(sum(layer.units for layer in layers))}
    if "parameters" in trial.status.metrics:
        out["parameters"] = float(trial.status.metrics["parameters"])
    return out


def scored_trials(data: ExperimentData) -> list[TrialData]:
    """Trials with a finite objective value, by index."""
    return [
        t
        for t in data.trials
        if t.status.objective_value is not None and math.isfinite(t.status.objective_value)
    ]


def param_table(data: ExperimentData) -> ParamTable:
    """The searched parameters (as the strategies see them) and architecture summary numbers of every
    scored trial, for the parallel coordinates. Parameters with a single value are left out."""
    trials = scored_trials(data)
    codec = CandidateCodec(data.spec.search_space)
    points = [codec.encode(t.spec.candidate) for t in trials]
    columns: list[Column] = []
    for param in codec.space.params:
        values = [point.get(param.name) for point in points]
        if param.name == COUNT or len({v for v in values if v is not None}) < 2:
            continue
        if isinstance(param, Categorical):
            columns.append(Column(short_name(param.name), values, choices=param.choices))
        else:
            log = param.log and not isinstance(param, Integer)
            columns.append(Column(short_name(param.name), values, log=log))
    summaries = [_summary_numbers(t) for t in trials]
    for name in ("layers", "total units", "parameters"):
        numbers: list[Value | None] = [s.get(name) for s in summaries]
        if len({v for v in numbers if v is not None}) >= 2:
            columns.append(Column(name, numbers, log=name == "parameters"))
    scores = [float(t.status.objective_value or 0.0) for t in trials]
    return ParamTable(trials, scores, columns)


@dataclass(frozen=True)
class Importance:
    """Parameter importances (summing to 1), or why there are none."""

    values: dict[str, float]
    trials: int  # trials the study held
    evaluator: str
    note: str = ""


def importance_study(data: ExperimentData) -> tuple[optuna.Study, int]:
    """An optuna study of the succeeded trials whose candidates lie in the search space, and how many
    were left out. Trials hold their points as the strategies encode them, with distributions from the
    space, restricted to the parameters that take two or more values among them (a parameter the
    trials all share explains nothing, and PED-ANOVA would rank it on noise)."""
    import optuna

    from kubenas.strategies.tpe import distribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    codec = CandidateCodec(data.spec.search_space)
    rows: list[tuple[dict[str, Value], float]] = []
    skipped = 0
    for trial in data.trials:
        value = trial.status.objective_value
        if trial.status.phase is not TrialPhase.SUCCEEDED or value is None or not math.isfinite(value):
            continue
        point = codec.encode(trial.spec.candidate)
        if not codec.space.contains(point):  # a warm-start or perturbed candidate outside the space
            skipped += 1
            continue
        rows.append((dict(point), value))
    seen: dict[str, set[Value]] = {}
    for point, _ in rows:
        for name, v in point.items():
            seen.setdefault(name, set()).add(v)
    varying = {name for name, values in seen.items() if len(values) >= 2}
    study = optuna.create_study(direction="maximize" if objective(data).sign > 0 else "minimize")
    for point, value in rows:
        distributions = {p.name: distribution(p) for p in codec.space.active(point) if p.name in varying}
        study.add_trial(
            optuna.trial.create_trial(
                params={name: point[name] for name in distributions}, distributions=distributions, value=value
            )
        )
    return study, skipped


def importance(data: ExperimentData) -> Importance:
    """PED-ANOVA importances (optuna's PedAnovaImportanceEvaluator) over the succeeded trials.

    PED-ANOVA needs no model fit (fANOVA's random forest needs scikit-learn, which the operator image
    lacks) and is stable on a few dozen trials. Only parameters every trial has are ranked (optuna's
    rule), so a deeper layer's parameters count only when every trial has that layer."""
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    evaluator = "optuna PedAnovaImportanceEvaluator"
    study, skipped = importance_study(data)
    n = len(study.trials)
    outside = f" ({skipped} outside the search space left out)" if skipped else ""
    if n < MIN_IMPORTANCE_TRIALS:
        note = f"not computed: {n} succeeded trial(s){outside}, at least {MIN_IMPORTANCE_TRIALS} are needed"
        return Importance({}, n, evaluator, note)
    if len({t.value for t in study.trials}) < 2:
        return Importance({}, n, evaluator, f"not computed: all {n} trials have the same objective value")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    if not values:
        note = f"not computed: no parameter takes different values across all {n} succeeded trials"
        return Importance({}, n, evaluator, note)
    caveats = [f"{n} trials{outside}"]
    if any("less than 2 trials" in str(w.message) for w in caught):
        caveats.append("some parameter values occur in fewer than 2 trials, so the estimates are rough")
    if data.spec.strategy.name in ("pbt", "miha"):
        caveats.append(
            "the trials continued each other's checkpoints, so this ranks the hyperparameters of their "
            "last segments only"
        )
    return Importance({short_name(k): float(v) for k, v in values.items()}, n, evaluator, "; ".join(caveats))


@dataclass(frozen=True)
class ParetoPoint:
    trial: str
    values: tuple[float, ...]  # one per objective, in the metrics' own units
    front: bool


def pareto_goals(data: ExperimentData) -> list[MetricGoal]:
    """The objectives of a multi-objective strategy (NSGA-II's settings), [] for a single objective."""
    if data.spec.strategy.name != "nsga2":
        return []
    from kubenas.strategies.nsga2 import NSGA2Settings

    return list(NSGA2Settings.model_validate(data.spec.strategy.settings).objectives)


def pareto_points(data: ExperimentData, goals: Sequence[MetricGoal]) -> list[ParetoPoint]:
    """Every succeeded trial reporting all the objectives, and whether it is non-dominated."""
    rows: list[tuple[str, tuple[float, ...]]] = []
    for trial in data.trials:
        metrics = trial.status.metrics
        if trial.status.phase is TrialPhase.SUCCEEDED and all(g.metric in metrics for g in goals):
            rows.append((trial.name, tuple(float(metrics[g.metric]) for g in goals)))
    signs = [g.sign for g in goals]
    scored = [tuple(s * v for s, v in zip(signs, values, strict=True)) for _, values in rows]
    return [
        ParetoPoint(name, values, front=not any(dominates(other, mine) for other in scored))
        for (name, values), mine in zip(rows, scored, strict=True)
    ]


@dataclass(frozen=True)
class Segment:
    """A trial of a lineage (PBT, MIHA): the epochs it trained, and whose checkpoint it started from."""

    trial: str
    index: int
    parent: str | None
    first_epoch: int  # the first epoch it trained itself (1-based)
    last_epoch: int
    value: float | None
    phase: TrialPhase
    note: str


def lineage(data: ExperimentData) -> list[Segment]:
    """Every trial as a segment of the lineage; [] when no trial started from another's checkpoint."""
    if not any(t.spec.start_from for t in data.trials):
        return []
    return [
        Segment(
            trial=t.name,
            index=t.spec.index,
            parent=t.spec.start_from,
            first_epoch=t.inherited_epochs + 1,
            last_epoch=len(t.epochs),
            value=t.status.objective_value,
            phase=t.status.phase,
            note=t.spec.note,
        )
        for t in data.trials
    ]


# The cost columns of a trial: (heading, the metric's key in its status or metrics.jsonl rows).
COST_METRICS: tuple[tuple[str, str], ...] = (
    ("parameters", "parameters"),
    ("FLOPs", "flops"),
    ("peak memory (MiB)", "peakMemoryBytes"),
    ("samples/s", "samplesPerSecond"),
    ("inference s/sample", "inferenceSecondsPerSample"),
    ("GPU util. (%)", "gpuUtilization"),
    ("GPU power (W)", "gpuPowerWatts"),
)


@dataclass(frozen=True)
class Cost:
    trial: str
    phase: TrialPhase
    epochs: int  # trained by this trial itself
    training_seconds: float | None
    wall_seconds: float | None
    value: float | None
    metrics: dict[str, float]  # COST_METRICS' keys that the trial reported (memory in MiB)


def _gpu_reading(trial: TrialData, key: str) -> float | None:
    """The trial's GPU reading: its result's, else the mean of its own epochs' readings."""
    if key in trial.status.metrics:
        return float(trial.status.metrics[key])
    readings = [row[key] for row in trial.epochs[trial.inherited_epochs :] if key in row]
    return float(sum(readings) / len(readings)) if readings else None


def costs(data: ExperimentData) -> list[Cost]:
    out = []
    for trial in data.trials:
        metrics: dict[str, float] = {}
        for _, key in COST_METRICS:
            value = _gpu_reading(trial, key) if key.startswith("gpu") else trial.status.metrics.get(key, None)
            if value is None and key == "samplesPerSecond":
                own = [r[key] for r in trial.epochs[trial.inherited_epochs :] if key in r]
                value = sum(own) / len(own) if own else None
            if value is not None:
                metrics[key] = value / 2**20 if key == "peakMemoryBytes" else float(value)
        out.append(
            Cost(
                trial=trial.name,
                phase=trial.status.phase,
                epochs=trial.own_epochs,
                training_seconds=own_training_seconds(trial),
                wall_seconds=wall_seconds(trial),
                value=trial.status.objective_value,
                metrics=metrics,
            )
        )
    return out


def summary(data: ExperimentData) -> dict[str, Any]:
    """The headline numbers of the experiment."""
    status = data.status
    return {
        "experiment": data.name,
        "phase": str(status.phase),
        "strategy": data.spec.strategy.name,
        "early stopping": data.spec.early_stopping.rule,
        "objective": f"{data.spec.objective.metric} ({data.spec.objective.goal})",
        "trials": len(data.trials),
        "epochs trained": sum(t.own_epochs for t in data.trials),
        "best trial": status.best.trial if status.best else "-",
        "best value": status.best.objective_value if status.best else "-",
        "started": status.start_time or "-",
        "completed": status.completion_time or "-",
    }
