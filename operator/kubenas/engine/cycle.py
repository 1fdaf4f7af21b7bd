"""One pass of the controller core through a backend: observe, decide, execute, and hold off after a
failed attempt. The operator's reconcile and the local runner's loop are this, plus their own I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.status import NASExperimentStatus, TrialPhase
from kubenas.engine import backoff
from kubenas.engine.backend import Backend
from kubenas.engine.decide import StrategyFailed, decide
from kubenas.engine.execute import execute
from kubenas.engine.observe import observe
from kubenas.engine.records import TrialRecord
from kubenas.strategies import Strategy


@dataclass(frozen=True)
class Pass:
    status: NASExperimentStatus
    finished: bool
    # The experiment's Warning event (reason, message), once per failure that starts or changes.
    warning: tuple[str, str] | None = None


def run_pass(
    experiment: str,
    backend: Backend,
    spec: NASExperimentSpec,
    previous: NASExperimentStatus,
    generation: int | None,
    now: str,
    warm: Sequence[TrialRecord] = (),
    strategy: Strategy | None = None,
) -> Pass:
    seen = observe(backend, spec, now)
    running = sum(r.launched and r.phase in (TrialPhase.PENDING, TrialPhase.RUNNING) for r in seen.records)
    try:
        plan = decide(experiment, spec, seen.records, previous, generation, now, warm, seen.health, strategy)
    except StrategyFailed as error:
        status = backoff.failed(
            previous, previous, "StrategyFailure", "StrategyRaised", str(error), running, generation, now
        )
        return Pass(status, False, backoff.announcement(previous, status))
    refused = execute(plan, backend, spec, seen, now)
    status = plan.status
    if refused is not None:
        status = backoff.failed(
            status, previous, "CreateFailure", refused.reason, str(refused), running, generation, now
        )
    return Pass(status, plan.finished and refused is None, backoff.announcement(previous, status))
