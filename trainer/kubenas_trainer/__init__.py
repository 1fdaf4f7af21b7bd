"""kubenas_trainer: the trial program that builds, trains and evaluates one candidate network."""

__version__ = "0.1.0"
