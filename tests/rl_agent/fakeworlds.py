"""A tiny square-room World for rl_agent tests: no renderer, exact probes, a walkable mesh, injectable faults."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from capture.actions import ActionSpace, FrameAction
from capture.rotations import rotator_to_quat
from capture.world import Observation


class BoxWorld:
    """An empty square room ``[-half, half]^2`` cm; the agent (radius 30 cm, walk 300 / sprint 600 cm/s) is
    blocked by the walls (``collision`` when a move is clamped). ``probe_many`` is exact. Faults:
    ``crash_at`` raises RuntimeError in ``step`` at that frame while ``crashes['left'] > 0`` (shared dict, so
    a recreated world does not crash again); ``nan_at`` returns a NaN position at that frame."""

    source = "sandbox"
    source_frame = "unreal"
    scene = "box"
    fps = 25.0
    width = 24
    height = 24

    def __init__(self, scene: str = "box", params: dict | None = None, *, half_cm: float = 500.0,
                 start_xy: tuple[float, float] = (0.0, 0.0), start_yaw: float = 0.0, crash_at: int | None = None,
                 crashes: dict | None = None, nan_at: int | None = None, keys: tuple[str, ...] | None = None) -> None:
        self.scene = scene
        self.config: dict[str, Any] = dict(params or {})
        self.action_space = ActionSpace(keys) if keys else ActionSpace()
        self.half_cm, self.radius_cm = float(half_cm), 30.0
        self.start_xy, self.start_yaw = start_xy, float(start_yaw)
        self.crash_at, self.crashes, self.nan_at = crash_at, crashes if crashes is not None else {"left": 1}, nan_at
        self.closed = False
        self.resets = 0

    def _obs(self, collision: bool = False) -> Observation:
        img = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        img[..., 0] = int(self.pos[0] / 10) % 256
        img[..., 1] = int(self.yaw) % 256
        img[: self.height // 2, :, 2] = 200
        pos = self.pos.copy()
        if self.nan_at is not None and self.i == self.nan_at:
            pos[1] = float("nan")
        yaw = math.radians(self.yaw)
        speed = float(self.vel[0] * math.cos(yaw) + self.vel[1] * math.sin(yaw))
        return Observation(frame=img, t_s=self.i / self.fps, pos_cm=pos, quat_wxyz=rotator_to_quat(self.pitch, self.yaw, 0.0),
                           pitch_deg=self.pitch, yaw_deg=self.yaw, vel_cm_s=self.vel.copy(), speed_cm_s=speed,
                           collision=collision)

    def reset(self, seed: int) -> Observation:
        if self.closed:
            raise RuntimeError("BoxWorld is closed")
        self.resets += 1
        self.i = 0
        self.pos = np.array([self.start_xy[0], self.start_xy[1], 170.0])
        self.yaw, self.pitch = self.start_yaw, 0.0
        self.vel = np.zeros(3)
        return self._obs()

    def step(self, action: FrameAction) -> Observation:
        self.i += 1
        if self.crash_at is not None and self.i == self.crash_at and self.crashes.get("left", 0) > 0:
            self.crashes["left"] -= 1
            raise RuntimeError(f"BoxWorld renderer died at frame {self.i}")
        self.yaw += action.d_yaw_deg
        self.pitch = float(np.clip(self.pitch + action.d_pitch_deg, -85, 85))
        k = action.keys
        fwd = ("w" in k) - ("s" in k)
        right = ("d" in k) - ("a" in k)
        move = np.zeros(2)
        if fwd or right:
            y = math.radians(self.yaw)
            f, r = np.array([math.cos(y), math.sin(y)]), np.array([-math.sin(y), math.cos(y)])
            speed = 600.0 if "shift" in k else 300.0
            move = (f * fwd + r * right) / math.hypot(fwd, right) * speed / self.fps
        lim = self.half_cm - self.radius_cm
        target = self.pos[:2] + move
        new = np.clip(target, -lim, lim)
        collision = bool(np.any(np.abs(new - target) > 1e-9))
        old = self.pos.copy()
        self.pos = np.array([new[0], new[1], 170.0])
        self.vel = (self.pos - old) * self.fps
        return self._obs(collision)

    def probe_many(self, yaws_deg: np.ndarray, max_dist_cm: float, include_dynamic: bool = False) -> np.ndarray:
        y = np.radians(np.asarray(yaws_deg, dtype=np.float64))
        c, s = np.cos(y), np.sin(y)
        x0, y0 = self.pos[0], self.pos[1]
        with np.errstate(divide="ignore"):
            tx = np.where(c > 1e-12, (self.half_cm - x0) / c, np.where(c < -1e-12, (-self.half_cm - x0) / c, np.inf))
            ty = np.where(s > 1e-12, (self.half_cm - y0) / s, np.where(s < -1e-12, (-self.half_cm - y0) / s, np.inf))
        return np.minimum(np.minimum(tx, ty), max_dist_cm)

    def walkable_mesh(self) -> tuple[np.ndarray, list[list[int]]]:
        n = int(2 * self.half_cm // 100)
        xs = np.linspace(-self.half_cm, self.half_cm, n + 1)
        verts = np.array([[x, y, 0.0] for y in xs for x in xs])
        polys = [[j * (n + 1) + i, j * (n + 1) + i + 1, (j + 1) * (n + 1) + i + 1, (j + 1) * (n + 1) + i]
                 for j in range(n) for i in range(n)]
        return verts, polys

    def close(self) -> None:
        self.closed = True


def make_box_world(scene: str, params: dict, **kwargs: Any) -> BoxWorld:
    return BoxWorld(scene, params, **kwargs)


#: Crashes left for :func:`crash_once_box_world` worlds of this process (a test sets it).
CRASHES: dict[str, int] = {"left": 0}


def crash_once_box_world(scene: str, params: dict) -> BoxWorld:
    """A picklable factory (``--world tests.rl_agent.fakeworlds:crash_once_box_world``): box worlds whose renderer
    dies at frame 7 while ``CRASHES['left'] > 0``."""
    return BoxWorld(scene, params, crash_at=7, crashes=CRASHES)


def nan_box_world(scene: str, params: dict) -> BoxWorld:
    """A picklable factory of box worlds that report a NaN position at frame 5."""
    return BoxWorld(scene, params, nan_at=5)


#: A small, fast EnvConfig for the box world (mapping form).
BOX_ENV = {"scenes": ["city"], "max_frames": 40, "obs_width": 36, "obs_height": 36, "render_width": 36,
           "render_height": 36, "rays": 4, "action_repeat": 2}


def crash_once_marker_world(scene: str, params: dict, *, marker: str) -> BoxWorld:
    """Box worlds whose renderer dies at frame 7 once across processes: the first world built while the file
    ``marker`` exists removes it and crashes (``functools.partial(crash_once_marker_world, marker=path)`` pickles
    into SubprocVecEnv workers)."""
    import os

    crashes = {"left": 0}
    try:
        os.remove(marker)
        crashes["left"] = 1
    except FileNotFoundError:
        pass
    return BoxWorld(scene, params, crash_at=7, crashes=crashes)
