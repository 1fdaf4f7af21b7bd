"""Checking a PNG file without trusting the code that wrote it: signature, IHDR size, decoded pixels."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must come first; AssertionError if not a PNG."""
    head = path.read_bytes()[:33]
    assert head[:8] == SIGNATURE, f"{path}: not a PNG (signature {head[:8]!r})"
    length, kind = struct.unpack(">I4s", head[8:16])
    assert kind == b"IHDR" and length == 13, f"{path}: first chunk is {kind!r}, not IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def assert_sensible_png(path: Path, min_size: tuple[int, int] = (300, 200), max_side: int = 4000) -> None:
    """A PNG of plausible dimensions whose pixels are not one flat colour: some ink on a light page."""
    from matplotlib.image import imread

    width, height = png_size(path)
    assert min_size[0] <= width <= max_side and min_size[1] <= height <= max_side, (path, width, height)
    pixels = imread(path)  # decodes the whole file: a truncated or corrupt one raises
    assert pixels.shape[:2] == (height, width), (path, pixels.shape)
    rgb = np.round(pixels[..., :3].reshape(-1, 3) * 255).astype(np.uint32)
    colours = len(np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]))
    ink = float(np.mean(rgb.mean(axis=1) < 0.9 * 255))  # share of pixels that are not (near) white
    assert colours >= 8, f"{path}: only {colours} distinct colours"
    assert 0.005 < ink < 0.9, f"{path}: {ink:.1%} of the pixels are drawn"
