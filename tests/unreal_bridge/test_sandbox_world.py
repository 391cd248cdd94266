"""SandboxWorld: the World contract, parameter validation, rendering, determinism, walkable export, probes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from capture.actions import ActionSpace, FrameAction
from capture.rotations import rotator_to_quat, wrap_deg
from capture.world import Observation, World
from unreal_bridge import SandboxWorld, render_preview
from unreal_bridge.sandbox.atmosphere import atmosphere
from unreal_bridge.sandbox.layout import SCENES

import panda3d.core  # noqa: E402,F401  (a dependency: fail loudly if missing)

W, H = 160, 96


def _world(scene="city", **kw):
    kw.setdefault("width", W)
    kw.setdefault("height", H)
    return SandboxWorld(scene, **kw)


# ---------------------------------------------------------------------------------------------- contract


def test_import_is_light():
    code = "import sys, unreal_bridge; assert 'panda3d' not in sys.modules and 'cv2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))


@pytest.mark.parametrize("kw, match", [
    ({"scene": "moon"}, r"scene='moon'.*\['city', 'indoor', 'park'\]"),
    ({"weather": "snow"}, r"weather='snow'.*\['clear', 'overcast', 'fog', 'rain'\]"),
    ({"time_of_day": 25.0}, r"time_of_day=25.0.*\[0.0, 24.0\]"),
    ({"time_of_day": float("nan")}, r"time_of_day=nan"),
    ({"npc_density": -0.1}, r"npc_density=-0.1.*\[0.0, 2.0\]"),
    ({"vehicle_density": 3}, r"vehicle_density=3.*\[0.0, 2.0\]"),
    ({"fov_deg": 5.0}, r"fov_deg=5.0.*\[20.0, 150.0\]"),
    ({"fps": 0}, r"fps=0.*\[1.0, 240.0\]"),
    ({"width": 10}, r"width=10.*integer in \[16, 4096\]"),
    ({"height": 96.5}, r"height=96.5.*integer"),
    ({"npc_density": "many"}, r"npc_density='many' must be a number"),
    ({"action_space": ["w"]}, r"action_space must be a capture.actions.ActionSpace"),
])
def test_parameters_are_validated(kw, match):
    scene = kw.pop("scene", "city")
    with pytest.raises(ValueError, match=match):
        SandboxWorld(scene, **kw)


def test_world_protocol_attributes_and_frame_zero():
    with _world("park", fps=30.0, weather="overcast", time_of_day=9.5, npc_density=0.25) as world:
        assert isinstance(world, World)
        assert world.source == "sandbox" and world.scene == "park" and world.fps == 30.0
        assert (world.width, world.height) == (W, H)
        assert world.source_frame == "panda3d: right-handed, Z up, X right, Y forward, metres"
        assert world.action_space == ActionSpace()
        for key, value in {"weather": "overcast", "time_of_day": 9.5, "npc_density": 0.25, "vehicle_density": 0.5,
                           "fov_deg": 90.0, "scene": "park"}.items():
            assert world.config[key] == value
        json.dumps(world.config)
        with pytest.raises(RuntimeError, match="before reset"):
            world.step(FrameAction())
        obs = world.reset(3)
        assert isinstance(obs, Observation)
        assert obs.frame.shape == (H, W, 3) and obs.frame.dtype == np.uint8 and obs.frame.flags.c_contiguous
        assert obs.t_s == 0.0 and not obs.collision
        np.testing.assert_array_equal(obs.vel_cm_s, np.zeros(3))
        assert obs.speed_cm_s == 0.0
        assert obs.pos_cm.dtype == np.float64 and obs.pos_cm[2] == pytest.approx(170.0)
        assert world.walkable.contains(obs.pos_cm[None, :2])[0]
        np.testing.assert_allclose(obs.quat_wxyz, rotator_to_quat(obs.pitch_deg, obs.yaw_deg, 0.0), atol=0)
        assert set(obs.extras) == {"npc_count", "vehicle_count", "on_ground"}
        obs1 = world.step(FrameAction(frozenset({"w"})))
        assert obs1.t_s == pytest.approx(1 / 30.0)
        np.testing.assert_allclose(obs1.vel_cm_s, (obs1.pos_cm - obs.pos_cm) * 30.0)
        with pytest.raises(ValueError, match=r"keys \['jetpack'\] are not in the action space"):
            world.step(FrameAction(frozenset({"jetpack"})))
    with pytest.raises(RuntimeError, match="closed"):
        world.reset(0)


def test_walking_forward_reports_velocity_and_signed_speed():
    with _world("park", npc_density=0.0) as world:
        world.reset(1)
        obs = None
        for key, sign in (("w", 1.0), ("s", -1.0)):
            for _ in range(3):
                obs = world.step(FrameAction(frozenset({key})))
            if not obs.collision:
                assert obs.speed_cm_s == pytest.approx(sign * 300.0, abs=1e-6)
                assert np.linalg.norm(obs.vel_cm_s[:2]) == pytest.approx(300.0, abs=1e-6)


# ---------------------------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def frames_by_scene():
    out = {}
    for scene in SCENES:
        with _world(scene, width=192, height=112) as world:
            out[scene] = world.reset(2).frame
    return out


@pytest.mark.parametrize("scene", SCENES)
def test_scenes_render_non_trivial_images(frames_by_scene, scene):
    f = frames_by_scene[scene].astype(np.float64)
    assert f.std() > 18.0
    # not one flat colour, not only sky: lots of distinct colours, and the lower half (ground, walls) is textured
    assert len(np.unique(frames_by_scene[scene].reshape(-1, 3), axis=0)) > 300
    lower = f[f.shape[0] // 2:]
    assert lower.std() > 12.0 and len(np.unique(frames_by_scene[scene][f.shape[0] // 2:].reshape(-1, 3), axis=0)) > 150


def test_scene_families_look_different(frames_by_scene):
    a, b, c = (frames_by_scene[s].astype(np.float64) for s in SCENES)
    assert np.abs(a - b).mean() > 15 and np.abs(b - c).mean() > 15 and np.abs(a - c).mean() > 15


@pytest.mark.parametrize("scene", ["city", "park"])
def test_weather_and_time_of_day_change_the_image(scene):
    looks = {}
    for name, kw in {"noon": {}, "night": {"time_of_day": 22.0}, "dusk": {"time_of_day": 17.5}, "fog": {"weather": "fog"},
                     "overcast": {"weather": "overcast"}, "rain": {"weather": "rain"}}.items():
        with _world(scene, npc_density=0.0, vehicle_density=0.0, **kw) as world:
            looks[name] = world.reset(4).frame.astype(np.float64)
    base = looks.pop("noon")
    for name, img in looks.items():
        assert np.abs(img - base).mean() > 6.0, name
    assert looks["night"].mean() < base.mean() - 30
    # fog pulls the picture towards the fog colour
    fog_rgb = np.array(atmosphere(12.0, "fog").fog_color) * 255.0
    assert np.abs(looks["fog"] - fog_rgb).mean() < np.abs(base - fog_rgb).mean() - 10.0


def test_worlds_coexist_and_close_in_any_order():
    a = _world("city")
    b = _world("indoor")
    fa = a.reset(1).frame
    fb = b.reset(1).frame
    np.testing.assert_array_equal(a.render_frame(), fa)
    a.close()
    np.testing.assert_array_equal(b.render_frame(), fb)
    c = _world("city")
    np.testing.assert_array_equal(c.reset(1).frame, fa)  # a fresh world renders the same frame
    b.close()
    c.close()
    c.close()  # idempotent


def test_preview_writes_a_png(tmp_path):
    import cv2
    out = render_preview("indoor", 7, tmp_path / "sub" / "indoor.png", width=W, height=H, time_of_day=20.0)
    img = cv2.imread(str(out))
    assert out.exists() and img.shape == (H, W, 3) and img.std() > 10


# ---------------------------------------------------------------------------------------------- determinism


def _chase(world, frames):
    """Walk into the nearest vehicle (first half) and NPC (second half) to provoke dynamic collisions."""
    acts, obs, kinds = [], [], set()
    for i in range(frames):
        a = world.agent_state
        group = world.vehicles if (i < frames // 2 and len(world.vehicles)) else world.npcs
        d = group.pos_cm - a.feet_cm[:2]
        k = int(np.argmin(np.hypot(d[:, 0], d[:, 1])))
        turn = float(np.clip(wrap_deg(np.degrees(np.arctan2(d[k, 1], d[k, 0])) - a.yaw_deg), -20.0, 20.0))
        keys = {"w", "shift"} | ({"space"} if i % 97 == 5 else set()) | ({"d"} if i % 31 < 4 else set())
        act = FrameAction(frozenset(keys), d_pitch_deg=float(np.sin(i / 9.0)), d_yaw_deg=turn)
        acts.append(act)
        obs.append(world.step(act))
        kinds |= world.agent_state.blocked_by
    return acts, obs, kinds


def _pose(o):
    return np.concatenate([o.pos_cm, o.quat_wxyz, o.vel_cm_s, [o.speed_cm_s, o.pitch_deg, o.yaw_deg, o.t_s, float(o.collision)]])


def test_replay_in_a_fresh_world_reproduces_every_pose():
    kw = dict(width=96, height=64, npc_density=1.5, vehicle_density=1.5)
    with SandboxWorld("city", **kw) as first:
        first.reset(8)
        acts, obs, kinds = _chase(first, 360)
        npc_end = first.npcs.pos_cm.copy()
        car_end = first.vehicles.pos_cm.copy()
    assert {"npc", "vehicle"} <= kinds, "the run must include collisions with NPCs and vehicles"
    assert sum(o.collision for o in obs) > 20
    with SandboxWorld("city", **kw) as replay:
        replay.reset(8)
        got = [replay.step(a) for a in acts]
        np.testing.assert_allclose(np.array([_pose(o) for o in got]), np.array([_pose(o) for o in obs]), rtol=0, atol=1e-9)
        np.testing.assert_allclose(replay.npcs.pos_cm, npc_end, rtol=0, atol=1e-9)
        np.testing.assert_allclose(replay.vehicles.pos_cm, car_end, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(got[-1].frame, obs[-1].frame)


@pytest.mark.parametrize("scene", SCENES)
def test_seeds_change_the_level_and_reset_is_repeatable(scene):
    with _world(scene) as world:
        a = world.reset(21)
        layout_a = world.layout
        b = world.reset(22)
        assert world.layout is not layout_a
        assert not np.allclose(a.pos_cm, b.pos_cm) and np.abs(a.frame.astype(int) - b.frame).mean() > 5
        a2 = world.reset(21)
        np.testing.assert_array_equal(a2.pos_cm, a.pos_cm)
        np.testing.assert_array_equal(a2.frame, a.frame)


# ---------------------------------------------------------------------------------------------- walkable, probes


@pytest.mark.parametrize("scene", SCENES)
def test_export_walkable_json(tmp_path, scene):
    with _world(scene) as world:
        world.reset(5)
        verts, polys = world.walkable_mesh()
        path = world.export_walkable(tmp_path / f"{scene}.json")
        doc = json.loads(path.read_text())
        spawn = world.agent_state.feet_cm[:2]
        shapes = world.layout.static_shapes
    assert doc["schema"] == "playmill.walkable/1" and doc["frame"] == "unreal" and doc["units"] == "cm"
    assert doc["scene"] == scene and doc["seed"] == 5
    np.testing.assert_array_equal(np.array(doc["vertices"]), verts)
    assert doc["polygons"] == polys
    v = np.array(doc["vertices"])
    q = np.array(doc["polygons"])
    # the spawn point lies in a polygon, and random points of random polygons are collision free
    inside = (v[q][:, :, 0].min(1) <= spawn[0]) & (spawn[0] <= v[q][:, :, 0].max(1)) & \
             (v[q][:, :, 1].min(1) <= spawn[1]) & (spawn[1] <= v[q][:, :, 1].max(1))
    assert inside.any()
    rng = np.random.default_rng(0)
    pick = q[rng.integers(len(q), size=2000)]
    w = rng.dirichlet(np.ones(4), size=2000)
    pts = np.einsum("nk,nkd->nd", w, v[pick][:, :, :2])
    assert shapes.signed_distance(pts).min() >= 30.0


def _flat_wall_heading(world):
    """A heading whose way ahead is blocked head-on by one flat face: rays through the agent's centre and
    its two sides (the width it sweeps) all stop at the same distance."""
    shapes = world.layout.static_shapes
    c = world.agent_state.feet_cm[:2]
    for yaw in np.arange(0.0, 360.0, 3.0):
        f = np.array([np.cos(np.radians(yaw)), np.sin(np.radians(yaw))])
        side = np.array([-f[1], f[0]])
        d = [shapes.raycast(c + k * side, f[None], 5000.0)[0] for k in (-31.0, 0.0, 31.0)]
        if 150.0 < d[1] < 2000.0 and max(d) - min(d) < 1e-6:
            return float(yaw), d[1]
    raise AssertionError("no flat wall in sight")


def test_probe_matches_walking_into_the_wall():
    with _world("indoor", npc_density=0.0) as world:
        world.reset(3)
        yaw, expected = _flat_wall_heading(world)
        world.step(FrameAction(d_yaw_deg=yaw - world.agent_state.yaw_deg))
        d = world.probe(yaw, 5000.0)
        assert d == pytest.approx(expected, abs=1e-9)
        assert world.probe(yaw, 10.0) == pytest.approx(10.0)
        step_cm = 300.0 / world.fps
        free_steps = int((d - 30.0 - 1.0) // step_cm)
        for _ in range(free_steps):
            assert not world.step(FrameAction(frozenset({"w"}))).collision
        blocked = [world.step(FrameAction(frozenset({"w"}))).collision for _ in range(3)]
        assert all(blocked)
        assert world.probe(yaw, 5000.0) == pytest.approx(30.0, abs=1e-6)  # touching: the agent radius
        many = world.probe_many(np.array([yaw, yaw + 90.0]), 5000.0)
        assert many[0] == pytest.approx(world.probe(yaw, 5000.0))
