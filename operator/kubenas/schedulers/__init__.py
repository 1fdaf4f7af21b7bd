"""Decisions on trials from their per-epoch scores: continue, stop, or promote from a checkpoint.

The controller core calls them on every pass: the median rule through engine.decide's early stops,
ASHA and Hyperband through engine.fidelity (a paused trial resumes its checkpoint when promoted).
"""

from kubenas.schedulers.asha import ASHA, Bracket, Hyperband
from kubenas.schedulers.base import Continue, Decision, Promote, Scheduler, Stop, TrialCurve
from kubenas.schedulers.median import MedianStopping

__all__ = [
    "ASHA",
    "Bracket",
    "Continue",
    "Decision",
    "Hyperband",
    "MedianStopping",
    "Promote",
    "Scheduler",
    "Stop",
    "TrialCurve",
]
