"""Key inference from vehicle dynamics: hysteresis, no flicker under noise, steering sign, exact edges."""

from __future__ import annotations

import numpy as np

from gta_bridge.keys import (KeyInferenceConfig, detect_steering_sign, hysteresis, infer_drive_keys, infer_steering,
                             infer_walk_keys, merge_short_runs)
from gta_bridge.sim import MAX_STEER_DEG, STEER_IN_DPS, STEER_OUT_DPS

CFG = KeyInferenceConfig()
DT_MS = 1000.0 / 60.0


def transitions(x: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(np.asarray(x).astype(int))))


def steer_trace(keys: list[int]) -> np.ndarray:
    """Wheel angle (+ left) of the simulator's steering model under a per-tick key sequence (+1 A, -1 D, 0)."""
    d, out = 0.0, []
    for k in keys:
        target = MAX_STEER_DEG * k
        step = (STEER_OUT_DPS if k == 0 else STEER_IN_DPS) * DT_MS / 1000.0
        d += float(np.clip(target - d, -step, step))
        out.append(d)
    return np.array(out)


def test_hysteresis_needs_the_off_level_to_release():
    x = np.array([0.0, 0.6, 0.45, 0.35, 0.31, 0.29, 0.7, np.nan, 0.1])
    assert hysteresis(x, 0.5, 0.3).tolist() == [False, True, True, True, True, False, True, True, False]


def test_merge_short_runs_only_fills_blips_between_equal_neighbours():
    s = np.array([0, 0, 1, 0, 0, 1, 1, 1, 2, 1, 1, 0])
    assert merge_short_runs(s, 2).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0]
    assert merge_short_runs(s, 1).tolist() == s.tolist()


def test_steering_keys_are_exact_on_the_model_including_direct_reversals():
    rng = np.random.default_rng(3)
    keys: list[int] = []
    while len(keys) < 3000:
        keys += [int(rng.choice([-1, 0, 1]))] * int(rng.integers(8, 90))
    keys = keys[:3000]
    d = steer_trace(keys) + rng.normal(0, 0.05, 3000)
    t = np.arange(3000) * DT_MS
    inferred = infer_steering(d, t, CFG)
    assert np.mean(inferred == np.array(keys)) > 0.995


def test_noisy_steering_does_not_flicker():
    rng = np.random.default_rng(0)
    t = np.arange(2000) * DT_MS
    for level, expect in ((0.0, 0), (20.0, 1), (-25.0, -1)):
        d = level + rng.normal(0, 1.0, t.size)  # 1 degree of noise: 20x the simulator's
        s = infer_steering(d, t, CFG)
        assert transitions(s) <= 2, (level, transitions(s))
        assert np.mean(s == expect) > 0.99


def test_noisy_throttle_and_speed_do_not_flicker_w():
    rng = np.random.default_rng(1)
    n = 1500
    t = np.arange(n) * DT_MS
    throttle = np.where((np.arange(n) // 300) % 2 == 0, 1.0, 0.0) + rng.normal(0, 0.12, n)
    v = 10 + rng.normal(0, 0.01, n)
    k = infer_drive_keys(t, v, np.zeros(n), throttle, np.zeros(n), CFG)
    assert transitions(k["w"]) == 4
    assert np.mean(k["w"] == ((np.arange(n) // 300) % 2 == 0)) > 0.995


def test_handbrake_is_strong_deceleration_without_brake_or_throttle():
    n = 400
    t = np.arange(n) * DT_MS
    a = np.where((np.arange(n) >= 100) & (np.arange(n) < 160), -5.6, -0.6)
    v = 20 + np.cumsum(a) * DT_MS / 1000.0
    k = infer_drive_keys(t, v + np.random.default_rng(2).normal(0, 0.01, n), np.zeros(n), np.zeros(n),
                         np.zeros(n), CFG)
    assert np.flatnonzero(k["space"]).tolist() == list(range(100, 160))
    assert not k["w"].any() and not k["s"].any()


def test_reverse_is_s_and_missing_throttle_falls_back_to_acceleration():
    n = 300
    t = np.arange(n) * DT_MS
    k = infer_drive_keys(t, np.linspace(0, -5, n), np.zeros(n), np.full(n, -1.0), np.zeros(n), CFG)
    assert k["s"].all() and not k["w"].any()
    v = np.concatenate([np.full(100, 5.0), 5.0 + np.arange(200) * 3.0 * DT_MS / 1000])  # accelerates at 3 m/s^2
    k = infer_drive_keys(t, v, np.zeros(n), np.full(n, np.nan), np.full(n, np.nan), CFG)
    assert not k["w"][:99].any() and k["w"][102:].all()


def test_steering_sign_from_the_yaw_rate():
    n = 600
    t = np.arange(n) * DT_MS
    steer = 20 * np.sin(np.arange(n) / 60.0)
    v = np.full(n, 10.0)
    heading = np.cumsum(np.degrees(v * np.tan(np.radians(steer)) / 2.7) * DT_MS / 1000.0) % 360
    assert detect_steering_sign(steer, v, heading, t)[0] == 1
    assert detect_steering_sign(-steer, v, heading, t)[0] == -1
    assert detect_steering_sign(steer, np.zeros(n), heading, t) == (1, 0.0)  # not moving: cannot tell


def test_walk_keys_from_velocity_in_the_camera_frame():
    n = 100
    yaw = np.full(n, 90.0)  # looking east (Unreal +Y)
    vel = np.zeros((n, 2))
    vel[:50, 1] = 1.5  # moving east: forward
    vel[50:, 0] = -1.5  # moving south (-X): to the right of a camera facing east
    k = infer_walk_keys(vel, yaw, CFG)
    assert k["w"][:50].all() and not k["w"][52:].any()
    assert k["d"][52:].all() and not k["a"].any() and not k["shift"].any()
