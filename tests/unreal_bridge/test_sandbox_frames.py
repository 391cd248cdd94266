"""Panda3D <-> Unreal frame conversions: checked against Panda3D's own transforms and capture.rotations."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.rotations import forward_vector, quat_to_matrix, rotator_to_quat
from unreal_bridge.sandbox.frames import (
    CM_PER_PANDA_UNIT, panda_hpr_to_ue_rotator, panda_to_ue_dir, panda_to_ue_pos, ue_rotator_to_panda_hpr,
    ue_to_panda_dir, ue_to_panda_pos, ue_yaw_to_panda_heading,
)

import panda3d.core as panda3d_core  # noqa: E402

finite = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False)
angles = st.floats(min_value=-720.0, max_value=720.0, allow_nan=False)
pitches = st.floats(min_value=-89.0, max_value=89.0, allow_nan=False)


def test_axes_map_as_documented():
    # Unreal forward (+X, 1 m) is Panda3D forward (+Y); Unreal right (+Y) is Panda3D right (+X); Z is up in both
    np.testing.assert_array_equal(ue_to_panda_pos(np.array([100.0, 0.0, 0.0])), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(ue_to_panda_pos(np.array([0.0, 100.0, 0.0])), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(ue_to_panda_pos(np.array([0.0, 0.0, 100.0])), [0.0, 0.0, 1.0])
    assert CM_PER_PANDA_UNIT == 100.0
    # the mapping is a reflection: it changes handedness
    m = np.stack([ue_to_panda_dir(e) for e in np.eye(3)], axis=1)
    assert np.linalg.det(m) == pytest.approx(-1.0)


@given(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=20))
def test_positions_round_trip(points):
    p = np.array(points, dtype=np.float64)
    back = panda_to_ue_pos(ue_to_panda_pos(p))
    np.testing.assert_allclose(back, p, rtol=1e-15, atol=1e-9)
    np.testing.assert_allclose(panda_to_ue_dir(ue_to_panda_dir(p)), p, rtol=0, atol=0)


@given(pitches, angles, st.floats(min_value=-180.0, max_value=180.0, allow_nan=False))
def test_rotator_round_trip(pitch, yaw, roll):
    assert panda_hpr_to_ue_rotator(*ue_rotator_to_panda_hpr(pitch, yaw, roll)) == (pitch, yaw, roll)


@settings(max_examples=200, deadline=None)
@given(pitches, angles, st.floats(min_value=-180.0, max_value=180.0, allow_nan=False))
def test_panda_node_axes_match_unreal_rotator(pitch, yaw, roll):
    """A NodePath set to the converted HPR points its forward/right/up axes where the Unreal rotator does."""
    node = panda3d_core.NodePath("probe")
    node.setHpr(*ue_rotator_to_panda_hpr(pitch, yaw, roll))
    q = node.getQuat()
    fwd = panda_to_ue_dir(np.array(q.getForward(), dtype=np.float64))
    right = panda_to_ue_dir(np.array(q.getRight(), dtype=np.float64))
    up = panda_to_ue_dir(np.array(q.getUp(), dtype=np.float64))
    m = quat_to_matrix(rotator_to_quat(pitch, yaw, roll))  # columns: Unreal forward, right, up
    np.testing.assert_allclose(fwd, forward_vector(pitch, yaw), atol=2e-6)
    np.testing.assert_allclose(fwd, m[:, 0], atol=2e-6)
    np.testing.assert_allclose(right, m[:, 1], atol=2e-6)
    np.testing.assert_allclose(up, m[:, 2], atol=2e-6)


@given(angles)
def test_yaw_is_negated_heading(yaw):
    assert ue_yaw_to_panda_heading(yaw) == -yaw
    np.testing.assert_array_equal(ue_yaw_to_panda_heading(np.array([yaw, 1.0])), [-yaw, -1.0])


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match="3-vector"):
        ue_to_panda_pos(np.zeros(2))
