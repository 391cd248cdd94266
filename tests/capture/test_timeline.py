"""The input timeline: boundary rules of capture/timeline.py's docstring, and a property test against a
brute-force reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.actions import ActionSpace
from capture.timeline import InputTimeline

SPACE = ActionSpace(("w", "s", "a", "d", "space"))
FPS = 25.0
T = np.arange(10) / FPS  # frames at 0, 40, 80, ... 360 ms


def keys_of(inputs, i):
    return set(SPACE.from_multihot(inputs.keyboard[i]))


def test_key_held_across_frames_sets_every_frame_it_touches():
    tl = InputTimeline(SPACE)
    tl.key_down("w", 50)   # inside frame 2's interval (40, 80]
    tl.key_up("w", 130)    # inside frame 4's interval (120, 160]
    inp = tl.align(T)
    assert [i for i in range(10) if "w" in keys_of(inp, i)] == [2, 3, 4]


def test_press_exactly_at_frame_time_counts_for_that_frame():
    tl = InputTimeline(SPACE)
    tl.key_down("a", 80)  # frame 2 is rendered at exactly 80 ms
    tl.key_up("a", 100)
    inp = tl.align(T)
    assert [i for i in range(10) if "a" in keys_of(inp, i)] == [2, 3]


def test_release_exactly_at_frame_time_counts_for_that_frame_only():
    tl = InputTimeline(SPACE)
    tl.key_down("d", 50)
    tl.key_up("d", 120)  # frame 3 at exactly 120 ms: down during (80, 120], not during (120, 160]
    inp = tl.align(T)
    assert [i for i in range(10) if "d" in keys_of(inp, i)] == [2, 3]


def test_tap_within_one_frame_is_never_lost():
    tl = InputTimeline(SPACE)
    tl.key_down("space", 161)
    tl.key_up("space", 161)  # same millisecond
    tl.key_down("s", 201)
    tl.key_up("s", 239)
    inp = tl.align(T)
    assert [i for i in range(10) if "space" in keys_of(inp, i)] == [5]
    assert [i for i in range(10) if "s" in keys_of(inp, i)] == [6]


def test_several_keys_at_once_are_independent():
    tl = InputTimeline(SPACE)
    tl.key_down("w", 10)
    tl.key_down("a", 45)
    tl.key_up("w", 170)
    tl.key_down("space", 100)
    tl.key_up("space", 110)
    tl.key_up("a", 290)
    inp = tl.align(T)
    assert keys_of(inp, 1) == {"w"}
    assert keys_of(inp, 2) == {"w", "a"}
    assert keys_of(inp, 3) == {"w", "a", "space"}
    assert keys_of(inp, 5) == {"w", "a"}
    assert keys_of(inp, 7) == {"a"}
    assert keys_of(inp, 8) == {"a"}  # released at 290 ms, inside (280, 320]
    assert keys_of(inp, 9) == set()


def test_unmatched_events_hold_to_the_ends_and_repeats_are_ignored():
    tl = InputTimeline(SPACE)
    tl.key_up("s", 90)      # was down before recording started
    tl.key_down("d", 250)   # never released
    tl.key_down("d", 290)   # auto-repeat while down: ignored
    inp = tl.align(T)
    assert [i for i in range(10) if "s" in keys_of(inp, i)] == [0, 1, 2, 3]
    assert [i for i in range(10) if "d" in keys_of(inp, i)] == [7, 8, 9]


def test_events_before_first_frame_fold_into_frame_zero_and_after_last_are_dropped():
    tl = InputTimeline(SPACE)
    tl.mouse_move(-500, d_yaw_deg=1.0)
    tl.mouse_move(0, d_yaw_deg=2.0)
    tl.mouse_move(361, d_yaw_deg=4.0)  # after the last frame (360 ms)
    tl.key_down("w", 400)
    inp = tl.align(T)
    assert inp.d_yaw_deg[0] == 3.0
    assert inp.d_yaw_deg.sum() == 3.0
    assert inp.dropped_events == 2
    assert inp.keyboard.sum() == 0


def test_mouse_motion_sums_per_interval_with_counts_and_degrees():
    tl = InputTimeline(SPACE, deg_per_count=0.022)
    tl.mouse_move(41, dx=10, dy=-5)
    tl.mouse_move(80, dx=5, dy=0)          # exactly at frame 2: belongs to frame 2
    tl.mouse_move(81, d_pitch_deg=0.5)      # degrees only: frame 3, no counts
    inp = tl.align(T)
    assert inp.d_yaw_deg[2] == pytest.approx(15 * 0.022)
    assert inp.d_pitch_deg[2] == pytest.approx(5 * 0.022)  # mouse up (dy < 0) looks up
    assert (inp.mouse_dx[2], inp.mouse_dy[2]) == (15.0, -5.0)
    assert inp.d_pitch_deg[3] == 0.5
    assert np.isnan(inp.mouse_dx[3]) and np.isnan(inp.mouse_dx[0])
    a = inp.action(2)
    assert a.mouse_dx == 15.0 and a.d_yaw_deg == pytest.approx(0.33)
    assert inp.action(3).mouse_dx is None


def test_millisecond_events_match_float_frame_times():
    # 3 / 25 s is not exactly representable; the event at 120 ms must still coincide with frame 3
    tl = InputTimeline(SPACE)
    tl.mouse_move(120, d_yaw_deg=1.0)
    inp = tl.align(np.array([i / 25.0 for i in range(5)]))
    assert inp.d_yaw_deg[3] == 1.0


def test_bad_input_is_rejected_clearly():
    tl = InputTimeline(SPACE)
    with pytest.raises(KeyError, match="unknown key 'q'"):
        tl.key_down("q", 10)
    with pytest.raises(ValueError, match="deg_per_count"):
        tl.mouse_move(10, dx=3)
    with pytest.raises(ValueError, match="strictly increasing"):
        tl.align([0.0, 0.04, 0.04])
    with pytest.raises(ValueError, match="non-finite"):
        tl.mouse_move(10, d_yaw_deg=float("nan"))
    InputTimeline(SPACE, ignore_unknown_keys=True).key_down("q", 10)


def reference_keyboard(spans, frame_us):
    """Brute force: key k in frame i iff its press span [d, u) meets (t[i-1], t[i]] (a tap: d in it)."""
    n = len(frame_us)
    out = np.zeros((n, len(SPACE)), dtype=np.uint8)
    for k, d, u in spans:
        for i in range(n):
            a = -np.inf if i == 0 else frame_us[i - 1]
            b = frame_us[i]
            hit = (a < d <= b) if d == u else (d <= b and u > a)
            if hit:
                out[i, k] = 1
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 500), st.integers(0, 120)), max_size=12),
    st.lists(st.integers(1, 60), min_size=1, max_size=15),
)
def test_alignment_matches_brute_force_reference(presses, gaps_ms):
    frame_ms = np.cumsum(gaps_ms).astype(float)
    tl = InputTimeline(SPACE)
    spans, busy = [], {}
    for k, start, length in sorted(presses, key=lambda p: p[1]):
        if start <= busy.get(k, -1):  # keep presses of one key disjoint so spans are unambiguous
            continue
        tl.key_down(SPACE.keys[k], start)
        tl.key_up(SPACE.keys[k], start + length)
        spans.append((k, start, start + length))
        busy[k] = start + length
    inp = tl.align(frame_ms / 1000.0)
    np.testing.assert_array_equal(inp.keyboard, reference_keyboard(spans, frame_ms))
