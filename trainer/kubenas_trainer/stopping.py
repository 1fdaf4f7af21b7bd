"""SIGTERM during training: a flag its handler sets, and the exception that ends a trial after a checkpoint.

Apart from the training loop (kubenas_trainer.train) so that the entry point knows them before torch is
imported.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = ["Interrupted", "StopFlag"]


class Interrupted(Exception):
    """SIGTERM arrived; a checkpoint was written to `path`."""

    def __init__(self, epoch: int, path: Path) -> None:
        super().__init__(f"interrupted by SIGTERM in epoch {epoch}; checkpoint at {path}")
        self.path = path


class StopFlag:
    """Set by SIGTERM (a handler is installed only in the main thread), checked after every step."""

    def __init__(self) -> None:
        self.raised = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handle(signum: int, frame: FrameType | None) -> None:
            self.raised = True

        try:
            previous = signal.signal(signal.SIGTERM, handle)
        except ValueError:  # not the main thread: no handler
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
