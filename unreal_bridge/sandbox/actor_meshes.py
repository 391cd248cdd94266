"""Per-frame meshes of the moving actors (NumPy, Panda3D render frame, metres).

Actors are built from boxes. Each box may swing about a horizontal pivot (legs and arms of the walking
figures), then the whole actor is turned to its heading and moved to its position. One vertex buffer per
material holds a group of actors, so a crowd is a single draw call, updated each frame by
:meth:`BoxActors.pose`. Every actor of a group has the same boxes per material (with its own sizes and
colours), so the renderer can fill the buffer with only the actors that may be in view, nearest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frames import CM_PER_PANDA_UNIT
from .geometry import Mesh, orient_triangles

# unit cube without its bottom (never seen from eye height): 5 faces x 4 vertices, with face normals;
# triangles wound from the normals
_FACES = [((1, 0, 0), (0, 1, 0)), ((-1, 0, 0), (0, -1, 0)), ((0, 1, 0), (-1, 0, 0)), ((0, -1, 0), (1, 0, 0)),
          ((0, 0, 1), (1, 0, 0))]
VERTS_PER_BOX = 4 * len(_FACES)


def _unit_cube() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos, nrm, idx = [], [], []
    for n, u in _FACES:
        n, u = np.array(n, float), np.array(u, float)
        v = np.cross(n, u)
        base = len(pos)
        for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            pos.append(n + a * u + b * v)
            nrm.append(n)
        idx += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    p, nn = np.array(pos), np.array(nrm)
    return p, nn, orient_triangles(p, nn, np.array(idx))


_CUBE_POS, _CUBE_NRM, _CUBE_IDX = _unit_cube()


@dataclass(frozen=True)
class Part:
    """One box of an actor (local frame: +Y forward, +X right, Z up, metres).

    ``swing``: factor of the actor's swing angle applied about the X axis through ``pivot``."""

    material: str
    center: tuple[float, float, float]
    half: tuple[float, float, float]
    color: tuple[float, float, float]
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)
    swing: float = 0.0


class BoxActors:
    """A group of actors as one mesh per material; :meth:`pose` places any subset of them for a frame.

    Per frame each box gets one rigid transform (the actor's heading after the box's swing), applied to its
    vertices at once. Actors of a group must have the same number of boxes of each material."""

    def __init__(self, parts_per_actor: list[list[Part]]) -> None:
        self.n = len(parts_per_actor)
        self.materials = sorted({p.material for parts in parts_per_actor for p in parts})
        self._data: dict[str, dict[str, np.ndarray]] = {}
        for mat in self.materials:
            per_actor = [[p for p in parts if p.material == mat] for parts in parts_per_actor]
            if len({len(b) for b in per_actor}) != 1:
                raise ValueError(f"BoxActors: actors differ in their number of {mat!r} boxes")
            local = np.array([[_CUBE_POS * np.array(p.half) + np.array(p.center) for p in b] for b in per_actor])  # (N, B, V, 3)
            pivot = np.array([[p.pivot for p in b] for b in per_actor])  # (N, B, 3)
            self._data[mat] = {
                "local": local,
                "rel": (local - pivot[:, :, None, :]).astype(np.float32),
                "pivot": pivot,
                "swing": np.array([[p.swing for p in b] for b in per_actor]),
                "col": np.repeat(np.array([[np.append(p.color, 1.0) for p in b] for b in per_actor], np.float32), VERTS_PER_BOX, axis=1),
            }

    def boxes(self, mat: str) -> int:
        """Boxes of material ``mat`` per actor."""
        return self._data[mat]["swing"].shape[1]

    def rest_meshes(self) -> dict[str, Mesh]:
        """All actors in their local frames (for creating the vertex buffers), actor after actor."""
        out = {}
        for mat, d in self._data.items():
            n_box = d["swing"].size
            uv = np.tile(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32), (len(_FACES) * n_box, 1))
            out[mat] = Mesh(d["local"].reshape(-1, 3).astype(np.float32), np.tile(_CUBE_NRM, (n_box, 1)).astype(np.float32),
                            d["col"].reshape(-1, 4), uv,
                            np.concatenate([_CUBE_IDX + VERTS_PER_BOX * k for k in range(n_box)]).astype(np.uint32))
        return out

    def pose(self, order: np.ndarray, pos_m: np.ndarray, heading_deg: np.ndarray, swing_rad: np.ndarray,
             lift_m: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Positions, normals (float32 ``(V, 3)``) and colours (``(V, 4)``) per material of the actors ``order``
        (indices, in buffer order) placed at ``pos_m`` (N, 3) with headings (deg), swing angles (rad, about each
        box's pivot) and vertical lift (m), all indexed by actor."""
        order = np.asarray(order, dtype=np.int64)
        h = np.radians(np.asarray(heading_deg, dtype=np.float64))[order]
        out = {}
        for mat, d in self._data.items():
            ang = d["swing"][order] * np.asarray(swing_rad, dtype=np.float64)[order, None]  # (K, B)
            ca, sa = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
            ch = np.cos(h).astype(np.float32)[:, None]
            sh = np.sin(h).astype(np.float32)[:, None]
            # rotation: heading about Z after the swing about X; rows (r00 r01 r02), (r10 r11 r12), (0 r21 r22)
            r00, r01, r02 = ch, -sh * ca, sh * sa
            r10, r11, r12 = sh, ch * ca, -ch * sa
            r21, r22 = sa, ca
            piv = d["pivot"][order]
            c, s_ = np.cos(h)[:, None], np.sin(h)[:, None]
            tx = (c * piv[..., 0] - s_ * piv[..., 1] + pos_m[order, 0, None]).astype(np.float32)
            ty = (s_ * piv[..., 0] + c * piv[..., 1] + pos_m[order, 1, None]).astype(np.float32)
            tz = (piv[..., 2] + np.asarray(lift_m, dtype=np.float64)[order, None] + pos_m[order, 2, None]).astype(np.float32)
            rel = d["rel"][order]  # (K, B, V, 3)
            x, y, z = rel[..., 0], rel[..., 1], rel[..., 2]
            e = (..., None)
            world = np.empty(rel.shape, dtype=np.float32)
            world[..., 0] = x * r00[e] + y * r01[e] + z * r02[e] + tx[e]
            world[..., 1] = x * r10[e] + y * r11[e] + z * r12[e] + ty[e]
            world[..., 2] = y * r21[e] + z * r22[e] + tz[e]
            nx, ny, nz = (_CUBE_NRM[:, k].astype(np.float32) for k in range(3))
            normal = np.empty(rel.shape, dtype=np.float32)
            normal[..., 0] = nx * r00[e] + ny * r01[e] + nz * r02[e]
            normal[..., 1] = nx * r10[e] + ny * r11[e] + nz * r12[e]
            normal[..., 2] = ny * r21[e] + nz * r22[e]
            out[mat] = (world.reshape(-1, 3), normal.reshape(-1, 3), d["col"][order].reshape(-1, 4))
        return out


def draw_order(cam_xy_cm: np.ndarray, cam_yaw_deg: float, pos_cm: np.ndarray, half_fov_deg: float, max_count: int,
               max_dist_cm: float = 15000.0, margin_cm: float = 600.0) -> np.ndarray:
    """Indices of the actors that may be in view, nearest first, at most ``max_count``.

    An actor may be in view when it is within ``max_dist_cm`` and its centre lies inside the horizontal field of
    view widened by ``margin_cm`` (its size) at its distance, or when it is closer than ``margin_cm``."""
    rel = np.asarray(pos_cm, dtype=np.float64).reshape(-1, 2) - np.asarray(cam_xy_cm, dtype=np.float64)[None, :]
    dist = np.hypot(rel[:, 0], rel[:, 1])
    yaw = np.radians(cam_yaw_deg)
    ahead = rel[:, 0] * np.cos(yaw) + rel[:, 1] * np.sin(yaw)
    side = np.abs(-rel[:, 0] * np.sin(yaw) + rel[:, 1] * np.cos(yaw))
    in_fov = (ahead > -margin_cm) & (side <= np.maximum(ahead, 0.0) * np.tan(np.radians(half_fov_deg)) + margin_cm)
    cand = np.nonzero(((dist < max_dist_cm) & in_fov) | (dist < margin_cm))[0]
    return cand[np.argsort(dist[cand], kind="stable")][:max_count]


def human_parts(height_cm: float, shirt: np.ndarray, pants: np.ndarray, skin: np.ndarray, hair: np.ndarray) -> list[Part]:
    """A walking figure: legs with shoes and arms swing about the hips and shoulders."""
    H = height_cm / CM_PER_PANDA_UNIT
    hip = 0.47 * H
    shoulder = 0.80 * H
    shoe = (0.12, 0.11, 0.10)
    parts = []
    for side, sign in ((-1.0, 1.0), (1.0, -1.0)):  # left leg forward when the right is back
        x = side * 0.055 * H
        parts.append(Part("paint", (x, 0.0, hip / 2 + 0.02 * H), (0.042 * H, 0.048 * H, hip / 2 - 0.02 * H), tuple(pants), (x, 0.0, hip), sign))
        parts.append(Part("paint", (x, 0.022 * H, 0.018 * H), (0.043 * H, 0.07 * H, 0.018 * H), shoe, (x, 0.0, hip), sign))
        ax = side * 0.142 * H
        parts.append(Part("paint", (ax, 0.0, shoulder - 0.17 * H), (0.032 * H, 0.036 * H, 0.17 * H), tuple(shirt), (ax, 0.0, shoulder), -0.8 * sign))
        parts.append(Part("paint", (ax, 0.0, shoulder - 0.36 * H), (0.028 * H, 0.03 * H, 0.025 * H), tuple(skin), (ax, 0.0, shoulder), -0.8 * sign))
    parts.append(Part("paint", (0.0, 0.0, hip + 0.17 * H), (0.11 * H, 0.062 * H, 0.17 * H), tuple(shirt)))
    parts.append(Part("paint", (0.0, 0.0, hip + 0.355 * H), (0.03 * H, 0.03 * H, 0.02 * H), tuple(skin)))
    parts.append(Part("paint", (0.0, 0.006 * H, 0.915 * H), (0.055 * H, 0.06 * H, 0.065 * H), tuple(skin)))
    parts.append(Part("paint", (0.0, -0.008 * H, 0.975 * H), (0.059 * H, 0.064 * H, 0.025 * H), tuple(hair)))
    parts.append(Part("paint", (0.0, -0.05 * H, 0.93 * H), (0.058 * H, 0.02 * H, 0.05 * H), tuple(hair)))
    return parts


def vehicle_parts(length_cm: float, width_cm: float, height_cm: float, paint: np.ndarray, van: bool) -> list[Part]:
    """A car or van: body, glass cabin, wheels, head and tail lights."""
    L, W, Hv = length_cm / CM_PER_PANDA_UNIT, width_cm / CM_PER_PANDA_UNIT, height_cm / CM_PER_PANDA_UNIT
    low_top = 0.22 + (0.5 if van else 0.45) * Hv
    parts = [Part("car_body", (0.0, 0.0, (0.22 + low_top) / 2), (W / 2, L / 2, (low_top - 0.22) / 2), tuple(paint))]
    if van:
        cab = Part("car_glass", (0.0, -0.08 * L, (low_top + Hv) / 2), (W / 2 - 0.04, 0.40 * L, (Hv - low_top) / 2), (0.9, 0.9, 0.9))
        roof = Part("car_body", (0.0, -0.08 * L, Hv - 0.04), (W / 2 - 0.03, 0.40 * L, 0.05), tuple(paint))
        parts += [cab, roof]
    else:
        parts.append(Part("car_glass", (0.0, -0.06 * L, (low_top + Hv) / 2), (W / 2 - 0.09, 0.26 * L, (Hv - low_top) / 2), (0.9, 0.9, 0.9)))
        parts.append(Part("car_body", (0.0, -0.06 * L, Hv - 0.02), (W / 2 - 0.08, 0.22 * L, 0.03), tuple(paint)))
    for sx in (-1.0, 1.0):
        for sy in (-1.0, 1.0):
            parts.append(Part("paint", (sx * (W / 2 - 0.14), sy * (L / 2 - 0.75), 0.32), (0.12, 0.32, 0.32), (0.07, 0.07, 0.08)))
        parts.append(Part("emissive", (sx * (W / 2 - 0.22), L / 2 + 0.005, low_top - 0.12), (0.14, 0.01, 0.06), (1.0, 0.97, 0.85)))
        parts.append(Part("emissive", (sx * (W / 2 - 0.18), -L / 2 - 0.005, low_top - 0.12), (0.12, 0.01, 0.06), (0.85, 0.08, 0.06)))
    return parts
