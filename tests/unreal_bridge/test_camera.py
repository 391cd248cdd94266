"""unreal_bridge.camera: Unreal rotator/quaternion/matrix maths (property tests) and the float64 CameraRig."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unreal_bridge.camera import (
    CameraRig,
    CompensatedSum,
    clamp_axis_deg,
    matrix_to_quat,
    matrix_to_rotator,
    normalize_axis_deg,
    normalize_rotator,
    quat_angle_deg,
    quat_conjugate,
    quat_multiply,
    quat_normalize,
    quat_rotate_vector,
    quat_to_matrix,
    quat_to_rotator,
    quat_to_rotator_ue,
    rotator_to_matrix,
    rotator_to_quat,
)

pitch_ok = st.floats(-89.0, 89.0, allow_nan=False)
angle = st.floats(-179.9, 179.9, allow_nan=False)
any_angle = st.floats(-720.0, 720.0, allow_nan=False)
vec = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=3, max_size=3).map(np.array)


def same_rotation(a: np.ndarray, b: np.ndarray, tol_deg: float = 1e-9) -> bool:
    return quat_angle_deg(a, b) <= tol_deg


@settings(max_examples=200, deadline=None)
@given(pitch_ok, angle, angle)
def test_round_trips_away_from_gimbal_lock(pitch, yaw, roll):
    q = rotator_to_quat(pitch, yaw, roll)
    assert abs(np.linalg.norm(q) - 1.0) < 1e-12
    for back in (quat_to_rotator(q), quat_to_rotator_ue(q), matrix_to_rotator(quat_to_matrix(q))):
        assert np.allclose(back, (pitch, yaw, roll), atol=1e-7)
    m = quat_to_matrix(q)
    assert np.allclose(m, rotator_to_matrix(pitch, yaw, roll), atol=1e-12)  # FRotationMatrix
    q2 = matrix_to_quat(m)
    assert abs(np.linalg.norm(q2) - 1.0) < 1e-12 and same_rotation(q, q2)


@settings(max_examples=200, deadline=None)
@given(any_angle, any_angle, any_angle)
def test_matrices_are_orthonormal_rotations(pitch, yaw, roll):
    m = rotator_to_matrix(pitch, yaw, roll)
    assert np.allclose(m.T @ m, np.eye(3), atol=1e-12)
    assert np.linalg.det(m) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(angle, angle, angle)
def test_composition_order_is_yaw_then_pitch_then_roll(pitch, yaw, roll):
    """FRotator(p, y, r) = q_yaw * q_pitch * q_roll: roll is applied first, yaw last."""
    qy, qp, qr = rotator_to_quat(0, yaw, 0), rotator_to_quat(pitch, 0, 0), rotator_to_quat(0, 0, roll)
    q = rotator_to_quat(pitch, yaw, roll)
    assert same_rotation(q, quat_multiply(quat_multiply(qy, qp), qr), 1e-8)
    assert np.allclose(
        rotator_to_matrix(pitch, yaw, roll),
        rotator_to_matrix(0, yaw, 0) @ rotator_to_matrix(pitch, 0, 0) @ rotator_to_matrix(0, 0, roll),
        atol=1e-12,
    )
    if abs(pitch) > 1 and 1 < abs(yaw) < 179 and abs(roll) > 1:
        assert not same_rotation(q, quat_multiply(quat_multiply(qp, qy), qr), 1e-3)  # order matters


@settings(max_examples=200, deadline=None)
@given(angle, angle, angle, vec)
def test_quaternion_algebra(pitch, yaw, roll, v):
    q = rotator_to_quat(pitch, yaw, roll)
    assert np.allclose(quat_rotate_vector(q, v), quat_to_matrix(q) @ v, atol=1e-9)
    ident = quat_multiply(q, quat_conjugate(q))
    assert np.allclose(ident, [1, 0, 0, 0], atol=1e-15)
    r = rotator_to_quat(roll, pitch, yaw)
    assert np.allclose(quat_to_matrix(quat_multiply(q, r)), quat_to_matrix(q) @ quat_to_matrix(r), atol=1e-12)
    assert abs(np.linalg.norm(quat_normalize(q * 3.7)) - 1.0) < 1e-15


@pytest.mark.parametrize("pitch", [90.0, -90.0])
@pytest.mark.parametrize("yaw, roll", [(0.0, 0.0), (30.0, 0.0), (-120.0, 45.0), (179.0, -90.0)])
def test_gimbal_lock_keeps_the_rotation(pitch, yaw, roll):
    """At pitch +-90 yaw and roll are not unique; converting back must still give the same rotation."""
    q = rotator_to_quat(pitch, yaw, roll)
    assert abs(np.linalg.norm(q) - 1.0) < 1e-12
    p1 = quat_to_rotator(q)
    assert p1[0] == pytest.approx(pitch, abs=1e-6) and same_rotation(q, rotator_to_quat(*p1), 1e-6)
    p2 = quat_to_rotator_ue(q)
    assert p2[0] == pitch and same_rotation(q, rotator_to_quat(*p2), 1e-6)
    fwd = quat_to_matrix(q)[:, 0]
    assert np.allclose(fwd, [0, 0, math.copysign(1.0, pitch)], atol=1e-12)


def test_axis_conventions_and_normalisation():
    assert np.allclose(quat_to_matrix(rotator_to_quat(0, 90, 0))[:, 0], [0, 1, 0], atol=1e-15)  # yaw right
    assert np.allclose(quat_to_matrix(rotator_to_quat(90, 0, 0))[:, 0], [0, 0, 1], atol=1e-15)  # pitch up
    assert normalize_axis_deg(270.0) == -90.0 and normalize_axis_deg(-180.0) == 180.0
    assert clamp_axis_deg(-90.0) == 270.0 and clamp_axis_deg(720.0) == 0.0
    assert normalize_rotator(190, -190, 540) == (-170.0, 170.0, 180.0)
    with pytest.raises(ValueError):
        quat_normalize(np.zeros(4))


def test_rig_rebuilds_the_quaternion_from_float64_scalars():
    rig = CameraRig(np.array([200_000.0, -5.0, 150.0]), yaw_deg=170.0)
    rig.look(10.0, 20.0)
    assert rig.yaw_deg == pytest.approx(-170.0) and rig.pitch_deg == pytest.approx(10.0)
    assert np.array_equal(rig.quat, rotator_to_quat(rig.pitch_deg, rig.yaw_deg, 0.0))
    rig.look(500.0, 0.0)
    assert rig.pitch_deg == 89.9  # clamped
    rig.look(-1000.0, 0.0)
    assert rig.pitch_deg == -89.9
    assert quat_to_rotator(rig.quat)[2] == pytest.approx(0.0, abs=1e-9)  # never any roll
    rig.teleport(yaw_deg=90.0, pitch_deg=0.0)
    rig.move_local(100.0, 0.0, 0.0, 0.5)  # forward at yaw 90 is +Y
    assert np.allclose(rig.pos_cm, [200_000.0, 45.0, 150.0])
    rig.move_local(0.0, 100.0, 0.0, 1.0)  # right of +Y is -X
    assert np.allclose(rig.pos_cm, [199_900.0, 45.0, 150.0])
    with pytest.raises(ValueError):
        rig.look(float("nan"), 0.0)


def test_rig_accumulation_is_exact_to_rounding_over_100k_frames():
    rng = np.random.default_rng(0)
    d_yaw = rng.normal(0.3, 0.7, 100_000)
    d_pitch = 0.05 * np.sin(np.arange(100_000) / 500.0)
    rig = CameraRig(np.array([200_000.0, 200_000.0, 0.0]))
    v = np.array([150.0, -37.5, 0.0])
    for dy, dp in zip(d_yaw.tolist(), d_pitch.tolist()):
        rig.look(dp, dy)
        rig.move(v, 1.0 / 30.0)
    exact_yaw = normalize_axis_deg(math.fsum(d_yaw.tolist()))
    assert abs(normalize_axis_deg(rig.yaw_deg - exact_yaw)) < 1e-11
    assert rig.pitch_deg == pytest.approx(math.fsum(d_pitch.tolist()), abs=1e-12)
    exact_x = math.fsum([200_000.0] + [150.0 * (1.0 / 30.0)] * 100_000)
    assert abs(rig.pos_cm[0] - exact_x) < 1e-9


def test_frame_to_frame_local_composition_drifts_into_roll():
    """Why the rig keeps scalars: composing local pitch and yaw deltas (q = q * dq) adds roll."""
    q = np.array([1.0, 0.0, 0.0, 0.0])
    rig = CameraRig()
    for _ in range(200):
        q = quat_multiply(q, rotator_to_quat(0.5, 0.0, 0.0))
        q = quat_multiply(q, rotator_to_quat(0.0, 1.0, 0.0))
        rig.look(0.5, 1.0)
    assert abs(quat_to_rotator(q)[2]) > 1.0
    assert quat_to_rotator(rig.quat)[2] == pytest.approx(0.0, abs=1e-9)


def test_compensated_sum():
    s = CompensatedSum()
    for _ in range(10):
        s.add(0.1)
    assert s.value == 1.0
    s.set(1e16)
    s.add(1.0)
    s.add(-1e16)
    assert s.value == 1.0
