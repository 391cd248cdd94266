"""The collision shield removes moves into walls, counts its interventions, and can be switched off."""

from __future__ import annotations

import numpy as np
import pytest

from capture.actions import FrameAction
from rl_agent import CollisionShield, PlaymillEnv
from rl_agent.config import ShieldConfig

from .fakeworlds import BOX_ENV, BoxWorld


def shield_for(world, enabled: bool = True, fallback: str = "stop") -> CollisionShield:
    return CollisionShield(ShieldConfig(enabled=enabled, fallback=fallback), world, walk_cm_s=300.0, sprint_cm_s=600.0,
                           radius_cm=30.0, fps=25.0)


def near_wall_world() -> BoxWorld:
    w = BoxWorld(start_xy=(455.0, 0.0), start_yaw=0.0)  # 15 cm of room ahead (wall at x=500, radius 30)
    w.reset(0)
    return w


def test_shield_removes_moves_into_walls_and_counts():
    w = near_wall_world()
    sh = shield_for(w)
    out, hit = sh.filter(FrameAction(frozenset({"w", "shift"}), d_yaw_deg=0.0), yaw_deg=0.0)
    assert hit and not out.keys & {"w", "s", "a", "d"} and "shift" not in out.keys
    out, hit = sh.filter(FrameAction(frozenset({"s"})), yaw_deg=0.0)  # away from the wall
    assert not hit and out.keys == {"s"}
    out, hit = sh.filter(FrameAction(frozenset({"w", "d"}), d_yaw_deg=1.5), yaw_deg=0.0)  # stop: no move at all
    assert hit and out.keys == frozenset() and out.d_yaw_deg == 1.5
    out, hit = sh.filter(FrameAction(frozenset({"space"}), d_pitch_deg=2.0), yaw_deg=0.0)  # no move: untouched
    assert not hit and out.keys == {"space"}
    assert sh.interventions == 2
    slide = shield_for(w, fallback="slide")
    out, hit = slide.filter(FrameAction(frozenset({"w", "d"}), d_yaw_deg=1.5), yaw_deg=0.0)  # keep the safe strafe
    assert hit and out.keys == {"d"} and out.d_yaw_deg == 1.5
    # the mouse turn of this frame counts: turning away from the wall makes the forward move safe
    out, hit = sh.filter(FrameAction(frozenset({"w"}), d_yaw_deg=180.0), yaw_deg=0.0)
    assert not hit and out.keys == {"w"}


def test_shield_switched_off_never_changes_actions():
    w = near_wall_world()
    sh = shield_for(w, enabled=False)
    a = FrameAction(frozenset({"w"}))
    assert sh.filter(a, 0.0) == (a, False) and sh.interventions == 0


def test_shield_in_the_env_prevents_collisions_and_logs_interventions():
    fwd = np.array([1, 0, 1, 0, 3, 1])  # sprint forward, into the wall

    def run(enabled: bool):
        env = PlaymillEnv({**BOX_ENV, "max_frames": 60}, make_world=lambda s, p: BoxWorld(s, p, start_xy=(300.0, 0.0)),
                          shield={"enabled": enabled, "episode_fraction": 1.0})
        env.reset(seed=0)
        collisions, flagged, info = 0, 0, {}
        for _ in range(30):
            _, _, _, trunc, info = env.step(fwd)
            collisions += info["collision"]
            flagged += int(info["shield_intervened"])
            if trunc:
                break
        return collisions, flagged, info

    coll_on, flagged_on, info_on = run(True)
    assert coll_on == 0 and flagged_on > 0
    assert info_on["shield_interventions"] >= flagged_on
    assert info_on["episode_stats"]["shield_interventions"] == info_on["shield_interventions"]
    assert info_on["episode_stats"]["reward/collision"] < 0  # interventions are penalised like collisions
    coll_off, flagged_off, info_off = run(False)
    assert coll_off > 0 and flagged_off == 0 and info_off["shield_interventions"] == 0


def test_shield_on_a_sandbox_wall():
    from unreal_bridge.sandbox import SandboxWorld

    world = SandboxWorld(scene="indoor", width=32, height=32)
    try:
        def walk_to_wall(enabled: bool) -> tuple[int, int]:
            obs = world.reset(5)
            yaws = obs.yaw_deg + np.arange(0.0, 360.0, 10.0)
            d = world.probe_many(yaws, 2000.0)
            turn = float(yaws[int(np.argmin(d))] - obs.yaw_deg)  # face the nearest wall
            sh = CollisionShield(ShieldConfig(enabled=enabled, include_dynamic=True), world, walk_cm_s=300.0,
                                 sprint_cm_s=600.0, radius_cm=world.agent_params.radius_cm, fps=world.fps)
            collisions = 0
            action = FrameAction(frozenset({"w"}), d_yaw_deg=turn)
            for _ in range(int(d.min() / 12.0) + 20):
                executed, _ = sh.filter(action, obs.yaw_deg)
                obs = world.step(executed)
                collisions += int(obs.collision)
                action = FrameAction(frozenset({"w"}))
            return collisions, sh.interventions

        coll_on, inter_on = walk_to_wall(True)
        assert coll_on == 0 and inter_on > 0
        coll_off, inter_off = walk_to_wall(False)
        assert coll_off > 0 and inter_off == 0
    finally:
        world.close()


def test_shield_guards_a_fraction_of_training_episodes():
    env = PlaymillEnv({**BOX_ENV, "max_frames": 4}, make_world=BoxWorld, shield={"episode_fraction": 0.5})
    env.reset(seed=0)
    active = []
    for _ in range(40):
        env.reset()
        _, _, _, _, info = env.step(np.array([1, 0, 0, 0, 3, 1]))
        active.append(info["shield_active"])
    assert 8 < sum(active) < 32
    for fraction, expected in ((0.0, False), (1.0, True)):
        env = PlaymillEnv(BOX_ENV, make_world=BoxWorld, shield={"episode_fraction": fraction})
        env.reset(seed=1)
        assert env.step(np.array([1, 0, 0, 0, 3, 1]))[4]["shield_active"] is expected


def test_shield_needs_probes():
    class Blind:
        fps = 25.0

    with pytest.raises(ValueError, match="probe"):
        CollisionShield(ShieldConfig(enabled=True), Blind(), walk_cm_s=300, sprint_cm_s=600, radius_cm=30, fps=25)
    CollisionShield(ShieldConfig(enabled=False), Blind(), walk_cm_s=300, sprint_cm_s=600, radius_cm=30, fps=25)
