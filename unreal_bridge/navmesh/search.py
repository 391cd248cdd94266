"""Detour-style path search over the polygon graph: A* with edge-midpoint nodes, then the funnel.

``astar_corridor`` follows ``dtNavMeshQuery::findPath``: a node is a polygon; its position is the midpoint of
the portal it was first reached through (the start node sits at the start point); the cost of stepping to a
neighbour is the 3D distance between those positions, plus, into the goal polygon, the distance from its
entry midpoint to the goal; the heuristic is ``0.999 * |pos - goal|`` (Detour's ``H_SCALE``). If the goal is
not reached, the corridor leads to the visited polygon with the smallest heuristic (Detour's partial path).

``funnel`` is the simple stupid funnel algorithm (Mononen) of ``findStraightPath``: walking through the
portals ``(left, right)``, the funnel ``apex -> left``, ``apex -> right`` narrows while each new portal point
lies inside it; when one side crosses the other, that side's point is a corner of the path and the new apex.
It runs on (x, y); corners are portal endpoints, i.e. mesh vertices, and keep their own z.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

H_SCALE = 0.999


@dataclass
class WalkLists:
    """Per-polygon Python lists for the per-step walkers (A*, raycast, move along surface).

    ``adj[p]``: ``(neighbour, slot, mid_x, mid_y, mid_z)`` per portal; ``xy[p]``: ``[(x, y), ...]`` CCW;
    ``z[p]``: vertex heights; ``nbr[p]``: neighbour per edge slot (-1 = wall)."""

    adj: list
    xy: list
    z: list
    nbr: list
    vert_polys: list  # polygons incident to each vertex
    verts: list  # vertex ids per polygon

    @staticmethod
    def build(mesh) -> "WalkLists":
        n = mesh.poly_nverts.tolist()
        pxyz = mesh.poly_xyz
        nxt = mesh._next_slot
        nbr_arr = mesh.poly_neighbors
        mid = 0.5 * (pxyz + np.take_along_axis(pxyz, nxt[..., None], axis=1))
        mid_l = mid.tolist()
        nbr_l = nbr_arr.tolist()
        xy_l = mesh._pxy.tolist()
        z_l = pxyz[..., 2].tolist()
        verts_l = mesh.poly_verts.tolist()
        adj, xy, z, nbr, verts = [], [], [], [], []
        for p in range(mesh.num_polys):
            k = n[p]
            row = nbr_l[p][:k]
            nbr.append(row)
            adj.append([(q, i, *mid_l[p][i]) for i, q in enumerate(row) if q >= 0])
            xy.append([tuple(v) for v in xy_l[p][:k]])
            z.append(z_l[p][:k])
            verts.append(verts_l[p][:k])
        vert_polys: list[list[int]] = [[] for _ in range(mesh.num_vertices)]
        for p, vs in enumerate(verts):
            for v in vs:
                vert_polys[v].append(p)
        return WalkLists(adj, xy, z, nbr, vert_polys, verts)


def astar_corridor(lists: WalkLists, start_poly: int, start_pos, goal_poly: int, goal_pos) -> list[int]:
    """Polygon corridor from ``start_poly`` to ``goal_poly`` (Detour A*, see module docstring)."""
    if start_poly == goal_poly:
        return [start_poly]
    gx, gy, gz = float(goal_pos[0]), float(goal_pos[1]), float(goal_pos[2])
    sx, sy, sz = float(start_pos[0]), float(start_pos[1]), float(start_pos[2])
    h0 = math.sqrt((sx - gx) ** 2 + (sy - gy) ** 2 + (sz - gz) ** 2) * H_SCALE
    pos = {start_poly: (sx, sy, sz)}
    cost = {start_poly: 0.0}
    parent = {start_poly: -1}
    closed = set()
    heap = [(h0, 0, start_poly)]
    best, best_h = start_poly, h0
    counter = 1
    adj = lists.adj
    sqrt = math.sqrt
    while heap:
        f, _, cur = heapq.heappop(heap)
        if cur in closed:
            continue
        closed.add(cur)
        if cur == goal_poly:
            best = cur
            break
        cx, cy, cz = pos[cur]
        gc = cost[cur]
        par = parent[cur]
        for nb, _slot, mx, my, mz in adj[cur]:
            if nb == par or nb in closed:
                continue
            npos = pos.get(nb)
            if npos is None:
                npos = (mx, my, mz)
                pos[nb] = npos
            nx, ny, nz = npos
            c = gc + sqrt((nx - cx) ** 2 + (ny - cy) ** 2 + (nz - cz) ** 2)
            if nb == goal_poly:
                c += sqrt((nx - gx) ** 2 + (ny - gy) ** 2 + (nz - gz) ** 2)
                h = 0.0
            else:
                h = sqrt((nx - gx) ** 2 + (ny - gy) ** 2 + (nz - gz) ** 2) * H_SCALE
            old = cost.get(nb)
            if old is None or c < old:
                cost[nb] = c
                parent[nb] = cur
                heapq.heappush(heap, (c + h, counter, nb))
                counter += 1
                if h < best_h:
                    best, best_h = nb, h
    out = [best]
    while parent[out[-1]] != -1:
        out.append(parent[out[-1]])
    return out[::-1]


def corridor_portals(lists: WalkLists, corridor: list[int]) -> list[tuple[tuple, tuple]]:
    """``(left, right)`` 3D points of the portals between consecutive corridor polygons: leaving CCW polygon
    ``a`` through edge ``v_i -> v_{i+1}``, ``v_{i+1}`` is on the left and ``v_i`` on the right."""
    out = []
    for a, b in zip(corridor[:-1], corridor[1:]):
        row = lists.nbr[a]
        i = row.index(b)
        j = i + 1 if i + 1 < len(row) else 0
        xy, z = lists.xy[a], lists.z[a]
        out.append(((xy[j][0], xy[j][1], z[j]), (xy[i][0], xy[i][1], z[i])))
    return out


def _orient(a, b, c) -> float:
    """``cross(b - a, c - a)``: > 0 when ``c`` is left of the ray ``a -> b`` (x, y only)."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def string_pull(portals: list[tuple[tuple, tuple]], start, goal, eps_cm: float = 1e-6) -> np.ndarray:
    """Simple stupid funnel over ``portals`` from ``start`` to ``goal``; returns corner points ``(K, 3)``."""
    start, goal = tuple(map(float, start)), tuple(map(float, goal))
    pts = [start]
    ports = [(start, start)] + list(portals) + [(goal, goal)]
    e2 = eps_cm * eps_cm

    def same(a, b) -> bool:
        return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 < e2

    apex = left = right = start
    ai = li = ri = 0
    i = 1
    n = len(ports)
    while i < n:
        lft, rgt = ports[i]
        # try to narrow the right side
        if _orient(apex, right, rgt) >= 0.0:
            if same(apex, right) or _orient(apex, left, rgt) < 0.0:
                right, ri = rgt, i
            else:  # right crosses left: left is a corner
                if not same(left, pts[-1]):
                    pts.append(left)
                apex, ai = left, li
                left = right = apex
                li = ri = ai
                i = ai + 1
                continue
        # try to narrow the left side
        if _orient(apex, left, lft) <= 0.0:
            if same(apex, left) or _orient(apex, right, lft) > 0.0:
                left, li = lft, i
            else:  # left crosses right: right is a corner
                if not same(right, pts[-1]):
                    pts.append(right)
                apex, ai = right, ri
                left = right = apex
                li = ri = ai
                i = ai + 1
                continue
        i += 1
    if not same(pts[-1], goal) or len(pts) == 1:
        pts.append(goal)
    else:
        pts[-1] = goal
    return np.asarray(pts, dtype=np.float64)


def funnel(mesh, corridor: list[int], start, goal) -> np.ndarray:
    """Straight path through ``corridor`` (Detour ``findStraightPath``)."""
    lists = mesh._walk_lists()
    return string_pull(corridor_portals(lists, corridor), start, goal, mesh.eps_cm)
