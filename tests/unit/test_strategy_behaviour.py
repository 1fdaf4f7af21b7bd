"""The newer searchers do what they are for: local search climbs to the optimum, the predictor ranks
unseen candidates, the RL controller's reward rises, BOHB models the highest well-filled fidelity."""

from __future__ import annotations

import numpy as np
import pytest
from kubenas.space.params import ActiveIf, Categorical, Integer, ParamSpace, Point, Real
from kubenas.strategies.bananas import BananasSearcher, BananasSettings, Ensemble, encode
from kubenas.strategies.bohb import BOHBSearcher, BOHBSettings, model_fidelity
from kubenas.strategies.gp import features
from kubenas.strategies.local_search import LocalSearchSearcher, LocalSearchSettings
from kubenas.strategies.reinforce import ReinforceSearcher, ReinforceSettings
from kubenas.strategies.searcher import Observation, RandomSearcher, Searcher

# Six decisions of five options; the score counts the decisions that match a hidden target: one
# optimum (6), and every point one decision away from a better one.
SPACE = ParamSpace(tuple(Categorical(f"x{i}", tuple(range(5))) for i in range(6)))
TARGET = {f"x{i}": (3 * i) % 5 for i in range(6)}


def matches(point: Point) -> float:
    return float(sum(point[k] == v for k, v in TARGET.items()))


def scores(searcher: Searcher, n: int, parallel: int = 1) -> np.ndarray:
    observations: list[Observation] = []
    while len(observations) < n:
        for point in searcher.propose(observations, len(observations), min(parallel, n - len(observations))):
            observations.append(Observation(len(observations), point, matches(point)))
    return np.array([o.score for o in observations])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_local_search_reaches_the_optimum_of_a_small_landscape(seed: int) -> None:
    settings = LocalSearchSettings(n_startup_trials=3)
    found = scores(LocalSearchSearcher(SPACE, seed, settings), 150, parallel=2)
    assert found.max() == 6.0
    assert scores(RandomSearcher(SPACE, seed), 150).max() < 6.0  # 15,625 points: chance is ~1%


def test_local_search_restarts_once_every_neighbour_is_tried() -> None:
    """On a space of 2 x 2 points the neighbourhoods run out: it goes on with untried random points."""
    tiny = ParamSpace((Categorical("a", (0, 1)), Categorical("b", (0, 1))))
    searcher = LocalSearchSearcher(tiny, 0, LocalSearchSettings(n_startup_trials=1))
    observations: list[Observation] = []
    for i in range(4):
        (point,) = searcher.propose(observations, i, 1)
        observations.append(Observation(i, point, float(point["a"]) + float(point["b"])))
    assert len({(o.point["a"], o.point["b"]) for o in observations}) == 4


def test_local_search_neighbours_of_a_numeric_parameter_are_grid_steps() -> None:
    space = ParamSpace((Real("lr", 1e-4, 1e-1, log=True),))
    searcher = LocalSearchSearcher(space, 0, LocalSearchSettings(n_startup_trials=1, bins=4))
    first = Observation(0, {"lr": 1e-2}, 1.0)
    (point,) = searcher.propose([first], 1, 1)
    assert point["lr"] == pytest.approx(1e-1) or point["lr"] == pytest.approx(1e-4 * 10 ** (4 / 3))


def test_reinforce_average_reward_rises_over_the_run() -> None:
    """Mean reward of trials 1-8 (a uniform policy, then one update), of trials 41-80 and 81-120,
    three seeds, four trials per round: it rises from random's 1.2 matches of 6 towards the optimum."""
    settings = ReinforceSettings()
    runs = np.array([scores(ReinforceSearcher(SPACE, seed, settings), 120, parallel=4) for seed in range(3)])
    start, middle, end = runs[:, :8].mean(), runs[:, 40:80].mean(), runs[:, 80:].mean()
    assert start < 2.0 < middle < end and end > 4.0


def test_reinforce_rank_reward_is_centred_and_scale_free() -> None:
    from kubenas.strategies.reinforce import normalised

    assert normalised([1.0, 2.0, 3.0], "rank") == 1.0
    assert normalised([3.0, 2.0, 1.0], "rank") == -1.0
    assert normalised([1.0, 3.0, 2.0], "rank") == 0.0
    assert normalised([10.0, 30.0, 20.0], "zscore") == pytest.approx(normalised([1.0, 3.0, 2.0], "zscore"))


def test_bananas_ensemble_ranks_held_out_architectures_better_than_chance() -> None:
    """Fitted on 100 NAS-Bench-Graph (cora) architectures, it ranks 300 others by validation accuracy;
    Kendall's tau averaged over three such slices (0.30, 0.34, 0.30 with the defaults)."""
    pytest.importorskip("nas_bench_graph")
    from scipy.stats import kendalltau

    from benchmarks.nas_bench_graph import SPACE as GRAPH
    from benchmarks.nas_bench_graph import Table

    table = Table.load("cora")
    defaults = BananasSettings()
    taus = []
    for data_seed in range(3):
        rng = np.random.default_rng(data_seed)
        points = [p for p in (GRAPH.sample(rng) for _ in range(500)) if table.lookup(p) is not None][:400]
        x = np.array([features(GRAPH, p) for p in points])
        y = np.array([table.lookup(p)[0] for p in points])  # type: ignore[index]
        ensemble = Ensemble(
            x[:100], y[:100], size=defaults.ensemble_size, hidden=defaults.hidden_units, seed=0
        )
        mean, spread = ensemble.predict(x[100:])
        taus.append(kendalltau(mean, y[100:]).statistic)
        assert np.all(spread >= 0) and spread.mean() > 0
    assert np.mean(taus) > 0.3, taus  # chance gives 0 ± 0.04 on 300 points


def test_bananas_encoding_is_the_gp_features_of_each_point() -> None:
    """The batched encoder gives gp.features row by row, inactive parameters included."""
    space = ParamSpace(
        (
            Categorical("kind", ("a", "b")),
            Integer("n", 1, 9, condition=ActiveIf("kind", one_of=("b",))),
            Real("lr", 1e-4, 1e-1, log=True),
        )
    )
    rng = np.random.default_rng(0)
    points = [space.sample(rng) for _ in range(20)]
    assert {p["kind"] for p in points} == {"a", "b"}
    assert np.array_equal(encode(space, points), np.array([features(space, p) for p in points]))


def test_bananas_proposes_untried_candidates_it_predicts_well() -> None:
    searcher = BananasSearcher(SPACE, 0, BananasSettings(n_startup_trials=10, ensemble_size=3, candidates=64))
    found = scores(searcher, 60, parallel=2)
    assert found[30:].mean() > found[:10].mean() + 1.0


# BOHB on a synthetic multi-fidelity objective: after 1 epoch a small x looks best, after 9 a large x
# is best (a fast starter that ends worse), as learning rates often behave.
LINE = ParamSpace((Categorical("x", tuple(range(10))), Categorical("noise", ("a", "b"))))


def curve(point: Point, epochs: int) -> tuple[float, ...]:
    x = float(point["x"]) / 9
    return tuple((1 - x) * np.exp(-e / 2) + x * (1 - np.exp(-e / 2)) for e in range(1, epochs + 1))


def hyperband_like(rng: np.random.Generator) -> list[Observation]:
    """40 trials stopped after 1 epoch, 30 trained for 9 (curves as the controller records them)."""
    out = []
    for i in range(70):
        point = LINE.sample(rng)
        c = curve(point, 1 if i < 40 else 9)
        out.append(Observation(i, point, c[-1], curve=c))
    return out


def test_bohb_models_the_most_epochs_that_enough_trials_reached() -> None:
    history = hyperband_like(np.random.default_rng(0))
    assert model_fidelity(history, 30) == 9
    assert model_fidelity(history, 31) == 1
    assert model_fidelity(history, 71) is None
    plain = [Observation(o.index, o.point, o.score) for o in history]  # no curves: full fidelity
    assert model_fidelity(plain, 10) == float("inf")


@pytest.mark.parametrize(("min_points", "high"), [(20, True), (50, False)])
def test_bohb_follows_the_fidelity_it_models(min_points: int, high: bool) -> None:
    history = hyperband_like(np.random.default_rng(1))
    searcher = BOHBSearcher(LINE, 0, BOHBSettings(min_points=min_points, random_fraction=0.0))
    proposed = searcher.propose(history, len(history), 8)
    mean_x = np.mean([float(p["x"]) for p in proposed])
    assert mean_x > 6.0 if high else mean_x < 3.0  # random: 4.5


def test_bohb_draws_at_random_until_a_fidelity_has_enough_trials() -> None:
    history = hyperband_like(np.random.default_rng(2))[:5]
    searcher = BOHBSearcher(LINE, 3, BOHBSettings(min_points=10))
    assert searcher.propose(history, 5, 4) == RandomSearcher(LINE, 3).propose(history, 5, 4)


@pytest.mark.slow  # ~150 decide() passes, each rebuilding a TPE study
def test_bohb_under_hyperband_models_the_rungs_the_controller_records() -> None:
    """Through the controller: Hyperband pauses trials at rungs 1 and 3 of 9 epochs, the trainer's
    per-epoch metrics are recorded, and bohb's model moves up to a higher rung once enough got there."""
    from dataclasses import replace

    from kubenas.api import NASExperimentSpec, NASExperimentStatus, NASTrialStatus, TrialPhase
    from kubenas.engine.decide import decide
    from kubenas.engine.records import TrialRecord, record
    from kubenas.strategies import make_strategy

    spec = NASExperimentSpec.model_validate(
        {
            "searchSpace": {"layers": {"count": {"min": 1, "max": 3}, "units": {"values": [8, 16, 32, 64]}}},
            "budget": {"maxTrials": 40, "parallelTrials": 3},
            "training": {"dataset": "digits", "epochs": 9},
            "earlyStopping": {"rule": "hyperband", "minEpochs": 1, "reductionFactor": 3},
            "strategy": {"name": "bohb", "seed": 1, "reuseResults": False, "settings": {"minPoints": 5}},
        }
    )

    def accuracy(trial: TrialRecord, epoch: int) -> float:
        units = sum(layer.units for layer in trial.candidate.architecture.layers) / 192
        return float(units * (1 - np.exp(-epoch / 3)))

    trials: dict[str, TrialRecord] = {}
    status = NASExperimentStatus()
    for _ in range(300):
        plan = decide(
            "x", spec, sorted(trials.values(), key=lambda t: t.index), status, 1, "2026-01-01T00:00:00Z"
        )
        status = plan.status
        for stop in plan.stop:
            trials[stop.name] = replace(trials[stop.name], phase=TrialPhase.STOPPED)
        if plan.finished:
            break
        for launch in plan.launch:
            trial = trials.get(launch.name) or record(launch.spec, NASTrialStatus(), launch.name)
            epochs = launch.stop_at or 9
            curve = [accuracy(trial, e) for e in range(1, epochs + 1)]
            trials[launch.name] = replace(
                trial,
                phase=TrialPhase.PAUSED if epochs < 9 else TrialPhase.SUCCEEDED,
                metrics={"accuracy": curve[-1]},
                epochs=epochs,
                epoch_metrics=tuple({"accuracy": v} for v in curve),
            )
    assert plan.finished and len(trials) <= 40
    strategy = make_strategy(spec)
    observations = strategy.observations(list(trials.values()))  # type: ignore[attr-defined]
    assert {len(o.curve) for o in observations} >= {1, 3, 9}
    assert model_fidelity(observations, 5) > 1
