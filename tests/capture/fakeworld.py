"""A tiny deterministic World and controller for tests of the collection loop (no renderer needed)."""

from __future__ import annotations

import time

import numpy as np

from capture.actions import ActionSpace, FrameAction
from capture.rotations import forward_vector, rotator_to_quat
from capture.world import Observation


class FakeWorld:
    """A flat plane; the frame is a colour gradient that shifts with the pose. ``crash_at`` makes step()
    raise at that frame of episodes whose seed is in ``crash_seeds`` (a world that dies mid-episode);
    ``step_sleep_s`` slows it down to look like a renderer."""

    source = "sandbox"
    source_frame = "unreal"
    action_space = ActionSpace()

    def __init__(self, scene: str = "fake", params=None, width: int = 64, height: int = 48, fps: float = 25.0,
                 crash_seeds=(), crash_at: int = 5, step_sleep_s: float = 0.0):
        self.scene, self.width, self.height, self.fps = scene, width, height, fps
        self.config = dict(params or {})
        self.crash_seeds, self.crash_at = set(crash_seeds), crash_at
        self.step_sleep_s = step_sleep_s
        self.closed = False

    def _obs(self, collision=False) -> Observation:
        yy, xx = np.mgrid[0:self.height, 0:self.width]
        r = ((xx + self.pos[0] / 10.0) % 256).astype(np.uint8)
        g = ((yy + self.yaw) % 256).astype(np.uint8)
        b = np.full_like(r, (self.i * 7) % 256)
        frame = np.stack([r, g, b], axis=-1)
        return Observation(frame=frame, t_s=self.i / self.fps, pos_cm=self.pos.copy(),
                           quat_wxyz=rotator_to_quat(self.pitch, self.yaw, 0.0), pitch_deg=self.pitch,
                           yaw_deg=self.yaw, vel_cm_s=self.vel.copy(),
                           speed_cm_s=float(self.vel[:2] @ forward_vector(0.0, self.yaw)[:2]),
                           collision=collision)

    def reset(self, seed: int) -> Observation:
        self.seed, self.i = seed, 0
        self.pos = np.array([float(seed % 1000), 0.0, 170.0])
        self.yaw, self.pitch = 0.0, 0.0
        self.vel = np.zeros(3)
        return self._obs()

    def step(self, action: FrameAction) -> Observation:
        self.i += 1
        if self.step_sleep_s:
            time.sleep(self.step_sleep_s)
        if self.seed in self.crash_seeds and self.i == self.crash_at:
            raise RuntimeError(f"fake renderer crashed at frame {self.i}")
        self.yaw += action.d_yaw_deg
        self.pitch = float(np.clip(self.pitch + action.d_pitch_deg, -85, 85))
        fwd = forward_vector(0.0, self.yaw)
        move = (("w" in action.keys) - ("s" in action.keys)) * 300.0 / self.fps
        step = fwd * move
        self.vel = step * self.fps
        self.pos = self.pos + step
        return self._obs(collision=False)

    def close(self) -> None:
        self.closed = True


class ScriptedController:
    """Forward with a slow right turn; a tap of space every 10 frames."""

    def __init__(self, world=None):
        self.n = 0

    def reset(self, seed, obs):
        self.n = 0

    def act(self, obs):
        self.n += 1
        keys = {"w"} | ({"space"} if self.n % 10 == 0 else set())
        return FrameAction(keys=keys, d_yaw_deg=0.5, d_pitch_deg=0.1 if self.n % 4 == 0 else 0.0)


def make_fake_world(scene, params, **kw):
    return FakeWorld(scene, params, **kw)


def make_scripted_controller(world):
    return ScriptedController(world)
