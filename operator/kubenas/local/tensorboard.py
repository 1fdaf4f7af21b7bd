"""The experiment's TensorBoard log directory: every trial a run, compared in the HParams view.

<root>/<experiment>/tensorboard/
  events.out.tfevents.0.kubenas-hparams   the HParams config: each hyperparameter's domain, the metrics
  <trial> -> ../trials/<trial>/tensorboard  one run per trial (a relative symlink): its per-epoch scalars,
                                           its session (hyperparameters, start, end) and result scalars

`tensorboard --logdir <root>/<experiment>/tensorboard` shows them all. The columns follow the search
space: the core hyperparameters always, the others only where the space offers more than one choice; the
metrics are the result's validation metrics of the data set's task (the objective first), the trial's
epochs and costs, and the objective on the test split where there may be one. Written with tensorboard's
protocol buffers and record writer only: neither torch nor TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from kubenas_trainer.hparams import (
    RESULT_GROUP,
    TEST_GROUP,
    HParamColumn,
    MetricColumn,
    experiment_summary,
    write_events,
)
from kubenas_trainer.spec import (
    BUILTIN_DATASETS,
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Task,
)

from kubenas.api.experiment import NASExperimentSpec
from kubenas.api.space import FloatDomain, IntDomain, SearchSpace

LOG_DIR = "tensorboard"
# A fixed name, so that a resumed run replaces the config instead of adding a second one.
CONFIG_FILE = "events.out.tfevents.0.kubenas-hparams"
# Costs each trial reports, after its validation metrics.
COST_METRICS = ("trainingSeconds", "parameters", "flops")


def _numeric(name: str, domain: IntDomain | FloatDomain, description: str) -> HParamColumn:
    if domain.values is not None:
        return HParamColumn(
            name, "number", values=sorted({float(v) for v in domain.values}), description=description
        )
    lo, hi = domain.bounds()
    return HParamColumn(name, "number", interval=(float(lo), float(hi)), description=description)


def _varies(domain: IntDomain | FloatDomain | None) -> bool:
    if domain is None:
        return False
    lo, hi = domain.bounds()
    return lo != hi


def _choice(name: str, choices: Sequence[object], description: str) -> HParamColumn:
    values = [str(c).lower() if isinstance(c, bool) else str(c) for c in dict.fromkeys(choices)]
    return HParamColumn(name, "string", values=values, description=description)


def _per_layer(name: str, what: str) -> HParamColumn:
    return HParamColumn(name, "string", description=f"{what} of each layer, input to output ('-': none).")


def hparam_columns(space: SearchSpace) -> list[HParamColumn]:
    """The hyperparameter columns of an experiment over `space`, named as kubenas_trainer.hparams.flatten
    names a candidate's values."""
    hp, layers = space.hyperparameters, space.layers
    columns = [
        _numeric("learningRate", hp.learning_rate, "Learning rate."),
        _choice("optimizer", hp.optimizers, "Optimizer."),
        _numeric("batchSize", hp.batch_size, "Mini-batch size."),
        _numeric("layers", layers.count, "Number of hidden layers."),
        _per_layer("layerTypes", "The type"),
        _per_layer("units", "The width"),
        _per_layer("activations", "The activation"),
        _per_layer("dropout", "The dropout"),
    ]
    numeric = [
        ("weightDecay", hp.weight_decay, "Weight decay."),
        ("momentum", hp.momentum, "Momentum (sgd, rmsprop)."),
        ("warmupEpochs", hp.warmup_epochs, "Warm-up epochs."),
        ("gradientClip", hp.gradient_clip, "Gradient clipping threshold (0: off)."),
        ("labelSmoothing", hp.label_smoothing, "Label smoothing."),
        ("epochs", hp.epochs, "Training epochs."),
    ]
    columns += [_numeric(name, domain, text) for name, domain, text in numeric if domain and _varies(domain)]
    choices: list[tuple[str, Sequence[object], str]] = [
        ("schedule", hp.schedules, "Learning-rate schedule."),
        ("gradientClipMode", hp.gradient_clip_modes, "Clip by norm or value."),
    ]
    columns += [_choice(name, values, text) for name, values, text in choices if len(set(values)) > 1]
    per_layer = [
        ("kernelSizes", _varies(layers.kernel_sizes), "The kernel size"),
        ("pooling", len(set(layers.pooling)) > 1, "The pooling"),
        ("bidirectional", len(set(layers.bidirectional)) > 1, "Whether bidirectional"),
        ("normalization", len(set(layers.normalization)) > 1, "The normalisation"),
        ("residual", len(set(layers.residual)) > 1, "Whether residual"),
    ]
    columns += [_per_layer(name, what) for name, searched, what in per_layer if searched]
    return columns


def metric_columns(spec: NASExperimentSpec) -> list[MetricColumn]:
    """The metric columns: the result's validation metrics (the objective first), epochs, costs and, where
    the data may have a test split, the objective on it."""
    task = spec.training.known_task()
    objective = spec.objective.metric
    if task is None:  # a file: the objective tells the task, unless both report it
        in_classification, in_regression = (
            objective in CLASSIFICATION_METRICS,
            objective in REGRESSION_METRICS,
        )
        task = (
            None
            if in_classification == in_regression
            else (Task.CLASSIFICATION if in_classification else Task.REGRESSION)
        )
    reported = {
        Task.CLASSIFICATION: CLASSIFICATION_METRICS,
        Task.REGRESSION: REGRESSION_METRICS,
        None: tuple(dict.fromkeys(CLASSIFICATION_METRICS + REGRESSION_METRICS)),
    }[task]
    names = list(dict.fromkeys([objective, *reported, "epochs", *COST_METRICS]))
    columns = [
        MetricColumn(f"{RESULT_GROUP}/{name}", name, _metric_description(name, name == objective))
        for name in names
    ]
    test_split = spec.training.test_fraction > 0 or spec.training.dataset not in BUILTIN_DATASETS
    if test_split and objective != "trainingSeconds":
        columns.append(
            MetricColumn(f"{TEST_GROUP}/{objective}", f"test {objective}", "On the held-out test split.")
        )
    return columns


def _metric_description(name: str, objective: bool) -> str:
    if name == "epochs":
        return "Epochs trained so far."
    if name in COST_METRICS:
        return "Cost of the trial."
    what = "The objective: validation" if objective else "Validation"
    return f"{what} {name} of the best epoch (of the last one while paused)."


def write_config(run_dir: Path, spec: NASExperimentSpec) -> Path:
    """Write (or replace) the experiment's HParams config; the log directory."""
    log_dir = run_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    summary = experiment_summary(hparam_columns(spec.search_space), metric_columns(spec))
    write_events(log_dir / CONFIG_FILE, [summary])
    return log_dir


def link_trial(run_dir: Path, trial_dir: Path) -> None:
    """Make a trial's tensorboard/ a run of the experiment's log directory (a relative symlink, so that
    the run directory can move; dangling until the trial's trainer first writes)."""
    log_dir = run_dir / LOG_DIR
    link = log_dir / trial_dir.name
    if link.is_symlink():
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # no symlinks here: the run stays under trials/<trial>/ alone
        link.symlink_to(os.path.relpath(trial_dir / LOG_DIR, log_dir), target_is_directory=True)
