"""Open park: grass, a winding loop path with two crossing paths, a pond, trees, bushes, rocks, benches, lamps.

A hedge closes the park; beyond it stand more trees (scenery only) and a ring of hills. NPCs stroll along the
loop path in both directions, keeping to their right. A panda statue stands somewhere on the grass.
"""

from __future__ import annotations

import numpy as np

from ..collision import Circle
from ..layout import Box, GroundDisc, GroundQuad, GroundRibbon, Layout, Prop, clear_lanes, prop, static_shapes_of, NPC_RADIUS_CM
from ..paths import chaikin_closed, offset_closed, point_polyline_distance, resample_closed, resample_open, with_inside_on_right

HEDGE_CM = 120.0
NPC_LANE_OFFSET_CM = 60.0


def _chord(rng: np.random.Generator, loop: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """An open path across the park between two roughly opposite points of the loop, gently curved."""
    n = len(loop)
    i = int(rng.integers(n))
    j = (i + n // 2 + int(rng.integers(-n // 8, n // 8 + 1))) % n
    a, b = loop[i], loop[j]
    mid = 0.5 * (a + b) + (centre - 0.5 * (a + b)) * 0.3 + rng.uniform(-600.0, 600.0, 2)
    t = np.linspace(0.0, 1.0, 40)[:, None]
    curve = (1 - t) ** 2 * a + 2 * (1 - t) * t * mid + t**2 * b  # quadratic Bezier
    return resample_open(curve, 50.0)


def build_park(seed: int) -> Layout:
    rng = np.random.default_rng([int(seed), 0x9A7C])
    lx = float(100.0 * np.round(rng.uniform(8000.0, 11000.0) / 100.0))
    ly = float(100.0 * np.round(rng.uniform(8000.0, 11000.0) / 100.0))
    centre = np.array([lx / 2, ly / 2])
    path_w = float(rng.choice([280.0, 320.0]))

    # ---- paths
    n_ctrl = 10
    ang = np.linspace(0.0, 2 * np.pi, n_ctrl, endpoint=False) + rng.uniform(-0.2, 0.2, n_ctrl) + rng.uniform(0, np.pi)
    rad = rng.uniform(0.78, 1.08, n_ctrl)
    ctrl = centre + np.stack([0.33 * lx * rad * np.cos(ang), 0.33 * ly * rad * np.sin(ang)], axis=1)
    loop = resample_closed(chaikin_closed(ctrl, 4), 50.0)
    chords = [_chord(rng, loop, centre) for _ in range(2)]
    ribbons = [GroundRibbon(loop, path_w, "dirt", 2, closed=True)]
    ribbons += [GroundRibbon(c, path_w - 60.0, "gravel" if rng.random() < 0.5 else "dirt", 3) for c in chords]

    def path_clearance(pts: np.ndarray) -> np.ndarray:
        d = point_polyline_distance(pts, loop, closed=True) - path_w / 2
        for c in chords:
            d = np.minimum(d, point_polyline_distance(pts, c) - (path_w - 60.0) / 2)
        return d

    boxes: list[Box] = []
    props: list[Prop] = []
    discs: list[GroundDisc] = []
    extra: list[Circle] = []
    occupied: list[tuple[float, float, float]] = []  # (x, y, radius) of placed things, for spacing

    def free(x: float, y: float, r: float, path_gap: float, gap: float = 80.0) -> bool:
        if not (r + 150.0 <= x <= lx - r - 150.0 and r + 150.0 <= y <= ly - r - 150.0):
            return False
        if path_clearance(np.array([[x, y]]))[0] < r + path_gap:
            return False
        return all(np.hypot(x - ox, y - oy) >= r + orad + gap for ox, oy, orad in occupied)

    # ---- pond
    if rng.random() < 0.75:
        for _ in range(60):
            r = float(rng.uniform(700.0, 1300.0))
            x, y = float(rng.uniform(0, lx)), float(rng.uniform(0, ly))
            if free(x, y, r + 60.0, 150.0):
                discs.append(GroundDisc((x, y), r, "water", 2))
                discs.insert(0, GroundDisc((x, y), r + 60.0, "gravel", 1))  # a stone rim
                extra.append(Circle((x, y), r))
                occupied.append((x, y, r + 60.0))
                break

    # ---- statue on a gravel disc
    for _ in range(60):
        x, y = centre + rng.uniform(-0.25, 0.25, 2) * (lx, ly)
        if free(float(x), float(y), 260.0, 120.0):
            discs.append(GroundDisc((float(x), float(y)), 260.0, "gravel", 3))
            props.append(prop("statue", float(x), float(y), float(rng.uniform(0, 360)), (150.0, 150.0, 260.0)))
            occupied.append((float(x), float(y), 260.0))
            break

    # ---- benches, lamps and bins along the loop
    tangent = np.gradient(loop, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    i = int(rng.integers(20))
    while i < len(loop):
        side = 1.0 if rng.random() < 0.5 else -1.0
        p = loop[i] + side * normal[i] * (path_w / 2 + 70.0)
        facing = float(np.degrees(np.arctan2(-side * normal[i, 1], -side * normal[i, 0])))
        if free(float(p[0]), float(p[1]), 100.0, -40.0, 40.0):  # right at the path edge
            props.append(prop("bench", float(p[0]), float(p[1]), facing, (60.0, 180.0, 85.0), variant=int(rng.integers(2))))
            occupied.append((float(p[0]), float(p[1]), 100.0))
            q = loop[i] + side * normal[i] * (path_w / 2 + 60.0) + tangent[i] * 150.0
            if rng.random() < 0.4 and free(float(q[0]), float(q[1]), 25.0, 30.0, 10.0):
                props.append(prop("bin", float(q[0]), float(q[1]), facing, (50.0, 50.0, 95.0)))
                occupied.append((float(q[0]), float(q[1]), 25.0))
        lp = loop[(i + 20) % len(loop)] - side * normal[(i + 20) % len(loop)] * (path_w / 2 + 40.0)
        if free(float(lp[0]), float(lp[1]), 12.0, 25.0, 20.0):
            props.append(prop("lamp", float(lp[0]), float(lp[1]), facing + 180.0, (120.0, 30.0, 450.0)))
            occupied.append((float(lp[0]), float(lp[1]), 12.0))
        i += int(rng.integers(30, 50))

    # ---- trees, bushes, rocks on the grass
    def scatter(count: int, make, radius_fn, path_gap: float, gap: float) -> None:
        placed, tries = 0, 0
        while placed < count and tries < count * 30:
            tries += 1
            x, y = float(rng.uniform(0, lx)), float(rng.uniform(0, ly))
            r = radius_fn()
            if free(x, y, r, path_gap, gap):
                props.append(make(x, y, r))
                occupied.append((x, y, r))
                placed += 1

    def tree(x: float, y: float, r: float) -> Prop:
        crown = r / 0.09
        kind = "conifer" if rng.random() < 0.35 else "tree"
        return prop(kind, x, y, float(rng.uniform(0, 360)), (crown, crown, crown * float(rng.uniform(1.6, 2.2))),
                    variant=int(rng.integers(3)))

    scatter(int(rng.integers(30, 45)), tree, lambda: float(rng.uniform(24.0, 40.0)), 90.0, 200.0)
    scatter(int(rng.integers(12, 22)),
            lambda x, y, r: prop("bush", x, y, float(rng.uniform(0, 360)), (2 * r, 2 * r, r * float(rng.uniform(1.0, 1.4))),
                                 variant=int(rng.integers(2))),
            lambda: float(rng.uniform(45.0, 90.0)), 40.0, 60.0)
    scatter(int(rng.integers(8, 16)),
            lambda x, y, r: prop("rock", x, y, float(rng.uniform(0, 360)), (2 * r, 2 * r, r * float(rng.uniform(0.6, 1.1))),
                                 variant=int(rng.integers(4))),
            lambda: float(rng.uniform(35.0, 110.0)), 40.0, 60.0)

    # ---- hedge around the park and scenery trees beyond it
    h = HEDGE_CM
    for (cx, cy, hx, hy) in ((lx / 2, -h / 2, lx / 2 + h, h / 2), (lx / 2, ly + h / 2, lx / 2 + h, h / 2),
                             (-h / 2, ly / 2, h / 2, ly / 2), (lx + h / 2, ly / 2, h / 2, ly / 2)):
        boxes.append(Box((cx, cy, 85.0), (hx, hy, 85.0), "hedge", "hedge"))
    for _ in range(int(rng.integers(20, 30))):
        side = int(rng.integers(4))
        t = float(rng.uniform(-0.05, 1.05))
        out = float(rng.uniform(500.0, 2500.0))
        x, y = [(t * lx, -out), (t * lx, ly + out), (-out, t * ly), (lx + out, t * ly)][side]
        crown = float(rng.uniform(400.0, 700.0))
        props.append(prop("conifer" if rng.random() < 0.5 else "tree", x, y, 0.0, (crown, crown, crown * 1.9),
                          variant=int(rng.integers(3)), solid=False))

    lanes = [offset_closed(with_inside_on_right(loop, right), NPC_LANE_OFFSET_CM) for right in (True, False)]
    ground = [GroundQuad((lx / 2, ly / 2), (lx / 2 + 3000.0, ly / 2 + 3000.0), "grass", 0)]
    shapes = static_shapes_of(tuple(boxes), tuple(props), tuple(extra))
    return Layout(
        scene="park", seed=int(seed), bounds_cm=(0.0, 0.0, lx, ly), cell_cm=100.0,
        ground=tuple(ground), boxes=tuple(boxes), props=tuple(props),
        npc_lanes=clear_lanes(lanes, shapes, NPC_RADIUS_CM + 5.0), vehicle_lanes=(),
        max_npcs=24, max_vehicles=0, ribbons=tuple(ribbons), discs=tuple(discs), extra_shapes=tuple(extra),
        backdrop="hills", npc_speed_cm_s=(100.0, 150.0), static_shapes=shapes,
    )
