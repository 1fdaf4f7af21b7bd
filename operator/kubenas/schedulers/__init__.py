"""Decisions on running trials from intermediate (per-epoch) metrics: continue, stop, promote.

Not wired into the controller yet: that needs per-epoch metrics in the trial records and checkpoint
resume in the trainer (a promoted trial resumes, it does not restart).
"""

from kubenas.schedulers.asha import ASHA, Bracket, Hyperband
from kubenas.schedulers.base import Continue, Decision, Progress, Promote, Scheduler, Stop
from kubenas.schedulers.median import MedianStopping

__all__ = [
    "ASHA",
    "Bracket",
    "Continue",
    "Decision",
    "Hyperband",
    "MedianStopping",
    "Progress",
    "Promote",
    "Scheduler",
    "Stop",
]
