"""kubenas's search strategies on NAS-Bench-Graph (Qin et al., NeurIPS 2022 Datasets and Benchmarks).

The benchmark's tables ship inside the PyPI package nas-bench-graph (26,206 distinct GNN architectures
per data set, validation and test accuracy of each); nothing is downloaded and no model is trained.
Its space is plugged into the same searchers the operator runs, as a ParamSpace of five categorical
decisions: the macro topology (one of 9 DAGs over 4 computing nodes) and each node's operation (9).

Each strategy gets `--evaluations` table look-ups per run (a repeated architecture counts again, as
a trial would); the incumbent is the trial with the best validation accuracy so far. Its test regret is
the best test accuracy in the table minus the incumbent's test accuracy; its validation regret is the
same on validation accuracy, what the search itself optimises (both in percentage points). The test
regret includes the benchmark's validation/test disagreement, which no search strategy can remove.

    PYTHONPATH=operator:trainer python -m benchmarks.nas_bench_graph --seeds 30 --evaluations 100
    # one data set per process, side by side, then the merged tables:
    PYTHONPATH=operator:trainer python -m benchmarks.nas_bench_graph --report a.json b.json

(run it as a module: run as a file, its folder would shadow the nas_bench_graph package).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kubenas.space.params import Categorical, ParamSpace, Point
from kubenas.strategies import STRATEGIES
from kubenas.strategies.searcher import Observation, RandomSearcher, Searcher, SearcherStrategy
from nas_bench_graph.architecture import Arch, gnn_list, link_list
from nas_bench_graph.readbench import light_read

SPACE = ParamSpace(
    (
        Categorical("topology", tuple(range(len(link_list)))),
        *(Categorical(f"op{i}", tuple(gnn_list)) for i in range(4)),
    )
)


def searchers() -> dict[str, type[Searcher]]:
    """Every registered strategy's searcher, with default settings (random search on this space)."""
    out: dict[str, type[Searcher]] = {"random": RandomSearcher}
    for name, cls in STRATEGIES.items():
        if issubclass(cls, SearcherStrategy):
            out[name] = cls.searcher
    return out


@dataclass(frozen=True)
class Table:
    """One data set: (validation, test) accuracy by architecture hash; None for invalid architectures."""

    name: str
    rows: dict[int, tuple[float, float]]
    best_validation: float
    best_test: float

    @classmethod
    def load(cls, name: str) -> Table:
        bench = light_read(name)
        rows = {h: (float(r["valid_perf"]), float(r["perf"])) for h, r in bench.items()}
        best_validation = max(validation for validation, _ in rows.values())
        return cls(name, rows, best_validation, max(test for _, test in rows.values()))

    def lookup(self, point: Point) -> tuple[float, float] | None:
        topology = link_list[int(point["topology"])]
        ops = [str(point[f"op{i}"]) for i in range(4)]
        return self.rows.get(Arch(list(topology), ops).valid_hash())  # all-skip nets are not in it


def run(searcher: Searcher, table: Table, evaluations: int) -> np.ndarray:
    """(test regret, validation regret) of the incumbent after each evaluation, one proposal at a time."""
    observations: list[Observation] = []
    regrets = np.empty((evaluations, 2))
    best: tuple[float, float] = (0.0, 0.0)
    for i in range(evaluations):
        (point,) = searcher.propose(observations, i, 1)
        result = table.lookup(point)
        observations.append(Observation(i, point, result[0] if result else None))
        if result is not None and result[0] > best[0]:
            best = result
        regrets[i] = 100 * (table.best_test - best[1]), 100 * (table.best_validation - best[0])
    return regrets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["cora", "citeseer", "pubmed"])
    parser.add_argument("--strategies", nargs="+", default=list(searchers()))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--seed-offset", type=int, default=0, help="first seed (tables use 0; tune on others, e.g. 100)"
    )
    parser.add_argument("--evaluations", type=int, default=100)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/nas_bench_graph.json"))
    parser.add_argument(
        "--report", type=Path, nargs="+", help="only print the tables of saved --output files (merged)"
    )
    args = parser.parse_args(argv)
    if args.report:
        print(report([json.loads(path.read_text()) for path in args.report]))
        return

    make = searchers()
    results: dict[str, dict[str, list[list[list[float]]]]] = {}
    seconds: dict[str, float] = {}
    for dataset in args.datasets:
        table = Table.load(dataset)
        results[dataset] = {}
        for name in args.strategies:
            start = time.perf_counter()
            curves = [
                run(make[name](SPACE, seed), table, args.evaluations)
                for seed in range(args.seed_offset, args.seed_offset + args.seeds)
            ]
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            results[dataset][name] = [c.tolist() for c in curves]
            final = np.array([c[-1] for c in curves])
            test, validation = final.mean(0), final.std(0, ddof=1)
            print(
                f"{dataset:10s} {name:10s} test regret {test[0]:.3f} ± {validation[0]:.3f}"
                f"  validation regret {test[1]:.3f} ± {validation[1]:.3f}",
                flush=True,
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "args": vars(args) | {"output": str(args.output), "report": None},
        "regret": results,
        "seconds": seconds,
    }
    args.output.write_text(json.dumps(saved))
    print()
    print(markdown(results, args.strategies, args.datasets, args.evaluations, args.seeds, seconds))


def report(saved: list[dict[str, Any]]) -> str:
    """The tables of one or more saved runs, merged (e.g. one run per data set, run side by side).

    A later run's results for a (data set, strategy) replace an earlier one's, e.g. a strategy rerun
    with new defaults; a strategy's seconds add up over the runs whose results are kept."""
    results: dict[str, dict[str, list[list[list[float]]]]] = {}
    source: dict[tuple[str, str], int] = {}
    strategies: list[str] = []
    for k, run_ in enumerate(saved):
        for dataset, by_strategy in run_["regret"].items():
            results.setdefault(dataset, {}).update(by_strategy)
            source |= {(dataset, name): k for name in by_strategy}
        strategies += [s for s in run_["args"]["strategies"] if s not in strategies]
    seconds: dict[str, float] = {}
    for k in sorted(set(source.values())):
        for name, wall in saved[k].get("seconds", {}).items():
            if any(source.get((d, name)) == k for d in saved[k]["regret"]):
                seconds[name] = seconds.get(name, 0.0) + wall
    seeds = {len(curves) for by_strategy in results.values() for curves in by_strategy.values()}
    evaluations = {run_["args"]["evaluations"] for run_ in saved}
    if len(seeds) != 1 or len(evaluations) != 1:
        raise SystemExit(
            f"--report: runs differ in seeds {sorted(seeds)} or evaluations {sorted(evaluations)}"
        )
    return markdown(results, strategies, list(results), evaluations.pop(), seeds.pop(), seconds)


def markdown(
    results: dict[str, dict[str, list[list[list[float]]]]],
    strategies: list[str],
    datasets: list[str],
    evaluations: int,
    seeds: int,
    seconds: dict[str, float],
) -> str:
    """Final regrets (pp), mean ± std over seeds, their ratio to random search's and the difference."""
    head = " | ".join(f"{d} | x random | Δ ± s.e." for d in datasets)
    lines = [
        f"Regret in percentage points after {evaluations} evaluations, mean ± std over {seeds} seeds;",
        "x random: mean regret over random search's (below 1 is better);",
        "Δ: mean regret minus random search's (negative is better) ± its standard error;",
        "seconds: wall time of all its runs on a shared 2-core machine.",
    ]
    for column, label in ((0, "test regret"), (1, "validation regret")):
        lines += ["", f"{label}:", "", f"| strategy | {head} | mean x random | mean Δ | seconds |"]
        lines.append("|---" * (3 * len(datasets) + 4) + "|")
        for name in strategies:
            cells, deltas, ratios = [], [], []
            for dataset in datasets:
                final = np.array([c[-1][column] for c in results[dataset][name]])
                base = np.array(
                    [c[-1][column] for c in results[dataset].get("random", results[dataset][name])]
                )
                delta = final.mean() - base.mean()
                ratio = final.mean() / base.mean() if base.mean() > 0 else float("nan")
                se = np.sqrt(final.var(ddof=1) / len(final) + base.var(ddof=1) / len(base))
                deltas.append(delta)
                ratios.append(ratio)
                cells.append(
                    f"{final.mean():.3f} ± {final.std(ddof=1):.3f} | {ratio:.2f} | {delta:+.3f} ± {se:.3f}"
                )
            wall = seconds.get(name)
            timing = f"{wall:.0f}" if wall is not None else "-"
            means = f"{np.mean(ratios):.2f} | {np.mean(deltas):+.3f}"
            lines.append(f"| {name} | {' | '.join(cells)} | {means} | {timing} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
