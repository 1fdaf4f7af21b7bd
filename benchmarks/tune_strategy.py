"""Tuning a strategy's settings on NAS-Bench-Graph, on seeds that are not the table's (100.. by habit).

Prints each variant's mean validation regret over random search's on the same seeds (below 1 is
better) and its seconds per run; writes every regret to OUTPUT. One data set per process:

    PYTHONPATH=operator:trainer:. OPENBLAS_NUM_THREADS=1 python -m benchmarks.tune_strategy cora out.json \
        '{"ucb": ["bananas", {"acquisition": "ucb", "ucbBeta": 0.5}]}' 100 120

Never run it on cs, physics or arxiv: they are kept for checking tuned defaults.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from kubenas.strategies.bananas import BananasSearcher
from kubenas.strategies.reinforce import ReinforceSearcher
from kubenas.strategies.searcher import RandomSearcher, Searcher

from benchmarks.nas_bench_graph import SPACE, Table, run

SEARCHERS: dict[str, type[Searcher]] = {"bananas": BananasSearcher, "reinforce": ReinforceSearcher}
HELD_OUT = {"cs", "physics", "arxiv"}


def main(dataset: str, output: str, variants: dict[str, list], first: int, last: int) -> None:
    if dataset in HELD_OUT:
        raise SystemExit(f"{dataset} is held out: tune on cora, citeseer, pubmed, photo or computers")
    table, seeds = Table.load(dataset), range(first, last)
    random = np.array([run(RandomSearcher(SPACE, s), table, 100)[-1][1] for s in seeds])
    results: dict[str, dict[str, object]] = {"random": {"val": random.tolist(), "sec": 0.0}}
    for name, (kind, settings) in variants.items():
        searcher = SEARCHERS[kind]
        started = time.perf_counter()
        regrets = [run(searcher(SPACE, s, searcher.Settings(**settings)), table, 100)[-1][1] for s in seeds]
        seconds = (time.perf_counter() - started) / len(seeds)
        results[name] = {"val": regrets, "sec": seconds}
        print(dataset, name, f"{np.mean(regrets) / random.mean():.3f}", f"{seconds:.2f}s/run", flush=True)
        Path(output).write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
