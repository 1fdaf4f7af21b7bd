"""The real controller core driving trials that train inside this process: a third Backend.

The benchmarks need hundreds of short trials: a process per trial (as `kubenas run` does) would cost
more in start-up than in training. `InProcessBackend` implements engine.backend.Backend with every
trial's model, optimizer and shuffling kept in memory, so observe(), decide() and execute() run
exactly as on a cluster: a segment trains up to its stopAtEpoch (an ASHA rung, a PBT or MIHA segment)
and pauses; a promoted trial continues its own state; a trial with startFrom begins from a copy of
another trial's weights (and its optimizer state when the optimizer is the same), with its own
hyperparameters. Segments train one at a time when started (use parallelTrials 1), in the same loop
for every searcher: constant learning rate, cross-entropy, validation accuracy and loss (a mean per
example) after each epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from kubenas.api import NASExperimentSpec, NASExperimentStatus, NASTrialSpec, NASTrialStatus
from kubenas.engine.backend import Segment
from kubenas.engine.decide import decide
from kubenas.engine.events import Event
from kubenas.engine.execute import execute
from kubenas.engine.observe import Health, ObservedTrial, SegmentState, SegmentView, observe
from kubenas_trainer.models import build_model
from kubenas_trainer.optim import make_optimizer
from kubenas_trainer.spec import Candidate, TrialResult
from torch import nn

NOW = "2026-01-01T00:00:00Z"


class Data(Protocol):
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    fingerprint: str


@dataclass(frozen=True)
class Evaluation:
    """A trial that finished (Succeeded): the epochs spent so far by the whole search, its accuracies."""

    spent: int
    validation: float
    test: float


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


class TrialState:
    """One trial in memory: what its checkpoint would hold, and the data it trains on."""

    def __init__(self, candidate: Candidate, data: Data, seed: int, parent: TrialState | None) -> None:
        torch.manual_seed(seed)
        self.candidate, self.data = candidate, data
        self.model = build_model(candidate.architecture, (data.x_train.shape[1],), 10)
        self.optimizer = make_optimizer(self.model.parameters(), candidate.hyperparameters)
        self.generator = torch.Generator().manual_seed(seed)
        self.curve: list[float] = []  # validation accuracy after each epoch
        self.loss = math.nan  # validation loss per example after the last epoch (MIHA's fitness)
        if parent is not None:  # startFrom: the parent's weights and epochs, this trial's hyperparameters
            self.model.load_state_dict(parent.model.state_dict())
            if parent.candidate.hyperparameters.optimizer == candidate.hyperparameters.optimizer:
                own = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
                self.optimizer.load_state_dict(copy.deepcopy(parent.optimizer.state_dict()))
                for group, settings in zip(self.optimizer.param_groups, own, strict=True):
                    group.update(settings)
            self.curve = list(parent.curve)

    def train_epoch(self) -> bool:
        """One epoch; False if the loss diverged."""
        data = self.data
        self.model.train()
        batch = self.candidate.hyperparameters.batch_size
        order = torch.randperm(len(data.x_train), generator=self.generator)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            self.optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(self.model(data.x_train[idx]), data.y_train[idx])
            if not torch.isfinite(loss):
                return False
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
        self.curve.append(accuracy(self.model, data.x_val, data.y_val))
        with torch.no_grad():
            self.loss = float(nn.functional.cross_entropy(self.model(data.x_val), data.y_val))
        return True


class InProcessBackend:
    """engine.backend.Backend over in-memory trials; start_segment trains the segment at once.

    `data_for(seed)` is the data a trial with that seed trains and validates on: the experiment's one
    split, or (to measure what it cost) a split of its own. Training stops for good once `budget`
    epochs are spent (`exhausted`); `done` holds each trial that succeeded, in order.
    """

    namespace = "benchmark"

    def __init__(self, epochs: int, budget: int, data_for: Callable[[int], Data]) -> None:
        self.epochs, self.budget, self.data_for = epochs, budget, data_for
        self.specs: dict[str, NASTrialSpec] = {}
        self.statuses: dict[str, NASTrialStatus] = {}
        self.states: dict[str, TrialState] = {}
        self.ended: dict[str, TrialResult] = {}
        self.spent = 0
        self.exhausted = False
        self.done: list[Evaluation] = []

    def observe(self) -> list[ObservedTrial]:
        out = []
        for name, spec in self.specs.items():
            result = self.ended.pop(name, None)
            segment = SegmentView(SegmentState.ENDED, name, result) if result else SegmentView()
            out.append(ObservedTrial(name, spec, self.statuses.get(name, NASTrialStatus()), segment))
        return out

    def create_trial(self, name: str, spec: NASTrialSpec) -> NASTrialSpec:
        return self.specs.setdefault(name, spec)

    def write_status(self, name: str, status: NASTrialStatus) -> None:
        self.statuses[name] = status

    def start_segment(self, segment: Segment) -> None:
        if self.exhausted:
            return
        spec = self.specs[segment.trial]
        state = self.states.get(segment.trial)
        if state is None:
            parent = self.states[segment.input.start_from] if segment.input.start_from else None
            state = TrialState(spec.candidate, self.data_for(spec.seed), spec.seed, parent)
            self.states[segment.trial] = state
        target = min(segment.input.stop_at_epoch or self.epochs, self.epochs)
        while len(state.curve) < target:
            if self.spent >= self.budget:
                self.exhausted = True
                return
            self.spent += 1
            if not state.train_epoch():
                self.ended[segment.trial] = TrialResult(
                    name=segment.trial, phase="Failed", message="diverged"
                )
                return
        paused = target < self.epochs
        self.ended[segment.trial] = TrialResult(
            name=segment.trial,
            phase="Paused" if paused else "Succeeded",
            metrics={"accuracy": state.curve[-1], "loss": state.loss},
            epochs=len(state.curve),
            curve=state.curve,
            split_fingerprint=state.data.fingerprint,
        )
        if not paused:
            test = accuracy(state.model, state.data.x_test, state.data.y_test)
            self.done.append(Evaluation(self.spent, state.curve[-1], test))

    def stop_segment(self, name: str, ref: str) -> None:
        """Nothing runs between passes here."""

    def checkpoint_location(self, trial: str) -> str:
        return trial  # the in-memory state's key

    def send(self, event: Event) -> None:
        """No one to tell."""

    def drop_live_metrics(self, name: str) -> None:
        """No live metrics here."""

    def health(self) -> list[Health]:
        return []


def run_search(spec: dict[str, Any], data_for: Callable[[int], Data], budget: int) -> list[Evaluation]:
    """Drive the engine until the experiment ends or `budget` epochs are spent; the finished trials."""
    experiment = NASExperimentSpec.model_validate(
        spec | {"budget": {"maxTrials": 1000, "parallelTrials": 1, "maxFailedTrials": 1000}}
    )
    backend = InProcessBackend(experiment.training.epochs, budget, data_for)
    status = NASExperimentStatus()
    while not backend.exhausted:
        seen = observe(backend, experiment, NOW)
        plan = decide("b", experiment, seen.records, status, None, NOW)
        status = plan.status
        if plan.finished or not (plan.launch or plan.reuse):
            break
        execute(plan, backend, experiment, seen, NOW)
    return backend.done
