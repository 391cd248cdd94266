"""unreal_bridge.routes: deterministic tours that never leave the walkable area."""

from __future__ import annotations

import numpy as np
import pytest

from unreal_bridge.navmesh import ZIGZAG_SMALL, NavMesh, grid_mesh, zigzag_grid
from unreal_bridge.routes import (
    LookAround,
    Pause,
    RouteConfig,
    Strafe,
    Walk,
    generate_route,
    jitter_offsets,
    resample_polyline,
    route_is_clear,
    segment_clear,
)


@pytest.fixture(scope="module")
def zigzag() -> NavMesh:
    v, p = zigzag_grid(**ZIGZAG_SMALL)
    return NavMesh(v, p)


@pytest.fixture(scope="module")
def obstacles() -> NavMesh:
    """A 20 x 20 m yard with pillars and two islands (a fenced-off strip on the right)."""
    blocked = np.zeros((20, 24), bool)
    for x, y in [(3, 3), (8, 5), (12, 12), (5, 14), (15, 6), (9, 9)]:
        blocked[y : y + 2, x : x + 2] = True
    blocked[:, 20] = True  # the strip x in [21, 24) is its own island
    v, p = grid_mesh(blocked, 100.0, height_fn=lambda x, y: 0.05 * x)
    return NavMesh(v, p)


def test_same_seed_same_route_different_seed_different(zigzag):
    a, b = generate_route(zigzag, 7), generate_route(zigzag, 7)
    assert np.array_equal(a.points_cm, b.points_cm) and np.array_equal(a.waypoints_cm, b.waypoints_cm)
    assert [e.kind for e in a.events] == [e.kind for e in b.events]
    c = generate_route(zigzag, 8)
    assert not np.array_equal(a.points_cm[: len(c.points_cm)], c.points_cm[: len(a.points_cm)])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_routes_stay_on_the_mesh(zigzag, obstacles, seed):
    cfg = RouteConfig(num_waypoints=4, jitter_cm=80.0, strafe_prob=0.8)
    for mesh in (zigzag, obstacles):
        r = generate_route(mesh, seed, cfg)
        assert route_is_clear(mesh, r)  # every segment passes the mesh raycast
        assert mesh.path_inside(r.points_cm, step_cm=5.0)  # independent check by dense point location
        assert np.all(mesh.island[[mesh.nearest_poly(p).poly for p in r.points_cm]] == r.island)


def test_waypoints_are_far_apart_and_not_revisited(zigzag):
    cfg = RouteConfig(num_waypoints=6, min_leg_cm=1500.0, revisit_radius_cm=800.0, revisit_memory=3)
    r = generate_route(zigzag, 11, cfg)
    wp = r.waypoints_cm
    assert len(wp) >= 4
    for i in range(1, len(wp)):
        recent = wp[max(0, i - 3) : i]
        assert np.min(np.linalg.norm(recent[:, :2] - wp[i, :2], axis=1)) >= 800.0
    legs = [e for e in r.events if isinstance(e, Walk)]
    assert all(leg.length_cm >= 1500.0 for leg in legs[:3])


def test_events_are_well_formed(obstacles):
    cfg = RouteConfig(num_waypoints=8, pause_prob=1.0, look_prob=1.0, strafe_prob=1.0)
    r = generate_route(obstacles, 5, cfg)
    kinds = [e.kind for e in r.events]
    assert kinds[0] == "walk" and {"pause", "look_around", "strafe"} <= set(kinds)
    for e in r.events:
        if isinstance(e, Pause):
            assert cfg.pause_s[0] <= e.duration_s <= cfg.pause_s[1]
        elif isinstance(e, LookAround):
            assert cfg.look_span_deg[0] <= abs(e.yaw_span_deg) <= cfg.look_span_deg[1]
        elif isinstance(e, Strafe):
            assert segment_clear(obstacles, e.from_cm, e.to_cm) and e.side in ("left", "right")
            assert obstacles.contains_points(e.to_cm[None])[0]
        else:
            assert isinstance(e, Walk) and e.points_cm.shape[1] == 3


def test_start_and_island_are_respected(obstacles):
    r = generate_route(obstacles, 2, RouteConfig(num_waypoints=3, min_leg_cm=200.0), start_cm=(2250.0, 1000.0, 112.5))
    assert np.allclose(r.waypoints_cm[0, :2], (2250.0, 1000.0))
    assert r.island == obstacles.island[obstacles.nearest_poly((2250.0, 1000.0, 112.5)).poly]
    assert np.all(r.points_cm[:, 0] >= 2100.0 - 1e-6)  # the fenced strip only
    assert route_is_clear(obstacles, r)


def test_jitter_is_smooth_bounded_and_zero_at_the_ends():
    rng = np.random.default_rng(0)
    arc = np.linspace(0.0, 5000.0, 200)
    off = jitter_offsets(arc, 60.0, 600.0, rng)
    assert np.all(np.abs(off) <= 60.0 + 1e-9) and abs(off[0]) < 1e-9 and abs(off[-1]) < 1e-9
    assert np.max(np.abs(off)) > 10.0
    # smooth: |d offset / ds| <= A (2 pi / L_min + pi / total) with L_min = 0.6 * wavelength
    slope = 60.0 * (2 * np.pi / 360.0 + np.pi / 5000.0)
    assert np.max(np.abs(np.diff(off) / np.diff(arc))) <= slope
    pts, orig = resample_polyline(np.array([[0, 0, 0], [1000, 0, 0.0]]), 150.0)
    assert len(pts) == 8 and orig[0] and orig[-1] and not orig[1:-1].any()


def test_jitter_moves_the_walk_off_the_shortest_path(zigzag):
    r = generate_route(zigzag, 4, RouteConfig(num_waypoints=2, jitter_cm=80.0))
    walk = next(e for e in r.events if isinstance(e, Walk))
    straight = zigzag.find_path(walk.points_cm[0], walk.points_cm[-1])
    assert walk.length_cm > straight.length_cm  # wiggles add length


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="pause_prob"):
        RouteConfig(pause_prob=2.0)
    with pytest.raises(ValueError, match="num_waypoints"):
        RouteConfig(num_waypoints=0)
