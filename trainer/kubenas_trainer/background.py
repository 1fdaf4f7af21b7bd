"""A background thread that handles only the latest state submitted to it (live metrics, uploads).

Training submits a state after every epoch and goes on at once. A state still waiting when a newer one
arrives is dropped (release() is called on it), so a slow or failing handler never holds training up
and never falls behind: the next state it handles is the newest. The running handler's `interrupt`
event is set when a newer state waits or the worker closes, so a handler retrying a failed call can
give up on a state nobody needs any more.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

State = TypeVar("State")


class Latest(Generic[State]):
    """One daemon thread calling handle(state, interrupt) on the latest state submitted."""

    def __init__(
        self,
        name: str,
        handle: Callable[[State, threading.Event], None],
        release: Callable[[State], None] = lambda state: None,
    ) -> None:
        self.name, self.handle, self.release = name, handle, release
        self._changed = threading.Condition()
        self._waiting: State | None = None
        self._closing = False
        self._interrupt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, state: State) -> None:
        """Hand over a state (replacing one still waiting); returns at once."""
        with self._changed:
            if self._closing:
                raise RuntimeError(f"{self.name} is closed")
            dropped, self._waiting = self._waiting, state
            self._interrupt.set()
            self._changed.notify()
        if dropped is not None:
            self.release(dropped)

    def close(self, handle_waiting: bool, timeout: float | None = None) -> None:
        """Stop the thread: after handling the waiting state (handle_waiting), or dropping it and
        interrupting the running handler; wait up to `timeout` seconds for the running handler."""
        with self._changed:
            self._closing = True
            dropped = None
            if not handle_waiting:
                dropped, self._waiting = self._waiting, None
                self._interrupt.set()
            self._changed.notify()
        if dropped is not None:
            self.release(dropped)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while self._waiting is None and not self._closing:
                    self._changed.wait()
                state, self._waiting = self._waiting, None
                if state is None:
                    return
                self._interrupt.clear()
            try:
                self.handle(state, self._interrupt)
            except Exception as error:  # a handler reports its own failures; this one is a bug
                print(f"{self.name}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            finally:
                self.release(state)
