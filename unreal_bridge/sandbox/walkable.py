"""The walkable area of a level: a grid of square cells over free ground, and its polygon-mesh export.

A cell is walkable when no point of it comes within the agent radius of a static obstacle (the obstacles are
inflated by the agent radius and every cell touching them is removed), so any point inside a walkable cell
is a collision-free position for the agent. Only the largest 4-connected region is kept: everything in it
is reachable from everything else.

The mesh is the walkable cells as quads sharing their corner vertices: neighbouring polygons share whole
edges (no T-junctions). Coordinates are the Unreal frame, cm, at ground height.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .collision import ShapeSet

WALKABLE_SCHEMA = "playmill.walkable/1"
SAFETY_MARGIN_CM = 1.0


def _cell_rect_distance(cx0: np.ndarray, cy0: np.ndarray, cell: float, rc: np.ndarray, rh: np.ndarray, co: float,
                        si: float) -> np.ndarray:
    """Distance between square cells (lower-left corners ``cx0, cy0``) and one oriented rectangle (0 if overlapping)."""
    # cell corners (K, 4, 2) and rectangle corners (4, 2)
    offs = np.array([[0.0, 0.0], [cell, 0.0], [cell, cell], [0.0, cell]])
    corners = np.stack([cx0, cy0], axis=-1)[:, None, :] + offs[None]
    ax = np.array([co, si])
    ay = np.array([-si, co])
    local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * rh
    rcorners = rc + local[:, :1] * ax + local[:, 1:] * ay
    # separating axis test on the four axes (cell x, cell y, rect x, rect y)
    sep = np.zeros(len(cx0), dtype=bool)
    for axis in (np.array([1.0, 0.0]), np.array([0.0, 1.0]), ax, ay):
        pc = corners @ axis
        pr = rcorners @ axis
        sep |= (pc.max(axis=1) < pr.min()) | (pc.min(axis=1) > pr.max())
    # point distances: cell corners to the rectangle, rectangle corners to the cells
    rel = corners - rc
    lx = rel @ ax
    ly = rel @ ay
    d1 = np.hypot(np.maximum(np.abs(lx) - rh[0], 0.0), np.maximum(np.abs(ly) - rh[1], 0.0)).min(axis=1)
    qx = np.maximum(np.maximum(cx0[:, None] - rcorners[None, :, 0], rcorners[None, :, 0] - (cx0[:, None] + cell)), 0.0)
    qy = np.maximum(np.maximum(cy0[:, None] - rcorners[None, :, 1], rcorners[None, :, 1] - (cy0[:, None] + cell)), 0.0)
    d2 = np.hypot(qx, qy).min(axis=1)
    return np.where(sep, np.minimum(d1, d2), 0.0)


@dataclass(frozen=True)
class WalkableGrid:
    """Walkable cells: ``free[j, i]`` is the cell ``[x0 + i c, x0 + (i+1) c] x [y0 + j c, y0 + (j+1) c]`` (cm)."""

    origin_cm: tuple[float, float]
    cell_cm: float
    free: np.ndarray
    z_cm: float = 0.0

    @classmethod
    def from_shapes(cls, shapes: ShapeSet, bounds_cm: tuple[float, float, float, float], cell_cm: float,
                    radius_cm: float, keep_largest: bool = True) -> "WalkableGrid":
        """Cells within ``bounds_cm`` farther than ``radius_cm`` (+1 cm) from every shape."""
        x0, y0, x1, y1 = (float(v) for v in bounds_cm)
        nx = int(np.floor((x1 - x0) / cell_cm + 1e-9))
        ny = int(np.floor((y1 - y0) / cell_cm + 1e-9))
        free = np.ones((ny, nx), dtype=bool)
        reach = radius_cm + SAFETY_MARGIN_CM

        def window(cx: float, cy: float, ext: float) -> tuple[slice, slice] | None:
            i0 = max(0, int(np.floor((cx - ext - x0) / cell_cm)))
            i1 = min(nx, int(np.ceil((cx + ext - x0) / cell_cm)))
            j0 = max(0, int(np.floor((cy - ext - y0) / cell_cm)))
            j1 = min(ny, int(np.ceil((cy + ext - y0) / cell_cm)))
            if i0 >= i1 or j0 >= j1:
                return None
            return slice(j0, j1), slice(i0, i1)

        for k in range(len(shapes.rect_c)):
            rc, rh = shapes.rect_c[k], shapes.rect_h[k]
            win = window(rc[0], rc[1], float(shapes.rect_bound[k]) + reach)
            if win is None:
                continue
            jj, ii = np.mgrid[win[0], win[1]]
            d = _cell_rect_distance(x0 + ii.ravel() * cell_cm, y0 + jj.ravel() * cell_cm, cell_cm, rc, rh,
                                    float(shapes.rect_cos[k]), float(shapes.rect_sin[k]))
            free[win] &= (d >= reach).reshape(jj.shape)
        for k in range(len(shapes.circ_c)):
            cc, r = shapes.circ_c[k], float(shapes.circ_r[k])
            win = window(cc[0], cc[1], r + reach)
            if win is None:
                continue
            jj, ii = np.mgrid[win[0], win[1]]
            lo_x, lo_y = x0 + ii * cell_cm, y0 + jj * cell_cm
            qx = np.maximum(np.maximum(lo_x - cc[0], cc[0] - (lo_x + cell_cm)), 0.0)
            qy = np.maximum(np.maximum(lo_y - cc[1], cc[1] - (lo_y + cell_cm)), 0.0)
            free[win] &= np.hypot(qx, qy) - r >= reach
        if keep_largest and free.any():
            from scipy import ndimage  # local import: keeps `import unreal_bridge` light

            labels, n = ndimage.label(free)
            if n > 1:
                sizes = np.bincount(labels.ravel())
                sizes[0] = 0
                free = labels == int(np.argmax(sizes))
        free.setflags(write=False)
        return cls((x0, y0), float(cell_cm), free)

    # ------------------------------------------------------------------ queries

    @property
    def n_cells(self) -> int:
        return int(self.free.sum())

    def cell_corners_cm(self) -> np.ndarray:
        """Lower-left corners ``(K, 2)`` of the walkable cells, row-major (y, then x)."""
        jj, ii = np.nonzero(self.free)
        return np.stack([self.origin_cm[0] + ii * self.cell_cm, self.origin_cm[1] + jj * self.cell_cm], axis=1)

    def contains(self, points_cm: np.ndarray) -> np.ndarray:
        """Whether each point ``(P, 2)`` lies in a walkable cell."""
        p = np.asarray(points_cm, dtype=np.float64).reshape(-1, 2)
        i = np.floor((p[:, 0] - self.origin_cm[0]) / self.cell_cm).astype(np.int64)
        j = np.floor((p[:, 1] - self.origin_cm[1]) / self.cell_cm).astype(np.int64)
        ny, nx = self.free.shape
        ok = (i >= 0) & (i < nx) & (j >= 0) & (j < ny)
        out = np.zeros(len(p), dtype=bool)
        out[ok] = self.free[j[ok], i[ok]]
        return out

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` points ``(n, 2)`` uniformly distributed over the walkable area."""
        corners = self.cell_corners_cm()
        if len(corners) == 0:
            raise RuntimeError("the level has no walkable cell")
        idx = rng.integers(len(corners), size=n)
        return corners[idx] + rng.uniform(0.0, self.cell_cm, (n, 2))

    def mesh(self) -> tuple[np.ndarray, list[list[int]]]:
        """``(vertices float64 [N, 3] cm, polygons)``: one quad per walkable cell, corners shared.

        Each polygon lists its corners counter-clockwise when looking down from +Z in the (x, y) plane as
        plotted with x to the right and y up: (x0, y0), (x1, y0), (x1, y1), (x0, y1)."""
        ny, nx = self.free.shape
        used = np.zeros((ny + 1, nx + 1), dtype=bool)
        used[:-1, :-1] |= self.free
        used[:-1, 1:] |= self.free
        used[1:, :-1] |= self.free
        used[1:, 1:] |= self.free
        index = np.full(used.shape, -1, dtype=np.int64)
        vj, vi = np.nonzero(used)
        index[vj, vi] = np.arange(len(vj))
        verts = np.stack([self.origin_cm[0] + vi * self.cell_cm, self.origin_cm[1] + vj * self.cell_cm,
                          np.full(len(vj), self.z_cm)], axis=1).astype(np.float64)
        jj, ii = np.nonzero(self.free)
        quads = np.stack([index[jj, ii], index[jj, ii + 1], index[jj + 1, ii + 1], index[jj + 1, ii]], axis=1)
        return verts, quads.tolist()
