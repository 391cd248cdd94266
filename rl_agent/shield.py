"""The collision rule as a safety constraint: a shield that removes moves which would walk into an obstacle.

Before each frame the shield looks at the move the keys ask for (direction from W/S/A/D and the camera yaw
after this frame's mouse turn; speed walk or sprint) and casts horizontal probes from the agent's centre
(``world.probe_many``, or ``world.probe``) along the move and at ``+-spread/2`` and ``+-spread`` beside it.
A probe hit at distance ``d`` and angle ``a`` from the move lies in the agent's path when its lateral offset
``d sin|a|`` is within the agent radius; the free distance is then ``d cos a - radius``. The move is
unsafe when the free distance is shorter than the move's length over ``lookahead_frames`` frames plus
``margin_cm``.

An unsafe move is replaced by no move at all (``fallback: stop``, the default) or by its safe part
(``fallback: slide``: the forward/back component alone or the strafe component alone if one of them is safe,
else no move); sprint is released when nothing moves. Mouse look and jump are kept. Each
replacement is an *intervention*: counted in :attr:`CollisionShield.interventions`, reported per step in
``info["shield_intervened"]`` and, when ``shield.penalize``, penalised like a collision. The shield is
switched off with ``ShieldConfig(enabled=False)`` (then it never changes an action); during training it guards a
fraction ``episode_fraction`` of the episodes (:attr:`CollisionShield.active`).
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from capture.actions import FrameAction
from rl_agent.actions import MOVE_KEYS, move_direction_deg, move_speed_cm_s
from rl_agent.config import ShieldConfig


class CollisionShield:
    """Filters frame actions against ``world``'s probes (see the module docstring).

    ``walk_cm_s``/``sprint_cm_s``/``radius_cm``: agent constants (taken from ``world.agent_params`` when the
    world has them); ``fps``: frames per second of the world. Raises ``ValueError`` when enabled on a world
    without probes."""

    def __init__(self, cfg: ShieldConfig, world: object, *, walk_cm_s: float, sprint_cm_s: float, radius_cm: float,
                 fps: float) -> None:
        self.cfg = cfg
        self.world = world
        self.walk_cm_s, self.sprint_cm_s, self.radius_cm = float(walk_cm_s), float(sprint_cm_s), float(radius_cm)
        self.dt_s = 1.0 / float(fps)
        self.interventions = 0
        self.checks = 0
        self.active = True
        s = float(cfg.spread_deg)
        self._offsets = np.array([0.0, -s / 2, s / 2, -s, s]) if s > 0 else np.array([0.0])
        self._probe = None
        if cfg.enabled:
            self._probe = probe_function(world, cfg.include_dynamic)
            if self._probe is None:
                raise ValueError(f"CollisionShield: the world {type(world).__name__} has no probe_many/probe method; "
                                 "switch the shield off (shield.enabled: false) for this world")

    @property
    def enabled(self) -> bool:
        """Switched on in the config and guarding the current episode (see ``episode_fraction``)."""
        return bool(self.cfg.enabled) and self.active

    def reset_counts(self) -> None:
        self.interventions = 0
        self.checks = 0

    def free_cm(self, direction_deg: float) -> float:
        """Free distance (cm) the agent can move along ``direction_deg`` before touching an obstacle."""
        reach = self.radius_cm + self.cfg.margin_cm + self.sprint_cm_s * self.dt_s * max(self.cfg.lookahead_frames, 1.0) + 200.0
        dist = np.asarray(self._probe(direction_deg + self._offsets, reach), dtype=np.float64)
        a = np.radians(np.abs(self._offsets))
        lateral = dist * np.sin(a)
        in_path = (lateral <= self.radius_cm) & (dist < reach)
        if not np.any(in_path):
            return float(reach - self.radius_cm)
        return float(np.min(dist[in_path] * np.cos(a[in_path])) - self.radius_cm)

    def safe(self, keys: frozenset[str], yaw_deg: float) -> bool:
        """Whether the move of ``keys`` at camera yaw ``yaw_deg`` keeps clear of obstacles."""
        direction = move_direction_deg(keys, yaw_deg)
        if direction is None:
            return True
        step = move_speed_cm_s(keys, self.walk_cm_s, self.sprint_cm_s) * self.dt_s * self.cfg.lookahead_frames
        return self.free_cm(direction) >= step + self.cfg.margin_cm

    def filter(self, action: FrameAction, yaw_deg: float) -> tuple[FrameAction, bool]:
        """``(action to execute, intervened)`` for ``action`` with the camera at ``yaw_deg`` before the frame."""
        if not self.enabled:
            return action, False
        keys = frozenset(action.keys)
        if not keys & MOVE_KEYS:
            return action, False
        self.checks += 1
        yaw = float(yaw_deg) + float(action.d_yaw_deg)
        if self.safe(keys, yaw):
            return action, False
        other = keys - MOVE_KEYS
        chosen = other - {"shift"}
        if self.cfg.fallback == "slide":
            for cand in (other | (keys & {"w", "s"}), other | (keys & {"a", "d"})):
                if cand & MOVE_KEYS and self.safe(cand, yaw):
                    chosen = cand
                    break
        self.interventions += 1
        return FrameAction(chosen, d_pitch_deg=action.d_pitch_deg, d_yaw_deg=action.d_yaw_deg,
                           mouse_dx=action.mouse_dx, mouse_dy=action.mouse_dy), True


def probe_function(world: object, include_dynamic: bool = True):
    """A ``f(yaws_deg, max_dist_cm) -> distances_cm`` over the world's ``probe_many`` or ``probe``; None if neither."""
    many = getattr(world, "probe_many", None)
    if callable(many):
        if _accepts(many, "include_dynamic"):
            return lambda yaws, max_d: many(np.asarray(yaws, dtype=np.float64), max_d, include_dynamic=include_dynamic)
        return lambda yaws, max_d: many(np.asarray(yaws, dtype=np.float64), max_d)
    one = getattr(world, "probe", None)
    if callable(one):
        if _accepts(one, "include_dynamic"):
            return lambda yaws, max_d: np.array([one(float(y), max_d, include_dynamic=include_dynamic) for y in yaws])
        return lambda yaws, max_d: np.array([one(float(y), max_d) for y in yaws])
    return None


def _accepts(fn: object, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def agent_constants(world: object, walk_cm_s: float, sprint_cm_s: float, radius_cm: float) -> tuple[float, float, float]:
    """``(walk, sprint, radius)`` from ``world.agent_params`` when present, else the given fallbacks."""
    p = getattr(world, "agent_params", None)
    if p is not None:
        walk = float(getattr(p, "walk_cm_s", walk_cm_s))
        sprint = float(getattr(p, "sprint_cm_s", sprint_cm_s))
        radius = float(getattr(p, "radius_cm", radius_cm))
        if all(math.isfinite(v) for v in (walk, sprint, radius)):
            return walk, sprint, radius
    return float(walk_cm_s), float(sprint_cm_s), float(radius_cm)
