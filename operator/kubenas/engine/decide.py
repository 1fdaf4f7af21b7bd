"""The controller core: from the spec and the observed trials, decide what to do next.

Pure: no clock (`now` is passed in), no I/O. The kopf operator and the local runner both call
decide() on every pass (level-triggered) and hand the Plan it returns to engine.execute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kubenas_trainer.spec import Candidate

from kubenas.api.errors import SpecError
from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.pod import gpus
from kubenas.api.status import (
    BestTrial,
    Condition,
    ExperimentPhase,
    NASExperimentStatus,
    NASTrialSpec,
    NASTrialStatus,
    ParetoMember,
    TrialCounts,
    TrialPhase,
    TrialSummary,
)
from kubenas.artifacts import MODEL_FILE, TENSORBOARD_DIR
from kubenas.engine import backoff
from kubenas.engine.clock import elapsed
from kubenas.engine.conditions import set_condition
from kubenas.engine.fidelity import Fidelity, curve_of
from kubenas.engine.observe import HEALTH_TYPES, QUEUED, Health
from kubenas.engine.records import TrialRecord, ran, trial_name
from kubenas.engine.reuse import ResultCache, warm_start
from kubenas.engine.score import Basis, value
from kubenas.schedulers import MedianStopping, Stop
from kubenas.seeds import trial_seed
from kubenas.strategies import Strategy, make_strategy
from kubenas.strategies.base import Proposal

RECENT_TRIALS = 10
# A trial failing for one of these says no candidate can run (the data or the spec, not the candidate).
EXPERIMENT_FAILURES = ("InvalidSpec", "DataUnavailable")
PARETO_LISTED = 20


class StrategyFailed(Exception):
    """The strategy raised while proposing trials (a bug or a bad state in it, not a bad spec)."""

    def __init__(self, strategy: str, error: Exception) -> None:
        super().__init__(f"strategy {strategy} raised {type(error).__name__}: {error}"[:1000])


@dataclass(frozen=True)
class _TrialAction:
    """An action on the trial `name`, recorded (or to be recorded) with `spec`."""

    name: str
    spec: NASTrialSpec

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def candidate(self) -> Candidate:
        return self.spec.candidate

    @property
    def start_from(self) -> str | None:
        return self.spec.start_from

    @property
    def note(self) -> str:
        return self.spec.note


@dataclass(frozen=True)
class TrialLaunch(_TrialAction):
    """Start a segment of a trial: a new trial, one recorded but not running, or a promoted one.

    The segment pauses after `stop_at` epochs in total (the trial's own segment end, else the
    scheduler's next rung); None: it trains to the end. A trial with a checkpoint of its own resumes
    it; else one with spec.start_from begins from that trial's checkpoint.
    """

    new: bool = True
    stop_at: int | None = None
    promoted: bool = False


@dataclass(frozen=True)
class TrialReuse(_TrialAction):
    """A trial whose candidate was already evaluated: recorded as finished with `status`, never run.
    `new` is False for a recorded trial that waited for its twin (see TrialWait)."""

    status: NASTrialStatus = field(default_factory=NASTrialStatus)
    new: bool = True


@dataclass(frozen=True)
class TrialWait(_TrialAction):
    """A new trial whose candidate an earlier trial is training right now: recorded, not launched.
    It takes its twin's result when that succeeds, and is launched if the twin fails or pauses."""

    twin: str = ""


@dataclass(frozen=True)
class TrialStop:
    """A trial to stop, and why (the experiment ended, or the early-stopping rule stopped it)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """What one pass decided: trials to stop, reuse, record, launch (in that order), and the status."""

    launch: list[TrialLaunch] = field(default_factory=list)
    reuse: list[TrialReuse] = field(default_factory=list)
    wait: list[TrialWait] = field(default_factory=list)
    stop: list[TrialStop] = field(default_factory=list)
    status: NASExperimentStatus = field(default_factory=NASExperimentStatus)

    @property
    def finished(self) -> bool:
        return self.status.phase in (ExperimentPhase.SUCCEEDED, ExperimentPhase.FAILED)


def best_trial(spec: NASExperimentSpec, trials: Sequence[TrialRecord]) -> BestTrial | None:
    """The succeeded trial with the best objective (the earliest among equals)."""
    best: tuple[float, TrialRecord] | None = None
    for trial in sorted(trials, key=lambda t: t.index):
        result = value(trial, spec.objective, Basis.RESULT)
        if result is not None and (best is None or spec.objective.better(result, best[0])):
            best = (result, trial)
    if best is None:
        return None
    result, trial = best
    return BestTrial(
        trial=trial.name,
        objective_value=result,
        candidate=trial.candidate,
        metrics=trial.metrics,
        test_metrics=trial.test_metrics,
        model_uri=f"{trial.artifacts}{MODEL_FILE}" if trial.artifacts else None,
        tensorboard_uri=f"{trial.artifacts}{TENSORBOARD_DIR}" if trial.artifacts else None,
    )


def count_trials(trials: Sequence[TrialRecord]) -> TrialCounts:
    by_phase = {phase: sum(t.phase is phase for t in trials) for phase in TrialPhase}
    return TrialCounts(
        created=len(trials),
        pending=by_phase[TrialPhase.PENDING],
        queued=sum(t.phase is TrialPhase.PENDING and t.reason == QUEUED for t in trials),
        running=by_phase[TrialPhase.RUNNING],
        paused=by_phase[TrialPhase.PAUSED],
        succeeded=by_phase[TrialPhase.SUCCEEDED],
        failed=by_phase[TrialPhase.FAILED],
        stopped=by_phase[TrialPhase.STOPPED],
    )


Outcome = tuple[ExperimentPhase, str, str]  # (phase, reason, message) of an experiment that is over


@dataclass(frozen=True)
class Usage:
    """What the experiment has used by now of its wall-clock and GPU-hours budgets."""

    seconds: float  # since it started
    gpu_hours: float  # GPUs each trial holds x hours it ran (never while queued or paused)
    counts_gpus: bool  # whether the status shows gpu_hours: trials hold GPUs, or there is a GPU budget

    @classmethod
    def of(cls, spec: NASExperimentSpec, trials: Sequence[TrialRecord], started: str, now: str) -> Usage:
        per_trial = gpus(spec.trial_template.resources)
        hours = per_trial * sum(ran(t, now) for t in trials) / 3600
        return cls(elapsed(started, now), hours, bool(per_trial) or spec.budget.max_gpu_hours is not None)

    def exhausted(self, spec: NASExperimentSpec) -> tuple[str, str] | None:
        """(reason, message) once the wall-clock or the GPU-hours budget is used up."""
        budget = spec.budget
        if budget.max_duration_seconds is not None and self.seconds >= budget.max_duration_seconds:
            return (
                "WallClockBudgetExhausted",
                f"{self.seconds:.0f} s since the start; budget.maxDurationSeconds is "
                f"{budget.max_duration_seconds}",
            )
        if budget.max_gpu_hours is not None and self.gpu_hours >= budget.max_gpu_hours:
            return (
                "GPUHoursBudgetExhausted",
                f"{self.gpu_hours:.3g} GPU-hours used; budget.maxGpuHours is {budget.max_gpu_hours:g}",
            )
        return None


def _outcome(
    spec: NASExperimentSpec,
    counts: TrialCounts,
    best: BestTrial | None,
    exhausted: bool,
    promotable: bool = False,
    exhausted_reason: str = "SearchSpaceExhausted",
    unusable: TrialRecord | None = None,
    used_up: tuple[str, str] | None = None,
) -> Outcome | None:
    """(phase, reason, message) once the experiment is over, else None. `used_up`: the (reason, message)
    of a wall-clock or GPU-hours budget used up, which ends an experiment that has work left."""
    if unusable is not None:  # no other candidate could avoid what failed it: stop now, say why
        return ExperimentPhase.FAILED, str(unusable.reason), f"{unusable.name}: {unusable.message}"[:1000]
    budget = spec.budget
    if counts.failed > budget.max_failed_trials:
        return (
            ExperimentPhase.FAILED,
            "TooManyFailedTrials",
            f"{counts.failed} trials failed; budget.maxFailedTrials is {budget.max_failed_trials}",
        )
    if best is not None and spec.objective.reached(best.objective_value):
        return (
            ExperimentPhase.SUCCEEDED,
            "TargetReached",
            f"{best.trial} reached {spec.objective.metric}={best.objective_value:g} "
            f"(target {spec.objective.target:g})",
        )
    active = counts.pending + counts.running
    out_of_trials = counts.created >= budget.max_trials or exhausted
    if active or promotable or not out_of_trials:
        if used_up is None:
            return None
        reason, message = used_up
        if best is None:
            return ExperimentPhase.FAILED, reason, f"{message}; no trial succeeded"
        found = f"best {best.trial}: {spec.objective.metric}={best.objective_value:g}"
        return ExperimentPhase.SUCCEEDED, reason, f"{message}; {found} after {counts.created} trials"
    if best is None:
        return ExperimentPhase.FAILED, "NoTrialSucceeded", f"none of {counts.created} trials succeeded"
    reason = "MaxTrialsReached" if counts.created >= budget.max_trials else exhausted_reason
    return (
        ExperimentPhase.SUCCEEDED,
        reason,
        f"best {best.trial}: {spec.objective.metric}={best.objective_value:g} after {counts.created} trials",
    )


@dataclass
class _Placement:
    """Turns each trial to run into one action: reuse an evaluated candidate's result, wait for the
    twin that trains the same candidate now, or launch it. One rule for recorded and new trials."""

    spec: NASExperimentSpec
    fidelity: Fidelity
    now: str
    cache: ResultCache
    twins: dict[str, str]  # candidate key -> the trial training it from scratch now
    launch: list[TrialLaunch] = field(default_factory=list)
    reuse: list[TrialReuse] = field(default_factory=list)
    wait: list[TrialWait] = field(default_factory=list)
    waiting: int = 0  # recorded trials still waiting: they hold no parallel slot

    def place(self, name: str, spec: NASTrialSpec, recorded: TrialRecord | None) -> None:
        """A recorded trial that is not running (`recorded`), or a new one (`recorded` None)."""
        new = recorded is None
        fresh = spec.start_from is None  # a continued trial has its own weights: it never reuses
        key = spec.candidate.key()
        hit = self.cache.lookup(spec.candidate) if fresh else None
        twin = self.twins.get(key) if fresh and self.spec.strategy.reuse_results else None
        if hit is not None:
            self.reuse.append(
                TrialReuse(name, spec, status=_reused_status(self.spec, hit, self.now), new=new)
            )
        elif twin is not None and twin != name:
            if new:
                self.wait.append(TrialWait(name, spec, twin=twin))
            else:
                self.waiting += 1
        else:
            self.launch.append(self.launched(name, spec, recorded))
            if fresh and self.spec.strategy.reuse_results:
                self.twins.setdefault(key, name)

    def launched(self, name: str, spec: NASTrialSpec, recorded: TrialRecord | None) -> TrialLaunch:
        stop_at = spec.stop_at_epoch or self.fidelity.stop_at(recorded, spec.index)
        return TrialLaunch(name, spec, new=recorded is None, stop_at=stop_at)

    def promote(self, trial: TrialRecord, experiment: str) -> None:
        launch = self.launched(trial.name, _recorded_spec(experiment, trial), trial)
        self.launch.append(
            TrialLaunch(launch.name, launch.spec, new=False, stop_at=launch.stop_at, promoted=True)
        )


def decide(
    experiment: str,
    spec: NASExperimentSpec,
    trials: Sequence[TrialRecord],
    previous: NASExperimentStatus,
    generation: int | None,
    now: str,
    warm: Sequence[TrialRecord] = (),
    health: Sequence[Health] = (),
    strategy: Strategy | None = None,
) -> Plan:
    """Decide the next actions and the resulting status. Raises SpecError for a bad strategy setup.

    `warm` holds the trials of spec.strategy.warmStartFrom's experiment: the strategy learns from them,
    but they are not this experiment's trials (no budget, no status, no reuse of their results).
    `health` says how the channels the observation used fared; each becomes a condition. `strategy` is
    the spec's (made here when not given).
    """
    strategy = strategy or make_strategy(spec)
    fidelity = Fidelity(spec)
    counts = count_trials(trials)
    best = best_trial(spec, trials)
    active = counts.pending + counts.running
    promotions = fidelity.promotions(trials, idle=not active and counts.created >= spec.budget.max_trials)
    unusable = next(
        (t for t in trials if t.phase is TrialPhase.FAILED and t.reason in EXPERIMENT_FAILURES), None
    )
    used = Usage.of(spec, trials, previous.start_time or now, now)
    outcome = _outcome(
        spec,
        counts,
        best,
        exhausted=False,
        promotable=bool(promotions),
        unusable=unusable,
        used_up=used.exhausted(spec),
    )

    hold = backoff.holding(previous, now)  # an attempt failed: create nothing until its nextAttempt
    reuse_results = spec.strategy.reuse_results
    placement = _Placement(
        spec,
        fidelity,
        now,
        ResultCache(trials if reuse_results else []),
        _training(trials) if reuse_results else {},
    )
    if outcome is None and not hold:
        for t in sorted(trials, key=lambda t: t.index):
            if t.phase is TrialPhase.PENDING and not t.launched:
                placement.place(t.name, _recorded_spec(experiment, t), t)
        room = spec.budget.parallel_trials - active + placement.waiting + len(placement.reuse)
        for trial in promotions[: max(0, room)]:
            placement.promote(trial, experiment)
        room = min(room - len(promotions), spec.budget.max_trials - counts.created)
        exhausted = False
        if room > 0:
            source = spec.strategy.warm_start_from or ""
            try:
                proposed, exhausted = strategy.propose([*warm_start(source, warm), *trials], room)
            except SpecError:
                raise
            except Exception as error:
                raise StrategyFailed(strategy.name, error) from error
            first = 1 + max((t.index for t in trials), default=-1)
            for index, proposal in enumerate(proposed, start=first):
                name = trial_name(experiment, index)
                placement.place(name, _new_spec(experiment, index, spec.strategy.seed, proposal), None)
        if exhausted and not (placement.launch or placement.reuse or placement.wait):
            # No new trial will come: ASHA's paused leader goes on rather than wait for rivals.
            late = fidelity.promotions(trials, idle=not active)
            if late:
                placement.promote(late[0], experiment)
            else:
                outcome = _outcome(
                    spec, counts, best, exhausted=True, exhausted_reason=strategy.exhausted_reason
                )

    launch, reuse, wait = placement.launch, placement.reuse, placement.wait
    if outcome is not None:
        stop = [TrialStop(t.name, _end_reason(t, outcome[1])) for t in trials if not t.phase.finished]
    else:
        stop = early_stops(spec, trials)
    status = _status(spec, trials, counts, best, previous, generation, now, outcome, launch, reuse, wait)
    if used.counts_gpus:
        status = status.model_copy(update={"gpu_hours": round(used.gpu_hours, 2)})
    status = status.model_copy(update={"conditions": _health(status.conditions, health, generation, now)})
    status = _backoff(status, previous, hold and outcome is None)
    front = strategy.pareto_front(trials)
    if front is not None:
        members = [ParetoMember(trial=t.name, metrics=t.metrics) for t in front]
        status = status.model_copy(
            update={"pareto_front": members[:PARETO_LISTED], "pareto_front_size": len(front)}
        )
    return Plan(launch=launch, reuse=reuse, wait=wait, stop=stop, status=status)


def _status(
    spec: NASExperimentSpec,
    trials: Sequence[TrialRecord],
    counts: TrialCounts,
    best: BestTrial | None,
    previous: NASExperimentStatus,
    generation: int | None,
    now: str,
    outcome: Outcome | None,
    launch: Sequence[TrialLaunch],
    reuse: Sequence[TrialReuse],
    wait: Sequence[TrialWait],
) -> NASExperimentStatus:
    """The experiment's status once the plan is carried out (it counts what the plan creates)."""
    created = counts.created + sum(item.new for item in launch) + sum(r.new for r in reuse) + len(wait)
    counts = counts.model_copy(update={"paused": counts.paused - sum(item.promoted for item in launch)})
    if outcome is not None:  # the status already counts what this pass stops
        ended = counts.pending + counts.running + counts.paused
        counts = counts.model_copy(
            update={"pending": 0, "queued": 0, "running": 0, "paused": 0, "stopped": counts.stopped + ended}
        )
    return NASExperimentStatus(
        phase=outcome[0] if outcome else ExperimentPhase.RUNNING,
        observed_generation=generation,
        progress=f"{counts.succeeded + counts.failed + counts.stopped}/{spec.budget.max_trials}",
        trials=counts.model_copy(update={"created": created}),
        best=best,
        recent_trials=_recent(spec, trials),
        conditions=_conditions(previous.conditions, outcome, counts, launch, generation, now),
        start_time=previous.start_time or now,
        completion_time=(previous.completion_time or now) if outcome else None,
    )


def _training(trials: Sequence[TrialRecord]) -> dict[str, str]:
    """Candidate key -> the earliest trial training it now from scratch (launched, not continued)."""
    out: dict[str, str] = {}
    for t in sorted(trials, key=lambda t: t.index):
        if t.phase in (TrialPhase.PENDING, TrialPhase.RUNNING) and t.launched and not t.start_from:
            out.setdefault(t.candidate.key(), t.name)
    return out


def _new_spec(experiment: str, index: int, experiment_seed: int, proposal: Proposal) -> NASTrialSpec:
    """The spec recorded for a new trial: the one place a trial's seed is assigned."""
    return NASTrialSpec(
        experiment=experiment,
        index=index,
        candidate_key=proposal.candidate.key(),
        seed=trial_seed(experiment_seed, index),
        candidate=proposal.candidate,
        start_from=proposal.start_from,
        stop_at_epoch=proposal.stop_at_epoch,
        note=proposal.note,
    )


def _recorded_spec(experiment: str, trial: TrialRecord) -> NASTrialSpec:
    """The spec a recorded trial was created with (as its record keeps it)."""
    return NASTrialSpec(
        experiment=experiment,
        index=trial.index,
        candidate_key=trial.candidate.key(),
        seed=trial.seed,
        candidate=trial.candidate,
        start_from=trial.start_from,
        stop_at_epoch=trial.stop_at_epoch,
        note=trial.note,
    )


def _end_reason(trial: TrialRecord, reason: str) -> str:
    if trial.phase is TrialPhase.PAUSED:
        return f"experiment ended ({reason}) with the trial paused after epoch {trial.epochs or 0}"
    return f"experiment ended: {reason}"


def early_stops(spec: NASExperimentSpec, trials: Sequence[TrialRecord]) -> list[TrialStop]:
    """Running trials the early-stopping rule stops, judged on their per-epoch objective so far."""
    rule = spec.early_stopping
    if rule.rule != "median":
        return []
    scheduler = MedianStopping(grace_epochs=rule.grace_epochs, min_trials=rule.min_trials)
    curves = {t.name: curve_of(spec, t) for t in trials}
    history = [c for c in curves.values() if c.epochs]
    out = []
    for trial in trials:
        if trial.phase is TrialPhase.RUNNING and curves[trial.name].epochs:
            decision = scheduler.decide(curves[trial.name], history)
            if isinstance(decision, Stop):
                out.append(TrialStop(trial.name, f"early stopping: {decision.reason}"))
    return out


def _reused_status(spec: NASExperimentSpec, source: TrialRecord, now: str) -> NASTrialStatus:
    return NASTrialStatus(
        phase=TrialPhase.SUCCEEDED,
        objective_value=source.metrics.get(spec.objective.metric),
        metrics=source.metrics,
        test_metrics=source.test_metrics,
        epochs=source.epochs,
        curve=list(source.curve),
        split_fingerprint=source.split_fingerprint,
        artifacts=source.artifacts,
        message=f"reused the result of {source.name} (same candidate)",
        start_time=now,
        completion_time=now,
    )


def _recent(spec: NASExperimentSpec, trials: Sequence[TrialRecord]) -> list[TrialSummary]:
    last = sorted(trials, key=lambda t: t.index)[-RECENT_TRIALS:]
    return [
        TrialSummary(name=t.name, phase=t.phase, objective_value=value(t, spec.objective, Basis.RESULT))
        for t in last
    ]


def _conditions(
    previous: Sequence[Condition],
    outcome: Outcome | None,
    counts: TrialCounts,
    launch: Sequence[TrialLaunch],
    generation: int | None,
    now: str,
) -> list[Condition]:
    conditions = [c for c in previous if c.type not in ("Succeeded", "Failed") or outcome is not None]
    if outcome is None:
        running = counts.pending + counts.running + len(launch)
        return set_condition(
            conditions, "Running", True, "TrialsRunning", f"{running} trials running", generation, now
        )
    phase, reason, message = outcome
    conditions = set_condition(conditions, "Running", False, reason, message, generation, now)
    done, other = ("Succeeded", "Failed") if phase is ExperimentPhase.SUCCEEDED else ("Failed", "Succeeded")
    conditions = [c for c in conditions if c.type != other]
    return set_condition(conditions, done, True, reason, message, generation, now)


def _backoff(status: NASExperimentStatus, previous: NASExperimentStatus, hold: bool) -> NASExperimentStatus:
    """While holding, the failure's backoff, conditions and phase stay as the failed attempt left them;
    otherwise this pass is a new attempt, and they go (they come back if it fails too)."""
    others = [c for c in status.conditions if c.type not in backoff.FAILURES]
    if not hold:
        return status.model_copy(update={"backoff": None, "conditions": others})
    carried = {c.type: c for c in previous.conditions if c.type in (*backoff.FAILURES, "Running")}
    conditions = [carried.get(c.type, c) for c in others] + [c for t, c in carried.items() if t != "Running"]
    return status.model_copy(
        update={"backoff": previous.backoff, "phase": previous.phase, "conditions": conditions}
    )


def _health(
    conditions: Sequence[Condition], health: Sequence[Health], generation: int | None, now: str
) -> list[Condition]:
    """A condition per channel in use; one no longer in use loses its condition."""
    reported = {h.type for h in health}
    out = [c for c in conditions if c.type not in HEALTH_TYPES or c.type in reported]
    for h in health:
        out = set_condition(out, h.type, h.ok, h.reason, h.message, generation, now)
    return out


def invalid_spec_status(
    problems: Sequence[str], previous: NASExperimentStatus, generation: int | None, now: str
) -> NASExperimentStatus:
    """Status of an experiment whose spec cannot be run: nothing is created until it is fixed."""
    message = "; ".join(problems)
    conditions = [c for c in previous.conditions if c.type != "Succeeded"]
    conditions = set_condition(conditions, "Running", False, "InvalidSpec", message, generation, now)
    conditions = set_condition(conditions, "Failed", True, "InvalidSpec", message, generation, now)
    return previous.model_copy(
        update={"phase": ExperimentPhase.FAILED, "observed_generation": generation, "conditions": conditions}
    )
