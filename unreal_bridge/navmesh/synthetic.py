"""Deterministic synthetic meshes for tests and benchmarks (Unreal frame, cm)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def grid_mesh(
    blocked: np.ndarray,
    cell_cm: float = 100.0,
    *,
    origin_cm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    triangles: bool = True,
    height_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, list[list[int]]]:
    """Walkable grid of square cells: ``blocked[iy, ix]`` True removes cell ``(ix, iy)``.

    Cell ``(ix, iy)`` spans ``[x0 + ix c, x0 + (ix + 1) c] x [y0 + iy c, y0 + (iy + 1) c]``; it becomes one quad
    or two triangles (diagonal alternating with the cell parity, like a Recast tile). Unused vertices are
    dropped. ``height_fn(x, y) -> z`` gives a non-flat surface. Returns ``(vertices (V, 3), polygons)``."""
    blocked = np.asarray(blocked, dtype=bool)
    ny, nx = blocked.shape
    xs = origin_cm[0] + cell_cm * np.arange(nx + 1)
    ys = origin_cm[1] + cell_cm * np.arange(ny + 1)
    gx, gy = np.meshgrid(xs, ys)  # (ny+1, nx+1)
    gz = np.full_like(gx, origin_cm[2]) if height_fn is None else origin_cm[2] + height_fn(gx, gy)
    verts = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)

    def vid(ix, iy):
        return iy * (nx + 1) + ix

    iy, ix = np.nonzero(~blocked)
    a, b, c, d = vid(ix, iy), vid(ix + 1, iy), vid(ix + 1, iy + 1), vid(ix, iy + 1)
    if triangles:
        even = (ix + iy) % 2 == 0
        t1 = np.where(even[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
        t2 = np.where(even[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
        polys = np.stack([t1, t2], axis=1).reshape(-1, 3)
    else:
        polys = np.stack([a, b, c, d], axis=1)
    used, inv = np.unique(polys, return_inverse=True)
    return verts[used], inv.reshape(polys.shape).tolist()


def zigzag_blocked(cells: int, wall_every: int, gap: int) -> np.ndarray:
    """``cells x cells`` mask with walls (one cell thick) on rows ``wall_every, 2 wall_every, ...``; wall k
    leaves a ``gap`` of cells at the right end when k is even and at the left end when odd (a zig-zag)."""
    blocked = np.zeros((cells, cells), dtype=bool)
    for k, row in enumerate(range(wall_every, cells, wall_every)):
        if k % 2 == 0:
            blocked[row, : cells - gap] = True
        else:
            blocked[row, gap:] = True
    return blocked


def zigzag_grid(
    cells: int = 100, wall_every: int = 10, gap: int = 33, cell_cm: float = 100.0, *, origin_cm=(0.0, 0.0, 0.0)
) -> tuple[np.ndarray, list[list[int]]]:
    """Zig-zag corridor grid of triangles. Defaults: 100 x 100 cells with 9 walls: 18,794 triangles;
    ``zigzag_grid(32, 8, 11)``: 1,922 triangles."""
    return grid_mesh(zigzag_blocked(cells, wall_every, gap), cell_cm, origin_cm=origin_cm)


ZIGZAG_SMALL = dict(cells=32, wall_every=8, gap=11)  # 1,922 triangles
ZIGZAG_LARGE = dict(cells=100, wall_every=10, gap=33)  # 18,794 triangles
