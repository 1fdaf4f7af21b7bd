"""What a trial checks before it imports torch or reads its data, so that a spec that cannot run fails in
seconds rather than after the imports and the loading.

First what no candidate can avoid: a built-in set's task against training.task, the objective metric
against the task (when known), then the data set made local (kubenas_trainer.data.sources.locate: a file
that is not there, an s3:// object that cannot be read, a download that fails is DataUnavailable). Then
the candidate against a built-in set's sample shape (kubenas_trainer.shapes). A file's task and shape are
known only once it is read: the trial checks them then, with the same functions, before building a model.
Nothing here imports torch; the data package brings numpy.
"""

from __future__ import annotations

from kubenas_trainer.shapes import builtin_shape, check_candidate
from kubenas_trainer.spec import (
    BUILTIN_DATASETS,
    CLASSIFICATION_METRICS,
    DOWNLOADABLE_DATASETS,
    REGRESSION_DATASETS,
    REGRESSION_METRICS,
    Direction,
    ObjectiveRef,
    Task,
    Training,
    TrialSpec,
    UnusableSpec,
)


def builtin_task(training: Training) -> Task | None:
    """A built-in set's own task (whatever training.task says); None for a file or an s3:// object."""
    if training.dataset not in BUILTIN_DATASETS + DOWNLOADABLE_DATASETS:
        return None
    return Task.REGRESSION if training.dataset in REGRESSION_DATASETS else Task.CLASSIFICATION


def check_task(training: Training, task: Task) -> None:
    """training.task, when set, must be the data set's task."""
    if training.task is not None and training.task is not task:
        raise UnusableSpec(f"training.task: {training.dataset} is a {task} data set, not {training.task}")


def objective_of(spec: TrialSpec, task: Task) -> ObjectiveRef:
    """The metric picking the best epoch: the experiment's objective, or validation loss."""
    objective = spec.objective or ObjectiveRef(metric="loss", direction=Direction.MINIMIZE)
    reported = CLASSIFICATION_METRICS if task is Task.CLASSIFICATION else REGRESSION_METRICS
    if objective.metric == "trainingSeconds":  # not a property of an epoch's weights
        return ObjectiveRef(metric="loss", direction=Direction.MINIMIZE)
    if objective.metric not in reported:
        raise UnusableSpec(
            f"objective.metric: {objective.metric} is not reported for {task} data set "
            f"{spec.training.dataset!r} (it reports {', '.join(reported)})"
        )
    return objective


def preflight(spec: TrialSpec) -> None:
    """Raise the UnusableSpec (DataUnavailable, ArchitectureError) a trial would meet, as far as it is
    known before torch is imported and the data read; leave the data set local for the trial."""
    from kubenas_trainer.data.sources import locate  # numpy, not torch

    training = spec.training
    task = builtin_task(training)
    if task is not None:
        check_task(training, task)
    known = task or training.task
    if known is not None:
        objective_of(spec, known)
    locate(training)
    shape = builtin_shape(training)
    if shape is not None:
        check_candidate(spec.candidate, shape)
