"""Turn a :class:`.layout.Layout` into static triangle meshes in the Panda3D render frame (NumPy only).

Two builders come out: ``ground`` (flat surfaces at ground level, keyed ``"<layer>|<material>"``, drawn in
layer order without depth so coplanar layers never fight) and ``solid`` (everything else, keyed by material).
Props are built in a local frame (front along +Y, metres) and placed with the Unreal yaw turned into a
Panda3D heading. Models shipped with Panda3D (the panda statue, teapots) are not meshes: :func:`model_placements`
lists where the renderer puts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .atmosphere import Atmosphere
from .frames import CM_PER_PANDA_UNIT, ue_to_panda_pos, ue_yaw_to_panda_heading
from .geometry import MeshBuilder
from .layout import Layout, Prop
from .textures import material

RGBA = tuple[float, float, float, float]
MAX_TEAPOTS = 4


def _rgba(rgb: tuple[float, float, float], mat_name: str | None = None) -> RGBA:
    tint = material(mat_name).tint if mat_name else (1.0, 1.0, 1.0)
    return (rgb[0] * tint[0], rgb[1] * tint[1], rgb[2] * tint[2], 1.0)


def _p(xy_cm: tuple[float, float], z_cm: float = 0.0) -> np.ndarray:
    return ue_to_panda_pos(np.array([xy_cm[0], xy_cm[1], z_cm]))


@dataclass(frozen=True)
class ModelPlacement:
    """A Panda3D model (``models/...``) to load and place: position (m, render frame), heading, target height (m)."""

    model: str
    pos_m: np.ndarray
    heading_deg: float
    height_m: float


def build_static_meshes(layout: Layout, atmo: Atmosphere) -> tuple[MeshBuilder, MeshBuilder]:
    """``(ground, solid)`` builders of everything static in the layout, lit for ``atmo`` (lamps, windows)."""
    ground = MeshBuilder(tile_m=40.0)
    solid = MeshBuilder(tile_m=40.0)
    cm = CM_PER_PANDA_UNIT

    for q in layout.ground:
        mat = material(q.material)
        rep = q.uv_repeat_m or mat.repeat_m
        heading = 90.0 - q.yaw_deg  # the rect's local X (texture u) along the quad's Unreal local x
        builder, key = (solid, q.material) if q.facing_down else (ground, f"{q.layer}|{q.material}")
        cell = 4.0 if q.half_cm[0] * q.half_cm[1] < 4e6 else 6.0
        builder.rect(key, _p(q.center_cm, q.z_cm), (q.half_cm[0] / cm, q.half_cm[1] / cm), heading, rep,
                     _rgba(q.tint, q.material), facing_down=q.facing_down, max_cell_m=cell)
    for r in layout.ribbons:
        pts = ue_to_panda_pos(np.column_stack([r.points_cm, np.zeros(len(r.points_cm))]))[:, :2]
        ground.ribbon(f"{r.layer}|{r.material}", pts, r.width_cm / cm, 0.0, r.closed, material(r.material).repeat_m,
                      _rgba((1.0, 1.0, 1.0), r.material))
    for d in layout.discs:
        ground.disc(f"{d.layer}|{d.material}", _p(d.center_cm), d.radius_cm / cm, 32, material(d.material).repeat_m[0],
                    _rgba((1.0, 1.0, 1.0), d.material))

    for b in layout.boxes:
        mat = material(b.side)
        if b.uv_repeat_m is not None:
            ux, uy, v = b.uv_repeat_m
            rep = (uy, ux, v)  # Panda3D local X is the Unreal local y
        else:
            rep = (mat.repeat_m[0], mat.repeat_m[0], mat.repeat_m[1])
        color = _rgba(atmo.window, None) if b.side == "glass" else _rgba(b.tint, b.side)
        solid.box(b.side, b.top, ue_to_panda_pos(np.array(b.center_cm)), (b.half_cm[1] / cm, b.half_cm[0] / cm, b.half_cm[2] / cm),
                  float(ue_yaw_to_panda_heading(b.yaw_deg)), rep, color, bottom=b.bottom)

    for pr in layout.props:
        local = MeshBuilder(tile_m=1e9)
        _prop_mesh(local, pr, atmo)
        solid.merge(local, ue_to_panda_pos(np.array(pr.pos_cm)), float(ue_yaw_to_panda_heading(pr.yaw_deg)))

    if layout.backdrop == "hills":
        _hills(solid, layout, atmo)
    return ground, solid


def model_placements(layout: Layout) -> list[ModelPlacement]:
    """Where Panda3D's own models go: the panda on each statue's plinth, teapots (at most a few) on tables."""
    out = []
    teapots = 0
    for pr in layout.props:
        if pr.kind == "statue":
            out.append(ModelPlacement("models/panda-model", ue_to_panda_pos(np.array([pr.pos_cm[0], pr.pos_cm[1], 100.0])),
                                      float(ue_yaw_to_panda_heading(pr.yaw_deg)), (pr.size_cm[2] - 100.0) / CM_PER_PANDA_UNIT))
        elif pr.kind == "teapot" and teapots < MAX_TEAPOTS:
            teapots += 1
            out.append(ModelPlacement("models/teapot", ue_to_panda_pos(np.array(pr.pos_cm)),
                                      float(ue_yaw_to_panda_heading(pr.yaw_deg)), pr.size_cm[2] / CM_PER_PANDA_UNIT))
    return out


# --------------------------------------------------------------------------------------------------
# props, in a local frame: metres, front along +Y, right along +X, base at z = 0
# --------------------------------------------------------------------------------------------------

_LEAVES = ("leaves", "leaves_dark", "leaves_autumn")
_FABRIC = ((0.55, 0.20, 0.18), (0.22, 0.32, 0.50), (0.40, 0.42, 0.36))


def _prop_mesh(mb: MeshBuilder, pr: Prop, atmo: Atmosphere) -> None:
    depth, width, height = (v / CM_PER_PANDA_UNIT for v in pr.size_cm)
    rng = np.random.default_rng([abs(int(pr.pos_cm[0] * 10)), abs(int(pr.pos_cm[1] * 10)), pr.variant])
    white = (1.0, 1.0, 1.0, 1.0)
    k = pr.kind
    if k == "tree":
        trunk_r = 0.07 * depth
        mb.cylinder("bark", (0, 0, 0), trunk_r * 1.2, trunk_r * 0.8, 0.55 * height, 6, (1.0, 1.5), white, cap_top=False)
        leaves = _LEAVES[pr.variant % 2] if rng.random() > 0.12 else "leaves_autumn"
        mb.blob(leaves, (0, 0, 0.62 * height), (0.5 * depth, 0.5 * depth, 0.36 * height), white, rng, 0.18)
        mb.blob(leaves, (0.18 * depth, -0.1 * depth, 0.82 * height), (0.3 * depth, 0.3 * depth, 0.2 * height), white, rng, 0.2, subdiv=0)
    elif k == "conifer":
        trunk_r = 0.07 * depth
        mb.cylinder("bark", (0, 0, 0), trunk_r, trunk_r * 0.7, 0.3 * height, 6, (1.0, 1.5), white, cap_top=False)
        for z0, r, h in ((0.18, 0.5, 0.42), (0.42, 0.38, 0.36), (0.64, 0.25, 0.36)):
            mb.cylinder("leaves_dark", (0, 0, z0 * height), r * depth, 0.0, h * height, 8, (1.5, 1.5), white, cap_top=False)
            mb.disc("leaves_dark", (0, 0, z0 * height), r * depth, 8, 1.5, white, facing_down=True)
    elif k == "bush":
        mb.blob("hedge" if pr.variant == 0 else "leaves", (0, 0, 0.4 * height), (depth / 2, width / 2, 0.6 * height), white,
                rng, 0.2, flat_bottom=True)
    elif k == "rock":
        grey = float(rng.uniform(0.8, 1.05))
        mb.blob("rock", (0, 0, 0.25 * height), (depth / 2, width / 2, 0.75 * height), (grey, grey, grey * 0.97, 1.0), rng, 0.28,
                flat_bottom=True)
    elif k == "bench":
        seat_w = width
        for x in (-0.42 * seat_w, 0.42 * seat_w):
            for y in (-0.18, 0.15):
                mb.box("metal", None, (x, y, 0.22), (0.03, 0.03, 0.22), 0, (1, 1, 1), (0.25, 0.25, 0.27, 1.0))
        mb.box("wood", "wood", (0, 0.0, 0.46), (seat_w / 2, 0.23, 0.03), 0, (1, 1, 1), white)
        mb.box("wood", "wood", (0, -0.24, 0.68), (seat_w / 2, 0.03, 0.2), 0, (1, 1, 1), white)
    elif k == "lamp":
        dark = (0.22, 0.23, 0.25, 1.0)
        mb.cylinder("metal", (0, 0, 0), 0.08, 0.05, height, 6, (1, 1), dark)
        mb.box("metal", "metal", (0, 0.45, height - 0.05), (0.04, 0.5, 0.04), 0, (1, 1, 1), dark)
        glow = (1.0, 0.88, 0.55, 1.0) if atmo.night else (0.80, 0.80, 0.76, 1.0)
        mb.box("emissive", "emissive", (0, 0.85, height - 0.14), (0.15, 0.25, 0.06), 0, (1, 1, 1), glow, bottom=True)
    elif k == "bin":
        mb.cylinder("metal", (0, 0, 0), depth / 2, depth / 2 * 1.05, height, 8, (1, 1), (0.20, 0.35, 0.25, 1.0))
    elif k == "fountain":
        r = depth / 2
        mb.cylinder("concrete", (0, 0, 0), r, r, 0.5, 20, (3, 3), white)
        mb.disc("water", (0, 0, 0.501), r - 0.25, 20, 4.0, white)
        mb.cylinder("concrete", (0, 0, 0), 0.35, 0.25, 0.9 * height, 10, (2, 2), white)
        mb.cylinder("concrete", (0, 0, height * 0.75), 0.3, 0.9, 0.25, 12, (2, 2), white)
    elif k == "statue":
        mb.box("concrete", "concrete", (0, 0, 0.5), (0.6, 0.6, 0.5), 0, (1.5, 1.5, 1.5), (0.85, 0.83, 0.80, 1.0))
    elif k == "table":
        top = "wood"
        mb.box(top, top, (0, 0, height - 0.025), (width / 2, depth / 2, 0.025), 0, (1, 1, 1), white)
        for x in (-width / 2 + 0.05, width / 2 - 0.05):
            for y in (-depth / 2 + 0.05, depth / 2 - 0.05):
                mb.box("wood", None, (x, y, (height - 0.05) / 2), (0.03, 0.03, (height - 0.05) / 2), 0, (1, 1, 1),
                       (0.6, 0.6, 0.6, 1.0))
    elif k == "chair":
        c = (0.55, 0.55, 0.58, 1.0)
        mb.box("wood", "wood", (0, 0, 0.45), (width / 2, depth / 2, 0.025), 0, (1, 1, 1), white)
        mb.box("wood", None, (0, -depth / 2 + 0.02, 0.68), (width / 2, 0.02, 0.22), 0, (1, 1, 1), white)
        for x in (-width / 2 + 0.03, width / 2 - 0.03):
            for y in (-depth / 2 + 0.03, depth / 2 - 0.03):
                mb.box("metal", None, (x, y, 0.22), (0.015, 0.015, 0.22), 0, (1, 1, 1), c)
    elif k == "shelf":
        mb.box("wood", "wood", (0, -0.01, height / 2), (width / 2, depth / 2 - 0.01, height / 2), 0, (1, 1, 1), white)
        mb.box("books", None, (0, depth / 2 - 0.01, height / 2 - 0.02), (width / 2 - 0.03, 0.01, height / 2 - 0.05), 0,
               (width, width, height), white)
    elif k == "crate":
        mb.box("crate", "crate", (0, 0, height / 2), (width / 2, depth / 2, height / 2), 0, (width, depth, height), white)
    elif k == "plant":
        mb.cylinder("paint", (0, 0, 0), 0.35 * depth, 0.45 * depth, 0.35 * height, 8, (1, 1), (0.62, 0.32, 0.20, 1.0))
        mb.blob("leaves", (0, 0, 0.65 * height), (0.6 * depth, 0.6 * width, 0.38 * height), white, rng, 0.25)
    elif k == "sofa":
        fab = _FABRIC[pr.variant % len(_FABRIC)] + (1.0,)
        mb.box("paint", "paint", (0, 0.05, 0.22), (width / 2, depth / 2 - 0.05, 0.22), 0, (1, 1, 1), fab)
        mb.box("paint", "paint", (0, -depth / 2 + 0.1, height / 2), (width / 2, 0.1, height / 2), 0, (1, 1, 1), fab)
        for x in (-width / 2 + 0.1, width / 2 - 0.1):
            mb.box("paint", "paint", (x, 0.05, 0.32), (0.1, depth / 2 - 0.05, 0.32), 0, (1, 1, 1), fab)
    elif k == "door":
        wood = ((0.55, 0.38, 0.22, 1.0), (0.85, 0.85, 0.82, 1.0), (0.35, 0.22, 0.15, 1.0))[pr.variant % 3]
        mb.box("wood", None, (0, 0, height / 2), (width / 2, depth / 2, height / 2), 0, (1, 1, 1), wood)
        mb.box("metal", None, (width / 2 - 0.1, 0, 1.0), (0.02, depth / 2 + 0.03, 0.02), 0, (1, 1, 1), (0.8, 0.8, 0.7, 1.0))
    # "teapot" is a Panda3D model (see model_placements)


def _hills(mb: MeshBuilder, layout: Layout, atmo: Atmosphere) -> None:
    """A ring of hazy hills far beyond the level's boundary."""
    x0, y0, x1, y1 = layout.bounds_cm
    centre = _p(((x0 + x1) / 2, (y0 + y1) / 2))
    radius = 0.5 * np.hypot(x1 - x0, y1 - y0) / CM_PER_PANDA_UNIT + 180.0
    rng = np.random.default_rng([layout.seed, 0x4111])
    n = 72
    a = np.linspace(0.0, 2 * np.pi, n + 1)
    heights = 18.0 + 30.0 * np.abs(np.sin(a * 3 + rng.uniform(0, 6))) * rng.uniform(0.5, 1.0) \
        + 10.0 * np.sin(a * 7 + rng.uniform(0, 6)) ** 2
    heights[-1] = heights[0]
    base = centre + np.stack([radius * np.cos(a), radius * np.sin(a), np.full_like(a, -2.0)], axis=1)
    top = base.copy()
    top[:, 2] = heights
    pos = np.concatenate([base, top])
    nrm = -np.concatenate([base - centre, base - centre])  # facing the level
    nrm[:, 2] = 0.0
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    haze = 0.55 if atmo.fog_density_per_m == 0 else 0.8
    low = np.array([0.16, 0.26, 0.14]) * (0.3 + 0.7 * atmo.daylight)
    col_low = (1 - haze) * low + haze * np.asarray(atmo.sky_horizon)
    col_top = (1 - haze * 0.8) * low * 1.2 + haze * 0.8 * np.asarray(atmo.sky_horizon)
    col = np.concatenate([np.tile(np.append(col_low, 1.0), (n + 1, 1)), np.tile(np.append(col_top, 1.0), (n + 1, 1))])
    i = np.arange(n)
    m = n + 1
    idx = np.concatenate([np.stack([i, i + 1, i + 1 + m], 1), np.stack([i, i + 1 + m, i + m], 1)])
    uv = np.zeros((len(pos), 2))
    # split the ring into a few parts so each can be culled
    for s in range(0, n, 12):
        sel = idx[(idx[:, 0] % m >= s) & (idx[:, 0] % m < s + 12)]
        mb.add("emissive", pos, nrm, uv, col, sel, tile_by=pos[s])
