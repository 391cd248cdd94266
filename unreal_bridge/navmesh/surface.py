"""Walkers over the polygon graph: ``raycast`` and ``move_along_surface`` (Detour semantics, 2D in x, y).

Both follow portals from polygon to polygon, so they respect the mesh's topology (layered meshes included)
and never step through a wall. Per step they only touch one convex polygon: Python lists, no numpy.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .types import MoveResult, RaycastResult


def _clip_exit(xy: list, sx: float, sy: float, dx: float, dy: float) -> tuple[float, list[int]]:
    """Exit parameter of the line ``s + t d`` from a CCW convex polygon and the edge slots attaining it.

    Edge ``i`` (``a -> b``) keeps the inside where ``f_i(t) = cross(b - a, s + t d - a) >= 0``;
    ``f_i`` decreases along the ray when ``cross(b - a, d) < 0``, and reaches 0 at ``t_i = f_i(0) / -cross``.
    The exit is ``min t_i`` over those edges."""
    n = len(xy)
    ts: list[tuple[float, int]] = []
    for i in range(n):
        ax, ay = xy[i]
        bx, by = xy[i + 1 if i + 1 < n else 0]
        ex, ey = bx - ax, by - ay
        den = ex * dy - ey * dx
        if den < 0.0:
            num = ex * (sy - ay) - ey * (sx - ax)
            ts.append((num / -den, i))
    if not ts:
        return math.inf, []
    tmin = min(t for t, _ in ts)
    return tmin, [i for t, i in ts if t <= tmin + 1e-12 * max(1.0, abs(tmin))] or [min(ts)[1]]


def _wall_normal(xy: list, i: int) -> np.ndarray:
    """Unit normal of edge ``i`` of a CCW polygon pointing into it (left of the edge), z = 0."""
    ax, ay = xy[i]
    bx, by = xy[i + 1 if i + 1 < len(xy) else 0]
    ex, ey = bx - ax, by - ay
    n = math.hypot(ex, ey) or 1.0
    return np.array([-ey / n, ex / n, 0.0])


def raycast(mesh, lists, start: np.ndarray, end: np.ndarray, start_poly: int) -> RaycastResult:
    """Walk ``start -> end`` (x, y) from ``start_poly`` through portals until the end or a wall.

    In the current polygon the ray leaves at ``t_exit`` (``_clip_exit``); ``t_exit >= 1``: the end is inside,
    no hit. Otherwise the exit edge's neighbour is entered; an exit exactly through a vertex (several
    edges tie) continues into whichever polygon around that vertex, reachable through portals, the ray
    enters (largest exit parameter); if none, or the exit edge is a wall, the ray hits it at ``t_exit``."""
    sx, sy = float(start[0]), float(start[1])
    dx, dy = float(end[0]) - sx, float(end[1]) - sy
    length = math.hypot(dx, dy)
    cur = start_poly
    visited = [cur]
    if length <= mesh.eps_cm:
        return RaycastResult(False, math.inf, end.copy(), np.zeros(3), visited, 0.0)
    tol = mesh.eps_cm / length
    t_cur = 0.0
    for _ in range(4 * mesh.num_polys + 8):
        xy, nbr = lists.xy[cur], lists.nbr[cur]
        t_exit, edges = _clip_exit(xy, sx, sy, dx, dy)
        if t_exit >= 1.0 - tol:
            pos = np.array([end[0], end[1], 0.0])
            pos[2] = mesh.heights_at([cur], pos[None, :2])[0]
            return RaycastResult(False, math.inf, pos, np.zeros(3), visited, length)
        t_exit = max(t_exit, t_cur)
        portals = [nbr[i] for i in edges if nbr[i] >= 0]
        nxt = -1
        if len(edges) == 1 and portals:
            nxt = portals[0]
        elif len(edges) > 1 or _near_vertex(xy, sx + t_exit * dx, sy + t_exit * dy, mesh.eps_cm):
            nxt = _through_vertex(mesh, lists, cur, xy, sx, sy, dx, dy, t_exit, tol)
        if nxt < 0:
            wall = next((i for i in edges if nbr[i] < 0), edges[0])
            pos = np.array([sx + t_exit * dx, sy + t_exit * dy, 0.0])
            pos[2] = mesh.heights_at([cur], pos[None, :2])[0]
            return RaycastResult(True, t_exit, pos, _wall_normal(xy, wall), visited, t_exit * length)
        cur, t_cur = nxt, t_exit
        visited.append(cur)
    raise RuntimeError("raycast did not terminate (inconsistent mesh)")


def _near_vertex(xy, x, y, eps) -> bool:
    return any((vx - x) ** 2 + (vy - y) ** 2 <= (4 * eps) ** 2 for vx, vy in xy)


def _through_vertex(mesh, lists, cur, xy, sx, sy, dx, dy, t_exit, tol) -> int:
    """The polygon the ray enters after passing (near) a vertex of ``cur``: among the polygons around that
    vertex connected to ``cur`` through portals, the one containing the ray just beyond ``t_exit``."""
    px, py = sx + t_exit * dx, sy + t_exit * dy
    k = min(range(len(xy)), key=lambda i: (xy[i][0] - px) ** 2 + (xy[i][1] - py) ** 2)
    v = lists.verts[cur][k]
    fan = set(lists.vert_polys[v])
    # polygons of the fan reachable from cur through portals (a pinch vertex is not a passage)
    seen, queue = {cur}, deque([cur])
    while queue:
        p = queue.popleft()
        for q in lists.nbr[p]:
            if q >= 0 and q in fan and q not in seen:
                seen.add(q)
                queue.append(q)
    best, best_t = -1, t_exit + tol
    for p in seen:
        if p == cur:
            continue
        pxy = lists.xy[p]
        if not _contains(pxy, px + 1e-7 * dx, py + 1e-7 * dy, mesh.eps_cm * 4):
            continue
        t, _ = _clip_exit(pxy, sx, sy, dx, dy)
        if t > best_t:
            best, best_t = p, t
    return best


def _contains(xy, x, y, eps) -> bool:
    n = len(xy)
    for i in range(n):
        ax, ay = xy[i]
        bx, by = xy[i + 1 if i + 1 < n else 0]
        ex, ey = bx - ax, by - ay
        if ex * (y - ay) - ey * (x - ax) < -eps * math.hypot(ex, ey):
            return False
    return True


def move_along_surface(mesh, lists, start: np.ndarray, end: np.ndarray, start_poly: int) -> MoveResult:
    """Detour ``moveAlongSurface``: breadth-first over polygons reachable from ``start_poly`` whose portals
    touch the circle around the segment's midpoint of radius ``|end - start| / 2`` (x, y). If a visited
    polygon contains ``end`` (x, y) the result is ``end`` on that polygon's surface; otherwise it is the
    point closest to ``end`` on the walls of the visited polygons. The result is always on the mesh."""
    ex, ey = float(end[0]), float(end[1])
    cx, cy = 0.5 * (float(start[0]) + ex), 0.5 * (float(start[1]) + ey)
    radius = 0.5 * math.hypot(ex - float(start[0]), ey - float(start[1])) + 1e-3
    r2 = radius * radius
    best_pos = (float(start[0]), float(start[1]), float(start[2]))
    best_d2, best_poly = math.inf, start_poly
    visited = [start_poly]
    seen = {start_poly}
    queue = deque([start_poly])
    reached = False
    while queue:
        cur = queue.popleft()
        xy, z, nbr = lists.xy[cur], lists.z[cur], lists.nbr[cur]
        if _contains(xy, ex, ey, mesh.eps_cm):
            best_poly, reached = cur, True
            break
        n = len(xy)
        for i in range(n):
            j = i + 1 if i + 1 < n else 0
            (ax, ay), (bx, by) = xy[i], xy[j]
            q = nbr[i]
            if q < 0:
                t, d2 = _seg_closest(ex, ey, ax, ay, bx, by)
                if d2 < best_d2:
                    best_d2, best_poly = d2, cur
                    best_pos = (ax + t * (bx - ax), ay + t * (by - ay), z[i] + t * (z[j] - z[i]))
                continue
            if q in seen:
                continue
            _, d2 = _seg_closest(cx, cy, ax, ay, bx, by)
            if d2 > r2:
                continue
            seen.add(q)
            visited.append(q)
            queue.append(q)
    if reached:
        pos = np.array([ex, ey, 0.0])
        pos[2] = mesh.heights_at([best_poly], pos[None, :2])[0]
        return MoveResult(pos, best_poly, visited, False)
    return MoveResult(np.asarray(best_pos, dtype=np.float64), best_poly, visited, True)


def _seg_closest(px, py, ax, ay, bx, by) -> tuple[float, float]:
    """Parameter and squared distance of the point of segment ``a-b`` closest to ``p`` (2D)."""
    ex, ey = bx - ax, by - ay
    den = ex * ex + ey * ey
    t = 0.0 if den <= 0.0 else min(1.0, max(0.0, ((px - ax) * ex + (py - ay) * ey) / den))
    qx, qy = ax + t * ex - px, ay + t * ey - py
    return t, qx * qx + qy * qy
