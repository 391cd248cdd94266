"""Kinematic first-person agent: keyboard and mouse in, float64 pose out (Unreal frame, cm, degrees).

Pure NumPy and :mod:`.collision`; no rendering. One :func:`step_agent` call advances one video frame of
``dt_s`` seconds:

1. mouse look: ``yaw += d_yaw_deg`` (turn right +), ``pitch += d_pitch_deg`` (look up +), pitch clamped to
   ``[-pitch_limit_deg, pitch_limit_deg]``; yaw and pitch stay float64 scalars (yaw unwrapped);
2. keys to a horizontal move along the new yaw: W/S forward/back, A/D strafe left/right, diagonals
   normalised; speed walk, sprint (shift) or crouch (ctrl, which wins over sprint);
3. the move is resolved against the obstacles with sliding (:func:`.collision.move_circle`);
4. vertical: space jumps when on the ground; gravity acts in the air (exact parabola per step); the eye
   height eases between standing and crouching.

The reported camera position is the eye: feet position plus the current eye height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from capture.rotations import rotator_to_quat

from .collision import ShapeSet, move_circle


@dataclass(frozen=True)
class AgentParams:
    """Agent constants (cm, s, degrees)."""

    radius_cm: float = 30.0
    eye_height_cm: float = 170.0
    crouch_eye_height_cm: float = 110.0
    eye_height_rate_cm_s: float = 400.0
    walk_cm_s: float = 300.0
    sprint_cm_s: float = 600.0
    crouch_cm_s: float = 150.0
    jump_speed_cm_s: float = 420.0
    gravity_cm_s2: float = 980.0
    pitch_limit_deg: float = 85.0


@dataclass(frozen=True)
class AgentState:
    """The agent at one frame. ``feet_cm``: ground contact point (float64 [3]); ``eye_height_cm``: current
    eye height above the feet; ``vz_cm_s``: vertical speed; ``on_ground``; ``pitch_deg``/``yaw_deg``: look
    accumulators (yaw unwrapped). ``collision``: the last move was blocked, ``blocked_by``: by what kinds
    (``"static"``, ``"npc"``, ``"vehicle"``)."""

    feet_cm: np.ndarray
    yaw_deg: float
    pitch_deg: float = 0.0
    eye_height_cm: float = 170.0
    vz_cm_s: float = 0.0
    on_ground: bool = True
    collision: bool = False
    blocked_by: frozenset[str] = frozenset()

    @property
    def eye_cm(self) -> np.ndarray:
        """Camera position (cm, float64 [3])."""
        return self.feet_cm + np.array([0.0, 0.0, self.eye_height_cm])

    @property
    def quat_wxyz(self) -> np.ndarray:
        """Camera orientation built from the float64 accumulators (roll 0)."""
        return rotator_to_quat(self.pitch_deg, self.yaw_deg, 0.0)

    @property
    def forward_xy(self) -> np.ndarray:
        """Horizontal unit vector of the yaw (the direction W moves)."""
        y = math.radians(self.yaw_deg)
        return np.array([math.cos(y), math.sin(y)])


def spawn_agent(xy_cm: np.ndarray, yaw_deg: float, params: AgentParams, ground_z_cm: float = 0.0) -> AgentState:
    """An agent standing at ``xy_cm`` on the ground, looking level along ``yaw_deg``."""
    return AgentState(np.array([float(xy_cm[0]), float(xy_cm[1]), float(ground_z_cm)], dtype=np.float64),
                      float(yaw_deg), 0.0, params.eye_height_cm)


def move_intent(keys: frozenset[str], yaw_deg: float, params: AgentParams) -> np.ndarray:
    """Intended horizontal velocity (cm/s, [2]) from the held keys and the yaw: W/S along the yaw, D/A to its right/left."""
    fwd = (1.0 if "w" in keys else 0.0) - (1.0 if "s" in keys else 0.0)
    right = (1.0 if "d" in keys else 0.0) - (1.0 if "a" in keys else 0.0)
    norm = math.hypot(fwd, right)
    if norm == 0.0:
        return np.zeros(2)
    if "ctrl" in keys:
        speed = params.crouch_cm_s
    elif "shift" in keys:
        speed = params.sprint_cm_s
    else:
        speed = params.walk_cm_s
    y = math.radians(yaw_deg)
    f = np.array([math.cos(y), math.sin(y)])
    r = np.array([-math.sin(y), math.cos(y)])  # yaw + 90 degrees: the agent's right (Unreal +Y at yaw 0)
    return (f * fwd + r * right) * (speed / norm)


def step_agent(state: AgentState, keys: frozenset[str], d_pitch_deg: float, d_yaw_deg: float, dt_s: float,
               params: AgentParams, obstacles: Sequence[ShapeSet], ground_z_cm: float = 0.0) -> AgentState:
    """Advance the agent by one frame of ``dt_s`` seconds (see the module docstring)."""
    yaw = state.yaw_deg + float(d_yaw_deg)
    pitch = min(params.pitch_limit_deg, max(-params.pitch_limit_deg, state.pitch_deg + float(d_pitch_deg)))

    disp = move_intent(keys, yaw, params) * dt_s
    res = move_circle(state.feet_cm[:2], disp, params.radius_cm, obstacles)

    z, vz, on_ground = float(state.feet_cm[2]), state.vz_cm_s, state.on_ground
    if on_ground and "space" in keys:
        vz, on_ground = params.jump_speed_cm_s, False
    if not on_ground:
        z = z + vz * dt_s - 0.5 * params.gravity_cm_s2 * dt_s * dt_s
        vz = vz - params.gravity_cm_s2 * dt_s
        if z <= ground_z_cm:
            z, vz, on_ground = ground_z_cm, 0.0, True

    target = params.crouch_eye_height_cm if "ctrl" in keys else params.eye_height_cm
    max_change = params.eye_height_rate_cm_s * dt_s
    eye = state.eye_height_cm + min(max_change, max(-max_change, target - state.eye_height_cm))

    return replace(state, feet_cm=np.array([res.end_cm[0], res.end_cm[1], z], dtype=np.float64), yaw_deg=yaw,
                   pitch_deg=pitch, eye_height_cm=eye, vz_cm_s=vz, on_ground=on_ground, collision=res.blocked,
                   blocked_by=res.blocked_by)
