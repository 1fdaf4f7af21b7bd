"""A real training task under one epoch budget: kubenas's searchers against optuna's own TPE loop.

Every searcher gets the same total budget of `--trials` x `--epochs` training epochs of an MLP
(kubenas_trainer's model and optimizers) on scikit-learn's digits. Data: a fixed test split (20%)
never seen by the search, the rest split 75/25 into train and validation. The incumbent is the
finished trial with the best validation accuracy so far; the table shows its test accuracy after a
quarter, half and all of the budget (mean ± std over seeds).

kubenas's searchers run exactly as the controller runs them: plan() decides every launch, pause,
promotion and stop (benchmarks/inprocess_controller.py trains the trials in this process, one at a
time). A plain strategy trains every trial `--epochs` epochs; `random+asha`, `tpe+asha` and
`random+hyperband` give good trials up to `--max-epochs` and pause the others at rungs 1, 3, 9 ...;
`pbt` and `miha` fit their schedules to the budget and finish their trials only at its end.
"optuna-tpe" is an optuna study driving the same space through study.optimize.

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
from kubenas.trials import trial_seed
from kubenas_trainer.models import build_model
from kubenas_trainer.spec import Architecture, Candidate, Hyperparameters, Layer
from kubenas_trainer.train import make_optimizer
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from benchmarks.inprocess_controller import Evaluation, run_search

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


@dataclass(frozen=True)
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def digits(cls) -> Data:
        bunch = load_digits()
        x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
        x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
        x_tr, x_val, y_tr, y_val = train_test_split(
            x_rest, y_rest, test_size=0.25, random_state=0, stratify=y_rest
        )
        mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
        t = torch.from_numpy
        return cls(
            t((x_tr - mean) / std),
            t(y_tr),
            t((x_val - mean) / std),
            t(y_val),
            t((x_test - mean) / std),
            t(y_test),
        )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train(candidate: Candidate, data: Data, epochs: int, seed: int) -> tuple[float, float]:
    """(validation accuracy, test accuracy) after training; (0, 0) if training diverged."""
    torch.manual_seed(seed)
    model = build_model(candidate.architecture, (data.x_train.shape[1],), 10)
    optimizer = make_optimizer(model.parameters(), candidate.hyperparameters)
    batch = candidate.hyperparameters.batch_size
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(data.x_train), generator=generator)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            if not torch.isfinite(loss):
                return 0.0, 0.0
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return accuracy(model, data.x_val, data.y_val), accuracy(model, data.x_test, data.y_test)


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


def kubenas_run(searcher: Searcher, seed: int, data: Data, budget: int) -> list[Evaluation]:
    """The strategy exactly as the controller runs it: plan() decides, trials train in this process."""
    spec: dict[str, Any] = {
        "searchSpace": SEARCH_SPACE,
        "strategy": {"name": searcher.strategy, "seed": seed, "settings": searcher.settings},
        "objective": {"metric": "accuracy"},
        "training": {"dataset": "digits", "epochs": searcher.epochs},
    }
    if searcher.early_stopping:
        spec["earlyStopping"] = searcher.early_stopping
    return run_search(spec, data, budget)


def optuna_run(seed: int, data: Data, trials: int, epochs: int) -> list[Evaluation]:
    results: list[Evaluation] = []

    def objective(trial: optuna.Trial) -> float:
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
        candidate = Candidate(architecture=Architecture(layers=layers), hyperparameters=hp)
        val, test = train(candidate, data, epochs, trial_seed(seed, trial.number))
        results.append(Evaluation((trial.number + 1) * epochs, val, test))
        return val

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return results


def incumbent_test(results: list[Evaluation], spent: int) -> float | None:
    """Test accuracy of the best-validation finished trial within `spent` epochs (the earliest among
    equals); None if no trial finished by then (pbt and miha finish theirs at the end)."""
    within = [r for r in results if r.spent <= spent]
    if not within:
        return None
    return max(enumerate(within), key=lambda item: (item[1].validation, -item[0]))[1].test


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--strategies", nargs="+", default=DEFAULT_SEARCHERS)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=9, help="per trial, with +asha / +hyperband")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/digits_budget.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = Data.digits()
    budget = args.trials * args.epochs
    rows = searchers(args.strategies, budget, args.epochs, args.max_epochs)
    runners: dict[str, Callable[[int], list[Evaluation]]] = {
        name: partial(kubenas_run, row, data=data, budget=budget) for name, row in rows.items()
    }
    runners["optuna-tpe"] = partial(optuna_run, data=data, trials=args.trials, epochs=args.epochs)
    marks = [budget // 4, budget // 2, budget]
    out: dict[str, list[list[tuple[int, float, float]]]] = {}
    lines = [
        f"Test accuracy (%) of the incumbent after {', '.join(map(str, marks))} epochs (a budget of "
        f"{args.trials} trials x {args.epochs} epochs), mean ± std over {args.seeds} seeds; "
        "finished trials: mean count",
        "",
        "| searcher | epochs/trial | " + " | ".join(f"{m} epochs" for m in marks) + " | trials | seconds |",
        "|---" * (len(marks) + 4) + "|",
    ]
    for name, runner in runners.items():
        start = time.perf_counter()
        runs = [runner(seed) for seed in range(args.seeds)]
        seconds = time.perf_counter() - start
        out[name] = [[(r.spent, r.validation, r.test) for r in run] for run in runs]
        cells = []
        for mark in marks:
            found = [v for run in runs if (v := incumbent_test(run, mark)) is not None]
            if len(found) < len(runs):
                cells.append("—" if not found else f"({len(found)}/{len(runs)} seeds)")
                continue
            values = 100 * np.array(found)
            cells.append(f"{values.mean():.2f} ± {values.std(ddof=1):.2f}")
        per_trial = rows[name].epochs if name in rows else args.epochs
        finished = np.mean([len(run) for run in runs])
        lines.append(f"| {name} | {per_trial} | {' | '.join(cells)} | {finished:.1f} | {seconds:.0f} |")
        print(lines[-1], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"args": vars(args) | {"output": str(args.output)}, "results": out}))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
