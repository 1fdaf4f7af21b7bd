"""REINFORCE (Williams, 1992; Zoph & Le, 2017) with an autoregressive policy, numpy only.

The policy makes the decisions in ParamSpace order; each is a softmax over that parameter's choices
(numeric ranges cut into `bins` values) whose logits are linear in the one-hot codes of all earlier
decisions: logits_t = W_t x_{<t} + b_t. Inactive parameters (layers beyond the count, fields a layer's
type does not take) are skipped.

What makes it learn within a NAS budget of ~100 trials:
- reward normalisation: a trial's reward is its score's centred rank (in [-1, 1]) or z-score among
  the last `window` results, so neither the metric's scale nor its drift sets the step size;
- a baseline: the moving average of the normalised rewards, subtracted to get the advantage;
- batched updates: the gradients of `batchSize` consecutive results (the parallel trials of one round)
  are averaged at the same parameters, then one step is taken;
- an entropy bonus, so the policy does not collapse before it has seen enough;
- no repeats: a sample already tried is drawn again (up to `resampleTries` times), since a repeated
  candidate costs a trial and teaches nothing.

The parameters are restorable state by construction: they start at zero and are rebuilt by replaying
the successful trials in index order, so the same history always gives the same policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from kubenas_trainer.spec import CamelModel
from pydantic import Field

from kubenas.seeds import rng_for
from kubenas.space.params import (
    Categorical,
    ParamSpace,
    Point,
    Value,
    grid_values,
    is_active,
    key_of,
    to_unit,
)
from kubenas.strategies.searcher import Observation, Searcher, SearcherStrategy


class ReinforceSettings(CamelModel):
    learning_rate: float = Field(default=3.0, gt=0.0, le=100.0, description="Policy-gradient step.")
    baseline_decay: float = Field(
        default=0.9,
        ge=0.0,
        lt=1.0,
        description="Decay of the normalised reward's moving average (the baseline).",
    )
    entropy_weight: float = Field(default=0.01, ge=0.0, le=1.0, description="Weight of the entropy bonus.")
    normalisation: Literal["rank", "zscore"] = Field(
        default="rank",
        description="A reward is its centred rank or its z-score among the last `window` results.",
    )
    window: int = Field(default=20, ge=2, le=100000, description="Results a reward is normalised against.")
    batch_size: int = Field(default=4, ge=1, le=10000, description="Results averaged into one update.")
    resample_tries: int = Field(
        default=20, ge=0, le=10000, description="Draws to find an untried candidate before taking a repeat."
    )
    bins: int = Field(default=8, ge=2, le=256, description="Values a numeric range is cut into.")


Gradient = dict[int, tuple[np.ndarray, np.ndarray]]


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

    def gradient(self, point: Mapping[str, Value], advantage: float, entropy_weight: float) -> Gradient:
        """The ascent direction of advantage x log-probability of the point's decisions, plus the
        entropy bonus's, per decision: {t: (dW_t, db_t)}."""
        out: Gradient = {}
        x = np.zeros(self.offsets[-1])
        for t, a in self.actions(point):
            p = self._probs(t, x)
            grad = -p
            grad[a] += 1.0
            entropy = -float(np.sum(p * np.log(p + 1e-12)))
            grad_entropy = -p * (np.log(p + 1e-12) + entropy)
            step = advantage * grad + entropy_weight * grad_entropy
            out[t] = (np.outer(step, x), step)
            x[self.offsets[t] + a] = 1.0
        return out

    def step(self, gradients: Sequence[Gradient], lr: float) -> None:
        """One update along the mean of the gradients (all taken at the current parameters)."""
        scale = lr / max(1, len(gradients))
        for gradient in gradients:
            for t, (dw, db) in gradient.items():
                self.weights[t] += scale * dw
                self.biases[t] += scale * db


def normalised(rewards: Sequence[float], how: str) -> float:
    """The last reward's centred rank in [-1, 1] (ties share the mean rank), or its z-score, among all."""
    values = np.asarray(rewards, dtype=float)
    if len(values) < 2:
        return 0.0
    last = values[-1]
    if how == "rank":
        below, equal = float(np.sum(values < last)), float(np.sum(values == last))
        return 2.0 * (below + (equal - 1) / 2) / (len(values) - 1) - 1.0
    spread = float(values.std())
    return 0.0 if spread == 0 else float((last - values.mean()) / spread)


class ReinforceSearcher(Searcher):
    Settings = ReinforceSettings

    def policy(self, observations: Sequence[Observation]) -> Policy:
        """The policy after learning from the successful observations in index order, `batchSize`
        at a time (a last, incomplete batch waits for its remaining results)."""
        settings = self.settings
        assert isinstance(settings, ReinforceSettings)
        policy = Policy.uniform(self.space, settings.bins)
        scored = [o for o in sorted(observations, key=lambda o: o.index) if o.score is not None]
        rewards = [float(o.score) for o in scored if o.score is not None]
        baseline = 0.0
        batch: list[Gradient] = []
        for k, obs in enumerate(scored):
            reward = normalised(rewards[max(0, k + 1 - settings.window) : k + 1], settings.normalisation)
            advantage = reward - baseline
            baseline = settings.baseline_decay * baseline + (1 - settings.baseline_decay) * reward
            batch.append(policy.gradient(obs.point, advantage, settings.entropy_weight))
            if len(batch) == settings.batch_size:
                policy.step(batch, settings.learning_rate)
                batch = []
        return policy

    def propose(self, observations: Sequence[Observation], start: int, count: int) -> list[Point]:
        settings = self.settings
        assert isinstance(settings, ReinforceSettings)
        policy = self.policy(observations)
        tried = {key_of(o.point) for o in observations}
        out = []
        for i in range(start, start + count):
            rng = rng_for(self.seed, i)
            point = policy.sample(rng)
            for _ in range(settings.resample_tries):
                if key_of(point) not in tried:
                    break
                point = policy.sample(rng)
            tried.add(key_of(point))
            out.append(point)
        return out


class Reinforce(SearcherStrategy):
    name = "reinforce"
    searcher = ReinforceSearcher
