"""Collection by policy: a trained PPO checkpoint as a :class:`capture.world.Controller`.

:class:`PPOController` drives any World (e.g. a 640x352 sandbox for collection) with a policy trained on small
renders: every frame the world renders at full resolution and is recorded as such; the policy sees that frame
resized to its small observation with area averaging (:func:`rl_agent.observation.resize_frame`), the same
resize the training environment applied to its small render, plus the state vector built exactly as in
training. No second render is made. The checkpoint's env config fixes the observation, the action bins and the
action repeat (the state's ``time`` entry saturates at 1 in episodes longer than the training episodes); a
world whose aspect ratio differs by more than 5 % from the training renders gets a warning
(the policy would see a differently stretched view).

Use with :func:`capture.collect`::

    make_controller = functools.partial(make_ppo_controller, checkpoint="runs/rl/policy.zip")
    collect(tasks, make_world, make_controller, episodes_dir, workers=2)

Sampling is seeded from the episode seed (the same seed, world and checkpoint give the same episode);
``deterministic=True`` takes the most likely action instead. ``shield=True`` also filters the policy's moves
with the collision shield during collection (off by default: the policy avoids obstacles by itself).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np

from capture.actions import FrameAction
from capture.world import Observation, World
from rl_agent.actions import ActionCodec
from rl_agent.config import EnvConfig, ShieldConfig
from rl_agent.coverage import CoverageGrid
from rl_agent.observation import ObservationBuilder, check_observation
from rl_agent.shield import CollisionShield, agent_constants

log = logging.getLogger(__name__)


class PPOController:
    """A :class:`capture.world.Controller` acting with a PPO checkpoint (see the module docstring).

    ``world``: the world it drives (probes are read from it when the policy uses rays); ``checkpoint``: a
    playmill RL checkpoint (``policy.zip`` or ``checkpoints/ckpt_*.zip``); ``deterministic``: argmax instead of
    sampling; ``shield``: filter moves with the collision shield; ``device``: torch device;
    ``torch_threads``: intra-op threads for the policy (1 suits one controller per worker process; 0 leaves
    torch's setting). Raises :class:`rl_agent.checkpoint.CheckpointError` for a file that is not a playmill
    checkpoint and ``ValueError`` for a world that lacks keys or probes the policy needs."""

    def __init__(self, world: World, checkpoint: str | os.PathLike, *, deterministic: bool = False, shield: bool = False,
                 device: str = "cpu", torch_threads: int = 1) -> None:
        from rl_agent.checkpoint import load_policy

        if torch_threads:
            import torch

            torch.set_num_threads(int(torch_threads))
        self.world = world
        self.loaded = load_policy(checkpoint, device=device)
        self.cfg: EnvConfig = self.loaded.config.env
        self.codec: ActionCodec = self.loaded.codec
        self.deterministic = bool(deterministic)
        self.codec.check_world_keys(world.action_space, f"PPOController: world {type(world).__name__}")
        walk, sprint, radius = agent_constants(world, self.cfg.walk_cm_s, self.cfg.sprint_cm_s, self.cfg.agent_radius_cm)
        self.builder = ObservationBuilder(self.cfg, world, sprint, max_frames=self.cfg.max_frames, radius_cm=radius)
        shield_cfg = self.loaded.config.shield
        self.shield = CollisionShield(ShieldConfig(**{**shield_cfg.__dict__, "enabled": bool(shield)}), world,
                                      walk_cm_s=walk, sprint_cm_s=sprint, radius_cm=radius, fps=float(world.fps))
        train_aspect = self.cfg.render_width / self.cfg.render_height
        aspect = float(world.width) / float(world.height)
        if abs(aspect / train_aspect - 1.0) > 0.05:
            log.warning("PPOController: the world's aspect ratio %.3f (%dx%d) differs from the training renders' %.3f "
                        "(%dx%d); the policy sees a differently stretched view", aspect, world.width, world.height,
                        train_aspect, self.cfg.render_width, self.cfg.render_height)
        if not math.isclose(float(world.fps), self.cfg.fps, rel_tol=1e-6):
            log.warning("PPOController: the world runs at %s fps, the policy was trained at %s fps (mouse bins are per frame)",
                        world.fps, self.cfg.fps)
        self._coverage_cache: dict[Any, CoverageGrid] = {}
        self._rng: np.random.Generator | None = None
        self._frame = 0
        self._hold = 0
        self._action = FrameAction.idle()
        self._intervened = False
        self.decisions = 0

    @property
    def interventions(self) -> int:
        """Moves the shield removed so far (0 when the shield is off)."""
        return self.shield.interventions

    # ------------------------------------------------------------------ Controller protocol

    def reset(self, seed: int, obs: Observation) -> None:
        self._rng = np.random.default_rng([int(seed), 0x5050])
        key = (getattr(self.world, "scene", None), int(seed))
        if key not in self._coverage_cache:
            self._coverage_cache.clear()
            self._coverage_cache[key] = CoverageGrid.for_world(self.world, self.cfg.coverage_cell_cm)
        coverage = self._coverage_cache[key].fresh()
        check_observation(obs, 0, self._where())
        coverage.visit(float(obs.pos_cm[0]), float(obs.pos_cm[1]))
        self.builder.reset(coverage)
        self.shield.reset_counts()
        self._frame = 0
        self._hold = 0
        self._intervened = False
        self.decisions = 0

    def act(self, obs: Observation) -> FrameAction:
        if self._rng is None:
            raise RuntimeError("PPOController.act called before reset(seed, obs)")
        if self._frame > 0:  # obs is the frame our previous action produced
            check_observation(obs, self._frame, self._where())
            new = self.builder.coverage.visit(float(obs.pos_cm[0]), float(obs.pos_cm[1]))
            self.builder.note_frame(obs, bool(new), self._intervened)
        self._frame += 1
        if self._hold <= 0:
            self._action = self.codec.decode(self._choose(self.builder.build(obs)))
            self._hold = self.cfg.action_repeat
            self.decisions += 1
        self._hold -= 1
        executed, self._intervened = self.shield.filter(self._action, float(obs.yaw_deg))
        return executed

    # ------------------------------------------------------------------ internals

    def _choose(self, policy_obs: dict[str, np.ndarray]) -> np.ndarray:
        probs = self.loaded.action_probs(policy_obs)
        if self.deterministic:
            return np.array([int(np.argmax(p)) for p in probs], dtype=np.int64)
        return np.array([int(self._rng.choice(len(p), p=p / p.sum())) for p in probs], dtype=np.int64)

    def _where(self) -> str:
        return f"PPOController on {getattr(self.world, 'source', 'world')}/{getattr(self.world, 'scene', '?')}"


def make_ppo_controller(world: World, checkpoint: str | os.PathLike, deterministic: bool = False,
                        shield: bool = False) -> PPOController:
    """Picklable factory for :func:`capture.collect`: ``functools.partial(make_ppo_controller, checkpoint=path)``.
    The policy is loaded once per worker process (cached per file version)."""
    return PPOController(world, checkpoint, deterministic=deterministic, shield=shield)


class RandomController:
    """The random baseline: uniform actions of the policy's action space, held ``action_repeat`` frames,
    seeded from the episode seed. ``env``: the :class:`EnvConfig` giving the bins and the repeat."""

    def __init__(self, world: World, env: EnvConfig | None = None) -> None:
        self.world = world
        self.cfg = env or EnvConfig()
        self.codec = ActionCodec(self.cfg.yaw_bins_deg, self.cfg.pitch_bins_deg)
        self.codec.check_world_keys(world.action_space, f"RandomController: world {type(world).__name__}")
        self._rng: np.random.Generator | None = None
        self._hold = 0
        self._action = FrameAction.idle()

    def reset(self, seed: int, obs: Observation) -> None:
        self._rng = np.random.default_rng([int(seed), 0x4A4D])
        self._hold = 0

    def act(self, obs: Observation) -> FrameAction:
        if self._rng is None:
            raise RuntimeError("RandomController.act called before reset(seed, obs)")
        if self._hold <= 0:
            self._action = self.codec.decode(self._rng.integers(0, self.codec.nvec))
            self._hold = self.cfg.action_repeat
        self._hold -= 1
        return self._action


def make_random_controller(world: World, env: EnvConfig | None = None) -> RandomController:
    """Picklable factory of :class:`RandomController`."""
    return RandomController(world, env)
