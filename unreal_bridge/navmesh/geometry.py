"""Small, pure 2D/2.5D geometry helpers used by the navmesh (float64, centimetres).

Conventions. Points are Unreal-frame ``(x, y, z)`` in cm; the path-finding geometry works on the ``(x, y)``
projection, ``z`` is carried along. The 2D cross product is ``cross(a, b) = a_x * b_y - a_y * b_x``; a
polygon is *counter-clockwise* (CCW) when its shoelace area ``1/2 * sum cross(v_i, v_{i+1})`` is positive.
In Unreal's left-handed frame seen from above (+Z), X forward and Y right, a CCW polygon in this
mathematical sense appears clockwise on screen; only the sign convention matters to the algorithms.
For a CCW convex polygon the interior lies on the left of every edge: ``cross(e_i, p - v_i) >= 0``.

Padded polygon arrays. Batched functions take polygons as ``(M, N, 2)`` arrays padded to ``N`` vertices by
repeating the first vertex: the padding adds zero-length edges, which every test below treats as neutral.
"""

from __future__ import annotations

import numpy as np


def cross2(ax: np.ndarray | float, ay: np.ndarray | float, bx: np.ndarray | float, by: np.ndarray | float):
    """2D cross product ``a_x * b_y - a_y * b_x`` (works on scalars and arrays)."""
    return ax * by - ay * bx


def signed_area_xy(xy: np.ndarray) -> np.ndarray:
    """Shoelace signed area of polygons ``(..., N, 2)``: ``1/2 * sum_i cross(v_i, v_{i+1})`` (CCW > 0).

    Works on padded arrays (repeated first vertex adds zero terms)."""
    x, y = xy[..., 0], xy[..., 1]
    xn, yn = np.roll(x, -1, axis=-1), np.roll(y, -1, axis=-1)
    return 0.5 * np.sum(x * yn - xn * y, axis=-1)


def points_in_convex_polys(xy: np.ndarray, poly_xy: np.ndarray, eps_cm: float) -> np.ndarray:
    """Whether each point ``xy (M, 2)`` lies in its CCW convex polygon ``poly_xy (M, N, 2)`` (closed, with
    tolerance): ``cross(e_i, p - v_i) >= -eps * |e_i|`` for every edge ``e_i``. Returns ``(M,)`` bool."""
    v = poly_xy
    e = np.roll(v, -1, axis=1) - v
    rel = xy[:, None, :] - v
    c = e[..., 0] * rel[..., 1] - e[..., 1] * rel[..., 0]
    el = np.hypot(e[..., 0], e[..., 1])
    return np.all(c >= -eps_cm * el, axis=1)


def closest_points_on_segments(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points to ``p`` on segments ``a-b`` (broadcasting, last axis = 2 or 3).

    ``t = clamp(dot(p - a, b - a) / |b - a|^2, 0, 1)``, point ``a + t (b - a)``. Returns ``(t, point)``."""
    ab = b - a
    den = np.sum(ab * ab, axis=-1)
    t = np.sum((p - a) * ab, axis=-1) / np.where(den > 0.0, den, 1.0)
    t = np.clip(t, 0.0, 1.0)
    return t, a + t[..., None] * ab


def fan_heights(xy: np.ndarray, poly_xyz: np.ndarray) -> np.ndarray:
    """Height ``z`` at ``xy (M, 2)`` on polygons ``poly_xyz (M, N, 3)`` (padded), by barycentric
    interpolation in the fan triangle ``(v_0, v_i, v_{i+1})`` that contains the point (the one with the
    largest minimum barycentric weight, so points slightly outside still get the nearest triangle's plane).
    Exact for triangles and planar polygons; for non-planar n-gons it defines the fan triangulation's surface."""
    m, n = poly_xyz.shape[:2]
    if n == 3:
        a, b, c = poly_xyz[:, 0], poly_xyz[:, 1], poly_xyz[:, 2]
        w = _barycentric(xy, a[:, :2], b[:, :2], c[:, :2])
        return w[:, 0] * a[:, 2] + w[:, 1] * b[:, 2] + w[:, 2] * c[:, 2]
    a = np.repeat(poly_xyz[:, :1], n - 2, axis=1)  # (M, N-2, 3)
    b, c = poly_xyz[:, 1:-1], poly_xyz[:, 2:]
    p = np.repeat(xy[:, None, :], n - 2, axis=1)
    w = _barycentric(p.reshape(-1, 2), a[..., :2].reshape(-1, 2), b[..., :2].reshape(-1, 2), c[..., :2].reshape(-1, 2))
    w = w.reshape(m, n - 2, 3)
    # degenerate (padding) fan triangles get weight -inf so they are never picked
    area = np.abs(cross2(b[..., 0] - a[..., 0], b[..., 1] - a[..., 1], c[..., 0] - a[..., 0], c[..., 1] - a[..., 1]))
    score = np.where(area > 0.0, w.min(axis=-1), -np.inf)
    k = np.argmax(score, axis=1)
    rows = np.arange(m)
    wk = w[rows, k]
    return wk[:, 0] * a[rows, k, 2] + wk[:, 1] * b[rows, k, 2] + wk[:, 2] * c[rows, k, 2]


def _barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights ``(M, 3)`` of points ``p`` in triangles ``abc`` (2D); zero-area triangles give
    weights ``(1, 0, 0)``."""
    v0, v1, v2 = b - a, c - a, p - a
    den = cross2(v0[:, 0], v0[:, 1], v1[:, 0], v1[:, 1])
    safe = np.where(den != 0.0, den, 1.0)
    wb = cross2(v2[:, 0], v2[:, 1], v1[:, 0], v1[:, 1]) / safe
    wc = cross2(v0[:, 0], v0[:, 1], v2[:, 0], v2[:, 1]) / safe
    wb = np.where(den != 0.0, wb, 0.0)
    wc = np.where(den != 0.0, wc, 0.0)
    return np.stack([1.0 - wb - wc, wb, wc], axis=-1)


def clip_to_halfplanes(
    x0: np.ndarray, y0: np.ndarray, dx: np.ndarray, dy: np.ndarray, ha: np.ndarray, hb: np.ndarray, hc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cyrus-Beck clipping of segments ``p(t) = (x0, y0) + t (dx, dy), t in [0, 1]`` (one per column) against
    convex polygons given by their edge half-planes ``a x + b y + c >= 0`` as slot-major arrays ``(N, M)``
    (padding edges: ``a = b = c = 0``; ``c`` already includes the tolerance, so polygons are grown by it).

    Each edge gives ``f(t) = num + t den`` with ``num = a x0 + b y0 + c`` and ``den = a dx + b dy``:
    ``den > 0`` bounds ``t`` from below by ``-num / den``, ``den < 0`` from above, ``den = 0`` keeps the
    segment iff ``num >= 0``. Returns ``(t_in, t_out)``; the segment meets the polygon iff ``t_in <= t_out``."""
    num = ha * x0 + hb * y0 + hc
    den = ha * dx + hb * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -num / den
    t_in = np.maximum(np.where(den > 0.0, t, 0.0).max(axis=0), 0.0)
    t_out = np.minimum(np.where(den < 0.0, t, 1.0).min(axis=0), 1.0)
    t_out[np.any((den == 0.0) & (num < 0.0), axis=0)] = -np.inf
    return t_in, t_out


def segment_length_3d(points: np.ndarray) -> float:
    """Length ``sum_k |p_{k+1} - p_k|`` of a polyline ``(K, 3)`` in 3D."""
    if len(points) < 2:
        return 0.0
    return float(np.sum(np.linalg.norm(np.diff(points, axis=0), axis=1)))
