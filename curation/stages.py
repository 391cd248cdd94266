"""The curation stages: one class per stage (:class:`curation.stage.Stage`), with the pure functions it uses.

Pipeline order (:data:`PIPELINE`): velocity validation -> redundant frames -> resampling -> resize/crop ->
clip windows -> pose check -> held-out split (:mod:`curation.split`) -> action-label consistency
(:mod:`curation.consistency`). Each stage reads its section of :class:`~curation.config.CurateConfig` and works on
the stream of one episode (frames, segment ends, clips and drop records; see :mod:`curation.stage`); the
engines run the same stage objects (:mod:`curation.engines`). The maths lives in small pure functions next to
the stage that uses it, each tested on its own.

Folding (no input is lost): when frames are dropped for being redundant or skipped by resampling, the
actions of each dropped frame go to the next kept frame: keys are OR-ed, mouse deltas (degrees) summed,
collision OR-ed, and the pose, speed and time are the kept frame's own (they are states, not inputs). A
stage that drops a frame hands the frame's ``fold_from`` on to the next frame it keeps; the clip stage folds
each clip frame's span ``fold_from..index`` with :func:`fold_spans`. Actions after the last kept frame of a
segment have no frame to go to and are reported as dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from curation.config import CurateConfig, DedupConfig, VelocityConfig
from curation.consistency import ConsistencyCheck
from curation.split import HeldOutSplit
from curation.stage import (
    Clip, DatasetParams, DropSpan, EpisodeContext, Frame, FrameStage, Item, Reject, SegmentEnd, Stage,
)

if TYPE_CHECKING:
    from capture.episode import Episode

__all__ = [
    "PIPELINE", "build_stages", "VelocityFilter", "RedundantFrames", "idle_rows", "Resample", "ResizeCrop", "ClipWindows",
    "PoseCheck", "FrameActions", "DropSpan", "DatasetParams", "runs", "fold_spans", "dedup_signature",
    "block_differences", "frames_differ", "RedundantFrameFilter", "velocity_mask", "teleports", "resample_select",
    "OnlineResampler", "median_displacement", "motion_step", "resize_center_crop", "clip_starts",
    "nonfinite_pose_frames",
]


# --------------------------------------------------------------------------------------------------------
# records


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
    if m.ndim == 2:
        return m
    # the largest over the planes; numpy's max(axis=2) over 3 channels costs 3x the rest of the test (measured)
    return np.maximum.reduce([m[:, :, c] for c in range(m.shape[2])])


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


def idle_rows(actions: FrameActions, max_turn_deg: float) -> np.ndarray:
    """bool[N]: rows where nothing was pressed and the mouse moved less than ``max_turn_deg`` (|d_pitch| +
    |d_yaw|, degrees): the player gave no input that frame."""
    return ~actions.keyboard.any(axis=1) & (np.abs(actions.mouse).sum(axis=1) < max_turn_deg)


class RedundantFrames(FrameStage):
    """Stage ``dedup`` (config ``dedup``): drop each frame nearly identical to the last kept frame of its segment
    (:class:`RedundantFrameFilter`) while input is held: the game froze (a stall, a loading hitch, a duplicated
    frame), so the frame shows nothing the input did and its actions fold into the next kept frame. An identical
    frame whose row has no input (:func:`idle_rows`: nothing pressed, the mouse still) is a player standing still:
    it is kept, up to ``keep_idle_s`` seconds of such frames in a row (then dropped like a frozen one, with its
    own reason). A run of drops with one reason is one drop record; kept idle frames are counted in the
    episode's outcome (``idle_frames``)."""

    name = "dedup"

    @classmethod
    def enabled(cls, cfg: CurateConfig) -> bool:
        return cfg.dedup.enabled

    def start(self, ep: EpisodeContext) -> None:
        super().start(ep)
        self.filter = RedundantFrameFilter(self.cfg.dedup)
        self.idle = idle_rows(ep.actions, self.cfg.dedup.idle_turn_deg)
        ep.notes.setdefault("idle_frames_kept", 0)
        self._reset()

    def _reset(self) -> None:
        self.filter.reset()
        self._run: tuple[int, int, str] | None = None  # source frames of the current run of drops, its reason
        self._fold: int | None = None  # fold_from of the first dropped frame, for the next kept one
        self._last_kept: int | None = None
        self._idle_run = 0  # identical frames without input kept in a row

    def frames(self, frames: list[Frame]) -> list[Item]:
        out: list[Item] = []
        limit = self.cfg.dedup.keep_idle_s
        for f in frames:
            if self.filter.keep(f.image, f.t):
                self._idle_run = 0
            elif self.idle[f.index] and (limit is None or (self._idle_run + 1) / self.ep.fps <= limit + 1e-9):
                self._idle_run += 1
                self.ep.notes["idle_frames_kept"] += 1
            else:
                why = "idle" if self.idle[f.index] else "frozen"
                if self._run is not None and self._run[2] != why:
                    out += self._close_run()
                self._run = (f.index, f.index, why) if self._run is None else (self._run[0], f.index, why)
                self._fold = f.fold_from if self._fold is None else self._fold
                continue
            out += self._close_run()
            if self._fold is not None:
                f.fold_from, self._fold = self._fold, None
            self._last_kept = f.index
            out.append(f)
        return out

    def _close_run(self) -> list[Item]:
        if self._run is None:
            return []
        s, e, why = self._run
        self._run = None
        if why == "frozen":
            text = (f"{e - s + 1} redundant frame(s), nearly identical to frame {self._last_kept} while input was "
                    "held (the game froze); actions folded into the next kept frame")
        else:
            text = (f"{e - s + 1} identical frame(s) without input after {self.cfg.dedup.keep_idle_s:g} s of standing "
                    f"still (dedup.keep_idle_s), nearly identical to frame {self._last_kept}; actions folded into "
                    "the next kept frame")
        return [DropSpan(s, e, self.name, text)]

    def segment_end(self, seg: SegmentEnd) -> list[Item]:
        out = self._close_run()
        self._reset()
        return out


# --------------------------------------------------------------------------------------------------------
# velocity validation


def teleports(pos: np.ndarray, fps: float, max_speed_cm_s: float) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, jump_cm)``: the rows ``i`` whose camera position is further than ``max_speed_cm_s / fps`` cm from
    row ``i - 1``'s (a teleport or a respawn: no walking or driving covers that in one frame) and the jump of
    each. ``pos`` float64 [N, 3] cm; rows with a non-finite position on either side are never teleports (the
    pose stage deals with them)."""
    p = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
    if len(p) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    step = np.linalg.norm(np.diff(p, axis=0), axis=1)
    with np.errstate(invalid="ignore"):
        jump = np.isfinite(step) & (step * float(fps) > float(max_speed_cm_s))
    rows = np.flatnonzero(jump) + 1
    return rows.astype(np.int64), step[rows - 1]


def velocity_mask(speed: np.ndarray, mouse: np.ndarray, fps: float, cfg: VelocityConfig,
                  pos: np.ndarray | None = None) -> tuple[np.ndarray, list[DropSpan]]:
    """``(valid bool[N], reasons)``: frames in a still run longer than ``max_still_s`` or a backwards run
    longer than ``max_backward_s`` are invalid, and so is each frame a teleport lands on (:func:`teleports` of
    ``pos`` above ``max_speed_cm_s``: its row describes the jump, not an input, and the invalid frame cuts the
    episode so that no clip crosses the jump). ``speed`` cm/s, ``mouse`` degrees, ``fps`` frames/s, ``pos``
    [N, 3] cm. Reasons are in row numbers of the inputs."""
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
    if pos is not None and cfg.max_speed_cm_s is not None:
        rows, jump = teleports(pos, fps, cfg.max_speed_cm_s)
        for i, d in zip(rows.tolist(), jump.tolist()):
            if valid[i]:  # a frame already inside a dropped span is reported there
                reasons.append(DropSpan(i, i, "velocity", f"teleport or respawn: the camera jumps {d:.0f} cm in one "
                                                          f"frame ({d * fps:.0f} cm/s, over velocity.max_speed_cm_s "
                                                          f"{cfg.max_speed_cm_s:g}); the episode is cut there"))
            valid[i] = False
    reasons.sort(key=lambda r: r.start_frame)
    return valid, reasons


class VelocityFilter(Stage):
    """Stage ``velocity`` (config ``velocity``): cut out over-long standing-still and backwards runs and the
    frames teleports land on (:func:`velocity_mask`, decided from the actions in :meth:`start`); the frames that
    pass form segments,
    each closed by a :class:`~curation.stage.SegmentEnd`. Always in the pipeline: it is what splits an episode
    into segments (with ``velocity.enabled: false`` the whole episode is one segment)."""

    name = "velocity"

    def start(self, ep: EpisodeContext) -> None:
        super().start(ep)
        valid, reasons = velocity_mask(ep.actions.speed, ep.actions.mouse, ep.fps, self.cfg.velocity,
                                       pos=ep.actions.pose[:, :3])
        ep.valid = valid
        if not valid.any():
            raise Reject(self.name, "no frame passes velocity validation: " + "; ".join(r.reason for r in reasons[:3]))
        self._pending: list[Item] = list(reasons)  # rows of actions.csv are source frames
        self._seg_start: int | None = None

    def process(self, items: list[Item]) -> list[Item]:
        out, self._pending = self._pending, []
        valid = self.ep.valid
        for it in items:
            if not isinstance(it, Frame):
                out.append(it)
            elif valid[it.index]:
                self._seg_start = it.index if self._seg_start is None else self._seg_start
                out.append(it)
            elif self._seg_start is not None:
                out.append(SegmentEnd(self._seg_start, it.index - 1))
                self._seg_start = None
        return out

    def finish(self) -> list[Item]:
        out, self._pending = self._pending, []
        if self._seg_start is not None:
            out.append(SegmentEnd(self._seg_start, len(self.ep) - 1))
            self._seg_start = None
        return out


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


class Resample(FrameStage):
    """Stage ``resample`` (config ``resample``): keep, per segment, the frames nearest to a ``1/fps`` grid
    (:class:`OnlineResampler`; for ``motion_sources`` a grid of :func:`motion_step` source frames) and fold the
    skipped ones into the next kept frame. Rejects an episode whose frame rate cannot give the dataset's. Runs
    after :class:`VelocityFilter` (the motion step is measured on velocity-valid frames)."""

    name = "resample"

    def start(self, ep: EpisodeContext) -> None:
        super().start(ep)
        rc, fps, src_fps = self.cfg.resample, ep.params.fps, ep.fps
        motion = ep.meta.source in rc.motion_sources
        if rc.mode == "none" and not motion and abs(src_fps - fps) > 0.01:
            raise Reject(self.name, f"episode fps {src_fps:g} differs from the dataset fps {fps:g} and "
                                    "resample.mode is none")
        if rc.mode == "fps" and not motion and src_fps < fps - 0.01:
            raise Reject(self.name, f"episode fps {src_fps:g} is below the dataset fps {fps:g} "
                                    "(frames are never invented)")
        self.step_s: float | None = None
        if motion:
            target = rc.motion_target_cm or ep.params.motion_target_cm
            if target is None:
                raise Reject(self.name, "motion-matched resampling needs resample.motion_target_cm or episodes "
                                        "of another source to measure it from")
            step = motion_step(ep.actions.pose, target, rc.max_motion_step, ep.valid)
            ep.notes["motion_step"] = step
            self.step_s = step / src_fps
        elif rc.mode == "fps":
            self.step_s = 1.0 / fps
        self.resampler = OnlineResampler(self.step_s, 1.0 / src_fps) if self.step_s is not None else None
        self._cand: Frame | None = None
        self._skipped = 0

    def frames(self, frames: list[Frame]) -> list[Item]:
        if self.resampler is None:
            return list(frames)
        out: list[Item] = []
        for f in frames:
            selected = self.resampler.push(f.t)  # the decision for the previous frame
            if self._cand is not None:
                if selected:
                    out.append(self._cand)
                else:
                    self._skipped += 1
                    f.fold_from = self._cand.fold_from
            self._cand = f
        return out

    def segment_end(self, seg: SegmentEnd) -> list[Item]:
        if self.resampler is None:
            return []
        out: list[Item] = []
        if self._cand is not None:
            if self.resampler.finish():
                out.append(self._cand)
            else:
                self._skipped += 1
        if self._skipped:
            out.append(DropSpan(seg.start, seg.end, self.name, f"resampled to {1.0 / self.step_s:.4g} frames/s of "
                                f"source time: {self._skipped} frame(s) skipped, actions folded into kept frames",
                                frames=self._skipped))
        self.resampler.reset()
        self._cand, self._skipped = None, 0
        return out


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


def clip_starts(n: int, frames: int, stride: int) -> list[int]:
    """Start indices of the ``frames``-long windows, every ``stride``, that fit in ``n`` frames."""
    if frames % 4 != 1:
        raise ValueError(f"clip frames {frames} must satisfy frames % 4 == 1")
    return list(range(0, n - frames + 1, stride)) if n >= frames else []


def nonfinite_pose_frames(pose: np.ndarray) -> np.ndarray:
    """Row indices whose pose has a NaN or infinite value."""
    return np.flatnonzero(~np.isfinite(np.asarray(pose, dtype=np.float64)).all(axis=1))


class ResizeCrop(FrameStage):
    """Stage ``crop`` (config ``clip.height``, ``clip.width``): :func:`resize_center_crop` every frame."""

    name = "crop"

    def frames(self, frames: list[Frame]) -> list[Item]:
        h, w = self.cfg.clip.height, self.cfg.clip.width
        for f in frames:
            f.image = resize_center_crop(f.image, h, w)
        return list(frames)


class _Window:
    """An open clip window: receives cropped frames and encodes them as they come (h264: its own
    in-process encoder writing ``clip-<p0>.mp4`` in ``tmp``; jpeg: a list of JPEG bytes)."""

    def __init__(self, p0: int, tmp: Path, cfg: CurateConfig, fps: float) -> None:
        self.p0, self.n, self.cfg = p0, 0, cfg
        self.jpegs: list[bytes] = []
        self.path = tmp / f"clip-{p0:08d}.mp4"
        self.writer = None
        if cfg.output.frame_codec == "h264":
            from capture.video import VideoWriter

            self.writer = VideoWriter(self.path, cfg.clip.width, cfg.clip.height, fps, crf=cfg.output.crf,
                                      preset=cfg.output.preset, threads=1)

    def add(self, image: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.write(image)
        else:
            import cv2

            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                   [int(cv2.IMWRITE_JPEG_QUALITY), int(self.cfg.output.jpeg_quality)])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            self.jpegs.append(buf.tobytes())
        self.n += 1

    def finish(self) -> bytes | list[bytes]:
        if self.writer is None:
            return self.jpegs
        self.writer.close()
        data = self.path.read_bytes()
        self.path.unlink()
        return data

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


class ClipWindows(FrameStage):
    """Stage ``clip`` (config ``clip.frames``, ``clip.stride``, ``output``): ``frames``-frame windows every
    ``stride`` frames of a segment, each encoding as its frames arrive (at most ``ceil(frames / stride)`` open
    at once, so memory does not grow with the video), emitted as :class:`~curation.stage.Clip` with their
    actions folded (:func:`fold_spans` over each frame's ``fold_from..index``). At a segment's end, open
    windows are discarded and the source frames no clip covers are reported."""

    name = "clip"

    def start(self, ep: EpisodeContext) -> None:
        super().start(ep)
        self._reset()

    def _reset(self) -> None:
        self._index: list[int] = []  # source frame of each curated frame of the segment
        self._fold: list[int] = []  # its fold_from
        self._windows: list[_Window] = []

    def frames(self, frames: list[Frame]) -> list[Item]:
        length, stride = self.cfg.clip.frames, self.cfg.clip.stride
        out: list[Item] = []
        for f in frames:
            p = len(self._index)
            self._index.append(f.index)
            self._fold.append(f.fold_from)
            if p % stride == 0:
                self._windows.append(_Window(p, self.ep.tmp, self.cfg, self.ep.params.fps))
            still_open = []
            for win in self._windows:
                win.add(f.image)
                if win.n == length:
                    out.append(self._finish(win))
                else:
                    still_open.append(win)
            self._windows = still_open
        return out

    def _finish(self, win: _Window) -> Item:
        p0, length = win.p0, self.cfg.clip.frames
        ends = np.asarray(self._index[p0:p0 + length], dtype=np.int64)
        starts = np.asarray(self._fold[p0:p0 + length], dtype=np.int64)
        first, last = int(starts[0]), int(ends[-1])
        try:
            media = win.finish()
        except Exception as e:  # an encoder failure loses this clip only
            return DropSpan(first, last, "encode", f"clip encoding failed: {e}", kind="clip")
        return Clip(int(ends[0]), first, last, fold_spans(self.ep.actions, starts, ends), media)

    def segment_end(self, seg: SegmentEnd) -> list[Item]:
        self.abort()
        length, stride = self.cfg.clip.frames, self.cfg.clip.stride
        starts = clip_starts(len(self._index), length, stride)
        covered = np.zeros(seg.end - seg.start + 1, dtype=bool)
        for p0 in starts:
            covered[self._fold[p0] - seg.start: self._index[p0 + length - 1] - seg.start + 1] = True
        last_covered = int(np.flatnonzero(covered)[-1]) if covered.any() else -1
        out: list[Item] = []
        for s, e in runs(~covered):
            if not starts:
                why = f"segment of {len(self._index)} curated frames is shorter than one {length}-frame clip"
            elif e > last_covered:
                why = f"frames after the last {length}-frame clip of the segment"
            else:
                why = f"frames between {length}-frame clip windows (clip.stride {stride} > clip.frames)"
            out.append(DropSpan(seg.start + s, seg.start + e, self.name, why))
        self._reset()
        return out

    def abort(self) -> None:
        for win in getattr(self, "_windows", []):
            win.abort()
        self._windows = []


class PoseCheck(Stage):
    """Stage ``pose``: reject each clip that has a non-finite pose (a clip record, ``kind: clip``)."""

    name = "pose"

    def process(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for it in items:
            if isinstance(it, Clip):
                bad = nonfinite_pose_frames(it.actions.pose)
                if len(bad):
                    it = DropSpan(it.first, it.last, self.name, f"clip has non-finite poses at source frames "
                                                                f"{it.actions.frame[bad][:10].tolist()}", kind="clip")
            out.append(it)
        return out


# --------------------------------------------------------------------------------------------------------
# the pipeline

#: The stage classes in pipeline order; :func:`build_stages` keeps those enabled by the config. The split and the
#: consistency check come last: they add columns to the clips the others made (``Clip.columns``).
PIPELINE: tuple[type[Stage], ...] = (VelocityFilter, RedundantFrames, Resample, ResizeCrop, ClipWindows, PoseCheck,
                                     HeldOutSplit, ConsistencyCheck)


def build_stages(cfg: CurateConfig, pipeline: Sequence[type[Stage]] = PIPELINE) -> list[Stage]:
    """The stage objects of ``cfg``: one per enabled class of ``pipeline``, in order (not yet set up)."""
    return [cls(cfg) for cls in pipeline if cls.enabled(cfg)]
