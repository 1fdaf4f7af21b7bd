"""How many CPU threads a local trial gets: the cores shared among parallel trials, at most the
template's CPU limit (what the trial would get on a cluster)."""

from __future__ import annotations

import os

import pytest
from kubenas.api import NASExperimentSpec
from kubenas.local.launcher import threads_per_trial
from kubenas.local.runner import cpu_limit


def spec_with_limits(limits: dict[str, object]) -> NASExperimentSpec:
    return NASExperimentSpec.model_validate({"trialTemplate": {"resources": {"limits": limits}}})


@pytest.mark.parametrize(("limit", "whole"), [("500m", 1), ("1", 1), ("2500m", 3), (4, 4)])
def test_a_cpu_limit_is_counted_in_whole_cpus_rounded_up(limit: object, whole: int) -> None:
    assert cpu_limit(spec_with_limits({"cpu": limit})) == whole


def test_no_cpu_limit_leaves_the_share_of_the_cores() -> None:
    assert cpu_limit(NASExperimentSpec()) is None
    assert cpu_limit(spec_with_limits({"nvidia.com/gpu": 1})) is None
    cores = os.cpu_count() or 1
    assert threads_per_trial(1) == cores
    assert threads_per_trial(cores * 2) == 1  # never none
    assert threads_per_trial(1, cpu_limit=1) == 1
    assert threads_per_trial(1, cpu_limit=cores + 8) == cores  # a limit above the share adds nothing
