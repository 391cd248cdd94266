"""NavmeshController: follows seeded navmesh tours with the keys and mouse of a player, in any World.

The controller plays a tour of :func:`unreal_bridge.routes.generate_route` (walks along jittered shortest paths,
pauses, look-arounds, strafes) through frame actions only: W/A/S/D (+ shift to sprint on long straights) and mouse
yaw/pitch deltas. It never sets a pose; the world integrates the actions, so the recorded actions are exactly the
inputs that produced the motion.

Mouse: a heading controller with feed-forward, a proportional term, a yaw-rate cap (``max_turn_deg_s``, e.g.
150 deg/s = 6 deg/frame at 25 fps), an angular-acceleration cap (rates vary smoothly, no steps) and a slow
Ornstein-Uhlenbeck wobble (hands are never still); pitch likewise, level while walking, raised or lowered during
look-arounds. A look-around is a raised-cosine yaw (and pitch) excursion stretched so that its peak rate stays
under 90% of the cap.

Walking: pure pursuit along the path: the aim point is the farthest point up to ``lookahead_cm`` ahead on the path
that the agent can see over the navmesh (mesh raycast); path corners are first moved up to ``corner_margin_cm``
away from walls. W is held when the heading error is small (hysteresis), released to turn on the spot when large.

Safety, every frame, before the action is returned: the displacement the keys will cause (walk/sprint speed along
the new yaw, as the world's agent moves) must stay on the navmesh (mesh raycast with a margin) and, when the world
can tell (``world.dynamic_clearance``: the sandbox's NPCs and vehicles), keep ``radius + clearance_cm`` from people
and cars, also where they will be ``2 / fps`` s later. If not, it tries the diagonal and side keys that still make
progress, else stands. People ahead on the path are passed by steering to the nearest clear heading (dodge).

People who stop for the agent (the sandbox's NPCs yield) would wait for it forever: when held up for
``sidestep_after_s`` the agent steps aside (90-140 cm, preferably sideways, to the reachable spot with the most room,
with the keys only: strafe or back-pedal), waits ``sidestep_wait_s`` and plans its way on.

Breaks: every ``break_min_cm``-``break_max_cm`` of walking (drawn) the walk is interrupted by a look-around or a pause
(the route's probabilities, spans and durations), then resumed on the same path, so long legs are not monotonous.

Replanning: when the agent drifts more than ``drift_cm`` from the path, cannot see the path, moves much less than
its keys ask for (``stuck_s``), collides, or has been held up ``replan_wait_s``, it plans a new shortest path to the
walk's goal; after ``max_replans`` replans of one event, or when held up ``give_up_s``, the event is dropped and, when
the tour is over, a new tour starts from where the agent stands.

The navmesh: ``navmesh=`` (a :class:`~unreal_bridge.navmesh.NavMesh` or a file: Recast ``.obj`` or walkable ``.json``),
else ``world.navmesh`` (UnrealCVWorld), else built from ``world.walkable_mesh()`` (the sandbox) at reset, cached by
content. Agent constants (``walk_cm_s``, ``sprint_cm_s``, ``agent_radius_cm``, ``eye_height_cm``) come from
``world.config`` unless given.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import OrderedDict, deque
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

import numpy as np

from capture.actions import FrameAction
from capture.rotations import wrap_deg
from capture.world import Observation, World

from .navmesh import NavMesh, NavMeshError
from .routes import LookAround, Pause, RouteConfig, RouteEvent, Strafe, Walk, generate_route

CONTROLLER_NAME = "navmesh"
#: Tours of the controller by default: waypoints drawn among 4 candidates (legs of tens of metres rather than the
#: longest of 16, so pauses, look-arounds and strafes come every 10-30 s of walking).
DEFAULT_ROUTE = RouteConfig(candidates=4, min_leg_cm=800.0, pause_prob=0.35, look_prob=0.4, strafe_prob=0.35)
_MESH_CACHE: "OrderedDict[str, NavMesh]" = OrderedDict()
_MESH_CACHE_SIZE = 2


@dataclass(frozen=True)
class NavControllerParams:
    """Tunables (cm, s, degrees). ``None`` agent constants are read from ``world.config`` (defaults 300 / 600 cm/s,
    30 cm, 170 cm)."""

    max_turn_deg_s: float = 150.0
    max_turn_accel_deg_s2: float = 700.0
    turn_gain_per_s: float = 4.0
    yaw_noise_deg_s: float = 2.5
    yaw_noise_tau_s: float = 0.7
    max_pitch_rate_deg_s: float = 60.0
    max_pitch_accel_deg_s2: float = 400.0
    pitch_gain_per_s: float = 3.0
    pitch_noise_deg_s: float = 1.0
    walk_heading_deg: float = 45.0
    stop_heading_deg: float = 90.0
    lookahead_cm: float = 160.0
    corner_margin_cm: float = 35.0
    arrive_cm: float = 35.0
    drift_cm: float = 120.0
    step_margin_cm: float = 6.0
    clearance_cm: float = 20.0
    sense_cm: float = 160.0
    dodge_hold_s: float = 0.5
    break_min_cm: float = 2000.0
    break_max_cm: float = 6000.0
    sprint_prob: float = 0.3
    sprint_straight_cm: float = 700.0
    stuck_s: float = 0.3
    sidestep_after_s: float = 0.6
    sidestep_wait_s: float = 0.8
    replan_wait_s: float = 1.5
    give_up_s: float = 4.0
    max_replans: int = 4
    walk_cm_s: float | None = None
    sprint_cm_s: float | None = None
    agent_radius_cm: float | None = None
    eye_height_cm: float | None = None
    snap_cm: float = 150.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"NavmeshController: {f.name}={v!r} must be a finite number >= 0")
        if self.stop_heading_deg < self.walk_heading_deg:
            raise ValueError("NavmeshController: stop_heading_deg must be >= walk_heading_deg")
        if self.max_turn_deg_s <= 0 or self.lookahead_cm <= 0:
            raise ValueError("NavmeshController: max_turn_deg_s and lookahead_cm must be > 0")


# ------------------------------------------------------------------------------------------------ pure helpers


def bearing_deg(from_xy: np.ndarray, to_xy: np.ndarray) -> float:
    """Yaw (degrees, Unreal: 0 = +X, 90 = +Y) of the direction ``from -> to`` in the xy plane."""
    return math.degrees(math.atan2(float(to_xy[1]) - float(from_xy[1]), float(to_xy[0]) - float(from_xy[0])))


def yaw_dir(yaw_deg: float) -> np.ndarray:
    """Horizontal unit vector ``(cos, sin)`` of a yaw in degrees."""
    y = math.radians(yaw_deg)
    return np.array([math.cos(y), math.sin(y)])


def key_velocity(keys: frozenset[str], yaw_deg: float, walk_cm_s: float, sprint_cm_s: float) -> np.ndarray:
    """Horizontal velocity (cm/s, [2]) a first-person agent gets from W/S/A/D (+ shift) along ``yaw_deg``:
    forward/back along the yaw, D/A to its right/left, diagonals normalised (as the sandbox and UnrealCVWorld move)."""
    fwd = (1.0 if "w" in keys else 0.0) - (1.0 if "s" in keys else 0.0)
    right = (1.0 if "d" in keys else 0.0) - (1.0 if "a" in keys else 0.0)
    norm = math.hypot(fwd, right)
    if norm == 0.0:
        return np.zeros(2)
    speed = sprint_cm_s if "shift" in keys else walk_cm_s
    f = yaw_dir(yaw_deg)
    r = np.array([-f[1], f[0]])
    return (f * fwd + r * right) * (speed / norm)


_MOVE_KEYS: tuple[frozenset[str], ...] = tuple(frozenset(k) for k in (
    {"w"}, {"w", "d"}, {"d"}, {"s", "d"}, {"s"}, {"s", "a"}, {"a"}, {"w", "a"}))


def keys_toward(direction_xy: np.ndarray, yaw_deg: float) -> frozenset[str]:
    """The W/A/S/D combination (of the 8 directions) that moves closest to ``direction_xy`` at yaw ``yaw_deg``."""
    d = np.asarray(direction_xy, dtype=np.float64)
    n = float(np.hypot(*d))
    if n == 0.0:
        return frozenset()
    scores = [float(key_velocity(k, yaw_deg, 1.0, 1.0) @ d) / n for k in _MOVE_KEYS]
    return _MOVE_KEYS[int(np.argmax(scores))]


def raised_cosine(u: float) -> tuple[float, float]:
    """``(g, dg/du)`` of ``g(u) = (1 - cos 2 pi u) / 2`` for ``u`` clamped to [0, 1]: 0 -> 1 -> 0, smooth."""
    u = min(1.0, max(0.0, u))
    return 0.5 * (1.0 - math.cos(2.0 * math.pi * u)), math.pi * math.sin(2.0 * math.pi * u)


def rate_step(rate: float, desired: float, max_rate: float, max_accel: float, dt: float) -> float:
    """Move ``rate`` towards ``desired`` (clipped to ``+-max_rate``) by at most ``max_accel * dt``."""
    target = min(max_rate, max(-max_rate, desired))
    dv = min(max_accel * dt, max(-max_accel * dt, target - rate))
    return rate + dv


def polyline_arclength(points: np.ndarray) -> np.ndarray:
    """Cumulative xy arc length (cm, [K]) of a polyline ``(K, >=2)``."""
    seg = np.diff(points[:, :2], axis=0)
    return np.r_[0.0, np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))]


def point_at(points: np.ndarray, cum: np.ndarray, s: float) -> np.ndarray:
    """The point at arc length ``s`` (clamped) of a polyline with cumulative lengths ``cum``."""
    if len(points) == 1:
        return points[0].copy()
    s = min(float(cum[-1]), max(0.0, float(s)))
    i = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(points) - 2))
    seg = cum[i + 1] - cum[i]
    t = 0.0 if seg <= 0.0 else (s - cum[i]) / seg
    return points[i] + t * (points[i + 1] - points[i])


def project_on_polyline(points: np.ndarray, cum: np.ndarray, xy: np.ndarray, s_lo: float, s_hi: float
                        ) -> tuple[float, float]:
    """Closest point of the polyline part ``[s_lo, s_hi]`` to ``xy``: ``(arc length, distance cm)``."""
    if len(points) < 2:
        return 0.0, float(np.hypot(*(points[0, :2] - xy)))
    i0 = int(np.clip(np.searchsorted(cum, s_lo, side="right") - 1, 0, len(points) - 2))
    i1 = int(np.clip(np.searchsorted(cum, s_hi, side="right"), i0 + 1, len(points) - 1))
    a, b = points[i0:i1, :2], points[i0 + 1:i1 + 1, :2]
    d = b - a
    den = np.einsum("ij,ij->i", d, d)
    t = np.where(den > 0, np.einsum("ij,ij->i", xy[None, :] - a, d) / np.where(den > 0, den, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    q = a + t[:, None] * d
    dist = np.hypot(*(q - xy[None, :]).T)
    k = int(np.argmin(dist))
    return float(cum[i0 + k] + t[k] * math.sqrt(den[k])), float(dist[k])


def straight_ahead(points: np.ndarray, cum: np.ndarray, s: float, length_cm: float, tolerance_cm: float = 80.0) -> bool:
    """The next ``length_cm`` of path after ``s`` stay within ``tolerance_cm`` of the straight chord (a long,
    nearly straight stretch: somewhere a player would sprint)."""
    if s + length_cm > cum[-1]:
        return False
    a, b = point_at(points, cum, s)[:2], point_at(points, cum, s + length_cm)[:2]
    inner = points[(cum > s) & (cum < s + length_cm), :2]
    if not len(inner):
        return True
    d = b - a
    n = max(float(np.hypot(*d)), 1e-9)
    off = np.abs((inner[:, 0] - a[0]) * d[1] - (inner[:, 1] - a[1]) * d[0]) / n
    return bool(off.max() <= tolerance_cm)


def segment_clear(mesh: NavMesh, a: np.ndarray, b: np.ndarray, snap_cm: float) -> bool:
    """The xy segment ``a -> b`` stays on the mesh (mesh raycast from ``a`` reaches ``b``)."""
    try:
        return not mesh.raycast(a, b, snap_cm=snap_cm).hit
    except (ValueError, NavMeshError):
        return False


def ease_corners(mesh: NavMesh, points: np.ndarray, margin_cm: float, snap_cm: float) -> np.ndarray:
    """Move each bend of a path up to ``margin_cm`` towards the outside of the turn (away from the wall corner the
    shortest path hugs), keeping every segment on the mesh; tries the full, half and quarter margin."""
    pts = np.array(points, dtype=np.float64, copy=True)
    if len(pts) < 3 or margin_cm <= 0:
        return pts
    for i in range(1, len(pts) - 1):
        a = pts[i, :2] - pts[i - 1, :2]
        b = pts[i + 1, :2] - pts[i, :2]
        na, nb = np.hypot(*a), np.hypot(*b)
        if na < 1e-6 or nb < 1e-6:
            continue
        a, b = a / na, b / nb
        if float(a @ b) > math.cos(math.radians(5.0)):
            continue
        out = a - b
        out /= max(np.hypot(*out), 1e-12)
        for m in (margin_cm, 0.5 * margin_cm, 0.25 * margin_cm):
            q = pts[i].copy()
            q[:2] += out * m
            if (mesh.locate_xy(q[None, :2])[0] >= 0 and segment_clear(mesh, pts[i - 1], q, snap_cm)
                    and segment_clear(mesh, q, pts[i + 1], snap_cm)):
                pts[i] = q
                break
    return pts


def navmesh_from_world(world: Any) -> NavMesh:
    """The navmesh of a world: ``world.navmesh`` when it has one, else built from ``world.walkable_mesh()``
    (cached by content: episodes of the same level share it)."""
    mesh = getattr(world, "navmesh", None)
    if isinstance(mesh, NavMesh):
        return mesh
    walkable = getattr(world, "walkable_mesh", None)
    if walkable is None:
        raise ValueError(f"NavmeshController: {type(world).__name__} has neither a navmesh nor walkable_mesh(); "
                         "pass navmesh=<NavMesh or file>")
    verts, polys = walkable()
    verts = np.asarray(verts, dtype=np.float64)
    h = hashlib.sha1(verts.tobytes())
    h.update(np.asarray([len(p) for p in polys], dtype=np.int64).tobytes())
    h.update(np.concatenate([np.asarray(p, dtype=np.int64) for p in polys]).tobytes() if polys else b"")
    key = h.hexdigest()
    if key in _MESH_CACHE:
        _MESH_CACHE.move_to_end(key)
        return _MESH_CACHE[key]
    mesh = NavMesh(verts, polys, name=str(getattr(world, "scene", "")))
    _MESH_CACHE[key] = mesh
    while len(_MESH_CACHE) > _MESH_CACHE_SIZE:
        _MESH_CACHE.popitem(last=False)
    return mesh


def load_navmesh(path: str | os.PathLike) -> NavMesh:
    """A navmesh file: Recast/Unreal ``.obj`` export (Y-up, converted) or JSON (walkable export or vertices/polygons)."""
    from .navmesh import load_json, load_obj

    p = str(path)
    if p.lower().endswith(".obj"):
        return load_obj(p)
    if p.lower().endswith(".json"):
        return load_json(p)
    raise ValueError(f"navmesh file {p!r}: expected a .obj (Recast export) or .json (walkable export) file")


# ------------------------------------------------------------------------------------------------ the controller


@dataclass
class ControllerStats:
    """Counters of one episode: replans by cause, events started by kind (route events and mid-walk breaks),
    dropped events, tours started, frames the safety check changed the keys, frames spent dodging or waiting for
    people, side steps out of someone's way, mid-walk breaks."""

    replans: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    events_dropped: int = 0
    tours: int = 0
    shield_frames: int = 0
    dodge_frames: int = 0
    wait_frames: int = 0
    sidesteps: int = 0
    breaks: int = 0

    def count(self, why: str) -> None:
        self.replans[why] = self.replans.get(why, 0) + 1


@dataclass
class _Path:
    points: np.ndarray
    cum: np.ndarray
    s: float = 0.0

    @classmethod
    def of(cls, points: np.ndarray) -> "_Path":
        pts = np.asarray(points, dtype=np.float64)
        return cls(pts, polyline_arclength(pts))

    @property
    def length(self) -> float:
        return float(self.cum[-1])


class NavmeshController:
    """Plays navmesh tours as keyboard and mouse actions (see the module docstring); a
    :class:`capture.world.Controller` for any :class:`capture.world.World`.

    ``navmesh``: a NavMesh or a mesh file (else the world's). ``route``: :class:`RouteConfig` or a mapping of some
    of its fields (the rest from :data:`DEFAULT_ROUTE`). ``params``: :class:`NavControllerParams` fields (unknown
    names raise ``ValueError``)."""

    def __init__(self, world: World, navmesh: NavMesh | str | os.PathLike | None = None,
                 route: RouteConfig | Mapping[str, Any] | None = None, **params: Any) -> None:
        known = {f.name for f in fields(NavControllerParams)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"NavmeshController: unknown parameter(s) {unknown}; known: {sorted(known)}")
        self.world = world
        self.params = NavControllerParams(**params)
        if route is None or isinstance(route, RouteConfig):
            self.route_config = route or DEFAULT_ROUTE
        else:
            self.route_config = RouteConfig.from_dict({**DEFAULT_ROUTE.to_dict(), **dict(route)}, "route")
        self._navmesh_arg = navmesh
        self.mesh: NavMesh | None = navmesh if isinstance(navmesh, NavMesh) else None
        self.stats = ControllerStats()
        self._rng: np.random.Generator | None = None

    # ------------------------------------------------------------------ Controller protocol

    def reset(self, seed: int, obs: Observation) -> None:
        """Build (or reuse) the navmesh, plan the first tour from where the agent stands, zero the hand state."""
        p, cfg = self.params, getattr(self.world, "config", {}) or {}
        if self._navmesh_arg is None:
            self.mesh = navmesh_from_world(self.world)  # the level may change with the seed
        elif self.mesh is None:
            self.mesh = load_navmesh(self._navmesh_arg)
        self._walk = float(p.walk_cm_s if p.walk_cm_s is not None else cfg.get("walk_cm_s", 300.0))
        self._sprint = float(p.sprint_cm_s if p.sprint_cm_s is not None else cfg.get("sprint_cm_s", 600.0))
        self._radius = float(p.agent_radius_cm if p.agent_radius_cm is not None else cfg.get("agent_radius_cm", 30.0))
        self._eye = float(p.eye_height_cm if p.eye_height_cm is not None else cfg.get("eye_height_cm", 170.0))
        self._dt = 1.0 / float(self.world.fps)
        self._seed = int(seed)
        self._rng = np.random.default_rng([int(seed), 0x4E41])
        self._dyn: Callable[..., np.ndarray] | None = getattr(self.world, "dynamic_clearance", None)
        self.stats = ControllerStats()
        self._yaw_rate = 0.0
        self._yaw_noise = 0.0
        self._pitch_rate = 0.0
        self._pitch_noise = 0.0
        self._walking = False
        self._prev_feet: np.ndarray | None = None
        self._prev_keys: frozenset[str] = frozenset()
        self._stuck_s = 0.0
        self._collide_frames = 0
        self._held_s = 0.0
        self._dodge_yaw: float | None = None
        self._side: _Sidestep | None = None
        self._resume: tuple[Walk, _Path, bool] | None = None
        self._walked_cm = 0.0
        self._next_break_cm = float(self._rng.uniform(p.break_min_cm, p.break_max_cm))
        self._dodge_left_s = 0.0
        self._events: deque[RouteEvent] = deque()
        self._event: RouteEvent | None = None
        self._start_tour(self._feet(obs))

    def act(self, obs: Observation) -> FrameAction:
        """This frame's keys and mouse deltas (see the module docstring)."""
        if self._rng is None:
            raise RuntimeError("NavmeshController.act called before reset(seed, obs)")
        feet = self._feet(obs)
        self._update_progress(feet, obs)
        for _ in range(4):  # an event may end at once; a few tries pick the next one in the same frame
            plan = self._plan(feet, obs)
            if plan is not None:
                break
        else:
            plan = _Plan(None, 0.0, frozenset())
        keys = plan.keys
        d_yaw = self._turn(float(obs.yaw_deg), plan.target_yaw, plan.ff_yaw)
        d_pitch = self._tilt(float(obs.pitch_deg), plan.target_pitch, plan.ff_pitch)
        new_yaw = float(obs.yaw_deg) + d_yaw
        safe = self._shield(feet, keys, new_yaw, plan.aim_xy)
        if safe != keys:
            self.stats.shield_frames += 1
        moving = bool(keys & {"w", "a", "s", "d"})
        if moving and not (safe & {"w", "a", "s", "d"}) and not plan.turning:
            self._held_s += self._dt
            self.stats.wait_frames += 1
        elif safe & {"w", "a", "s", "d"}:
            self._held_s = max(0.0, self._held_s - 2 * self._dt)
        self._prev_keys = safe
        allowed = set(self.world.action_space.keys)
        return FrameAction(frozenset(safe & allowed), d_pitch_deg=d_pitch, d_yaw_deg=d_yaw)

    # ------------------------------------------------------------------ tours and events

    def _start_tour(self, feet: np.ndarray) -> None:
        """A new tour from ``feet`` (seeded by the episode seed and the tour number)."""
        seed = int(np.random.default_rng([self._seed, 0x5450, self.stats.tours]).integers(2**31 - 1))
        self.stats.tours += 1
        try:
            route = generate_route(self.mesh, seed, self.route_config, start_cm=feet)
        except (ValueError, NavMeshError):  # standing off the mesh: start from the nearest point of it
            near = self.mesh.nearest_poly(feet)
            route = generate_route(self.mesh, seed, self.route_config, start_cm=near.pos_cm)
        self._events = deque(route.events)
        if not self._events:  # a one-polygon island: look around in place
            self._events.append(LookAround(180.0, 0.0, 4.0))
        self._event = None

    def _next_event(self, feet: np.ndarray) -> None:
        if self._resume is not None:  # back to the walk a break interrupted, on the same path
            self._event, self._path, self._sprinting = self._resume
            self._resume = None
            self._reset_event_state()
            return
        if not self._events:
            self._start_tour(feet)
        self._begin(self._events.popleft(), feet)

    def _reset_event_state(self) -> None:
        self._event_t = 0.0
        self._replans = 0
        self._side = None
        self._held_s = 0.0
        self._stuck_s = 0.0

    def _take_break(self) -> bool:
        """Now and then, mid-way along a long walk, stop for a look around or a short pause (drawn with the
        route's probabilities, durations and spans), then carry on along the same path. True when a break starts."""
        p, cfg, rng = self.params, self.route_config, self._rng
        if (self._walked_cm < self._next_break_cm or self._side is not None or self._dodge_left_s > 0.0
                or self._path.length - self._path.s < 400.0):
            return False
        self._walked_cm = 0.0
        self._next_break_cm = float(rng.uniform(p.break_min_cm, p.break_max_cm))
        look_w, pause_w = cfg.look_prob, cfg.pause_prob
        if look_w + pause_w <= 0.0:
            return False
        self._resume = (self._event, self._path, self._sprinting)
        if rng.random() < look_w / (look_w + pause_w):
            span = float(rng.uniform(*cfg.look_span_deg)) * (1.0 if rng.random() < 0.5 else -1.0)
            ev: RouteEvent = LookAround(span, float(rng.uniform(-15.0, 15.0)), float(rng.uniform(*cfg.look_s)))
        else:
            ev = Pause(float(rng.uniform(*cfg.pause_s)))
        self.stats.breaks += 1
        self._begin(ev, None)
        return True

    def _begin(self, ev: RouteEvent, feet: np.ndarray | None) -> None:
        """Start event ``ev`` (``feet``: where the agent stands; only walks and strafes need it)."""
        self._event = ev
        self.stats.events[ev.kind] = self.stats.events.get(ev.kind, 0) + 1
        self._reset_event_state()
        if isinstance(ev, Walk):
            self._sprinting = bool(self._rng.random() < self.params.sprint_prob)
            pts = np.asarray(ev.points_cm, dtype=np.float64)
            if (np.hypot(*(pts[0, :2] - feet[:2])) > self.params.drift_cm
                    or not segment_clear(self.mesh, feet, pts[min(1, len(pts) - 1)], self.params.snap_cm)):
                self._path = self._plan_path(feet, pts[-1])
            else:
                self._path = _Path.of(ease_corners(self.mesh, pts, self.params.corner_margin_cm, self.params.snap_cm))
        elif isinstance(ev, LookAround):
            self._look_yaw0 = None
            span = abs(ev.yaw_span_deg)
            self._look_T = max(float(ev.duration_s), span * math.pi / (0.9 * self.params.max_turn_deg_s),
                               abs(ev.pitch_deg) * math.pi / (0.9 * self.params.max_pitch_rate_deg_s))
        elif isinstance(ev, Strafe):
            self._strafe_ok = (np.hypot(*(ev.from_cm[:2] - feet[:2])) < 60.0
                               and segment_clear(self.mesh, feet, ev.to_cm, self.params.snap_cm))
            self._strafe_T = 3.0 * np.hypot(*(ev.to_cm[:2] - ev.from_cm[:2])) / self._walk + 1.0

    def _finish_event(self) -> None:
        self._event = None

    def _plan(self, feet: np.ndarray, obs: Observation) -> "_Plan | None":
        """This frame's intent for the current event; None when the event just ended (call again)."""
        if self._event is None:
            self._next_event(feet)
        ev = self._event
        self._event_t += self._dt
        if isinstance(ev, Walk):
            return self._plan_walk(feet, obs)
        if isinstance(ev, Pause):
            if self._event_t >= ev.duration_s:
                self._finish_event()
                return None
            return _Plan(None, 0.0, frozenset())
        if isinstance(ev, LookAround):
            return self._plan_look(obs)
        if isinstance(ev, Strafe):
            return self._plan_strafe(feet, obs)
        self._finish_event()
        return None

    def _plan_walk(self, feet: np.ndarray, obs: Observation) -> "_Plan | None":
        p = self.params
        path = self._path
        xy = feet[:2]
        s, lateral = project_on_polyline(path.points, path.cum, xy, path.s - 50.0, path.s + 2.0 * p.lookahead_cm)
        path.s = max(path.s, s)
        end = path.points[-1]
        if path.length - path.s < p.arrive_cm and np.hypot(*(end[:2] - xy)) < max(p.arrive_cm, 1.5 * self._walk * self._dt):
            self._finish_event()
            return None
        if self._held_s > p.give_up_s or self._replans > p.max_replans:
            self.stats.events_dropped += 1
            self._side = None
            self._finish_event()
            return None
        if self._side is not None:
            plan = self._plan_sidestep(feet, obs)
            if plan is not None:
                return plan
        if self._take_break():
            return None
        why = None
        if lateral > p.drift_cm:
            why = "drift"
        elif self._stuck_s > p.stuck_s or self._collide_frames >= 2:
            why = "blocked"
        elif self._held_s > p.replan_wait_s and self._dodge_left_s <= 0.0:
            why = "held_up"
        aim = None if why else self._aim(feet, path)
        if why is None and aim is None:
            why = "lost_sight"
        if why is not None:
            self.stats.count(why)
            self._replans += 1
            self._stuck_s = 0.0
            self._collide_frames = 0
            if why == "held_up":
                self._held_s = 0.5 * p.replan_wait_s
            self._path = path = self._plan_path(feet, end)
            aim = self._aim(feet, path)
            if aim is None:  # nothing visible even on the new path: turn towards its first corner
                aim = path.points[min(1, len(path.points) - 1)]
        desired = bearing_deg(xy, aim[:2]) if np.hypot(*(aim[:2] - xy)) > 1.0 else float(obs.yaw_deg)
        if self._held_s > p.sidestep_after_s and self._dyn is not None:
            target = self._escape_point(feet, desired)
            if target is not None:  # someone waits for us to get out of the way: step aside and let them pass
                self._side = _Sidestep(target)
                self._held_s = 0.0
                self.stats.sidesteps += 1
                plan = self._plan_sidestep(feet, obs)
                if plan is not None:
                    return plan
        desired = self._avoid(feet, desired)
        err = abs(wrap_deg(desired - float(obs.yaw_deg)))
        if self._walking and err > p.stop_heading_deg:
            self._walking = False
        elif not self._walking and err < p.walk_heading_deg:
            self._walking = True
        keys: set[str] = set()
        if self._walking:
            keys.add("w")
            if (self._sprinting and err < 15.0 and self._dodge_left_s <= 0.0
                    and straight_ahead(path.points, path.cum, path.s, p.sprint_straight_cm)):
                keys.add("shift")
        return _Plan(desired, 0.0, frozenset(keys), aim_xy=aim[:2], turning=not self._walking)

    def _plan_look(self, obs: Observation) -> "_Plan | None":
        ev: LookAround = self._event
        if self._look_yaw0 is None:
            self._look_yaw0 = float(obs.yaw_deg)
            self._look_pitch0 = float(obs.pitch_deg)
        T = self._look_T
        u = self._event_t / T
        g, dg = raised_cosine(u)
        target_yaw = self._look_yaw0 + ev.yaw_span_deg * g
        target_pitch = self._look_pitch0 + (ev.pitch_deg - self._look_pitch0) * g
        ff_yaw = ev.yaw_span_deg * dg / T if u < 1.0 else 0.0
        ff_pitch = (ev.pitch_deg - self._look_pitch0) * dg / T if u < 1.0 else 0.0
        if u >= 1.0 and (abs(wrap_deg(float(obs.yaw_deg) - self._look_yaw0)) < 3.0 or self._event_t > T + 1.5):
            self._finish_event()
            return None
        return _Plan(target_yaw, target_pitch, frozenset(), ff_yaw=ff_yaw, ff_pitch=ff_pitch, turning=True)

    def _plan_strafe(self, feet: np.ndarray, obs: Observation) -> "_Plan | None":
        ev: Strafe = self._event
        to = np.asarray(ev.to_cm, dtype=np.float64)
        remaining = float(np.hypot(*(to[:2] - feet[:2])))
        if (not self._strafe_ok or remaining < max(12.0, 0.6 * self._walk * self._dt)
                or self._event_t > self._strafe_T or self._stuck_s > self.params.stuck_s):
            self._finish_event()
            return None
        side = 90.0 if ev.side == "right" else -90.0
        desired = bearing_deg(feet[:2], to[:2]) - side  # the strafe key moves at yaw + side
        err = abs(wrap_deg(desired - float(obs.yaw_deg)))
        keys = frozenset({"d" if ev.side == "right" else "a"}) if err < 30.0 else frozenset()
        return _Plan(desired, 0.0, keys, aim_xy=to[:2], turning=not keys)

    # ------------------------------------------------------------------ path geometry

    def _plan_path(self, feet: np.ndarray, goal: np.ndarray) -> _Path:
        p = self.params
        start = feet
        if self.mesh.nearest_poly(feet, p.snap_cm) is None:
            start = self.mesh.nearest_poly(feet).pos_cm
        res = self.mesh.find_path(start, goal, snap_cm=p.snap_cm)
        pts = res.points_cm if len(res.points_cm) else np.array([start, start])
        if np.hypot(*(pts[0, :2] - feet[:2])) > 1.0:
            pts = np.vstack([np.r_[feet[:2], pts[0, 2]], pts])
        return _Path.of(ease_corners(self.mesh, pts, p.corner_margin_cm, p.snap_cm))

    def _aim(self, feet: np.ndarray, path: _Path) -> np.ndarray | None:
        """The farthest visible path point up to ``lookahead_cm`` ahead (halving the distance while hidden)."""
        look = self.params.lookahead_cm
        while look >= 10.0:
            q = point_at(path.points, path.cum, path.s + look)
            if segment_clear(self.mesh, feet, q, self.params.snap_cm):
                return q
            look *= 0.5
        q = point_at(path.points, path.cum, path.s)
        return q if segment_clear(self.mesh, feet, q, self.params.snap_cm) else None

    # ------------------------------------------------------------------ people and cars

    def _escape_point(self, feet: np.ndarray, desired_yaw: float) -> np.ndarray | None:
        """Where to step aside (cm, [3]): the reachable spot 90-140 cm away, preferably sideways to the way ahead,
        with the most room from people and cars (now and 0.5 s ahead); None when there is none."""
        p = self.params
        best, best_score = None, -math.inf
        need = self._radius + 0.5 * p.clearance_cm
        for rel in (90.0, -90.0, 60.0, -60.0, 120.0, -120.0, 180.0):
            d = yaw_dir(desired_yaw + rel)
            for dist in (90.0, 140.0):
                target = feet.copy()
                target[:2] += d * dist
                if not segment_clear(self.mesh, feet, target, p.snap_cm):
                    continue
                pts = feet[None, :2] + np.outer([0.35, 0.7, 1.0], d * dist)
                c = self._dyn(pts, horizon_s=0.5)
                if float(c.min()) < need:
                    continue
                score = min(float(c[-1]), 250.0) - 0.5 * abs(abs(rel) - 90.0)
                if score > best_score:
                    best, best_score = target, score
        return best

    def _plan_sidestep(self, feet: np.ndarray, obs: Observation) -> "_Plan | None":
        """Move to the escape point with the keys (no turning: strafe/back-pedal as a player would), wait there a
        moment, then plan the way on again. None when the side step is over."""
        side, p = self._side, self.params
        side.t_s += self._dt
        rem = side.target[:2] - feet[:2]
        if side.phase == "move":
            if np.hypot(*rem) < 12.0 or side.t_s > 2.5 or self._held_s > 1.0:
                side.phase, side.t_s = "wait", 0.0
            else:
                return _Plan(None, 0.0, keys_toward(rem, float(obs.yaw_deg)), aim_xy=side.target[:2])
        if side.t_s < p.sidestep_wait_s:
            return _Plan(None, 0.0, frozenset(), turning=True)
        self._side = None
        self._held_s = 0.0
        self.stats.count("sidestep")
        self._path = self._plan_path(feet, self._path.points[-1])
        return None

    def _blocked_ahead(self, feet: np.ndarray, yaw_deg: float, dist_cm: float) -> bool:
        """People or cars within ``radius + clearance`` of the straight walk of ``dist_cm`` along ``yaw_deg``."""
        if self._dyn is None:
            return False
        d = yaw_dir(yaw_deg)
        ts = np.linspace(self._radius, dist_cm, 5)
        pts = feet[None, :2] + ts[:, None] * d[None, :]
        return bool(np.any(self._dyn(pts, horizon_s=0.5) < self._radius + self.params.clearance_cm))

    def _avoid(self, feet: np.ndarray, desired: float) -> float:
        """Steer around people and cars on the way: keep a chosen dodge heading for ``dodge_hold_s``, else pick the
        nearest heading (within 90 degrees of ``desired``) whose next ``sense_cm`` are clear of them and on the mesh."""
        p = self.params
        if self._dyn is None:
            return desired
        if self._dodge_left_s > 0.0:
            self._dodge_left_s -= self._dt
            if not self._blocked_ahead(feet, self._dodge_yaw, 0.6 * p.sense_cm):
                self.stats.dodge_frames += 1
                return self._dodge_yaw
            self._dodge_left_s = 0.0
        if not self._blocked_ahead(feet, desired, p.sense_cm):
            return desired
        for off in (20.0, 40.0, 60.0, 80.0):
            for sgn in (1.0, -1.0) if self._rng.random() < 0.5 else (-1.0, 1.0):
                yaw = desired + sgn * off
                end = feet.copy()
                end[:2] += yaw_dir(yaw) * p.sense_cm
                if not self._blocked_ahead(feet, yaw, p.sense_cm) and segment_clear(self.mesh, feet, end, p.snap_cm):
                    self._dodge_yaw, self._dodge_left_s = yaw, p.dodge_hold_s
                    self.stats.dodge_frames += 1
                    return yaw
        return desired

    # ------------------------------------------------------------------ safety

    def _step_safe(self, feet: np.ndarray, keys: frozenset[str], yaw_deg: float) -> bool:
        v = key_velocity(keys, yaw_deg, self._walk, self._sprint)
        speed = float(np.hypot(*v))
        if speed == 0.0:
            return True
        disp = v * self._dt
        end = feet.copy()
        end[:2] += disp * (1.0 + self.params.step_margin_cm / (speed * self._dt))
        if not segment_clear(self.mesh, feet, end, self.params.snap_cm):
            return False
        if self._dyn is not None:
            # clearance now and 2 frames ahead (the world's people and cars move too) at the step's middle, end
            # (with margin) and, for comparison, where the agent stands
            c = self._dyn(np.stack([feet[:2] + 0.5 * disp, end[:2], feet[:2]]), horizon_s=2.0 * self._dt)
            worst = float(c[:2].min())
            # moving away from someone already too close is allowed: the new spot must not be closer
            if worst < self._radius + 0.5 * self.params.clearance_cm and worst <= float(c[2]):
                return False
        return True

    def _shield(self, feet: np.ndarray, keys: frozenset[str], yaw_deg: float, aim_xy: np.ndarray | None) -> frozenset[str]:
        """The keys, or the nearest safe variant that still makes progress towards ``aim_xy``; else only the
        non-moving keys."""
        base = keys - {"w", "a", "s", "d", "shift"}
        if self._step_safe(feet, keys, yaw_deg):
            return keys
        if "shift" in keys and self._step_safe(feet, keys - {"shift"}, yaw_deg):
            return keys - {"shift"}
        if aim_xy is not None and "w" in keys:
            want = aim_xy - feet[:2]
            for alt in (frozenset({"w", "a"}), frozenset({"w", "d"}), frozenset({"a"}), frozenset({"d"})):
                v = key_velocity(alt, yaw_deg, self._walk, self._sprint)
                if float(v @ want) > 0.3 * float(np.hypot(*v) * np.hypot(*want)) and self._step_safe(feet, alt, yaw_deg):
                    return base | alt
        return base

    # ------------------------------------------------------------------ hands

    def _turn(self, yaw: float, target: float | None, ff: float) -> float:
        """Mouse yaw delta (deg) for this frame: capped, acceleration-limited, with a slow wobble."""
        p, dt = self.params, self._dt
        desired = 0.0 if target is None else ff + p.turn_gain_per_s * wrap_deg(target - yaw)
        self._yaw_rate = rate_step(self._yaw_rate, desired, p.max_turn_deg_s, p.max_turn_accel_deg_s2, dt)
        tau = p.yaw_noise_tau_s
        self._yaw_noise += -self._yaw_noise / tau * dt + p.yaw_noise_deg_s * math.sqrt(2.0 * dt / tau) * float(self._rng.normal())
        rate = min(p.max_turn_deg_s, max(-p.max_turn_deg_s, self._yaw_rate + self._yaw_noise))
        return rate * dt

    def _tilt(self, pitch: float, target: float, ff: float) -> float:
        """Mouse pitch delta (deg) for this frame, like :meth:`_turn`."""
        p, dt = self.params, self._dt
        desired = ff + p.pitch_gain_per_s * (target - pitch)
        self._pitch_rate = rate_step(self._pitch_rate, desired, p.max_pitch_rate_deg_s, p.max_pitch_accel_deg_s2, dt)
        self._pitch_noise += -self._pitch_noise * dt + p.pitch_noise_deg_s * math.sqrt(2.0 * dt) * float(self._rng.normal())
        rate = min(p.max_pitch_rate_deg_s, max(-p.max_pitch_rate_deg_s, self._pitch_rate + self._pitch_noise))
        return rate * dt

    # ------------------------------------------------------------------ sensing

    def _feet(self, obs: Observation) -> np.ndarray:
        """Ground point under the camera (cm, float64 [3])."""
        pos = np.asarray(obs.pos_cm, dtype=np.float64)
        return np.array([pos[0], pos[1], pos[2] - self._eye])

    def _update_progress(self, feet: np.ndarray, obs: Observation) -> None:
        """Stuck and collision bookkeeping from the last frame's keys and the motion they produced."""
        if self._prev_feet is not None and self._prev_keys & {"w", "a", "s", "d"}:
            expected = float(np.hypot(*key_velocity(self._prev_keys, float(obs.yaw_deg), self._walk, self._sprint))) * self._dt
            moved = float(np.hypot(*(feet[:2] - self._prev_feet[:2])))
            if isinstance(self._event, Walk):
                self._walked_cm += moved
            if moved < 0.3 * expected:
                self._stuck_s += self._dt
            else:
                self._stuck_s = max(0.0, self._stuck_s - self._dt)
        else:
            self._stuck_s = max(0.0, self._stuck_s - self._dt)
        self._collide_frames = self._collide_frames + 1 if obs.collision else 0
        self._prev_feet = feet


@dataclass
class _Sidestep:
    """A side step out of someone's way: the spot (cm), the phase (``move`` then ``wait``) and its time (s)."""

    target: np.ndarray
    phase: str = "move"
    t_s: float = 0.0


@dataclass(frozen=True)
class _Plan:
    """One frame's intent: target yaw/pitch (deg; None = hold still), keys, feed-forward rates (deg/s), the aim point
    (for the safety check's alternatives) and whether the agent is turning on purpose (not held up)."""

    target_yaw: float | None
    target_pitch: float
    keys: frozenset[str]
    ff_yaw: float = 0.0
    ff_pitch: float = 0.0
    aim_xy: np.ndarray | None = None
    turning: bool = False


def make_navmesh_controller(world: World, **params: Any) -> NavmeshController:
    """Factory for the collection loop and pipeline.yaml (controller ``navmesh``): ``params`` are
    :class:`NavControllerParams` fields plus ``navmesh`` (NavMesh or file) and ``route`` (RouteConfig fields)."""
    navmesh = params.pop("navmesh", None)
    route = params.pop("route", None)
    return NavmeshController(world, navmesh=navmesh, route=route, **params)
