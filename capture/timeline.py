"""Input timeline: timestamped keyboard and mouse events aligned to rendered frames.

A recorder logs device events as they happen (key down/up with millisecond times, mouse motion in raw
counts and/or degrees) and the presentation time of every rendered frame. :class:`InputTimeline` turns
that into the per-frame actions of DESIGN.md section 2.

Frame intervals
    Frame ``i`` covers the half-open interval ``(t[i-1], t[i]]``; frame 0 covers ``(-inf, t[0]]``, so input
    that happened before the first frame is folded into frame 0 rather than lost.

Keys
    A key pressed at ``t_down`` and released at ``t_up`` is down on ``[t_down, t_up)``. It is set in frame
    ``i`` when that span meets the frame interval, i.e. ``t_down <= t[i]`` and ``t_up > t[i-1]``:

    * a press exactly at a frame time ``t[i]`` counts for frame ``i`` (the key was down at ``t[i]``);
    * a release exactly at ``t[i]`` counts for frame ``i`` but not frame ``i+1``;
    * a tap (press and release within one frame interval, even at the same millisecond) sets the key in
      exactly the frame whose interval contains ``t_down``: a tap is never lost;
    * several keys are independent; a key held across many frames is set in all of them;
    * a second ``key_down`` while the key is already down (auto-repeat) is ignored; a ``key_down`` with no
      ``key_up`` is held to the end; a ``key_up`` with no earlier ``key_down`` means the key was already
      down when recording started (held from ``-inf``).

Mouse
    Motion events are summed into the frame whose interval contains their time. Degrees come either given
    directly (``d_pitch_deg`` look up +, ``d_yaw_deg`` turn right +) or from raw counts times a sensitivity
    (``deg_per_count``): ``d_yaw = dx * s`` and ``d_pitch = -dy * s`` (screen y grows downwards, so moving
    the mouse up looks up). Raw counts are summed too and kept. Events after the last frame belong to no
    frame; they are counted in :attr:`FrameInputs.dropped_events`.

Resolution
    Times are compared at 1 microsecond resolution (both event and frame times are rounded to integer
    microseconds), so an event at 40 ms and a frame at ``1 / 25`` s are the same instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from capture.actions import ActionSpace, FrameAction

_US_PER_S = 1_000_000
_US_PER_MS = 1_000
_NEG_INF_US = int(np.iinfo(np.int64).min)
_INF_US = int(np.iinfo(np.int64).max)


def _to_us(t: np.ndarray | float, per: int) -> np.ndarray:
    arr = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("times must be finite")
    return np.rint(arr * per).astype(np.int64)


@dataclass
class FrameInputs:
    """Per-frame inputs of N frames. ``keyboard``: uint8[N, K] multi-hot in the action space's key order;
    ``d_pitch_deg``/``d_yaw_deg``: float64[N]; ``mouse_dx``/``mouse_dy``: float64[N] summed raw counts, NaN for
    frames where the source had no counts at all; ``dropped_events``: events after the last frame."""

    action_space: ActionSpace
    keyboard: np.ndarray
    d_pitch_deg: np.ndarray
    d_yaw_deg: np.ndarray
    mouse_dx: np.ndarray
    mouse_dy: np.ndarray
    dropped_events: int = 0

    def __len__(self) -> int:
        return int(self.keyboard.shape[0])

    def action(self, i: int) -> FrameAction:
        """The :class:`FrameAction` of frame ``i``."""
        dx, dy = self.mouse_dx[i], self.mouse_dy[i]
        return FrameAction(
            keys=self.action_space.from_multihot(self.keyboard[i]),
            d_pitch_deg=float(self.d_pitch_deg[i]),
            d_yaw_deg=float(self.d_yaw_deg[i]),
            mouse_dx=None if np.isnan(dx) else float(dx),
            mouse_dy=None if np.isnan(dy) else float(dy),
        )


class InputTimeline:
    """A buffer of timestamped input events; :meth:`align` assigns them to frames (rules in the module doc).

    Events may be added in any order; events at the same time keep their insertion order.
    """

    def __init__(self, action_space: ActionSpace | None = None, *, deg_per_count: float | None = None,
                 ignore_unknown_keys: bool = False) -> None:
        self.action_space = action_space or ActionSpace()
        if deg_per_count is not None and not (np.isfinite(deg_per_count) and deg_per_count > 0):
            raise ValueError(f"deg_per_count must be a positive number, got {deg_per_count}")
        self.deg_per_count = deg_per_count
        self.ignore_unknown_keys = ignore_unknown_keys
        self._keys: list[tuple[int, int, int, bool]] = []  # (t_us, seq, key index, down)
        self._mouse: list[tuple[int, float, float, float, float]] = []  # (t_us, dpitch, dyaw, dx, dy)
        self._seq = 0

    def __len__(self) -> int:
        return len(self._keys) + len(self._mouse)

    def _key_event(self, key: str, t_ms: float, down: bool) -> None:
        if key not in self.action_space.keys:
            if self.ignore_unknown_keys:
                return
            self.action_space.index(key)  # raises KeyError naming the allowed keys
        t_us = int(_to_us(t_ms, _US_PER_MS))
        self._keys.append((t_us, self._seq, self.action_space.index(key), down))
        self._seq += 1

    def key_down(self, key: str, t_ms: float) -> None:
        """Record that ``key`` went down at ``t_ms`` milliseconds."""
        self._key_event(key, t_ms, True)

    def key_up(self, key: str, t_ms: float) -> None:
        """Record that ``key`` went up at ``t_ms`` milliseconds."""
        self._key_event(key, t_ms, False)

    def mouse_move(self, t_ms: float, *, dx: float | None = None, dy: float | None = None,
                   d_pitch_deg: float | None = None, d_yaw_deg: float | None = None) -> None:
        """Record mouse motion at ``t_ms``: raw counts (``dx`` right +, ``dy`` down +) and/or degrees.

        Degrees given explicitly win; otherwise they come from counts times ``deg_per_count``; counts with no
        sensitivity and no degrees are an error (the motion could not be turned into a look change).
        """
        t_us = int(_to_us(t_ms, _US_PER_MS))
        has_counts = dx is not None or dy is not None
        cdx = float(dx or 0.0)
        cdy = float(dy or 0.0)
        if d_pitch_deg is None and d_yaw_deg is None:
            if not has_counts:
                raise ValueError("mouse_move needs counts (dx/dy) or degrees (d_pitch_deg/d_yaw_deg)")
            if self.deg_per_count is None:
                raise ValueError("mouse_move with raw counts needs InputTimeline(deg_per_count=...)")
            pitch, yaw = -cdy * self.deg_per_count, cdx * self.deg_per_count
        else:
            pitch, yaw = float(d_pitch_deg or 0.0), float(d_yaw_deg or 0.0)
        vals = (pitch, yaw, cdx, cdy)
        if not all(np.isfinite(v) for v in vals):
            raise ValueError(f"mouse_move at {t_ms} ms has a non-finite value: {vals}")
        nan = float("nan")
        self._mouse.append((t_us, pitch, yaw, cdx if has_counts else nan, cdy if has_counts else nan))

    def align(self, frame_t_s: Sequence[float] | np.ndarray) -> FrameInputs:
        """Per-frame inputs for frames rendered at ``frame_t_s`` (seconds, strictly increasing)."""
        b = _to_us(frame_t_s, _US_PER_S)
        if b.ndim != 1 or b.size == 0:
            raise ValueError("frame_t_s must be a non-empty 1-D sequence of times")
        if np.any(np.diff(b) <= 0):
            i = int(np.argmax(np.diff(b) <= 0)) + 1
            raise ValueError(f"frame times must be strictly increasing (frame {i}: {frame_t_s[i]} s)")
        n, k = b.size, len(self.action_space)
        keyboard = np.zeros((n, k), dtype=np.uint8)
        for key_idx, t_down, t_up in self._press_spans():
            first = int(np.searchsorted(b, t_down, side="left"))  # first frame with t[i] >= t_down
            if first >= n:
                continue
            # the last frame whose interval starts before the release: t[i-1] < t_up
            last = n - 1 if t_up == _INF_US else min(n - 1, int(np.searchsorted(b, t_up, side="left")))
            keyboard[first: max(first, last) + 1, key_idx] = 1

        d_pitch = np.zeros(n)
        d_yaw = np.zeros(n)
        mdx = np.full(n, np.nan)
        mdy = np.full(n, np.nan)
        dropped = 0
        if self._mouse:
            m = np.array(self._mouse, dtype=np.float64)
            idx = np.searchsorted(b, m[:, 0].astype(np.int64), side="left")
            keep = idx < n
            dropped = int(np.count_nonzero(~keep))
            idx, m = idx[keep], m[keep]
            np.add.at(d_pitch, idx, m[:, 1])
            np.add.at(d_yaw, idx, m[:, 2])
            counted = ~np.isnan(m[:, 3])
            if counted.any():
                ci = idx[counted]
                has = np.zeros(n, dtype=bool)
                has[ci] = True
                sdx, sdy = np.zeros(n), np.zeros(n)
                np.add.at(sdx, ci, m[counted, 3])
                np.add.at(sdy, ci, m[counted, 4])
                mdx[has], mdy[has] = sdx[has], sdy[has]
        for t_us, *_ in self._keys:
            if t_us > b[-1]:
                dropped += 1
        return FrameInputs(self.action_space, keyboard, d_pitch, d_yaw, mdx, mdy, dropped)

    def _press_spans(self) -> list[tuple[int, int, int]]:
        """(key index, t_down_us, t_up_us) press spans; ``_NEG_INF_US``/``_INF_US`` stand for -inf/+inf."""
        down_since: dict[int, int] = {}
        seen: set[int] = set()
        spans: list[tuple[int, int, int]] = []
        for t_us, _, key, down in sorted(self._keys, key=lambda e: (e[0], e[1])):
            if down:
                down_since.setdefault(key, t_us)  # a repeat while down is ignored
            elif key in down_since:
                spans.append((key, down_since.pop(key), t_us))
            elif key not in seen:
                spans.append((key, _NEG_INF_US, t_us))  # already down when recording started
            seen.add(key)
        spans.extend((key, t, _INF_US) for key, t in down_since.items())
        return spans
