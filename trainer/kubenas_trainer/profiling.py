"""Cost metrics of a trained model: size, forward FLOPs, peak memory, GPU readings, inference latency."""

from __future__ import annotations

import resource
import statistics
import sys
import time

import torch
from torch import nn

_GATES = {nn.LSTM: 4, nn.GRU: 3}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _recurrent_flops(module: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of an LSTM/GRU over a (N, L, C) batch: 2 x gates x (input + hidden) x hidden per step."""
    assert isinstance(module, nn.LSTM | nn.GRU)
    gates = _GATES[type(module)]
    batch, length, width = x.shape
    directions = 2 if module.bidirectional else 1
    per_step = 2 * gates * (width + module.hidden_size) * module.hidden_size
    return int(batch * length * directions * per_step)


def forward_flops(model: nn.Module, sample: torch.Tensor) -> int:
    """FLOPs of one forward pass over `sample` (a batch of one): matmuls and convolutions as counted by
    PyTorch's FlopCounterMode, plus recurrent layers (fused kernels it does not count)."""
    from torch.utils.flop_counter import FlopCounterMode  # imports triton (seconds): only when counting

    recurrent = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: object) -> None:
        nonlocal recurrent
        recurrent += _recurrent_flops(module, args[0])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.LSTM | nn.GRU)]
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model.eval()(sample)
    finally:
        for handle in handles:
            handle.remove()
    return int(counter.get_total_flops()) + recurrent


def peak_memory_bytes(device: torch.device) -> int:
    """CUDA: the most memory tensors held; CPU: the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_memory() -> None:
    """Start peak_memory_bytes afresh, for a process that runs trial after trial (kubenas_trainer.worker):
    CUDA's peak statistics, and on Linux the process's peak resident set size (/proc/self/clear_refs)."""
    if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        torch.cuda.reset_peak_memory_stats()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:  # not Linux, or not allowed: the peak stays the process's
        pass


def gpu_readings(device: torch.device) -> dict[str, float]:
    """Utilisation (%) and power (W) where the driver reports them (needs NVML); else nothing."""
    if device.type != "cuda":
        return {}
    readings: dict[str, float] = {}
    try:
        readings["gpuUtilization"] = float(torch.cuda.utilization(device))
        readings["gpuPowerWatts"] = float(torch.cuda.power_draw(device)) / 1000.0
    except Exception:  # no NVML, or a device that does not report
        pass
    return readings


def inference_seconds_per_sample(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Median over repeats of one eval-mode forward pass over x, divided by its batch size."""
    model.eval()
    timings = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            started = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            timings.append(time.perf_counter() - started)
    return statistics.median(timings) / len(x)
