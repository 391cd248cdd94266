"""Exact shortest paths on a planar navmesh through its reflex corners (visibility graph).

Maths. The walkable area W (union of the polygons, projected on (x, y)) is a polygonal domain. A shortest
path in W between two points is a polyline whose interior vertices are *reflex corners* of W's boundary
(vertices where the walkable angle exceeds 180 degrees), and each of its segments is *tangent* to the
boundary at the corners it touches (Lozano-Perez & Wesley 1979; Lee 1978). With ``V(p)`` the corners
visible from ``p`` (and tangent there) and ``D`` the all-pairs distances of the *corner graph* (nodes:
corners; edges: mutually visible, bitangent corner pairs)::

    dist(s, g) = |s - g|                                   if g is visible from s
               = min_{a in V(s)} |s - a| + F(a)            otherwise,
    F(a)       = min_{b in V(g)} D(a, b) + |b - g|         (the geodesic distance from corner a to g).

Detour's A* over edge midpoints followed by the funnel only approximates this (the funnel is exact inside
the chosen corridor; the corridor is not necessarily the best one); here the result is the exact geodesic
of W in the (x, y) projection. Heights: corners keep their vertex z and graph edges are weighted by 3D length,
so on a non-flat mesh the path is the shortest 3D polyline among the taut (x, y) ones.

Build (once): walls are the polygon edges without a neighbour (interior on their left, polygons being CCW);
collinear runs are merged, so a wall of many grid cells is one segment; corners are the wall vertices where
the boundary turns right (``cross(d_in, d_out) < 0``); vertices where several boundary loops touch ("pinch"
vertices: no portal through them) block any segment through them. The corner graph is built with the
vectorised visibility test below and solved with ``scipy.sparse.csgraph`` (Dijkstra) into a dense
distance/predecessor matrix (above ``apsp_max_corners`` corners: one Dijkstra per query instead).

Query: if the island has few corners (``_JOINT_MAX``), one vectorised call tests ``s -> g`` and both sides'
candidates. Otherwise the goal side ``V(g)`` is computed exactly (one call; segments fanning out of ``g`` are
first tested against the walls nearest to ``g``), which gives ``F`` for every corner; the start side is then
tested lazily in increasing order of ``|s - a| + F(a)``: that key is the exact length through ``a`` when ``a``
is visible, so the first visible corner in that order is optimal. Corners are also pruned by the ellipse
``|s - x| + |x - g| <= U`` (see ``shortest_path``). No Python loop over polygons or corners.

Visibility of a segment ``p -> q`` (both in W): blocked if it crosses a wall properly (the endpoints of
each strictly on opposite sides of the other, beyond ``eps``), passes through a pinch vertex, or, at a corner
endpoint, leaves into the corner's exterior wedge. Degenerate contacts (touching a wall's end, running
along a wall, starting on a wall) split it into pieces that are each entirely inside or entirely outside W;
the midpoint of each piece is located on the mesh. Only walls in the grid cells the segment passes are
tested (``PolyGrid`` over wall bounding boxes), so the cost is the number of (segment, nearby wall) pairs.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from .spatial import PolyGrid

_ANG_TOL = 1e-9  # radians: tolerance for collinearity / tangency / grazing a wall
_DENSE_PAIRS = 2048  # below this many (segment, wall) pairs, test all pairs instead of using the grid
_CHUNK = 1 << 19  # max (segment, wall) pairs per vectorised block
_LAZY_BATCH = 8  # start-side corners tested in the first batch (then all the others)
_JOINT_MAX = 64  # up to this many candidate corners, both sides are tested in a single call
_NEAREST_WALLS = 24  # first-stage walls for segments fanning out of one point
WALL_CELLS_PER_WALL = 0.5  # wall grid resolution: coarse cells keep the per-segment cell walk short


class CornerGraph:
    """Reflex corners, merged walls, and shortest corner-to-corner distances of a planar ``NavMesh``."""

    def __init__(self, mesh, apsp_max_corners: int = 2048, precompute_polys_max_edges: int = 2000) -> None:
        self.mesh = mesh
        self.eps = mesh.eps_cm
        xyz = mesh.vertices_cm
        ws = mesh.wall_slots
        u = mesh.poly_verts[ws[:, 0], ws[:, 1]]
        v = mesh.poly_verts[ws[:, 0], mesh._next_slot[ws[:, 0], ws[:, 1]]]
        nv = len(xyz)
        out_cnt = np.bincount(u, minlength=nv)
        in_cnt = np.bincount(v, minlength=nv)
        on_boundary = (out_cnt + in_cnt) > 0
        manifold = on_boundary & (out_cnt == 1) & (in_cnt == 1)
        self.pinch_xy = xyz[on_boundary & ~manifold, :2]
        out_edge = np.full(nv, -1, dtype=np.int64)
        in_edge = np.full(nv, -1, dtype=np.int64)
        out_edge[u] = np.arange(len(u))
        in_edge[v] = np.arange(len(v))
        # turn at every manifold boundary vertex x: incoming wall w -> x, outgoing x -> y
        xs = np.flatnonzero(manifold)
        din = _unit(xyz[xs, :2] - xyz[u[in_edge[xs]], :2])
        dout = _unit(xyz[v[out_edge[xs]], :2] - xyz[xs, :2])
        turn = din[:, 0] * dout[:, 1] - din[:, 1] * dout[:, 0]
        dot = np.sum(din * dout, axis=1)
        reflex = (turn < -_ANG_TOL) | ((np.abs(turn) <= _ANG_TOL) & (dot < 0))
        removable = np.zeros(nv, dtype=bool)
        removable[xs[(np.abs(turn) <= _ANG_TOL) & (dot > 0)]] = True
        self.corner_vertex = xs[reflex]
        self.din = din[reflex]
        self.dout = dout[reflex]
        self.corner_xy = xyz[self.corner_vertex, :2]
        self.corner_xyz = xyz[self.corner_vertex]
        self.num_corners = len(self.corner_vertex)
        first_poly = np.full(nv, -1, dtype=np.int64)
        first_poly[u] = ws[:, 0]
        self.corner_island = mesh.island[first_poly[self.corner_vertex]]
        self.island_corners = {int(i): np.flatnonzero(self.corner_island == i) for i in np.unique(self.corner_island)}
        self._merge_walls(u, v, out_edge, removable)
        self._edge_polys: dict[tuple[int, int], np.ndarray] = {}
        self._build_graph(apsp_max_corners)
        self.precompute_edge_polys(precompute_polys_max_edges)

    # ------------------------------------------------------------------ build
    def _merge_walls(self, u, v, out_edge, removable) -> None:
        """Merge runs of collinear walls (through removable vertices) into single wall segments, and index
        them: a grid over their bounding boxes, and for each corner the two walls ending at it."""
        u_l, v_l, oe, rem = u.tolist(), v.tolist(), out_edge.tolist(), removable.tolist()
        ea, eb = [], []
        for e in range(len(u_l)):
            if rem[u_l[e]]:
                continue
            b = v_l[e]
            guard = 0
            while rem[b] and guard <= len(u_l):
                b = v_l[oe[b]]
                guard += 1
            ea.append(u_l[e])
            eb.append(b)
        xyz = self.mesh.vertices_cm
        ea, eb = np.asarray(ea, dtype=np.int64), np.asarray(eb, dtype=np.int64)
        self.wall_a, self.wall_b = xyz[ea, :2], xyz[eb, :2]
        e = self.wall_b - self.wall_a
        self.wall_len = np.hypot(e[:, 0], e[:, 1])
        inv_le = 1.0 / np.where(self.wall_len > 0, self.wall_len, 1.0)
        self._wall_cols = tuple(
            np.ascontiguousarray(c)
            for c in (self.wall_a[:, 0], self.wall_a[:, 1], self.wall_b[:, 0], self.wall_b[:, 1], e[:, 0], e[:, 1], inv_le)
        )
        nb = len(ea)
        self._wall_ids = np.arange(nb)
        self._wall_eps_len = self.eps * self.wall_len
        if nb:
            lo, hi = np.minimum(self.wall_a, self.wall_b), np.maximum(self.wall_a, self.wall_b)
            self.wall_grid = PolyGrid.build(lo, hi, margin_cm=4 * self.eps, cells_per_poly=WALL_CELLS_PER_WALL)
        else:
            self.wall_grid = None
        # incident[c, w]: wall w ends at corner c; the extra last row (index -1) is for non-corner endpoints
        vid_to_corner = np.full(len(xyz), -1, dtype=np.int64)
        vid_to_corner[self.corner_vertex] = np.arange(self.num_corners)
        self._incident = np.zeros((self.num_corners + 1, max(nb, 1)), dtype=bool)
        for ends in (ea, eb):
            c = vid_to_corner[ends]
            ok = c >= 0
            self._incident[c[ok], np.flatnonzero(ok)] = True

    def _build_graph(self, apsp_max_corners: int) -> None:
        r = self.num_corners
        self.dist = None
        self.pred = None
        self.num_edges = 0
        self.graph = sparse.csr_matrix((r, r))
        if r >= 2:
            iu, ju = np.triu_indices(r, k=1)
            same = self.corner_island[iu] == self.corner_island[ju]
            iu, ju = iu[same], ju[same]
            d = self.corner_xy[ju] - self.corner_xy[iu]
            keep = self._tangent(iu, d) & self._tangent(ju, -d)
            keep &= ~self._into_wedge(iu, d) & ~self._into_wedge(ju, -d)
            iu, ju = iu[keep], ju[keep]
            vis = np.zeros(len(iu), dtype=bool)
            step = 1 << 16
            for k in range(0, len(iu), step):
                a, b = iu[k : k + step], ju[k : k + step]
                vis[k : k + step] = self.visible(self.corner_xy[a], self.corner_xy[b], a, b)
            iu, ju = iu[vis], ju[vis]
            w = np.maximum(np.linalg.norm(self.corner_xyz[ju] - self.corner_xyz[iu], axis=1), 1e-12)
            self.graph = sparse.csr_matrix((np.r_[w, w], (np.r_[iu, ju], np.r_[ju, iu])), shape=(r, r))
            self.num_edges = len(iu)
        self._graph_coo = self.graph.tocoo()
        if r <= apsp_max_corners:
            if r >= 2:
                dist, pred = csgraph.shortest_path(self.graph, method="D", directed=False, return_predecessors=True)
            else:
                dist, pred = np.zeros((r, r)), np.full((r, r), -9999)
            self.dist, self.pred = dist, pred.astype(np.int32)

    # ------------------------------------------------------------------ predicates
    def _tangent(self, c: np.ndarray, d: np.ndarray) -> np.ndarray:
        """A segment from corner ``c`` in direction ``d`` is tangent to the boundary at ``c``: both wall
        directions at ``c`` (``-d_in``, ``d_out``) lie on the same side of its line (or on it)."""
        n = np.hypot(d[:, 0], d[:, 1])
        n = np.where(n > 0, n, 1.0)
        s1 = (-d[:, 0] * self.din[c, 1] + d[:, 1] * self.din[c, 0]) / n
        s2 = (d[:, 0] * self.dout[c, 1] - d[:, 1] * self.dout[c, 0]) / n
        return (s1 * s2 >= -_ANG_TOL) | (np.abs(s1) <= _ANG_TOL) | (np.abs(s2) <= _ANG_TOL)

    def _into_wedge(self, c: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Direction ``d`` from corner ``c`` points into the non-walkable wedge: strictly right of both walls
        (``cross(d_in, d) < 0`` and ``cross(d_out, d) < 0``)."""
        n = np.hypot(d[:, 0], d[:, 1])
        n = np.where(n > 0, n, 1.0)
        a = (self.din[c, 0] * d[:, 1] - self.din[c, 1] * d[:, 0]) / n
        b = (self.dout[c, 0] * d[:, 1] - self.dout[c, 1] * d[:, 0]) / n
        return (a < -_ANG_TOL) & (b < -_ANG_TOL)

    def _candidates(self, c: np.ndarray, p_xy: np.ndarray) -> np.ndarray:
        """Corners of ``c`` that can be the bend next to point ``p``: tangent, not into the wedge."""
        d = p_xy - self.corner_xy[c]
        return c[self._tangent(c, d) & ~self._into_wedge(c, d)]

    def visible(self, p: np.ndarray, q: np.ndarray, cp: np.ndarray | None = None, cq: np.ndarray | None = None) -> np.ndarray:
        """Whether each segment ``p -> q`` ((S, 2) each, both on the mesh) stays in the walkable area.
        ``cp``/``cq``: corner index of an endpoint, or -1 (its two walls are then handled by the wedge test)."""
        s = len(p)
        cp = np.full(s, -1, dtype=np.int64) if cp is None else np.asarray(cp, dtype=np.int64)
        cq = np.full(s, -1, dtype=np.int64) if cq is None else np.asarray(cq, dtype=np.int64)
        out = np.ones(s, dtype=bool)
        d = q - p
        length = np.hypot(d[:, 0], d[:, 1])
        moving = length > self.eps
        for cc, dd in ((cp, d), (cq, -d)):
            m = (cc >= 0) & moving
            if np.any(m):
                out[m] &= ~self._into_wedge(cc[m], dd[m])
        if len(self.pinch_xy):
            out &= ~self._through_points(p, q, length, self.pinch_xy)
        todo = np.flatnonzero(out & moving)
        nb = len(self.wall_len)
        if len(todo) == 0 or nb == 0:
            return out
        inv_l = 1.0 / np.where(moving, length, 1.0)
        if len(todo) * nb > _DENSE_PAIRS and len(todo) > 16 and np.all(p[todo] == p[todo[0]]):
            # segments fanning out of one point: the walls nearest to it block most of them, test those first
            near = self._walls_near(p[todo[0]], _NEAREST_WALLS)
            blocked, _, _ = self._pairs_test(p, d, inv_l, cp, cq, todo[:, None], near[None, :], contacts=False)
            out[blocked] = False
            todo = todo[out[todo]]
            if len(todo) == 0:
                return out
        if len(todo) * nb <= _DENSE_PAIRS:
            si, wi = todo[:, None], self._wall_ids[None, :]  # all pairs, by broadcasting
        else:
            # walls in the cells each segment passes; a (segment, wall) pair may repeat: harmless
            seg, cell = self.wall_grid.cells_along_segments(p[todo], q[todo], unique=False)
            k, wi = self.wall_grid.candidates(cell)
            si = todo[seg[k]]
        seg_ev, t_ev = [], []
        for k in range(0, len(si), _CHUNK):
            blocked, se, te = self._pairs_test(p, d, inv_l, cp, cq, si[k : k + _CHUNK], wi[k : k + _CHUNK])
            out[blocked] = False
            seg_ev.append(se)
            t_ev.append(te)
        seg, t = np.concatenate(seg_ev), np.concatenate(t_ev)
        keep = out[seg]
        if np.any(keep):
            out &= ~self._pieces_outside(p, q, length, seg[keep], t[keep])
        return out

    def _walls_near(self, xy: np.ndarray, k: int) -> np.ndarray:
        """Indices of the ``k`` walls closest to point ``xy`` (point-to-segment distance)."""
        ax, ay, _, _, ex, ey, inv_le = self._wall_cols
        t = np.clip(((xy[0] - ax) * ex + (xy[1] - ay) * ey) * inv_le * inv_le, 0.0, 1.0)
        d2 = (ax + t * ex - xy[0]) ** 2 + (ay + t * ey - xy[1]) ** 2
        if k >= len(d2):
            return np.arange(len(d2))
        return np.argpartition(d2, k)[:k]

    def _through_points(self, p, q, length, pts) -> np.ndarray:
        """Segment passes within ``eps`` of one of ``pts`` strictly between its endpoints."""
        d = q - p
        rel = pts[None, :, :] - p[:, None, :]
        ln = np.where(length > 0, length, 1.0)[:, None]
        t = (rel[..., 0] * d[:, None, 0] + rel[..., 1] * d[:, None, 1]) / (ln * ln)
        off = np.abs(rel[..., 0] * d[:, None, 1] - rel[..., 1] * d[:, None, 0]) / ln
        tol = self.eps / ln
        return np.any((off <= self.eps) & (t > tol) & (t < 1 - tol), axis=1)

    def _pairs_test(self, p, d, inv_l, cp, cq, si, wi, contacts: bool = True):
        """Test (segment ``si``, wall ``wi``) pairs: 1D arrays of pairs, or ``(S, 1)`` and ``(1, B)`` index
        arrays for all pairs by broadcasting. Returns the blocked segment ids and the contact events
        ``(segment ids, parameters)`` where segments must be split.

        With ``d = q - p`` and wall ``a -> b`` (``e = b - a``): ``d_a = cross(d, a - p) / |d|`` and ``d_b`` are
        the signed distances of the wall's ends from the segment's line, ``d_p = cross(e, p - a) / |e|`` and
        ``d_q = d_p + cross(e, d) / |e|`` those of the segment's ends from the wall's line. A proper crossing
        has both pairs strictly on opposite sides (beyond ``eps``). A corner endpoint's own walls touch the
        segment there: never a proper crossing, and not a contact either (the wedge test covers them).
        ``contacts=False`` only looks for crossings (a cheap first stage)."""
        eps = self.eps
        ax, ay, bx, by, ex, ey = (c[wi] for c in self._wall_cols[:6])
        px, py, dx, dy, il = p[si, 0], p[si, 1], d[si, 0], d[si, 1], inv_l[si]
        rax, ray, rbx, rby = ax - px, ay - py, bx - px, by - py
        # unnormalised: d_a |d|, d_b |d|, d_p |e|, d_q |e|; compared against eps |d| and eps |e|
        da = dx * ray - dy * rax
        db = dx * rby - dy * rbx
        dp = ey * rax - ex * ray
        dq = dp + (ex * dy - ey * dx)
        # all four distances beyond eps: then a proper crossing is two sign changes; else a near contact
        far = (np.minimum(np.abs(da), np.abs(db)) * il > eps) & (
            np.minimum(np.abs(dp), np.abs(dq)) > self._wall_eps_len[wi]
        )
        proper = (da * db < 0.0) & (dp * dq < 0.0) & far
        shape = proper.shape
        # blocked segment ids (repeats are harmless); all-pairs mode: a row per segment
        blocked = si[:, 0][proper.any(axis=1)] if proper.ndim == 2 else si[proper]
        if not contacts:
            return blocked, None, None
        near = ~far
        near &= ~self._incident[cp[si], wi] & ~self._incident[cq[si], wi]
        empty = (blocked, np.zeros(0, dtype=np.int64), np.zeros(0))
        if not near.any():
            return empty
        # the few near pairs: gather their segment and wall ids, recompute their quantities in 1D
        idx = np.nonzero(near)
        s = np.broadcast_to(si, shape)[idx]
        w = np.broadcast_to(wi, shape)[idx]
        ax, ay, bx, by, ex, ey, inv_le = (c[w] for c in self._wall_cols)
        px, py, dx, dy, il = p[s, 0], p[s, 1], d[s, 0], d[s, 1], inv_l[s]
        rax, ray, rbx, rby = ax - px, ay - py, bx - px, by - py
        da = (dx * ray - dy * rax) * il
        db = (dx * rby - dy * rbx) * il
        dp = (ey * rax - ex * ray) * inv_le
        dq = dp + (ex * dy - ey * dx) * inv_le
        il2 = il**2
        ta = (rax * dx + ray * dy) * il2
        tb = (rbx * dx + rby * dy) * il2
        tol = eps * il
        on_a = (np.abs(da) <= eps) & (ta > tol) & (ta < 1 - tol)
        on_b = (np.abs(db) <= eps) & (tb > tol) & (tb < 1 - tol)
        le2 = inv_le**2
        up = -(rax * ex + ray * ey) * le2
        uq = up + (dx * ex + dy * ey) * le2
        tol_e = eps * inv_le
        p_on = (np.abs(dp) <= eps) & (up >= -tol_e) & (up <= 1 + tol_e)
        q_on = (np.abs(dq) <= eps) & (uq >= -tol_e) & (uq <= 1 + tol_e)
        contact = on_a | on_b | p_on | q_on
        if not contact.any():
            return empty
        need = np.unique(s[contact])
        seg = np.concatenate([s[on_a], s[on_b], need, need])
        t = np.concatenate([ta[on_a], tb[on_b], np.zeros(len(need)), np.ones(len(need))])
        return blocked, seg, t

    def _pieces_outside(self, p, q, length, seg, t) -> np.ndarray:
        """Split segments at the contact parameters ``t`` and locate each piece's midpoint on the mesh."""
        order = np.lexsort((t, seg))
        seg, t = seg[order], t[order]
        same = seg[1:] == seg[:-1]
        gap = (t[1:] - t[:-1]) * length[seg[1:]] > self.eps
        use = same & gap
        s = seg[1:][use]
        tm = 0.5 * (t[1:] + t[:-1])[use]
        out = np.zeros(len(p), dtype=bool)
        if len(s) == 0:
            return out
        mid = p[s] + tm[:, None] * (q[s] - p[s])
        outside = self.mesh.locate_xy(mid) < 0
        out[s[outside]] = True
        return out

    # ------------------------------------------------------------------ query
    def shortest_path(
        self, s_pos: np.ndarray, g_pos: np.ndarray, s_poly: int, g_poly: int
    ) -> tuple[np.ndarray, list[int]] | None:
        """Exact shortest path from ``s_pos`` to ``g_pos`` (same island): ``(points (K, 3), polygons crossed)``,
        or ``None`` if the corner graph cannot connect them (numerical corner cases; the caller then falls
        back to the corridor search).

        Ellipse pruning (islands with many corners): a path through ``x`` is at least ``|s - x| + |x - g|``
        long, so if the best path whose first and last corners lie in ``{x : |s - x| + |x - g| <= U}`` is at
        most ``U`` long, it is the shortest path. ``U`` starts at ``1.3 |s - g|`` and doubles until it holds."""
        if s_poly == g_poly:
            return np.stack([s_pos, g_pos]), [int(s_poly)]  # convex polygon: the straight segment is inside
        s2, g2 = s_pos[:2], g_pos[:2]
        cand = self.island_corners.get(int(self.mesh.island[s_poly]), np.zeros(0, dtype=np.int64))
        seen_s = np.full(self.num_corners, -1, dtype=np.int8)  # visibility from s / g: -1 unknown, 0, 1
        seen_g = np.full(self.num_corners, -1, dtype=np.int8)
        if len(cand) <= _JOINT_MAX:
            # few corners: the direct segment and every candidate of both sides in a single call
            cg, cs = self._candidates(cand, g2), self._candidates(cand, s2)
            p = np.concatenate([g2[None], np.broadcast_to(g2, (len(cg), 2)), np.broadcast_to(s2, (len(cs), 2))])
            q = np.concatenate([s2[None], self.corner_xy[cg], self.corner_xy[cs]])
            vis = self.visible(p, q, None, np.concatenate([[-1], cg, cs]))
            direct = bool(vis[0])
            seen_g[cg] = vis[1 : 1 + len(cg)]
            seen_s[cs] = vis[1 + len(cg) :]
        else:
            cg = cs = None
            direct = bool(self.visible(g2[None], s2[None])[0])
        if direct:
            pts = np.stack([s_pos, g_pos])
            return pts, self._polys_of_segments(pts[:, :2], [])
        if len(cand) <= _JOINT_MAX:
            found = self._best_path(s_pos, g_pos, cand, seen_s, seen_g, cg, cs)
        else:
            detour = np.linalg.norm(self.corner_xyz[cand] - s_pos, axis=1) + np.linalg.norm(
                self.corner_xyz[cand] - g_pos, axis=1
            )
            bound = 1.3 * float(np.linalg.norm(g_pos - s_pos)) + 4 * self.eps
            while True:
                inside = detour <= bound
                found = self._best_path(s_pos, g_pos, cand[inside], seen_s, seen_g)
                if (found is not None and found[0] <= bound) or inside.all():
                    break
                bound *= 2.0
        if found is None:
            return None
        seq = found[1]
        pts = np.concatenate([s_pos[None], self.corner_xyz[seq], g_pos[None]])
        return pts, self._polys_of_segments(pts[:, :2], seq)

    def _visible_from(self, xy: np.ndarray, corners: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """Visibility of ``corners`` from point ``xy``, testing only those not yet in ``seen`` (-1)."""
        todo = corners[seen[corners] < 0]
        if len(todo):
            seen[todo] = self.visible(np.broadcast_to(xy, (len(todo), 2)), self.corner_xy[todo], None, todo)
        return seen[corners] == 1

    def _best_path(self, s_pos, g_pos, cand, seen_s, seen_g, cg=None, cs=None) -> tuple[float, list[int]] | None:
        """Shortest ``s -> corners -> g`` path whose first and last corners are in ``cand`` (``g`` not visible
        from ``s``): ``(length, corner sequence)`` or ``None``. The goal side ``V(g)`` is computed exactly,
        giving ``F``; start-side corners are tested in increasing ``|s - a| + F(a)``: a small batch first,
        then all the others (the first visible one in that order is optimal)."""
        s2, g2 = s_pos[:2], g_pos[:2]
        cg = self._candidates(cand, g2) if cg is None else cg
        cg = cg[self._visible_from(g2, cg, seen_g)]
        cs = self._candidates(cand, s2) if cs is None else cs
        if len(cg) == 0 or len(cs) == 0:
            return None
        lg = np.linalg.norm(self.corner_xyz[cg] - g_pos, axis=1)
        # F(a) = geodesic distance from corner a to the goal, and the corner it reaches the goal from
        if self.dist is not None:
            via = self.dist[cs][:, cg] + lg[None, :]
            last = np.argmin(via, axis=1)
            f = via[np.arange(len(cs)), last]
            last = cg[last]
        else:
            f_all, toward = self._dijkstra_to_goal(cg, lg)
            f = f_all[cs]
        key = np.linalg.norm(self.corner_xyz[cs] - s_pos, axis=1) + f
        order = np.argsort(key)
        order = order[np.isfinite(key[order])]
        k, size = 0, _LAZY_BATCH
        while k < len(order):
            idx = order[k : k + size]
            k, size = k + size, len(order)
            ok = self._visible_from(s2, cs[idx], seen_s)
            if not ok.any():
                continue
            j = int(np.argmax(ok))
            first = int(cs[idx[j]])
            if self.dist is not None:
                seq = self._corner_sequence(first, int(last[idx[j]]))
            else:
                seq = [first]
                while toward[seq[-1]] >= 0:
                    seq.append(int(toward[seq[-1]]))
            return float(key[idx[j]]), seq
        return None

    def _corner_sequence(self, a: int, b: int) -> list[int]:
        seq = [b]
        row = self.pred[a]
        while seq[-1] != a:
            seq.append(int(row[seq[-1]]))
        return seq[::-1]

    def _dijkstra_to_goal(self, cg: np.ndarray, lg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One Dijkstra on the corner graph plus a goal node ``R`` joined to the corners that see the goal:
        distances to the goal for every corner, and the next corner toward it (-1 = the goal itself)."""
        r = self.num_corners
        g = self._graph_coo
        lg = np.maximum(lg, 1e-12)
        rows = np.r_[g.row, np.full(len(cg), r), cg]
        cols = np.r_[g.col, cg, np.full(len(cg), r)]
        aug = sparse.csr_matrix((np.r_[g.data, lg, lg], (rows, cols)), shape=(r + 1, r + 1))
        dist, pred = csgraph.dijkstra(aug, directed=True, indices=r, return_predecessors=True)
        toward = np.where(pred[:r] == r, -1, pred[:r]).astype(np.int64)
        return dist[:r], toward

    def _polys_of_segments(self, xy: np.ndarray, seq: list[int]) -> list[int]:
        """Polygons crossed by the path ``xy`` whose interior vertices are corners ``seq``: the first and last
        segments are clipped now; corner-to-corner segments come from a cache (filled on first use)."""
        if len(seq) == 0:
            _, polys = self.mesh.segment_polys(xy[:1], xy[1:])
            return _drop_repeats(polys)
        ends_seg, ends_polys = self.mesh.segment_polys(xy[[0, -2]], xy[[1, -1]])
        parts = [ends_polys[ends_seg == 0]]
        missing = [(a, b) for a, b in zip(seq[:-1], seq[1:]) if (a, b) not in self._edge_polys]
        if missing:
            self._cache_edge_polys(missing)
        parts += [self._edge_polys[(a, b)] for a, b in zip(seq[:-1], seq[1:])]
        parts.append(ends_polys[ends_seg == 1])
        return _drop_repeats(np.concatenate(parts))

    def _cache_edge_polys(self, pairs: list[tuple[int, int]]) -> None:
        """Compute (vectorised, all at once) and cache the polygons crossed by corner-to-corner segments."""
        a = np.array([p[0] for p in pairs], dtype=np.int64)
        b = np.array([p[1] for p in pairs], dtype=np.int64)
        seg, polys = self.mesh.segment_polys(self.corner_xy[a], self.corner_xy[b])
        bounds = np.searchsorted(seg, np.arange(len(pairs) + 1))
        for k, (i, j) in enumerate(pairs):
            run = polys[bounds[k] : bounds[k + 1]]
            self._edge_polys[(i, j)] = run
            self._edge_polys[(j, i)] = run[::-1]

    def precompute_edge_polys(self, max_edges: int) -> None:
        """Fill the polygon cache for the corner-graph edges used by shortest paths (the edges of the
        shortest-path trees, ``(pred[i, j], j)``) when there are at most ``max_edges`` of them; otherwise
        the cache fills on first use."""
        if self.pred is None or self.num_corners < 2:
            return
        pr = self.pred
        j = np.broadcast_to(np.arange(self.num_corners), pr.shape)
        ok = pr >= 0
        a, b = pr[ok].astype(np.int64), j[ok]
        key = np.unique(np.minimum(a, b) * self.num_corners + np.maximum(a, b))
        if len(key) > max_edges:
            return
        pairs = [(int(k // self.num_corners), int(k % self.num_corners)) for k in key]
        for s in range(0, len(pairs), 2000):
            self._cache_edge_polys(pairs[s : s + 2000])


def _drop_repeats(polys) -> list[int]:
    a = np.asarray(polys, dtype=np.int64)
    if len(a) == 0:
        return []
    return a[np.concatenate([[True], a[1:] != a[:-1]])].tolist()


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.hypot(v[:, 0], v[:, 1])
    return v / np.where(n > 0, n, 1.0)[:, None]
