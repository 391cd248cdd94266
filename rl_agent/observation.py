"""The policy's observation: a small RGB view plus a state vector, built from any world's observations.

``{"image": uint8[3, H, W], "state": float32[D]}`` (gymnasium ``Dict``; the image is channels-first, as
stable-baselines3's CNN takes it, so no transpose wrapper is needed). The image is the world's frame resized
to ``obs_width x obs_height`` with area averaging (OpenCV ``INTER_AREA``): during training the world renders
at a small size with the collection aspect (``EnvConfig.render_width x render_height``); when collecting, the
full-resolution frame is resized the same way, so the policy sees the same geometry at both sizes.

The state vector (every entry in [-1, 1]; names in :meth:`ObservationBuilder.state_names`):

* ``v_forward``, ``v_right``: horizontal velocity in the camera's yaw frame / sprint speed;
  ``v_up``: vertical velocity / 500 cm/s;
* ``yaw_sin``, ``yaw_cos``: heading; ``pitch``: pitch / 90 degrees;
* ``collision``: blocked this frame; ``collision_rate``: fraction of the last ``collision_window`` frames
  blocked; ``shield``: the shield changed the last action;
* ``time``: frame / max_frames; ``since_new_cell``: frames since a new coverage cell / 250 (clipped);
* ``ray_k`` (``rays`` of them, evenly spaced all round from straight ahead, clockwise = to the right): the free
  distance ``f`` to the first obstacle (probe distance minus the agent radius, up to ``ray_max_cm``) as
  ``f / (f + ray_scale_cm)``: 0 touching, 0.5 at ``ray_scale_cm``, most resolution close by where it matters
  (needs ``world.probe_many`` or ``world.probe``);
* ``visit_k_d``: for each ray direction and each ``visit_probe_cm`` distance, 1 if the coverage cell there
  was covered this episode, 0 if navigable and not yet covered, -1 if not navigable.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from capture.world import Observation
from rl_agent.config import EnvConfig
from rl_agent.coverage import CoverageGrid
from rl_agent.shield import probe_function


class ObservationError(RuntimeError):
    """A world returned an observation the agent cannot use (non-finite values, wrong frame shape)."""


def check_observation(obs: Observation, step: int, where: str) -> None:
    """Raise :class:`ObservationError` naming ``where`` and the ``step`` when ``obs`` has a non-finite pose,
    velocity, speed or look angle, or a frame that is not ``uint8[H, W, 3]``."""
    for name in ("pos_cm", "quat_wxyz", "vel_cm_s"):
        v = np.asarray(getattr(obs, name), dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ObservationError(f"{where}: step {step}: observation field {name} is not finite: {v.tolist()}")
    for name in ("yaw_deg", "pitch_deg", "speed_cm_s", "t_s"):
        v = float(getattr(obs, name))
        if not math.isfinite(v):
            raise ObservationError(f"{where}: step {step}: observation field {name} is not finite: {v}")
    f = obs.frame
    if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
        desc = f"{type(f).__name__} {getattr(f, 'shape', '')} {getattr(f, 'dtype', '')}"
        raise ObservationError(f"{where}: step {step}: observation frame is {desc}; expected uint8[H, W, 3]")


def state_dim(cfg: EnvConfig) -> int:
    """Length of the state vector of ``cfg``."""
    return 11 + cfg.rays * (1 + len(cfg.visit_probe_cm))


def state_names(cfg: EnvConfig) -> list[str]:
    """Names of the state vector's entries, in order (see the module docstring)."""
    names = ["v_forward", "v_right", "v_up", "yaw_sin", "yaw_cos", "pitch", "collision", "collision_rate",
             "shield", "time", "since_new_cell"]
    names += [f"ray_{k}" for k in range(cfg.rays)]
    names += [f"visit_{k}_{int(d)}" for k in range(cfg.rays) for d in cfg.visit_probe_cm]
    return names


def observation_space(cfg: EnvConfig):
    """The gymnasium ``Dict`` observation space of ``cfg`` (image channels first, state in [-1, 1])."""
    from gymnasium import spaces

    return spaces.Dict({
        "image": spaces.Box(0, 255, (3, cfg.obs_height, cfg.obs_width), dtype=np.uint8),
        "state": spaces.Box(-1.0, 1.0, (state_dim(cfg),), dtype=np.float32),
    })


def resize_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` (uint8 HxWx3) as ``uint8[3, height, width]`` (area averaging; no-op resize when equal)."""
    if frame.shape[0] != height or frame.shape[1] != width:
        import cv2

        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame.transpose(2, 0, 1))


class ObservationBuilder:
    """Turns world observations into policy observations for one world (see the module docstring).

    ``world``: used for probes (rays) only; ``sprint_cm_s``: velocity normaliser; ``max_frames``: the
    episode length the ``time`` entry is measured against; ``radius_cm``: the agent radius the rays' free
    distance subtracts (default ``cfg.agent_radius_cm``)."""

    SINCE_NEW_CELL_SCALE = 250.0
    V_UP_SCALE = 500.0

    def __init__(self, cfg: EnvConfig, world: object, sprint_cm_s: float, max_frames: int | None = None,
                 radius_cm: float | None = None) -> None:
        self.cfg = cfg
        self.sprint_cm_s = float(sprint_cm_s)
        self.radius_cm = float(cfg.agent_radius_cm if radius_cm is None else radius_cm)
        self.max_frames = int(max_frames or cfg.max_frames)
        self.ray_offsets_deg = np.arange(cfg.rays, dtype=np.float64) * (360.0 / cfg.rays) if cfg.rays else np.zeros(0)
        self._probe = probe_function(world, include_dynamic=True) if cfg.rays else None
        if cfg.rays and self._probe is None:
            raise ValueError(f"ObservationBuilder: env.rays={cfg.rays} needs a world with probe_many/probe, and "
                             f"{type(world).__name__} has neither; use a checkpoint trained with env.rays: 0")
        self._collisions: deque[bool] = deque(maxlen=cfg.collision_window)
        self.frame_index = 0
        self.since_new_cell = 0
        self.shield_last = False
        self.coverage: CoverageGrid | None = None

    @property
    def state_dim(self) -> int:
        return state_dim(self.cfg)

    def state_names(self) -> list[str]:
        return state_names(self.cfg)

    def space(self):
        """The gymnasium ``Dict`` observation space."""
        return observation_space(self.cfg)

    def reset(self, coverage: CoverageGrid) -> None:
        """Start an episode; ``coverage`` is the episode's coverage grid (read for the ``visit`` entries)."""
        self._collisions.clear()
        self.frame_index = 0
        self.since_new_cell = 0
        self.shield_last = False
        self.coverage = coverage

    def note_frame(self, obs: Observation, new_cell: bool, shield_intervened: bool) -> None:
        """Record one stepped frame (collision history, time, cells)."""
        self.frame_index += 1
        self._collisions.append(bool(obs.collision))
        self.since_new_cell = 0 if new_cell else self.since_new_cell + 1
        self.shield_last = bool(shield_intervened)

    def build(self, obs: Observation) -> dict[str, np.ndarray]:
        """The policy observation of the world observation ``obs`` (the current frame)."""
        image = resize_frame(obs.frame, self.cfg.obs_width, self.cfg.obs_height)
        yaw = math.radians(float(obs.yaw_deg))
        c, s = math.cos(yaw), math.sin(yaw)
        v = np.asarray(obs.vel_cm_s, dtype=np.float64)
        fwd = v[0] * c + v[1] * s
        right = -v[0] * s + v[1] * c
        coll = list(self._collisions)
        head = [fwd / self.sprint_cm_s, right / self.sprint_cm_s, v[2] / self.V_UP_SCALE, s, c,
                float(obs.pitch_deg) / 90.0, float(obs.collision), (sum(coll) / len(coll)) if coll else 0.0,
                float(self.shield_last), self.frame_index / self.max_frames,
                min(1.0, self.since_new_cell / self.SINCE_NEW_CELL_SCALE)]
        parts = [np.asarray(head, dtype=np.float32)]
        if self.cfg.rays:
            yaws = float(obs.yaw_deg) + self.ray_offsets_deg
            dist = np.asarray(self._probe(yaws, self.cfg.ray_max_cm + self.radius_cm), dtype=np.float64)
            free = np.clip(dist - self.radius_cm, 0.0, self.cfg.ray_max_cm)
            parts.append((free / (free + self.cfg.ray_scale_cm)).astype(np.float32))
            if self.coverage is None:
                raise RuntimeError("ObservationBuilder.build called before reset(coverage)")
            x, y = float(obs.pos_cm[0]), float(obs.pos_cm[1])
            parts.append(self.coverage.probe_state(x, y, float(obs.yaw_deg), self.ray_offsets_deg, self.cfg.visit_probe_cm))
        state = np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)
        return {"image": image, "state": state}
