"""The sync marker (encode/decode) and the two alignment methods on controlled inputs."""

from __future__ import annotations

import numpy as np
import pytest

from gta_bridge.sim import SceneRenderer
from gta_bridge import frames as fr
from gta_bridge.sync import (AlignmentError, align_by_marker, align_by_motion, decode_marker, marker_cells,
                             render_marker)


def test_marker_round_trips_every_code_at_small_and_large_sizes():
    for code in range(0, 4096, 7):
        assert decode_marker(render_marker(128, 72, code)) == code
    for code in (0, 1, 2047, 4095):
        assert decode_marker(render_marker(1920, 1080, code)) == code
    assert decode_marker(render_marker(128, 72, 4096 + 5)) == 5  # codes are mod 4096


def test_marker_layout_finder_row_and_complementary_pairs():
    cells = marker_cells(0b101000000001)
    assert cells[0].tolist() == [True, False] * 4
    flat = cells.reshape(-1)[8:]
    assert np.all(flat[0::2] != flat[1::2])
    assert flat[0::2].tolist() == [bool(int(b)) for b in "101000000001"]


def test_game_frames_and_noise_are_not_markers():
    r = SceneRenderer(128, 72, 60.0, seed=1)
    for yaw in range(0, 360, 30):
        assert decode_marker(r.render(np.array([0.0, 0.0, 1.1]), fr.gta_euler_to_matrix([-3, 0, yaw]))) is None
    rng = np.random.default_rng(0)
    assert decode_marker(rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)) is None
    assert decode_marker(np.full((72, 128, 3), 255, np.uint8)) is None
    noisy = render_marker(128, 72, 1234).astype(np.int16) + rng.normal(0, 8, (72, 128, 3)).astype(np.int16)
    assert decode_marker(np.clip(noisy, 0, 255).astype(np.uint8)) == 1234


def _capture(tick_wall_ms: np.ndarray, offset_s: float, fps: float, n: int, rate: float = 1.0, jitter_ms: float = 0.0,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Video times and the tick each capture shows (pts = offset + rate * wall)."""
    rng = np.random.default_rng(seed)
    pts = np.arange(n) / fps
    wall = (pts - offset_s) / rate * 1000.0 + rng.uniform(-jitter_ms / 2, jitter_ms / 2, n)
    shown = np.searchsorted(tick_wall_ms, wall, side="right") - 1
    return pts, shown


def test_marker_alignment_recovers_the_offset_within_a_fraction_of_a_tick():
    rng = np.random.default_rng(5)
    wall = np.cumsum(rng.uniform(14, 19, 400))  # irregular game frames
    codes = np.where(wall < 1500, np.arange(400) % 4096, -1)
    pts, shown = _capture(wall, offset_s=-0.4321, fps=30, n=60)
    keep = (shown >= 0) & (codes[np.clip(shown, 0, None)] >= 0)
    nxt = np.append(wall[1:], wall[-1] + 16)
    al = align_by_marker(pts[keep], codes[shown[keep]], wall, codes, nxt)
    assert al.method == "marker" and al.rate == 1.0
    assert abs(al.offset_s - (-0.4321)) * 1000 <= al.uncertainty_ms + 1e-6
    assert al.uncertainty_ms < 3.0


def test_marker_alignment_fits_drift_from_start_and_end_markers():
    rng = np.random.default_rng(9)
    wall = np.cumsum(rng.uniform(14, 19.5, 3600))
    codes = np.where((wall < 1500) | (wall > wall[-1] - 1500), np.arange(wall.size) % 4096, -1)
    rate = 1.001  # the video clock runs 1 ms/s fast: 60 ms over the session, several ticks
    pts, shown = _capture(wall, offset_s=0.25, fps=30, n=1950, rate=rate)
    w = (pts - 0.25) / rate * 1000
    keep = (shown >= 0) & (w < wall[-1] + 14) & (codes[np.clip(shown, 0, wall.size - 1)] >= 0)
    nxt = np.append(wall[1:], wall[-1] + 16.7)
    al = align_by_marker(pts[keep], codes[shown[keep]], wall, codes, nxt)
    assert al.details["segments"] == 2 and abs(al.rate - rate) < 1e-4
    assert np.max(np.abs(al.wall_ms(pts[keep]) - w[keep])) < 8


def test_marker_from_another_log_is_an_error():
    wall = np.arange(100) * 16.7
    codes = np.where(np.arange(100) < 50, np.arange(100), -1)
    with pytest.raises(AlignmentError, match="none of their codes matches"):
        align_by_marker(np.array([0.0, 0.033]), np.array([3000, 3001]), wall, codes, wall + 16.7)


def test_motion_alignment_finds_the_offset_and_refuses_unrelated_motion():
    rng = np.random.default_rng(1)
    wall = np.cumsum(rng.uniform(15, 18.5, 2400))
    yaw = np.cumsum(np.convolve(rng.normal(0, 1, wall.size), np.ones(40) / 40, mode="same")) * 2
    true = 1.234
    pts = np.arange(0, 36, 1 / 30)
    w = (pts - true) * 1000
    k = np.clip(np.searchsorted(wall, w, side="right") - 1, 0, wall.size - 1)
    dyaw = np.append(0, np.diff(yaw[k])) + rng.normal(0, 0.02, pts.size)
    ok = (w > wall[0]) & (w < wall[-1])
    al = align_by_motion(pts, dyaw, ok, wall, yaw, max_offset_s=5.0)
    assert al.method == "xcorr" and abs(al.offset_s - true) < 0.02
    with pytest.raises(AlignmentError, match="no sync marker .* no overlap"):
        align_by_motion(pts, rng.normal(0, 1, pts.size), ok, wall, yaw, max_offset_s=5.0)
