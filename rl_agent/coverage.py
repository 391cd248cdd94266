"""Coverage on a grid over the navigable area, and position-heading visit counts across episodes.

:class:`CoverageGrid` rasterises a walkable mesh (``(vertices [N, 3] cm, polygons)``, Unreal frame, e.g.
``SandboxWorld.walkable_mesh()`` or a navmesh) onto square cells of ``cell_cm``: a cell is *navigable* when a
walkable polygon covers its centre, or, for polygons smaller than a cell, contains the polygon's centroid.
Heights are ignored (one floor). A world without a walkable mesh gets an unbounded grid: every cell counts as
navigable and coverage fractions are unknown (NaN).

:class:`VisitHistory` counts, per scene key, in how many past episodes each (cell, heading sector) bin was
visited; the trajectory-novelty reward reads it (:mod:`rl_agent.rewards`).
"""

from __future__ import annotations

import math
from typing import Hashable, Sequence

import numpy as np


class CoverageGrid:
    """Which navigable cells the agent has covered this episode (cells of ``cell_cm``, Unreal frame, cm).

    ``navigable``: ``bool[ny, nx]`` with cell ``(j, i)`` spanning ``[x0 + i c, x0 + (i+1) c] x [y0 + j c, ...]``,
    or None for an unbounded grid."""

    def __init__(self, cell_cm: float, origin_cm: tuple[float, float] = (0.0, 0.0), navigable: np.ndarray | None = None) -> None:
        if not (cell_cm > 0 and math.isfinite(cell_cm)):
            raise ValueError(f"CoverageGrid: cell_cm={cell_cm!r} must be a positive number")
        self.cell_cm = float(cell_cm)
        self.origin_cm = (float(origin_cm[0]), float(origin_cm[1]))
        self.navigable = None if navigable is None else np.asarray(navigable, dtype=bool)
        self._covered = None if navigable is None else np.zeros_like(self.navigable)
        self._covered_set: set[tuple[int, int]] = set()
        self.n_covered = 0

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_mesh(cls, vertices: np.ndarray, polygons: Sequence[Sequence[int]], cell_cm: float) -> "CoverageGrid":
        """Rasterise a walkable polygon mesh onto cells of ``cell_cm`` (see the module docstring)."""
        verts = np.asarray(vertices, dtype=np.float64)
        if verts.ndim != 2 or verts.shape[1] < 2 or len(verts) == 0 or not len(polygons):
            raise ValueError("CoverageGrid.from_mesh: the walkable mesh is empty")
        xy = verts[:, :2]
        x0, y0 = np.floor(xy.min(axis=0) / cell_cm) * cell_cm
        x1, y1 = np.ceil(xy.max(axis=0) / cell_cm) * cell_cm
        nx, ny = max(1, int(round((x1 - x0) / cell_cm))), max(1, int(round((y1 - y0) / cell_cm)))
        nav = np.zeros((ny, nx), dtype=bool)
        # the common case (sandbox quads, small navmesh triangles): polygons of equal vertex count, vectorised
        by_len: dict[int, list[int]] = {}
        for k, poly in enumerate(polygons):
            by_len.setdefault(len(poly), []).append(k)
        big: list[np.ndarray] = []
        for n, ks in by_len.items():
            if n < 3:
                continue
            idx = np.asarray([polygons[k] for k in ks], dtype=np.int64)
            pts = xy[idx]  # (P, n, 2)
            ext = pts.max(axis=1) - pts.min(axis=1)
            small = np.all(ext <= cell_cm, axis=1)
            c = pts[small].mean(axis=1)
            i = np.clip(np.floor((c[:, 0] - x0) / cell_cm).astype(np.int64), 0, nx - 1)
            j = np.clip(np.floor((c[:, 1] - y0) / cell_cm).astype(np.int64), 0, ny - 1)
            nav[j, i] = True
            big.extend(pts[~small])
        for pts in big:  # large polygons: cell centres inside the polygon
            lo = np.floor((pts.min(axis=0) - (x0, y0)) / cell_cm).astype(int)
            hi = np.ceil((pts.max(axis=0) - (x0, y0)) / cell_cm).astype(int)
            ii, jj = np.meshgrid(np.arange(max(lo[0], 0), min(hi[0], nx)), np.arange(max(lo[1], 0), min(hi[1], ny)))
            centres = np.stack([x0 + (ii.ravel() + 0.5) * cell_cm, y0 + (jj.ravel() + 0.5) * cell_cm], axis=1)
            inside = _points_in_polygon(centres, pts)
            nav[jj.ravel()[inside], ii.ravel()[inside]] = True
        return cls(cell_cm, (float(x0), float(y0)), nav)

    @classmethod
    def for_world(cls, world: object, cell_cm: float) -> "CoverageGrid":
        """From ``world.walkable_mesh()`` when the world has one, else an unbounded grid."""
        mesh_fn = getattr(world, "walkable_mesh", None)
        if callable(mesh_fn):
            verts, polys = mesh_fn()
            return cls.from_mesh(verts, polys, cell_cm)
        return cls(cell_cm)

    def fresh(self) -> "CoverageGrid":
        """The same grid with nothing covered (for a new episode in the same scene)."""
        return CoverageGrid(self.cell_cm, self.origin_cm, self.navigable)

    # ------------------------------------------------------------------ queries

    @property
    def bounded(self) -> bool:
        return self.navigable is not None

    @property
    def n_navigable(self) -> int:
        """Navigable cells (0 for an unbounded grid)."""
        return 0 if self.navigable is None else int(self.navigable.sum())

    @property
    def fraction(self) -> float:
        """Covered / navigable cells in [0, 1]; NaN for an unbounded grid."""
        n = self.n_navigable
        return float(self.n_covered / n) if n else float("nan")

    def cell_of(self, x_cm: float, y_cm: float) -> tuple[int, int]:
        """``(j, i)`` of the cell containing the point (may be outside a bounded grid)."""
        return (int(math.floor((y_cm - self.origin_cm[1]) / self.cell_cm)),
                int(math.floor((x_cm - self.origin_cm[0]) / self.cell_cm)))

    def is_navigable(self, cell: tuple[int, int]) -> bool:
        if self.navigable is None:
            return True
        j, i = cell
        ny, nx = self.navigable.shape
        return 0 <= j < ny and 0 <= i < nx and bool(self.navigable[j, i])

    def is_covered(self, cell: tuple[int, int]) -> bool:
        if self._covered is None:
            return cell in self._covered_set
        j, i = cell
        ny, nx = self._covered.shape
        return 0 <= j < ny and 0 <= i < nx and bool(self._covered[j, i])

    def visit(self, x_cm: float, y_cm: float) -> int:
        """Mark the cell under the point covered; returns 1 when it is a navigable cell covered for the first
        time this episode, else 0."""
        cell = self.cell_of(x_cm, y_cm)
        if not self.is_navigable(cell) or self.is_covered(cell):
            return 0
        if self._covered is None:
            self._covered_set.add(cell)
        else:
            self._covered[cell] = True
        self.n_covered += 1
        return 1

    def probe_state(self, x_cm: float, y_cm: float, yaw_deg: float, offsets_deg: np.ndarray,
                    dists_cm: Sequence[float]) -> np.ndarray:
        """For each direction ``yaw + offset`` and distance: 1 if the cell there was covered this episode,
        0 if navigable and not covered, -1 if not navigable. ``float32[len(offsets) * len(dists)]``."""
        out = np.empty((len(offsets_deg), len(dists_cm)), dtype=np.float32)
        rad = np.radians(yaw_deg + np.asarray(offsets_deg, dtype=np.float64))
        c, s = np.cos(rad), np.sin(rad)
        for a in range(len(rad)):
            for b, d in enumerate(dists_cm):
                cell = self.cell_of(x_cm + c[a] * d, y_cm + s[a] * d)
                out[a, b] = 1.0 if self.is_covered(cell) else (0.0 if self.is_navigable(cell) else -1.0)
        return out.ravel()


class VisitHistory:
    """Per scene key (e.g. ``(scene, seed)``): in how many past episodes each position-heading bin was visited.

    A bin is ``(cell j, cell i, heading sector)`` with ``heading_bins`` sectors of ``360 / heading_bins``
    degrees. Call :meth:`begin` at the start of an episode, :meth:`visit` every frame (it returns the past
    count of a bin the first time the bin is entered this episode, None otherwise) and :meth:`end` when the
    episode is over (which adds this episode's bins to the history)."""

    def __init__(self, cell_cm: float, heading_bins: int) -> None:
        if heading_bins < 1:
            raise ValueError(f"VisitHistory: heading_bins={heading_bins} must be >= 1")
        self.cell_cm = float(cell_cm)
        self.heading_bins = int(heading_bins)
        self._counts: dict[Hashable, dict[tuple[int, int, int], int]] = {}
        self._key: Hashable | None = None
        self._episode: set[tuple[int, int, int]] = set()

    def bin_of(self, x_cm: float, y_cm: float, yaw_deg: float) -> tuple[int, int, int]:
        h = int(math.floor(((yaw_deg % 360.0) + 180.0 / self.heading_bins) / (360.0 / self.heading_bins))) % self.heading_bins
        return (int(math.floor(y_cm / self.cell_cm)), int(math.floor(x_cm / self.cell_cm)), h)

    def begin(self, key: Hashable) -> None:
        self._key = key
        self._episode = set()
        self._counts.setdefault(key, {})

    def visit(self, x_cm: float, y_cm: float, yaw_deg: float) -> int | None:
        if self._key is None:
            raise RuntimeError("VisitHistory.visit called before begin(key)")
        b = self.bin_of(x_cm, y_cm, yaw_deg)
        if b in self._episode:
            return None
        self._episode.add(b)
        return self._counts[self._key].get(b, 0)

    def end(self) -> None:
        """Add the bins of the current episode to the history (idempotent until the next :meth:`begin`)."""
        if self._key is None:
            return
        counts = self._counts[self._key]
        for b in self._episode:
            counts[b] = counts.get(b, 0) + 1
        self._episode = set()

    def clear(self) -> None:
        """Forget every past episode (a fresh history)."""
        self._counts.clear()
        self._key = None
        self._episode = set()

    def episodes_visited(self, key: Hashable, b: tuple[int, int, int]) -> int:
        return self._counts.get(key, {}).get(b, 0)

    @property
    def n_keys(self) -> int:
        return len(self._counts)


def _points_in_polygon(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon for ``points (P, 2)`` and a simple polygon ``(n, 2)``."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x0, y0 = poly[:, 0][None], poly[:, 1][None]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    cond = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return np.count_nonzero(cond & (x < xint), axis=1) % 2 == 1
