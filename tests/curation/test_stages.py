"""The curation stages as pure functions: folding, redundant frames, velocity, resampling, crop, clipping."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.config import ClipConfig, CurateConfig, DedupConfig, ResampleConfig, VelocityConfig
from curation.stages import (
    FrameActions, OnlineResampler, clip_starts, cut_clips, drop_redundant_frames, fold_into_kept, fold_spans,
    motion_step, redundant_frame_mask, resample, resample_select, resize_center_crop, runs, validate_velocity,
    velocity_mask,
)
from tests.curation.helpers import pan_frames

K = 4  # w s a d


def actions(n, fps=25.0, seed=0):
    rng = np.random.default_rng(seed)
    return FrameActions(
        frame=np.arange(n), t=np.arange(n) / fps, keyboard=(rng.random((n, K)) < 0.3).astype(np.uint8),
        mouse=rng.integers(-8, 9, (n, 2)) * 0.25,  # dyadic: sums are exact
        pose=np.column_stack([np.arange(n) * 2.0, np.zeros(n), np.zeros(n), np.ones(n), np.zeros((n, 3))]),
        speed=np.full(n, 50.0), collision=rng.random(n) < 0.1,
    )


def test_fold_spans_ors_keys_sums_mouse_and_keeps_the_kept_frames_state():
    a = actions(10)
    out = fold_spans(a, np.array([0, 3, 5]), np.array([2, 4, 9]))
    assert out.frame.tolist() == [2, 4, 9]
    for j, (s, e) in enumerate([(0, 2), (3, 4), (5, 9)]):
        assert out.keyboard[j].tolist() == a.keyboard[s:e + 1].max(axis=0).tolist()
        assert out.mouse[j].tolist() == a.mouse[s:e + 1].sum(axis=0).tolist()  # exact
        assert out.collision[j] == a.collision[s:e + 1].any()
        assert out.pose[j].tolist() == a.pose[e].tolist() and out.t[j] == a.t[e] and out.speed[j] == a.speed[e]
    with pytest.raises(ValueError):
        fold_spans(a, np.array([0, 2]), np.array([2, 4]))  # overlapping


def test_fold_into_kept_loses_nothing_before_the_last_kept_frame():
    a = actions(12)
    keep = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 0], bool)
    out, lost = fold_into_kept(a, keep)
    assert out.frame.tolist() == [0, 3, 4, 6, 10]
    assert out.mouse.sum(axis=0).tolist() == a.mouse[:11].sum(axis=0).tolist()
    assert (out.keyboard.sum(axis=0) > 0).tolist() == (a.keyboard[:11].sum(axis=0) > 0).tolist()
    assert lost == [(11, 11)]


def dup_sequence():
    """A slow pan (0.5 px/frame) with an exact duplicate at 5, a near (noisy) duplicate at 9 and a frozen
    run at 14-17; returns frames and the ground-truth keep mask."""
    rng = np.random.default_rng(3)
    real = pan_frames(20, seed=1, speed_px=0.5)
    frames, keep = [], []
    for i, f in enumerate(real):
        frames.append(f)
        keep.append(True)
        if i == 4:
            frames.append(f.copy())
            keep.append(False)
        if i == 8:
            frames.append(np.clip(f + rng.normal(0, 2.0, f.shape), 0, 255).astype(np.uint8))
            keep.append(False)
        if i == 12:
            frames += [f.copy() for _ in range(4)]
            keep += [False] * 4
    return frames, np.array(keep)


def test_redundant_frames_catches_exact_and_near_duplicates_and_keeps_slow_motion():
    frames, truth = dup_sequence()
    mask = redundant_frame_mask(frames, DedupConfig())
    assert mask.tolist() == truth.tolist()
    # the grey-only variant is an option too, and sees the same here
    assert redundant_frame_mask(frames, DedupConfig(planes="gray")).tolist() == truth.tolist()


def test_redundant_frames_stage_folds_actions_into_the_next_kept_frame():
    frames, truth = dup_sequence()
    a = actions(len(frames))
    res = drop_redundant_frames(frames, a, DedupConfig())
    assert len(res.frames) == truth.sum() == len(res.actions)
    kept = np.flatnonzero(truth)
    assert res.actions.frame.tolist() == kept.tolist()
    # no input lost: total mouse motion equal, every key press still present
    assert res.actions.mouse.sum(axis=0).tolist() == a.mouse.sum(axis=0).tolist()
    j = kept.tolist().index(6)  # frame 5 (exact duplicate) folds into frame 6
    assert res.actions.keyboard[j].tolist() == (a.keyboard[5] | a.keyboard[6]).tolist()
    assert res.actions.mouse[j].tolist() == (a.mouse[5] + a.mouse[6]).tolist()
    assert res.actions.pose[j].tolist() == a.pose[6].tolist()
    assert [(r.start_frame, r.end_frame) for r in res.reasons] == [(s, e) for s, e in runs(~truth)]
    assert all(r.stage == "dedup" and "redundant" in r.reason for r in res.reasons)


def test_redundant_frames_max_drop_keeps_a_frame_in_long_freezes():
    f = pan_frames(1)[0]
    frames = [f] * 30
    t = np.arange(30) / 10.0
    mask = redundant_frame_mask(frames, DedupConfig(max_drop_s=1.0), t)
    assert np.flatnonzero(mask).tolist() == [0, 11, 22]


def test_velocity_drops_long_still_and_backward_runs_only():
    fps = 25.0
    speed = np.full(200, 100.0)
    speed[20:30] = 0.0  # 0.4 s still: tolerated
    speed[50:110] = 1.0  # 2.4 s still: dropped
    speed[130:140] = -80.0  # 0.4 s backwards: tolerated
    speed[150:190] = -80.0  # 1.6 s backwards: dropped
    mouse = np.zeros((200, 2))
    cfg = VelocityConfig(min_speed_cm_s=5.0, max_still_s=1.0, max_backward_s=1.0)
    valid, reasons = velocity_mask(speed, mouse, fps, cfg)
    assert runs(~valid) == [(50, 109), (150, 189)]
    assert "standing still for 2.40 s" in reasons[0].reason and "moving backwards for 1.60 s" in reasons[1].reason
    # turning in place counts as motion (rotation-only footage is kept) unless told otherwise
    mouse[50:110, 1] = 1.0
    assert runs(~velocity_mask(speed, mouse, fps, cfg)[0]) == [(150, 189)]
    off = VelocityConfig(min_speed_cm_s=5.0, max_still_s=1.0, max_backward_s=1.0, turning_is_motion=False)
    assert runs(~velocity_mask(speed, mouse, fps, off)[0]) == [(50, 109), (150, 189)]
    res = validate_velocity(None, actions(200), fps, VelocityConfig(enabled=False))
    assert len(res.actions) == 200


@pytest.mark.parametrize("src_fps,expected", [(30.0, 25), (60.0, 25), (25.0, 25), (50.0, 25)])
def test_resampling_to_25_fps_keeps_total_mouse_motion_and_every_key(src_fps, expected):
    n = int(src_fps)  # one second
    a = actions(n, fps=src_fps, seed=5)
    res = resample(None, a, src_fps, ResampleConfig(mode="fps", fps=25.0))
    assert len(res.actions) == expected
    last = int(res.actions.frame[-1])
    assert res.actions.mouse.sum(axis=0).tolist() == a.mouse[:last + 1].sum(axis=0).tolist()
    pressed = a.keyboard[:last + 1].max(axis=0)
    assert res.actions.keyboard.max(axis=0).tolist() == pressed.tolist()
    # kept frames are the nearest to a 25 fps grid
    grid = np.arange(expected) / 25.0
    assert np.abs(res.actions.t - grid).max() <= 0.5 / src_fps + 1e-12


def test_resampling_bridges_gaps_left_by_dropped_duplicates():
    t = np.array([0, 1, 2, 6, 7, 8]) / 30.0  # frames 3-5 were dropped as redundant
    sel = resample_select(t, 1 / 15.0, 1 / 30.0)
    assert sel.tolist() == [True, False, True, True, False, True]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=60), st.sampled_from([1 / 25, 1 / 30, 0.05, 0.1, 0.0333]))
def test_online_resampler_matches_the_batch_selection(gaps, step):
    t = np.cumsum([0] + gaps[:-1]) / 60.0
    batch = resample_select(t, step, 1 / 60.0)
    r = OnlineResampler(step, 1 / 60.0)
    online = [r.push(x) for x in t][1:] + [r.finish()]
    assert online == batch.tolist()


def test_motion_step_matches_the_target_median_displacement():
    n = 100
    pose = np.zeros((n, 7))
    pose[:, 3] = 1.0
    pose[:, 0] = np.arange(n) * 2.0  # 2 cm per source frame
    assert motion_step(pose, 6.0, 8.0) == pytest.approx(3.0)
    assert motion_step(pose, 1.0, 8.0) == 1.0  # never below one source frame
    assert motion_step(pose, 100.0, 8.0) == 8.0  # clamped
    pose[:, 0] = 0.0
    assert motion_step(pose, 6.0, 8.0) == 8.0
    a = actions(n)
    a.pose = pose.copy()
    a.pose[:, 0] = np.arange(n) * 2.0
    res = resample(None, a, 25.0, ResampleConfig(), step_frames=3.0)
    d = np.linalg.norm(np.diff(res.actions.pose[:, :3], axis=0), axis=1)
    assert np.median(d) == pytest.approx(6.0)
    assert res.actions.mouse.sum(axis=0).tolist() == a.mouse[:int(res.actions.frame[-1]) + 1].sum(axis=0).tolist()


def test_resize_center_crop_keeps_the_aspect_and_takes_the_centre():
    import cv2

    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    out = resize_center_crop(big, 352, 640)
    assert out.shape == (352, 640, 3) and out.flags.c_contiguous
    ref = cv2.resize(big, (640, 360), interpolation=cv2.INTER_AREA)[4:356]
    assert np.array_equal(out, ref)
    tall = rng.integers(0, 256, (480, 480, 3), np.uint8)  # square: scaled to 640 wide, centre rows kept
    ref = cv2.resize(tall, (640, 640), interpolation=cv2.INTER_LINEAR)[144:496]
    assert np.array_equal(resize_center_crop(tall, 352, 640), ref)
    small = rng.integers(0, 256, (48, 64, 3), np.uint8)
    assert np.array_equal(resize_center_crop(small, 32, 64), small[8:40])
    assert resize_center_crop(small, 48, 64) is not small and np.array_equal(resize_center_crop(small, 48, 64), small)


def test_clip_windows_follow_the_4k_plus_1_rule():
    assert clip_starts(30, 9, 9) == [0, 9, 18]
    assert clip_starts(30, 9, 4) == [0, 4, 8, 12, 16, 20]
    assert clip_starts(8, 9, 9) == []
    with pytest.raises(ValueError):
        clip_starts(100, 8, 8)
    a = actions(25)
    frames = [np.zeros((4, 4, 3), np.uint8)] * 25
    clips, reasons = cut_clips(frames, a, ClipConfig(frames=9, stride=9, height=4, width=4))
    assert [c.actions.frame[0] for c in clips] == [0, 9] and all(len(c.frames) == 9 for c in clips)
    assert [(r.start_frame, r.end_frame, r.stage) for r in reasons] == [(18, 24, "clip")]


def test_config_reports_every_bad_key_with_allowed_values():
    with pytest.raises(ValueError) as e:
        CurateConfig.from_dict({"clip": {"frames": 56, "width": 641}, "output": {"frame_codec": "png"},
                                "dedup": {"hi": "x", "planes": "rgb"}, "bogus": 1}, "curate")
    msg = str(e.value)  # every problem at once, each with its key
    for part in ("curate: bogus: unknown key", "curate: dedup.hi: 'x' is not allowed", "clip.frames: 56",
                 "1 + 4k frames", "clip.width: 641", "output.frame_codec: 'png'", "h264, jpeg", "dedup.planes: 'rgb'"):
        assert part in msg
    from curation.config import CurateSection

    sec = CurateSection.from_dict({"engine": "ray", "workers": 3, "dataset": "mine", "clip": {"frames": 33}})
    assert (sec.engine, sec.workers, sec.dataset, sec.config.clip.frames) == ("ray", 3, "mine", 33)
    assert sec.config.fingerprint() == CurateConfig.from_dict({"clip": {"frames": 33}}).fingerprint()
    with pytest.raises(ValueError, match=r"engine: 'spark'.*local, ray"):
        CurateSection.from_dict({"engine": "spark"})
    cfg = CurateConfig.from_dict({"resample": {"motion_sources": ["sekai"], "motion_target_cm": None}})
    assert cfg.resample.motion_sources == ("sekai",) and CurateConfig.from_dict(cfg.to_dict()) == cfg
