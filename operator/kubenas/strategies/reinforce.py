"""REINFORCE (Williams, 1992; Zoph & Le, 2017) with an autoregressive policy, numpy only.

The policy makes the decisions in ParamSpace order; each is a softmax over that parameter's choices
(numeric ranges cut into `bins` values) whose logits are linear in the one-hot codes of all earlier
decisions: logits_t = W_t x_{<t} + b_t. Inactive parameters (layers beyond the count, fields a layer's
type does not take) are skipped.
Reward = the trial's score; advantage = reward minus a moving-average baseline, divided by a moving
standard deviation (so the learning rate does not depend on the metric's scale); an entropy bonus
keeps the policy from collapsing early.

The parameters are restorable state by construction: they start at zero and are rebuilt by replaying
the successful trials in index order, so the same history always gives the same policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.seeds import rng_for
from kubenas.space.params import Categorical, ParamSpace, Point, Value, grid_values, is_active, to_unit
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy


class ReinforceSettings(CamelModel):
    learning_rate: float = Field(default=0.1, gt=0.0, le=10.0, description="Policy-gradient step.")
    baseline_decay: float = Field(
        default=0.9, ge=0.0, lt=1.0, description="Decay of the reward's moving average (the baseline)."
    )
    entropy_weight: float = Field(default=0.01, ge=0.0, le=1.0, description="Weight of the entropy bonus.")
    bins: int = Field(default=8, ge=2, le=256, description="Values a numeric range is cut into.")


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return np.asarray(e / e.sum())


@dataclass
class Policy:
    """Autoregressive linear-softmax policy over the space's decisions."""

    space: ParamSpace
    choices: list[tuple[Value, ...]]
    offsets: list[int]
    weights: list[np.ndarray]
    biases: list[np.ndarray]

    @classmethod
    def uniform(cls, space: ParamSpace, bins: int) -> Policy:
        choices = [grid_values(p, bins) for p in space.params]
        offsets = list(np.cumsum([0] + [len(c) for c in choices]))
        width = offsets[-1]
        return cls(
            space,
            choices,
            [int(o) for o in offsets],
            [np.zeros((len(c), width)) for c in choices],
            [np.zeros(len(c)) for c in choices],
        )

    def _probs(self, t: int, x: np.ndarray) -> np.ndarray:
        return _softmax(self.weights[t] @ x + self.biases[t])

    def sample(self, rng: np.random.Generator) -> Point:
        point: Point = {}
        x = np.zeros(self.offsets[-1])
        for t, param in enumerate(self.space.params):
            if not is_active(param, point):
                continue
            a = int(rng.choice(len(self.choices[t]), p=self._probs(t, x)))
            point[param.name] = self.choices[t][a]
            x[self.offsets[t] + a] = 1.0
        return point

    def actions(self, point: Mapping[str, Value]) -> list[tuple[int, int]]:
        """(decision, choice) pairs standing for a point: numeric values go to the nearest bin."""
        out = []
        for t, param in enumerate(self.space.params):
            if param.name not in point:
                continue
            value, choices = point[param.name], self.choices[t]
            if isinstance(param, Categorical):
                if value not in choices:
                    continue
                out.append((t, choices.index(value)))
            else:
                assert not isinstance(value, str)
                u = to_unit(param, value)
                distances = [abs(to_unit(param, float(c)) - u) for c in choices]
                out.append((t, int(np.argmin(distances))))
        return out

    def update(self, point: Mapping[str, Value], advantage: float, lr: float, entropy_weight: float) -> None:
        """One REINFORCE step on the point's decisions, plus the entropy bonus's gradient."""
        x = np.zeros(self.offsets[-1])
        for t, a in self.actions(point):
            p = self._probs(t, x)
            grad = -p
            grad[a] += 1.0
            entropy = -float(np.sum(p * np.log(p + 1e-12)))
            grad_entropy = -p * (np.log(p + 1e-12) + entropy)
            step = lr * (advantage * grad + entropy_weight * grad_entropy)
            self.weights[t] += np.outer(step, x)
            self.biases[t] += step
            x[self.offsets[t] + a] = 1.0


class ReinforceSearcher(Searcher):
    Settings = ReinforceSettings

    def policy(self, observations: Sequence[Observation]) -> Policy:
        """The policy after learning from every successful observation, in index order."""
        settings = self.settings
        assert isinstance(settings, ReinforceSettings)
        policy = Policy.uniform(self.space, settings.bins)
        baseline: float | None = None
        variance = 0.0
        decay = settings.baseline_decay
        for obs in sorted(observations, key=lambda o: o.index):
            if obs.score is None:
                continue
            if baseline is None:
                baseline = obs.score
                continue
            deviation = obs.score - baseline
            variance = decay * variance + (1 - decay) * deviation**2
            baseline = decay * baseline + (1 - decay) * obs.score
            advantage = deviation / np.sqrt(variance) if variance > 0 else 0.0
            policy.update(obs.point, float(advantage), settings.learning_rate, settings.entropy_weight)
        return policy

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        policy = self.policy(observations)
        return [policy.sample(rng_for(self.seed, i)) for i in range(start, start + count)]


class Reinforce(SearcherStrategy):
    name = "reinforce"
    searcher = ReinforceSearcher
