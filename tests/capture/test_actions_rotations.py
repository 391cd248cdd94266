"""Action space conversions and the float64 rotator maths of capture."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.actions import DEFAULT_KEYS, ActionSpace, FrameAction
from capture.rotations import forward_vector, quat_to_matrix, quat_to_rotator, rotator_to_quat, wrap_deg


def test_default_action_space_and_multihot_round_trip():
    space = ActionSpace()
    assert space.keys == DEFAULT_KEYS == ("w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb")
    vec = space.to_multihot({"w", "shift", "rmb"})
    assert vec.dtype == np.uint8 and vec.tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 1]
    assert space.from_multihot(vec) == {"w", "shift", "rmb"}
    assert space.columns[:2] == ["key_w", "key_s"]
    assert ActionSpace.from_dict(space.to_dict()) == space


def test_action_space_rejects_bad_keys():
    with pytest.raises(ValueError, match="duplicate"):
        ActionSpace(("w", "w"))
    with pytest.raises(ValueError, match="lower-case"):
        ActionSpace(("W",))
    with pytest.raises(KeyError, match="unknown key 'x'"):
        ActionSpace().to_multihot({"x"})
    with pytest.raises(ValueError, match="shape"):
        ActionSpace().from_multihot([1, 0])
    with pytest.raises(ValueError, match="finite"):
        FrameAction(d_yaw_deg=float("inf"))


angles = st.floats(-179.0, 179.0)


@settings(max_examples=300, deadline=None)
@given(st.floats(-89.0, 89.0), angles, angles)
def test_rotator_quaternion_round_trip_and_unit_norm(pitch, yaw, roll):
    q = rotator_to_quat(pitch, yaw, roll)
    assert abs(np.linalg.norm(q) - 1.0) < 1e-12
    assert np.allclose(quat_to_rotator(q), (pitch, yaw, roll), atol=1e-8)
    m = quat_to_matrix(q)
    assert np.allclose(m @ m.T, np.eye(3), atol=1e-12)
    assert np.allclose(m[:, 0], forward_vector(pitch, yaw), atol=1e-12)


def test_unreal_axis_conventions():
    # yaw 90: forward is +Y (right); pitch 90: forward is +Z (up); roll tilts up towards +Y
    assert np.allclose(forward_vector(0, 90), [0, 1, 0], atol=1e-15)
    assert np.allclose(quat_to_matrix(rotator_to_quat(90, 0, 0))[:, 0], [0, 0, 1], atol=1e-12)
    assert quat_to_matrix(rotator_to_quat(0, 0, 30))[1, 2] > 0
    assert wrap_deg(190.0) == -170.0 and wrap_deg(-180.0) == 180.0
