"""GTA V frame -> Unreal frame conversion: conventions and properties (float64)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.rotations import matrix_to_quat, quat_to_matrix, quat_to_rotator, rotator_to_quat
from gta_bridge import frames as fr

angles = st.tuples(st.floats(-85, 85), st.floats(-175, 175), st.floats(-180, 180))


def test_axes_map_is_a_reflection_and_rotations_stay_proper():
    assert np.linalg.det(fr.P_GTA_TO_UE) == -1.0  # handedness change
    r = fr.gta_euler_to_matrix([10.0, -20.0, 33.0])
    assert np.isclose(np.linalg.det(r), 1.0)
    assert np.isclose(np.linalg.det(fr.gta_matrix_to_ue_matrix(r)), 1.0)


def test_heading_zero_faces_north_and_heading_90_faces_west():
    fwd0 = fr.gta_euler_to_matrix([0, 0, 0])[:, 1]
    fwd90 = fr.gta_euler_to_matrix([0, 0, 90])[:, 1]
    assert np.allclose(fwd0, [0, 1, 0])  # GTA +Y = north
    assert np.allclose(fwd90, [-1, 0, 0])  # counter-clockwise: 90 = west (-X)
    assert np.allclose(fr.heading_forward(90.0), fwd90)
    # in Unreal: north is +X (yaw 0), west is -Y (yaw -90)
    assert np.allclose(fr.gta_euler_to_ue_rotator([0, 0, 0]), [0, 0, 0])
    assert np.allclose(fr.gta_euler_to_ue_rotator([0, 0, 90]), [0, -90, 0])
    q = rotator_to_quat(*np.moveaxis(fr.gta_euler_to_ue_rotator([0, 0, 90]), -1, 0))
    assert np.allclose(quat_to_matrix(q)[:, 0], [0, -1, 0], atol=1e-15)


def test_positions_east_north_up_metres_to_north_east_up_cm():
    assert np.allclose(fr.gta_position_to_ue_cm([1.0, 2.0, 3.0]), [200.0, 100.0, 300.0])
    # a right turn in GTA (heading decreasing) is a positive yaw change in Unreal
    assert fr.gta_euler_to_ue_rotator([0, 0, -10])[1] == 10.0


def test_pitch_up_and_roll_keep_their_meaning():
    up = fr.gta_euler_to_matrix([20.0, 0, 0])[:, 1]
    assert up[2] > 0  # GTA pitch + lifts the nose
    ue = fr.gta_matrix_to_ue_matrix(fr.gta_euler_to_matrix([20.0, 0, 0]))
    assert ue[2, 0] > 0 and np.isclose(quat_to_rotator(matrix_to_quat(ue))[0], 20.0)
    # GTA roll + tilts the up axis towards the body's right; Unreal roll + tilts it towards +Y (right)
    r = fr.gta_euler_to_matrix([0, 15.0, 0])
    assert r[0, 2] > 0
    assert np.isclose(quat_to_rotator(matrix_to_quat(fr.gta_matrix_to_ue_matrix(r)))[2], 15.0)


@settings(max_examples=200, deadline=None)
@given(angles)
def test_conversion_equals_unreal_rotator_formula(e):
    pitch, roll, yaw = e
    m_ue = fr.gta_matrix_to_ue_matrix(fr.gta_euler_to_matrix([pitch, roll, yaw]))
    q_ref = rotator_to_quat(*fr.gta_euler_to_ue_rotator([pitch, roll, yaw]))
    assert np.abs(quat_to_matrix(q_ref) - m_ue).max() < 1e-12
    q = matrix_to_quat(m_ue)
    assert abs(np.linalg.norm(q) - 1.0) < 1e-12
    assert min(np.abs(q - q_ref).max(), np.abs(q + q_ref).max()) < 1e-12
    assert np.allclose(rotator_to_quat(*fr.gta_euler_to_ue_rotator([pitch, roll, yaw])), q_ref, atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(angles)
def test_euler_matrix_round_trip_and_quaternion_agrees(e):
    r = fr.gta_euler_to_matrix(e)
    assert np.allclose(fr.matrix_to_gta_euler(r), e, atol=1e-9)
    q_wxyz = matrix_to_quat(r)
    xyzw = np.array([q_wxyz[1], q_wxyz[2], q_wxyz[3], q_wxyz[0]])
    assert np.abs(fr.gta_quat_xyzw_to_matrix(xyzw) - r).max() < 1e-12


def test_rig_pose_is_body_plus_rotated_offset_in_float64():
    body = np.array([-1234.5678901234, 5678.123456789, 31.25])  # far from the origin
    r = fr.gta_euler_to_matrix([0, 0, 90.0])  # facing west
    pos, rot = fr.rig_pose_gta(body, r, [0.0, 2.0, 1.0], [-10.0, 0.0, 0.0])
    assert np.allclose(pos, body + [-2.0, 0.0, 1.0], atol=1e-12, rtol=0)
    assert np.allclose(fr.matrix_to_gta_euler(rot), [-10.0, 0.0, 90.0])
    ue_pos, ue_q = fr.gta_pose_to_ue(pos, rot)
    assert np.allclose(ue_pos, [100 * pos[1], 100 * pos[0], 100 * pos[2]], atol=1e-9, rtol=0)
    p, y, _ = quat_to_rotator(ue_q)
    assert np.isclose(p, -10.0) and np.isclose(y, -90.0)


def test_vectorised_over_ticks():
    e = np.random.default_rng(0).uniform([-60, -60, -180], [60, 60, 180], (500, 3))
    m = fr.gta_euler_to_matrix(e)
    assert m.shape == (500, 3, 3)
    q = matrix_to_quat(fr.gta_matrix_to_ue_matrix(m))
    assert q.shape == (500, 4) and np.all(q[:, 0] >= 0)
    assert np.abs(np.linalg.norm(q, axis=1) - 1).max() < 1e-12
    pitch, yaw = fr.ue_quat_to_pitch_yaw(q)
    assert np.allclose(pitch, e[:, 0], atol=1e-9)
