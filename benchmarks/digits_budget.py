"""A real training task under one epoch budget: kubenas's strategies against optuna's own TPE loop.

Every trial trains an MLP (kubenas_trainer's model and optimizers) on scikit-learn's digits for
`--epochs` epochs; every searcher gets `--trials` trials, i.e. the same total epoch budget. Data: a
fixed test split (20%) never seen by the search, the rest split 75/25 into train and validation. The
incumbent is the trial with the best validation accuracy so far; the table shows its test accuracy
after a quarter, half and all of the budget (mean ± std over seeds).

kubenas's strategies run exactly as in the operator (make_strategy(spec).ask(history, 1), one trial
at a time); "optuna-tpe" is an optuna study driving the same space through study.optimize.

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

import numpy as np
import optuna
import torch
from kubenas.api import NASExperimentSpec, TrialPhase
from kubenas.strategies import make_strategy
from kubenas.trials import TrialRecord, trial_name, trial_seed
from kubenas_trainer.models import build_model
from kubenas_trainer.spec import Architecture, Candidate, Hyperparameters, Layer
from kubenas_trainer.train import make_optimizer
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

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
    model = build_model(candidate.architecture, data.x_train.shape[1], 10)
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


def kubenas_run(name: str, seed: int, data: Data, trials: int, epochs: int) -> list[tuple[float, float]]:
    spec = NASExperimentSpec.model_validate(
        {
            "searchSpace": SEARCH_SPACE,
            "strategy": {"name": name, "seed": seed, "settings": SETTINGS.get(name, {})},
            "budget": {"maxTrials": trials},
        }
    )
    strategy = make_strategy(spec)
    history: list[TrialRecord] = []
    results = []
    for index in range(trials):
        (candidate,) = strategy.ask(history, 1)
        tseed = trial_seed(seed, index)
        val, test = train(candidate, data, epochs, tseed)
        results.append((val, test))
        record = TrialRecord(trial_name("b", index), index, tseed, candidate, TrialPhase.SUCCEEDED)
        history.append(TrialRecord(**{**record.__dict__, "metrics": {"accuracy": val}}))
    return results


def optuna_run(seed: int, data: Data, trials: int, epochs: int) -> list[tuple[float, float]]:
    results: list[tuple[float, float]] = []

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
        results.append((val, test))
        return val

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return results


def incumbent_test(results: list[tuple[float, float]], upto: int) -> float:
    """Test accuracy of the best-validation trial among the first `upto` (the earliest among equals)."""
    best = max(range(upto), key=lambda i: (results[i][0], -i))
    return results[best][1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--strategies", nargs="+", default=["random", "evolution", "reinforce", "tpe", "cmaes", "gp"]
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/digits_budget.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = Data.digits()
    runners: dict[str, Callable[[int], list[tuple[float, float]]]] = {
        name: partial(kubenas_run, name, data=data, trials=args.trials, epochs=args.epochs)
        for name in args.strategies
    }
    runners["optuna-tpe"] = partial(optuna_run, data=data, trials=args.trials, epochs=args.epochs)
    marks = [args.trials // 4, args.trials // 2, args.trials]
    out: dict[str, list[list[tuple[float, float]]]] = {}
    lines = [
        f"Test accuracy (%) of the incumbent after {', '.join(str(m * args.epochs) for m in marks)} epochs "
        f"({args.trials} trials x {args.epochs} epochs), mean ± std over {args.seeds} seeds",
        "",
        "| searcher | " + " | ".join(f"{m * args.epochs} epochs" for m in marks) + " | seconds |",
        "|---" * (len(marks) + 2) + "|",
    ]
    for name, runner in runners.items():
        start = time.perf_counter()
        out[name] = [runner(seed) for seed in range(args.seeds)]
        seconds = time.perf_counter() - start
        cells = []
        for mark in marks:
            values = 100 * np.array([incumbent_test(r, mark) for r in out[name]])
            cells.append(f"{values.mean():.2f} ± {values.std(ddof=1):.2f}")
        lines.append(f"| {name} | {' | '.join(cells)} | {seconds:.0f} |")
        print(lines[-1], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"args": vars(args) | {"output": str(args.output)}, "results": out}))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
