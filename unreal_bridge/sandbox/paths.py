"""Closed paths on the ground plane (Unreal frame, cm): construction and arc-length evaluation.

NPCs and vehicles move along closed loops ("lanes"). A loop is a dense ``(N, 2)`` polyline whose last point
connects back to the first. Orientation words used here refer to the Unreal frame: the right of a travel
direction ``(dx, dy)`` is ``(-dy, dx)`` (yaw + 90 degrees).
"""

from __future__ import annotations

import numpy as np


def _close_gap(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) > 1 and np.allclose(p[0], p[-1]):
        p = p[:-1]
    return p


def resample_closed(points_cm: np.ndarray, step_cm: float) -> np.ndarray:
    """Resample a closed polyline at (nearly) uniform arc-length spacing of at most ``step_cm``."""
    p = _close_gap(points_cm)
    seg = np.roll(p, -1, axis=0) - p
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    total = cum[-1]
    n = max(3, int(np.ceil(total / step_cm)))
    s = np.arange(n) * (total / n)
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(p) - 1)
    t = (s - cum[i]) / np.where(seg_len[i] > 0, seg_len[i], 1.0)
    return p[i] + seg[i] * t[:, None]


def chaikin_closed(points_cm: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Corner-cutting smoothing of a closed polyline (stays inside the convex hull of the input)."""
    p = _close_gap(points_cm)
    for _ in range(iterations):
        q = np.roll(p, -1, axis=0)
        p = np.stack([0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q], axis=1).reshape(-1, 2)
    return p


def rounded_rect_loop(x0: float, y0: float, x1: float, y1: float, radius_cm: float, step_cm: float = 50.0) -> np.ndarray:
    """Closed loop along a rectangle with rounded corners (counter-clockwise when plotted x right, y up)."""
    r = float(min(radius_cm, 0.5 * (x1 - x0), 0.5 * (y1 - y0)))
    pts = []
    corners = [(x1 - r, y0 + r, -90.0), (x1 - r, y1 - r, 0.0), (x0 + r, y1 - r, 90.0), (x0 + r, y0 + r, 180.0)]
    n_arc = max(2, int(np.ceil(0.5 * np.pi * r / step_cm)) + 1)
    for cx, cy, a0 in corners:
        a = np.radians(a0 + np.linspace(0.0, 90.0, n_arc))
        pts.append(np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1))
    return resample_closed(np.concatenate(pts), step_cm)


def signed_area(points_cm: np.ndarray) -> float:
    """Shoelace area; positive when the loop runs counter-clockwise as plotted with x right and y up."""
    p = _close_gap(points_cm)
    q = np.roll(p, -1, axis=0)
    return 0.5 * float(np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]))


def with_inside_on_right(points_cm: np.ndarray, inside_on_right: bool) -> np.ndarray:
    """Orient a simple closed loop so that its interior is on the traveller's right (or left).

    With right = ``(-dy, dx)``, the interior is on the right for loops that are counter-clockwise as plotted."""
    p = _close_gap(points_cm)
    ccw = signed_area(p) > 0
    return p if ccw == inside_on_right else p[::-1].copy()


def offset_closed(points_cm: np.ndarray, offset_cm: float) -> np.ndarray:
    """Shift every point of a smooth closed loop ``offset_cm`` to the right of the travel direction."""
    p = _close_gap(points_cm)
    tangent = np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    right = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    return p + offset_cm * right


def racetrack_loop(polyline_cm: np.ndarray, half_gap_cm: float, step_cm: float = 50.0) -> np.ndarray:
    """Closed loop that walks along an open polyline ``half_gap_cm`` on its right and comes back on the other side.

    The ends are joined by half circles, so the loop is smooth; the interior (the polyline) is on the left."""
    p = np.asarray(polyline_cm, dtype=np.float64).reshape(-1, 2)
    dense = resample_open(p, step_cm)
    t = np.gradient(dense, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    right = np.stack([-t[:, 1], t[:, 0]], axis=1)
    out_leg = dense + half_gap_cm * right
    back_leg = (dense - half_gap_cm * right)[::-1]

    def cap(center: np.ndarray, from_vec: np.ndarray) -> np.ndarray:
        a0 = np.arctan2(from_vec[1], from_vec[0])
        n = max(3, int(np.ceil(np.pi * half_gap_cm / step_cm)))
        a = a0 - np.linspace(0.0, np.pi, n + 1)[1:-1]  # turn from the right side to the left side
        return center + half_gap_cm * np.stack([np.cos(a), np.sin(a)], axis=1)

    end_cap = cap(dense[-1], right[-1])
    start_cap = cap(dense[0], -right[0])
    loop = np.concatenate([out_leg, end_cap, back_leg, start_cap])
    return resample_closed(loop, step_cm)


def resample_open(polyline_cm: np.ndarray, step_cm: float) -> np.ndarray:
    """Resample an open polyline at uniform arc-length spacing of at most ``step_cm`` (ends kept)."""
    p = np.asarray(polyline_cm, dtype=np.float64).reshape(-1, 2)
    seg = np.diff(p, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    n = max(2, int(np.ceil(cum[-1] / step_cm)) + 1)
    s = np.linspace(0.0, cum[-1], n)
    x = np.interp(s, cum, p[:, 0])
    y = np.interp(s, cum, p[:, 1])
    return np.stack([x, y], axis=1)


def point_polyline_distance(points_cm: np.ndarray, polyline_cm: np.ndarray, closed: bool = False) -> np.ndarray:
    """Distance (cm) from each point ``(P, 2)`` to a polyline ``(K, 2)`` (closed or open)."""
    pts = np.asarray(points_cm, dtype=np.float64).reshape(-1, 2)
    a = np.asarray(polyline_cm, dtype=np.float64).reshape(-1, 2)
    b = np.roll(a, -1, axis=0) if closed else a[1:]
    a = a if closed else a[:-1]
    ab = b - a
    denom = np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12)
    ap = pts[:, None, :] - a[None, :, :]
    t = np.clip(np.einsum("pkj,kj->pk", ap, ab) / denom, 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(pts[:, None, :] - closest, axis=2).min(axis=1)


class LoopSet:
    """Several closed loops concatenated for vectorised arc-length evaluation.

    ``eval(loop_idx, s_cm)`` gives positions (cm) and yaw (deg, Unreal: atan2(dy, dx)) at arc length ``s_cm``
    (taken modulo each loop's length) for many movers at once. Yaw is interpolated between the headings of
    neighbouring segments, so it turns smoothly through corners.
    """

    def __init__(self, loops: list[np.ndarray]) -> None:
        if not loops:
            raise ValueError("LoopSet needs at least one loop")
        pts, cums, yaws, starts, lengths = [], [], [], [], []
        offset = 0.0
        for loop in loops:
            p = _close_gap(loop)
            q = np.vstack([p, p[:1]])
            seg = np.diff(q, axis=0)
            seg_len = np.hypot(seg[:, 0], seg[:, 1])
            if np.any(seg_len <= 0):
                raise ValueError("LoopSet: loop with repeated consecutive points")
            cum = np.concatenate([[0.0], np.cumsum(seg_len)])
            seg_yaw = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
            # total turning of the loop (a multiple of 2 pi) and the heading at each vertex, the mean of its
            # incoming and outgoing segment headings; the closing vertex repeats vertex 0 one turn later
            total = 2.0 * np.pi * np.round((seg_yaw[-1] - seg_yaw[0]) / (2.0 * np.pi))
            incoming = np.concatenate([[seg_yaw[-1] - total], seg_yaw[:-1]])
            vert_yaw = 0.5 * (incoming + seg_yaw)
            vert_yaw = np.concatenate([vert_yaw, [vert_yaw[0] + total]])
            pts.append(q)
            cums.append(cum + offset)
            yaws.append(vert_yaw)
            starts.append(offset)
            lengths.append(cum[-1])
            offset += cum[-1] + 1.0  # gap so that loops never share an arc-length interval
        self.points = np.concatenate(pts)
        self.cum = np.concatenate(cums)
        self.yaw_rad = np.concatenate(yaws)
        self.starts = np.asarray(starts)
        self.lengths = np.asarray(lengths)
        self.last_index = np.cumsum([len(q) for q in pts]) - 1

    def locate(self, loop_idx: np.ndarray, s_cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global segment index and fraction ``t`` in [0, 1) of arc lengths ``s_cm`` on loops ``loop_idx``."""
        li = np.asarray(loop_idx, dtype=np.int64)
        s = np.mod(np.asarray(s_cm, dtype=np.float64), self.lengths[li]) + self.starts[li]
        i = np.searchsorted(self.cum, s, side="right") - 1
        i = np.minimum(i, self.last_index[li] - 1)
        t = (s - self.cum[i]) / (self.cum[i + 1] - self.cum[i])
        return i, t

    def eval(self, loop_idx: np.ndarray, s_cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(K, 2)`` cm and yaw ``(K,)`` deg in (-180, 180] of movers on ``loop_idx`` at ``s_cm``."""
        i, t = self.locate(loop_idx, s_cm)
        pos = self.points[i] + (self.points[i + 1] - self.points[i]) * t[:, None]
        yaw = self.yaw_rad[i] + (self.yaw_rad[i + 1] - self.yaw_rad[i]) * t
        return pos, (np.degrees(yaw) + 180.0) % 360.0 - 180.0

    def interp(self, field: np.ndarray, loop_idx: np.ndarray, s_cm: np.ndarray) -> np.ndarray:
        """Linear interpolation of a per-vertex ``field`` (aligned with ``points``) at ``s_cm`` on ``loop_idx``."""
        i, t = self.locate(loop_idx, s_cm)
        return field[i] + (field[i + 1] - field[i]) * t

    def loop_vertex_ranges(self) -> list[tuple[int, int]]:
        """``(first, last)`` global vertex indices of each loop (the last repeats the first point)."""
        firsts = np.concatenate([[0], self.last_index[:-1] + 1])
        return [(int(a), int(b)) for a, b in zip(firsts, self.last_index)]
