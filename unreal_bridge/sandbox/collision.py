"""2-D collision geometry in the Unreal frame (cm): oriented rectangles and circles on the ground plane.

The agent is a vertical cylinder, so its collision is a circle against the footprints of the obstacles
(walls, buildings, tree trunks, rocks, furniture, vehicles, NPCs). Everything is float64 and deterministic.

* :class:`ShapeSet` holds footprints as arrays: signed distance of points, ray casts (vectorised).
* :func:`move_circle` moves a circle by an intended displacement and resolves penetrations by pushing it
  out along the contact normals, which removes the blocked component of the motion and keeps the
  tangential one (sliding along walls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

_EPS_CM = 1e-7


@dataclass(frozen=True)
class Rect:
    """Oriented rectangle: centre ``(x, y)`` cm, half extents along its own x/y axes, rotated by ``yaw_deg``."""

    center_cm: tuple[float, float]
    half_cm: tuple[float, float]
    yaw_deg: float = 0.0


@dataclass(frozen=True)
class Circle:
    """Circle: centre ``(x, y)`` cm and radius cm."""

    center_cm: tuple[float, float]
    radius_cm: float


class ShapeSet:
    """Footprints of obstacles as arrays (float64, cm): oriented rectangles and circles.

    ``kind`` labels what the shapes are (``"static"``, ``"npc"``, ``"vehicle"``); :func:`move_circle`
    reports which kinds blocked a move.
    """

    def __init__(
        self,
        rect_center_cm: np.ndarray,
        rect_half_cm: np.ndarray,
        rect_yaw_deg: np.ndarray,
        circle_center_cm: np.ndarray,
        circle_radius_cm: np.ndarray,
        kind: str = "static",
    ) -> None:
        self.rect_c = np.asarray(rect_center_cm, dtype=np.float64).reshape(-1, 2)
        self.rect_h = np.asarray(rect_half_cm, dtype=np.float64).reshape(-1, 2)
        yaw = np.radians(np.asarray(rect_yaw_deg, dtype=np.float64).reshape(-1))
        self.rect_cos = np.cos(yaw)
        self.rect_sin = np.sin(yaw)
        self.circ_c = np.asarray(circle_center_cm, dtype=np.float64).reshape(-1, 2)
        self.circ_r = np.asarray(circle_radius_cm, dtype=np.float64).reshape(-1)
        self.kind = kind
        if not (len(self.rect_c) == len(self.rect_h) == len(self.rect_cos)):
            raise ValueError("ShapeSet: rectangle arrays differ in length")
        if len(self.circ_c) != len(self.circ_r):
            raise ValueError("ShapeSet: circle arrays differ in length")
        # bounding radius of each rectangle, for the broad phase
        self.rect_bound = np.hypot(self.rect_h[:, 0], self.rect_h[:, 1])

    @classmethod
    def from_shapes(cls, rects: Sequence[Rect], circles: Sequence[Circle], kind: str = "static") -> "ShapeSet":
        return cls(
            [r.center_cm for r in rects],
            [r.half_cm for r in rects],
            [r.yaw_deg for r in rects],
            [c.center_cm for c in circles],
            [c.radius_cm for c in circles],
            kind,
        )

    @classmethod
    def empty(cls, kind: str = "static") -> "ShapeSet":
        return cls(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)), np.zeros(0), kind)

    def __len__(self) -> int:
        return len(self.rect_c) + len(self.circ_c)

    # ---------------------------------------------------------------- queries

    def signed_distance(self, points_cm: np.ndarray) -> np.ndarray:
        """Signed distance (cm) from each point ``(P, 2)`` to the nearest shape (negative inside); +inf if empty."""
        p = np.asarray(points_cm, dtype=np.float64).reshape(-1, 2)
        out = np.full(len(p), np.inf)
        if len(self.rect_c):
            d = p[:, None, :] - self.rect_c[None, :, :]
            lx = d[..., 0] * self.rect_cos + d[..., 1] * self.rect_sin
            ly = -d[..., 0] * self.rect_sin + d[..., 1] * self.rect_cos
            qx = np.abs(lx) - self.rect_h[:, 0]
            qy = np.abs(ly) - self.rect_h[:, 1]
            outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
            inside = np.minimum(np.maximum(qx, qy), 0.0)
            out = np.minimum(out, (outside + inside).min(axis=1))
        if len(self.circ_c):
            d = np.linalg.norm(p[:, None, :] - self.circ_c[None, :, :], axis=2) - self.circ_r
            out = np.minimum(out, d.min(axis=1))
        return out

    def raycast(self, origin_cm: np.ndarray, dirs: np.ndarray, max_dist_cm: float) -> np.ndarray:
        """Distance (cm) along each unit direction ``(R, 2)`` from ``origin`` to the first shape, capped at max.

        A ray starting inside a shape hits at 0."""
        o = np.asarray(origin_cm, dtype=np.float64).reshape(2)
        dv = np.asarray(dirs, dtype=np.float64).reshape(-1, 2)
        best = np.full(len(dv), float(max_dist_cm))
        with np.errstate(divide="ignore", invalid="ignore"):
            if len(self.rect_c):
                rel = o - self.rect_c
                lox = rel[:, 0] * self.rect_cos + rel[:, 1] * self.rect_sin
                loy = -rel[:, 0] * self.rect_sin + rel[:, 1] * self.rect_cos
                ldx = dv[:, None, 0] * self.rect_cos + dv[:, None, 1] * self.rect_sin
                ldy = -dv[:, None, 0] * self.rect_sin + dv[:, None, 1] * self.rect_cos
                tmin = np.zeros_like(ldx)
                tmax = np.full_like(ldx, np.inf)
                for lo, ld, h in ((lox, ldx, self.rect_h[:, 0]), (loy, ldy, self.rect_h[:, 1])):
                    parallel = np.abs(ld) < 1e-12
                    t1 = (-h - lo) / ld
                    t2 = (h - lo) / ld
                    lo_t = np.where(parallel, np.where(np.abs(lo) <= h, -np.inf, np.inf), np.minimum(t1, t2))
                    hi_t = np.where(parallel, np.where(np.abs(lo) <= h, np.inf, -np.inf), np.maximum(t1, t2))
                    tmin = np.maximum(tmin, lo_t)
                    tmax = np.minimum(tmax, hi_t)
                hit = tmax >= tmin
                t = np.where(hit, tmin, np.inf).min(axis=1)
                best = np.minimum(best, t)
            if len(self.circ_c):
                rel = o - self.circ_c
                b = dv @ rel.T
                c = np.einsum("ij,ij->i", rel, rel) - self.circ_r**2
                disc = b * b - c[None, :]
                root = np.sqrt(np.maximum(disc, 0.0))
                t_enter = -b - root
                t_exit = -b + root
                t = np.where(c[None, :] <= 0.0, 0.0, t_enter)
                valid = (disc >= 0.0) & (t_exit >= 0.0)
                t = np.where(valid, np.maximum(t, 0.0), np.inf).min(axis=1)
                best = np.minimum(best, t)
        return best

    def near(self, point_cm: np.ndarray, reach_cm: float) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the rectangles and circles whose footprint may come within ``reach_cm`` of the point."""
        p = np.asarray(point_cm, dtype=np.float64)
        r_idx = np.nonzero(np.hypot(*(self.rect_c - p).T) <= self.rect_bound + reach_cm)[0]
        c_idx = np.nonzero(np.hypot(*(self.circ_c - p).T) <= self.circ_r + reach_cm)[0]
        return r_idx, c_idx


def _push_out_of_rect(
    px: float, py: float, radius: float, cx: float, cy: float, hx: float, hy: float, co: float, si: float
) -> tuple[float, float] | None:
    """Push a circle out of an oriented rectangle; the new centre, or None when they do not overlap."""
    dx, dy = px - cx, py - cy
    lx = dx * co + dy * si
    ly = -dx * si + dy * co
    qx, qy = abs(lx) - hx, abs(ly) - hy
    if qx > 0.0 or qy > 0.0:
        ox, oy = max(qx, 0.0), max(qy, 0.0)
        dist = math.hypot(ox, oy)
        if dist >= radius - _EPS_CM:
            return None
        nx = math.copysign(ox, lx) / dist
        ny = math.copysign(oy, ly) / dist
        push = radius - dist
    else:  # centre inside: leave through the nearest side
        if qx > qy:
            nx, ny, push = math.copysign(1.0, lx), 0.0, radius - qx
        else:
            nx, ny, push = 0.0, math.copysign(1.0, ly), radius - qy
    lx += nx * push
    ly += ny * push
    return cx + lx * co - ly * si, cy + lx * si + ly * co


def _push_out_of_circle(px: float, py: float, radius: float, cx: float, cy: float, r: float) -> tuple[float, float] | None:
    dx, dy = px - cx, py - cy
    dist = math.hypot(dx, dy)
    if dist >= radius + r - _EPS_CM:
        return None
    if dist < 1e-12:  # exactly centred: leave along +x, deterministic
        dx, dy, dist = 1.0, 0.0, 1.0
    k = (radius + r) / dist
    return cx + dx * k, cy + dy * k


@dataclass(frozen=True)
class MoveResult:
    """Outcome of :func:`move_circle`: end position (cm), whether the move was blocked, and by which kinds."""

    end_cm: np.ndarray
    blocked: bool
    blocked_by: frozenset[str]


def move_circle(
    start_cm: np.ndarray,
    disp_cm: np.ndarray,
    radius_cm: float,
    shape_sets: Sequence[ShapeSet],
    max_substep_cm: float | None = None,
    iterations: int = 4,
) -> MoveResult:
    """Move a circle by ``disp_cm`` against the shapes, sliding along them.

    The move is split into substeps of at most ``max_substep_cm`` (default: half the radius, so thin walls
    are never tunnelled through). After each substep every overlapping shape pushes the circle out along
    its contact normal, which removes the blocked component of the motion and keeps the tangential one.
    ``blocked`` is true when the end position differs from ``start + disp`` (any part of the intended
    displacement was removed, or the circle was pushed by a shape that moved into it).
    """
    sx, sy = float(start_cm[0]), float(start_cm[1])
    dx, dy = float(disp_cm[0]), float(disp_cm[1])
    r = float(radius_cm)
    step = float(max_substep_cm) if max_substep_cm else 0.5 * r
    length = math.hypot(dx, dy)
    n_sub = max(1, int(math.ceil(length / step)))
    reach = length + r + 1.0
    cands: list[tuple[str, tuple]] = []
    for ss in shape_sets:
        r_idx, c_idx = ss.near(np.array([sx, sy]), reach)
        for i in r_idx:
            cands.append((ss.kind, ("r", float(ss.rect_c[i, 0]), float(ss.rect_c[i, 1]), float(ss.rect_h[i, 0]),
                                    float(ss.rect_h[i, 1]), float(ss.rect_cos[i]), float(ss.rect_sin[i]))))
        for i in c_idx:
            cands.append((ss.kind, ("c", float(ss.circ_c[i, 0]), float(ss.circ_c[i, 1]), float(ss.circ_r[i]))))
    px, py = sx, sy
    hit_kinds: set[str] = set()
    step_x, step_y = dx / n_sub, dy / n_sub
    for _k in range(n_sub):
        px += step_x
        py += step_y
        for _ in range(iterations):
            moved = False
            for kind, shp in cands:
                if shp[0] == "r":
                    res = _push_out_of_rect(px, py, r, *shp[1:])
                else:
                    res = _push_out_of_circle(px, py, r, *shp[1:])
                if res is not None:
                    px, py = res
                    moved = True
                    hit_kinds.add(kind)
            if not moved:
                break
    end = np.array([px, py], dtype=np.float64)
    blocked = math.hypot(px - (sx + dx), py - (sy + dy)) > 1e-6
    return MoveResult(end, blocked, frozenset(hit_kinds) if blocked else frozenset())
