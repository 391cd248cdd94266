"""Triangle meshes in NumPy, in the Panda3D render frame (right-handed, Z up, X right, Y forward, metres).

:class:`MeshBuilder` accumulates primitives (boxes, subdivided rectangles, cylinders/cones, blobs, ribbons,
discs) into one vertex/index buffer per material and spatial tile, so a whole level renders with a few dozen
draw calls. Every primitive states its intended normals; triangles are wound counter-clockwise seen from the
side the normal points to (Panda3D's front face) by :func:`orient_triangles`. No Panda3D import here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGBA = tuple[float, float, float, float]


def orient_triangles(pos: np.ndarray, nrm: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Flip the triangles whose winding disagrees with the mean of their vertex normals."""
    a, b, c = pos[idx[:, 0]], pos[idx[:, 1]], pos[idx[:, 2]]
    geo = np.cross(b - a, c - a)
    want = nrm[idx[:, 0]] + nrm[idx[:, 1]] + nrm[idx[:, 2]]
    flip = np.einsum("ij,ij->i", geo, want) < 0
    out = idx.copy()
    out[flip] = idx[flip][:, [0, 2, 1]]
    return out


def rotation_z(heading_deg: float) -> np.ndarray:
    """3x3 rotation about +Z by ``heading_deg`` (Panda3D heading: counter-clockwise seen from above)."""
    h = np.radians(heading_deg)
    c, s = np.cos(h), np.sin(h)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class Mesh:
    """Flat arrays of one mesh: positions, normals, RGBA colours, UVs (float32) and triangle indices (uint32)."""

    pos: np.ndarray
    nrm: np.ndarray
    col: np.ndarray
    uv: np.ndarray
    idx: np.ndarray

    @property
    def n_triangles(self) -> int:
        return len(self.idx)


def _icosphere(subdiv: int) -> tuple[np.ndarray, np.ndarray]:
    t = (1.0 + 5 ** 0.5) / 2.0
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                  [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=np.float64)
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6],
         [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
         [8, 6, 7], [9, 8, 1]]
    verts = [tuple(x) for x in v / np.linalg.norm(v, axis=1, keepdims=True)]
    faces = [tuple(x) for x in f]
    for _ in range(subdiv):
        cache: dict[tuple[int, int], int] = {}

        def mid(i: int, j: int) -> int:
            key = (min(i, j), max(i, j))
            if key not in cache:
                m = (np.array(verts[i]) + np.array(verts[j])) / 2.0
                verts.append(tuple(m / np.linalg.norm(m)))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, dtype=np.int64)


_ICO = {k: _icosphere(k) for k in (0, 1, 2)}


class MeshBuilder:
    """Accumulates primitives into per-``(material, tile)`` meshes; ``tile_m`` is the spatial tile size.

    Colours are RGBA in [0, 1] (the material tint already multiplied in by the caller)."""

    def __init__(self, tile_m: float = 40.0) -> None:
        self.tile_m = float(tile_m)
        self._parts: dict[tuple[str, int, int], list[tuple[np.ndarray, ...]]] = {}

    # ------------------------------------------------------------------ core

    def add(self, material: str, pos: np.ndarray, nrm: np.ndarray, uv: np.ndarray, color: RGBA | np.ndarray,
            idx: np.ndarray, tile_by: np.ndarray | None = None) -> None:
        """Add raw triangles (already in the render frame); winding is fixed from the normals."""
        pos = np.asarray(pos, dtype=np.float64)
        nrm = np.asarray(nrm, dtype=np.float64)
        col = np.broadcast_to(np.asarray(color, dtype=np.float64), (len(pos), 4))
        idx = orient_triangles(pos, nrm, np.asarray(idx, dtype=np.int64))
        centre = pos.mean(axis=0) if tile_by is None else tile_by
        key = (material, int(np.floor(centre[0] / self.tile_m)), int(np.floor(centre[1] / self.tile_m)))
        self._parts.setdefault(key, []).append((pos, nrm, np.asarray(uv, dtype=np.float64), col, idx))

    def merge(self, other: "MeshBuilder", offset_m: np.ndarray, heading_deg: float = 0.0, scale: float = 1.0) -> None:
        """Add every mesh of ``other`` (built in a local frame) rotated by ``heading_deg``, scaled, then moved."""
        rot = rotation_z(heading_deg)
        off = np.asarray(offset_m, dtype=np.float64)
        for (material, _, _), parts in other._parts.items():
            for pos, nrm, uv, col, idx in parts:
                self.add(material, pos @ rot.T * scale + off, nrm @ rot.T, uv, col, idx, tile_by=off)

    def build(self) -> list[tuple[str, Mesh]]:
        """One :class:`Mesh` per ``(material, tile)``, in a deterministic order."""
        out = []
        for key in sorted(self._parts):
            parts = self._parts[key]
            offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
            out.append((key[0], Mesh(
                np.concatenate([p[0] for p in parts]).astype(np.float32),
                np.concatenate([p[1] for p in parts]).astype(np.float32),
                np.concatenate([p[3] for p in parts]).astype(np.float32),
                np.concatenate([p[2] for p in parts]).astype(np.float32),
                np.concatenate([p[4] + o for p, o in zip(parts, offsets)]).astype(np.uint32),
            )))
        return out

    # ------------------------------------------------------------------ primitives

    def rect(self, material: str, center: np.ndarray, half: tuple[float, float], heading_deg: float, uv_repeat: tuple[float, float],
             color: RGBA, facing_down: bool = False, max_cell_m: float = 4.0) -> None:
        """A horizontal rectangle at ``center`` (x, y, z), subdivided into cells of at most ``max_cell_m``.

        UVs: u along the rectangle's local X, v along its local Y, ``uv_repeat`` metres per repeat, measured
        from the rectangle's corner (so textures line up with the rectangle, e.g. a road's markings)."""
        hx, hy = float(half[0]), float(half[1])
        nx = max(1, int(np.ceil(2 * hx / max_cell_m)))
        ny = max(1, int(np.ceil(2 * hy / max_cell_m)))
        gx, gy = np.meshgrid(np.linspace(-hx, hx, nx + 1), np.linspace(-hy, hy, ny + 1))
        local = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1)
        rot = rotation_z(heading_deg)
        pos = local @ rot.T + np.asarray(center, dtype=np.float64)
        uv = np.stack([(gx.ravel() + hx) / uv_repeat[0], (gy.ravel() + hy) / uv_repeat[1]], axis=1)
        nrm = np.tile([0.0, 0.0, -1.0 if facing_down else 1.0], (len(pos), 1))
        i = np.arange(ny)[:, None] * (nx + 1) + np.arange(nx)[None, :]
        i = i.ravel()
        idx = np.concatenate([np.stack([i, i + 1, i + nx + 2], 1), np.stack([i, i + nx + 2, i + nx + 1], 1)])
        self.add(material, pos, nrm, uv, color, idx)

    def box(self, side: str, top: str | None, center: np.ndarray, half: tuple[float, float, float], heading_deg: float,
            uv_repeat: tuple[float, float, float], color: RGBA, bottom: bool = False, max_cell_m: float = 8.0) -> None:
        """A box: four side faces (``side`` material), optional top (``top``) and bottom.

        Side UVs run along each face (u to the right seen from outside, ``uv_repeat[0]`` on the faces normal
        to local Y, ``uv_repeat[1]`` on the faces normal to local X) and up from the box's base (``uv_repeat[2]``).
        Large faces are split into cells of at most ``max_cell_m`` (the software renderer picks one mipmap
        level per triangle)."""
        c = np.asarray(center, dtype=np.float64)
        hx, hy, hz = (float(v) for v in half)
        rot = rotation_z(heading_deg)
        ex, ey, ez = rot[:, 0], rot[:, 1], np.array([0.0, 0.0, 1.0])
        faces = [(-ey, ex, hy, hx, uv_repeat[0]), (ey, -ex, hy, hx, uv_repeat[0]),
                 (ex, ey, hx, hy, uv_repeat[1]), (-ex, -ey, hx, hy, uv_repeat[1])]
        for n, right, dist, half_w, rep_u in faces:
            nu = max(1, int(np.ceil(2 * half_w / max_cell_m)))
            nv = max(1, int(np.ceil(2 * hz / max_cell_m)))
            su, sv = np.meshgrid(np.linspace(-half_w, half_w, nu + 1), np.linspace(-hz, hz, nv + 1))
            pos = c + n * dist + su.ravel()[:, None] * right + sv.ravel()[:, None] * ez
            uv = np.stack([(su.ravel() + half_w) / rep_u, (sv.ravel() + hz) / uv_repeat[2]], axis=1)
            i = (np.arange(nv)[:, None] * (nu + 1) + np.arange(nu)[None, :]).ravel()
            idx = np.concatenate([np.stack([i, i + 1, i + nu + 2], 1), np.stack([i, i + nu + 2, i + nu + 1], 1)])
            self.add(side, pos, np.tile(n, (len(pos), 1)), uv, color, idx, tile_by=c)
        for mat, z_sign in ((top, 1.0), (side if bottom else None, -1.0)):
            if mat is None:
                continue
            corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * (hx, hy)
            pos = c + corners[:, :1] * ex + corners[:, 1:] * ey + ez * hz * z_sign
            rep = uv_repeat[0]
            uv = np.stack([pos[:, 0] / rep, pos[:, 1] / rep], axis=1)
            self.add(mat, pos, np.tile([0.0, 0.0, z_sign], (4, 1)), uv, color, np.array([[0, 1, 2], [0, 2, 3]]), tile_by=c)

    def cylinder(self, material: str, base: np.ndarray, radius_bottom: float, radius_top: float, height: float,
                 segments: int, uv_repeat: tuple[float, float], color: RGBA, cap_top: bool = True) -> None:
        """A vertical cylinder or (truncated) cone standing on ``base``; optional top cap."""
        b = np.asarray(base, dtype=np.float64)
        a = np.linspace(0.0, 2 * np.pi, segments + 1)
        ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)
        slope = (radius_bottom - radius_top) / max(height, 1e-9)
        n = ring + np.array([0.0, 0.0, slope])
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        bottom = b + ring * radius_bottom
        top = b + ring * radius_top + np.array([0.0, 0.0, height])
        pos = np.concatenate([bottom, top])
        circ = 2 * np.pi * max(radius_bottom, radius_top)
        u = a / (2 * np.pi) * max(1.0, np.round(circ / uv_repeat[0]))
        uv = np.concatenate([np.stack([u, np.zeros_like(u)], 1), np.stack([u, np.full_like(u, height / uv_repeat[1])], 1)])
        i = np.arange(segments)
        m = segments + 1
        idx = np.concatenate([np.stack([i, i + 1, i + 1 + m], 1), np.stack([i, i + 1 + m, i + m], 1)])
        self.add(material, pos, np.concatenate([n, n]), uv, color, idx, tile_by=b)
        if cap_top and radius_top > 0:
            centre = b + np.array([0.0, 0.0, height])
            cp = np.concatenate([centre[None], top[:-1]])
            cuv = np.concatenate([[[0.5, 0.5]], 0.5 + 0.5 * ring[:-1, :2]])
            cidx = np.stack([np.zeros(segments, dtype=np.int64), 1 + i, 1 + (i + 1) % segments], 1)
            self.add(material, cp, np.tile([0.0, 0.0, 1.0], (len(cp), 1)), cuv, color, cidx, tile_by=b)

    def blob(self, material: str, center: np.ndarray, radii: tuple[float, float, float], color: RGBA,
             rng: np.random.Generator | None = None, roughness: float = 0.0, subdiv: int = 1,
             uv_repeat: float = 1.5, flat_bottom: bool = False) -> None:
        """A (lumpy) ellipsoid: an icosphere scaled by ``radii``, its radius jittered by ``roughness``."""
        v, f = _ICO[subdiv]
        scale = np.ones(len(v))
        if rng is not None and roughness > 0:
            scale = 1.0 + rng.uniform(-roughness, roughness, len(v))
        unit = v * scale[:, None]
        if flat_bottom:
            unit[:, 2] = np.maximum(unit[:, 2], -0.15)
        pos = np.asarray(center, dtype=np.float64) + unit * np.asarray(radii, dtype=np.float64)
        nrm = unit / np.asarray(radii, dtype=np.float64)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        r = float(np.mean(radii))
        uv = np.stack([(np.arctan2(v[:, 1], v[:, 0]) / np.pi + 1.0) * np.pi * r / uv_repeat,
                       (v[:, 2] + 1.0) * r / uv_repeat], axis=1)
        self.add(material, pos, nrm, uv, color, f, tile_by=np.asarray(center, dtype=np.float64))

    def ribbon(self, material: str, points_xy: np.ndarray, width: float, z: float, closed: bool,
               uv_repeat: tuple[float, float], color: RGBA, max_seg_m: float = 3.0) -> None:
        """A flat strip of ``width`` along a polyline (render frame, metres); u along it, v across."""
        p = np.asarray(points_xy, dtype=np.float64)
        if closed:
            p = np.vstack([p, p[:1]])
        seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        keep = [0]
        for k in range(1, len(p) - 1):
            if cum[k] - cum[keep[-1]] >= max_seg_m:
                keep.append(k)
        keep.append(len(p) - 1)
        p, cum = p[keep], cum[keep]
        t = np.gradient(p, axis=0)
        if closed:
            t[0] = t[-1] = p[1] - p[-2]
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        left = np.stack([-t[:, 1], t[:, 0]], axis=1)
        # split into chunks so that each chunk gets its own spatial tile (culling)
        chunk = 16
        for s0 in range(0, len(p) - 1, chunk):
            s1 = min(len(p), s0 + chunk + 1)
            pl = p[s0:s1] + left[s0:s1] * width / 2
            pr = p[s0:s1] - left[s0:s1] * width / 2
            n = s1 - s0
            pos = np.concatenate([np.column_stack([pl, np.full(n, z)]), np.column_stack([pr, np.full(n, z)])])
            uv = np.concatenate([np.stack([cum[s0:s1] / uv_repeat[0], np.full(n, width / uv_repeat[1])], 1),
                                 np.stack([cum[s0:s1] / uv_repeat[0], np.zeros(n)], 1)])
            i = np.arange(n - 1)
            idx = np.concatenate([np.stack([i, i + 1, i + 1 + n], 1), np.stack([i, i + 1 + n, i + n], 1)])
            self.add(material, pos, np.tile([0.0, 0.0, 1.0], (len(pos), 1)), uv, color, idx)

    def disc(self, material: str, center: np.ndarray, radius: float, segments: int, uv_repeat: float, color: RGBA,
             facing_down: bool = False) -> None:
        """A flat disc facing up (or down) at ``center`` (x, y, z), split into rings so no triangle is too large."""
        c = np.asarray(center, dtype=np.float64)
        rings = max(1, int(np.ceil(radius / 4.0)))
        a = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
        pts = [c[None]]
        for k in range(1, rings + 1):
            rr = radius * k / rings
            pts.append(c + np.stack([rr * np.cos(a), rr * np.sin(a), np.zeros_like(a)], 1))
        pos = np.concatenate(pts)
        uv = pos[:, :2] / uv_repeat
        idx = [np.stack([np.zeros(segments, dtype=np.int64), 1 + np.arange(segments), 1 + (np.arange(segments) + 1) % segments], 1)]
        for k in range(1, rings):
            inner = 1 + (k - 1) * segments + np.arange(segments)
            outer = 1 + k * segments + np.arange(segments)
            inner_n = 1 + (k - 1) * segments + (np.arange(segments) + 1) % segments
            outer_n = 1 + k * segments + (np.arange(segments) + 1) % segments
            idx += [np.stack([inner, outer, outer_n], 1), np.stack([inner, outer_n, inner_n], 1)]
        up = -1.0 if facing_down else 1.0
        self.add(material, pos, np.tile([0.0, 0.0, up], (len(pos), 1)), uv, color, np.concatenate(idx), tile_by=c)
