"""The operator's pass queue (k8s.handlers.PassQueue): requests coalesce, an experiment's passes never
overlap, urgent passes go first, routine ones are capped and skipped right after a pass."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from kubenas.k8s import handlers
from kubenas.k8s.handlers import PassQueue, Request

URGENT, ROUTINE, FORCED = Request(True, False), Request(False, False), Request(True, True)


class Passes:
    """A pass that records itself and blocks until released (per experiment)."""

    def __init__(self) -> None:
        self.log: list[tuple[tuple[str, str], Request]] = []
        self.running: set[tuple[str, str]] = set()
        self.overlaps = 0
        self.gates: dict[tuple[str, str], threading.Event] = {}
        self.lock = threading.Lock()

    def gate(self, key: tuple[str, str]) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(key, threading.Event())

    def __call__(self, key: tuple[str, str], request: Request) -> None:
        with self.lock:
            self.overlaps += key in self.running
            self.running.add(key)
            self.log.append((key, request))
        self.gate(key).wait(10)
        with self.lock:
            self.running.discard(key)


def until(check: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_requests_during_a_pass_coalesce_into_one_more_pass_never_overlapping() -> None:
    passes = Passes()
    queue = PassQueue(passes, workers=4, interval=0.0)
    key = ("ns", "a")
    queue.request(key, URGENT)
    until(lambda: len(passes.log) == 1)
    for _ in range(20):  # a burst of Job events while the pass runs
        queue.request(key, URGENT)
    queue.request(key, FORCED)
    passes.gate(key).set()
    until(lambda: len(passes.log) == 2 and not passes.running)
    time.sleep(0.1)
    assert len(passes.log) == 2 and passes.overlaps == 0
    assert passes.log[1] == (key, Request(True, True))  # the burst, merged


def test_urgent_passes_overtake_routine_ones_and_routine_ones_are_capped() -> None:
    passes = Passes()
    queue = PassQueue(passes, workers=3, interval=0.0)  # routine passes may take 2 of the 3 workers
    routine = [("ns", f"r{i}") for i in range(4)]
    for key in routine:
        queue.request(key, ROUTINE)
    until(lambda: len(passes.log) == 2)
    time.sleep(0.1)
    assert len(passes.log) == 2  # the third worker stays free for urgent passes
    queue.request(("ns", "u"), URGENT)
    until(lambda: len(passes.log) == 3)
    assert passes.log[2][0] == ("ns", "u")
    for key in [*routine, ("ns", "u")]:
        passes.gate(key).set()
    until(lambda: len(passes.log) == 5 and not passes.running)
    assert {k for k, _ in passes.log} == {*routine, ("ns", "u")}  # first in, first out: none starves


def test_a_routine_pass_right_after_a_pass_is_skipped() -> None:
    passes = Passes()
    queue = PassQueue(passes, workers=2, interval=10.0)
    key = ("ns", "a")
    passes.gate(key).set()
    queue.request(key, URGENT)
    until(lambda: len(passes.log) == 1 and not passes.running)
    queue.request(key, ROUTINE)  # within half an interval of the last pass: nothing new to see
    time.sleep(0.1)
    assert len(passes.log) == 1
    queue.request(key, URGENT)  # something happened: a pass regardless
    until(lambda: len(passes.log) == 2)


def test_a_pass_that_raises_is_retried_later_and_other_experiments_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handlers, "ERROR_DELAY", 0.2)
    calls: list[str] = []

    def run(key: tuple[str, str], request: Request) -> None:
        calls.append(key[1])
        if key[1] == "broken":
            raise RuntimeError("a bug in one experiment's pass")

    queue = PassQueue(run, workers=2, interval=0.0)
    queue.request(("ns", "broken"), URGENT)
    for _ in range(5):
        queue.request(("ns", "healthy"), URGENT)
        until(lambda: calls.count("healthy") >= 1)
    until(lambda: calls.count("broken") >= 2)  # retried after ERROR_DELAY, with no new request
    assert "healthy" in calls
