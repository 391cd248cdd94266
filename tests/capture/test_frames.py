"""capture.frames: world frames into Unreal's, for every up axis, handedness and camera convention."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.frames import (
    AXES, WorldFrame, camera_to_body, handedness_problem, rotations_to_unreal, world_to_unreal,
)
from capture.rotations import quat_to_matrix, rotator_to_quat
from capture.settings import ConfigError

FRAMES = [WorldFrame(up=u, handedness=h, camera_axes=c)
          for u, h, c in itertools.product(AXES, ("right", "left"), ("opencv", "opengl"))]


def test_sekai_default_is_the_opencv_to_unreal_reflection():
    m = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    assert np.array_equal(world_to_unreal(WorldFrame()), m) and np.array_equal(camera_to_body("opencv"), m.T)


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f"{f.up}-{f.handedness}-{f.camera_axes}")
def test_world_to_unreal_puts_up_on_z_and_flips_handedness_only_for_right_handed_worlds(frame):
    w = world_to_unreal(frame)
    assert np.allclose(w @ w.T, np.eye(3))
    up = np.eye(3)["xyz".index(frame.up[1])] * (1.0 if frame.up[0] == "+" else -1.0)
    assert np.allclose(w @ up, [0, 0, 1])
    assert np.linalg.det(w) == pytest.approx(-1.0 if frame.handedness == "right" else 1.0)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(FRAMES), st.floats(-80, 80), st.floats(-360, 360), st.floats(-30, 30))
def test_a_camera_written_in_any_frame_comes_back_as_the_same_unreal_rotation(frame, pitch, yaw, roll):
    r_ue = quat_to_matrix(rotator_to_quat(pitch, yaw, roll))
    w, c = world_to_unreal(frame), camera_to_body(frame.camera_axes)
    r_src = w.T @ r_ue @ c.T  # what a tool in that frame would store as camera-to-world
    assert handedness_problem(r_src[None], frame) is None
    assert np.allclose(rotations_to_unreal(r_src, frame), r_ue, atol=1e-12)


def test_a_rotation_of_the_other_handedness_is_refused_and_forward_must_be_horizontal():
    left = WorldFrame(handedness="left")
    assert "set handedness: right" in handedness_problem(np.eye(3)[None], left)
    with pytest.raises(ConfigError, match="forward: '-y' is not allowed; expected a horizontal axis"):
        WorldFrame.from_dict({"up": "+y", "forward": "-y"})
