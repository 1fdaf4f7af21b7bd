"""MIHA, in-training hyperparameter mutation, as one lineage of trials continuing each other's checkpoints.

The schedule (m = runUpEpochs, c = cycles, p = populationSize, n = cycleEpochs, k = continueEpochs):

- trial 0, the run-up: a candidate drawn from the space, trained for m epochs, then paused;
- c cycles, each of p clones and one continuation. A clone is the current trial's candidate with one
  mutation (the optimizer, one layer's activation, the batch size or the learning rate: nothing that
  changes a weight's shape, so the checkpoint carries over); every clone starts from the current
  trial's checkpoint and trains n epochs, the clones in parallel. The continuation takes the fittest
  clone's checkpoint and candidate on for k epochs, and becomes the current trial;
- a final trial continues the last continuation to training.epochs and succeeds: it is the result.

Trial i's role follows from i alone (cycle j's base is trial j*(p+1), its clones the next p trials),
so the strategy rebuilds everything from the recorded history and a restarted controller proposes the
same trials. A trial is proposed once the trials it depends on are paused (or finished); until then
propose() returns fewer proposals than asked without being done, and the controller waits.

The original MIHA ranks clones by their summed training loss, which is biased twice: training loss
rewards overfitting, and a sum over batches scales with the number of batches, i.e. inversely with
the batch size that is one of the mutated hyperparameters. Here a clone's fitness is its validation
loss per example: the trainer's validation `loss` metric (reported with a paused trial's last epoch)
is the mean loss over every validation example, evaluated in fixed chunks whatever the training batch
size, so batch size cannot bias it. Clones are ranked on validation loss whatever spec.objective is:
status.best is the final trial, the only one that succeeds.

A warm start (spec.strategy.warmStartFrom) gives the run-up its candidate: the best warm trial's by
the objective, when it lies in this search space; the run-up still trains from scratch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np
from kubenas_trainer.spec import CamelModel, Candidate
from pydantic import Field

from kubenas.api.errors import SpecError
from kubenas.api.experiment import MetricGoal
from kubenas.api.status import TrialPhase
from kubenas.engine.records import TrialRecord
from kubenas.engine.score import Basis, score, value
from kubenas.seeds import rng_for
from kubenas.space.encoding import CandidateCodec
from kubenas.space.mutation import perturb
from kubenas.space.params import ParamSpace, Point, Value, cardinality
from kubenas.strategies.base import Proposal, Strategy, next_index

# What a MIHA clone may change: the optimizer, one layer's activation, the batch size, the learning rate.
CLONE_MUTABLE = (
    "hyperparameters.optimizer",
    ".activation",
    "hyperparameters.batchSize",
    "hyperparameters.learningRate",
)


def clone_mutation(space: ParamSpace, point: Mapping[str, Value], rng: np.random.Generator) -> Point:
    """The point with one MIHA mutation (the architecture's shape stays, so weights carry over)."""
    mutable = [p for p in space.active(point) if p.name.endswith(CLONE_MUTABLE) and cardinality(p) > 1]
    clone = dict(point)
    if mutable:
        param = mutable[int(rng.integers(len(mutable)))]
        clone[param.name] = perturb(param, point[param.name], rng)
    return clone


LOSS = MetricGoal(metric="loss")


def validation_loss(trial: TrialRecord) -> float | None:
    """A clone's validation loss per example (the trainer's `loss` metric), or None when it has none
    to rank: it failed or was stopped, or reported no finite loss."""
    return value(trial, LOSS, Basis.SEGMENT)


def fittest_clone(clones: Sequence[TrialRecord]) -> TrialRecord | None:
    """The clone with the lowest validation loss (the earliest among equals); None if none has one."""
    ranked = [(loss, t.index, t) for t in clones if (loss := validation_loss(t)) is not None]
    return min(ranked, key=lambda r: (r[0], r[1]))[2] if ranked else None


# Draws per clone to find a candidate its siblings do not already have.
DISTINCT_TRIES = 16


class MIHASettings(CamelModel):
    run_up_epochs: int = Field(default=2, ge=1, description="Epochs before the first cycle (m).")
    cycles: int = Field(default=3, ge=1, description="Cycles of clones (c).")
    population_size: int = Field(default=4, ge=2, le=1000, description="Clones per cycle (p).")
    cycle_epochs: int = Field(default=1, ge=1, description="Epochs each clone trains (n).")
    continue_epochs: int = Field(default=1, ge=1, description="Epochs the fittest clone goes on (k).")


@dataclass(frozen=True)
class Slot:
    """Trial i's place in the schedule; `cycle` and `clone` count from 0."""

    role: Literal["run-up", "clone", "continue", "final"]
    cycle: int = 0
    clone: int = 0


class Blocked(Enum):
    """Why the next index gets no proposal: WAIT until the trial it continues has paused; END when
    the lineage is over (the schedule is complete, or the trial to continue failed or was stopped)."""

    WAIT = "wait"
    END = "end"


class MIHA(Strategy):
    """One lineage: run-up, cycles of mutated clones with the fittest continued, a final segment."""

    name = "miha"
    Settings = MIHASettings
    continues_trials = True
    exhausted_reason = "ScheduleCompleted"

    def setup(self) -> None:
        s = self.settings
        assert isinstance(s, MIHASettings)
        self.m, self.c, self.p = s.run_up_epochs, s.cycles, s.population_size
        self.n, self.k = s.cycle_epochs, s.continue_epochs
        self.codec = CandidateCodec(self.space)
        problems: list[str] = []
        scheduled = self.m + self.c * (self.n + self.k)
        if self.epochs - scheduled < 1:
            problems.append(
                f"spec.training.epochs: strategy miha needs more than runUpEpochs + cycles x "
                f"(cycleEpochs + continueEpochs) = {scheduled} epochs (training.epochs={self.epochs})"
            )
        if self.max_trials < self.trials:
            problems.append(
                f"spec.budget.maxTrials: strategy miha needs 1 + cycles x (populationSize + 1) + 1 = "
                f"{self.trials} trials (maxTrials={self.max_trials})"
            )
        if self.space.hyperparameters.epochs is not None:
            problems.append(
                "spec.searchSpace.hyperparameters.epochs: strategy miha schedules the epochs itself; "
                "leave epochs out of the search space"
            )
        if problems:
            raise SpecError(problems)

    @property
    def trials(self) -> int:
        """The whole schedule: the run-up, c cycles of p clones and a continuation, the final trial."""
        return 1 + self.c * (self.p + 1) + 1

    def slot(self, index: int) -> Slot:
        """What trial `index` (0 .. trials-1) is."""
        if index == 0:
            return Slot("run-up")
        if index == self.trials - 1:
            return Slot("final", self.c)
        cycle, offset = divmod(index - 1, self.p + 1)
        return Slot("continue", cycle) if offset == self.p else Slot("clone", cycle, offset)

    def base(self, cycle: int) -> int:
        """The index of cycle's current trial (the run-up, or the previous cycle's continuation)."""
        return cycle * (self.p + 1)

    def epochs_at(self, cycle: int) -> int:
        """Epochs trained when `cycle` begins."""
        return self.m + cycle * (self.n + self.k)

    def ask(self, history: Sequence[TrialRecord], count: int) -> list[Candidate]:
        """The candidates of propose(): fewer than count also while the lineage waits for a trial."""
        return [p.candidate for p in self.propose(history, count)[0]]

    def propose(self, history: Sequence[TrialRecord], count: int) -> tuple[list[Proposal], bool]:
        own = {t.index: t for t in history if t.index >= 0}
        warm = [t for t in history if t.index < 0]
        proposals: list[Proposal] = []
        index = next_index(list(own.values()))
        while True:
            step = Blocked.END if index >= self.trials else self._proposal(index, own, warm)
            if isinstance(step, Blocked) or len(proposals) >= count:
                return proposals, step is Blocked.END
            proposals.append(step)
            index += 1

    def _proposal(
        self, index: int, own: Mapping[int, TrialRecord], warm: Sequence[TrialRecord]
    ) -> Proposal | Blocked:
        slot = self.slot(index)
        if slot.role == "run-up":
            return Proposal(
                self._run_up(warm),
                stop_at_epoch=self.m,
                note=f"MIHA run-up: {_epochs(0, self.m)} of {self.epochs}; then {self.c} cycle(s) of "
                f"{self.p} mutated clones trained {self.n} epoch(s) each, the fittest continued "
                f"{self.k} epoch(s); a final {self.epochs - self.epochs_at(self.c)} epoch(s)",
            )
        if slot.role == "final":
            last = own.get(self.base(self.c))
            if (blocked := _blocked(last)) is not None:
                return blocked
            assert last is not None
            return Proposal(
                last.candidate,
                start_from=last.name,
                stop_at_epoch=self.epochs,
                note=f"MIHA final: continue {last.name} from epoch {self.epochs_at(self.c)} "
                f"to epoch {self.epochs}, the end of training",
            )
        base = own.get(self.base(slot.cycle))
        if (blocked := _blocked(base)) is not None:
            return blocked
        assert base is not None
        if slot.role == "clone":
            return self._clone(slot, base)
        return self._continuation(slot, base, own)

    def _run_up(self, warm: Sequence[TrialRecord]) -> Candidate:
        """The best warm-start candidate that lies in this space, else a seeded draw."""
        scored = [(s, -t.index, t) for t in warm if (s := score(t, self.objective)) is not None]
        for _, _, trial in sorted(scored, key=lambda r: (r[0], r[1]), reverse=True):
            if self._in_space(trial.candidate):
                return trial.candidate
        return self.codec.decode(self.codec.space.sample(rng_for(self.seed, 0)))

    def _in_space(self, candidate: Candidate) -> bool:
        low, high = self.codec.search_space.layers.count.bounds()
        if not low <= len(candidate.architecture.layers) <= high:
            return False
        point = self.codec.encode(candidate)
        return self.codec.space.contains(point) and self.codec.decode(point) == candidate

    def clones(self, cycle: int, base: Candidate) -> list[Candidate]:
        """The cycle's p clones of `base`, each one mutation away and, while the space allows, each
        different from its siblings (a duplicate would spend a parallel slot on the same experiment).
        Clone i draws from its own trial index's generator, so every call rebuilds the same clones."""
        point = self.codec.encode(base)
        seen = {base.key()}
        out = []
        for i in range(self.p):
            rng = rng_for(self.seed, self.base(cycle) + 1 + i)
            for _ in range(DISTINCT_TRIES):
                clone = self.codec.decode(clone_mutation(self.codec.space, point, rng))
                if clone.key() not in seen:
                    break
            seen.add(clone.key())
            out.append(clone)
        return out

    def _clone(self, slot: Slot, base: TrialRecord) -> Proposal:
        candidate = self.clones(slot.cycle, base.candidate)[slot.clone]
        point, changed = self.codec.encode(base.candidate), self.codec.encode(candidate)
        diff = [f"{k} {_fmt(point[k])} -> {_fmt(changed[k])}" for k in point if changed[k] != point[k]]
        start = self.epochs_at(slot.cycle)
        return Proposal(
            candidate,
            start_from=base.name,
            stop_at_epoch=start + self.n,
            note=f"MIHA cycle {slot.cycle + 1}/{self.c}, clone {slot.clone + 1}/{self.p} of {base.name}: "
            f"{', '.join(diff) or 'unchanged (nothing left to mutate)'}; {_epochs(start, self.n)}",
        )

    def _continuation(
        self, slot: Slot, base: TrialRecord, own: Mapping[int, TrialRecord]
    ) -> Proposal | Blocked:
        first = self.base(slot.cycle) + 1
        clones = [own.get(i) for i in range(first, first + self.p)]
        if any(c is None or c.phase in (TrialPhase.PENDING, TrialPhase.RUNNING) for c in clones):
            return Blocked.WAIT
        settled = [c for c in clones if c is not None]
        best = fittest_clone(settled)
        stop_at = self.epochs_at(slot.cycle + 1)
        head = f"MIHA cycle {slot.cycle + 1}/{self.c}"
        if best is None:
            losses = ", ".join(f"{c.name} {_loss(c)}" for c in settled)
            return Proposal(
                base.candidate,
                start_from=base.name,
                stop_at_epoch=stop_at,
                note=f"{head}: no clone has a validation loss ({losses}); "
                f"continue {base.name} unchanged to epoch {stop_at}",
            )
        others = ", ".join(f"{c.name} {_loss(c)}" for c in settled if c is not best)
        return Proposal(
            best.candidate,
            start_from=best.name,
            stop_at_epoch=stop_at,
            note=f"{head}: continue the fittest clone {best.name} to epoch {stop_at} "
            f"(validation loss {_loss(best)} per example; others: {others})",
        )


def _blocked(trial: TrialRecord | None) -> Blocked | None:
    """None when the trial's checkpoint can be continued (it paused, or succeeded); WAIT while it
    runs; END when it never will (it failed or was stopped: the lineage cannot go on)."""
    if trial is None or trial.phase in (TrialPhase.PENDING, TrialPhase.RUNNING):
        return Blocked.WAIT
    return None if trial.phase in (TrialPhase.PAUSED, TrialPhase.SUCCEEDED) else Blocked.END


def _loss(trial: TrialRecord) -> str:
    loss = validation_loss(trial)
    if loss is not None:
        return f"{loss:.4g}"
    return (
        "no validation loss"
        if trial.phase in (TrialPhase.PAUSED, TrialPhase.SUCCEEDED)
        else trial.phase.lower()
    )


def _epochs(start: int, count: int) -> str:
    """Epochs start+1 .. start+count, readably."""
    return f"epoch {start + 1}" if count == 1 else f"epochs {start + 1}-{start + count}"


def _fmt(value: Value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
