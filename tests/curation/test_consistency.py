"""curation.consistency: every diagnosis case on labels with a known fault (synthetic motion with the estimator's
behaviour), the clip flags, and the statistics they rest on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from curation.consistency import (
    Labels, VisualSeries, best_lag, clip_flags, diagnose, lag_corr, pool, score_window, shift_labels, spearman,
    trimmed_slope, EpisodeConsistency,
)

F_PX = 80.0


class FakeMotion:
    """Translation evidence as the estimator gives it: the true motion plus what a wrong labelled yaw leaves behind
    after derotation (the residual of the rotational field, f * (label - true) in radians)."""

    def __init__(self, fwd, side, yaw, mirror=False):
        self.fwd, self.side, self.yaw, self.mirror = fwd, side, yaw, mirror

    def translation_evidence(self, d_pitch, d_yaw):
        lat = 0.8 * self.side + F_PX * np.radians(np.asarray(d_yaw) - self.yaw)
        return 0.9 * self.fwd.astype(float), (-lat if self.mirror else lat)


def truth(n=400, seed=0):
    """Smooth yaw and pitch rates (deg/frame) and W/S/A/D segments, as a person plays."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    yaw = 2.0 * np.sin(t / 13.0 + rng.uniform(0, 6)) + 0.8 * np.sin(t / 5.0 + rng.uniform(0, 6))
    jitter = np.zeros(n)
    e = rng.normal(0, 0.6, n)
    for i in range(1, n):  # hand jitter: short-memory noise on top of the slow turns
        jitter[i] = 0.5 * jitter[i - 1] + e[i]
    yaw += jitter
    pitch = 0.6 * np.sin(t / 9.0 + rng.uniform(0, 6))
    fwd = np.where((t // 40) % 4 == 3, -1, 1).astype(np.int8)
    side = np.where((t // 25) % 5 == 1, 1, np.where((t // 25) % 5 == 3, -1, 0)).astype(np.int8)
    yaw[0] = pitch[0] = 0.0
    return yaw, pitch, fwd, side, rng


def case(n=400, seed=0, mirror=False):
    yaw, pitch, fwd, side, rng = truth(n, seed)
    vy = yaw + rng.normal(0, 0.05, n)
    vp = pitch + rng.normal(0, 0.05, n)
    vy[0] = vp[0] = np.nan
    if mirror:
        vy = -vy
    vis = VisualSeries(vy, vp, np.r_[False, np.ones(n - 1, bool)], FakeMotion(fwd, side, -yaw if mirror else yaw, mirror))
    lab = Labels(pitch.copy(), yaw.copy(), fwd.copy(), side.copy(), np.ones(n, bool))
    return lab, vis


def codes(lab, vis, **kw):
    return diagnose(lab, vis, **kw).codes


def test_clean_labels_pass():
    lab, vis = case()
    d = diagnose(lab, vis)
    assert d.ok and d.faults == []
    assert {"rotation", "pitch", "scale", "W/S", "A/D"} <= set(d.checked)
    assert d.scores.yaw_r > 0.9 and d.scores.slope == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("fault,change,want,fix", [
    ("yaw sign", lambda l: l.copy(d_yaw=-l.d_yaw), "yaw_sign", "negate d_yaw"),
    ("pitch sign", lambda l: l.copy(d_pitch=-l.d_pitch), "pitch_sign", "negate d_pitch"),
    ("swap", lambda l: l.copy(d_pitch=l.d_yaw, d_yaw=l.d_pitch), "axes_swap", "swap the d_pitch and d_yaw"),
    ("radians", lambda l: l.copy(d_pitch=np.radians(l.d_pitch), d_yaw=np.radians(l.d_yaw)), "mouse_radians", "57.2958"),
    ("counts", lambda l: l.copy(d_pitch=l.d_pitch / 0.15, d_yaw=l.d_yaw / 0.15), "mouse_counts", "0.15"),
    ("x2", lambda l: l.copy(d_pitch=l.d_pitch * 2, d_yaw=l.d_yaw * 2), "mouse_scale", "0.5"),
    ("W/S", lambda l: l.copy(fwd=-l.fwd), "ws_swap", "swap the W and S"),
    ("A/D", lambda l: l.copy(side=-l.side), "ad_swap", "swap the A and D"),
    ("late by 2", lambda l: shift_labels(l, 2), "shift", "2 row(s) earlier"),
    ("early by 1", lambda l: shift_labels(l, -1), "shift", "1 row(s) later"),
])
def test_each_convention_error_is_named_with_its_fix(fault, change, want, fix):
    lab, vis = case(seed=3)
    d = diagnose(change(lab), vis)
    assert not d.ok
    hit = [f for f in d.faults if f.code == want]
    assert hit, f"{fault}: got {d.summary()}"
    assert fix in hit[0].fix


def test_labels_of_another_video_are_unrelated():
    lab, vis = case(seed=1)
    rng = np.random.default_rng(7)
    noise = np.convolve(rng.normal(0, 2.0, 420), np.ones(8) / 8, mode="same")[:400]  # someone else's mouse
    d = diagnose(Labels(np.zeros(400), noise, lab.fwd, lab.side, lab.observable), vis)
    assert "unrelated" in d.codes and "column mapping" in d.faults[0].fix


def test_a_mirrored_video_is_told_apart_from_a_flipped_yaw():
    lab, vis = case(seed=2, mirror=True)
    assert codes(lab, vis) == ["mirrored"]
    lab, vis = case(seed=2)
    assert codes(lab.copy(d_yaw=-lab.d_yaw), vis) == ["yaw_sign"]  # the keys still agree: only the mouse sign


def test_scale_is_not_judged_without_a_known_field_of_view():
    lab, vis = case(seed=4)
    d = diagnose(lab.copy(d_pitch=lab.d_pitch * 2, d_yaw=lab.d_yaw * 2), vis, fov_known=False)
    assert d.ok and "scale" not in d.checked


def test_gta_forward_comes_from_the_signed_speed():
    from curation.consistency import labels_from_arrays

    kb = np.zeros((5, 2), np.uint8)
    kb[:, 1] = 1  # S held: a brake while the car still rolls forward
    lab = labels_from_arrays(("w", "s"), kb, np.zeros((5, 2)), speed=np.array([0, 900, 600, -200, -20.0]),
                             source="gta")
    assert lab.fwd.tolist() == [0, 1, 1, -1, 0] and not lab.side.any()


def test_clip_flags_follow_the_reference_thresholds():
    lab, vis = case(seed=5)
    clean = score_window(lab, vis, slice(0, 64))
    assert clip_flags(clean) == []
    flipped = score_window(lab.copy(d_yaw=-lab.d_yaw), vis, slice(0, 64))
    assert "yaw_sign" in clip_flags(flipped)
    scaled = score_window(lab.copy(d_yaw=lab.d_yaw / 57.3), vis, slice(0, 64))
    assert "scale" in clip_flags(scaled)


def test_import_pooling_keeps_episodes_apart():
    parts = [case(seed=s) for s in (8, 9)]
    cs = [EpisodeConsistency(f"e{i}", "generic", None, labels=l, visual=v) for i, (l, v) in enumerate(parts)]
    lab, vis = pool(cs)
    assert len(lab) == 2 * 400 + 2 * 7
    assert diagnose(lab, vis).ok
    cs = [EpisodeConsistency(f"e{i}", "generic", None, labels=l.copy(d_yaw=-l.d_yaw), visual=v)
          for i, (l, v) in enumerate(parts)]
    assert "yaw_sign" in diagnose(*pool(cs)).codes


def test_few_confident_frames_do_not_fake_a_shift():
    """The GTA-simulator recording that bench/label_check.py called "2 frames early" (fixture: its labels, and the
    estimator's yaw and pitch on its 41 confident frames). The import is aligned: the labels are the pose deltas of
    the frames shown, at lag 0. Only 16 pairs of consecutive confident frames carry the first differences, whose
    correlation peaked at +2 frames with the wrong sign (-0.79, noise); the rates, on all 41 frames, fit best at 0."""
    fx = json.loads((Path(__file__).parent / "fixtures" / "gta_sim_seed100_yaw.json").read_text())
    n, idx = fx["frames"], np.array(fx["confident"])
    ly, lp, truth_yaw = (np.array(fx[k]) for k in ("label_d_yaw", "label_d_pitch", "truth_d_yaw"))
    at = {lag: lag_corr(ly, truth_yaw, lag) for lag in range(-4, 5)}
    assert at[0] > 0.99 and max(at.values()) == at[0]  # the labels line up with the ground truth at lag 0
    vy, vp = np.full(n, np.nan), np.full(n, np.nan)
    vy[idx], vp[idx] = fx["visual_yaw"], fx["visual_pitch"]
    conf = np.zeros(n, bool)
    conf[idx] = True
    lab = Labels(lp, ly, np.zeros(n, np.int8), np.zeros(n, np.int8), np.ones(n, bool))
    vis = VisualSeries(vy, vp, conf)
    dl, dv = np.diff(ly), np.diff(vy)
    assert lag_corr(dl, dv, 2) < -0.7 and abs(lag_corr(dl, dv, 2)) > abs(lag_corr(dl, dv, 0)) + 0.5  # the noise peak
    assert lag_corr(ly, vy, 0) > lag_corr(ly, vy, 2) > 0  # the rates disagree with it
    assert best_lag(ly, vy)[0] == 0
    d = diagnose(lab, vis, source="gta")
    assert d.ok, d.summary()


def test_statistics():
    a = np.arange(50.0)
    assert spearman(a, a ** 3) == pytest.approx(1.0)
    assert math.isnan(spearman(a[:5], a[:5]))  # too few pairs
    y = 2.0 * a
    y[::10] = 500.0  # outliers
    assert trimmed_slope(a, y) == pytest.approx(2.0)
    s = np.sin(np.arange(200) / 4.0)
    lag, c, c0 = best_lag(np.r_[np.zeros(3), s[:-3]], s)  # labels 3 frames late
    assert lag == -3 and abs(c) > abs(c0)
    lag, c, _ = best_lag(-np.r_[s[2:], np.zeros(2)], s)  # 2 frames early and the sign flipped: still a shift
    assert lag == 2 and c < 0
    lag, c, c0 = best_lag(s[:5], s[:5])  # a 5-frame clip is shorter than the largest shift: no lag is measurable
    assert lag == 0 and math.isnan(c) and math.isnan(c0)
    lab, vis = case(seed=6)
    assert score_window(lab, vis, slice(10, 15)).frames == 5  # and its window scores are computed all the same


@pytest.mark.parametrize("on_clip", ["flag", "reject"])
def test_the_stage_scores_each_clip_and_drops_flagged_ones_when_asked(on_clip):
    """ConsistencyCheck as a curation stage: each Clip gets the check_* columns it declares; with on_clip: reject a
    clip whose labels are flipped becomes a clip record of stage consistency; other items pass in place."""
    from curation.config import CurateConfig
    from curation.consistency import ConsistencyCheck, clip_columns
    from curation.stage import Clip, DropSpan, SegmentEnd

    lab, vis = case(seed=5)
    st = ConsistencyCheck(CurateConfig.from_dict({"consistency": {"on_clip": on_clip}}))
    assert [f.name for f in st.clip_fields()] == list(clip_columns(None, 0, 1))
    flipped = lab.copy(d_yaw=np.where(np.arange(len(lab)) >= 64, -lab.d_yaw, lab.d_yaw))  # the second clip's yaw
    st.check = EpisodeConsistency("e", "sandbox", None, 90.0, True, flipped, vis,
                                  vis.evidence(flipped.d_pitch, flipped.d_yaw))
    out = st.process([Clip(0, 0, 63, None, b""), SegmentEnd(0, 127), Clip(64, 64, 127, None, b"")])
    assert isinstance(out[0], Clip) and out[0].columns["check_flags"] == [] and out[0].columns["check_yaw_r"] > 0.9
    assert isinstance(out[1], SegmentEnd)
    if on_clip == "flag":
        assert isinstance(out[2], Clip) and "yaw_sign" in out[2].columns["check_flags"]
    else:
        assert isinstance(out[2], DropSpan) and (out[2].stage, out[2].kind) == ("consistency", "clip")
        assert (out[2].start_frame, out[2].end_frame) == (64, 127) and "yaw_sign" in out[2].reason
