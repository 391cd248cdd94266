"""Aligning OBS video frames to game ticks: the sync marker, and motion cross-correlation without one.

Clock model
    The mod stamps every tick with ``wall_time_ms`` (a high-resolution wall clock, 0 at the first logged tick).
    A video frame with presentation time ``pts_s`` was captured at wall time ``(pts_s - offset_s) / rate``
    (``rate`` is 1 unless start and end markers show drift) and shows the last tick rendered before that:
    ``tick(frame) = max{k : wall_ms(k) <= wall(frame)}``. Display latency is absorbed into ``offset_s``.

Sync marker (the mod's ``SyncMarker.cs`` twin)
    A full-screen 4 x 8 grid. Row 0 is a finder pattern (white in even columns). Rows 1-3 hold the 12-bit tick
    code, most significant bit first, each bit as two adjacent cells: (white, black) = 1, (black, white) = 0.
    Each marker frame says which tick it shows, so every marker frame gives an interval for the offset:
    ``pts - wall(k+1) < offset <= pts - wall(k)``; the offset inside the most intervals (their intersection when
    they agree) pins the tick of every frame.

Without a marker
    The horizontal image shift between consecutive frames (phase correlation) follows the camera's yaw rate.
    It is cross-correlated with the yaw rate of the logged camera over the allowed offsets (normalised per lag,
    FFT on a 100 Hz grid; the video and the log must overlap by most of the shorter one), then refined on a 1 ms
    grid against the yaw change each frame should show. The yaw rate changes over tenths of a second, so this
    pins the offset to a few ticks, not a fraction of one: record with the marker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from capture.errors import InputError

ROWS = 4
COLS = 8
BITS = 12
MODULUS = 1 << BITS


class AlignmentError(InputError):
    """The video could not be aligned to the behaviour log; the message says why and names the files."""


# --------------------------------------------------------------------------------------------------------
# the marker


def marker_cells(code: int) -> np.ndarray:
    """Cell colours ``bool[ROWS, COLS]`` (True = white) of a code (taken mod 4096)."""
    code = int(code) % MODULUS
    cells = np.zeros((ROWS, COLS), dtype=bool)
    cells[0, 0::2] = True
    flat = cells.reshape(-1)
    for b in range(BITS):
        one = (code >> (BITS - 1 - b)) & 1 == 1
        flat[COLS + 2 * b] = one
        flat[COLS + 2 * b + 1] = not one
    return cells


def marker_rects(code: int) -> list[tuple[float, float, float, float, int, int, int, int]]:
    """The rectangles the mod draws for a code, in order: a black full-screen one, then one per white cell.

    Each is ``(cx, cy, w, h, r, g, b, a)`` in normalised screen units (``DRAW_RECT``'s convention)."""
    rects = [(0.5, 0.5, 1.0, 1.0, 0, 0, 0, 255)]
    cells = marker_cells(code)
    w, h = 1.0 / COLS, 1.0 / ROWS
    for r in range(ROWS):
        for c in range(COLS):
            if cells[r, c]:
                rects.append(((c + 0.5) * w, (r + 0.5) * h, w, h, 255, 255, 255, 255))
    return rects


def render_rects(frame: np.ndarray, rects: Sequence[Sequence[float]]) -> np.ndarray:
    """Draw ``DRAW_RECT``-style rectangles (normalised centre/size, RGBA) into an RGB ``uint8[H, W, 3]`` frame
    in place (alpha-blended, pixel centres inside the rectangle are covered). Returns the frame."""
    h, w = frame.shape[:2]
    for cx, cy, rw, rh, r, g, b, a in rects:
        x0 = int(np.ceil((cx - rw / 2) * w - 0.5))
        x1 = int(np.ceil((cx + rw / 2) * w - 0.5))
        y0 = int(np.ceil((cy - rh / 2) * h - 0.5))
        y1 = int(np.ceil((cy + rh / 2) * h - 0.5))
        x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            continue
        alpha = a / 255.0
        region = frame[y0:y1, x0:x1].astype(np.float32)
        region = region * (1 - alpha) + np.array([r, g, b], dtype=np.float32) * alpha
        frame[y0:y1, x0:x1] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return frame


def render_marker(width: int, height: int, code: int) -> np.ndarray:
    """A full marker frame ``uint8[height, width, 3]`` for a code."""
    return render_rects(np.zeros((height, width, 3), dtype=np.uint8), marker_rects(code))


def decode_marker(frame: np.ndarray, *, min_contrast: float = 80.0, max_cell_std: float = 30.0) -> int | None:
    """The code of a marker frame (RGB or grey), or None when the frame is not a clean marker.

    Each cell is sampled in its central half; the frame is a marker when the cells are uniform, the finder row
    alternates with at least ``min_contrast`` grey levels, and every bit pair is clearly (white, black) or
    (black, white).
    """
    g = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(g.astype(np.float32), (COLS * 8, ROWS * 8), interpolation=cv2.INTER_AREA)
    blocks = small.reshape(ROWS, 8, COLS, 8)[:, 2:6, :, 2:6]
    mean = blocks.mean(axis=(1, 3))
    std = blocks.std(axis=(1, 3))
    if std.max() > max_cell_std:
        return None
    white = mean[0, 0::2]
    black = mean[0, 1::2]
    if white.min() - black.max() < min_contrast:
        return None
    thr = 0.5 * (white.mean() + black.mean())
    flat = mean.reshape(-1)
    code = 0
    for b in range(BITS):
        a, c = flat[COLS + 2 * b], flat[COLS + 2 * b + 1]
        if abs(a - c) < min_contrast * 0.75:
            return None
        if a > thr > c:
            bit = 1
        elif c > thr > a:
            bit = 0
        else:
            return None
        code = (code << 1) | bit
    return code


# --------------------------------------------------------------------------------------------------------
# image motion


def horizontal_shift(prev_gray: np.ndarray, gray: np.ndarray, window: np.ndarray | None = None) -> tuple[float, float]:
    """Global shift ``(dx, dy)`` in pixels of ``gray`` relative to ``prev_gray`` (phase correlation) and the
    correlation response (0..1; low = no reliable shift)."""
    a = prev_gray.astype(np.float32)
    b = gray.astype(np.float32)
    if window is None:
        window = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    return float(dx), float(response)


# --------------------------------------------------------------------------------------------------------
# alignment


@dataclass
class Alignment:
    """Maps video presentation times to the log's wall clock: ``pts_s = offset_s + rate * wall_s``.

    ``method``: "marker" or "xcorr". ``uncertainty_ms``: half-width of the offset interval the marker frames
    allow (marker), or the refinement plateau (xcorr). ``score``: fraction of consistent marker frames, or the
    peak normalised cross-correlation. ``samples``: marker frames used or motion samples correlated.
    """

    method: str
    offset_s: float
    rate: float = 1.0
    uncertainty_ms: float = float("nan")
    score: float = float("nan")
    samples: int = 0
    details: dict = field(default_factory=dict)

    def wall_ms(self, pts_s) -> np.ndarray:
        """Wall time in ms (0 = first logged tick) of video times in seconds."""
        return (np.asarray(pts_s, dtype=np.float64) - self.offset_s) / self.rate * 1000.0

    def pts_s(self, wall_ms) -> np.ndarray:
        """Video time in seconds of wall times in ms."""
        return self.offset_s + self.rate * np.asarray(wall_ms, dtype=np.float64) / 1000.0

    def to_dict(self) -> dict:
        return {"method": self.method, "offset_s": self.offset_s, "rate": self.rate,
                "uncertainty_ms": self.uncertainty_ms, "score": self.score, "samples": self.samples,
                **self.details}


def _interval_offset(pts: np.ndarray, wall_k: np.ndarray, wall_next: np.ndarray) -> tuple[float, float]:
    """Offset (s) and half-width (ms) from frames showing ticks: each frame allows
    ``pts - wall_next < offset <= pts - wall_k``. The offset is the middle of the region covered by the most
    intervals (interval stabbing), so a few inconsistent frames (capture jitter, a misread) do not move it."""
    lo = pts - wall_next / 1000.0
    hi = pts - wall_k / 1000.0
    # sweep: +1 at lo (exclusive, tiny epsilon), -1 after hi
    pos = np.concatenate([lo + 1e-9, hi])
    delta = np.concatenate([np.ones(lo.size), -np.ones(hi.size)])
    order = np.lexsort((-delta, pos))  # at equal positions, open before close
    pos, delta = pos[order], delta[order]
    depth = np.cumsum(delta)
    best = int(np.argmax(depth))
    a = pos[best]
    b = pos[best + 1] if best + 1 < pos.size else a
    return float(0.5 * (a + b)), float(0.5 * (b - a) * 1000.0)


def align_by_marker(hit_pts_s: np.ndarray, hit_codes: np.ndarray, tick_wall_ms: np.ndarray,
                    tick_codes: np.ndarray, tick_next_wall_ms: np.ndarray, *, tolerance_ms: float = 60.0,
                    drift_min_span_s: float = 10.0) -> Alignment:
    """Alignment from decoded marker frames.

    ``hit_pts_s``/``hit_codes``: video times and decoded codes of the marker frames. ``tick_wall_ms``,
    ``tick_codes`` (-1 where no marker was drawn) and ``tick_next_wall_ms`` (wall time of the following tick)
    describe the log. Codes repeat every 4096 ticks; every (frame, tick) pair with equal codes is a candidate,
    and the offset supported by the most frames (within ``tolerance_ms``) wins. When consistent frames span
    more than ``drift_min_span_s`` of wall time (start and end markers), the clock rate is fitted too.
    Raises :class:`AlignmentError` when no frame matches a logged marker tick.
    """
    hit_pts_s = np.asarray(hit_pts_s, dtype=np.float64)
    hit_codes = np.asarray(hit_codes, dtype=np.int64)
    marked = np.flatnonzero(np.asarray(tick_codes) >= 0)
    by_code: dict[int, list[int]] = {}
    for i in marked:
        by_code.setdefault(int(tick_codes[i]), []).append(int(i))
    cand_hit, cand_tick = [], []
    for h, c in enumerate(hit_codes):
        for ti in by_code.get(int(c), ()):
            cand_hit.append(h)
            cand_tick.append(ti)
    if not cand_hit:
        raise AlignmentError(f"{len(hit_codes)} video frames show a sync marker but none of their codes matches "
                             "a marker tick of the behaviour log (is this the log of this video?)")
    ch = np.asarray(cand_hit)
    ct = np.asarray(cand_tick)
    off = hit_pts_s[ch] - tick_wall_ms[ct] / 1000.0
    order = np.sort(off)
    tol = tolerance_ms / 1000.0
    counts = np.searchsorted(order, order + tol, side="right") - np.arange(order.size)
    best = order[int(np.argmax(counts))] + tol / 2
    # the video's clock may drift against the log's: accept candidates near the best offset, then per segment
    keep = np.abs(off - best) <= tol * 4
    ch, ct = ch[keep], ct[keep]
    # one tick per frame (the closest to the consensus)
    sel: dict[int, int] = {}
    for h, t, o in zip(ch, ct, off[keep]):
        if h not in sel or abs(o - best) < abs(hit_pts_s[h] - tick_wall_ms[sel[h]] / 1000.0 - best):
            sel[h] = t
    hs = np.array(sorted(sel))
    ts = np.array([sel[h] for h in hs])
    # a repeated code is a repeated image (a game stall or OBS repeating a frame): only its first showing
    # bounds the capture time
    first = np.concatenate([[True], ts[1:] != ts[:-1]])
    hs, ts = hs[first], ts[first]
    walls = tick_wall_ms[ts]
    pts_h = hit_pts_s[hs]
    nexts = tick_next_wall_ms[ts]
    n_unique = len(np.unique(hit_codes))
    offset, half = _interval_offset(pts_h, walls, nexts)
    inside = np.sum((pts_h - nexts / 1000.0 < offset + 1e-9) & (offset <= pts_h - walls / 1000.0 + 1e-9))
    split = np.flatnonzero(np.diff(walls) > drift_min_span_s * 1000.0)
    if split.size == 0 or inside >= 0.95 * len(hs):
        # one offset explains (almost) every marker frame: the clocks run at the same rate
        return Alignment("marker", offset, 1.0, half, float(inside) / n_unique, len(hs),
                         {"marker_frames": int(len(hit_codes)), "segments": int(split.size + 1)})
    a, b = slice(0, split[0] + 1), slice(split[-1] + 1, None)
    o1, h1 = _interval_offset(pts_h[a], walls[a], nexts[a])
    o2, h2 = _interval_offset(pts_h[b], walls[b], nexts[b])
    t1, t2 = np.mean(walls[a]) / 1000.0, np.mean(walls[b]) / 1000.0
    # pts = o(t) + t with o linear in t  =>  pts = offset + rate * t
    rate = 1.0 + (o2 - o1) / (t2 - t1)
    offset = o1 + t1 - rate * t1
    return Alignment("marker", float(offset), float(rate), max(h1, h2), float(len(hs)) / n_unique, len(hs),
                     {"marker_frames": int(len(hit_codes)), "segments": 2, "drift_ms": (o2 - o1) * 1000.0})


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def align_by_motion(frame_pts_s: np.ndarray, frame_dyaw_deg: np.ndarray, frame_ok: np.ndarray,
                    tick_wall_ms: np.ndarray, tick_yaw_deg: np.ndarray, *, max_offset_s: float = 60.0,
                    min_ncc: float = 0.3, min_margin: float = 0.15, min_overlap_s: float = 5.0,
                    min_overlap_fraction: float = 0.8, video_name: str = "video", log_name: str = "log") -> Alignment:
    """Alignment without a marker: cross-correlate the yaw change each frame shows with the logged camera yaw.

    ``frame_dyaw_deg[i]``: yaw change (Unreal sign, right +) between frames i-1 and i measured from the image
    (any scale: only the shape matters), valid where ``frame_ok``. ``tick_yaw_deg``: unwrapped Unreal yaw of
    the logged camera per tick. Offsets in ``[-max_offset_s, +max_offset_s]`` around "the video started with
    the first tick" are searched, keeping only offsets where the video and the log overlap by at least
    ``min_overlap_fraction`` of the shorter of the two (and ``min_overlap_s``). Raises :class:`AlignmentError`
    ("no sync marker and no overlap") when the correlation peak is below ``min_ncc``, or not at least
    ``min_margin`` above the best offset more than 1 s away (ambiguous).
    """
    pts = np.asarray(frame_pts_s, dtype=np.float64)
    dy = np.asarray(frame_dyaw_deg, dtype=np.float64)
    ok = np.asarray(frame_ok, dtype=bool).copy()
    ok[0] = False
    tw = np.asarray(tick_wall_ms, dtype=np.float64) / 1000.0
    yaw = np.asarray(tick_yaw_deg, dtype=np.float64)
    if ok.sum() < 10 or tw.size < 10:
        raise AlignmentError(f"no sync marker in {video_name} and too little motion to align it with {log_name}")
    step = 0.01
    # coarse: FFT cross-correlation of rates on a uniform grid
    grid_v = np.arange(pts[0], pts[-1], step)
    mid_v = 0.5 * (pts[1:] + pts[:-1])
    rate_v = np.full(pts.size, np.nan)
    rate_v[1:] = dy[1:] / np.maximum(np.diff(pts), 1e-6)
    good = ok[1:] & np.isfinite(rate_v[1:])
    if grid_v.size < 10 or good.sum() < 10:
        raise AlignmentError(f"no sync marker in {video_name} and too few usable frames to align it with {log_name}")
    sig_v = np.interp(grid_v, mid_v[good], rate_v[1:][good])
    grid_l = np.arange(tw[0], tw[-1], step)
    rate_l = np.gradient(yaw, tw)
    sig_l = np.interp(grid_l, tw, rate_l)
    from scipy.signal import correlate, correlation_lags

    # normalised cross-correlation per lag, with the means and variances of the overlapping parts only
    a_, b_ = sig_v, sig_l
    xc = correlate(a_, b_, mode="full", method="fft")
    lags = correlation_lags(a_.size, b_.size, mode="full")
    ca, ca2 = np.concatenate([[0.0], np.cumsum(a_)]), np.concatenate([[0.0], np.cumsum(a_ * a_)])
    cb, cb2 = np.concatenate([[0.0], np.cumsum(b_)]), np.concatenate([[0.0], np.cumsum(b_ * b_)])
    a0 = np.maximum(0, lags)
    a1 = np.minimum(a_.size, lags + b_.size)
    b0, b1 = a0 - lags, a1 - lags
    ov = a1 - a0
    with np.errstate(invalid="ignore", divide="ignore"):
        sa, sb = ca[a1] - ca[a0], cb[b1] - cb[b0]
        var = (ca2[a1] - ca2[a0] - sa * sa / ov) * (cb2[b1] - cb2[b0] - sb * sb / ov)
        ncc = (xc - sa * sb / ov) / np.sqrt(var)
    offs = grid_v[0] - grid_l[0] + lags * step  # pts = wall + offset
    # a video of this session covers (nearly) all of the log or the log all of the video
    need_s = max(min_overlap_s, min_overlap_fraction * min(a_.size, b_.size) * step)
    allowed = (np.abs(offs) <= max_offset_s) & (ov * step >= need_s) & np.isfinite(ncc)
    if not allowed.any():
        raise AlignmentError(
            f"no sync marker in {video_name} and no overlap with {log_name}: within +-{max_offset_s:g} s the video "
            f"({pts[-1] - pts[0]:.1f} s) and the log ({tw[-1] - tw[0]:.1f} s) never overlap by {need_s:.1f} s")
    score = np.where(allowed, ncc, -np.inf)
    best = int(np.argmax(score))
    coarse = float(offs[best])
    far = allowed & (np.abs(offs - coarse) > 1.0)
    runner_up = float(score[far].max()) if far.any() else -1.0
    if score[best] < min_ncc or score[best] - runner_up < min_margin:
        why = (f"peak correlation {score[best]:.2f} < {min_ncc:g}" if score[best] < min_ncc else
               f"the best offset ({coarse:.2f} s, correlation {score[best]:.2f}) is not clearly better than another "
               f"one ({runner_up:.2f})")
        raise AlignmentError(
            f"no sync marker in {video_name} and no overlap with {log_name} could be established: the image motion "
            f"does not match the logged camera motion ({why}; offsets searched +-{max_offset_s:g} s with at least "
            f"{need_s:.1f} s of overlap); record with the sync marker or check that this video belongs to this log")

    # refine: the yaw change between consecutive frames predicted from the log (linearly interpolated yaw)
    # against the measured change, on a 1 ms grid around the coarse peak; a parabola through the peak gives
    # the sub-millisecond optimum
    idx = np.flatnonzero(ok & np.isfinite(dy))

    def model_score(offset: float) -> float:
        y = np.interp(pts - offset, tw, yaw, left=np.nan, right=np.nan)
        pred = y[idx] - y[idx - 1]
        m = np.isfinite(pred)
        return _ncc(dy[idx][m], pred[m]) if m.sum() >= 10 else -1.0

    fine = coarse + np.arange(-0.06, 0.06 + 1e-9, 0.001)
    scores = np.array([model_score(o) for o in fine])
    best_i = int(np.argmax(scores))
    peak = float(scores[best_i])
    if peak < min_ncc:
        raise AlignmentError(
            f"no sync marker in {video_name} and no overlap with {log_name} could be established: the image motion "
            f"does not match the logged camera motion (peak correlation {peak:.2f} < {min_ncc:g}, offsets searched "
            f"+-{max_offset_s:g} s); record with the sync marker or check that this video belongs to this log")
    sl = slice(max(0, best_i - 6), min(scores.size, best_i + 7))
    c2, c1, _ = np.polyfit(fine[sl] - fine[best_i], scores[sl], 2)
    vertex = fine[best_i] - c1 / (2 * c2) if c2 < 0 else fine[best_i]
    if abs(vertex - fine[best_i]) > 0.006:
        vertex = fine[best_i]
    # the interpolated model looks at the capture instant; a frame shows the last tick before it, on average
    # half a tick earlier: convert to the tick-assignment offset used everywhere else
    half_tick = 0.5 * float(np.median(np.diff(tw))) if tw.size > 1 else 0.0
    offset = float(vertex - half_tick)
    return Alignment("xcorr", offset, 1.0, float("nan"), peak, int(idx.size),
                     {"coarse_offset_s": coarse, "coarse_ncc": float(score[best]), "runner_up_ncc": runner_up})
