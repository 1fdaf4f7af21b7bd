"""Forecasting tasks from statsmodels' bundled series: predict the next value from a window."""

from __future__ import annotations

import numpy as np

from kubenas_trainer.data.dataset import Dataset
from kubenas_trainer.shapes import DEFAULT_SEQUENCE_LENGTHS
from kubenas_trainer.spec import Task, UnusableSpec


def windows(series: np.ndarray, length: int) -> Dataset:
    """Samples (length, 1) of consecutive values, each labelled with the value that follows."""
    if len(series) <= length + 2:
        raise UnusableSpec(
            f"training.sequenceLength: {length} leaves no samples in a series of {len(series)}"
        )
    starts = np.arange(len(series) - length)
    x = np.stack([series[s : s + length] for s in starts])[:, :, None].astype(np.float32)
    y = series[starts + length].astype(np.float32)
    return Dataset(x, y, Task.REGRESSION, ordered=True)


def sunspots(length: int | None) -> Dataset:
    """Yearly sunspot numbers 1700-2008 (309 values); default window 20 years."""
    from statsmodels.datasets import sunspots as source

    series = source.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    return windows(series, length or DEFAULT_SEQUENCE_LENGTHS["sunspots"])


def co2(length: int | None) -> Dataset:
    """Weekly Mauna Loa CO2 (ppm) 1958-2001, gaps interpolated; default window 52 weeks."""
    from statsmodels.datasets import co2 as source

    frame = source.load_pandas().data
    series = frame["co2"].interpolate(limit_direction="both").to_numpy(dtype=np.float64)
    return windows(series, length or DEFAULT_SEQUENCE_LENGTHS["co2"])


SEQUENCE_SETS = {"sunspots": sunspots, "co2": co2}
