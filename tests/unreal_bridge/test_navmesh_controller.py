"""NavmeshController: plays navmesh tours as keys and mouse, never gets stuck, human-like mouse, any World."""

from __future__ import annotations

import math

import numpy as np
import pytest

from capture.actions import ActionSpace, FrameAction
from capture.world import Controller, Observation
from capture.rotations import rotator_to_quat
from unreal_bridge.navmesh import NavMesh, zigzag_grid
from unreal_bridge.navmesh_controller import (
    CONTROLLER_NAME,
    NavControllerParams,
    NavmeshController,
    key_velocity,
    make_navmesh_controller,
    project_on_polyline,
    polyline_arclength,
    raised_cosine,
    rate_step,
)
from unreal_bridge.sandbox.layout import SCENES

import panda3d.core  # noqa: E402,F401  (a dependency: fail loudly if missing)
from unreal_bridge import SandboxWorld  # noqa: E402

FRAMES = 1500
FPS = 25.0
WALK_STEP_CM = 300.0 / FPS


def _run(scene: str, seed: int, frames: int, **world_kw):
    with SandboxWorld(scene, width=48, height=32, fps=FPS, **world_kw) as world:
        ctrl = make_navmesh_controller(world)
        obs = world.reset(seed)
        ctrl.reset(seed, obs)
        acts, obs_list = [], [obs]
        for _ in range(frames):
            act = ctrl.act(obs)
            obs = world.step(act)
            acts.append(act)
            obs_list.append(obs)
        return acts, obs_list, ctrl.stats


@pytest.fixture(scope="module", params=SCENES)
def long_run(request):
    """1500 frames per scene with busy streets (NPC density 1.0)."""
    return request.param, *_run(request.param, 23, FRAMES, npc_density=1.0, vehicle_density=1.0)


def _stuck_frames(acts, obs) -> int:
    """Frames where W is held and the agent moves less than a quarter of a walking step."""
    pos = np.array([o.pos_cm[:2] for o in obs])
    step = np.hypot(*np.diff(pos, axis=0).T)
    held = np.array(["w" in a.keys for a in acts])
    return int(np.sum(held & (step < 0.25 * WALK_STEP_CM)))


def test_no_stuck_frames_and_no_collisions(long_run):
    scene, acts, obs, stats = long_run
    collisions = sum(o.collision for o in obs)
    stuck = _stuck_frames(acts, obs)
    assert collisions <= 3, f"{scene}: {collisions} collision frames in {FRAMES} ({stats})"
    assert stuck <= 3, f"{scene}: {stuck} frames with W held and no progress ({stats})"
    pos = np.array([o.pos_cm[:2] for o in obs])
    speed = np.hypot(*np.diff(pos, axis=0).T) * FPS
    assert speed.mean() > 150.0, f"{scene}: mean speed {speed.mean():.0f} cm/s"
    assert np.ptp(pos[:, 0]) + np.ptp(pos[:, 1]) > 1500.0  # it travels across the level
    # never idle for long: standing without turning only in pauses (at most 3 s) and the odd wait for someone
    turning = np.abs([a.d_yaw_deg for a in acts]) > 0.5
    longest = run = 0
    for idle in (speed < 20.0) & ~turning:
        run = run + 1 if idle else 0
        longest = max(longest, run)
    assert longest < 5 * FPS, f"{scene}: idle for {longest / FPS:.1f} s"


def test_mouse_is_human_like(long_run):
    scene, acts, obs, _ = long_run
    p = NavControllerParams()
    d_yaw = np.array([a.d_yaw_deg for a in acts])
    d_pitch = np.array([a.d_pitch_deg for a in acts])
    assert np.abs(d_yaw).max() <= p.max_turn_deg_s / FPS + 1e-9  # capped deg/frame
    assert np.abs(d_pitch).max() <= p.max_pitch_rate_deg_s / FPS + 1e-9
    # smooth: the rate changes by at most the acceleration cap plus the small wobble per frame
    jerk = np.abs(np.diff(d_yaw))
    assert jerk.max() <= (p.max_turn_accel_deg_s2 / FPS + 4 * p.yaw_noise_deg_s * math.sqrt(2 * FPS / p.yaw_noise_tau_s)) / FPS
    assert np.median(jerk) < 0.2
    assert np.std(d_yaw) > 0.05 and len(np.unique(np.round(d_yaw, 6))) > FRAMES // 2  # varies, never constant
    pitch = np.array([o.pitch_deg for o in obs])
    assert np.abs(pitch).max() < 30.0


def test_plays_route_events(long_run):
    scene, acts, obs, stats = long_run
    assert stats.events.get("walk", 0) >= 1 and sum(stats.events.values()) >= 3, stats
    keys = [a.keys for a in acts]
    assert np.mean(["w" in k for k in keys]) > 0.5


def test_waypoint_behaviours(long_run):
    """Tours stop (at waypoints, and now and then on long walks) to pause, look around or strafe; strafes are
    played with A/D; look-arounds turn the view well beyond the walking wobble."""
    scene, acts, obs, stats = long_run
    assert {"pause", "look_around", "strafe"} & set(stats.events), f"{scene}: only {stats.events}"
    if stats.events.get("look_around"):
        yaw_rate = np.abs([a.d_yaw_deg for a in acts]) * FPS
        assert yaw_rate.max() > 60.0
    if stats.events.get("strafe"):
        assert any(a.keys & {"a", "d"} for a in acts)


def test_deterministic():
    a1, o1, _ = _run("indoor", 5, 120)
    a2, o2, _ = _run("indoor", 5, 120)
    assert [a.keys for a in a1] == [a.keys for a in a2]
    assert np.array_equal([a.d_yaw_deg for a in a1], [a.d_yaw_deg for a in a2])
    assert np.array_equal(o1[-1].pos_cm, o2[-1].pos_cm)


def test_replans_after_being_moved_off_the_path():
    with SandboxWorld("indoor", width=32, height=32, fps=FPS) as world:
        ctrl = NavmeshController(world)
        obs = world.reset(8)
        ctrl.reset(8, obs)
        for _ in range(60):
            obs = world.step(ctrl.act(obs))
        # teleport the agent far away (as if pushed): it must notice, replan and carry on without collisions
        mesh = ctrl.mesh
        pts, _ = mesh.random_points(50, 1)
        far = pts[np.argmax(np.hypot(*(pts[:, :2] - obs.pos_cm[:2]).T))]
        world.place_agent(far, obs.yaw_deg + 90.0)
        obs = world.step(FrameAction())
        collisions = 0
        start = obs.pos_cm.copy()
        for _ in range(300):
            obs = world.step(ctrl.act(obs))
            collisions += obs.collision
        assert sum(ctrl.stats.replans.values()) >= 1, ctrl.stats
        assert collisions == 0
        assert np.hypot(*(obs.pos_cm[:2] - start[:2])) > 100.0


def test_controller_protocol_and_params():
    with SandboxWorld("park", width=32, height=32) as world:
        ctrl = make_navmesh_controller(world, max_turn_deg_s=90.0, route={"num_waypoints": 3})
        assert isinstance(ctrl, Controller)
        assert CONTROLLER_NAME == "navmesh"
        assert ctrl.params.max_turn_deg_s == 90.0 and ctrl.route_config.num_waypoints == 3
        with pytest.raises(RuntimeError, match="before reset"):
            ctrl.act(world.reset(0))
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['speed'\]"):
        make_navmesh_controller(None, speed=3.0)
    with pytest.raises(ValueError, match=r"route: legs: unknown key"):
        make_navmesh_controller(None, route={"legs": 3})
    with pytest.raises(ValueError, match="max_turn_deg_s"):
        NavControllerParams(max_turn_deg_s=-1.0)


def test_pure_helpers():
    assert np.allclose(key_velocity(frozenset({"w"}), 90.0, 300.0, 600.0), [0.0, 300.0])
    assert np.allclose(key_velocity(frozenset({"d"}), 0.0, 300.0, 600.0), [0.0, 300.0])  # D: to the right (+Y)
    v = key_velocity(frozenset({"w", "a", "shift"}), 0.0, 300.0, 600.0)
    assert np.isclose(np.hypot(*v), 600.0) and v[1] < 0
    assert raised_cosine(0.0)[0] == 0.0 and raised_cosine(0.5)[0] == 1.0 and raised_cosine(1.0)[0] < 1e-12
    assert rate_step(0.0, 100.0, 50.0, 200.0, 0.1) == 20.0
    assert rate_step(45.0, 100.0, 50.0, 200.0, 0.1) == 50.0
    pts = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [100.0, 100.0, 0.0]])
    cum = polyline_arclength(pts)
    s, d = project_on_polyline(pts, cum, np.array([110.0, 50.0]), 0.0, 200.0)
    assert np.isclose(s, 150.0) and np.isclose(d, 10.0)


class _GridWorld:
    """A minimal World without rendering: a first-person agent sliding over a navmesh (no sandbox involved)."""

    source, scene, source_frame = "generic", "zigzag", "unreal"
    fps, width, height = 25.0, 8, 8

    def __init__(self) -> None:
        self.navmesh = NavMesh(*zigzag_grid(12, wall_every=3, gap=3))
        self.action_space = ActionSpace()
        self.config = {"walk_cm_s": 300.0, "sprint_cm_s": 600.0, "eye_height_cm": 170.0}

    def _obs(self, prev, collision):
        eye = self.feet + np.array([0.0, 0.0, 170.0])
        return Observation(np.zeros((8, 8, 3), np.uint8), self.i / self.fps, eye, rotator_to_quat(self.pitch, self.yaw),
                           self.pitch, self.yaw, (eye - prev) * self.fps, 0.0, collision)

    def reset(self, seed):
        pts, polys = self.navmesh.random_points(1, seed)
        self.feet, self.poly, self.yaw, self.pitch, self.i = pts[0], int(polys[0]), 0.0, 0.0, 0
        return self._obs(self.feet + [0, 0, 170.0], False)

    def step(self, action):
        prev = self.feet + np.array([0.0, 0.0, 170.0])
        self.yaw += action.d_yaw_deg
        self.pitch += action.d_pitch_deg
        v = key_velocity(action.keys, self.yaw, 300.0, 600.0)
        target = self.feet.copy()
        target[:2] += v / self.fps
        res = self.navmesh.move_along_surface(self.feet, target, start_poly=self.poly)
        self.feet, self.poly, self.i = res.pos_cm, res.poly, self.i + 1
        return self._obs(prev, bool(res.blocked and np.any(v)))

    def close(self):
        pass


def test_drives_any_world_with_a_navmesh():
    world = _GridWorld()
    ctrl = make_navmesh_controller(world, route={"min_leg_cm": 300.0})
    obs = world.reset(3)
    ctrl.reset(3, obs)
    acts, obs_list = [], [obs]
    for _ in range(600):
        a = ctrl.act(obs)
        obs = world.step(a)
        acts.append(a)
        obs_list.append(obs)
    assert sum(o.collision for o in obs_list) <= 2
    assert _stuck_frames(acts, obs_list) <= 2
    assert ctrl.stats.events.get("walk", 0) >= 2
