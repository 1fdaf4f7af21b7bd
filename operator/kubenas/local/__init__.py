"""The embedded default: run an experiment on this machine, trials as parallel local processes."""

from kubenas.local.runner import run_experiment

__all__ = ["run_experiment"]
