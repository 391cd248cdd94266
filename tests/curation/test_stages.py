"""The curation stages: their pure functions (folding, redundant frames, velocity, resampling, crop, clip
windows) and the stage classes over a stream of frames, batch-size independent."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.config import CurateConfig, DedupConfig, VelocityConfig
from curation.stage import Clip, DatasetParams, DropSpan, EpisodeContext, Frame, Reject, SegmentEnd, run_stream
from curation.stages import (
    ClipWindows, FrameActions, OnlineResampler, PoseCheck, RedundantFrameFilter, RedundantFrames, Resample,
    ResizeCrop, VelocityFilter, build_stages, clip_starts, fold_spans, motion_step, resample_select,
    resize_center_crop, runs, velocity_mask,
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


KEYS4 = ("w", "s", "a", "d")


def context(a, fps=25.0, source="sandbox", tmp=Path("."), motion_target_cm=None, dataset_fps=25.0):
    """An EpisodeContext over the actions ``a`` (the stages read meta.fps, source, scene and seed only; without a
    video the consistency check leaves its columns empty)."""
    return EpisodeContext("ep", SimpleNamespace(fps=fps, source=source, scene="t", seed=0), a,
                          DatasetParams(KEYS4, dataset_fps, motion_target_cm), tmp)


def stream(stages, ctx, frames=None, batch=4):
    """Run ``stages`` over the episode ``ctx`` (``frames``: images, default 4x4 black) in batches of ``batch``
    frames; returns every item that leaves the last stage, in order."""
    n = len(ctx.actions)
    frames = frames if frames is not None else [np.zeros((4, 4, 3), np.uint8)] * n
    for stg in stages:
        stg.setup()
        stg.start(ctx)
    items = [Frame(i, float(ctx.actions.t[i]), frames[i], i) for i in range(n)]
    out = []
    run_stream(stages, [items[s:s + batch] for s in range(0, n, batch)], out.extend)
    return out


def kept(items):
    """The frames of a stream, their ``fold_from`` and their source index."""
    fr = [it for it in items if isinstance(it, Frame)]
    return fr, np.array([f.fold_from for f in fr], dtype=np.int64), np.array([f.index for f in fr], dtype=np.int64)


def cfg_with(**sections):
    return CurateConfig.from_dict(sections)


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


def keep_mask(frames, cfg, t=None):
    filt = RedundantFrameFilter(cfg)
    return np.array([filt.keep(f, 0.0 if t is None else float(t[i])) for i, f in enumerate(frames)])


def test_redundant_frames_catches_exact_and_near_duplicates_and_keeps_slow_motion():
    frames, truth = dup_sequence()
    assert keep_mask(frames, DedupConfig()).tolist() == truth.tolist()
    # the grey-only variant is an option too, and sees the same here
    assert keep_mask(frames, DedupConfig(planes="gray")).tolist() == truth.tolist()


def test_redundant_frames_stage_folds_actions_into_the_next_kept_frame():
    frames, truth = dup_sequence()
    a = actions(len(frames))
    cfg = cfg_with(velocity={"enabled": False})
    out = stream([VelocityFilter(cfg), RedundantFrames(cfg)], context(a), frames)
    _, starts, ends = kept(out)
    keep = np.flatnonzero(truth)
    assert ends.tolist() == keep.tolist()
    res = fold_spans(a, starts, ends)
    # no input lost: total mouse motion equal, every key press still present
    assert res.mouse.sum(axis=0).tolist() == a.mouse.sum(axis=0).tolist()
    j = keep.tolist().index(6)  # frame 5 (exact duplicate) folds into frame 6
    assert res.keyboard[j].tolist() == (a.keyboard[5] | a.keyboard[6]).tolist()
    assert res.mouse[j].tolist() == (a.mouse[5] + a.mouse[6]).tolist()
    assert res.pose[j].tolist() == a.pose[6].tolist()
    spans = [it for it in out if isinstance(it, DropSpan)]
    assert [(r.start_frame, r.end_frame) for r in spans] == runs(~truth)
    assert all(r.stage == "dedup" and "redundant" in r.reason for r in spans)
    assert isinstance(out[-1], SegmentEnd) and (out[-1].start, out[-1].end) == (0, len(frames) - 1)
    assert not RedundantFrames.enabled(cfg_with(dedup={"enabled": False}))


def test_redundant_frames_max_drop_keeps_a_frame_in_long_freezes():
    f = pan_frames(1)[0]
    mask = keep_mask([f] * 30, DedupConfig(max_drop_s=1.0), np.arange(30) / 10.0)
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


def test_velocity_stage_cuts_segments_and_reports_first():
    a = actions(200)
    a.speed[:] = 100.0
    a.speed[50:110] = 0.0
    a.mouse[50:110] = 0.0
    cfg = cfg_with(velocity={"max_still_s": 1.0})
    out = stream([VelocityFilter(cfg)], context(a))
    assert isinstance(out[0], DropSpan) and (out[0].start_frame, out[0].end_frame, out[0].stage) == (50, 109, "velocity")
    assert [(it.start, it.end) for it in out if isinstance(it, SegmentEnd)] == [(0, 49), (110, 199)]
    assert [f.index for f in out if isinstance(f, Frame)] == list(range(50)) + list(range(110, 200))
    off = stream([VelocityFilter(cfg_with(velocity={"enabled": False}))], context(a))
    assert [(it.start, it.end) for it in off if isinstance(it, SegmentEnd)] == [(0, 199)]
    a.speed[:] = 0.0
    a.mouse[:] = 0.0
    with pytest.raises(Reject, match="no frame passes velocity validation"):
        VelocityFilter(cfg).start(context(a))


def test_velocity_cuts_the_episode_at_teleports():
    a = actions(200)
    a.pose[:, 0] = np.arange(200) * 12.0  # 300 cm/s at 25 fps
    a.pose[120:, 0] += 2400.0  # a respawn 24 m away: 60,300 cm/s for one frame
    a.pose[60, 0] = np.nan  # a lost pose is not a jump (the pose stage rejects its clips)
    cfg = cfg_with()
    valid, reasons = velocity_mask(a.speed, a.mouse, 25.0, cfg.velocity, pos=a.pose[:, :3])
    assert runs(~valid) == [(120, 120)]
    assert "teleport or respawn" in reasons[0].reason and "2412 cm" in reasons[0].reason
    out = stream([VelocityFilter(cfg)], context(a))
    assert [(it.start, it.end) for it in out if isinstance(it, SegmentEnd)] == [(0, 119), (121, 199)]
    drops = [it for it in out if isinstance(it, DropSpan)]
    assert [(d.start_frame, d.end_frame, d.frame_count) for d in drops] == [(120, 120, 1)]
    off = cfg_with(velocity={"max_speed_cm_s": None})
    assert velocity_mask(a.speed, a.mouse, 25.0, off.velocity, pos=a.pose[:, :3])[0].all()
    fast = cfg_with(velocity={"max_speed_cm_s": 100000.0})  # a limit above the jump
    assert velocity_mask(a.speed, a.mouse, 25.0, fast.velocity, pos=a.pose[:, :3])[0].all()


def idle_case(hold_keys: bool, keep_idle_s=2.0):
    """40 frames at 25 fps: a pan, then frames 10-29 identical (the camera stands), then the pan goes on."""
    pan = pan_frames(40, seed=2, speed_px=2.0)
    frames = pan[:10] + [pan[9]] * 20 + pan[10:20]
    a = actions(40)
    a.keyboard[:] = 0
    a.mouse[:] = 0.0
    a.keyboard[:10, 0] = a.keyboard[30:, 0] = 1  # W while the picture moves
    if hold_keys:
        a.keyboard[10:30, 0] = 1  # W held on identical frames: the game froze
    cfg = cfg_with(velocity={"enabled": False}, dedup={"keep_idle_s": keep_idle_s})
    ctx = context(a)
    return stream([VelocityFilter(cfg), RedundantFrames(cfg)], ctx, frames), ctx


def test_identical_frames_without_input_are_a_player_standing_still():
    out, ctx = idle_case(hold_keys=False)
    assert len(kept(out)[0]) == 40 and ctx.notes["idle_frames_kept"] == 20
    assert not [it for it in out if isinstance(it, DropSpan)]
    out, ctx = idle_case(hold_keys=True)  # input held: frozen, dropped and folded as before
    _, starts, ends = kept(out)
    assert 10 not in ends and ends.tolist().index(30) == 10 and starts[10] == 10
    (drop,) = [it for it in out if isinstance(it, DropSpan)]
    assert (drop.start_frame, drop.end_frame) == (10, 29) and "input was held" in drop.reason
    assert ctx.notes["idle_frames_kept"] == 0
    out, ctx = idle_case(hold_keys=False, keep_idle_s=0.4)  # 10 frames of standing kept, the rest dropped
    assert ctx.notes["idle_frames_kept"] == 10
    (drop,) = [it for it in out if isinstance(it, DropSpan)]
    assert (drop.start_frame, drop.end_frame) == (20, 29) and "dedup.keep_idle_s" in drop.reason


@pytest.mark.parametrize("src_fps,expected", [(30.0, 25), (60.0, 25), (25.0, 25), (50.0, 25)])
def test_resampling_to_25_fps_keeps_total_mouse_motion_and_every_key(src_fps, expected):
    n = int(src_fps)  # one second
    a = actions(n, fps=src_fps, seed=5)
    cfg = cfg_with(velocity={"enabled": False}, resample={"mode": "fps", "fps": 25.0})
    out = stream([VelocityFilter(cfg), Resample(cfg)], context(a, fps=src_fps))
    res = fold_spans(a, *kept(out)[1:])
    assert len(res) == expected
    last = int(res.frame[-1])
    assert res.mouse.sum(axis=0).tolist() == a.mouse[:last + 1].sum(axis=0).tolist()
    assert res.keyboard.max(axis=0).tolist() == a.keyboard[:last + 1].max(axis=0).tolist()
    # kept frames are the nearest to a 25 fps grid
    grid = np.arange(expected) / 25.0
    assert np.abs(res.t - grid).max() <= 0.5 / src_fps + 1e-12
    spans = [(r.stage, r.start_frame, r.end_frame, r.frame_count) for r in out if isinstance(r, DropSpan)]
    assert spans == ([("resample", 0, n - 1, n - expected)] if n != expected else [])  # skipped frames, not the span


def test_resampling_rejects_episodes_slower_than_the_dataset():
    with pytest.raises(Reject, match="below the dataset fps"):
        Resample(cfg_with(resample={"mode": "fps", "fps": 25.0})).start(context(actions(20, fps=15.0), fps=15.0))
    with pytest.raises(Reject, match="resample.mode is none"):
        Resample(cfg_with(resample={"mode": "none"})).start(context(actions(20, fps=30.0), fps=30.0))


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
    cfg = cfg_with(velocity={"enabled": False}, resample={"motion_sources": ["sekai"], "max_motion_step": 8.0})
    ctx = context(a, source="sekai", motion_target_cm=6.0)
    out = stream([VelocityFilter(cfg), Resample(cfg)], ctx)
    assert ctx.notes["motion_step"] == pytest.approx(3.0)
    res = fold_spans(a, *kept(out)[1:])
    d = np.linalg.norm(np.diff(res.pose[:, :3], axis=0), axis=1)
    assert np.median(d) == pytest.approx(6.0)
    assert res.mouse.sum(axis=0).tolist() == a.mouse[:int(res.frame[-1]) + 1].sum(axis=0).tolist()


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


def test_clip_windows_fold_their_frames_and_report_what_no_clip_covers(tmp_path):
    a = actions(25)
    frames = [np.full((8, 8, 3), 10 * i, np.uint8) for i in range(25)]
    cfg = cfg_with(velocity={"enabled": False}, clip={"frames": 9, "stride": 9, "height": 4, "width": 4},
                   output={"frame_codec": "jpeg"})
    out = stream([VelocityFilter(cfg), ResizeCrop(cfg), ClipWindows(cfg)], context(a, tmp=tmp_path), frames)
    clips = [it for it in out if isinstance(it, Clip)]
    assert [c.start_frame for c in clips] == [0, 9] and all(len(c.media) == 9 for c in clips)
    assert clips[1].actions.frame.tolist() == list(range(9, 18)) and (clips[1].first, clips[1].last) == (9, 17)
    assert [(r.start_frame, r.end_frame, r.stage) for r in out if isinstance(r, DropSpan)] == [(18, 24, "clip")]
    # overlapping windows (stride 4) share frames; h264 clips are mp4 files, encoded in the episode's tmp folder
    cfg = cfg_with(velocity={"enabled": False}, clip={"frames": 9, "stride": 4, "height": 8, "width": 8})
    out = stream([VelocityFilter(cfg), ClipWindows(cfg)], context(a, tmp=tmp_path), frames)
    clips = [it for it in out if isinstance(it, Clip)]
    assert [c.start_frame for c in clips] == [0, 4, 8, 12, 16]
    assert all(c.media[4:8] == b"ftyp" for c in clips) and not list(tmp_path.iterdir())


def test_pose_check_turns_a_clip_with_a_nan_pose_into_a_clip_reject():
    a = actions(9)
    a.pose[3, 0] = np.nan
    ok = Clip(0, 0, 8, actions(9), b"x")
    out = PoseCheck(CurateConfig()).process([ok, SegmentEnd(0, 17), Clip(9, 9, 17, a, b"y")])
    assert out[0] is ok and isinstance(out[1], SegmentEnd)
    assert (out[2].kind, out[2].stage, out[2].start_frame, out[2].end_frame) == ("clip", "pose", 9, 17)
    assert "[3]" in out[2].reason


def signature(out):
    return [(type(it).__name__, getattr(it, "index", None), getattr(it, "fold_from", None),
             getattr(it, "start_frame", None), getattr(it, "reason", None), getattr(it, "start", None),
             None if not isinstance(it, Clip) else (it.media, it.actions.mouse.tolist())) for it in out]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(["move", "move", "dup", "still"]), min_size=20, max_size=60),
       st.integers(1, 17), st.sampled_from([25.0, 30.0]))
def test_the_output_stream_does_not_depend_on_the_batch_size(kinds, batch, fps):
    """How an engine batches an episode's frames does not change what the stages emit: the default pipeline
    gives the same items (frames, clips, drop records, in the same order) for any batch size."""
    n = len(kinds)
    real = pan_frames(n, seed=7, speed_px=1.0)
    frames, speed = [], np.full(n, 100.0)
    for i, k in enumerate(kinds):
        frames.append(frames[-1] if k == "dup" and frames else real[i])
        speed[i] = 0.0 if k == "still" else 100.0
    a = actions(n, fps=fps)
    a.speed = speed
    a.mouse[speed == 0] = 0.0
    cfg = cfg_with(velocity={"max_still_s": 0.1}, clip={"frames": 5, "stride": 3, "height": 16, "width": 32},
                   output={"frame_codec": "jpeg"})
    try:
        ref = signature(stream(build_stages(cfg), context(a, fps=fps), frames, batch=n))
    except Reject:  # every frame standing still
        return
    assert signature(stream(build_stages(cfg), context(a, fps=fps), frames, batch=batch)) == ref


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
