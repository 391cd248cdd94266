"""capture.motion: the rotational field, the trimmed fit, translation evidence, unknown frames, and the estimator
on exact synthetic rotations (a pure rotation is the homography K R K^-1) and on a sandbox clip with exact poses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.motion import (
    BACK, FORWARD, LEFT, NONE, RIGHT, MotionConfig, analyse_frames, direction_codes, fit_rotation, focal_px,
    rotation_flow, translation_evidence,
)


def texture_image(w=320, h=176, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h // 4, w // 4), dtype=np.uint8)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(img, (3, 3), 0.8)


def rotate_view(img, hfov_deg, pitch_deg, yaw_deg):
    """The image seen after turning the camera by (pitch up, yaw right): warp by K R^-1 K^-1 (scene fixed)."""
    h, w = img.shape
    f = focal_px(w, hfov_deg)
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    p, y = np.radians(pitch_deg), np.radians(yaw_deg)
    # columns: the new camera axes in old camera coordinates (x right, y down, z forward); turning right moves z
    # towards +x, looking up moves z towards -y
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    r = ry @ rx  # new camera axes in old camera coordinates
    hmg = k @ r.T @ np.linalg.inv(k)
    return cv2.warpPerspective(img, hmg, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@given(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05))
@settings(max_examples=30, deadline=None)
def test_fit_recovers_an_exact_rotational_field_despite_outliers(pitch, yaw):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, 150), rng.uniform(-0.55, 0.55, 150)
    du, dv = rotation_flow(x, y, pitch, yaw)
    bad = rng.random(150) < 0.2  # moving NPCs: a fifth of the tracks go their own way
    du[bad] += rng.normal(0, 0.05, bad.sum())
    dv[bad] += rng.normal(0, 0.05, bad.sum())
    fit = fit_rotation(x, y, du, dv, 80.0)
    assert fit.pitch_deg == pytest.approx(np.degrees(pitch), abs=1e-6)
    assert fit.yaw_deg == pytest.approx(np.degrees(yaw), abs=1e-6)
    assert fit.confident


def test_rotation_flow_signs_follow_the_design_conventions():
    # turning right moves the scene left (du < 0); looking up moves it down the image (dv > 0)
    du, dv = rotation_flow(np.array([0.0]), np.array([0.0]), 0.0, 0.01)
    assert du[0] < 0 and dv[0] == 0
    du, dv = rotation_flow(np.array([0.0]), np.array([0.0]), 0.01, 0.0)
    assert dv[0] > 0 and du[0] == 0


@pytest.mark.parametrize("pitch,yaw", [(0.0, 2.0), (0.0, -3.5), (1.5, 0.0), (-1.0, 1.0), (0.3, -0.4)])
def test_estimator_on_a_pure_rotation_homography(pitch, yaw):
    img = texture_image()
    frames = [img, rotate_view(img, 90.0, pitch, yaw)]
    m = analyse_frames(frames, 90.0)
    assert np.isnan(m.yaw_deg[0])  # row 0 has no motion
    assert m.confident[1]
    assert m.yaw_deg[1] == pytest.approx(yaw, abs=0.06)
    assert m.pitch_deg[1] == pytest.approx(pitch, abs=0.06)


def test_the_focal_length_matters_and_is_used():
    img = texture_image()
    frames = [img, rotate_view(img, 60.0, 0.0, 2.0)]
    assert analyse_frames(frames, 60.0).yaw_deg[1] == pytest.approx(2.0, abs=0.06)
    assert analyse_frames(frames, 100.0).yaw_deg[1] > 2.4  # a wrong FOV scales the answer


def test_translation_evidence_reads_forward_and_strafe():
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-1, 1, 200), rng.uniform(-0.5, 0.5, 200)
    z = rng.uniform(2.0, 20.0, 200)  # depths: parallax
    for t, want in (((0, 0, 0.1), FORWARD), ((0, 0, -0.1), BACK), ((0.1, 0, 0), RIGHT), ((-0.1, 0, 0), LEFT)):
        du = (-t[0] + x * t[2]) / z
        dv = (-t[1] + y * t[2]) / z
        ru, rv = rotation_flow(x, y, 0.0, np.radians(1.5))  # plus a turn the labels know about
        fwd, lat = translation_evidence(x, y, du + ru, dv + rv, 80.0, 0.0, 1.5)
        assert direction_codes(np.array([fwd]), np.array([lat]))[0] == want
    fwd, lat = translation_evidence(x, y, np.zeros(200), np.zeros(200), 80.0, 0.0, 0.0)
    assert direction_codes(np.array([fwd]), np.array([lat]))[0] == NONE


def test_textureless_and_blurred_frames_are_unknown_not_guessed():
    grey = np.full((88, 160), 120, np.uint8)
    img = texture_image(160, 88)
    blurred = cv2.GaussianBlur(img, (0, 0), 8)
    m = analyse_frames([grey, grey, blurred, cv2.GaussianBlur(rotate_view(img, 90, 0, 2), (0, 0), 8)], 90.0)
    assert np.isnan(m.yaw_deg[1:]).all() and not m.confident.any()
    fwd, lat = m.translation_evidence()
    assert np.isnan(fwd[1:]).all()


def test_estimator_follows_a_sandbox_clip_with_exact_poses():
    """A wander walk in the city (moving NPCs and vehicles): visual yaw against the float64 poses."""
    from capture.rotations import quat_to_rotator, wrap_deg
    from unreal_bridge.sandbox import SandboxWorld, WanderController

    with SandboxWorld(scene="city", width=160, height=88, fov_deg=90.0, npc_density=1.0) as w:
        obs = w.reset(11)
        ctl = WanderController(w)
        ctl.reset(11, obs)
        frames, yaws = [obs.frame], [quat_to_rotator(obs.quat_wxyz)[1]]
        for _ in range(79):
            obs = w.step(ctl.act(obs))
            frames.append(obs.frame)
            yaws.append(quat_to_rotator(obs.quat_wxyz)[1])
    truth = np.array([np.nan] + [wrap_deg(b - a) for a, b in zip(yaws[:-1], yaws[1:])])
    m = analyse_frames(frames, 90.0, MotionConfig())
    ok = m.confident
    assert ok.mean() >= 0.5
    assert np.corrcoef(m.yaw_deg[ok], truth[ok])[0, 1] >= 0.95
    assert np.median(np.abs(m.yaw_deg[ok] - truth[ok])) <= 0.2
