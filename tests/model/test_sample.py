"""Sampling the trained tiny model: actions steer the generated video; mp4 output; input checks.

Steering is measured on the decoded frames with OpenCV's Farneback optical flow: in the synthetic world a turn to
the right pans the camera right, so the content moves left (negative mean horizontal flow) and a turn to the
left the opposite way; W zooms in (an expanding flow field, positive divergence) while no key keeps the view.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from model.bundle import load_bundle
from model.conditions import ConditionError
from model.sample import generate_base, load_image
from tests.model.conftest import TRAIN_FRAMES
from tests.model.flow_metrics import mean_divergence, mean_horizontal_flow, radial_flow
from tests.model.synthetic_world import DEFAULT_KEYS, action_rows


@pytest.fixture(scope="module")
def bundle(trained_run):
    return load_bundle(trained_run.checkpoint)


@pytest.fixture(scope="module")
def generated(bundle, synthetic_clips):
    """One clip per action from the same first frame (the training clips' first frame), same noise."""
    frame0 = synthetic_clips[0].frames[0]
    out = {}
    for action in ("idle", "right", "left", "forward"):
        kb, mouse = action_rows(action, TRAIN_FRAMES)
        out[action] = generate_base(bundle, frame0, (kb, mouse), steps=20, seed=0).frames
    return out


def test_turning_right_and_left_move_the_view_in_opposite_directions(generated):
    right, left, idle = (mean_horizontal_flow(generated[a]) for a in ("right", "left", "idle"))
    # ground truth in the synthetic world: -3 px/frame for right, +3 for left; measured on generated clips over
    # training seeds 0-2: right -0.8 to -1.1, left +0.3 to +0.5, idle within 0.07 (the tiny VAE blurs)
    assert right < -0.15 and left > 0.15, (right, left)
    assert abs(idle) < min(abs(right), abs(left)), (idle, right, left)


def test_forward_expands_the_view_and_no_key_does_not(generated):
    fwd_div, idle_div = mean_divergence(generated["forward"]), mean_divergence(generated["idle"])
    fwd_rad, idle_rad = radial_flow(generated["forward"]), radial_flow(generated["idle"])
    # measured over seeds: forward div ~0.04 and radial flow ~0.9 px/frame outwards; idle ~0 for both
    assert fwd_div > idle_div + 0.01, (fwd_div, idle_div)
    assert fwd_rad > 0.3 and fwd_rad > idle_rad + 0.3, (fwd_rad, idle_rad)


def test_generate_from_files_writes_an_mp4(bundle, trained_run, synthetic_clips, tmp_path):
    img = tmp_path / "first.png"
    cv2.imwrite(str(img), cv2.cvtColor(synthetic_clips[0].frames[0], cv2.COLOR_RGB2BGR))
    kb, mouse = action_rows("right", 13)  # longer than trained (9): bidirectional sampling takes any 1 + 4k
    df = pd.DataFrame({"frame": np.arange(13), **{f"key_{k}": kb[:, i] for i, k in enumerate(DEFAULT_KEYS)},
                       "d_pitch": mouse[:, 0], "d_yaw": mouse[:, 1]})
    csv = tmp_path / "actions.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "out.mp4"
    res = generate_base(trained_run.out_dir, img, csv, steps=4, out_mp4=out)  # a run folder: its latest checkpoint
    assert res.frames.shape == (13, 64, 112, 3) and res.path == out and res.latents.shape == (1, 16, 4, 8, 14)
    cap = cv2.VideoCapture(str(out))
    n, w, h = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS)
    ok, frame = cap.read()
    cap.release()
    assert ok and (n, w, h) == (13, 112, 64) and fps == pytest.approx(25.0)
    # the same seed gives the same video
    again = generate_base(bundle, img, csv, steps=4)
    np.testing.assert_array_equal(again.frames, res.frames)


def test_generate_checks_its_inputs(bundle, synthetic_clips):
    frame0 = synthetic_clips[0].frames[0]
    kb, mouse = action_rows("idle", 9)
    with pytest.raises(ConditionError, match=r"1 \+ 4k"):
        generate_base(bundle, frame0, (kb, mouse), num_frames=8, steps=1)
    with pytest.raises(ConditionError, match="only 9 rows"):
        generate_base(bundle, frame0, (kb, mouse), num_frames=13, steps=1)
    with pytest.raises(ConditionError, match=r"keyboard must be \[T, 9\]"):
        generate_base(bundle, frame0, (kb[:, :4], mouse), steps=1)
    with pytest.raises(ConditionError, match="lack columns"):
        generate_base(bundle, frame0, pd.DataFrame({"key_w": np.zeros(9)}), steps=1)


def test_load_image_resizes_and_centre_crops():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 140:160] = 255  # a bright vertical bar in the middle
    out = load_image(img, 64, 112)
    assert out.shape == (64, 112, 3)
    cols = np.flatnonzero(out[32, :, 0] > 128)
    assert abs(cols.mean() - 55.5) < 2  # still centred
