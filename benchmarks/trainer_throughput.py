"""Training throughput (samples/s) of kubenas-trainer against a plain PyTorch DataLoader loop.

Both train the same network (built by kubenas_trainer.models from the same architecture) with the same
optimizer and batch size on MNIST-shaped synthetic data (1x28x28 inputs, 10 classes). kubenas runs its
real trainer (train() on an .npz file: data kept on the device, validation, checkpoints and all) and the
throughput is its own per-epoch samplesPerSecond (training steps only); the baseline is the textbook
loop: DataLoader(TensorDataset, shuffle=True) and a .to(device) per batch. Runs on CUDA when present,
and always on the CPU. Each cell: the median over repeats of the median over epochs after the first.

    python benchmarks/trainer_throughput.py [--samples 8192] [--epochs 4] [--repeats 3] [--batch 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from kubenas_trainer.models import build_model
from kubenas_trainer.optim import make_optimizer
from kubenas_trainer.spec import Architecture, Candidate, Hyperparameters, Layer, Training, TrialSpec
from kubenas_trainer.train import train
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SHAPE = (1, 28, 28)
ARCHITECTURES = {
    "MLP 256-128": [
        Layer(type="dense", units=256, activation="relu"),
        Layer(type="dense", units=128, activation="relu"),
    ],
    "CNN 16c-32c-64": [
        Layer(type="conv2d", units=16, activation="relu", pooling="max"),
        Layer(type="conv2d", units=32, activation="relu", pooling="max"),
        Layer(type="dense", units=64, activation="relu"),
    ],
}


def synthetic(path: Path, samples: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(samples, *SHAPE)).astype(np.uint8)
    np.savez(path, x=x, y=rng.integers(0, 10, size=samples))


def kubenas(candidate: Candidate, data: Path, epochs: int, run_dir: Path, validation: float) -> float:
    training = Training(dataset=str(data), epochs=epochs, validation_fraction=validation)
    train(TrialSpec(name="bench", candidate=candidate, training=training, seed=0), run_dir)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return statistics.median(json.loads(line)["samplesPerSecond"] for line in lines[1:])


def dataloader(candidate: Candidate, data: Path, epochs: int, device: torch.device, train_n: int) -> float:
    with np.load(data) as arrays:
        x = torch.from_numpy(arrays["x"][:train_n].astype(np.float32) / 255.0)
        y = torch.from_numpy(arrays["y"][:train_n].astype(np.int64))
    torch.manual_seed(0)
    model = build_model(candidate.architecture, SHAPE, 10).to(device)
    optimizer = make_optimizer(model.parameters(), candidate.hyperparameters)
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=candidate.hyperparameters.batch_size,
        shuffle=True,
        pin_memory=device.type == "cuda",
    )
    rates = []
    for _ in range(epochs):
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(len(x) / (time.perf_counter() - started))
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    validation = 0.1
    train_n = args.samples - round(args.samples * validation)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.insert(0, torch.device("cuda"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist-shaped.npz"
        synthetic(data, args.samples)
        for name, layers in ARCHITECTURES.items():
            hp = Hyperparameters(learning_rate=1e-3, optimizer="adam", batch_size=args.batch)
            candidate = Candidate(architecture=Architecture(layers=layers), hyperparameters=hp)
            for device in devices:
                ours, theirs = [], []
                for repeat in range(args.repeats):  # interleaved, so drifts in machine load hit both
                    if device.type == "cpu" and torch.cuda.is_available():
                        ours.append(float("nan"))  # the trainer always picks CUDA when present
                    else:
                        run_dir = Path(tmp) / f"{name}-{device}-{repeat}".replace(" ", "_")
                        run_dir.mkdir()
                        ours.append(kubenas(candidate, data, args.epochs, run_dir, validation))
                    theirs.append(dataloader(candidate, data, args.epochs, device, train_n))
                rows.append((name, str(device), statistics.median(ours), statistics.median(theirs)))
    print(
        f"MNIST-shaped synthetic data: {train_n} training samples, batch {args.batch}, adam, "
        f"{args.epochs} epochs (first dropped), median of {args.repeats} repeats, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    print("| model | device | kubenas-trainer samples/s | DataLoader loop samples/s | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, device, ours, theirs in rows:
        print(f"| {name} | {device} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |")


if __name__ == "__main__":
    main()
