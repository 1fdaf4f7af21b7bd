"""Search space operations: sampling candidates from a SearchSpace."""

from kubenas.space.sampling import sample_candidate, sample_float, sample_int

__all__ = ["sample_candidate", "sample_float", "sample_int"]
