"""WanderController: explores like a person, rarely collides, never stays stuck, is deterministic."""

import numpy as np
import pytest

from capture.world import Controller
from unreal_bridge import SandboxWorld, WanderController
from unreal_bridge.sandbox.layout import SCENES

import panda3d.core  # noqa: E402,F401  (a dependency: fail loudly if missing)

FRAMES = 1500
FPS = 25.0


def _run(scene, seed, frames, **kw):
    with SandboxWorld(scene, width=64, height=48, fps=FPS, **kw) as world:
        ctrl = WanderController(world)
        obs = world.reset(seed)
        ctrl.reset(seed, obs)
        acts, obs_list = [], []
        for _ in range(frames):
            act = ctrl.act(obs)
            obs = world.step(act)
            acts.append(act)
            obs_list.append(obs)
    return acts, obs_list


@pytest.fixture(scope="module", params=SCENES)
def long_run(request):
    return request.param, *_run(request.param, 17, FRAMES)


def test_is_a_controller():
    with SandboxWorld("park", width=32, height=32) as world:
        ctrl = WanderController(world)
        assert isinstance(ctrl, Controller)
        with pytest.raises(RuntimeError, match="before reset"):
            ctrl.act(world.reset(0))
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['speed'\]"):
        WanderController(None, speed=3.0)


def test_rarely_collides_and_keeps_moving(long_run):
    scene, acts, obs = long_run
    collision = np.array([o.collision for o in obs])
    assert collision.mean() < 0.05, f"{scene}: in collision {collision.mean():.1%} of the frames"
    pos = np.array([o.pos_cm[:2] for o in obs])
    speed = np.r_[0.0, np.linalg.norm(np.diff(pos, axis=0), axis=1)] * FPS
    assert speed.mean() > 150.0, f"{scene}: mean speed {speed.mean():.0f} cm/s"
    # no long stuck span: never more than 4 s in a row without moving
    longest, run = 0, 0
    for still in speed < 20.0:
        run = run + 1 if still else 0
        longest = max(longest, run)
    assert longest < 4 * FPS, f"{scene}: stood still for {longest / FPS:.1f} s"
    # it explores: the path covers a good stretch of the level
    assert np.ptp(pos[:, 0]) + np.ptp(pos[:, 1]) > 1500.0


def test_behaves_like_a_person(long_run):
    scene, acts, obs = long_run
    keys = [a.keys for a in acts]
    share = {k: np.mean([k in ks for ks in keys]) for k in ("w", "shift", "a", "d", "space")}
    assert share["w"] > 0.5  # mostly walking forward
    assert 5 / FRAMES <= share["shift"] < 0.4  # sometimes sprinting
    assert share["a"] + share["d"] >= 5 / FRAMES  # some strafing
    assert 0 < share["space"] < 0.02  # the occasional jump
    paused = np.mean([not ks for ks in keys])
    assert 0.01 < paused < 0.3  # brief pauses
    d_yaw = np.array([a.d_yaw_deg for a in acts])
    d_pitch = np.array([a.d_pitch_deg for a in acts])
    assert np.abs(d_yaw).max() * FPS <= 200.0  # human turn rates
    assert d_yaw.std() > 0.05 and len(np.unique(np.round(d_yaw, 6))) > FRAMES * 0.9  # never constant
    # smooth: the mouse rate changes little from one frame to the next compared to its range
    assert np.percentile(np.abs(np.diff(d_yaw)), 95) < 0.25 * np.abs(d_yaw).max()
    pitch = np.array([o.pitch_deg for o in obs])
    assert pitch.max() > 8.0 and pitch.min() < -8.0  # looks up and down
    assert np.abs(pitch).mean() < 12.0  # and back to level
    assert np.percentile(np.abs(np.diff(d_pitch)), 95) < 0.5


def test_same_seed_same_actions():
    a1, o1 = _run("indoor", 5, 200)
    a2, o2 = _run("indoor", 5, 200)
    assert a1 == a2
    np.testing.assert_array_equal(np.array([o.pos_cm for o in o1]), np.array([o.pos_cm for o in o2]))
    a3, _ = _run("indoor", 6, 200)
    assert a3 != a1
