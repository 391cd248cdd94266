"""Reward terms of the collection agent, each separately weighted and reported.

The Matrix-Game 2.0 collection agent's reward "combines collision avoidance, exploration efficiency and
trajectory diversity". Here that is four terms (weights in :class:`rl_agent.config.RewardConfig`):

* ``collision`` (collision avoidance): ``-w`` per frame in which the agent was blocked, and per frame in
  which the shield had to remove a move (when ``shield.penalize``), so the policy learns to avoid the move
  rather than rely on the shield;
* ``exploration`` (exploration efficiency): ``+w`` per coverage cell covered for the first time this
  episode: newly covered navigable area per step, on a grid over the walkable mesh (:class:`CoverageGrid`);
* ``novelty`` (trajectory diversity, where): ``+w / sqrt(1 + n)`` on first entering a position-heading bin
  this episode, where ``n`` is the number of the agent's past episodes in the same scene seed that visited it
  (:class:`VisitHistory`), so the bonus decays for routes the agent already took;
* ``action_entropy`` (trajectory diversity, how): ``+w * H`` per decision, ``H`` the mean over action
  components of the normalised entropy (0..1) of the last ``entropy_window`` decisions.

:class:`RewardFunction` joins them: ``frame(...)`` per video frame and ``decision(...)`` per policy decision
return the weighted contributions by term; the environment sums them into the reward and puts them in
``info["reward_terms"]``; episode sums are in :attr:`RewardFunction.episode_terms`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Hashable

import numpy as np

from rl_agent.config import RewardConfig
from rl_agent.coverage import CoverageGrid, VisitHistory

TERMS: tuple[str, ...] = ("collision", "exploration", "novelty", "action_entropy")


class CollisionPenalty:
    """Raw value: 1 for a frame in which the agent was blocked (or the shield intervened, if ``penalize_shield``)."""

    def __init__(self, penalize_shield: bool = True) -> None:
        self.penalize_shield = bool(penalize_shield)

    def __call__(self, collision: bool, intervened: bool = False) -> float:
        return 1.0 if (collision or (intervened and self.penalize_shield)) else 0.0


class ExplorationReward:
    """Raw value: number of navigable coverage cells covered for the first time this episode (0 or 1 per frame)."""

    def __init__(self) -> None:
        self.coverage: CoverageGrid | None = None

    def reset(self, coverage: CoverageGrid) -> None:
        self.coverage = coverage

    def __call__(self, x_cm: float, y_cm: float) -> float:
        if self.coverage is None:
            raise RuntimeError("ExplorationReward called before reset(coverage)")
        return float(self.coverage.visit(x_cm, y_cm))


class NoveltyReward:
    """Raw value: ``1 / sqrt(1 + n)`` on first entering a position-heading bin this episode (``n``: past
    episodes of this scene key that visited the bin), else 0. The history outlives episodes."""

    def __init__(self, history: VisitHistory) -> None:
        self.history = history

    def reset(self, key: Hashable) -> None:
        self.history.end()
        self.history.begin(key)

    def end(self) -> None:
        self.history.end()

    def __call__(self, x_cm: float, y_cm: float, yaw_deg: float) -> float:
        n = self.history.visit(x_cm, y_cm, yaw_deg)
        return 0.0 if n is None else 1.0 / math.sqrt(1.0 + n)


class ActionEntropyReward:
    """Raw value: mean over components of the normalised entropy (0..1) of the last ``window`` decisions."""

    def __init__(self, nvec: np.ndarray, window: int) -> None:
        self.nvec = np.asarray(nvec, dtype=np.int64)
        self.window = int(window)
        self._recent: deque[np.ndarray] = deque(maxlen=self.window)
        self._counts = [np.zeros(int(n), dtype=np.int64) for n in self.nvec]

    def reset(self) -> None:
        self._recent.clear()
        self._counts = [np.zeros(int(n), dtype=np.int64) for n in self.nvec]

    def __call__(self, action: np.ndarray) -> float:
        a = np.asarray(action, dtype=np.int64)
        if len(self._recent) == self.window:
            old = self._recent[0]
            for c in range(len(self.nvec)):
                self._counts[c][old[c]] -= 1
        self._recent.append(a.copy())
        for c in range(len(self.nvec)):
            self._counts[c][a[c]] += 1
        return normalised_entropy(self._counts)


def normalised_entropy(counts: list[np.ndarray]) -> float:
    """Mean over components of ``H(p) / log(n)`` for per-component count vectors (components with n=1 skipped)."""
    vals = []
    for cnt in counts:
        n = len(cnt)
        if n < 2:
            continue
        total = cnt.sum()
        if total <= 0:
            vals.append(0.0)
            continue
        p = cnt[cnt > 0] / total
        vals.append(float(-(p * np.log(p)).sum() / math.log(n)))
    return float(np.mean(vals)) if vals else 0.0


def entropy_bits(counts: np.ndarray | dict) -> float:
    """Shannon entropy in bits of a histogram (array of counts or ``{value: count}``)."""
    c = np.asarray(list(counts.values()) if isinstance(counts, dict) else counts, dtype=np.float64)
    c = c[c > 0]
    if c.size == 0:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


class RewardFunction:
    """The weighted sum of the terms (see the module docstring), with per-term bookkeeping.

    ``nvec``: the policy's MultiDiscrete sizes; ``history``: novelty counts (kept across episodes);
    ``penalize_shield``: a shield intervention counts as a collision."""

    def __init__(self, cfg: RewardConfig, nvec: np.ndarray, history: VisitHistory, penalize_shield: bool = True) -> None:
        self.cfg = cfg
        self.collision = CollisionPenalty(penalize_shield)
        self.exploration = ExplorationReward()
        self.novelty = NoveltyReward(history)
        self.action_entropy = ActionEntropyReward(nvec, cfg.entropy_window)
        self.episode_terms: dict[str, float] = dict.fromkeys(TERMS, 0.0)
        self.episode_raw: dict[str, float] = dict.fromkeys(TERMS, 0.0)

    def reset(self, coverage: CoverageGrid, scene_key: Hashable) -> None:
        """Start an episode: a fresh coverage grid and the novelty history of ``scene_key``."""
        self.exploration.reset(coverage)
        self.novelty.reset(scene_key)
        self.action_entropy.reset()
        self.episode_terms = dict.fromkeys(TERMS, 0.0)
        self.episode_raw = dict.fromkeys(TERMS, 0.0)

    def start(self, x_cm: float, y_cm: float, yaw_deg: float) -> None:
        """Mark the spawn cell and bin as visited, without reward (the agent did nothing to get there)."""
        self.exploration(x_cm, y_cm)
        self.novelty(x_cm, y_cm, yaw_deg)

    def end_episode(self) -> None:
        """Commit this episode's position-heading bins to the novelty history."""
        self.novelty.end()

    def frame(self, x_cm: float, y_cm: float, yaw_deg: float, collision: bool, intervened: bool) -> dict[str, float]:
        """Weighted contributions of one video frame (agent at ``x, y`` cm, camera yaw in degrees)."""
        raw = {"collision": self.collision(collision, intervened), "exploration": self.exploration(x_cm, y_cm),
               "novelty": self.novelty(x_cm, y_cm, yaw_deg)}
        out = {"collision": -self.cfg.collision * raw["collision"], "exploration": self.cfg.exploration * raw["exploration"],
               "novelty": self.cfg.novelty * raw["novelty"]}
        for k, v in raw.items():
            self.episode_raw[k] += v
            self.episode_terms[k] += out[k]
        return out

    def decision(self, action: np.ndarray) -> dict[str, float]:
        """Weighted contribution of one policy decision (the action entropy term)."""
        raw = self.action_entropy(action)
        self.episode_raw["action_entropy"] += raw
        val = self.cfg.action_entropy * raw
        self.episode_terms["action_entropy"] += val
        return {"action_entropy": val}
