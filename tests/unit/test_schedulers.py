"""Schedulers decide from per-epoch scores: ASHA, Hyperband, the median stopping rule."""

import numpy as np
import pytest
from kubenas.schedulers import ASHA, Bracket, Continue, Hyperband, MedianStopping, Promote, Stop, TrialCurve


def trial(index: int, *scores: float, paused: bool = False) -> TrialCurve:
    return TrialCurve(f"t-{index}", index, tuple(scores), paused)


def test_asha_stops_the_worse_part_of_a_rung() -> None:
    asha = ASHA(min_epochs=1, max_epochs=9, eta=3)
    values = np.random.default_rng(0).permutation(np.linspace(0.1, 0.9, 9))
    rung = [trial(i, float(v)) for i, v in enumerate(values)]
    decisions = {t.scores[0]: asha.decide(t, rung) for t in rung}
    kept = sorted(v for v, d in decisions.items() if isinstance(d, Continue))
    assert kept == pytest.approx([0.7, 0.8, 0.9])  # the top third goes on
    assert all(isinstance(d, Stop) for v, d in decisions.items() if v < 0.65)


def test_asha_pauses_the_first_arrivals_and_promotes_them_later() -> None:
    asha = ASHA(min_epochs=1, max_epochs=9, eta=3)
    first = trial(0, 0.8)
    assert isinstance(asha.decide(first, [first]), Stop)  # alone at the rung: floor(1/3) = 0 promotions
    paused = trial(0, 0.8, paused=True)
    later = [paused, trial(1, 0.5), trial(2, 0.6)]
    assert asha.decide(paused, later) == Promote(3, "top 1/3 at rung 1")  # resume to the next rung
    assert isinstance(asha.decide(later[1], later), Stop)


def test_asha_continues_between_rungs_and_stops_at_the_maximum() -> None:
    asha = ASHA(min_epochs=1, max_epochs=9, eta=3)
    assert Bracket(1, 9, 3).rungs == [1, 3]
    between = trial(0, 0.1, 0.2)
    assert asha.decide(between, [between]) == Continue()
    done = trial(0, *[0.5] * 9)
    assert isinstance(asha.decide(done, [done]), Stop)


def test_asha_rejects_bad_settings_with_the_rule() -> None:
    with pytest.raises(ValueError, match=r"eta must be >= 2 \(eta=1\)"):
        Bracket(1, 9, 1)
    with pytest.raises(ValueError, match=r"minEpochs must lie in \[1, maxEpochs\]"):
        Bracket(10, 9, 3)


def test_hyperband_spreads_trials_over_brackets_that_compare_only_among_themselves() -> None:
    hyperband = Hyperband(min_epochs=1, max_epochs=9, eta=3)
    assert [b.rungs for b in hyperband.brackets()] == [[1, 3], [3], []]
    # trial 2 sits in the last bracket (no rungs): it trains to the end whatever the others did
    weak = trial(2, 0.01)
    strong = [trial(i, 0.9) for i in (0, 1, 3, 4, 6, 7)]
    assert hyperband.decide(weak, [weak, *strong]) == Continue()
    # trial 0 is compared with trials 3 and 6 of its own bracket only
    bracket0 = [trial(0, 0.3), trial(3, 0.2), trial(6, 0.1)]
    others = [trial(1, 0.99), trial(4, 0.99)]
    assert hyperband.decide(bracket0[0], bracket0 + others) == Continue()


def test_median_rule_stops_a_trial_below_the_median_running_average() -> None:
    rule = MedianStopping(grace_epochs=1, min_trials=3)
    peers = [trial(1, 0.5, 0.6, 0.7), trial(2, 0.4, 0.5, 0.6), trial(3, 0.6, 0.7, 0.8)]
    low = trial(0, 0.2, 0.3)
    assert isinstance(rule.decide(low, [low, *peers]), Stop)
    high = trial(0, 0.5, 0.7)
    assert rule.decide(high, [high, *peers]) == Continue()
    assert rule.decide(trial(0, 0.1), peers) == Continue()  # within the grace period
    assert rule.decide(low, [low, *peers[:2]]) == Continue()  # too few peers to judge


def test_hyperband_brackets_never_start_beyond_the_budget() -> None:
    """s_max = floor(log_eta(max / min)): with 10 epochs and eta 3 the brackets start at 1, 3 and 9."""
    assert [b.min_epochs for b in Hyperband(1, 10, 3).brackets()] == [1, 3, 9]
    assert [b.min_epochs for b in Hyperband(1, 9, 3).brackets()] == [1, 3, 9]
    assert [b.min_epochs for b in Hyperband(1, 27, 3).brackets()] == [1, 3, 9, 27]
    assert [b.min_epochs for b in Hyperband(2, 5, 2).brackets()] == [2, 4]
