"""Indoor floor: a corridor with rooms on both sides, doorways, windows, furniture and a ceiling.

Walls are 20 cm thick and drawn as two 10 cm halves so each side takes the colour of the room it faces.
Doorways are 200 cm wide (with an open door leaf); exterior walls have windows. Rooms are furnished along
their walls (shelves, desks with chairs, sofas, crates, plants), leaving the area in front of doors free.
NPCs walk round the corridor and round some rooms.
"""

from __future__ import annotations

import numpy as np

from ..layout import Box, GroundQuad, Layout, Prop, clear_lanes, prop, static_shapes_of, NPC_RADIUS_CM
from ..paths import racetrack_loop, rounded_rect_loop

WALL_CM = 20.0
DOOR_CM = 200.0
DOOR_TOP_CM = 220.0
SILL_CM = 90.0
WINDOW_TOP_CM = 210.0

WALL_TINTS = [(0.95, 0.93, 0.88), (0.86, 0.90, 0.95), (0.95, 0.88, 0.80), (0.86, 0.94, 0.86),
              (0.96, 0.86, 0.86), (0.90, 0.88, 0.96), (0.80, 0.80, 0.80)]
ROOM_FLOORS = ["parquet", "carpet_red", "carpet_blue", "carpet_grey", "tiles", "parquet"]
ROOM_TYPES = ("office", "living", "storage", "library")


def _al(v: float, step: float = 50.0) -> float:
    return float(step * np.round(v / step))


def _partition(rng: np.random.Generator, length: float, n: int) -> list[float]:
    """Room boundaries 0 = b0 < ... < bn = length, 50 cm aligned, each room at least 450 cm."""
    for _ in range(200):
        w = rng.uniform(0.7, 1.3, n)
        cuts = [_al(c) for c in np.cumsum(w)[:-1] / w.sum() * length]
        b = [0.0] + cuts + [length]
        if min(np.diff(b)) >= 450.0:
            return b
    return [float(v) for v in np.linspace(0.0, length, n + 1)]


def _wall(boxes: list[Box], along_x: bool, c: float, a0: float, a1: float, openings: list[tuple[float, float, str]],
          tint_neg: tuple, tint_pos: tuple, height: float, two_sided: bool = True) -> None:
    """A straight wall on the line ``y = c`` (``along_x``) or ``x = c`` from ``a0`` to ``a1``.

    ``openings``: ``(centre, width, kind)`` with kind ``"door"`` or ``"window"``. Solid stretches are two
    10 cm half-walls, the ``_neg`` half facing decreasing y (or x). Doors get a lintel; windows a sill, a
    lintel and a glass pane."""
    hw = WALL_CM / 2

    def add(a_lo: float, a_hi: float, z_lo: float, z_hi: float, offset: float, thick: float, mat: str, tint: tuple,
            collides: bool) -> None:
        if a_hi - a_lo < 1e-6:
            return
        ca, ha = (a_lo + a_hi) / 2, (a_hi - a_lo) / 2
        cz, hz = (z_lo + z_hi) / 2, (z_hi - z_lo) / 2
        if along_x:
            boxes.append(Box((ca, c + offset, cz), (ha, thick / 2, hz), mat, None, tint=tint, collides=collides))
        else:
            boxes.append(Box((c + offset, ca, cz), (thick / 2, ha, hz), mat, None, tint=tint, collides=collides))

    def solid(a_lo: float, a_hi: float, z_lo: float, z_hi: float, collides: bool = True) -> None:
        if two_sided:
            add(a_lo, a_hi, z_lo, z_hi, -hw / 2, hw, "plaster", tint_neg, collides)
            add(a_lo, a_hi, z_lo, z_hi, hw / 2, hw, "plaster", tint_pos, collides)
        else:
            add(a_lo, a_hi, z_lo, z_hi, 0.0, WALL_CM, "plaster", tint_neg if tint_neg else tint_pos, collides)

    a = a0
    for centre, width, kind in sorted(openings):
        lo, hi = centre - width / 2, centre + width / 2
        solid(a, lo, 0.0, height)
        if kind == "door":
            solid(lo, hi, DOOR_TOP_CM, height, collides=False)
        else:
            solid(lo, hi, 0.0, SILL_CM)
            solid(lo, hi, WINDOW_TOP_CM, height, collides=False)
            add(lo, hi, SILL_CM, WINDOW_TOP_CM, 0.0, 4.0, "glass", (1.0, 1.0, 1.0), True)
        a = hi
    solid(a, a1, 0.0, height)


def build_indoor(seed: int) -> Layout:
    rng = np.random.default_rng([int(seed), 0x1D0])
    cw = float(rng.choice([300.0, 350.0, 400.0]))
    height = float(rng.choice([280.0, 300.0, 320.0]))
    n_rooms = int(rng.integers(4, 7))
    length = _al(n_rooms * float(rng.uniform(560.0, 720.0)))
    depth_n = _al(float(rng.uniform(500.0, 800.0)))
    depth_s = _al(float(rng.uniform(500.0, 800.0)))
    y_n0, y_n1 = cw / 2, cw / 2 + depth_n
    y_s0, y_s1 = -cw / 2 - depth_s, -cw / 2
    corridor_tint = WALL_TINTS[int(rng.integers(len(WALL_TINTS)))]

    rooms = []  # (x0, x1, y0, y1, side, tint, floor, type)
    for side, (y0, y1) in (("N", (y_n0, y_n1)), ("S", (y_s0, y_s1))):
        b = _partition(rng, length, n_rooms + int(rng.integers(-1, 2)))
        for x0, x1 in zip(b[:-1], b[1:]):
            rooms.append((x0, x1, y0, y1, side, WALL_TINTS[int(rng.integers(len(WALL_TINTS)))],
                          ROOM_FLOORS[int(rng.integers(len(ROOM_FLOORS)))], ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]))

    boxes: list[Box] = []
    props: list[Prop] = []
    ground: list[GroundQuad] = [GroundQuad((length / 2, 0.0), (length / 2, cw / 2), "tiles_dark" if rng.random() < 0.5 else "tiles", 1)]
    doors: list[tuple[float, float, str, int]] = []  # (x, y, wall orientation 'x'|'y', room index) of door centres

    # corridor walls with one doorway per room
    for side, yc in (("N", y_n0), ("S", y_s1)):
        openings = []
        for ri, r in enumerate(rooms):
            if r[4] != side:
                continue
            xd = _al(float(rng.uniform(r[0] + 150.0, r[1] - 150.0)))
            openings.append((xd, DOOR_CM, "door"))
            doors.append((xd, yc, "x", ri))
        # one stretch per room, so that the room side of the wall takes that room's colour
        for ri, r in enumerate(rooms):
            if r[4] != side:
                continue
            ops = [o for o in openings if r[0] < o[0] < r[1]]
            t_room = r[5]
            _wall(boxes, True, yc, r[0], r[1], ops, corridor_tint if side == "N" else t_room,
                  t_room if side == "N" else corridor_tint, height)

    # partition walls between neighbouring rooms, sometimes with a doorway
    for side, (y0, y1) in (("N", (y_n0, y_n1)), ("S", (y_s0, y_s1))):
        side_rooms = [(ri, r) for ri, r in enumerate(rooms) if r[4] == side]
        for (ia, ra), (ib, rb) in zip(side_rooms[:-1], side_rooms[1:]):
            ops = []
            if rng.random() < 0.4 and y1 - y0 >= 450.0:
                yd = _al(float(rng.uniform(y0 + 150.0, y1 - 150.0)))
                ops.append((yd, DOOR_CM, "door"))
                doors.append((ra[1], yd, "y", ia))
                doors.append((ra[1], yd, "y", ib))
            _wall(boxes, False, ra[1], y0 + WALL_CM / 2, y1 - WALL_CM / 2, ops, ra[5], rb[5], height)

    # exterior walls with windows
    def windows(a0: float, a1: float) -> list[tuple[float, float, str]]:
        span = a1 - a0
        n = 2 if span >= 650.0 else 1
        w = float(rng.choice([120.0, 140.0, 160.0]))
        return [(a0 + span * (k + 1) / (n + 1), w, "window") for k in range(n)]

    hw = WALL_CM / 2  # exterior walls run on past the corners so that they close them
    for side, yc in (("N", y_n1), ("S", y_s0)):
        for r in rooms:
            if r[4] == side:
                _wall(boxes, True, yc, r[0] - (hw if r[0] == 0.0 else 0.0), r[1] + (hw if r[1] == length else 0.0),
                      windows(r[0], r[1]), r[5], r[5], height, two_sided=False)
    for xc, pick in ((0.0, 0), (length, 1)):
        end_rooms = [r for r in rooms if r[pick] == xc]
        for r in end_rooms:
            _wall(boxes, False, xc, r[2] - hw, r[3] + hw, windows(r[2], r[3]), r[5], r[5], height, two_sided=False)
        _wall(boxes, False, xc, y_s1, y_n0, windows(y_s1, y_n0) if cw >= 350.0 else [], corridor_tint, corridor_tint,
              height, two_sided=False)

    # door leaves, swung open against the room side of each corridor doorway
    for xd, yd, orient, ri in doors:
        if orient != "x":
            continue
        r = rooms[ri]
        into = 1.0 if r[4] == "N" else -1.0
        hinge_x = xd - DOOR_CM / 2 + 3.0
        props.append(prop("door", hinge_x, yd + into * (WALL_CM / 2 + 50.0), 0.0, (5.0, 100.0, 210.0), variant=ri % 3))

    # floors, furniture, NPC loops
    lanes: list[np.ndarray] = [racetrack_loop(np.array([[150.0, 0.0], [length - 150.0, 0.0]]), cw / 2 - 90.0)]
    for ri, r in enumerate(rooms):
        x0, x1, y0, y1 = r[0], r[1], r[2], r[3]
        ground.append(GroundQuad(((x0 + x1) / 2, (y0 + y1) / 2), ((x1 - x0) / 2, (y1 - y0) / 2), r[6], 1))
        keep_out = []
        for xd, yd, orient, rj in doors:
            if rj != ri:
                continue
            if orient == "x":
                keep_out.append((xd - DOOR_CM / 2 - 60.0, xd + DOOR_CM / 2 + 60.0, yd - 200.0, yd + 200.0))
            else:
                keep_out.append((xd - 200.0, xd + 200.0, yd - DOOR_CM / 2 - 60.0, yd + DOOR_CM / 2 + 60.0))
        centre_table = _furnish(rng, props, r, keep_out)
        if not centre_table and min(x1 - x0, y1 - y0) >= 480.0 and rng.random() < 0.7:
            inset = 150.0
            lanes.append(rounded_rect_loop(x0 + inset, y0 + inset, x1 - inset, y1 - inset, 120.0))

    ceiling = GroundQuad((length / 2, (y_s0 + y_n1) / 2), (length / 2, (y_n1 - y_s0) / 2), "ceiling", 0,
                         z_cm=height, facing_down=True)
    ground.append(ceiling)
    shapes = static_shapes_of(tuple(boxes), tuple(props))
    pad = WALL_CM / 2
    return Layout(
        scene="indoor", seed=int(seed), bounds_cm=(-pad, y_s0 - pad, length + pad, y_n1 + pad), cell_cm=50.0,
        ground=tuple(ground), boxes=tuple(boxes), props=tuple(props),
        npc_lanes=clear_lanes(lanes, shapes, NPC_RADIUS_CM + 5.0), vehicle_lanes=(),
        max_npcs=12, max_vehicles=0, ceiling_z_cm=height, backdrop="none",
        npc_speed_cm_s=(100.0, 140.0), static_shapes=shapes,
    )


FURNITURE = {  # kind: (depth, width, height) ranges; the front faces the room (local +x)
    "shelf": ((40.0, 40.0), (120.0, 200.0), (190.0, 210.0)),
    "desk": ((70.0, 80.0), (140.0, 180.0), (75.0, 75.0)),
    "sofa": ((80.0, 90.0), (180.0, 220.0), (80.0, 85.0)),
    "crate": ((70.0, 90.0), (70.0, 90.0), (70.0, 90.0)),
    "plant": ((50.0, 60.0), (50.0, 60.0), (110.0, 150.0)),
}
ROOM_MIX = {
    "office": ["desk", "desk", "shelf", "plant", "desk"],
    "living": ["sofa", "shelf", "plant", "sofa", "crate"],
    "storage": ["crate", "crate", "shelf", "crate", "shelf"],
    "library": ["shelf", "shelf", "shelf", "desk", "plant"],
}


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float], gap: float) -> bool:
    return a[0] < b[1] + gap and b[0] < a[1] + gap and a[2] < b[3] + gap and b[2] < a[3] + gap


def _furnish(rng: np.random.Generator, props: list[Prop], room: tuple, keep_out: list) -> bool:
    """Place furniture along the walls of a room; maybe a table in the middle. True if a centre table was placed."""
    x0, x1, y0, y1 = room[0] + WALL_CM / 2, room[1] - WALL_CM / 2, room[2] + WALL_CM / 2, room[3] - WALL_CM / 2
    taken = list(keep_out)
    walls = [  # (inward yaw deg, fixed coordinate, along range, along axis is x?)
        (90.0, y0, (x0, x1), True), (-90.0, y1, (x0, x1), True), (0.0, x0, (y0, y1), False), (180.0, x1, (y0, y1), False)]
    for kind in ROOM_MIX[room[7]] + ROOM_MIX[room[7]][:3]:
        (d0, d1), (w0, w1), (h0, h1) = FURNITURE[kind]
        d, w, h = float(rng.uniform(d0, d1)), float(rng.uniform(w0, w1)), float(rng.uniform(h0, h1))
        yaw, fixed, (a_lo, a_hi), along_x = walls[int(rng.integers(4))]
        if a_hi - a_lo < w + 40.0:
            continue
        a = float(rng.uniform(a_lo + w / 2 + 5.0, a_hi - w / 2 - 5.0))
        inward = 1.0 if yaw in (90.0, 0.0) else -1.0
        c = fixed + inward * (d / 2 + 2.0)
        cx, cy = (a, c) if along_x else (c, a)
        hx, hy = (w / 2, d / 2) if along_x else (d / 2, w / 2)
        rect = (cx - hx, cx + hx, cy - hy, cy + hy)
        if any(_overlaps(rect, t, 60.0) for t in taken):
            continue
        taken.append(rect)
        if kind == "desk":
            props.append(prop("table", cx, cy, yaw, (d, w, h), variant=1))
            if rng.random() < 0.5:
                props.append(prop("teapot", cx, cy, float(rng.uniform(0, 360)), (25.0, 25.0, 20.0), z=h))
            # a chair in front of the desk (inside the free margin kept by the 60 cm gap)
            fx, fy = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
            props.append(prop("chair", cx + fx * (d / 2 + 20.0), cy + fy * (d / 2 + 20.0), yaw + 180.0, (45.0, 45.0, 90.0)))
        elif kind == "crate":
            props.append(prop("crate", cx, cy, float(rng.uniform(-8, 8)) + yaw, (d, w, h), variant=int(rng.integers(2))))
            if rng.random() < 0.4:
                s = 0.8 * min(d, w)
                props.append(prop("crate", cx, cy, yaw + 20.0, (s, s, s), z=h, solid=False))
        else:
            props.append(prop(kind, cx, cy, yaw, (d, w, h), variant=int(rng.integers(3))))
    # a table in the middle of large rooms
    rx, ry = (x0 + x1) / 2, (y0 + y1) / 2
    if min(x1 - x0, y1 - y0) >= 500.0 and rng.random() < 0.45:
        tw, td = float(rng.uniform(140.0, 200.0)), float(rng.uniform(80.0, 100.0))
        rect = (rx - tw / 2, rx + tw / 2, ry - td / 2, ry + td / 2)
        if not any(_overlaps(rect, t, 80.0) for t in taken):
            props.append(prop("table", rx, ry, 90.0, (td, tw, 75.0), variant=0))
            props.append(prop("teapot", rx + 20.0, ry, float(rng.uniform(0, 360)), (25.0, 25.0, 20.0), z=75.0))
            return True
    return False
