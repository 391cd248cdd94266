"""Curation stages as small pure functions over (frames, per-frame actions).

Each stage takes frames (a sequence of ``uint8[H, W, 3]`` RGB arrays, or None where a stage needs none), a
:class:`FrameActions` and its config, and returns a :class:`StageResult`: the frames and actions it kept and
its reasons (:class:`DropSpan`, what it dropped and why, in source frame numbers). The streaming episode
processor (:mod:`curation.process`) uses the same building blocks online, one frame at a time, so that a long
video is never held in memory; the in-memory stage functions here are the reference it is tested against.

Folding (no input is lost): when frames are dropped for being redundant or skipped by resampling, the
actions of each dropped frame go to the next kept frame: keys are OR-ed, mouse deltas (degrees) summed,
collision OR-ed, and the pose, speed and time are the kept frame's own (they are states, not inputs).
Actions after the last kept frame of a segment have no frame to go to and are reported as dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from curation.config import ClipConfig, DedupConfig, ResampleConfig, VelocityConfig

if TYPE_CHECKING:
    from capture.episode import Episode


# --------------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class DropSpan:
    """Source frames ``start_frame..end_frame`` (inclusive) dropped by ``stage`` for ``reason``."""

    start_frame: int
    end_frame: int
    stage: str
    reason: str


@dataclass
class FrameActions:
    """Per-frame actions and camera state of a sequence of frames (one row per frame).

    ``frame`` int64[N]: source frame number (row of actions.csv). ``t`` float64[N]: seconds since the episode
    start. ``keyboard`` uint8[N, K]: multi-hot keys held during the frame. ``mouse`` float64[N, 2]: (d_pitch,
    d_yaw) in degrees since the previous frame. ``pose`` float64[N, 7]: x, y, z (cm), qw, qx, qy, qz.
    ``speed`` float64[N]: signed forward ground speed, cm/s. ``collision`` bool[N]: blocked this frame.
    """

    frame: np.ndarray
    t: np.ndarray
    keyboard: np.ndarray
    mouse: np.ndarray
    pose: np.ndarray
    speed: np.ndarray
    collision: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.frame)
        self.frame = np.asarray(self.frame, dtype=np.int64)
        self.t = np.asarray(self.t, dtype=np.float64)
        self.keyboard = np.asarray(self.keyboard, dtype=np.uint8).reshape(n, -1)
        self.mouse = np.asarray(self.mouse, dtype=np.float64).reshape(n, 2)
        self.pose = np.asarray(self.pose, dtype=np.float64).reshape(n, 7)
        self.speed = np.asarray(self.speed, dtype=np.float64).reshape(n)
        self.collision = np.asarray(self.collision, dtype=bool).reshape(n)
        for name in ("t", "keyboard", "mouse", "pose", "speed", "collision"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FrameActions.{name} has {len(getattr(self, name))} rows, frame has {n}")

    def __len__(self) -> int:
        return len(self.frame)

    def take(self, idx: np.ndarray | Sequence[int]) -> "FrameActions":
        """Rows ``idx`` (no folding)."""
        idx = np.asarray(idx, dtype=np.int64)
        return FrameActions(self.frame[idx], self.t[idx], self.keyboard[idx], self.mouse[idx], self.pose[idx],
                            self.speed[idx], self.collision[idx])

    @classmethod
    def from_episode(cls, episode: "Episode", keys: Sequence[str] | None = None) -> "FrameActions":
        """The actions of an episode; ``keys``: the dataset key order (episode keys must be a subset; keys the
        episode lacks are 0)."""
        return cls.from_table(episode.actions, episode.action_space.keys, keys)

    @classmethod
    def from_table(cls, df, episode_keys: Sequence[str], keys: Sequence[str] | None = None) -> "FrameActions":
        """From an actions.csv table (pandas) whose key columns are ``key_<k>`` for ``episode_keys``."""
        from capture.episode import POSE_COLUMNS

        keys = tuple(episode_keys) if keys is None else tuple(keys)
        missing = [k for k in episode_keys if k not in keys]
        if missing:
            raise ValueError(f"episode keys {missing} are not in the dataset action space {list(keys)}")
        n = len(df)
        kb = np.zeros((n, len(keys)), dtype=np.uint8)
        for j, k in enumerate(keys):
            if k in episode_keys:
                kb[:, j] = df[f"key_{k}"].to_numpy(dtype=np.uint8)
        return cls(
            frame=df["frame"].to_numpy(dtype=np.int64), t=df["t"].to_numpy(dtype=np.float64), keyboard=kb,
            mouse=df[["d_pitch", "d_yaw"]].to_numpy(dtype=np.float64),
            pose=df[list(POSE_COLUMNS)].to_numpy(dtype=np.float64),
            speed=df["speed"].to_numpy(dtype=np.float64),
            collision=df["collision"].to_numpy(dtype=np.float64) != 0,
        )


@dataclass
class StageResult:
    """What a stage kept (``frames``, ``actions``, one row per kept frame) and why it dropped the rest."""

    frames: list[np.ndarray] | None
    actions: FrameActions
    reasons: list[DropSpan] = field(default_factory=list)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` index pairs of the runs of True in a boolean array."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return []
    d = np.diff(np.concatenate([[0], m.view(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    return list(zip(starts.tolist(), ends.tolist()))


# --------------------------------------------------------------------------------------------------------
# folding


def fold_spans(actions: FrameActions, starts: np.ndarray, ends: np.ndarray) -> FrameActions:
    """One output row per inclusive row span ``starts[j]..ends[j]`` of ``actions`` (spans ascending, disjoint).

    Keys and collision are OR-ed over the span, mouse deltas summed (in row order), and frame number, time,
    pose and speed are those of the span's last row (the kept frame).
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if len(starts) != len(ends):
        raise ValueError("fold_spans: starts and ends differ in length")
    if len(starts) == 0:
        return actions.take(np.zeros(0, dtype=np.int64))
    if (ends < starts).any() or (starts[1:] <= ends[:-1]).any():
        raise ValueError("fold_spans: spans must be non-empty, ascending and disjoint")
    idx = np.empty(2 * len(starts), dtype=np.int64)
    idx[0::2] = starts
    idx[1::2] = ends + 1
    mouse = np.concatenate([actions.mouse, np.zeros((1, 2))])
    kb = np.concatenate([actions.keyboard, np.zeros((1, actions.keyboard.shape[1]), np.uint8)])
    col = np.concatenate([actions.collision, [False]]).astype(np.uint8)
    out = actions.take(ends)
    out.mouse = np.add.reduceat(mouse, idx, axis=0)[0::2]
    out.keyboard = np.maximum.reduceat(kb, idx, axis=0)[0::2]
    out.collision = np.maximum.reduceat(col, idx)[0::2].astype(bool)
    return out


def fold_into_kept(actions: FrameActions, keep: np.ndarray) -> tuple[FrameActions, list[tuple[int, int]]]:
    """Fold every dropped row (``keep`` False) into the next kept row.

    Returns the folded actions (one row per kept row) and the ``(start, end)`` row spans after the last kept
    row, whose actions had no frame to go to.
    """
    keep = np.asarray(keep, dtype=bool)
    kept = np.flatnonzero(keep)
    if len(kept) == 0:
        return actions.take(kept), ([(0, len(keep) - 1)] if len(keep) else [])
    starts = np.concatenate([[0], kept[:-1] + 1])
    lost = [(int(kept[-1]) + 1, len(keep) - 1)] if kept[-1] < len(keep) - 1 else []
    return fold_spans(actions, starts, kept), lost


# --------------------------------------------------------------------------------------------------------
# redundant frames (mpdecimate-like)


def dedup_signature(frame: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """The image a frame is compared by: ``uint8[h, w, C]``, the frame's luma (``planes: gray``, C = 1) or
    luma and both chroma planes (``planes: yuv``, C = 3, BT.601), area-downscaled to at most
    ``compare_width`` pixels wide (aspect kept) and cropped to whole ``block`` x ``block`` blocks."""
    import cv2

    h, w = frame.shape[:2]
    if w > cfg.compare_width:  # shrink first (area averaging commutes with the linear colour conversion)
        nw = int(cfg.compare_width)
        nh = max(1, int(round(h * nw / w)))
        frame = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
        h, w = nh, nw
    if frame.ndim == 2:
        g = frame[:, :, None]
    elif cfg.planes == "gray":
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[:, :, None]
    else:
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV)
    b = int(cfg.block)
    hh, ww = (h // b * b or h), (w // b * b or w)
    return np.ascontiguousarray(g[:hh, :ww])


def block_differences(sig_a: np.ndarray, sig_b: np.ndarray, block: int) -> np.ndarray:
    """Mean absolute difference (grey levels) of each ``block`` x ``block`` block, the largest over the
    planes: ``float32[H/b, W/b]``."""
    import cv2

    d = cv2.absdiff(sig_a, sig_b).astype(np.float32)
    if d.ndim == 2:
        d = d[:, :, None]
    h, w = d.shape[:2]
    bh, bw = h // block, w // block
    if bh == 0 or bw == 0:  # an image smaller than one block is one block
        return np.array([[d.mean(axis=(0, 1)).max()]], dtype=np.float32)
    # area resampling by an integer factor is exactly the block mean
    m = cv2.resize(d[:bh * block, :bw * block], (bw, bh), interpolation=cv2.INTER_AREA)
    return m.max(axis=2) if m.ndim == 3 else m


def frames_differ(sig_a: np.ndarray, sig_b: np.ndarray, cfg: DedupConfig) -> tuple[bool, float]:
    """mpdecimate's test on two signatures: ``(differ, largest block difference in grey levels)``.

    They differ when any block's mean |difference| exceeds ``hi`` or more than ``frac`` of the blocks
    exceed ``lo``.
    """
    bd = block_differences(sig_a, sig_b, int(cfg.block))
    top = float(bd.max()) if bd.size else 0.0
    if top > cfg.hi:
        return True, top
    return bool(np.count_nonzero(bd > cfg.lo) > cfg.frac * bd.size), top


class RedundantFrameFilter:
    """Online redundant-frame filter: ``keep(frame, t)`` is False for a frame nearly identical to the LAST
    KEPT frame. The first frame (and the first after :meth:`reset`) is always kept; with ``max_drop_s``
    a frame is kept once the drops since the last kept frame span that many seconds."""

    def __init__(self, cfg: DedupConfig) -> None:
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        """Start a new segment: the next frame is kept."""
        self._last: np.ndarray | None = None
        self._last_t = -math.inf
        self.last_difference = math.inf

    def keep(self, frame: np.ndarray, t: float = 0.0) -> bool:
        sig = dedup_signature(frame, self.cfg)
        if self._last is None or sig.shape != self._last.shape:
            self._last, self._last_t = sig, t
            self.last_difference = math.inf
            return True
        differ, top = frames_differ(sig, self._last, self.cfg)
        self.last_difference = top
        if differ or (self.cfg.max_drop_s is not None and t - self._last_t > self.cfg.max_drop_s):
            self._last, self._last_t = sig, t
            return True
        return False


def redundant_frame_mask(frames: Iterable[np.ndarray], cfg: DedupConfig, t: Sequence[float] | None = None) -> np.ndarray:
    """``keep`` bool[N]: False for each frame redundant with the last kept one."""
    filt = RedundantFrameFilter(cfg)
    out = []
    for i, f in enumerate(frames):
        out.append(filt.keep(f, float(t[i]) if t is not None else 0.0))
    return np.asarray(out, dtype=bool)


def drop_redundant_frames(frames: Sequence[np.ndarray], actions: FrameActions, cfg: DedupConfig) -> StageResult:
    """The redundant-frame stage: drop frames nearly identical to the last kept frame and fold their
    actions into the next kept frame (keys OR-ed, mouse summed, pose of the kept frame)."""
    if not cfg.enabled:
        return StageResult(list(frames), actions, [])
    keep = redundant_frame_mask(frames, cfg, actions.t)
    folded, lost = fold_into_kept(actions, keep)
    reasons = []
    for s, e in runs(~keep):
        into = f"folded into frame {int(actions.frame[e + 1])}" if e + 1 < len(keep) else "after the last kept frame"
        reasons.append(DropSpan(int(actions.frame[s]), int(actions.frame[e]), "dedup",
                                f"{e - s + 1} redundant frame(s) (nearly identical to frame "
                                f"{int(actions.frame[s - 1]) if s > 0 else -1}); actions {into}"))
    return StageResult([f for f, k in zip(frames, keep) if k], folded, reasons)


# --------------------------------------------------------------------------------------------------------
# velocity validation


def velocity_mask(speed: np.ndarray, mouse: np.ndarray, fps: float, cfg: VelocityConfig) -> tuple[np.ndarray, list[DropSpan]]:
    """``(valid bool[N], reasons)``: frames in a still run longer than ``max_still_s`` or a backwards run
    longer than ``max_backward_s`` are invalid. ``speed`` cm/s, ``mouse`` degrees, ``fps`` frames/s.
    Reasons are in row numbers of the inputs."""
    speed = np.asarray(speed, dtype=np.float64)
    n = len(speed)
    valid = np.ones(n, dtype=bool)
    if not cfg.enabled or n == 0:
        return valid, []
    backward = speed <= -cfg.min_speed_cm_s
    still = np.abs(speed) < cfg.min_speed_cm_s
    if cfg.turning_is_motion:
        turn = np.abs(np.asarray(mouse, dtype=np.float64)).sum(axis=1)
        still &= ~(turn >= max(cfg.min_turn_deg, 1e-12))
    reasons: list[DropSpan] = []
    for mask, limit, what in ((still, cfg.max_still_s, "standing still"),
                              (backward, cfg.max_backward_s, "moving backwards")):
        if limit is None:
            continue
        for s, e in runs(mask):
            dur = (e - s + 1) / fps
            if dur > limit + 1e-9:
                valid[s:e + 1] = False
                kind = "|speed|" if what == "standing still" else "speed"
                thr = f"< {cfg.min_speed_cm_s:g}" if what == "standing still" else f"<= -{cfg.min_speed_cm_s:g}"
                reasons.append(DropSpan(s, e, "velocity", f"{what} for {dur:.2f} s ({kind} {thr} cm/s), "
                                                          f"longer than the {limit:g} s tolerated"))
    reasons.sort(key=lambda r: r.start_frame)
    return valid, reasons


def validate_velocity(frames: Sequence[np.ndarray] | None, actions: FrameActions, fps: float,
                      cfg: VelocityConfig) -> StageResult:
    """The velocity stage: drop the frames of over-long still / backwards runs (no folding: those spans
    are cut out and split the sequence into segments). Reasons are in source frame numbers."""
    valid, reasons = velocity_mask(actions.speed, actions.mouse, fps, cfg)
    reasons = [DropSpan(int(actions.frame[r.start_frame]), int(actions.frame[r.end_frame]), r.stage, r.reason)
               for r in reasons]
    kept = np.flatnonzero(valid)
    return StageResult(None if frames is None else [frames[i] for i in kept], actions.take(kept), reasons)


# --------------------------------------------------------------------------------------------------------
# resampling


def resample_select(t: np.ndarray, step_s: float, src_dt: float) -> np.ndarray:
    """``select`` bool[N]: for each point of the grid ``t[0] + k * step_s``, the frame nearest in time.

    ``t``: the (ascending) times of the available frames of one segment, seconds; ``src_dt``: the source
    frame interval (the last frame's cell reaches ``src_dt / 2`` past it). Each frame owns the interval
    between the midpoints to its neighbours and is selected when a grid point falls in it, so a frame is
    never selected twice and gaps (dropped duplicates) are bridged by the nearest frames.
    """
    t = np.asarray(t, dtype=np.float64)
    n = len(t)
    if n == 0:
        return np.zeros(0, dtype=bool)
    mids = (t[1:] + t[:-1]) / 2
    lo = np.concatenate([[-np.inf], mids])
    hi = np.concatenate([mids, [t[-1] + src_dt / 2]])
    return _cells_hit(lo, hi, float(t[0]), step_s)


def _cells_hit(lo: np.ndarray, hi: np.ndarray, t0: float, step_s: float) -> np.ndarray:
    """True where a grid point ``t0 + k*step_s`` (k >= 0) lies in ``[lo, hi)``."""
    eps = 1e-9 * max(1.0, step_s)
    k = np.ceil(np.maximum((lo - t0) / step_s, 0.0) - 1e-9)
    g = t0 + k * step_s
    return g < hi - eps


class OnlineResampler:
    """Streaming form of :func:`resample_select`: :meth:`push` the available frames' times in order; each
    push returns the decision (True: selected) for the previous frame, :meth:`finish` the last one."""

    def __init__(self, step_s: float, src_dt: float) -> None:
        self.step_s, self.src_dt = float(step_s), float(src_dt)
        self.reset()

    def reset(self) -> None:
        self._t0: float | None = None
        self._prev: float | None = None
        self._lo = -math.inf

    def push(self, t: float) -> bool | None:
        """Add the next frame; the decision for the previous one (None for the first frame)."""
        t = float(t)
        if self._prev is None:
            self._t0, self._prev = t, t
            return None
        mid = (self._prev + t) / 2
        assert self._t0 is not None
        sel = bool(_cells_hit(np.array([self._lo]), np.array([mid]), self._t0, self.step_s)[0])
        self._lo, self._prev = mid, t
        return sel

    def finish(self) -> bool | None:
        """Decision for the last pushed frame (None if nothing was pushed); then :meth:`reset`."""
        if self._prev is None:
            return None
        assert self._t0 is not None
        sel = bool(_cells_hit(np.array([self._lo]), np.array([self._prev + self.src_dt / 2]), self._t0,
                              self.step_s)[0])
        self.reset()
        return sel


def median_displacement(pose: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Median camera displacement between consecutive frames (cm), over pairs where both frames are valid
    and both positions finite; NaN when there is no such pair."""
    p = np.asarray(pose, dtype=np.float64)[:, :3]
    ok = np.isfinite(p).all(axis=1)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    pair = ok[1:] & ok[:-1]
    if not pair.any():
        return float("nan")
    d = np.linalg.norm(np.diff(p, axis=0), axis=1)[pair]
    return float(np.median(d))


def motion_step(pose: np.ndarray, target_cm: float, max_step: float, valid: np.ndarray | None = None) -> float:
    """Resampling step in source frames that makes the median per-frame displacement ``target_cm``: the
    displacement over ``s`` frames of smooth motion is ``s`` times the per-frame one, so
    ``s = target / median``, clamped to ``[1, max_step]`` (``max_step`` when the camera never moves)."""
    med = median_displacement(pose, valid)
    if not math.isfinite(med) or med <= 0:
        return float(max_step)
    return float(min(max(target_cm / med, 1.0), max_step))


def resample(frames: Sequence[np.ndarray] | None, actions: FrameActions, src_fps: float, cfg: ResampleConfig,
             step_frames: float | None = None) -> StageResult:
    """The resampling stage on one segment: keep the frames nearest to a ``1/fps`` grid (or a grid of
    ``step_frames`` source frames, for motion matching) and fold the skipped frames' actions into the next
    kept frame. ``src_fps``: the source frame rate, frames/s."""
    if cfg.mode == "none" and step_frames is None:
        return StageResult(None if frames is None else list(frames), actions, [])
    step_s = (step_frames / src_fps) if step_frames is not None else 1.0 / cfg.fps
    sel = resample_select(actions.t, step_s, 1.0 / src_fps)
    folded, lost = fold_into_kept(actions, sel)
    reasons = []
    skipped = int((~sel).sum())
    if skipped:
        reasons.append(DropSpan(int(actions.frame[0]), int(actions.frame[-1]), "resample",
                                f"resampled to a {step_s * 1000:.3f} ms step: {skipped} of {len(sel)} frames "
                                "skipped, their actions folded into the next kept frame"))
    for s, e in lost:
        reasons.append(DropSpan(int(actions.frame[s]), int(actions.frame[e]), "resample",
                                "skipped frames after the last kept frame (actions dropped)"))
    kept = np.flatnonzero(sel)
    return StageResult(None if frames is None else [frames[i] for i in kept], folded, reasons)


# --------------------------------------------------------------------------------------------------------
# resize / crop / clip


def resize_center_crop(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``frame`` (aspect kept) so it covers ``height`` x ``width`` px, then crop the centre.

    Shrinking uses ``cv2.INTER_AREA``; enlarging (a source smaller than the target) ``cv2.INTER_LINEAR``,
    since area interpolation degenerates to nearest neighbour when enlarging.
    """
    import cv2

    h0, w0 = frame.shape[:2]
    s = max(height / h0, width / w0)
    nh, nw = max(height, int(round(h0 * s))), max(width, int(round(w0 * s)))
    if (nh, nw) != (h0, w0):
        frame = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y, x = (nh - height) // 2, (nw - width) // 2
    return np.ascontiguousarray(frame[y:y + height, x:x + width])


def crop_frames(frames: Sequence[np.ndarray], actions: FrameActions, cfg: ClipConfig) -> StageResult:
    """The resize/crop stage (actions unchanged)."""
    return StageResult([resize_center_crop(f, cfg.height, cfg.width) for f in frames], actions, [])


def clip_starts(n: int, frames: int, stride: int) -> list[int]:
    """Start indices of the ``frames``-long windows, every ``stride``, that fit in ``n`` frames."""
    if frames % 4 != 1:
        raise ValueError(f"clip frames {frames} must satisfy frames % 4 == 1")
    return list(range(0, n - frames + 1, stride)) if n >= frames else []


def cut_clips(frames: Sequence[np.ndarray], actions: FrameActions, cfg: ClipConfig) -> tuple[list[StageResult], list[DropSpan]]:
    """Cut one segment into ``cfg.frames``-frame windows; frames covered by no window are reported."""
    n = len(actions)
    starts = clip_starts(n, cfg.frames, cfg.stride)
    clips = [StageResult(list(frames[s:s + cfg.frames]), actions.take(np.arange(s, s + cfg.frames)), [])
             for s in starts]
    reasons = uncovered_spans(actions.frame, starts, cfg.frames)
    return clips, reasons


def uncovered_spans(frame_numbers: np.ndarray, starts: Sequence[int], length: int) -> list[DropSpan]:
    """Reasons for the frames of a segment (source numbers ``frame_numbers``) that no clip window covers."""
    n = len(frame_numbers)
    covered = np.zeros(n, dtype=bool)
    for s in starts:
        covered[s:s + length] = True
    out = []
    for s, e in runs(~covered):
        why = (f"segment of {n} frames is shorter than one {length}-frame clip" if not starts
               else f"{e - s + 1} frame(s) left over after the last {length}-frame clip of the segment")
        out.append(DropSpan(int(frame_numbers[s]), int(frame_numbers[e]), "clip", why))
    return out


def nonfinite_pose_frames(pose: np.ndarray) -> np.ndarray:
    """Row indices whose pose has a NaN or infinite value."""
    return np.flatnonzero(~np.isfinite(np.asarray(pose, dtype=np.float64)).all(axis=1))
