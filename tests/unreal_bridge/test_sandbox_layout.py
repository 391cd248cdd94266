"""Procedural layouts, walkable grids and actor rules: pure NumPy, no rendering."""

import numpy as np
import pytest

from unreal_bridge.sandbox.actors import spawn_npcs, spawn_vehicles
from unreal_bridge.sandbox.layout import SCENES, build_layout
from unreal_bridge.sandbox.paths import signed_area
from unreal_bridge.sandbox.textures import MATERIALS, TEXTURES, texture_image
from unreal_bridge.sandbox.walkable import WalkableGrid

RADIUS_CM = 30.0


@pytest.fixture(scope="module", params=SCENES)
def scene_layout(request):
    layout = build_layout(request.param, 11)
    grid = WalkableGrid.from_shapes(layout.static_shapes, layout.bounds_cm, layout.cell_cm, RADIUS_CM)
    return layout, grid


def _fingerprint(layout):
    return (
        [(b.center_cm, b.half_cm, b.yaw_deg, b.side) for b in layout.boxes],
        [(p.kind, p.pos_cm, p.yaw_deg, p.size_cm) for p in layout.props],
        [lane.tobytes() for lane in layout.npc_lanes + layout.vehicle_lanes],
    )


@pytest.mark.parametrize("scene", SCENES)
def test_same_seed_same_layout_other_seed_other_layout(scene):
    a, b, c = build_layout(scene, 5), build_layout(scene, 5), build_layout(scene, 6)
    assert _fingerprint(a) == _fingerprint(b)
    assert _fingerprint(a) != _fingerprint(c)


def test_unknown_scene_is_rejected():
    with pytest.raises(ValueError, match=r"scene='moon'.*allowed: \['city', 'indoor', 'park'\]"):
        build_layout("moon", 0)


def test_layouts_have_content(scene_layout):
    layout, grid = scene_layout
    assert len(layout.boxes) >= 4 and len(layout.props) >= 10
    assert layout.npc_lanes, "every scene has somewhere for NPCs to walk"
    assert grid.n_cells > 500
    if layout.scene == "city":
        assert len(layout.vehicle_lanes) == 10 and layout.max_vehicles > 0
    else:
        assert not layout.vehicle_lanes
    for name in {b.side for b in layout.boxes} | {q.material for q in layout.ground}:
        assert name in MATERIALS


def test_points_in_walkable_cells_are_collision_free(scene_layout):
    layout, grid = scene_layout
    rng = np.random.default_rng(0)
    pts = grid.sample(rng, 4000)
    assert grid.contains(pts).all()
    assert layout.static_shapes.signed_distance(pts).min() >= RADIUS_CM


def test_obstacle_interiors_are_never_walkable(scene_layout):
    layout, grid = scene_layout
    shapes = layout.static_shapes
    inside = np.concatenate([shapes.rect_c, shapes.circ_c])
    assert not grid.contains(inside).any()
    # and neither is any point within the agent radius of an obstacle
    rng = np.random.default_rng(1)
    x0, y0, x1, y1 = layout.bounds_cm
    pts = rng.uniform((x0, y0), (x1, y1), (20000, 2))
    near = shapes.signed_distance(pts) < RADIUS_CM
    assert not grid.contains(pts[near]).any()


def test_walkable_mesh_is_a_conforming_quad_mesh(scene_layout):
    layout, grid = scene_layout
    verts, polys = grid.mesh()
    assert verts.dtype == np.float64 and verts.shape[1] == 3 and np.all(verts[:, 2] == 0.0)
    assert len(np.unique(verts, axis=0)) == len(verts)
    q = np.array(polys)
    assert q.shape == (grid.n_cells, 4) and q.min() >= 0 and q.max() < len(verts)
    corners = verts[q][:, :, :2]
    # counter-clockwise (x right, y up) and convex: every turn is to the left
    e = np.roll(corners, -1, axis=1) - corners
    cross = e[:, :, 0] * np.roll(e, -1, axis=1)[:, :, 1] - e[:, :, 1] * np.roll(e, -1, axis=1)[:, :, 0]
    assert (cross > 0).all()
    assert all(signed_area(c) > 0 for c in corners[:50])
    # edges are exactly one cell long, on the grid: no vertex can sit inside another polygon's edge (no T-junctions)
    np.testing.assert_allclose(np.linalg.norm(e, axis=2), grid.cell_cm)
    # every edge is shared by at most two polygons, in opposite directions
    edges = np.stack([q, np.roll(q, -1, axis=1)], axis=2).reshape(-1, 2)
    assert len(np.unique(edges, axis=0)) == len(edges)
    # the walkable region is one connected piece: every polygon reachable through shared edges
    from scipy import ndimage
    assert ndimage.label(grid.free)[1] == 1


def test_lanes_are_clear_of_static_obstacles(scene_layout):
    layout, _ = scene_layout
    for lane in layout.npc_lanes:
        assert layout.static_shapes.signed_distance(lane).min() >= 30.0
    for lane in layout.vehicle_lanes:
        assert layout.static_shapes.signed_distance(lane).min() >= 120.0  # half a car's width and a margin


def test_vehicles_drive_on_the_right_around_blocks():
    layout = build_layout("city", 3)
    ring, blocks = layout.vehicle_lanes[0], layout.vehicle_lanes[1:]
    assert signed_area(ring) < 0  # the level's edge is on the driver's right
    for lane in blocks:  # the block is on the driver's right: right = (-dy, dx)
        d = np.roll(lane, -1, axis=0) - lane
        right = np.stack([-d[:, 1], d[:, 0]], axis=1)
        assert (np.einsum("ij,ij->i", lane.mean(axis=0) - lane, right) > 0).all()


@pytest.mark.parametrize("scene", SCENES)
def test_movers_keep_their_distance_and_stop_for_the_agent(scene):
    layout = build_layout(scene, 4)
    rng = np.random.default_rng(0)
    npcs = spawn_npcs(rng, layout.npc_lanes, layout.max_npcs * 2, layout.npc_speed_cm_s)
    cars = spawn_vehicles(rng, layout.vehicle_lanes, layout.max_vehicles * 2, layout.vehicle_speed_cm_s)
    assert len(npcs) > 0
    for group in (npcs, cars):
        if not len(group):
            continue
        # an agent standing right in front of mover 0
        yaw = np.radians(group.yaw_deg[0])
        agent = group.pos_cm[0] + (group.half_len_cm[0] + 45.0) * np.array([np.cos(yaw), np.sin(yaw)])
        start0 = group.s_cm[0]
        for _ in range(250):
            group.step(0.04, agent, RADIUS_CM)
            gaps = group._gaps()
            assert (gaps > 0).all(), "movers on a lane never overlap"
            assert group.shapes().signed_distance(agent[None])[0] >= RADIUS_CM, "no mover runs into the agent"
        assert group.s_cm[0] == pytest.approx(start0, abs=30.0)  # stopped for the agent
        assert group.speed_cm_s[1:].max() > 0  # the others keep going


def test_textures_are_deterministic_tileable_powers_of_two():
    for name in TEXTURES:
        img = texture_image(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.shape[0] == img.shape[1] and img.shape[0] & (img.shape[0] - 1) == 0
        assert img.std() > 2.0, name
    a = texture_image("bricks")
    from unreal_bridge.sandbox import textures

    textures._texture_cached.cache_clear()
    np.testing.assert_array_equal(a, texture_image("bricks"))
