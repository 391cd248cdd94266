"""The gymnasium environment over a capture World (the sandbox by default).

Registered ids (``import rl_agent`` registers them):

* ``"playmill/Sandbox-v0"``: the built-in sandbox, scene families drawn per episode;
* ``"playmill/World-v0"``: any :class:`capture.world.World`, given as ``make_world=factory`` where
  ``factory(scene, params) -> World`` is picklable (e.g. an UnrealCV world).

Both wrap the environment in :class:`RestartOnCrash` (``restart_on_crash=False`` to turn it off)::

    env = gymnasium.make("playmill/Sandbox-v0", config={"scenes": ["park"], "max_frames": 500})
    obs, info = env.reset(seed=0)

Spaces: observation ``Dict(image=Box(0, 255, (3, H, W), uint8), state=Box(-1, 1, (D,), float32))``
(:mod:`rl_agent.observation`); action ``MultiDiscrete([3, 3, 2, 2, n_yaw, n_pitch])`` (:mod:`rl_agent.actions`).
One ``step`` is one policy decision held for ``action_repeat`` world frames; its reward is the sum of the
weighted reward terms over those frames (:mod:`rl_agent.rewards`), listed in ``info["reward_terms"]``.
Episodes end by truncation after ``max_frames`` frames (there is no terminal state).

Seeding: ``reset(seed=s)`` seeds the environment's ``np_random`` and clears the novelty history (the
environment starts as new; unseeded resets, as vectorised training makes them, keep it); the scene family,
the scene seed (from the training pool, :func:`rl_agent.config.train_seed_pool`) and the sandbox's weather
and time of day all come from ``np_random``. ``reset(options={"scene": "park", "scene_seed": s})`` forces a scene and seed, e.g. a held-out
evaluation seed (:func:`rl_agent.config.heldout_seeds`, disjoint from the training pool).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np

from capture.world import Observation, World
from rl_agent.actions import ActionCodec, InvalidActionError
from rl_agent.config import (
    SANDBOX_SCENES,
    EnvConfig,
    RewardConfig,
    RLConfig,
    ShieldConfig,
    train_seed_pool,
)
from rl_agent.coverage import CoverageGrid, VisitHistory
from rl_agent.observation import ObservationBuilder, ObservationError, check_observation, observation_space
from rl_agent.rewards import TERMS, RewardFunction
from rl_agent.shield import CollisionShield, agent_constants

log = logging.getLogger(__name__)

WorldFactory = Callable[[str, Mapping[str, Any]], World]


def make_sandbox_world(scene: str, params: Mapping[str, Any], *, width: int, height: int, fps: float, fov_deg: float,
                       npc_density: float = 0.5, vehicle_density: float = 0.5) -> World:
    """A :class:`unreal_bridge.sandbox.SandboxWorld` (module-level, so it pickles into worker processes);
    ``params`` may set ``weather`` and ``time_of_day``."""
    from unreal_bridge.sandbox import SandboxWorld

    return SandboxWorld(scene=scene, width=width, height=height, fps=fps, fov_deg=fov_deg, npc_density=npc_density,
                        vehicle_density=vehicle_density, **dict(params))


def sandbox_factory(cfg: EnvConfig, width: int | None = None, height: int | None = None) -> WorldFactory:
    """The sandbox world factory of an :class:`EnvConfig` (render size overridable, e.g. for collection)."""
    import functools

    return functools.partial(make_sandbox_world, width=int(width or cfg.render_width), height=int(height or cfg.render_height),
                             fps=cfg.fps, fov_deg=cfg.fov_deg, npc_density=cfg.npc_density, vehicle_density=cfg.vehicle_density)


def _as_config(klass: type, value: Any, name: str) -> Any:
    return value if isinstance(value, klass) else klass.from_dict(value, name)


class PlaymillEnv(gym.Env):
    """A gymnasium environment over a capture World (see the module docstring).

    ``config``/``reward``/``shield``: :class:`EnvConfig`, :class:`RewardConfig`, :class:`ShieldConfig` or
    mappings of their fields. ``make_world``: ``factory(scene, params) -> World`` (default: the sandbox at
    ``config.render_width x render_height``). ``scene_seeds``: the scene seeds episodes draw from (default:
    the training pool of ``config.train_seed_pool`` seeds from ``pool_seed``). ``render_mode``:
    ``"rgb_array"`` makes :meth:`render` return the world's current frame."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, config: EnvConfig | Mapping[str, Any] | None = None, reward: RewardConfig | Mapping[str, Any] | None = None,
                 shield: ShieldConfig | Mapping[str, Any] | None = None, make_world: WorldFactory | None = None,
                 scene_seeds: Sequence[int] | None = None, pool_seed: int = 0, render_mode: str | None = None) -> None:
        super().__init__()
        self.cfg: EnvConfig = _as_config(EnvConfig, config, "env")
        self.reward_cfg: RewardConfig = _as_config(RewardConfig, reward, "reward")
        self.shield_cfg: ShieldConfig = _as_config(ShieldConfig, shield, "shield")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"PlaymillEnv: render_mode={render_mode!r} is not supported; allowed: {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.metadata = dict(self.metadata, render_fps=self.cfg.fps)
        self._custom_world = make_world is not None
        self._make_world: WorldFactory = make_world or sandbox_factory(self.cfg)
        seeds = list(scene_seeds) if scene_seeds is not None else train_seed_pool(self.cfg.train_seed_pool, pool_seed)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
            raise ValueError("PlaymillEnv: scene_seeds must be a non-empty list of non-negative integers")
        self.scene_seeds = [int(s) for s in seeds]
        self.codec = ActionCodec(self.cfg.yaw_bins_deg, self.cfg.pitch_bins_deg)
        self.action_space = self.codec.space()
        self.history = VisitHistory(self.cfg.coverage_cell_cm, self.cfg.heading_bins)
        self.rewards = RewardFunction(self.reward_cfg, self.codec.nvec, self.history, self.shield_cfg.penalize)
        self.observation_space = observation_space(self.cfg)
        self.world: World | None = None
        self._world_key: tuple | None = None
        self._builder: ObservationBuilder | None = None
        self._shield: CollisionShield | None = None
        self._coverage_cache: dict[tuple, CoverageGrid] = {}
        self._scene: str | None = None
        self._scene_seed: int | None = None
        self._params: dict[str, Any] = {}
        self._episodes_in_scene = 0
        self._world_obs: Observation | None = None
        self._policy_obs: dict[str, np.ndarray] | None = None
        self._frame = 0
        self._done = True
        self._stats: dict[str, float] = {}
        self.world_restarts = 0

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"scene", "scene_seed"}
        if unknown:
            raise ValueError(f"PlaymillEnv.reset: unknown option(s) {sorted(unknown)}; allowed: scene, scene_seed")
        if seed is not None:
            # a seeded reset restarts the environment as new: generator and novelty history (so that the same
            # seed and actions give the same rewards, as gymnasium requires); unseeded resets keep the history
            self.history.clear()
        elif self._scene is not None and not self._done:
            self.rewards.end_episode()
        forced = "scene" in options or "scene_seed" in options
        if forced or seed is not None or self._scene is None or self._episodes_in_scene >= self.cfg.episodes_per_scene_seed:
            self._draw_scene(options)
        self._episodes_in_scene += 1
        self._ensure_world()
        obs = self.world.reset(self._scene_seed)
        check_observation(obs, 0, self._where())
        key = (self._scene, self._scene_seed)
        if key not in self._coverage_cache:
            if len(self._coverage_cache) > 256:
                self._coverage_cache.clear()
            self._coverage_cache[key] = CoverageGrid.for_world(self.world, self.cfg.coverage_cell_cm)
        coverage = self._coverage_cache[key].fresh()
        self.rewards.reset(coverage, key)
        self._builder.reset(coverage)
        self._shield.reset_counts()
        self._shield.active = bool(self.np_random.random() < self.shield_cfg.episode_fraction)
        self._frame = 0
        self._done = False
        self._world_obs = obs
        self.rewards.start(float(obs.pos_cm[0]), float(obs.pos_cm[1]), float(obs.yaw_deg))
        self._stats = {"collisions": 0.0, "frames": 0.0, "speed_sum": 0.0}
        self._policy_obs = self._builder.build(obs)
        return self._policy_obs, {"scene": self._scene, "scene_seed": self._scene_seed, "world_params": dict(self._params)}

    def step(self, action):
        if self._done or self.world is None:
            raise RuntimeError("PlaymillEnv.step called before reset() or after the episode ended; call reset()")
        a = self.codec.check(action)  # InvalidActionError names the component
        frame_action = self.codec.decode(a)
        terms = dict.fromkeys(TERMS, 0.0)
        terms.update(self.rewards.decision(a))
        collisions = 0
        intervened_any = False
        truncated = False
        for _ in range(self.cfg.action_repeat):
            executed, intervened = self._shield.filter(frame_action, float(self._world_obs.yaw_deg))
            obs = self.world.step(executed)
            self._frame += 1
            check_observation(obs, self._frame, self._where())
            before = self.rewards.exploration.coverage.n_covered
            ft = self.rewards.frame(float(obs.pos_cm[0]), float(obs.pos_cm[1]), float(obs.yaw_deg), bool(obs.collision), intervened)
            for k, v in ft.items():
                terms[k] += v
            self._builder.note_frame(obs, self.rewards.exploration.coverage.n_covered > before, intervened)
            collisions += int(obs.collision)
            intervened_any |= intervened
            self._stats["frames"] += 1
            self._stats["collisions"] += int(obs.collision)
            self._stats["speed_sum"] += float(np.hypot(obs.vel_cm_s[0], obs.vel_cm_s[1]))
            self._world_obs = obs
            if self._frame >= self.cfg.max_frames:
                truncated = True
                break
        self._policy_obs = self._builder.build(self._world_obs)
        reward = float(sum(terms.values()))
        coverage = self.rewards.exploration.coverage
        info: dict[str, Any] = {
            "reward_terms": terms, "collision": collisions, "shield_intervened": intervened_any,
            "shield_interventions": self._shield.interventions, "shield_active": self._shield.enabled,
            "coverage_cells": coverage.n_covered,
            "coverage": coverage.fraction, "frame": self._frame, "scene": self._scene, "scene_seed": self._scene_seed,
            "world_restarted": False,
        }
        if truncated:
            self.rewards.end_episode()
            self._done = True
            info["episode_stats"] = self.episode_stats()
        return self._policy_obs, reward, False, truncated, info

    def render(self):
        if self.render_mode == "rgb_array":
            return None if self._world_obs is None else self._world_obs.frame.copy()
        return None

    def close(self) -> None:
        if self.world is not None:
            try:
                self.world.close()
            finally:
                self.world = None
                self._world_key = None
        super().close()

    # ------------------------------------------------------------------ restart support and statistics

    @property
    def last_observation(self) -> dict[str, np.ndarray] | None:
        """The last policy observation returned (what :class:`RestartOnCrash` returns on a crash)."""
        return self._policy_obs

    def episode_stats(self) -> dict[str, Any]:
        """Statistics of the episode so far: reward term sums (``reward/<term>``), coverage (fraction, cells),
        collisions (count, per 1,000 frames), shield interventions, frames, mean ground speed (cm/s)."""
        frames = max(1.0, self._stats.get("frames", 0.0))
        coverage = self.rewards.exploration.coverage
        out: dict[str, Any] = {f"reward/{k}": float(v) for k, v in self.rewards.episode_terms.items()}
        out.update({
            "coverage": coverage.fraction if coverage is not None else float("nan"),
            "coverage_cells": coverage.n_covered if coverage is not None else 0,
            "collisions": int(self._stats.get("collisions", 0)),
            "collisions_per_1k": 1000.0 * self._stats.get("collisions", 0.0) / frames,
            "shield_interventions": self._shield.interventions if self._shield is not None else 0,
            "shield_active": bool(self._shield is not None and self._shield.enabled),
            "frames": int(self._stats.get("frames", 0)),
            "mean_speed_cm_s": self._stats.get("speed_sum", 0.0) / frames,
            "scene": self._scene, "scene_seed": self._scene_seed,
        })
        return out

    def rebuild_world(self, reason: str) -> None:
        """Close the current world (ignoring errors from a crashed one) and build a new one on next reset."""
        log.warning("PlaymillEnv: restarting the world %s/%s (scene seed %s): %s", getattr(self.world, "source", "?"),
                    self._scene, self._scene_seed, reason)
        if self.world is not None:
            try:
                self.world.close()
            except Exception as exc:  # a crashed world may fail to close; it is dropped either way
                log.warning("PlaymillEnv: closing the crashed world failed: %s", exc)
        self.world = None
        self._world_key = None
        self._done = True
        self.world_restarts += 1

    # ------------------------------------------------------------------ internals

    def _where(self) -> str:
        src = getattr(self.world, "source", "world")
        return f"{src}/{self._scene} scene seed {self._scene_seed}"

    def _draw_scene(self, options: Mapping[str, Any]) -> None:
        rng = self.np_random
        scene = options.get("scene")
        if scene is None:
            scene = self.cfg.scenes[int(rng.integers(len(self.cfg.scenes)))]
        elif not self._custom_world and scene not in SANDBOX_SCENES:
            raise ValueError(f"PlaymillEnv.reset: scene {scene!r} is not allowed; expected one of {', '.join(SANDBOX_SCENES)}")
        seed = options.get("scene_seed")
        if seed is None:
            seed = self.scene_seeds[int(rng.integers(len(self.scene_seeds)))]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"PlaymillEnv.reset: scene_seed={seed!r} must be a non-negative integer")
        params: dict[str, Any] = {}
        if not self._custom_world:
            params["weather"] = self.cfg.weathers[int(rng.integers(len(self.cfg.weathers)))]
            lo, hi = self.cfg.time_of_day
            params["time_of_day"] = round(float(rng.uniform(lo, hi)), 2)
        self._scene, self._scene_seed, self._params = str(scene), int(seed), params
        self._episodes_in_scene = 0
        if not self._custom_world:
            # a fresh sandbox world per scene draw costs about what a reset with a new seed costs, and keeps
            # episodes independent of what the renderer did before
            self._world_key = None

    def _ensure_world(self) -> None:
        key = (self._scene, tuple(sorted(self._params.items())))
        if self.world is not None and self._world_key == key:
            return
        if self.world is not None:
            self.world.close()
            self.world = None
        if self._scene is None:
            return
        world = self._make_world(self._scene, dict(self._params))
        self.codec.check_world_keys(world.action_space, f"world {type(world).__name__}")
        walk, sprint, radius = agent_constants(world, self.cfg.walk_cm_s, self.cfg.sprint_cm_s, self.cfg.agent_radius_cm)
        self._builder = ObservationBuilder(self.cfg, world, sprint, radius_cm=radius)
        self._shield = CollisionShield(self.shield_cfg, world, walk_cm_s=walk, sprint_cm_s=sprint, radius_cm=radius,
                                       fps=float(world.fps))
        if not math.isclose(float(world.fps), self.cfg.fps, rel_tol=1e-6):
            log.warning("PlaymillEnv: the world runs at %s fps but env.fps is %s; mouse bins are per frame",
                        world.fps, self.cfg.fps)
        self.world = world
        self._world_key = key


class RestartOnCrash(gym.Wrapper):
    """Restarts a world that crashes mid-episode.

    When the wrapped :class:`PlaymillEnv`'s world raises in ``step`` (anything but an
    :class:`~rl_agent.actions.InvalidActionError` or an :class:`~rl_agent.observation.ObservationError`, which
    are bugs to fix, not faults to ride out), the exception is logged, the world is closed and recreated, and
    the episode ends with ``truncated=True``, the last good observation, reward 0 and
    ``info["world_restarted"] = True`` (``info["world_error"]`` says what happened). A crash in ``reset`` is
    retried on a new world; more than ``max_consecutive`` crashes in a row re-raise."""

    def __init__(self, env: gym.Env, max_consecutive: int = 3) -> None:
        super().__init__(env)
        self.max_consecutive = int(max_consecutive)
        self.restarts = 0
        self._in_row = 0

    def reset(self, **kwargs):
        for attempt in range(self.max_consecutive + 1):
            try:
                return self.env.reset(**kwargs)
            except (InvalidActionError, ObservationError, ValueError):
                raise
            except Exception as exc:
                self._in_row += 1
                if attempt >= self.max_consecutive:
                    raise RuntimeError(f"RestartOnCrash: the world crashed {self._in_row} times in a row in reset: "
                                       f"{type(exc).__name__}: {exc}") from exc
                self.restarts += 1
                log.warning("RestartOnCrash: world crashed in reset (%s: %s); restarting it", type(exc).__name__, exc)
                self._rebuild(f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable")

    def step(self, action):
        try:
            out = self.env.step(action)
            self._in_row = 0
            return out
        except (InvalidActionError, ObservationError):
            raise
        except Exception as exc:
            self._in_row += 1
            self.restarts += 1
            inner: PlaymillEnv = self.env.unwrapped  # type: ignore[assignment]
            error = f"{type(exc).__name__}: {exc}"
            log.warning("RestartOnCrash: the world crashed stepping to frame %s (%s); recreating it and truncating the episode",
                        getattr(inner, "_frame", -1) + 1, error)
            stats = inner.episode_stats() if isinstance(inner, PlaymillEnv) else {}
            self._rebuild(error)
            if self._in_row > self.max_consecutive:
                raise RuntimeError(f"RestartOnCrash: the world crashed {self._in_row} times in a row: {error}") from exc
            info = {"world_restarted": True, "world_error": error, "world_restarts": self.restarts,
                    "reward_terms": dict.fromkeys(TERMS, 0.0), "episode_stats": stats}
            return inner.last_observation, 0.0, False, True, info

    def _rebuild(self, reason: str) -> None:
        inner = self.env.unwrapped
        if isinstance(inner, PlaymillEnv):
            inner.rewards.end_episode()
            inner.rebuild_world(reason)


def make_playmill_env(config: EnvConfig | Mapping[str, Any] | None = None, reward: RewardConfig | Mapping[str, Any] | None = None,
                      shield: ShieldConfig | Mapping[str, Any] | None = None, make_world: WorldFactory | None = None,
                      scene_seeds: Sequence[int] | None = None, pool_seed: int = 0, render_mode: str | None = None,
                      restart_on_crash: bool = True) -> gym.Env:
    """:class:`PlaymillEnv`, wrapped in :class:`RestartOnCrash` unless ``restart_on_crash=False`` (the entry
    point of the registered ids)."""
    env: gym.Env = PlaymillEnv(config, reward, shield, make_world, scene_seeds, pool_seed, render_mode)
    if restart_on_crash:
        env = RestartOnCrash(env)
    return env


def make_vec_env_fn(cfg: RLConfig, rank: int, make_world: WorldFactory | None = None) -> gym.Env:
    """Training environment number ``rank`` of a vectorised env (``functools.partial`` of this pickles into a
    worker process): Monitor(RestartOnCrash(PlaymillEnv)) over the training seed pool of ``cfg.ppo.seed``; the
    environments differ by the seeds stable-baselines3 gives their first reset (``seed + rank``)."""
    from stable_baselines3.common.monitor import Monitor

    env = make_playmill_env(cfg.env, cfg.reward, cfg.shield, make_world, pool_seed=cfg.ppo.seed)
    return Monitor(env)


def make_world_env(make_world: WorldFactory, **kwargs: Any) -> gym.Env:
    """The entry point of ``playmill/World-v0``: :func:`make_playmill_env` over a required world factory."""
    if not callable(make_world):
        raise TypeError("playmill/World-v0 needs make_world=factory(scene, params) -> World")
    return make_playmill_env(make_world=make_world, **kwargs)


def register_envs() -> None:
    """Register ``playmill/Sandbox-v0`` and ``playmill/World-v0`` with gymnasium (idempotent)."""
    entry = {"playmill/Sandbox-v0": "rl_agent.env:make_playmill_env", "playmill/World-v0": "rl_agent.env:make_world_env"}
    for env_id, entry_point in entry.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
