"""The real controller core (kubenas.engine.plan) driving trials that train inside this process.

The benchmarks need hundreds of short trials: a process per trial (as `kubenas run` does) would cost
more in start-up than in training. This driver keeps every trial's model, optimizer and shuffling in
memory instead, and carries out what plan() decides exactly as the launchers do: a trial trains up
to its stopAtEpoch (an ASHA rung, a PBT or MIHA segment) and pauses; a promoted trial continues its
own state; a trial with startFrom begins from a copy of another trial's weights (and its optimizer
state when the optimizer is the same), with its own hyperparameters. One trial runs at a time
(parallelTrials 1) and training is the same loop for every searcher: constant learning rate,
cross-entropy, validation accuracy and loss (a mean per example) after each epoch.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from kubenas.api import NASExperimentSpec, NASExperimentStatus, TrialPhase
from kubenas.engine import TrialLaunch, plan
from kubenas.trials import TrialRecord
from kubenas_trainer.models import build_model
from kubenas_trainer.spec import Candidate
from kubenas_trainer.train import make_optimizer
from torch import nn

NOW = "2026-01-01T00:00:00Z"


class Data(Protocol):
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


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
    """One trial in memory: what its checkpoint would hold."""

    def __init__(self, candidate: Candidate, data: Data, seed: int, parent: TrialState | None) -> None:
        torch.manual_seed(seed)
        self.candidate = candidate
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

    def train_epoch(self, data: Data) -> bool:
        """One epoch; False if the loss diverged."""
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


def run_search(spec: dict[str, Any], data: Data, budget: int) -> list[Evaluation]:
    """Drive plan() until the experiment ends or `budget` epochs are spent; the finished trials."""
    experiment = NASExperimentSpec.model_validate(
        spec | {"budget": {"maxTrials": 1000, "parallelTrials": 1, "maxFailedTrials": 1000}}
    )
    epochs = experiment.training.epochs
    records: dict[str, TrialRecord] = {}
    states: dict[str, TrialState] = {}
    status = NASExperimentStatus()
    spent, done = 0, []
    while spent < budget:
        step = plan("b", experiment, list(records.values()), status, None, NOW)
        status = step.status
        for stop in step.stop:
            records[stop.name] = replace(records[stop.name], phase=TrialPhase.STOPPED)
        for reuse in step.reuse:  # an identical candidate: recorded with the earlier result, no epoch spent
            records[reuse.name] = TrialRecord(
                reuse.name, reuse.index, reuse.seed, reuse.candidate, TrialPhase.SUCCEEDED,
                metrics=dict(reuse.status.metrics), epochs=reuse.status.epochs,
            )  # fmt: skip
        for wait in step.wait:  # (cannot happen here: no trial is training while plan() runs)
            records[wait.name] = TrialRecord(wait.name, wait.index, wait.seed, wait.candidate, launched=False)
        if step.finished or not (step.launch or step.reuse):
            break
        for launch in step.launch:
            state = states.get(launch.name)
            if state is None:
                parent = states[launch.start_from] if launch.start_from else None
                state = states[launch.name] = TrialState(launch.candidate, data, launch.seed, parent)
            target = min(launch.stop_at or epochs, epochs)
            phase = TrialPhase.SUCCEEDED if target >= epochs else TrialPhase.PAUSED
            while len(state.curve) < target:
                if spent >= budget:
                    return done
                spent += 1
                if not state.train_epoch(data):
                    phase = TrialPhase.FAILED
                    break
            records[launch.name] = _record(launch, state, phase)
            if phase is TrialPhase.SUCCEEDED:
                test = accuracy(state.model, data.x_test, data.y_test)
                done.append(Evaluation(spent, state.curve[-1], test))
    return done


def _record(launch: TrialLaunch, state: TrialState, phase: TrialPhase) -> TrialRecord:
    last = state.curve[-1] if state.curve and phase is not TrialPhase.FAILED else math.nan
    return TrialRecord(
        launch.name,
        launch.index,
        launch.seed,
        launch.candidate,
        phase,
        metrics={} if math.isnan(last) else {"accuracy": last, "loss": state.loss},
        epochs=len(state.curve),
        curve=tuple(state.curve),
        start_from=launch.start_from,
        stop_at_epoch=launch.stop_at_epoch,
        note=launch.note,
    )
