"""``NavMesh``: a navigation mesh of convex polygons in the Unreal frame, with Detour-like queries.

Build (vectorised numpy/scipy; no Python loop over polygons):

1. vertices ``(V, 3)`` float64 cm are checked for NaN/inf and exact duplicates are welded (optionally all
   vertices closer than ``weld_cm``);
2. polygons (triangles or convex n-gons, vertex-index lists) are validated in the (x, y) projection: at least
   3 distinct vertices, non-zero area, convex (collinear vertices allowed), no spikes; the winding is
   normalised to counter-clockwise (positive shoelace area ``1/2 sum cross(v_i, v_{i+1})``);
3. edges are matched by their vertex pair: an edge used by two polygons (in opposite directions) is a
   *portal*, by one a *wall*; by three or more it is non-manifold (error), by two in the same direction the
   polygons overlap (error);
4. islands = connected components of the portal graph (``scipy.sparse.csgraph``); a KD-tree over polygon
   centroids (nearest polygon); a uniform grid over bounding boxes (batched point location); a check that
   no two polygons overlap in (x, y) (separating axis test on grid neighbours), which makes the mesh
   *planar* and enables the exact visibility path finder (``visibility.CornerGraph``).

Invalid input is reported, never silently "fixed": with ``on_invalid="raise"`` (default) a ``NavMeshError``
names every bad polygon (its input index) and why; with ``on_invalid="drop"`` bad polygons are removed
(``source_poly_index`` maps kept polygons to input indices), non-manifold/overlapping edges become walls,
and each decision is recorded in ``warnings``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from .geometry import (
    clip_to_halfplanes,
    closest_points_on_segments,
    fan_heights,
    points_in_convex_polys,
    segment_length_3d,
    signed_area_xy,
)
from .spatial import PolyGrid
from .types import MoveResult, NavMeshError, NearestPoly, OffMeshError, PathResult, RaycastResult

__all__ = ["NavMesh"]

_MAX_REPORTED = 12


def _as_point(pos_cm, what: str) -> np.ndarray:
    p = np.asarray(pos_cm, dtype=np.float64).reshape(-1)
    if p.shape != (3,):
        raise ValueError(f"{what} must be (x, y, z) in cm, got shape {np.shape(pos_cm)}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{what} has a non-finite coordinate: {p.tolist()}")
    return p


class NavMesh:
    """Convex-polygon navigation mesh (Unreal frame: left-handed, Z up, X forward, Y right, cm).

    ``vertices_cm``: ``(V, 3)`` (or ``(V, 2)``, z = 0). ``polygons``: vertex-index lists, triangles or convex
    n-gons, any winding. ``weld_cm``: also merge vertices closer than this (exact duplicates always are).
    ``on_invalid``: ``"raise"`` (default) or ``"drop"`` (see the module docstring). ``apsp_max_corners``: up
    to this many reflex corners the corner graph keeps a dense all-pairs distance matrix (8 R^2 bytes),
    above it each query runs one Dijkstra.

    Queries: ``find_path``, ``nearest_poly``/``snap``, ``locate_xy``, ``raycast``, ``move_along_surface``,
    ``random_points``, ``reachable``; islands in ``island`` / ``num_islands``; ``warnings`` lists what
    ``on_invalid="drop"`` changed. Polygon indices refer to the kept polygons (``source_poly_index`` maps
    them to the input). ``eps_cm`` (about 1e-9 of the largest coordinate, at least 1e-6 cm) is the
    geometric tolerance."""

    def __init__(
        self,
        vertices_cm,
        polygons: Sequence[Sequence[int]],
        *,
        weld_cm: float = 0.0,
        on_invalid: Literal["raise", "drop"] = "raise",
        name: str = "",
        metadata: dict | None = None,
        apsp_max_corners: int = 2048,
    ) -> None:
        if on_invalid not in ("raise", "drop"):
            raise ValueError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
        self.name = name
        self.metadata = dict(metadata or {})
        self.warnings: list[str] = []
        verts = self._check_vertices(vertices_cm)
        self.eps_cm = max(1e-6, 1e-9 * float(np.abs(verts).max(initial=0.0)))
        verts, remap = self._weld(verts, weld_cm)
        vidx, nverts = self._pad_polygons(polygons, remap, len(verts))
        keep = self._validate_polygons(verts, vidx, nverts, on_invalid)
        self.source_poly_index = np.flatnonzero(keep).astype(np.int64)
        vidx, nverts = vidx[keep], nverts[keep]
        if len(vidx) == 0:
            raise NavMeshError("the mesh has no valid polygon")
        self.vertices_cm = verts
        self.poly_verts, self.poly_nverts = self._normalise_winding(verts, vidx, nverts)
        self._build_derived()
        self._build_topology(on_invalid)
        self._build_islands()
        self._build_spatial()
        self.is_planar = self._check_planar()
        self._lists = None  # Python adjacency lists for the walkers, built on first use
        self._component_polys: dict[int, np.ndarray] = {}
        self.corners = None
        if self.is_planar:
            from .visibility import CornerGraph

            self.corners = CornerGraph(self, apsp_max_corners=apsp_max_corners)

    # ------------------------------------------------------------------ build steps
    @staticmethod
    def _check_vertices(vertices_cm) -> np.ndarray:
        v = np.asarray(vertices_cm, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] not in (2, 3):
            raise NavMeshError(f"vertices must be an array of shape (V, 3) in cm, got {v.shape}")
        if v.shape[1] == 2:
            v = np.concatenate([v, np.zeros((len(v), 1))], axis=1)
        bad = np.flatnonzero(~np.all(np.isfinite(v), axis=1))
        if len(bad):
            shown = ", ".join(f"vertex {i} = {v[i].tolist()}" for i in bad[:_MAX_REPORTED])
            raise NavMeshError(f"{len(bad)} vertex(es) with NaN/inf coordinates: {shown}")
        return v

    def _weld(self, v: np.ndarray, weld_cm: float) -> tuple[np.ndarray, np.ndarray]:
        """Merge identical vertices (and, if ``weld_cm > 0``, all within ``weld_cm``: union of KD-tree pairs)."""
        if weld_cm and weld_cm > 0:
            pairs = cKDTree(v).query_pairs(float(weld_cm), output_type="ndarray")
            g = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(v), len(v)))
            _, label = csgraph.connected_components(g, directed=False)
            first = np.full(label.max() + 1, len(v))
            np.minimum.at(first, label, np.arange(len(v)))
            uniq, remap = np.unique(first[label], return_inverse=True)
            if len(uniq) < len(v):
                self.warnings.append(f"welded {len(v) - len(uniq)} vertex(es) within {weld_cm} cm")
            return v[uniq], remap.astype(np.int64)
        uniq, remap = np.unique(v, axis=0, return_inverse=True)
        return uniq, remap.reshape(-1).astype(np.int64)

    @staticmethod
    def _pad_polygons(polygons, remap: np.ndarray, nv: int) -> tuple[np.ndarray, np.ndarray]:
        """Ragged index lists -> ``(P, N)`` int64 array padded by repeating the first vertex, plus counts.
        Indices refer to the input vertices and are mapped through ``remap`` (welding)."""
        if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
            arr = polygons.astype(np.int64)
            counts = np.full(len(arr), arr.shape[1], dtype=np.int64)
        else:
            polys = [list(p) for p in polygons]
            if not polys:
                raise NavMeshError("the mesh has no polygon")
            counts = np.array([len(p) for p in polys], dtype=np.int64)
            n = max(3, int(counts.max()))
            arr = np.full((len(polys), n), -1, dtype=np.int64)
            for i, p in enumerate(polys):
                if p:
                    arr[i, : len(p)] = p
        short = np.flatnonzero(counts < 3)
        if len(short):
            raise NavMeshError(f"polygon {int(short[0])} has {int(counts[short[0]])} vertex(es); a polygon needs at least 3")
        slots = np.arange(arr.shape[1])[None, :] < counts[:, None]
        bad = np.flatnonzero(np.any(slots & ((arr < 0) | (arr >= len(remap))), axis=1))
        if len(bad):
            raise NavMeshError(f"polygon {int(bad[0])} has a vertex index out of range [0, {len(remap)}): {arr[bad[0], : counts[bad[0]]].tolist()}")
        arr = np.where(slots, remap[np.where(slots, arr, 0)], -1)
        arr = np.where(slots, arr, arr[:, :1])  # pad with the first vertex
        return arr, counts

    def _validate_polygons(self, v, vidx, nverts, on_invalid) -> np.ndarray:
        """Per polygon: repeated vertices, zero area, spikes, non-convexity (in xy). Returns the keep mask."""
        p, n = vidx.shape
        slot = np.arange(n)[None, :]
        valid = slot < nverts[:, None]
        reasons: dict[int, str] = {}
        # repeated vertex indices (after welding)
        srt = np.sort(np.where(valid, vidx, -1 - slot), axis=1)
        dup = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
        for i in np.flatnonzero(dup):
            reasons[int(i)] = f"repeats a vertex: {vidx[i, : nverts[i]].tolist()}"
        xy = v[vidx][..., :2]
        nxt = np.where(slot + 1 < nverts[:, None], slot + 1, 0)
        e = np.take_along_axis(xy, nxt[..., None], axis=1) - xy  # edge i: v_i -> v_{i+1}
        elen = np.hypot(e[..., 0], e[..., 1])
        area = signed_area_xy(xy)
        perim = np.sum(np.where(valid, elen, 0.0), axis=1)
        zero_edge = np.any(valid & (elen <= self.eps_cm), axis=1)
        for i in np.flatnonzero(zero_edge & ~dup):
            reasons[int(i)] = "has two coincident vertices (a zero-length edge in xy)"
        zero_area = np.abs(area) <= self.eps_cm * np.maximum(perim, self.eps_cm)
        for i in np.flatnonzero(zero_area):
            reasons.setdefault(int(i), f"has zero area in the xy plane (area {area[i]:.3g} cm^2)")
        # convexity: turn at vertex i+1 between e_i and e_{i+1}, measured with the winding's sign
        sign = np.where(area < 0, -1.0, 1.0)[:, None]
        e_next = np.take_along_axis(e, nxt[..., None], axis=1)
        turn = sign * (e[..., 0] * e_next[..., 1] - e[..., 1] * e_next[..., 0])
        dot = e[..., 0] * e_next[..., 0] + e[..., 1] * e_next[..., 1]
        scale = self.eps_cm * np.maximum(elen, np.take_along_axis(elen, nxt, axis=1))
        reflex = valid & (turn < -scale)
        spike = valid & (np.abs(turn) <= scale) & (dot < 0)
        for i in np.flatnonzero(np.any(reflex, axis=1)):
            j = int(np.argmax(reflex[i]))
            reasons.setdefault(int(i), f"is not convex (reflex angle at its vertex {(j + 1) % nverts[i]})")
        for i in np.flatnonzero(np.any(spike, axis=1)):
            j = int(np.argmax(spike[i]))
            reasons.setdefault(int(i), f"folds back on itself (spike at its vertex {(j + 1) % nverts[i]})")
        keep = np.ones(p, dtype=bool)
        if reasons:
            items = sorted(reasons.items())
            text = "; ".join(f"polygon {i} {why}" for i, why in items[:_MAX_REPORTED])
            more = f" (and {len(items) - _MAX_REPORTED} more)" if len(items) > _MAX_REPORTED else ""
            if on_invalid == "raise":
                raise NavMeshError(f"{len(items)} invalid polygon(s): {text}{more}")
            keep[[i for i, _ in items]] = False
            self.warnings.extend(f"dropped polygon {i}: it {why}" for i, why in items)
        return keep

    @staticmethod
    def _normalise_winding(v, vidx, nverts) -> tuple[np.ndarray, np.ndarray]:
        """Reverse clockwise polygons (negative shoelace area) so every polygon is CCW in xy: slot ``j < n``
        takes vertex ``n - 1 - j``, the padding repeats the new first vertex (old ``n - 1``)."""
        area = signed_area_xy(v[vidx][..., :2])
        slot = np.arange(vidx.shape[1])[None, :]
        n = nverts[:, None]
        rev = np.where(slot < n, n - 1 - slot, n - 1)
        idx = np.where((area < 0)[:, None], rev, slot)
        return np.take_along_axis(vidx, idx, axis=1).astype(np.int64), nverts.astype(np.int64)

    def _build_derived(self) -> None:
        v, vidx, nv = self.vertices_cm, self.poly_verts, self.poly_nverts
        p, n = vidx.shape
        self.num_polys = p
        slot = np.arange(n)[None, :]
        self._slot_valid = slot < nv[:, None]
        self._next_slot = np.where(slot + 1 < nv[:, None], slot + 1, 0)
        self.poly_xyz = v[vidx]  # (P, N, 3) padded
        self._pxy = np.ascontiguousarray(self.poly_xyz[..., :2])
        w = self._slot_valid[..., None]
        self.centroids_cm = np.sum(np.where(w, self.poly_xyz, 0.0), axis=1) / nv[:, None]
        self.areas_xy_cm2 = signed_area_xy(self._pxy)
        # 3D fan-triangle areas (v0, v_i, v_{i+1}) for area-weighted sampling
        a = self.poly_xyz[:, :1]
        b, c = self.poly_xyz[:, 1:-1], self.poly_xyz[:, 2:]
        self._fan_area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=-1)  # (P, N-2); padding -> 0
        self.areas_cm2 = self._fan_area.sum(axis=1)
        self.radii_cm = np.max(np.linalg.norm(self.poly_xyz - self.centroids_cm[:, None], axis=-1), axis=1)
        self.bbox_min = self._pxy.min(axis=1)
        self.bbox_max = self._pxy.max(axis=1)
        e = np.take_along_axis(self._pxy, self._next_slot[..., None], axis=1) - self._pxy
        el = np.hypot(e[..., 0], e[..., 1])
        # edge half-planes a x + b y + c >= 0 (inside, grown by eps): (a, b) = (-e_y, e_x), stored (N, P)
        # slot-major so that gathering candidate polygons gives contiguous (N, M) arrays
        ha, hb = -e[..., 1], e[..., 0]
        hc = -(ha * self._pxy[..., 0] + hb * self._pxy[..., 1]) + self.eps_cm * el
        self._half_a, self._half_b, self._half_c = (np.ascontiguousarray(h.T) for h in (ha, hb, hc))
        self._py_xy = self._pxy.tolist()  # padded Python lists for the scalar fast paths
        self._py_z = self.poly_xyz[..., 2].tolist()
        self._py_n = nv.tolist()

    def _build_topology(self, on_invalid) -> None:
        """Match edges by vertex pair (sort by key ``min(u, v) * V + max(u, v)``) into portals and walls."""
        vidx, valid = self.poly_verts, self._slot_valid
        p, n = vidx.shape
        u = vidx
        w = np.take_along_axis(vidx, self._next_slot, axis=1)
        poly_id = np.broadcast_to(np.arange(p)[:, None], (p, n))[valid]
        slot_id = np.broadcast_to(np.arange(n)[None, :], (p, n))[valid]
        uu, ww = u[valid], w[valid]
        nvtx = len(self.vertices_cm)
        key = np.minimum(uu, ww) * nvtx + np.maximum(uu, ww)
        order = np.argsort(key, kind="stable")
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        sizes = np.diff(np.r_[starts, len(ks)])
        nbr = np.full((p, n), -1, dtype=np.int64)
        problems = []
        for g in np.flatnonzero(sizes > 2):
            members = order[starts[g] : starts[g] + sizes[g]]
            problems.append(
                f"edge ({int(uu[members[0]])}, {int(ww[members[0]])}) is shared by {int(sizes[g])} polygons "
                f"{sorted(int(self.source_poly_index[poly_id[m]]) for m in members)} (non-manifold)"
            )
        pairs = starts[sizes == 2]
        a, b = order[pairs], order[pairs + 1]
        same_dir = uu[a] == uu[b]
        for i in np.flatnonzero(same_dir):
            problems.append(
                f"polygons {int(self.source_poly_index[poly_id[a[i]]])} and {int(self.source_poly_index[poly_id[b[i]]])} "
                f"overlap: they traverse their shared edge ({int(uu[a[i]])}, {int(ww[a[i]])}) in the same direction"
            )
        if problems:
            if on_invalid == "raise":
                more = f" (and {len(problems) - _MAX_REPORTED} more)" if len(problems) > _MAX_REPORTED else ""
                raise NavMeshError(f"{len(problems)} bad edge(s): " + "; ".join(problems[:_MAX_REPORTED]) + more)
            self.warnings.extend(f"made a wall: {m}" for m in problems)
        ok = ~same_dir
        a, b = a[ok], b[ok]
        nbr[poly_id[a], slot_id[a]] = poly_id[b]
        nbr[poly_id[b], slot_id[b]] = poly_id[a]
        self.poly_neighbors = nbr  # (P, N): polygon across edge slot i, -1 for a wall or padding
        self._portal_pairs = np.stack([poly_id[a], poly_id[b]], axis=1)
        wall = valid & (nbr < 0)
        self.wall_slots = np.argwhere(wall)  # (W, 2) rows (poly, slot)

    def _build_islands(self) -> None:
        p = self.num_polys
        pp = self._portal_pairs
        g = sparse.coo_matrix((np.ones(len(pp)), (pp[:, 0], pp[:, 1])), shape=(p, p))
        self.num_islands, self.island = csgraph.connected_components(g, directed=False)
        self.island_area_cm2 = np.bincount(self.island, weights=self.areas_cm2, minlength=self.num_islands)

    def _build_spatial(self) -> None:
        self._kdtree = cKDTree(self.centroids_cm)
        self._max_radius = float(self.radii_cm.max())
        self.grid = PolyGrid.build(self.bbox_min, self.bbox_max, margin_cm=16 * self.eps_cm)
        self._py_cells: dict[int, list[int]] = {}  # grid cell -> polygon list, filled on first use

    def _check_planar(self) -> bool:
        """True when no two polygons overlap in the (x, y) projection (separating axis theorem on every pair
        of polygons sharing a grid cell; touching along edges or at vertices is not an overlap)."""
        g = self.grid
        counts = np.diff(g.start)
        cell_of = np.repeat(np.arange(len(counts)), counts)
        pos = np.arange(len(g.polys))
        m = (g.start[cell_of + 1] - pos - 1).astype(np.int64)  # later entries in the same cell
        first = np.repeat(pos, m)
        k = np.arange(m.sum()) - np.repeat(np.cumsum(m) - m, m)
        a, b = g.polys[first].astype(np.int64), g.polys[first + 1 + k].astype(np.int64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = np.unique(lo * self.num_polys + hi)
        a, b = key // self.num_polys, key % self.num_polys
        e = self.eps_cm
        ov = np.all((self.bbox_min[a] < self.bbox_max[b] - e) & (self.bbox_min[b] < self.bbox_max[a] - e), axis=1)
        a, b = a[ov], b[ov]
        for s in range(0, len(a), 20000):
            aa, bb = a[s : s + 20000], b[s : s + 20000]
            if np.any(_sat_overlap(self._pxy[aa], self._pxy[bb], e)):
                self.warnings.append("polygons overlap in the xy projection (layered mesh): using the corridor path finder")
                return False
        return True

    # ------------------------------------------------------------------ basic properties
    @property
    def num_vertices(self) -> int:
        return len(self.vertices_cm)

    @property
    def bounds_cm(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices_cm.min(axis=0), self.vertices_cm.max(axis=0)

    def polygon(self, poly: int) -> np.ndarray:
        """Vertices ``(n, 3)`` of polygon ``poly`` (CCW in xy)."""
        return self.poly_xyz[poly, : self.poly_nverts[poly]].copy()

    def neighbors(self, poly: int) -> list[int]:
        """Polygons sharing an edge (a portal) with ``poly``."""
        row = self.poly_neighbors[poly, : self.poly_nverts[poly]]
        return [int(x) for x in row if x >= 0]

    def portal(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The shared edge of adjacent polygons ``a -> b`` as ``(left, right)`` seen when walking from a to b.

        With CCW polygons the interior of ``a`` is on the left of edge ``v_i -> v_{i+1}``, so someone leaving
        ``a`` through it has ``v_{i+1}`` on the left and ``v_i`` on the right."""
        row = self.poly_neighbors[a, : self.poly_nverts[a]]
        hits = np.flatnonzero(row == b)
        if not len(hits):
            raise ValueError(f"polygons {a} and {b} are not adjacent")
        i = int(hits[0])
        return self.poly_xyz[a, self._next_slot[a, i]].copy(), self.poly_xyz[a, i].copy()

    def island_polys(self, island: int) -> np.ndarray:
        if island not in self._component_polys:
            self._component_polys[island] = np.flatnonzero(self.island == island)
        return self._component_polys[island]

    # ------------------------------------------------------------------ location
    def _closest_on_polys(self, pos: np.ndarray, polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Closest points of ``polys`` to ``pos`` (Detour ``closestPointOnPoly``): if (x, y) is inside, the point
        on the surface straight above/below; else the closest point on the boundary in 2D, height
        interpolated along that edge. Returns ``(points (m, 3), 3D distances (m,), over (m,))``."""
        pxy = self._pxy[polys]
        m = len(polys)
        xy = np.broadcast_to(pos[:2], (m, 2))
        over = points_in_convex_polys(xy, pxy, self.eps_cm)
        out = np.empty((m, 3))
        if np.any(over):
            out[over, :2] = pos[:2]
            out[over, 2] = fan_heights(xy[over], self.poly_xyz[polys[over]])
        if not np.all(over):
            pz = self.poly_xyz[polys[~over]]
            a, b = pz, np.roll(pz, -1, axis=1)
            t, q = closest_points_on_segments(pos[None, None, :2], a[..., :2], b[..., :2])
            d2 = np.sum((q - pos[:2]) ** 2, axis=-1)
            k = np.argmin(d2, axis=1)
            r = np.arange(len(k))
            tk = t[r, k]
            out[~over, :2] = q[r, k]
            out[~over, 2] = a[r, k, 2] + tk * (b[r, k, 2] - a[r, k, 2])
        return out, np.linalg.norm(out - pos, axis=1), over

    def nearest_poly(self, pos_cm, max_dist_cm: float = math.inf) -> NearestPoly | None:
        """The polygon nearest to ``pos_cm`` (3D distance to its closest point) or ``None`` if farther than
        ``max_dist_cm``. Exact: KD-tree over centroids gives candidates; every polygon that could be nearer
        has its centroid within ``best + max polygon radius``."""
        pos = _as_point(pos_cm, "position")
        fast = self._locate_on_surface(pos)
        if fast is not None:
            poly, z = fast
            d = abs(float(pos[2]) - z)
            if d <= max_dist_cm:
                return NearestPoly(poly, np.array([pos[0], pos[1], z]), d, True)
        k = min(8, self.num_polys)
        _, idx = self._kdtree.query(pos, k=k)
        idx = np.atleast_1d(idx)
        pts, d, over = self._closest_on_polys(pos, idx)
        j = int(np.argmin(d))
        best = float(d[j])
        if best > self.eps_cm and k < self.num_polys:
            ball = np.asarray(self._kdtree.query_ball_point(pos, best + self._max_radius), dtype=np.int64)
            if len(ball) > k:
                idx = ball
                pts, d, over = self._closest_on_polys(pos, idx)
                j = int(np.argmin(d))
                best = float(d[j])
        if best > max_dist_cm:
            return None
        return NearestPoly(int(idx[j]), pts[j], best, bool(over[j]))

    def _locate_on_surface(self, pos: np.ndarray, dz_cm: float = 1.0) -> tuple[int, float] | None:
        """Scalar fast path: the polygon whose (x, y) contains ``pos`` and whose surface is within ``dz_cm``
        of its z (grid cell candidates, pure Python). Such a polygon is the nearest one up to ``dz_cm``."""
        g = self.grid
        x, y, z = float(pos[0]), float(pos[1]), float(pos[2])
        fx, fy = math.floor((x - g.origin_xy[0]) / g.cell_cm), math.floor((y - g.origin_xy[1]) / g.cell_cm)
        if not (0 <= fx < g.nx and 0 <= fy < g.ny):
            return None
        cell = fy * g.nx + fx
        polys = self._py_cells.get(cell)
        if polys is None:
            polys = self._py_cells[cell] = g.polys[g.start[cell] : g.start[cell + 1]].tolist()
        for p in polys:
            xy = self._py_xy[p]
            if _py_contains(xy, x, y, self.eps_cm):
                h = _py_height(xy, self._py_z[p], self._py_n[p], x, y)
                if abs(h - z) <= dz_cm:
                    return p, h
        return None

    def snap(self, pos_cm, max_dist_cm: float = 100.0) -> NearestPoly:
        """``nearest_poly`` that raises ``OffMeshError`` when the point is farther than ``max_dist_cm``."""
        hit = self.nearest_poly(pos_cm, max_dist_cm)
        if hit is None:
            near = self.nearest_poly(pos_cm)
            raise OffMeshError(
                f"point {np.asarray(pos_cm, dtype=float).tolist()} is {near.dist_cm:.1f} cm from the mesh "
                f"(allowed {max_dist_cm} cm)"
            )
        return hit

    def locate_xy(self, xy, z_cm=None, tol_cm: float | None = None) -> np.ndarray:
        """Polygon containing each (x, y) point (closed, tolerance ``tol_cm``, default ``eps_cm``), ``-1``
        outside; ``xy (M, 2)``. Where polygons overlap (layered meshes), the one whose surface height is
        closest to ``z_cm``."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        q, cand = self.grid.candidates(self.grid.cells_of_points(xy))
        inside = points_in_convex_polys(xy[q], self._pxy[cand], self.eps_cm if tol_cm is None else float(tol_cm))
        q, cand = q[inside], cand[inside]
        out = np.full(len(xy), -1, dtype=np.int64)
        if z_cm is None or self.is_planar:
            out[q[::-1]] = cand[::-1]  # first hit wins
            return out
        z = np.broadcast_to(np.asarray(z_cm, dtype=np.float64), (len(xy),))
        dz = np.abs(fan_heights(xy[q], self.poly_xyz[cand]) - z[q])
        order = np.lexsort((-dz, q))  # per point, largest dz first so the smallest is written last
        out[q[order]] = cand[order]
        return out

    def heights_at(self, polys, xy) -> np.ndarray:
        """Surface height of polygons ``polys`` at points ``xy`` (fan-triangle interpolation)."""
        polys = np.asarray(polys, dtype=np.int64).reshape(-1)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return fan_heights(xy, self.poly_xyz[polys])

    def contains_points(self, points_cm, tol_cm: float | None = None) -> np.ndarray:
        """Whether each point ``(M, 3)`` is on the mesh: its (x, y) inside a polygon (tolerance ``tol_cm``,
        default ``eps_cm``) whose surface height is within ``max(tol_cm, 1 cm)`` of its z."""
        pts = np.asarray(points_cm, dtype=np.float64).reshape(-1, 3)
        tol = self.eps_cm if tol_cm is None else float(tol_cm)
        q, cand = self.grid.candidates(self.grid.cells_of_points(pts[:, :2]))
        inside = points_in_convex_polys(pts[q, :2], self._pxy[cand], tol)
        q, cand = q[inside], cand[inside]
        dz = np.abs(fan_heights(pts[q, :2], self.poly_xyz[cand]) - pts[q, 2])
        ok = np.zeros(len(pts), dtype=bool)
        ok[q[dz <= max(tol, 1.0)]] = True
        return ok

    def path_inside(self, points_cm, step_cm: float = 5.0, tol_cm: float | None = None) -> bool:
        """Independent check that a polyline stays on the mesh: every sample taken each ``step_cm`` along its
        segments lies inside a polygon in (x, y) (closed, tolerance ``tol_cm``, default ``10 eps_cm``), and
        its vertices lie on the surface (``contains_points``). Exact for planar meshes; on layered meshes the
        (x, y) test accepts a polygon of any layer."""
        pts = np.asarray(points_cm, dtype=np.float64).reshape(-1, 3)
        if len(pts) == 0:
            return False
        samples = [pts[:1, :2]]
        for a, b in zip(pts[:-1, :2], pts[1:, :2]):
            n = max(1, int(math.ceil(math.hypot(*(b - a)) / step_cm)))
            t = np.linspace(0.0, 1.0, n + 1)[1:, None]
            samples.append(a + t * (b - a))
        tol = 10 * self.eps_cm if tol_cm is None else float(tol_cm)
        on_xy = self.locate_xy(np.concatenate(samples), tol_cm=tol) >= 0
        return bool(np.all(on_xy) and np.all(self.contains_points(pts, tol)))

    def polys_along(self, points_cm) -> list[int]:
        """Polygons crossed by a polyline ``(K, 3)``, in order (planar meshes; see ``segment_polys``)."""
        pts = np.asarray(points_cm, dtype=np.float64).reshape(-1, 3)
        if len(pts) == 1:
            p = self.locate_xy(pts[:, :2], pts[:, 2])[0]
            return [int(p)] if p >= 0 else []
        _, polys = self.segment_polys(pts[:-1, :2], pts[1:, :2])
        return _drop_repeats(polys)

    def segment_polys(self, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Polygons crossed by each segment ``p0[i] -> p1[i]`` (xy), as flat arrays ``(segment, polygon)``
        sorted by segment then by the parameter where the segment enters the polygon.

        Each segment is clipped (Cyrus-Beck, ``geometry.clip_to_halfplanes``) against the polygons of the
        grid cells it passes; a polygon counts when the clipped part is longer than ``eps_cm`` (touching a
        vertex or grazing a corner does not). A polygon listed in several cells appears once."""
        p0 = np.asarray(p0, dtype=np.float64).reshape(-1, 2)
        p1 = np.asarray(p1, dtype=np.float64).reshape(-1, 2)
        seg, cell = self.grid.cells_along_segments(p0, p1, unique=False)
        q, cand = self.grid.candidates(cell)
        seg = seg[q]
        d = p1 - p0
        t_in, t_out = clip_to_halfplanes(
            p0[:, 0].take(seg), p0[:, 1].take(seg), d[:, 0].take(seg), d[:, 1].take(seg),
            self._half_a.take(cand, axis=1), self._half_b.take(cand, axis=1), self._half_c.take(cand, axis=1),
        )
        length = np.hypot(d[:, 0], d[:, 1])[seg]
        tol = self.eps_cm / np.maximum(length, self.eps_cm)
        ok = (t_out - t_in > tol) | ((length <= self.eps_cm) & (t_out >= t_in))
        seg, cand, t_in, t_out = seg[ok], cand[ok], t_in[ok], t_out[ok]
        order = np.lexsort((cand, t_out, t_in, seg))
        seg, cand = seg[order], cand[order]
        # duplicates (a polygon listed in several cells) are adjacent after the sort
        keep = np.r_[True, (cand[1:] != cand[:-1]) | (seg[1:] != seg[:-1])]
        return seg[keep], cand[keep]

    # ------------------------------------------------------------------ sampling
    def random_points(
        self, n: int, seed=None, *, island: int | None = None, polys=None, reachable_from_cm=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points uniformly distributed by surface area (seeded: ``seed`` is an int or a
        ``numpy.random.Generator``) over ``polys``, or one ``island``, or the island reachable from
        ``reachable_from_cm`` (snapped within 100 cm), or the whole mesh.

        A fan triangle ``(a, b, c)`` is picked with probability proportional to its 3D area, then a uniform
        point ``(1 - sqrt(r1)) a + sqrt(r1) (1 - r2) b + sqrt(r1) r2 c``. Returns ``(points (n, 3), polys (n,))``."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        if reachable_from_cm is not None:
            island = int(self.island[self.snap(reachable_from_cm).poly])
        if polys is None:
            polys = self.island_polys(island) if island is not None else np.arange(self.num_polys)
        polys = np.asarray(polys, dtype=np.int64)
        w = self._fan_area[polys]  # (m, N-2)
        cum = np.cumsum(w.reshape(-1))
        if cum[-1] <= 0:
            raise ValueError("the selected polygons have zero area")
        flat = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
        flat = np.minimum(flat, len(cum) - 1)
        row, k = flat // w.shape[1], flat % w.shape[1]
        pz = self.poly_xyz[polys[row]]
        r = np.arange(n)
        a, b, c = pz[r, 0], pz[r, k + 1], pz[r, k + 2]
        r1, r2 = np.sqrt(rng.random(n))[:, None], rng.random(n)[:, None]
        pts = (1 - r1) * a + r1 * (1 - r2) * b + r1 * r2 * c
        return pts, polys[row]

    def largest_island(self) -> int:
        return int(np.argmax(self.island_area_cm2))

    def reachable(self, a_cm, b_cm, snap_cm: float = 100.0) -> bool:
        """Both points snap onto the mesh and lie on the same island."""
        a, b = self.nearest_poly(a_cm, snap_cm), self.nearest_poly(b_cm, snap_cm)
        return a is not None and b is not None and self.island[a.poly] == self.island[b.poly]

    # ------------------------------------------------------------------ queries
    def closest_point_on_island(self, pos_cm, island: int) -> NearestPoly:
        """Closest point to ``pos_cm`` on the polygons of ``island`` (exhaustive, vectorised)."""
        pos = _as_point(pos_cm, "position")
        polys = self.island_polys(island)
        pts, d, over = self._closest_on_polys(pos, polys)
        j = int(np.argmin(d))
        return NearestPoly(int(polys[j]), pts[j], float(d[j]), bool(over[j]))

    def find_path(
        self,
        start_cm,
        goal_cm,
        *,
        snap_cm: float = 100.0,
        method: Literal["auto", "visibility", "corridor"] = "auto",
    ) -> PathResult:
        """Shortest path from ``start_cm`` to ``goal_cm`` over the mesh.

        The start and goal are snapped to the nearest polygon within ``snap_cm`` (3D). Start off the mesh:
        ``no_path``. Goal off the mesh or on another island: ``partial``, leading to the closest point of
        the start's island. ``method``: ``visibility`` (planar meshes: exact Euclidean shortest path in the
        (x, y) projection through the reflex corners, see ``visibility.py``), ``corridor`` (Detour: A* over
        polygons with edge-midpoint nodes, then the funnel), ``auto`` = visibility when the mesh is planar.
        Heights: corners are mesh vertices (their own z), start/goal are on the surface; ``length_cm`` is
        the 3D length of the polyline."""
        start = _as_point(start_cm, "start")
        goal = _as_point(goal_cm, "goal")
        s = self.nearest_poly(start, snap_cm)
        if s is None:
            d = self.nearest_poly(start).dist_cm
            return PathResult(np.zeros((0, 3)), [], "no_path", 0.0, method, f"start is {d:.1f} cm from the mesh (snap_cm={snap_cm})")
        status, reason = "complete", ""
        g = self.nearest_poly(goal, snap_cm)
        if g is None:
            g = self.closest_point_on_island(goal, int(self.island[s.poly]))
            status, reason = "partial", f"goal is off the mesh; path ends at the closest reachable point, {g.dist_cm:.1f} cm from it"
        elif self.island[g.poly] != self.island[s.poly]:
            g = self.closest_point_on_island(goal, int(self.island[s.poly]))
            status, reason = "partial", f"goal is on another island; path ends at the closest reachable point, {g.dist_cm:.1f} cm from it"
        if method == "auto":
            method = "visibility" if self.corners is not None else "corridor"
        if method == "visibility":
            if self.corners is None:
                raise ValueError("the visibility path finder needs a planar mesh (polygons overlap in xy)")
            found = self.corners.shortest_path(s.pos_cm, g.pos_cm, s.poly, g.poly)
            if found is not None:
                pts, polys = found
                return PathResult(pts, polys, status, segment_length_3d(pts), "visibility", reason)
            method = "corridor"  # numerical corner case: fall back to the general path finder
        from .search import astar_corridor, funnel

        corridor = astar_corridor(self._walk_lists(), s.poly, s.pos_cm, g.poly, g.pos_cm)
        pts = funnel(self, corridor, s.pos_cm, g.pos_cm)
        return PathResult(pts, corridor, status, segment_length_3d(pts), "corridor", reason)

    def _walk_lists(self):
        """Python lists (neighbours, portal midpoints, vertices) for the per-step walkers, built once."""
        if self._lists is None:
            from .search import WalkLists

            self._lists = WalkLists.build(self)
        return self._lists

    def raycast(self, start_cm, end_cm, *, start_poly: int | None = None, snap_cm: float = 100.0) -> RaycastResult:
        """Walk the 2D segment ``start -> end`` over the mesh from the start polygon (Detour ``raycast``);
        stops at the first wall. See ``surface.raycast``."""
        from .surface import raycast

        start = _as_point(start_cm, "start")
        end = _as_point(end_cm, "end")
        if start_poly is None:
            start_poly = self.snap(start, snap_cm).poly
        return raycast(self, self._walk_lists(), start, end, int(start_poly))

    def move_along_surface(self, start_cm, end_cm, *, start_poly: int | None = None, snap_cm: float = 100.0) -> MoveResult:
        """Slide from ``start`` towards ``end`` constrained to the mesh (Detour ``moveAlongSurface``)."""
        from .surface import move_along_surface

        start = _as_point(start_cm, "start")
        end = _as_point(end_cm, "end")
        if start_poly is None:
            hit = self.snap(start, snap_cm)
            start_poly, start = hit.poly, hit.pos_cm
        return move_along_surface(self, self._walk_lists(), start, end, int(start_poly))

    def __repr__(self) -> str:
        return (
            f"NavMesh({self.name!r}, {self.num_polys} polys, {self.num_vertices} vertices, {self.num_islands} island(s), "
            f"planar={self.is_planar}, corners={0 if self.corners is None else self.corners.num_corners})"
        )


def _sat_overlap(pa: np.ndarray, pb: np.ndarray, eps: float) -> np.ndarray:
    """Interior overlap of convex polygon pairs ``(M, N, 2)`` by the separating axis theorem: they overlap
    iff on every edge normal of either polygon their projections overlap by more than ``eps * |normal|``."""
    out = np.ones(len(pa), dtype=bool)
    for p, q in ((pa, pb), (pb, pa)):
        e = np.roll(p, -1, axis=1) - p
        nrm = np.stack([-e[..., 1], e[..., 0]], axis=-1)  # (M, N, 2) axes (zero for padding edges)
        proj_p = np.einsum("mkd,mjd->mkj", nrm, p)
        proj_q = np.einsum("mkd,mjd->mkj", nrm, q)
        tol = eps * np.linalg.norm(nrm, axis=-1)
        sep = (proj_p.max(axis=2) <= proj_q.min(axis=2) + tol) | (proj_q.max(axis=2) <= proj_p.min(axis=2) + tol)
        sep &= np.linalg.norm(nrm, axis=-1) > 0
        out &= ~np.any(sep, axis=1)
    return out


def _py_contains(xy: list, x: float, y: float, eps: float) -> bool:
    """Point in CCW convex polygon (padded Python list), closed with tolerance ``eps``."""
    n = len(xy)
    for i in range(n):
        ax, ay = xy[i]
        bx, by = xy[i + 1 if i + 1 < n else 0]
        ex, ey = bx - ax, by - ay
        c = ex * (y - ay) - ey * (x - ax)
        if c < 0.0 and c * c > eps * eps * (ex * ex + ey * ey):
            return False
    return True


def _py_height(xy: list, z: list, n: int, x: float, y: float) -> float:
    """Height at (x, y) in the fan triangle (v0, v_i, v_{i+1}) with the largest minimum barycentric weight."""
    ax, ay = xy[0]
    best_w, best_h = -math.inf, z[0]
    for i in range(1, n - 1):
        bx, by = xy[i]
        cx, cy = xy[i + 1]
        den = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if den == 0.0:
            continue
        wb = ((x - ax) * (cy - ay) - (y - ay) * (cx - ax)) / den
        wc = ((bx - ax) * (y - ay) - (by - ay) * (x - ax)) / den
        wa = 1.0 - wb - wc
        w = min(wa, wb, wc)
        if w > best_w:
            best_w, best_h = w, wa * z[0] + wb * z[i] + wc * z[i + 1]
        if w >= 0.0:
            break
    return best_h


def _drop_repeats(polys) -> list[int]:
    """Remove consecutive repeats from a polygon sequence."""
    a = np.asarray(polys, dtype=np.int64)
    if len(a) == 0:
        return []
    return a[np.concatenate([[True], a[1:] != a[:-1]])].tolist()
