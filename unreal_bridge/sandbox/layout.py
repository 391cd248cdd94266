"""Scene layout: pure data describing a procedural level, in the Unreal frame (cm, Z up, X forward, Y right).

A :class:`Layout` is what a scene generator (``scenes/city.py``, ``scenes/indoor.py``, ``scenes/park.py``)
produces from a seed. It holds everything the rest of the sandbox needs and nothing about rendering APIs:

* ``ground``: flat textured surfaces at ground level (roads, sidewalks, grass, floors), drawn in layer order;
* ``boxes``: solid boxes (buildings, walls, furniture parts) with materials, colliding or not;
* ``props``: placed objects of a known kind (trees, benches, lamps, ...), each with its collision footprint;
* ``npc_lanes`` / ``vehicle_lanes``: closed loops along which NPCs and vehicles move;
* ``static_shapes``: the 2-D collision footprints of everything static (see :mod:`.collision`).

Geometry that is the same for every seed is not stored: the renderer turns each prop ``kind`` into meshes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .collision import Circle, Rect, ShapeSet
from .paths import resample_closed

RGB = tuple[float, float, float]
SCENES: tuple[str, ...] = ("city", "indoor", "park")
NPC_RADIUS_CM: float = 30.0


@dataclass(frozen=True)
class GroundQuad:
    """A flat rectangle at height ``z_cm`` (ground level unless a ceiling), drawn in ``layer`` order.

    ``uv_repeat_m`` overrides the material's repeat size; the texture's u axis runs along the quad's own
    x axis (rotated by ``yaw_deg``). ``facing_down`` is for ceilings."""

    center_cm: tuple[float, float]
    half_cm: tuple[float, float]
    material: str
    layer: int = 0
    yaw_deg: float = 0.0
    z_cm: float = 0.0
    uv_repeat_m: tuple[float, float] | None = None
    tint: RGB = (1.0, 1.0, 1.0)
    facing_down: bool = False


@dataclass(frozen=True)
class GroundRibbon:
    """A strip of ``width_cm`` along a polyline at ground level (park paths), drawn in ``layer`` order."""

    points_cm: np.ndarray
    width_cm: float
    material: str
    layer: int = 1
    closed: bool = False


@dataclass(frozen=True)
class GroundDisc:
    """A flat disc at ground level (ponds, small plazas)."""

    center_cm: tuple[float, float]
    radius_cm: float
    material: str
    layer: int = 1


@dataclass(frozen=True)
class Box:
    """A solid box: centre and half extents (cm) along its own axes, rotated ``yaw_deg`` about Z.

    ``side``/``top``: materials of the vertical faces and of the top face (None: top not drawn).
    ``uv_repeat_m``: optional ``(u along local x faces, u along local y faces, v vertical)`` repeat sizes in
    metres, so that e.g. a facade shows whole window bays. ``collides``: part of the static collision."""

    center_cm: tuple[float, float, float]
    half_cm: tuple[float, float, float]
    side: str
    top: str | None = None
    yaw_deg: float = 0.0
    tint: RGB = (1.0, 1.0, 1.0)
    collides: bool = True
    uv_repeat_m: tuple[float, float, float] | None = None
    bottom: bool = False


@dataclass(frozen=True)
class Prop:
    """A placed object of a known ``kind`` (see :data:`PROP_KINDS`): position of its base (cm), yaw, size.

    ``size_cm`` is the object's overall extent ``(along x, along y, height)``; ``variant`` picks a look;
    ``collider`` is its 2-D footprint (None: walk-through, e.g. a teapot on a table)."""

    kind: str
    pos_cm: tuple[float, float, float]
    yaw_deg: float
    size_cm: tuple[float, float, float]
    collider: Rect | Circle | None
    variant: int = 0
    tint: RGB = (1.0, 1.0, 1.0)


PROP_KINDS: tuple[str, ...] = (
    "tree", "conifer", "bush", "rock", "bench", "lamp", "bin", "fountain", "statue",
    "table", "chair", "shelf", "crate", "plant", "sofa", "teapot", "door",
)


def prop(kind: str, x: float, y: float, yaw_deg: float, size_cm: tuple[float, float, float], *, z: float = 0.0,
         variant: int = 0, tint: RGB = (1.0, 1.0, 1.0), solid: bool = True) -> Prop:
    """Make a :class:`Prop` with the collision footprint its kind implies (trunks for trees, boxes for furniture)."""
    if kind not in PROP_KINDS:
        raise ValueError(f"unknown prop kind {kind!r}; known: {list(PROP_KINDS)}")
    sx, sy, _ = size_cm
    collider: Rect | Circle | None
    if not solid or kind == "teapot":
        collider = None
    elif kind in ("tree", "conifer"):
        collider = Circle((x, y), 0.09 * sx)  # the trunk; the crown is above head height
    elif kind in ("bush", "rock", "fountain", "statue", "plant", "bin"):
        collider = Circle((x, y), 0.5 * max(sx, sy))
    elif kind == "lamp":
        collider = Circle((x, y), 12.0)
    else:
        collider = Rect((x, y), (0.5 * sx, 0.5 * sy), yaw_deg)
    return Prop(kind, (x, y, z), yaw_deg, size_cm, collider, variant, tint)


@dataclass(frozen=True)
class Layout:
    """A procedural level from ``(scene, seed)``; see the module docstring. All lengths in cm.

    ``bounds_cm``: ``(x0, y0, x1, y1)`` of the area the agent can reach (the walkable grid covers it).
    ``cell_cm``: the walkable grid's cell size. ``ceiling_z_cm``: indoor ceiling height (None outdoors).
    ``max_npcs``/``max_vehicles``: counts at density 1.0. ``npc_speed_cm_s``/``vehicle_speed_cm_s``: ranges.
    ``backdrop``: what surrounds the level beyond its boundary (``"hills"``, ``"city"`` or ``"none"``)."""

    scene: str
    seed: int
    bounds_cm: tuple[float, float, float, float]
    cell_cm: float
    ground: tuple[GroundQuad, ...]
    boxes: tuple[Box, ...]
    props: tuple[Prop, ...]
    npc_lanes: tuple[np.ndarray, ...]
    vehicle_lanes: tuple[np.ndarray, ...]
    max_npcs: int
    max_vehicles: int
    ribbons: tuple[GroundRibbon, ...] = ()
    discs: tuple[GroundDisc, ...] = ()
    extra_shapes: tuple[Rect | Circle, ...] = ()
    ceiling_z_cm: float | None = None
    backdrop: str = "none"
    npc_speed_cm_s: tuple[float, float] = (110.0, 150.0)
    vehicle_speed_cm_s: tuple[float, float] = (700.0, 1000.0)
    static_shapes: ShapeSet = field(default=None, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.static_shapes is None:
            object.__setattr__(self, "static_shapes", static_shapes_of(self.boxes, self.props, self.extra_shapes))

    @property
    def outdoor(self) -> bool:
        return self.ceiling_z_cm is None


def static_shapes_of(boxes: tuple[Box, ...], props: tuple[Prop, ...], extra: tuple[Rect | Circle, ...] = ()) -> ShapeSet:
    """The static collision footprints: colliding boxes, prop colliders and extra shapes (e.g. a pond)."""
    rects: list[Rect] = [Rect((b.center_cm[0], b.center_cm[1]), (b.half_cm[0], b.half_cm[1]), b.yaw_deg)
                         for b in boxes if b.collides]
    circles: list[Circle] = []
    for item in [p.collider for p in props] + list(extra):
        if isinstance(item, Rect):
            rects.append(item)
        elif isinstance(item, Circle):
            circles.append(item)
    return ShapeSet.from_shapes(rects, circles, "static")


def clear_lanes(lanes: list[np.ndarray], shapes: ShapeSet, clearance_cm: float, step_cm: float = 25.0) -> tuple[np.ndarray, ...]:
    """Keep the lanes along which a mover of radius ``clearance_cm`` never touches a static shape."""
    kept = []
    for lane in lanes:
        dense = resample_closed(lane, step_cm)
        if len(shapes) == 0 or float(shapes.signed_distance(dense).min()) >= clearance_cm:
            kept.append(resample_closed(lane, 50.0))
    return tuple(kept)


def build_layout(scene: str, seed: int) -> Layout:
    """The layout of ``scene`` (one of :data:`SCENES`) generated from ``seed`` (same seed, same layout)."""
    if scene == "city":
        from .scenes.city import build_city as build
    elif scene == "indoor":
        from .scenes.indoor import build_indoor as build
    elif scene == "park":
        from .scenes.park import build_park as build
    else:
        raise ValueError(f"scene={scene!r} is not supported; allowed: {list(SCENES)}")
    return build(int(seed))
