"""Where tensors live: the device (CUDA, then CPU), the data on it when it fits, bf16 autocast."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kubenas_trainer.data import Split

DEVICE_MEMORY_SHARE = 0.5  # keep the data on the GPU when it takes at most this share of free memory


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a GPU when mixed precision is asked for; nothing otherwise."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class Tensors:
    """The splits as tensors: on the device when they fit there, else on the CPU and moved per batch."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor | None
    y_test: Tensor | None
    device: torch.device

    @classmethod
    def of(cls, split: Split, device: torch.device) -> Tensors:
        arrays = [split.x_train, split.y_train, split.x_val, split.y_val]
        arrays += [a for a in (split.x_test, split.y_test) if a is not None]
        size = sum(a.nbytes for a in arrays)
        fits = device.type != "cuda" or size <= DEVICE_MEMORY_SHARE * torch.cuda.mem_get_info(device)[0]
        home = device if fits else torch.device("cpu")

        def put(a: np.ndarray | None) -> Tensor | None:
            return None if a is None else torch.from_numpy(a).to(home)

        x_train, y_train, x_val, y_val = (put(a) for a in arrays[:4])
        assert x_train is not None and y_train is not None and x_val is not None and y_val is not None
        return cls(x_train, y_train, x_val, y_val, put(split.x_test), put(split.y_test), device)

    def batch(self, x: Tensor, y: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
        if x.device == self.device:
            return x[idx], y[idx]
        idx = idx.cpu()
        return x[idx].to(self.device, non_blocking=True), y[idx].to(self.device, non_blocking=True)
