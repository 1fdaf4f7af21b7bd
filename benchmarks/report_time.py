"""How long `kubenas report` takes on a 200-trial run, end to end and by stage.

Writes synthetic but realistic run directories of `--trials` trials (tests/report/synthetic.py: candidates
sampled from a digits-like search space, saturating curves, the statuses and metrics.jsonl rows the local
runner writes; 9-epoch trials, ASHA rungs 1 and 3, or PBT generations of 4 members), then times:

- the command as a user runs it (`python -m kubenas.cli report RUN_DIR --output DIR`, a fresh process each
  time, so imports of optuna and matplotlib are included), `--repeats` times, median and max;
- in one process (imports excluded, warmed up once): loading the run directory, the importance
  (optuna's PED-ANOVA), each figure, and the HTML, median of `--repeats`.

    PYTHONPATH=operator:trainer:. python -m benchmarks.report_time --trials 200 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

from tests.report.synthetic import write_run_dir

MODES = ("random", "asha", "pbt")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def command_seconds(run_dir: Path, out: Path, repeats: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "kubenas.cli", "report", str(run_dir), "--output", str(out)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def stage_seconds(run_dir: Path, out: Path, repeats: int) -> dict[str, float]:
    from kubenas.inspect import analysis, figures
    from kubenas.inspect.report import render
    from kubenas.inspect.rundata import load_run_dir

    out.mkdir(parents=True, exist_ok=True)
    data = load_run_dir(run_dir)
    importances = analysis.importance(data)
    stages: dict[str, Callable[[], object]] = {
        "load run directory": lambda: load_run_dir(run_dir),
        "importance (PED-ANOVA)": lambda: analysis.importance(data),
        "figure best_so_far": lambda: figures.best_so_far(data, out),
        "figure learning_curves": lambda: figures.learning_curves(data, out),
        "figure parallel_coordinates": lambda: figures.parallel_coordinates(data, out),
        "figure importance": lambda: figures.importance(data, out, importances),
        "figure pareto_front / lineage": lambda: (
            figures.pareto_front(data, out),
            figures.lineage(data, out),
        ),
        "figure costs": lambda: figures.costs(data, out),
        "HTML (tables, base64)": lambda: render(
            data, figures.all_figures(data, out, importances), importances
        ),
    }
    result = {}
    for name, fn in stages.items():
        fn()  # warm up (first-use imports, font cache)
        result[name] = median(timed(fn) for _ in range(repeats))
    # the HTML stage above redraws the figures: report rendering alone
    figs = figures.all_figures(data, out, importances)
    result["HTML (tables, base64)"] = median(
        timed(lambda: render(data, figs, importances)) for _ in range(repeats)
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubenas-report-time-") as tmp:
        root = Path(tmp)
        runs = {mode: write_run_dir(root / "runs", args.trials, mode, seed=0, name=mode) for mode in MODES}
        print(f"`kubenas report` on {args.trials}-trial runs, {args.repeats} runs each (fresh process)\n")
        print("| run | trials | metrics.jsonl rows | median s | max s |")
        print("|---|---|---|---|---|")
        for mode, run_dir in runs.items():
            times = command_seconds(run_dir, root / "out" / mode, args.repeats)
            rows = sum(len(p.read_text().splitlines()) for p in run_dir.glob("trials/*/metrics.jsonl"))
            print(f"| {mode} | {args.trials} | {rows} | {median(times):.2f} | {max(times):.2f} |")
        print(f"\nStages in one process (imports excluded), median of {args.repeats}, s\n")
        stages = {
            mode: stage_seconds(run_dir, root / "stages" / mode, args.repeats)
            for mode, run_dir in runs.items()
        }
        print("| stage | " + " | ".join(MODES) + " |")
        print("|---|" + "---|" * len(MODES))
        for stage in stages[MODES[0]]:
            print(f"| {stage} | " + " | ".join(f"{stages[m][stage]:.3f}" for m in MODES) + " |")


if __name__ == "__main__":
    main()
