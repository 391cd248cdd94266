"""Seeded exploration routes ("tours") over a NavMesh, as a list of events for a first-person controller.

A tour picks waypoints far apart on one island of the mesh, walks between them along shortest paths with a
smooth lateral jitter, and inserts pauses, look-arounds and strafes at the waypoints. Everything is drawn
from one ``numpy.random.Generator`` seeded by ``seed``, and the mesh queries are deterministic, so the same
mesh, config and seed always give the same route.

Safety: the walked polyline never leaves the walkable area. Every segment the controller will walk (jittered
legs, strafes) is checked with the mesh raycast (``NavMesh.raycast``: a walk over the polygon graph that stops
at the first wall); a jittered point whose segments are not clear has its offset halved until they are (an
offset of zero is the shortest path itself, which lies on the mesh).

Waypoint choice: from ``candidates`` random points of the island (area-weighted), drop those within
``revisit_radius_cm`` of the last ``revisit_memory`` waypoints (no immediate revisits) and keep the one with
the longest path from the current position (far apart), requiring at least ``min_leg_cm``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Annotated, Literal, Union

import numpy as np

from capture.settings import Field, settings

from .navmesh import NavMesh


Span = tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]]


@settings
class RouteConfig:
    """Knobs of ``generate_route`` (distances in cm, durations in s, angles in degrees; a pair is a (min, max)
    range drawn uniformly)."""

    num_waypoints: int = Field(6, ge=1, description="waypoints per route")
    candidates: int = Field(16, ge=1, description="candidate points scored for each waypoint")
    min_leg_cm: float = Field(1000.0, ge=0, description="shortest leg between waypoints, cm")
    revisit_radius_cm: float = Field(800.0, ge=0, description="candidates this close to recent waypoints are avoided, cm")
    revisit_memory: int = Field(3, ge=0, description="recent waypoints remembered")
    jitter_cm: float = Field(60.0, ge=0, description="sideways wander of the path, cm")
    jitter_wavelength_cm: float = Field(600.0, gt=0, description="wavelength of the wander, cm")
    sample_spacing_cm: float = Field(150.0, gt=0, description="spacing of the path samples, cm")
    pause_prob: float = Field(0.35, ge=0, le=1, description="probability of a pause at a waypoint")
    pause_s: Span = Field((0.5, 3.0), description="pause duration, s")
    look_prob: float = Field(0.35, ge=0, le=1, description="probability of a look-around at a waypoint")
    look_span_deg: Span = Field((60.0, 270.0), description="look-around span, degrees")
    look_s: Span = Field((1.0, 4.0), description="look-around duration, s")
    strafe_prob: float = Field(0.25, ge=0, le=1, description="probability of a strafe on a leg")
    strafe_cm: Span = Field((80.0, 300.0), description="strafe distance, cm")
    snap_cm: float = Field(100.0, ge=0, description="waypoints snap to the navmesh within this distance, cm")


@dataclass(frozen=True)
class Walk:
    """Walk along ``points_cm`` (K, 3) (first point = current position), from waypoint ``leg`` to ``leg + 1``."""

    points_cm: np.ndarray
    leg: int
    kind: Literal["walk"] = "walk"

    @property
    def length_cm(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.points_cm[:, :2], axis=0), axis=1)))


@dataclass(frozen=True)
class Pause:
    """Stand still for ``duration_s``."""

    duration_s: float
    kind: Literal["pause"] = "pause"


@dataclass(frozen=True)
class LookAround:
    """Turn the view by ``yaw_span_deg`` (sign = direction, right +) over ``duration_s`` and back, without
    moving; ``pitch_deg`` is a gentle look up (+) or down (-) at the far end."""

    yaw_span_deg: float
    pitch_deg: float
    duration_s: float
    kind: Literal["look_around"] = "look_around"


@dataclass(frozen=True)
class Strafe:
    """Side-step from ``from_cm`` to ``to_cm`` (``side``: left/right of the current heading), keeping the yaw."""

    from_cm: np.ndarray
    to_cm: np.ndarray
    side: Literal["left", "right"]
    kind: Literal["strafe"] = "strafe"


RouteEvent = Union[Walk, Pause, LookAround, Strafe]


@dataclass(frozen=True)
class Route:
    """A tour: ``waypoints_cm`` (W, 3) visited in order, ``events`` for the controller, and ``points_cm``:
    the whole polyline the agent walks (walks and strafes concatenated)."""

    seed: int
    island: int
    waypoints_cm: np.ndarray
    events: list[RouteEvent] = field(default_factory=list)
    points_cm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def length_cm(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.points_cm[:, :2], axis=0), axis=1)))


def segment_clear(mesh: NavMesh, a_cm: np.ndarray, b_cm: np.ndarray, snap_cm: float = 100.0) -> bool:
    """The 2D segment ``a -> b`` stays on the mesh: ``a`` snaps onto it and the raycast reaches ``b``
    without hitting a wall."""
    try:
        return not mesh.raycast(a_cm, b_cm, snap_cm=snap_cm).hit
    except ValueError:
        return False


def resample_polyline(points_cm: np.ndarray, spacing_cm: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert points so no segment is longer than ``spacing_cm`` (xy); returns ``(points, is_original)``."""
    out, orig = [points_cm[:1]], [True]
    for a, b in zip(points_cm[:-1], points_cm[1:]):
        n = max(1, int(math.ceil(math.hypot(*(b[:2] - a[:2])) / spacing_cm)))
        t = np.linspace(0.0, 1.0, n + 1)[1:, None]
        out.append(a + t * (b - a))
        orig += [False] * (n - 1) + [True]
    return np.concatenate(out), np.asarray(orig)


def jitter_offsets(arc_cm: np.ndarray, amplitude_cm: float, wavelength_cm: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth lateral offsets along arc length ``s``: ``A * sum_k w_k sin(2 pi s / L_k + phi_k)`` with three
    random wavelengths around ``wavelength_cm``, normalised so ``|offset| <= A``, zero at both ends."""
    lam = wavelength_cm * rng.uniform(0.6, 1.6, size=3)
    phi = rng.uniform(0.0, 2 * np.pi, size=3)
    w = rng.uniform(0.3, 1.0, size=3)
    w = w / w.sum()
    wave = np.sum(w[:, None] * np.sin(2 * np.pi * arc_cm[None, :] / lam[:, None] + phi[:, None]), axis=0)
    total = arc_cm[-1] if len(arc_cm) and arc_cm[-1] > 0 else 1.0
    taper = np.sin(np.pi * np.clip(arc_cm / total, 0.0, 1.0))  # 0 at both ends of the leg
    return amplitude_cm * wave * taper


def jitter_path(mesh: NavMesh, path_cm: np.ndarray, cfg: RouteConfig, rng: np.random.Generator) -> np.ndarray | None:
    """Resample a shortest path, offset the points sideways (xy normal of the local direction) by
    ``jitter_offsets``, re-project z on the mesh, and halve offsets until every segment is clear
    (``None`` if not even the unjittered path passes the raycast)."""
    pts, _ = resample_polyline(path_cm, cfg.sample_spacing_cm)
    if len(pts) < 3 or cfg.jitter_cm == 0:
        ok = all(segment_clear(mesh, pts[i], pts[i + 1], cfg.snap_cm) for i in range(len(pts) - 1))
        return pts if ok else None
    seg = np.diff(pts[:, :2], axis=0)
    arc = np.r_[0.0, np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))]
    tangent = np.zeros_like(pts[:, :2])
    tangent[1:-1] = pts[2:, :2] - pts[:-2, :2]
    tangent[0], tangent[-1] = seg[0], seg[-1]
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    offset = jitter_offsets(arc, cfg.jitter_cm, cfg.jitter_wavelength_cm, rng)
    offset[[0, -1]] = 0.0
    base = pts.copy()

    def place(i: int) -> np.ndarray:
        p = base[i].copy()
        p[:2] += offset[i] * normal[i]
        hit = mesh.nearest_poly(p, cfg.snap_cm)
        return hit.pos_cm if hit is not None and hit.over else None  # (x, y) must be over the mesh

    cur = base.copy()
    for i in range(1, len(pts) - 1):
        q = place(i)
        if q is None:
            offset[i] = 0.0
        else:
            cur[i] = q
    for _ in range(12):
        bad = [i for i in range(len(cur) - 1) if not segment_clear(mesh, cur[i], cur[i + 1], cfg.snap_cm)]
        if not bad:
            return cur
        for i in {j for b in bad for j in (b, b + 1)} - {0, len(cur) - 1}:
            offset[i] = 0.0 if abs(offset[i]) < 1.0 else 0.5 * offset[i]
            q = place(i) if offset[i] != 0.0 else None
            cur[i] = base[i] if q is None else q
    # zero offsets are the shortest path itself; only a numerical disagreement could make it fail
    ok = all(segment_clear(mesh, base[i], base[i + 1], cfg.snap_cm) for i in range(len(base) - 1))
    return base if ok else None


def _pick_waypoint(mesh, cur, history, island, cfg, rng) -> tuple[np.ndarray, np.ndarray] | None:
    cands, _ = mesh.random_points(cfg.candidates, rng, island=island)
    recent = np.asarray(history[-cfg.revisit_memory :]) if cfg.revisit_memory > 0 else np.zeros((0, 3))
    best, best_len, best_path = None, -1.0, None
    for c in cands:
        if len(recent) and np.min(np.linalg.norm(recent[:, :2] - c[:2], axis=1)) < cfg.revisit_radius_cm:
            continue
        r = mesh.find_path(cur, c, snap_cm=cfg.snap_cm)
        if r.status == "complete" and r.length_cm > best_len:
            best, best_len, best_path = c, r.length_cm, r.points_cm
    if best is None or best_len < cfg.min_leg_cm:
        return None
    return best, best_path


def _strafe(mesh, pos, heading_xy, cfg, rng) -> Strafe | None:
    side = "left" if rng.random() < 0.5 else "right"
    dist = rng.uniform(*cfg.strafe_cm)
    h = heading_xy / max(np.linalg.norm(heading_xy), 1e-12)
    right = np.array([-h[1], h[0]])  # Unreal: right of forward (x, y) is (-y, x)
    direction = right if side == "right" else -right
    for scale in (1.0, 0.5, 0.25):
        target = pos.copy()
        target[:2] += direction * dist * scale
        hit = mesh.nearest_poly(target, cfg.snap_cm)
        if hit is not None and hit.over and segment_clear(mesh, pos, hit.pos_cm, cfg.snap_cm):
            return Strafe(pos.copy(), hit.pos_cm, side)
    return None


def generate_route(
    mesh: NavMesh, seed: int, config: RouteConfig | None = None, *, start_cm=None, island: int | None = None
) -> Route:
    """A deterministic tour of one island (``island``, the start's, or the largest). See module docstring."""
    cfg = config or RouteConfig()
    rng = np.random.default_rng(seed)
    if start_cm is not None:
        hit = mesh.snap(start_cm, cfg.snap_cm)
        start, island = hit.pos_cm, int(mesh.island[hit.poly])
    else:
        island = mesh.largest_island() if island is None else int(island)
        start = mesh.random_points(1, rng, island=island)[0][0]
    waypoints = [start]
    events: list[RouteEvent] = []
    walked = [start[None]]
    pos, heading = start.copy(), np.array([1.0, 0.0])
    for leg in range(cfg.num_waypoints):
        picked = _pick_waypoint(mesh, pos, waypoints, island, cfg, rng)
        if picked is None:
            relaxed = dataclasses.replace(cfg, min_leg_cm=0.0, revisit_memory=min(cfg.revisit_memory, 1))
            picked = _pick_waypoint(mesh, pos, waypoints, island, relaxed, rng)
            if picked is None:
                break
        wp, path = picked
        pts = jitter_path(mesh, path, cfg, rng)
        if pts is None:  # the raycast disagrees with the path finder on this leg: pick another waypoint
            continue
        events.append(Walk(pts, leg))
        walked.append(pts[1:])
        waypoints.append(pts[-1])
        d = pts[-1, :2] - pts[-2, :2]
        heading = d if np.linalg.norm(d) > 1e-9 else heading
        pos = pts[-1].copy()
        # actions at the waypoint
        if rng.random() < cfg.pause_prob:
            events.append(Pause(float(rng.uniform(*cfg.pause_s))))
        if rng.random() < cfg.look_prob:
            span = float(rng.uniform(*cfg.look_span_deg)) * (1 if rng.random() < 0.5 else -1)
            events.append(LookAround(span, float(rng.uniform(-15.0, 15.0)), float(rng.uniform(*cfg.look_s))))
        if rng.random() < cfg.strafe_prob:
            st = _strafe(mesh, pos, heading, cfg, rng)
            if st is not None:
                events.append(st)
                walked.append(st.to_cm[None])
                pos = st.to_cm.copy()
    points = np.concatenate(walked)
    return Route(int(seed), int(island), np.asarray(waypoints), events, points)


def route_is_clear(mesh: NavMesh, route: Route, snap_cm: float = 100.0) -> bool:
    """Every segment of ``route.points_cm`` passes the mesh raycast."""
    p = route.points_cm
    return all(segment_clear(mesh, p[i], p[i + 1], snap_cm) for i in range(len(p) - 1))
