"""unreal_bridge.navmesh: construction, validation, loaders, location, paths, sampling, raycast, sliding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csgraph, csr_matrix

from unreal_bridge.navmesh import (
    ZIGZAG_SMALL,
    NavMesh,
    NavMeshError,
    OffMeshError,
    grid_mesh,
    load_json,
    load_obj,
    load_walkable,
    mesh_from_dict,
    recast_to_unreal,
    save_obj,
    string_pull,
    to_dict,
    unreal_to_recast,
    zigzag_grid,
)


# ---------------------------------------------------------------------------------------------- meshes
def room_with_pillar() -> NavMesh:
    """10 m x 10 m room (cm) with a 2 m x 2 m pillar in the middle, as 8 convex quads around it."""
    xs = [0.0, 400.0, 600.0, 1000.0]
    verts = [(x, y, 0.0) for y in xs for x in xs]  # vertex (i, j) -> j * 4 + i

    def v(i, j):
        return j * 4 + i

    quads = [
        [v(i, j), v(i + 1, j), v(i + 1, j + 1), v(i, j + 1)] for j in range(3) for i in range(3) if (i, j) != (1, 1)
    ]
    return NavMesh(verts, quads, name="room_with_pillar")


def l_corridor() -> NavMesh:
    """L-shaped corridor 2 m wide: x in [0, 1000] for y in [0, 200], and x in [800, 1000] for y up to 1000."""
    blocked = np.ones((5, 5), dtype=bool)
    blocked[0, :] = False
    blocked[:, 4] = False
    v, p = grid_mesh(blocked, 200.0)
    return NavMesh(v, p, name="l_corridor")


def brute_force_geodesic(mesh: NavMesh, s: np.ndarray, g: np.ndarray, step_cm: float = 2.0) -> float:
    """Independent reference: Dijkstra over s, g and the reflex vertices (sum of the incident polygons'
    angles > 180 deg), edges = straight segments whose samples (every ``step_cm``) all lie on the mesh."""
    angle = np.zeros(mesh.num_vertices)
    for p in range(mesh.num_polys):
        vs = mesh.poly_verts[p, : mesh.poly_nverts[p]]
        xy = mesh.vertices_cm[vs, :2]
        for k in range(len(vs)):
            a, b = xy[k - 1] - xy[k], xy[(k + 1) % len(vs)] - xy[k]
            angle[vs[k]] += math.atan2(abs(a[0] * b[1] - a[1] * b[0]), float(a @ b))
    reflex = np.flatnonzero((angle > math.pi + 1e-9) & (angle < 2 * math.pi - 1e-9))
    pts = np.concatenate([s[None, :2], g[None, :2], mesh.vertices_cm[reflex, :2]])
    n = len(pts)
    rows, cols, w = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            a, b = pts[i], pts[j]
            length = float(np.hypot(*(b - a)))
            k = max(2, int(length / step_cm) + 1)
            t = np.linspace(0.0, 1.0, k)[:, None]
            if np.all(mesh.locate_xy(a + t * (b - a)) >= 0):
                rows.append(i)
                cols.append(j)
                w.append(max(length, 1e-9))
    d = csgraph.dijkstra(csr_matrix((w, (rows, cols)), shape=(n, n)), directed=False, indices=0)
    return float(d[1])


# ---------------------------------------------------------------------------------------------- build
def test_build_topology_winding_and_islands():
    m = room_with_pillar()
    assert m.num_polys == 8 and m.num_islands == 1 and m.is_planar
    assert np.all(m.areas_xy_cm2 > 0)  # all CCW after normalisation
    # a clockwise copy is normalised to the same mesh
    cw = NavMesh(m.vertices_cm, [m.poly_verts[i, :4][::-1].tolist() for i in range(8)])
    assert np.all(cw.areas_xy_cm2 > 0)
    assert m.corners.num_corners == 4  # the pillar's corners are the only reflex vertices
    a, b = 0, m.neighbors(0)[0]
    left, right = m.portal(a, b)
    assert left.shape == (3,) and not np.allclose(left, right)


def test_nan_vertices_rejected_with_index():
    v, p = grid_mesh(np.zeros((2, 2), bool))
    v[3, 1] = np.nan
    with pytest.raises(NavMeshError, match=r"vertex 3"):
        NavMesh(v, p)


@pytest.mark.parametrize(
    "polys, pattern",
    [
        ([[0, 1, 2], [0, 1, 1]], r"polygon 1 repeats a vertex"),
        ([[0, 1, 2], [0, 1, 4]], r"polygon 1 has zero area"),
        ([[0, 1, 3, 5, 2]], r"polygon 0 is not convex"),
        ([[0, 1]], r"polygon 0 has 2 vertex"),
        ([[0, 1, 9]], r"out of range"),
    ],
)
def test_degenerate_polygons_raise_with_polygon_index(polys, pattern):
    verts = [(0, 0, 0), (100, 0, 0), (0, 100, 0), (100, 100, 0), (200, 0, 0), (30, 30, 0)]
    with pytest.raises(NavMeshError, match=pattern):
        NavMesh(verts, polys)


def test_non_manifold_edge_raises_or_becomes_wall():
    verts = [(0, 0, 0), (100, 0, 0), (50, 100, 0), (50, -100, 0), (50, 60, 10)]
    polys = [[0, 1, 2], [1, 0, 3], [0, 1, 4]]  # edge (0, 1) used three times
    with pytest.raises(NavMeshError, match=r"edge \(\d, \d\) is shared by 3 polygons \[0, 1, 2\]"):
        NavMesh(verts, polys)
    m = NavMesh(verts, polys, on_invalid="drop")
    assert any("non-manifold" in w for w in m.warnings)
    assert m.neighbors(0) == []


def test_drop_mode_removes_bad_polygons_and_maps_indices():
    verts = [(0, 0, 0), (100, 0, 0), (0, 100, 0), (100, 100, 0), (200, 0, 0)]
    m = NavMesh(verts, [[0, 1, 2], [0, 1, 4], [1, 3, 2]], on_invalid="drop")
    assert m.num_polys == 2 and m.source_poly_index.tolist() == [0, 2]
    assert any("dropped polygon 1" in w for w in m.warnings)


def test_duplicate_vertices_are_welded_so_faces_connect():
    # two triangles written with their own copies of the shared vertices (as many OBJ exporters do)
    verts = [(0, 0, 0), (100, 0, 0), (0, 100, 0), (100, 0, 0), (100, 100, 0), (0, 100, 0)]
    m = NavMesh(verts, [[0, 1, 2], [3, 4, 5]])
    assert m.num_islands == 1 and m.neighbors(0) == [1]


# ---------------------------------------------------------------------------------------------- loaders
def test_obj_axis_conversion_round_trip(tmp_path):
    m = l_corridor()
    rec = unreal_to_recast(m.vertices_cm)
    # Unreal2Recast(v) = (-X, Z, -Y)
    assert np.allclose(rec[:, 0], -m.vertices_cm[:, 0]) and np.allclose(rec[:, 1], m.vertices_cm[:, 2])
    assert np.allclose(rec[:, 2], -m.vertices_cm[:, 1])
    assert np.allclose(recast_to_unreal(rec), m.vertices_cm)
    path = tmp_path / "nav.obj"
    save_obj(m, path)  # Recast frame, as Unreal exports
    text = path.read_text()
    assert "v -0 0 -0" in text or "v 0 0 0" in text or "v -0 0 0" in text
    back = load_obj(path)
    assert back.num_polys == m.num_polys
    assert np.allclose(np.sort(back.vertices_cm, axis=0), np.sort(m.vertices_cm, axis=0))
    # the handedness flip reversed the winding; the loader normalised it
    assert np.all(back.areas_xy_cm2 > 0)
    r1 = m.find_path((100, 100, 0), (900, 900, 0))
    r2 = back.find_path((100, 100, 0), (900, 900, 0))
    assert r1.length_cm == pytest.approx(r2.length_cm, rel=1e-12)


def test_obj_parser_handles_slashes_negative_indices_and_reports_lines(tmp_path):
    p = tmp_path / "a.obj"
    p.write_text("# tri\nv 0 0 0\nv 0 0 -100\nv -100 0 0\nvn 0 1 0\nf 1//1 2//1 -1//1\n")
    m = load_obj(p)  # Recast frame: Y up -> Unreal Z up
    assert m.num_polys == 1 and np.allclose(m.vertices_cm[:, 2], 0)
    assert set(map(tuple, m.vertices_cm[:, :2].tolist())) == {(0.0, 0.0), (0.0, 100.0), (100.0, 0.0)}
    bad = tmp_path / "b.obj"
    bad.write_text("v 0 0 0\nv 1 0 x\n")
    with pytest.raises(NavMeshError, match=r"b.obj:2: bad vertex"):
        load_obj(bad)
    nan = tmp_path / "c.obj"
    nan.write_text("v 0 0 0\nv 100 0 0\nv nan 0 100\nf 1 2 3\n")
    with pytest.raises(NavMeshError, match=r"c.obj: .*NaN"):
        load_obj(nan)


def test_json_and_walkable_loaders(tmp_path):
    m = room_with_pillar()
    data = to_dict(m)
    p = tmp_path / "mesh.json"
    p.write_text(json.dumps(data))
    assert load_json(p).num_polys == 8
    walk = dict(data, schema="playmill.walkable/1", frame="unreal", units="cm", scene="city", seed=7)
    wp = tmp_path / "walk.json"
    wp.write_text(json.dumps(walk))
    w = load_walkable(wp)
    assert w.metadata["scene"] == "city" and w.metadata["seed"] == 7 and w.name == "city"
    with pytest.raises(NavMeshError, match="units must be 'cm'"):
        mesh_from_dict(dict(walk, units="m"))
    with pytest.raises(NavMeshError, match="schema must be"):
        load_walkable(p)
    with pytest.raises(NavMeshError, match="missing key 'polygons'"):
        mesh_from_dict({"vertices": []})


# ---------------------------------------------------------------------------------------------- location
def test_nearest_poly_and_snapping():
    m = room_with_pillar()
    hit = m.nearest_poly((100, 100, 50))
    assert hit.over and hit.dist_cm == pytest.approx(50) and np.allclose(hit.pos_cm, (100, 100, 0))
    hit = m.nearest_poly((500, 500, 0))  # inside the pillar: closest point on its boundary
    assert not hit.over and hit.dist_cm == pytest.approx(100) and m.contains_points(hit.pos_cm[None])[0]
    hit = m.nearest_poly((-30, 500, 40))
    assert hit.dist_cm == pytest.approx(50) and np.allclose(hit.pos_cm, (0, 500, 0))
    assert m.nearest_poly((-300, 500, 0), max_dist_cm=100) is None
    with pytest.raises(OffMeshError, match="from the mesh"):
        m.snap((-300, 500, 0), 100)
    with pytest.raises(ValueError, match="non-finite"):
        m.nearest_poly((np.nan, 0, 0))
    assert m.locate_xy([[100, 100], [500, 500], [2000, 0]]).tolist()[1:] == [-1, -1]


# ---------------------------------------------------------------------------------------------- paths
def test_straight_path_in_open_room():
    m = room_with_pillar()
    r = m.find_path((50, 50, 0), (950, 150, 0))
    assert r.status == "complete" and len(r.points_cm) == 2
    assert r.length_cm == pytest.approx(math.hypot(900, 100))


def test_path_around_pillar_is_the_exact_geodesic():
    m = room_with_pillar()
    for method in ("visibility", "corridor"):
        r = m.find_path((100, 500, 0), (900, 500, 0), method=method)
        assert r.status == "complete" and r.method == method
        # around two pillar corners: 2 * |(300, 100)| + 200
        assert r.length_cm == pytest.approx(2 * math.hypot(300, 100) + 200, rel=1e-12)
        assert m.path_inside(r.points_cm)
        assert r.polys[0] == m.nearest_poly((100, 500, 0)).poly and r.polys[-1] == m.nearest_poly((900, 500, 0)).poly


def test_l_corridor_bends_at_the_inner_corner():
    m = l_corridor()
    r = m.find_path((100, 100, 0), (900, 900, 0))
    assert np.allclose(r.points_cm, [[100, 100, 0], [800, 200, 0], [900, 900, 0]])
    assert r.length_cm == pytest.approx(math.hypot(700, 100) + math.hypot(100, 700))
    c = m.find_path((100, 100, 0), (900, 900, 0), method="corridor")
    assert c.length_cm == pytest.approx(r.length_cm)


def test_string_pull_on_a_hand_made_corridor():
    # portals (left, right) for a traveller moving +x: gaps x=100: y in [-50, 40]; x=200, 300: y in [0, 100]
    portals = [((100, 40, 0), (100, -50, 0)), ((200, 100, 0), (200, 0, 0)), ((300, 100, 0), (300, 0, 0))]
    pts = string_pull(portals, (0, 0, 0), (400, 400, 0))
    assert np.allclose(pts, [[0, 0, 0], [300, 100, 0], [400, 400, 0]])  # (0,0)->(300,100) clears x=100 at y=33
    pts = string_pull(portals, (0, 0, 0), (400, 40, 0))  # must dip under (100, 40)? no: straight is y=10 there
    assert len(pts) == 2
    pts = string_pull(portals, (0, -300, 0), (400, 400, 0))  # from far below: bends at the x=100 right end...
    assert np.allclose(pts[1], (100, -50, 0)) and np.allclose(pts[-2], (300, 100, 0))


def test_paths_match_brute_force_geodesic_on_zigzag_and_random_obstacles():
    v, p = zigzag_grid(**ZIGZAG_SMALL)
    zig = NavMesh(v, p)
    rng = np.random.default_rng(3)
    blocked = np.zeros((12, 12), bool)
    for _ in range(9):  # random rectangular obstacles, 1 cell apart (no diagonal pinch points)
        x, y = rng.integers(1, 10, size=2)
        blocked[y : y + 2, x : x + rng.integers(1, 3)] = True
    v2, p2 = grid_mesh(blocked, 100.0)
    obst = NavMesh(v2, p2)
    for mesh, n in ((zig, 4), (obst, 6)):
        isl = mesh.largest_island()
        pts, _ = mesh.random_points(2 * n, 11, island=isl)
        for a, b in zip(pts[:n], pts[n:]):
            r = mesh.find_path(a, b)
            ref = brute_force_geodesic(mesh, a, b)
            assert r.status == "complete"
            assert r.length_cm == pytest.approx(ref, rel=1e-9, abs=1e-6)
            assert mesh.path_inside(r.points_cm, step_cm=2.0)
            c = mesh.find_path(a, b, method="corridor")
            assert c.length_cm >= r.length_cm - 1e-6 and mesh.path_inside(c.points_cm, step_cm=2.0)


def polys_cover_path(mesh: NavMesh, points: np.ndarray, polys: list[int], step_cm: float = 7.0) -> bool:
    """Every sample along the path lies (closed, 1e-6 cm) in one of ``polys``."""
    cand = np.asarray(polys)
    for a, b in zip(points[:-1], points[1:]):
        n = max(2, int(np.hypot(*(b[:2] - a[:2])) / step_cm))
        for t in np.linspace(0.0, 1.0, n)[1:-1]:
            xy = a[:2] + t * (b[:2] - a[:2])
            pxy = mesh._pxy[cand]
            from unreal_bridge.navmesh.geometry import points_in_convex_polys

            if not points_in_convex_polys(np.broadcast_to(xy, (len(cand), 2)), pxy, 1e-6).any():
                return False
    return True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(3, 14), st.booleans())
def test_random_obstacle_meshes_paths_inside_and_never_longer_than_the_funnel(seed, n_obst, quads):
    rng = np.random.default_rng(seed)
    blocked = np.zeros((14, 16), bool)
    for _ in range(n_obst):
        x, y = rng.integers(0, 15), rng.integers(0, 13)
        blocked[y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = True
    if blocked.all():
        return
    v, p = grid_mesh(blocked, 100.0, triangles=not quads, origin_cm=(200_000.0, -3_000.0, 50.0))
    mesh = NavMesh(v, p)
    isl = mesh.largest_island()
    pts, _ = mesh.random_points(8, seed, island=isl)
    goals = np.concatenate([pts[4:], pts[4:] + np.array([[0, 0, 0], [300, 0, 0], [0, -900, 0], [40, 40, 0]])])
    for a, g in zip(np.concatenate([pts[:4], pts[:4]]), goals):
        r = mesh.find_path(a, g, snap_cm=1e6)
        assert r.status in ("complete", "partial") and r.method == "visibility"
        assert mesh.path_inside(r.points_cm, step_cm=3.0)
        assert polys_cover_path(mesh, r.points_cm, r.polys)
        c = mesh.find_path(a, g, snap_cm=1e6, method="corridor")
        assert r.length_cm <= c.length_cm + 1e-6
        assert np.allclose(r.points_cm[[0, -1]], c.points_cm[[0, -1]])


def test_dense_and_per_query_dijkstra_agree():
    v, p = zigzag_grid(**ZIGZAG_SMALL)
    dense, sparse_q = NavMesh(v, p), NavMesh(v, p, apsp_max_corners=0)
    assert dense.corners.dist is not None and sparse_q.corners.dist is None
    pts, _ = dense.random_points(20, 5)
    for a, b in zip(pts[:10], pts[10:]):
        assert dense.find_path(a, b).length_cm == pytest.approx(sparse_q.find_path(a, b).length_cm, rel=1e-12)


def test_islands_give_partial_and_off_mesh_start_gives_no_path():
    blocked = np.zeros((3, 7), bool)
    blocked[:, 3] = True  # two 3x3 islands
    v, p = grid_mesh(blocked, 100.0)
    m = NavMesh(v, p)
    assert m.num_islands == 2
    r = m.find_path((50, 150, 0), (650, 150, 0))
    assert r.status == "partial" and "another island" in r.reason
    assert np.allclose(r.points_cm[-1], (300, 150, 0))  # closest reachable point to the goal
    assert not m.reachable((50, 150, 0), (650, 150, 0)) and m.reachable((50, 150, 0), (250, 50, 0))
    r = m.find_path((50, 150, 0), (350, 150, 0))  # goal in the gap, 50 cm from both islands
    assert r.status == "complete"  # snapped within snap_cm
    r = m.find_path((50, 150, 0), (2000, 150, 0), snap_cm=50)
    assert r.status == "partial" and "off the mesh" in r.reason
    r = m.find_path((-500, 150, 0), (50, 50, 0), snap_cm=50)
    assert r.status == "no_path" and len(r.points_cm) == 0 and "start is" in r.reason
    with pytest.raises(ValueError, match="non-finite"):
        m.find_path((0, np.nan, 0), (50, 50, 0))


def test_non_flat_mesh_heights_are_interpolated():
    def ramp(x, y):
        return 0.25 * x + 10 * np.sin(y / 300.0)

    blocked = np.zeros((6, 6), bool)
    blocked[2:4, 2:4] = True
    v, p = grid_mesh(blocked, 100.0, height_fn=ramp)
    m = NavMesh(v, p)
    r = m.find_path((50, 50, ramp(50, 50)), (550, 550, ramp(550, 550)))
    assert r.status == "complete"
    z_exp = ramp(r.points_cm[:, 0], r.points_cm[:, 1])
    assert np.allclose(r.points_cm[[0, -1], 2], z_exp[[0, -1]], atol=2.0)  # fan interpolation of the surface
    assert np.allclose(r.points_cm[1:-1, 2], z_exp[1:-1], atol=1e-9)  # corners are mesh vertices
    assert m.path_inside(r.points_cm)


def test_layered_mesh_uses_the_corridor_search():
    # ground (z=0) two quads; a ramp up to a landing (z=300); a bridge (z=300) right above the second ground quad
    q = {
        "g1": [(0, 0, 0), (400, 0, 0), (400, 200, 0), (0, 200, 0)],
        "g2": [(0, 200, 0), (400, 200, 0), (400, 400, 0), (0, 400, 0)],
        "ramp": [(400, 0, 0), (800, 0, 300), (800, 200, 300), (400, 200, 0)],
        "l1": [(800, 0, 300), (1000, 0, 300), (1000, 200, 300), (800, 200, 300)],
        "l2": [(800, 200, 300), (1000, 200, 300), (1000, 400, 300), (800, 400, 300)],
        "bridge": [(0, 200, 300), (800, 200, 300), (800, 400, 300), (0, 400, 300)],
    }
    verts = [v for quad in q.values() for v in quad]
    polys = [list(range(4 * i, 4 * i + 4)) for i in range(len(q))]
    m = NavMesh(verts, polys)  # duplicate corners are welded
    assert not m.is_planar and m.corners is None and m.num_islands == 1
    assert m.nearest_poly((200, 300, 290)).poly == 5 and m.nearest_poly((200, 300, 10)).poly == 1
    r = m.find_path((200, 300, 0), (200, 300, 300))
    assert r.status == "complete" and r.method == "corridor" and r.polys == [1, 0, 2, 3, 4, 5]
    assert r.length_cm > 1200
    hit = m.raycast((200, 300, 300), (200, 100, 300))  # off the bridge's edge, not onto the ground below
    assert hit.hit and hit.pos_cm[1] == pytest.approx(200)


# ---------------------------------------------------------------------------------------------- sampling
def test_random_points_seeded_inside_and_area_weighted():
    m = room_with_pillar()
    a, pa = m.random_points(4000, 42)
    b, _ = m.random_points(4000, 42)
    assert np.array_equal(a, b)
    assert np.all(m.contains_points(a))
    assert np.all(m.locate_xy(a[:, :2]) >= 0)
    # the corner quads are 400x400, the side quads 400x200 (and 200x400): expected share 16/96 vs 8/96
    share = np.bincount(pa, minlength=8) / len(pa)
    expected = m.areas_cm2 / m.areas_cm2.sum()
    assert np.allclose(share, expected, atol=0.025)


def test_random_points_restricted_to_an_island_are_reachable():
    blocked = np.zeros((3, 7), bool)
    blocked[:, 3] = True
    v, p = grid_mesh(blocked, 100.0)
    m = NavMesh(v, p)
    pts, polys = m.random_points(50, 1, island=1)
    assert np.all(m.island[polys] == 1)
    near, polys2 = m.random_points(20, 2, reachable_from_cm=(650, 150, 0))
    assert np.all(m.island[polys2] == m.island[m.nearest_poly((650, 150, 0)).poly])
    assert all(m.reachable((650, 150, 0), q) for q in near)
    for q in pts[1:10]:
        assert m.find_path(pts[0], q).status == "complete"


# ---------------------------------------------------------------------------------------------- raycast / slide
def test_raycast_hits_walls_with_normals():
    m = room_with_pillar()
    r = m.raycast((100, 500, 0), (900, 500, 0))
    assert r.hit and r.t == pytest.approx(300 / 800) and np.allclose(r.pos_cm, (400, 500, 0))
    assert np.allclose(r.normal, (-1, 0, 0))
    r = m.raycast((100, 100, 0), (900, 100, 0))
    assert not r.hit and r.t == math.inf and np.allclose(r.pos_cm, (900, 100, 0))
    r = m.raycast((500, 100, 0), (500, -100, 0))  # leaving the room
    assert r.hit and np.allclose(r.pos_cm, (500, 0, 0)) and np.allclose(r.normal, (0, 1, 0))
    r = m.raycast((100, 100, 0), (900, 900, 0))  # diagonal through the pillar
    assert r.hit and np.allclose(r.pos_cm, (400, 400, 0))
    r = m.raycast((0, 0, 0), (300, 300, 0))  # along a diagonal through mesh vertices
    assert not r.hit


def test_raycast_through_grid_vertices_and_zigzag_wall():
    v, p = zigzag_grid(**ZIGZAG_SMALL)
    m = NavMesh(v, p)
    r = m.raycast((50, 50, 0), (750, 750, 0))  # exact diagonal through many grid vertices, below the wall
    assert not r.hit and len(r.polys) > 10
    r = m.raycast((50, 50, 0), (50, 3100, 0))  # straight up into the first wall (row 8)
    assert r.hit and r.pos_cm[1] == pytest.approx(800) and np.allclose(r.normal, (0, -1, 0))


def test_move_along_surface_never_leaves_the_mesh():
    m = room_with_pillar()
    res = m.move_along_surface((100, 100, 0), (100, -300, 0))
    assert res.blocked and np.allclose(res.pos_cm, (100, 0, 0))
    res = m.move_along_surface((300, 500, 0), (450, 520, 0))  # into the pillar: slides to its wall
    assert res.blocked and res.pos_cm[0] == pytest.approx(400)
    res = m.move_along_surface((100, 100, 0), (300, 200, 0))
    assert not res.blocked and np.allclose(res.pos_cm, (300, 200, 0))
    rng = np.random.default_rng(0)
    pos = np.array([100.0, 100.0, 0.0])
    poly = None
    for _ in range(300):
        target = pos + np.r_[rng.normal(0, 150, 2), 0.0]
        res = m.move_along_surface(pos, target, start_poly=poly)
        assert m.contains_points(res.pos_cm[None], tol_cm=1e-6)[0]
        pos, poly = res.pos_cm, res.poly
