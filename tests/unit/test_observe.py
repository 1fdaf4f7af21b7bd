"""Observation rules: a trial's status from its current segment only, never going back."""

from __future__ import annotations

from kubenas.api import NASTrialStatus, TrialPhase
from kubenas.engine.observe import SegmentState, SegmentView, advance, transition_event
from kubenas_trainer.spec import TrialResult

NOW = "2026-01-01T00:00:00Z"


def ended(phase: str, epochs: int, accuracy: float = 0.9, curve: list[float] | None = None) -> SegmentView:
    result = TrialResult(
        name="t", phase=phase, metrics={"accuracy": accuracy}, epochs=epochs, curve=curve or [], message="m"
    )
    return SegmentView(SegmentState.ENDED, "t-e1", result, "t0")


def test_a_finished_or_paused_trial_does_not_change_whatever_a_segment_shows() -> None:
    done = NASTrialStatus(phase=TrialPhase.SUCCEEDED, epochs=9, objective_value=0.95)
    paused = NASTrialStatus(phase=TrialPhase.PAUSED, epochs=3, objective_value=0.9)
    for segment in (
        ended("Paused", 1, 0.4),
        ended("Failed", 0),
        SegmentView(),
        SegmentView(SegmentState.RUNNING),
    ):
        assert advance(done, segment, "accuracy", NOW) == done
        assert advance(paused, segment, "accuracy", NOW) == paused


def test_an_older_segments_result_never_replaces_a_newer_record() -> None:
    reopened = NASTrialStatus(
        phase=TrialPhase.PENDING, epochs=3, metrics={"accuracy": 0.9}, curve=[0.5, 0.8, 0.9]
    )
    assert advance(reopened, ended("Paused", 1, 0.4), "accuracy", NOW) == reopened
    failed = advance(reopened, ended("Failed", 0), "accuracy", NOW)  # a failure of this segment counts
    assert failed.phase is TrialPhase.FAILED and failed.curve == [0.5, 0.8, 0.9]
    later = advance(reopened, ended("Paused", 9, 0.97, [0.5] * 9), "accuracy", NOW)
    assert (later.phase, later.epochs, later.objective_value) == (TrialPhase.PAUSED, 9, 0.97)


def test_a_running_trial_whose_segment_vanished_is_pending_again() -> None:
    running = NASTrialStatus(phase=TrialPhase.RUNNING, start_time="t0")
    interrupted = advance(running, SegmentView(), "accuracy", NOW)
    assert (
        interrupted.phase is TrialPhase.PENDING and "resumes from its last checkpoint" in interrupted.message
    )
    event = transition_event("t", running, interrupted, "accuracy")
    assert event is not None and (event.type, event.reason) == ("Warning", "TrialInterrupted")
    pending = NASTrialStatus()
    assert advance(pending, SegmentView(), "accuracy", NOW) == pending  # not started yet: nothing to say


def test_one_event_per_transition() -> None:
    pending = NASTrialStatus()
    running = advance(pending, SegmentView(SegmentState.RUNNING, "t", start_time="t0"), "accuracy", NOW)
    assert (running.phase, running.start_time) == (TrialPhase.RUNNING, "t0")
    assert transition_event("t", pending, running, "accuracy") is None
    paused = advance(running, ended("Paused", 1), "accuracy", NOW)
    event = transition_event("t", running, paused, "accuracy")
    assert event is not None and event.reason == "TrialPaused" and "accuracy=0.9" in event.message
    assert transition_event("t", paused, paused, "accuracy") is None
    assert (
        advance(running, SegmentView(SegmentState.RUNNING, "t", start_time="t9"), "accuracy", NOW) == running
    )
