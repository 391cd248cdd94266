"""City blocks: a 3 x 3 grid of blocks separated by two-lane streets, ringed by a perimeter street.

Blocks carry buildings with textured facades (or, sometimes, a plaza with a fountain), sidewalks with lamps,
street trees and bins. Vehicles drive on the right around block loops and around the outer ring; NPCs walk
the sidewalks in both directions. The outer edge of the level is a wall of tall buildings.
"""

from __future__ import annotations

import numpy as np

from ..layout import Box, GroundQuad, Layout, Prop, clear_lanes, prop, static_shapes_of, NPC_RADIUS_CM
from ..paths import offset_closed, rounded_rect_loop, with_inside_on_right
from ..textures import FACADE_STYLES

N_BLOCKS = 3
ROAD_CM = 1000.0
STOREY_CM = 320.0
STYLES = tuple(FACADE_STYLES)
NPC_LANE_OFFSET_CM = 50.0


def _facade_uv(lx_cm: float, ly_cm: float) -> tuple[float, float, float]:
    """Repeat sizes (m) so that each facade shows a whole number of two-bay texture repeats."""
    ux = lx_cm / 100.0 / max(1, round(lx_cm / 600.0))
    uy = ly_cm / 100.0 / max(1, round(ly_cm / 600.0))
    return ux, uy, 2 * STOREY_CM / 100.0


def _building(rng: np.random.Generator, x0: float, y0: float, x1: float, y1: float, storeys: int) -> Box:
    style = STYLES[int(rng.integers(len(STYLES)))]
    h = storeys * STOREY_CM
    lx, ly = x1 - x0, y1 - y0
    return Box(((x0 + x1) / 2, (y0 + y1) / 2, h / 2), (lx / 2, ly / 2, h / 2), f"facade_{style}", "roof",
               uv_repeat_m=_facade_uv(lx, ly))


def _split(rng: np.random.Generator, a: float, b: float, min_part: float) -> list[tuple[float, float]]:
    """Split [a, b] into one or two parts, at a 100 cm aligned point, each at least ``min_part``."""
    if b - a >= 2 * min_part and rng.random() < 0.6:
        cut = a + 100.0 * np.round(rng.uniform(0.35, 0.65) * (b - a) / 100.0)
        cut = float(np.clip(cut, a + min_part, b - min_part))
        return [(a, cut), (cut, b)]
    return [(a, b)]


def build_city(seed: int) -> Layout:
    rng = np.random.default_rng([int(seed), 0xC17])
    sw = float(rng.choice([300.0, 350.0, 400.0]))  # sidewalk width
    half = ROAD_CM / 2
    bw_x = rng.choice(np.arange(3200.0, 4401.0, 200.0), N_BLOCKS)
    bw_y = rng.choice(np.arange(3200.0, 4401.0, 200.0), N_BLOCKS)
    xs = np.concatenate([[0.0], np.cumsum(bw_x + ROAD_CM)])  # street centre lines
    ys = np.concatenate([[0.0], np.cumsum(bw_y + ROAD_CM)])
    x_min, x_max = xs[0] - half - sw, xs[-1] + half + sw
    y_min, y_max = ys[0] - half - sw, ys[-1] + half + sw

    ground: list[GroundQuad] = []
    boxes: list[Box] = []
    props: list[Prop] = []
    npc_loops: list[np.ndarray] = []
    vehicle_lanes: list[np.ndarray] = []
    cross_cm = 300.0

    # ---- streets: segments between intersections, crosswalks at both ends, intersections
    for k, xc in enumerate(xs):
        for j in range(N_BLOCKS):
            ya, yb = ys[j] + half, ys[j + 1] - half
            ground.append(GroundQuad((xc, (ya + yb) / 2), ((yb - ya) / 2 - cross_cm, half), "road", 1, yaw_deg=90.0,
                                     uv_repeat_m=(6.0, ROAD_CM / 100.0)))
            for yc in (ya + cross_cm / 2, yb - cross_cm / 2):
                ground.append(GroundQuad((xc, yc), (half, cross_cm / 2), "crosswalk", 1, uv_repeat_m=(2.0, 2.0)))
    for k, yc in enumerate(ys):
        for i in range(N_BLOCKS):
            xa, xb = xs[i] + half, xs[i + 1] - half
            ground.append(GroundQuad(((xa + xb) / 2, yc), ((xb - xa) / 2 - cross_cm, half), "road", 1,
                                     uv_repeat_m=(6.0, ROAD_CM / 100.0)))
            for xc in (xa + cross_cm / 2, xb - cross_cm / 2):
                ground.append(GroundQuad((xc, yc), (half, cross_cm / 2), "crosswalk", 1, yaw_deg=90.0,
                                         uv_repeat_m=(2.0, 2.0)))
    for xc in xs:
        for yc in ys:
            ground.append(GroundQuad((xc, yc), (half, half), "asphalt", 1))

    # ---- outer sidewalk ring and the wall of buildings around the level
    ground += [
        GroundQuad(((x_min + xs[0] - half) / 2, (y_min + y_max) / 2), (sw / 2, (y_max - y_min) / 2), "sidewalk", 1),
        GroundQuad(((x_max + xs[-1] + half) / 2, (y_min + y_max) / 2), (sw / 2, (y_max - y_min) / 2), "sidewalk", 1),
        GroundQuad(((xs[0] + xs[-1]) / 2, (y_min + ys[0] - half) / 2), ((xs[-1] - xs[0]) / 2 + half, sw / 2), "sidewalk", 1),
        GroundQuad(((xs[0] + xs[-1]) / 2, (y_max + ys[-1] + half) / 2), ((xs[-1] - xs[0]) / 2 + half, sw / 2), "sidewalk", 1),
    ]
    depth = 1500.0
    for side in range(4):
        along0, along1 = (x_min - depth, x_max + depth) if side < 2 else (y_min, y_max)
        a = along0
        while a < along1 - 1.0:
            w = float(min(along1 - a, rng.choice([1500.0, 2000.0, 2500.0, 3000.0])))
            storeys = int(rng.integers(5, 16))
            if side == 0:
                boxes.append(_building(rng, a, y_min - depth, a + w, y_min, storeys))
            elif side == 1:
                boxes.append(_building(rng, a, y_max, a + w, y_max + depth, storeys))
            elif side == 2:
                boxes.append(_building(rng, x_min - depth, a, x_min, a + w, storeys))
            else:
                boxes.append(_building(rng, x_max, a, x_max + depth, a + w, storeys))
            a += w
    npc_loops.append(rounded_rect_loop(x_min + sw / 2, y_min + sw / 2, x_max - sw / 2, y_max - sw / 2, sw / 2))
    vehicle_lanes.append(with_inside_on_right(
        rounded_rect_loop(xs[0] - half / 2, ys[0] - half / 2, xs[-1] + half / 2, ys[-1] + half / 2, 750.0), False))

    # ---- blocks
    plaza_block = (int(rng.integers(N_BLOCKS)), int(rng.integers(N_BLOCKS))) if rng.random() < 0.35 else None
    for i in range(N_BLOCKS):
        for j in range(N_BLOCKS):
            bx0, bx1 = xs[i] + half, xs[i + 1] - half
            by0, by1 = ys[j] + half, ys[j + 1] - half
            ground.append(GroundQuad(((bx0 + bx1) / 2, (by0 + by1) / 2), ((bx1 - bx0) / 2, (by1 - by0) / 2), "sidewalk", 1))
            for (cx, cy, hx, hy) in (((bx0 + bx1) / 2, by0 + 12.5, (bx1 - bx0) / 2, 12.5),
                                     ((bx0 + bx1) / 2, by1 - 12.5, (bx1 - bx0) / 2, 12.5),
                                     (bx0 + 12.5, (by0 + by1) / 2, 12.5, (by1 - by0) / 2 - 25.0),
                                     (bx1 - 12.5, (by0 + by1) / 2, 12.5, (by1 - by0) / 2 - 25.0)):
                ground.append(GroundQuad((cx, cy), (hx, hy), "curb", 2))
            ix0, ix1, iy0, iy1 = bx0 + sw, bx1 - sw, by0 + sw, by1 - sw
            if (i, j) == plaza_block:
                _plaza(rng, ground, props, npc_loops, ix0, iy0, ix1, iy1)
            else:
                for (ax, bx) in _split(rng, ix0, ix1, 1200.0):
                    for (ay, by) in _split(rng, iy0, iy1, 1200.0):
                        boxes.append(_building(rng, ax, ay, bx, by, int(rng.integers(3, 14))))
            _sidewalk_props(rng, props, bx0, by0, bx1, by1, sw)
            npc_loops.append(rounded_rect_loop(bx0 + sw / 2, by0 + sw / 2, bx1 - sw / 2, by1 - sw / 2, sw / 2))
            vehicle_lanes.append(with_inside_on_right(
                rounded_rect_loop(bx0 - half / 2, by0 - half / 2, bx1 + half / 2, by1 + half / 2, half / 2), True))

    # NPCs walk both directions of every loop, each keeping to its right
    lanes = []
    for loop in npc_loops:
        for inside_right in (True, False):
            lanes.append(offset_closed(with_inside_on_right(loop, inside_right), NPC_LANE_OFFSET_CM))
    shapes = static_shapes_of(tuple(boxes), tuple(props))
    return Layout(
        scene="city", seed=int(seed), bounds_cm=(x_min, y_min, x_max, y_max), cell_cm=100.0,
        ground=tuple(ground), boxes=tuple(boxes), props=tuple(props),
        npc_lanes=clear_lanes(lanes, shapes, NPC_RADIUS_CM + 5.0),
        vehicle_lanes=tuple(vehicle_lanes), max_npcs=36, max_vehicles=24,
        backdrop="city", static_shapes=shapes,
    )


def _sidewalk_props(rng: np.random.Generator, props: list[Prop], bx0: float, by0: float, bx1: float, by1: float,
                    sw: float) -> None:
    """Lamps and street trees near the curb, bins by the buildings, along the four sides of a block."""
    curb_off = 35.0
    sides = [  # (start point, direction along the side, inward normal)
        ((bx0, by0), (1.0, 0.0), (0.0, 1.0), bx1 - bx0),
        ((bx0, by1), (1.0, 0.0), (0.0, -1.0), bx1 - bx0),
        ((bx0, by0), (0.0, 1.0), (1.0, 0.0), by1 - by0),
        ((bx1, by0), (0.0, 1.0), (-1.0, 0.0), by1 - by0),
    ]
    for (sx, sy), (dx, dy), (nx, ny), length in sides:
        yaw_out = float(np.degrees(np.arctan2(-ny, -nx)))  # facing the street
        spacing = float(rng.choice([1800.0, 2200.0, 2600.0]))
        t = 400.0 + float(rng.uniform(0, 300))
        k = 0
        while t < length - 400.0:
            px, py = sx + dx * t + nx * curb_off, sy + dy * t + ny * curb_off
            if k % 2 == 0:
                props.append(prop("lamp", px, py, yaw_out, (120.0, 30.0, 520.0)))
            elif rng.random() < 0.7:
                crown = float(rng.uniform(260.0, 340.0))
                props.append(prop("tree", px, py, float(rng.uniform(0, 360)), (crown, crown, float(rng.uniform(550, 750))),
                                  variant=int(rng.integers(3))))
            if rng.random() < 0.15:
                bx_, by_ = sx + dx * (t + 300) + nx * (sw - 30.0), sy + dy * (t + 300) + ny * (sw - 30.0)
                props.append(prop("bin", bx_, by_, yaw_out, (50.0, 50.0, 95.0)))
            t += spacing / 2
            k += 1


def _plaza(rng: np.random.Generator, ground: list[GroundQuad], props: list[Prop], npc_loops: list[np.ndarray],
           x0: float, y0: float, x1: float, y1: float) -> None:
    """A paved square with a fountain, trees and benches around it, and a walking loop round the fountain."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hx, hy = (x1 - x0) / 2, (y1 - y0) / 2
    ground.append(GroundQuad((cx, cy), (hx, hy), "plaza", 2))
    props.append(prop("fountain", cx, cy, 0.0, (420.0, 420.0, 160.0)))
    ring = 450.0
    npc_loops.append(rounded_rect_loop(cx - ring, cy - ring, cx + ring, cy + ring, ring))
    r_items = min(hx, hy) - 250.0
    n = int(rng.integers(6, 10))
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, np.pi):
        px, py = cx + r_items * np.cos(a), cy + r_items * np.sin(a)
        if rng.random() < 0.5:
            crown = float(rng.uniform(300, 420))
            props.append(prop("tree", px, py, float(np.degrees(a)), (crown, crown, float(rng.uniform(600, 850))),
                              variant=int(rng.integers(3))))
        else:
            facing = float(np.degrees(a + np.pi))  # towards the fountain; props face their local +x
            props.append(prop("bench", px, py, facing, (60.0, 180.0, 85.0)))
