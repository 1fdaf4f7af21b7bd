"""What `kubenas run` knows of its trials while it runs: each trial's phase, epoch and objective, the
epochs trained, and the planned budget behind the estimate of the time left (Plan, Progress). The
Console (console.py) keeps one up to date; the views show it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from kubenas_trainer.spec import Candidate

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASExperimentStatus, NASTrialSpec, NASTrialStatus, TrialPhase
from kubenas.engine.events import Event
from kubenas.schedulers import Bracket, Hyperband

Clock = Callable[[], float]
# The phase each event reason leaves a trial in.
PHASES = {
    "TrialCreated": "running",
    "TrialStarted": "running",
    "TrialPromoted": "running",
    "TrialWaiting": "waiting",
    "TrialReused": "reused",
    "TrialPaused": "paused",
    "TrialSucceeded": "succeeded",
    "TrialFailed": "failed",
    "TrialStopped": "stopped",
    "TrialInterrupted": "pending",
    "TrialRestarted": "running",
}
# Phases of a trial that still has epochs to train in its current segment.
OPEN = frozenset({"pending", "running", "waiting"})
# The engine's message on a trial that took its twin's result (README: "A manifest").
REUSED = "reused the result of "


def short(candidate: Candidate) -> str:
    """A candidate in a few words: the layers' widths (by type), activations, optimizer, learning rate
    and batch size, e.g. `dense 128-256-32 gelu/gelu/relu, sgd lr=0.013 bs=32`."""
    layers = candidate.architecture.layers
    if len({layer.type for layer in layers}) == 1:
        shape = f"{layers[0].type} " + "-".join(str(layer.units) for layer in layers)
    else:
        shape = "-".join(f"{layer.type}{layer.units}" for layer in layers)
    activations = [str(layer.activation) for layer in layers]
    activation = activations[0] if len(set(activations)) == 1 else "/".join(activations)
    hp = candidate.hyperparameters
    return f"{shape} {activation}, {hp.optimizer} lr={hp.learning_rate:.2g} bs={hp.batch_size}"


def duration(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on."""
    minutes, secs = divmod(round(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def successive_halving_epochs(bracket: Bracket, trials: int) -> int:
    """Epochs a bracket trains `trials` trials for when each rung passes on 1/eta of the trials that
    reach it, and at least one trial reaches the end (what ASHA aims at, asynchronously)."""
    total, previous, reaching = 0, 0, trials
    for rung in bracket.rungs:
        total += reaching * (rung - previous)
        previous, reaching = rung, max(1, reaching // bracket.eta)
    return total + reaching * (bracket.max_epochs - previous)


@dataclass(frozen=True)
class Plan:
    """What the experiment is set to do, as far as the terminal needs to know it.

    `scheduled` is the epochs a multi-fidelity rule or a scheduling strategy plans in all (None: every
    trial trains all its epochs); `basis` says where the budget comes from, next to the estimate.
    """

    objective: str
    epochs: int  # training.epochs: what a trial trains in all unless its candidate says otherwise
    experiment: str = ""
    strategy: str = ""
    rule: str = "none"
    trials: int | None = None  # the trials the budget allows, or the schedule needs
    scheduled: int | None = None
    brackets: tuple[Bracket, ...] = ()  # ASHA: one; Hyperband: trial i runs in bracket i mod len
    basis: str = ""
    minimize: bool = False  # the objective's direction

    @classmethod
    def of(cls, spec: NASExperimentSpec, experiment: str) -> Plan:
        from kubenas.strategies import make_strategy
        from kubenas.strategies.miha import MIHA
        from kubenas.strategies.pbt import PBT

        epochs, trials = spec.training.epochs, spec.budget.max_trials
        rule = spec.early_stopping
        base = cls(
            spec.objective.metric,
            epochs,
            experiment,
            spec.strategy.name,
            rule.rule,
            trials,
            minimize=spec.objective.goal == "minimize",
        )
        if spec.strategy.name in (PBT.name, MIHA.name):
            strategy = make_strategy(spec)
            if isinstance(strategy, PBT):  # every member trains all the epochs, one generation at a time
                return replace(
                    base,
                    trials=strategy.total,
                    scheduled=strategy.size * epochs,
                    basis=f"pbt: {strategy.size} members x {epochs} epochs",
                )
            assert isinstance(strategy, MIHA)
            s = strategy
            # The run-up, each cycle's clones and continuation, and the final trial up to the end.
            scheduled = s.m + s.c * (s.p * s.n + s.k) + (epochs - s.m - s.c * (s.n + s.k))
            return replace(
                base,
                trials=s.trials,
                scheduled=scheduled,
                basis=f"miha: {scheduled} epochs over {s.trials} trials",
            )
        if rule.rule in ("asha", "hyperband"):
            brackets = (
                tuple(Hyperband(rule.min_epochs, epochs, rule.reduction_factor).brackets())
                if rule.rule == "hyperband"
                else (Bracket(rule.min_epochs, epochs, rule.reduction_factor),)
            )
            scheduled = sum(
                successive_halving_epochs(b, len(range(i, trials, len(brackets))))
                for i, b in enumerate(brackets)
            )
            basis = f"{rule.rule}: about {scheduled} epochs over {trials} trials"
            return replace(base, scheduled=scheduled, brackets=brackets, basis=basis)
        basis = f"{trials} trials x {epochs} epochs"
        if rule.rule == "median" or spec.objective.target is not None:
            basis += ", at most"
        return replace(base, basis=basis)

    def bracket(self, index: int) -> Bracket | None:
        return self.brackets[index % len(self.brackets)] if self.brackets else None

    def rung(self, index: int, epoch: int) -> str:
        """Where a multi-fidelity trial paused, e.g. `asha rung 1 of 2`; "" elsewhere."""
        bracket = self.bracket(index)
        if bracket is None or epoch not in bracket.rungs:
            return ""
        where = f"rung {bracket.rungs.index(epoch) + 1} of {len(bracket.rungs)}"
        if len(self.brackets) > 1:
            where = f"bracket {index % len(self.brackets)}, {where}"
        return f"{self.rule} {where}"


@dataclass
class TrialState:
    """One trial as the terminal knows it."""

    name: str
    index: int
    epochs: int  # what it trains in all
    candidate: str = ""  # short()
    note: str = ""  # the first line of the strategy's note (why this trial exists)
    phase: str = "pending"
    epoch: int = 0  # the last epoch its weights have trained, inherited ones included
    inherited: int = 0  # epochs that came with the checkpoint it started from (PBT, MIHA), or a twin's
    target: int = 0  # the epoch its current segment trains up to
    objective: float | None = None
    loss: float | None = None
    changed: float = 0.0  # when it last changed (the clock's), to list the recent ones

    @property
    def trained(self) -> int:
        """Epochs trained by this trial's own processes."""
        return max(0, self.epoch - self.inherited)


class Progress:
    """Everything the views show: the trials, the experiment's status, epochs trained and time."""

    def __init__(self, plan: Plan, clock: Clock = time.monotonic) -> None:
        self.plan = plan
        self.clock = clock
        self.started = clock()
        self.trials: dict[str, TrialState] = {}
        self.status = NASExperimentStatus()
        self.trained_now = 0  # epochs trained since this run started (the rate's numerator)
        self.finished = False

    def trial(self, name: str) -> TrialState:
        if name not in self.trials:
            suffix = name.rsplit("-", 1)[-1]
            index = int(suffix) if suffix.isdigit() else len(self.trials)
            self.trials[name] = TrialState(name, index, self.plan.epochs, target=self.plan.epochs)
        return self.trials[name]

    def learn(self, name: str, spec: NASTrialSpec, status: NASTrialStatus | None = None) -> TrialState:
        """Take in a trial's recorded spec (and status: a trial recorded by an earlier run)."""
        trial = self.trial(name)
        trial.index = spec.index
        trial.epochs = spec.candidate.hyperparameters.epochs or self.plan.epochs
        trial.candidate = short(spec.candidate)
        trial.note = spec.note.split("\n", 1)[0]
        if status is not None:
            self._outcome(trial, status)
            if trial.phase == "pending" and status.phase is not TrialPhase.PENDING:
                trial.phase = status.phase.value.lower()
            parent = self.trials.get(spec.start_from or "")
            if parent is not None:
                trial.inherited = min(trial.epoch, parent.epoch)
            if status.message.startswith(REUSED):
                trial.phase, trial.inherited = "reused", trial.epoch
        return trial

    def _outcome(self, trial: TrialState, status: NASTrialStatus) -> None:
        trial.epoch = max(trial.epoch, status.epochs or 0)
        if status.objective_value is not None:
            trial.objective = status.objective_value
        trial.loss = status.metrics.get("loss", trial.loss)

    def segment(self, name: str, starts_after: int, spec: NASTrialSpec | None) -> TrialState:
        """A process starts training the trial after epoch `starts_after`."""
        new = name not in self.trials  # else a promoted, resumed or relaunched trial
        trial = self.trial(name)
        if spec is not None:
            self.learn(name, spec)
            if new and spec.start_from is not None:
                trial.inherited = starts_after
        trial.epoch = max(trial.epoch, starts_after)
        bracket = self.plan.bracket(trial.index)
        stop_at = spec.stop_at_epoch if spec is not None else None
        rung = bracket.next_rung(starts_after) if bracket is not None else trial.epochs
        trial.target = min(stop_at or rung, trial.epochs)
        trial.phase, trial.changed = "running", self.clock()
        return trial

    def epoch(self, name: str, row: Mapping[str, float]) -> TrialState:
        trial = self.trial(name)
        trial.epoch = int(row["epoch"])
        trial.objective = row.get(self.plan.objective, trial.objective)
        trial.loss = row.get("loss", trial.loss)
        trial.phase, trial.changed = "running", self.clock()
        self.trained_now += 1
        return trial

    def event(self, event: Event, recorded: tuple[NASTrialSpec, NASTrialStatus] | None) -> TrialState:
        trial = self.trial(event.trial)
        if recorded is not None:
            self.learn(event.trial, recorded[0])
            self._outcome(trial, recorded[1])
        trial.phase = PHASES.get(event.reason, trial.phase)
        if trial.phase == "reused":
            trial.inherited = trial.epoch  # the twin's epochs: none trained here
        trial.changed = self.clock()
        return trial

    def leader(self) -> TrialState | None:
        """The trial with the best objective so far, whatever its phase (failed ones aside): before
        any trial finishes (ASHA's pause at rungs), the experiment's status names no best yet."""
        scored = [t for t in self.trials.values() if t.objective is not None and t.phase != "failed"]
        sign = -1 if self.plan.minimize else 1
        return max(scored, key=lambda t: (sign * (t.objective or 0.0), -t.index), default=None)

    @property
    def trained(self) -> int:
        """Epochs trained by every known trial's own processes (earlier runs' included)."""
        return sum(t.trained for t in self.trials.values())

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining_epochs(self) -> int:
        """Epochs still to train, from the budget.

        Without a schedule every trial trains all its epochs: the open trials' epochs left plus the
        trials not yet created (maxTrials minus those created) times training.epochs. With ASHA or
        Hyperband the budget is what successive halving trains maxTrials trials for (each rung passing
        on 1/reductionFactor, one trial reaching the end); with PBT populationSize x training.epochs;
        with MIHA its schedule's epochs. Then what is left is that budget minus the epochs trained,
        but never less than the open trials' epochs to the end of their current segments.

        An upper bound when the experiment may end early (objective.target, the median rule stopping
        trials, a grid exhausted before maxTrials): the estimate falls as that happens.
        """
        if self.finished:
            return 0
        open_trials = [t for t in self.trials.values() if t.phase in OPEN]
        if self.plan.scheduled is None:
            created = max(self.status.trials.created, len(self.trials))
            unstarted = max(0, (self.plan.trials or created) - created)
            return sum(max(0, t.epochs - t.epoch) for t in open_trials) + unstarted * self.plan.epochs
        segments = sum(max(0, t.target - t.epoch) for t in open_trials)
        return max(segments, self.plan.scheduled - self.trained)

    def rate(self) -> float | None:
        """Epochs per second over this run so far, all parallel trials together (process starts
        included, as every trial to come pays them too); None before the first epoch."""
        elapsed = self.elapsed
        return self.trained_now / elapsed if self.trained_now and elapsed > 0 else None

    def seconds_left(self) -> float | None:
        """The time left at this run's rate so far: remaining_epochs() / rate(). It assumes the rest
        goes as the run so far did: as many trials in parallel, as many process starts per epoch. So
        it runs high when the last epochs train in one long segment (ASHA's final promotion: one
        process start for many epochs) and low when they train alone after parallel ones."""
        remaining, rate = self.remaining_epochs(), self.rate()
        if remaining == 0:
            return 0.0
        return remaining / rate if rate else None
