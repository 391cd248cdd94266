"""A uniform 2D grid over polygon bounding boxes (CSR arrays), for batched point location and for listing
the polygons a segment crosses. Everything is vectorised with numpy; no per-polygon Python loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PolyGrid:
    """Cells of side ``cell_cm`` from ``origin_xy``; cell ``(ix, iy)`` has id ``iy * nx + ix`` and lists the
    polygons whose bounding box (grown by ``margin_cm``) overlaps it: ``polys[start[c]:start[c + 1]]``."""

    origin_xy: np.ndarray
    cell_cm: float
    nx: int
    ny: int
    start: np.ndarray
    polys: np.ndarray

    @staticmethod
    def build(bbox_min: np.ndarray, bbox_max: np.ndarray, margin_cm: float, cells_per_poly: float = 1.0) -> "PolyGrid":
        """Grid with about ``cells_per_poly`` cells per polygon, square cells, at most ``4 P`` cells."""
        p = len(bbox_min)
        lo = bbox_min.min(axis=0) - margin_cm
        hi = bbox_max.max(axis=0) + margin_cm
        span = np.maximum(hi - lo, 1e-9)
        cell = float(np.sqrt(span[0] * span[1] / max(1.0, cells_per_poly * p)))
        # never smaller than the median polygon, so a polygon covers O(1) cells
        med = float(np.median(np.max(bbox_max - bbox_min, axis=1))) if p else 1.0
        cell = max(cell, 0.5 * med, 1e-6)
        nx = int(np.ceil(span[0] / cell)) or 1
        ny = int(np.ceil(span[1] / cell)) or 1
        i0 = np.clip(np.floor((bbox_min - margin_cm - lo) / cell).astype(np.int64), 0, [nx - 1, ny - 1])
        i1 = np.clip(np.floor((bbox_max + margin_cm - lo) / cell).astype(np.int64), 0, [nx - 1, ny - 1])
        wx, wy = i1[:, 0] - i0[:, 0] + 1, i1[:, 1] - i0[:, 1] + 1
        count = wx * wy
        poly_of = np.repeat(np.arange(p, dtype=np.int64), count)
        k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        ix = i0[poly_of, 0] + k % wx[poly_of]
        iy = i0[poly_of, 1] + k // wx[poly_of]
        cell_id = iy * nx + ix
        order = np.argsort(cell_id, kind="stable")
        start = np.zeros(nx * ny + 1, dtype=np.int64)
        np.add.at(start, cell_id + 1, 1)
        return PolyGrid(lo, cell, nx, ny, np.cumsum(start), poly_of[order].astype(np.int32))

    def cells_of_points(self, xy: np.ndarray) -> np.ndarray:
        """Cell id of each point, ``-1`` outside the grid."""
        f = np.floor((xy - self.origin_xy) / self.cell_cm)
        ok = (f[:, 0] >= 0) & (f[:, 0] < self.nx) & (f[:, 1] >= 0) & (f[:, 1] < self.ny)
        f = np.where(ok[:, None], f, 0).astype(np.int64)
        return np.where(ok, f[:, 1] * self.nx + f[:, 0], -1)

    def candidates(self, cell_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All ``(query index, polygon)`` pairs for queries in cells ``cell_ids`` (``-1`` gives none)."""
        c = np.where(cell_ids >= 0, cell_ids, 0)
        n = np.where(cell_ids >= 0, self.start[c + 1] - self.start[c], 0)
        q = np.repeat(np.arange(len(cell_ids)), n)
        k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        return q, self.polys[self.start[c[q]] + k]

    def cells_along_segments(self, p0: np.ndarray, p1: np.ndarray, unique: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(segment index, cell id)`` pairs of the cells each segment passes through (supercover).

        The segment ``p0 + t (p1 - p0)`` crosses vertical grid lines at ``t_k = (k - c0_x) / (c1_x - c0_x)``
        for the integers ``k`` strictly between its cell coordinates ``c0_x, c1_x`` (likewise for y); the
        cells are those of the midpoints between consecutive parameters of ``{0, t_k..., 1}``. With
        ``unique=False`` a cell may be listed twice for a segment (cheaper when repeats are harmless)."""
        s = len(p0)
        c0 = (p0 - self.origin_xy) / self.cell_cm
        c1 = (p1 - self.origin_xy) / self.cell_cm
        dc = c1 - c0
        ar = np.arange(s)
        ts, segs = [np.zeros(s), np.ones(s)], [ar, ar]
        for axis in (0, 1):
            a = c0[:, axis]
            first = np.floor(np.minimum(a, c1[:, axis])) + 1
            n = np.maximum(0, np.ceil(np.maximum(a, c1[:, axis])) - first).astype(np.int64)
            total = int(n.sum())
            if total == 0:
                continue
            seg = np.repeat(ar, n)
            k = first[seg] + (np.arange(total) - np.repeat(np.cumsum(n) - n, n))
            ts.append((k - a[seg]) / dc[seg, axis])
            segs.append(seg)
        t = np.concatenate(ts)
        seg = np.concatenate(segs)
        order = np.argsort(seg + 0.5 * t)  # by segment, then by parameter (t in [0, 1])
        t, seg = t[order], seg[order]
        same = seg[1:] == seg[:-1]
        sm = seg[1:][same]
        tm = 0.5 * (t[1:] + t[:-1])[same]
        x = (c0[sm, 0] + tm * dc[sm, 0]).astype(np.int64)
        y = (c0[sm, 1] + tm * dc[sm, 1]).astype(np.int64)  # truncation = floor for the in-grid (>= 0) cells
        ok = (x >= 0) & (x < self.nx) & (y >= 0) & (y < self.ny) & (c0[sm, 0] + tm * dc[sm, 0] >= 0) & (
            c0[sm, 1] + tm * dc[sm, 1] >= 0
        )
        sm, cells = sm[ok], (y * self.nx + x)[ok]
        if not unique:
            return sm, cells
        key = np.unique(sm.astype(np.int64) * (self.nx * self.ny + 1) + cells)
        return key // (self.nx * self.ny + 1), key % (self.nx * self.ny + 1)
