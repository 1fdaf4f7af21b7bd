"""The controller core: from the spec and the observed trials, decide what to do next.

Pure: no clock, no I/O. The kopf operator and the local runner both call plan() on every pass
(level-triggered) and carry out what it returns: launch new trials, stop running ones, write status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kubenas_trainer.spec import Candidate

from kubenas.api.experiment import NASExperimentSpec
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
from kubenas.engine.conditions import set_condition
from kubenas.engine.fidelity import Fidelity, progress_of
from kubenas.schedulers import MedianStopping, Stop
from kubenas.strategies import make_strategy
from kubenas.strategies.base import Proposal
from kubenas.strategies.reuse import ResultCache, warm_start
from kubenas.trials import TrialRecord, trial_name, trial_seed

RECENT_TRIALS = 10
PARETO_LISTED = 20


@dataclass(frozen=True)
class TrialLaunch:
    """A trial to start: new, recorded earlier but never started, or paused and now promoted.

    The launcher always lets the trainer resume the trial's own checkpoint when there is one; else a
    trial with `start_from` begins from that trial's checkpoint. It pauses at `stop_at`: its own
    segment end (`stop_at_epoch`, recorded with the trial) or else the scheduler's next rung.
    """

    name: str
    index: int
    seed: int
    candidate: Candidate
    new: bool
    stop_at_epoch: int | None = None
    rung: int | None = None
    start_from: str | None = None
    note: str = ""
    promoted: bool = False

    @property
    def stop_at(self) -> int | None:
        return self.stop_at_epoch or self.rung


@dataclass(frozen=True)
class TrialReuse:
    """A trial whose candidate was already evaluated: recorded as finished, never run. `new` is
    False for a trial that waited for its twin (recorded earlier, see TrialWait)."""

    name: str
    index: int
    seed: int
    candidate: Candidate
    status: NASTrialStatus
    new: bool = True


@dataclass(frozen=True)
class TrialWait:
    """A new trial whose candidate an earlier trial is training right now: recorded, not launched.
    It takes its twin's result when that succeeds, and is launched if the twin fails or pauses."""

    name: str
    index: int
    seed: int
    candidate: Candidate
    twin: str


@dataclass(frozen=True)
class TrialStop:
    """A running trial to stop, and why (the experiment ended, or the trial fell behind)."""

    name: str
    reason: str
    early: bool = False


def nastrial_spec(experiment: str, action: TrialLaunch | TrialReuse | TrialWait) -> NASTrialSpec:
    """The spec a backend records for the trial an action creates (the same for every backend)."""
    launch = action if isinstance(action, TrialLaunch) else None
    return NASTrialSpec(
        experiment=experiment,
        index=action.index,
        candidate_key=action.candidate.key(),
        seed=action.seed,
        candidate=action.candidate,
        start_from=launch.start_from if launch else None,
        stop_at_epoch=launch.stop_at_epoch if launch else None,
        note=launch.note if launch else "",
    )


@dataclass(frozen=True)
class Plan:
    launch: list[TrialLaunch] = field(default_factory=list)
    reuse: list[TrialReuse] = field(default_factory=list)
    wait: list[TrialWait] = field(default_factory=list)
    stop: list[TrialStop] = field(default_factory=list)
    status: NASExperimentStatus = field(default_factory=NASExperimentStatus)

    @property
    def finished(self) -> bool:
        return self.status.phase in (ExperimentPhase.SUCCEEDED, ExperimentPhase.FAILED)


def objective_value(spec: NASExperimentSpec, trial: TrialRecord) -> float | None:
    return trial.metrics.get(spec.objective.metric) if trial.phase is TrialPhase.SUCCEEDED else None


def best_trial(spec: NASExperimentSpec, trials: Sequence[TrialRecord]) -> BestTrial | None:
    """The succeeded trial with the best objective (the earliest among equals)."""
    best: tuple[float, TrialRecord] | None = None
    for trial in sorted(trials, key=lambda t: t.index):
        value = objective_value(spec, trial)
        if value is not None and (best is None or spec.objective.better(value, best[0])):
            best = (value, trial)
    if best is None:
        return None
    value, trial = best
    return BestTrial(
        trial=trial.name,
        objective_value=value,
        candidate=trial.candidate,
        metrics=trial.metrics,
        test_metrics=trial.test_metrics,
    )


def count_trials(trials: Sequence[TrialRecord]) -> TrialCounts:
    by_phase = {phase: sum(t.phase is phase for t in trials) for phase in TrialPhase}
    return TrialCounts(
        created=len(trials),
        pending=by_phase[TrialPhase.PENDING],
        running=by_phase[TrialPhase.RUNNING],
        paused=by_phase[TrialPhase.PAUSED],
        succeeded=by_phase[TrialPhase.SUCCEEDED],
        failed=by_phase[TrialPhase.FAILED],
        stopped=by_phase[TrialPhase.STOPPED],
    )


def _outcome(
    spec: NASExperimentSpec,
    counts: TrialCounts,
    best: BestTrial | None,
    exhausted: bool,
    promotable: bool = False,
    exhausted_reason: str = "SearchSpaceExhausted",
) -> tuple[ExperimentPhase, str, str] | None:
    """(phase, reason, message) once the experiment is over, else None."""
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
        return None
    if best is None:
        return ExperimentPhase.FAILED, "NoTrialSucceeded", f"none of {counts.created} trials succeeded"
    reason = "MaxTrialsReached" if counts.created >= budget.max_trials else exhausted_reason
    return (
        ExperimentPhase.SUCCEEDED,
        reason,
        f"best {best.trial}: {spec.objective.metric}={best.objective_value:g} after {counts.created} trials",
    )


def plan(
    experiment: str,
    spec: NASExperimentSpec,
    trials: Sequence[TrialRecord],
    previous: NASExperimentStatus,
    generation: int | None,
    now: str,
    warm: Sequence[TrialRecord] = (),
) -> Plan:
    """Decide the next actions and the resulting status. Raises SpecError for a bad strategy setup.

    `warm` holds the trials of spec.strategy.warmStartFrom's experiment: the strategy learns from them,
    but they are not this experiment's trials (no budget, no status, no reuse of their results).
    """
    strategy = make_strategy(spec)
    fidelity = Fidelity(spec)
    counts = count_trials(trials)
    best = best_trial(spec, trials)
    active = counts.pending + counts.running
    out_of_trials = counts.created >= spec.budget.max_trials
    promotions = fidelity.promotions(trials, idle=not active and out_of_trials)
    outcome = _outcome(spec, counts, best, exhausted=False, promotable=bool(promotions))

    launch: list[TrialLaunch] = []
    reuse: list[TrialReuse] = []
    wait: list[TrialWait] = []
    exhausted = False
    if outcome is None:
        cache = ResultCache(trials if spec.strategy.reuse_results else [])
        twins = _training(trials) if spec.strategy.reuse_results else {}
        waiting = 0
        for t in sorted(trials, key=lambda t: t.index):
            if t.phase is not TrialPhase.PENDING or t.launched:
                continue
            hit = None if t.start_from else cache.lookup(t.candidate)
            twin = None if t.start_from else twins.get(t.candidate.key())
            if hit is not None:
                reused = _reused_status(spec, hit, now)
                reuse.append(TrialReuse(t.name, t.index, t.seed, t.candidate, reused, new=False))
            elif twin is not None and twin != t.name:
                waiting += 1  # recorded, not running: it holds no parallel slot
            else:
                launch.append(_relaunch(t, fidelity.stop_at(t, t.index)))
                if not t.start_from and spec.strategy.reuse_results:
                    twins.setdefault(t.candidate.key(), t.name)
        room = spec.budget.parallel_trials - active + waiting + len(reuse)
        for trial in promotions[: max(0, room)]:
            launch.append(_relaunch(trial, fidelity.stop_at(trial, trial.index), promoted=True))
        room = min(room - len(promotions), spec.budget.max_trials - counts.created)
        if room > 0:
            source = spec.strategy.warm_start_from or ""
            proposed, exhausted = strategy.propose([*warm_start(source, warm), *trials], room)
            first = 1 + max((t.index for t in trials), default=-1)
            for index, proposal in enumerate(proposed, start=first):
                name, seed = trial_name(experiment, index), trial_seed(spec.strategy.seed, index)
                key = proposal.candidate.key()
                hit = None if proposal.start_from else cache.lookup(proposal.candidate)
                twin = None if proposal.start_from or not spec.strategy.reuse_results else twins.get(key)
                if hit is not None:
                    reused = _reused_status(spec, hit, now)
                    reuse.append(TrialReuse(name, index, seed, proposal.candidate, reused))
                elif twin is not None:
                    wait.append(TrialWait(name, index, seed, proposal.candidate, twin))
                else:
                    launch.append(_launch(proposal, name, index, seed, fidelity.stop_at(None, index)))
                    if not proposal.start_from and spec.strategy.reuse_results:
                        twins.setdefault(key, name)
        if exhausted and not launch and not reuse and not wait:
            # No new trial will come: ASHA's paused leader goes on rather than wait for rivals.
            late = fidelity.promotions(trials, idle=not active)
            if late:
                launch.append(_relaunch(late[0], fidelity.stop_at(late[0], late[0].index), promoted=True))
            else:
                outcome = _outcome(
                    spec, counts, best, exhausted=True, exhausted_reason=strategy.exhausted_reason
                )

    if outcome is not None:
        stop = [TrialStop(t.name, _end_reason(t, outcome[1])) for t in trials if not t.phase.finished]
    else:
        stop = early_stops(spec, trials)
    created = counts.created + sum(item.new for item in launch) + sum(r.new for r in reuse) + len(wait)
    counts = counts.model_copy(update={"paused": counts.paused - sum(item.promoted for item in launch)})
    if outcome is not None:  # the status already counts what this pass stops
        ended = counts.pending + counts.running + counts.paused
        counts = counts.model_copy(
            update={"pending": 0, "running": 0, "paused": 0, "stopped": counts.stopped + ended}
        )
    front = strategy.pareto_front(trials)
    conditions = _conditions(previous.conditions, outcome, counts, launch, generation, now)
    status = NASExperimentStatus(
        phase=outcome[0] if outcome else ExperimentPhase.RUNNING,
        observed_generation=generation,
        progress=f"{counts.succeeded + counts.failed + counts.stopped}/{spec.budget.max_trials}",
        trials=counts.model_copy(update={"created": created}),
        best=best,
        pareto_front=None
        if front is None
        else [ParetoMember(trial=t.name, metrics=t.metrics) for t in front][:PARETO_LISTED],
        pareto_front_size=None if front is None else len(front),
        recent_trials=_recent(spec, trials),
        conditions=conditions,
        start_time=previous.start_time or now,
        completion_time=(previous.completion_time or now) if outcome else None,
    )
    return Plan(launch=launch, reuse=reuse, wait=wait, stop=stop, status=status)


def _training(trials: Sequence[TrialRecord]) -> dict[str, str]:
    """Candidate key -> the earliest trial training it now from scratch (launched, not continued)."""
    out: dict[str, str] = {}
    for t in sorted(trials, key=lambda t: t.index):
        if t.phase in (TrialPhase.PENDING, TrialPhase.RUNNING) and t.launched and not t.start_from:
            out.setdefault(t.candidate.key(), t.name)
    return out


def _relaunch(trial: TrialRecord, stop_at: int | None, promoted: bool = False) -> TrialLaunch:
    """A recorded trial (re)started: its own segment end wins over the scheduler's rung."""
    return TrialLaunch(
        trial.name,
        trial.index,
        trial.seed,
        trial.candidate,
        new=False,
        stop_at_epoch=trial.stop_at_epoch,
        rung=stop_at,
        start_from=trial.start_from,
        note=trial.note,
        promoted=promoted,
    )


def _launch(proposal: Proposal, name: str, index: int, seed: int, stop_at: int | None) -> TrialLaunch:
    return TrialLaunch(
        name,
        index,
        seed,
        proposal.candidate,
        new=True,
        stop_at_epoch=proposal.stop_at_epoch,
        rung=stop_at,
        start_from=proposal.start_from,
        note=proposal.note,
    )


def _end_reason(trial: TrialRecord, reason: str) -> str:
    if trial.phase is TrialPhase.PAUSED:
        return f"experiment ended ({reason}) with the trial paused after epoch {trial.epochs or 0}"
    return f"experiment ended: {reason}"


def early_stops(spec: NASExperimentSpec, trials: Sequence[TrialRecord]) -> list[TrialStop]:
    """Running trials the early-stopping rule stops, judged on their per-epoch objective so far."""
    rule = spec.early_stopping
    if rule.rule == "none":
        return []
    scheduler = MedianStopping(grace_epochs=rule.grace_epochs, min_trials=rule.min_trials)
    progress = {t.name: progress_of(spec, t) for t in trials if t.progress or t.curve}
    history = list(progress.values())
    out = []
    for trial in trials:
        if trial.phase is TrialPhase.RUNNING and trial.name in progress:
            decision = scheduler.decide(progress[trial.name], history)
            if isinstance(decision, Stop):
                out.append(TrialStop(trial.name, f"early stopping: {decision.reason}", early=True))
    return out


def _reused_status(spec: NASExperimentSpec, source: TrialRecord, now: str) -> NASTrialStatus:
    return NASTrialStatus(
        phase=TrialPhase.SUCCEEDED,
        objective_value=source.metrics.get(spec.objective.metric),
        metrics=source.metrics,
        test_metrics=source.test_metrics,
        epochs=source.epochs,
        message=f"reused the result of {source.name} (same candidate)",
        start_time=now,
        completion_time=now,
    )


def _recent(spec: NASExperimentSpec, trials: Sequence[TrialRecord]) -> list[TrialSummary]:
    last = sorted(trials, key=lambda t: t.index)[-RECENT_TRIALS:]
    return [TrialSummary(name=t.name, phase=t.phase, objective_value=objective_value(spec, t)) for t in last]


def _conditions(
    previous: Sequence[Condition],
    outcome: tuple[ExperimentPhase, str, str] | None,
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
