"""WanderController: explores a sandbox level like a person, through keys and mouse deltas only.

Behaviour (all seeded, deterministic given the seed and the world):

* modes drawn at random with human durations: walk (most of the time), sprint, a brief pause, looking
  around (pitch up or down, then back), strafing; the occasional jump;
* heading: a wander target that drifts every few seconds; the mouse yaw rate chases the target with a
  first-order lag and a smooth random component (so mouse deltas vary smoothly, never constant), capped at a
  human turn rate;
* walls and people: horizontal probes fan out ahead (``world.probe_many``); when the way ahead gets short the
  target turns towards the most open direction near the current heading, the agent slows to a walk and,
  if very close, stops walking forward until it has turned; when stuck it turns towards open space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from capture.actions import FrameAction
from capture.rotations import wrap_deg
from capture.world import Observation

if TYPE_CHECKING:
    from .world import SandboxWorld

MODES = ("walk", "sprint", "pause", "look", "strafe")


@dataclass(frozen=True)
class WanderParams:
    """Tunables (degrees, seconds, cm). Mode weights are relative probabilities of the next mode."""

    max_turn_deg_s: float = 160.0
    turn_gain_per_s: float = 2.2
    turn_lag_s: float = 0.22
    yaw_noise_deg_s: float = 10.0
    pitch_noise_deg_s: float = 4.0
    max_pitch_rate_deg_s: float = 60.0
    wander_sigma_deg: float = 45.0
    clearance_cm: float = 120.0
    clearance_s: float = 0.6
    stop_cm: float = 60.0
    probe_range_cm: float = 1500.0
    jump_per_s: float = 0.04
    weight_walk: float = 0.37
    weight_sprint: float = 0.14
    weight_pause: float = 0.10
    weight_look: float = 0.24
    weight_strafe: float = 0.15


class WanderController:
    """A seeded exploring controller for a :class:`SandboxWorld` (implements :class:`capture.world.Controller`).

    ``params`` override :class:`WanderParams` fields (unknown names raise ``ValueError``)."""

    PROBE_OFFSETS_DEG = np.arange(-180.0, 180.0, 15.0)  # all round, relative to the current yaw

    def __init__(self, world: "SandboxWorld", **params: float) -> None:
        known = {f.name for f in fields(WanderParams)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"WanderController: unknown parameter(s) {unknown}; known: {sorted(known)}")
        self.world = world
        self.params = WanderParams(**params)
        self._rng: np.random.Generator | None = None
        self._ahead, self._left, self._right = (int(np.nonzero(self.PROBE_OFFSETS_DEG == a)[0][0]) for a in (0.0, -90.0, 90.0))

    # ------------------------------------------------------------------ Controller protocol

    def reset(self, seed: int, obs: Observation) -> None:
        self._rng = np.random.default_rng([int(seed), 0x3A4D])
        self._dt = 1.0 / float(self.world.fps)
        self._mode = "walk"
        self._mode_left_s = float(self._rng.uniform(2.0, 5.0))
        self._target_yaw = float(obs.yaw_deg)
        self._retarget_s = float(self._rng.uniform(2.0, 5.0))
        self._yaw_rate = 0.0
        self._yaw_noise = 0.0
        self._pitch_rate = 0.0
        self._pitch_noise = 0.0
        self._pitch_target = 0.0
        self._look_phase_s = 0.0
        self._look_total_s = 1.0
        self._look_sign = 1.0 if self._rng.random() < 0.5 else -1.0
        self._strafe_key = "d"
        self._walk_in_look = True
        self._stuck_s = 0.0
        self._avoid_s = 0.0

    def act(self, obs: Observation) -> FrameAction:
        if self._rng is None:
            raise RuntimeError("WanderController.act called before reset(seed, obs)")
        p, dt, rng = self.params, self._dt, self._rng
        yaw = float(obs.yaw_deg)

        # ---- modes
        self._mode_left_s -= dt
        if self._mode_left_s <= 0.0:
            self._next_mode()

        # ---- sensing: free distance all round; a direction is as open as its narrowest neighbour, so that
        # the agent's width fits
        dist = self.world.probe_many(yaw + self.PROBE_OFFSETS_DEG, p.probe_range_cm, include_dynamic=True)
        dist = dist - self.world.agent_params.radius_cm
        cone = np.minimum(np.minimum(dist, np.roll(dist, 1)), np.roll(dist, -1))
        front = float(cone[self._ahead])
        speed = abs(float(obs.speed_cm_s))
        wants_forward = self._mode in ("walk", "sprint") or (self._mode == "look" and self._walk_in_look)
        need = p.clearance_cm + p.clearance_s * max(speed, 300.0)

        # ---- stuck: trying to move but not moving, or blocked
        moving_intent = wants_forward or self._mode == "strafe"
        if moving_intent and (speed < 25.0 or obs.collision):
            self._stuck_s += dt
        else:
            self._stuck_s = max(0.0, self._stuck_s - 2 * dt)

        # ---- heading target
        self._retarget_s -= dt
        if self._stuck_s > 0.5:
            self._target_yaw = self._open_direction(yaw, cone, True, need)
            self._stuck_s = 0.0
            self._avoid_s = 1.0
            if self._mode not in ("walk", "pause"):
                self._set_mode("walk", float(rng.uniform(1.5, 3.0)))
        elif front < need and self._avoid_s <= 0.0:
            self._target_yaw = self._open_direction(yaw, cone, front < p.stop_cm, need)
            self._avoid_s = 0.6
        elif self._retarget_s <= 0.0 and self._avoid_s <= 0.0:
            self._target_yaw = yaw + float(rng.normal(0.0, p.wander_sigma_deg))
            self._retarget_s = float(rng.uniform(2.0, 6.0))
        self._avoid_s -= dt

        # ---- yaw: lagged chase of the target plus smooth noise, capped at a human turn rate
        err = wrap_deg(self._target_yaw - yaw)
        desired = float(np.clip(p.turn_gain_per_s * err, -p.max_turn_deg_s, p.max_turn_deg_s))
        self._yaw_noise += (-self._yaw_noise / 0.8) * dt + p.yaw_noise_deg_s * math.sqrt(2 * dt / 0.8) * float(rng.normal())
        self._yaw_rate += (desired - self._yaw_rate) * min(1.0, dt / p.turn_lag_s)
        d_yaw = (self._yaw_rate + self._yaw_noise) * dt

        # ---- pitch: look-around excursions, otherwise a gentle pull back towards level
        if self._mode == "look":
            self._look_phase_s += dt
            target = self._pitch_target if self._look_phase_s < 0.55 * self._look_total_s else 0.0
        else:
            target = 0.0
        self._pitch_noise += (-self._pitch_noise / 1.0) * dt + p.pitch_noise_deg_s * math.sqrt(2 * dt) * float(rng.normal())
        want_rate = float(np.clip(2.5 * (target - obs.pitch_deg), -p.max_pitch_rate_deg_s, p.max_pitch_rate_deg_s))
        self._pitch_rate += (want_rate - self._pitch_rate) * min(1.0, dt / 0.25)
        d_pitch = (self._pitch_rate + self._pitch_noise) * dt

        # ---- keys
        keys: set[str] = set()
        turning_hard = abs(err) > 70.0
        if wants_forward and front > p.stop_cm and not (turning_hard and front < 0.5 * need):
            keys.add("w")
            if self._mode == "sprint" and front > need + 150.0 and not turning_hard:
                keys.add("shift")
        if self._mode == "strafe":
            if float(cone[self._left if self._strafe_key == "a" else self._right]) > p.stop_cm + 40.0:
                keys.add(self._strafe_key)
            else:
                self._strafe_key = "a" if self._strafe_key == "d" else "d"
        if "w" in keys and front > need and float(rng.random()) < p.jump_per_s * dt and self.world.agent_state.on_ground:
            keys.add("space")
        return FrameAction(frozenset(keys & set(self.world.action_space.keys)), d_pitch_deg=d_pitch, d_yaw_deg=d_yaw)

    # ------------------------------------------------------------------ helpers

    def _standing(self) -> bool:
        return self._mode == "pause" or (self._mode == "look" and not self._walk_in_look)

    def _set_mode(self, mode: str, duration_s: float) -> None:
        self._mode = mode
        self._mode_left_s = duration_s

    def _next_mode(self) -> None:
        p, rng = self.params, self._rng
        w = np.array([p.weight_walk, p.weight_sprint, p.weight_pause, p.weight_look, p.weight_strafe])
        mode = MODES[int(rng.choice(len(MODES), p=w / w.sum()))]
        if self._standing() and mode in ("pause", "look"):
            mode = "walk"  # never stand still twice in a row
        duration = {"walk": (2.5, 7.0), "sprint": (1.5, 4.0), "pause": (0.4, 1.4), "look": (1.6, 3.2),
                    "strafe": (0.8, 2.0)}[mode]
        self._set_mode(mode, float(rng.uniform(*duration)))
        if mode == "look":  # up and down in turn
            self._walk_in_look = bool(rng.random() < 0.7)
            if not self._walk_in_look:
                self._mode_left_s = min(self._mode_left_s, float(rng.uniform(1.0, 2.2)))
            self._look_total_s = self._mode_left_s
            self._look_phase_s = 0.0
            self._look_sign = -self._look_sign
            self._pitch_target = self._look_sign * float(rng.uniform(12.0, 35.0))
        elif mode == "strafe":
            self._strafe_key = "a" if rng.random() < 0.5 else "d"

    def _open_direction(self, yaw: float, cone: np.ndarray, allow_back: bool, need_cm: float) -> float:
        """The direction with the most room for the agent's width, preferring small turns. Directions more than
        100 degrees away are considered when ``allow_back`` (boxed in) or when nothing nearer has ``need_cm``."""
        offsets = self.PROBE_OFFSETS_DEG
        score = np.minimum(cone, 800.0) - 2.0 * np.abs(offsets)
        near = np.abs(offsets) <= 100.0
        if not allow_back and cone[near].max() >= need_cm:
            score = np.where(near, score, -np.inf)
        return yaw + float(offsets[int(np.argmax(score))])
