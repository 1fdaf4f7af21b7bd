"""The NAS-Bench-Graph space plugs into the same searchers (skipped without the `bench` extra)."""

import numpy as np
import pytest

pytest.importorskip("nas_bench_graph")

from benchmarks.nas_bench_graph import SPACE, Table, run, searchers


@pytest.fixture(scope="module")
def cora() -> Table:
    return Table.load("cora")


def test_every_point_of_the_space_is_in_the_table_but_the_all_skip_nets(cora: Table) -> None:
    assert len(cora.rows) == 26206
    rng = np.random.default_rng(0)
    for _ in range(200):
        point = SPACE.sample(rng)
        all_skip = all(point[f"op{i}"] == "skip" for i in range(4))
        assert (cora.lookup(point) is None) == all_skip
    assert cora.lookup({"topology": 0, **{f"op{i}": "skip" for i in range(4)}}) is None


@pytest.mark.parametrize("name", sorted(searchers()))
def test_every_searcher_runs_on_the_benchmark_space_reproducibly(name: str, cora: Table) -> None:
    regrets = run(searchers()[name](SPACE, 0), cora, 12)
    assert np.all((regrets >= 0) & (regrets <= 100))
    assert np.all(np.diff(regrets[:, 1]) <= 0)  # the incumbent's validation accuracy only grows
    assert np.array_equal(regrets, run(searchers()[name](SPACE, 0), cora, 12))
