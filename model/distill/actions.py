"""A designed action distribution for data-free self-forcing (DMD): action streams that look like a person's.

Matrix-Game 2.0's DMD stage needs no clips, so its actions are drawn from a hand-designed distribution meant to
resemble user input rather than random scripted actions (paper, implementation details). This module is that
distribution, in the *model's* action space of a mode (:data:`model.configs.ACTION_MODES`): keyboard
[T, K_model] multi-hot (templerun: one-hot) and mouse [T, 2] = (pitch, yaw) in model units (a typical held
turn is Matrix-Game's ``CAM_VALUE`` 0.1; templerun has no mouse). Row i is the input that produced video frame i;
row 0 is idle (the dataset convention: nothing has been pressed before the first frame).

Keyboard: a sequence of *holds*. Each hold keeps one key combination for a duration

    d ~ clip(round(LogNormal(log(hold_median_frames), hold_sigma)), hold_min_frames, hold_max_frames)   frames

(people hold keys for a heavy-tailed time: many short taps, some long runs), and the combination of each hold is
drawn independently from ``combos`` ({"w+a": p, ...}; "" = no key), so the fraction of frames with a combination
is its probability (a hold that draws the previous combination continues it: the person kept the keys).

Mouse: an independent sequence of segments with their own durations (``mouse_hold_*``). With probability
``p_turn`` a segment is a smooth turn at a speed

    v ~ min(LogNormal(log(turn_speed_median), turn_speed_sigma), turn_speed_max)     model units per frame

to the left or right (equal odds), and with probability ``p_pitch`` it also pitches at
``pitch_ratio * v`` up or down; the turn eases in and out over ``ramp_frames`` frames with a raised-cosine
profile  w(j) = (1 - cos(pi (j + 1) / (ramp + 1))) / 2  (no jump from 0 to full speed). Other segments are
still (exactly 0, as a resting mouse). gta_drive uses the same model for steering (its mouse yaw).

:func:`sample_actions` is a pure function of its arguments and a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Mapping

import numpy as np
from pydantic import BeforeValidator, model_validator

from capture.settings import Field, Invalid, settings

from ..configs import ACTION_MODES

#: Default key combinations per mode, as (combination, probability); "" = no key held.
DEFAULT_COMBOS: dict[str, tuple[tuple[str, float], ...]] = {
    # walking games: mostly forward, diagonals while steering, some strafing and backing up, pauses
    "universal": (("", 0.18), ("w", 0.36), ("w+a", 0.08), ("w+d", 0.08), ("a", 0.07), ("d", 0.07), ("s", 0.08),
                  ("s+a", 0.04), ("s+d", 0.04)),
    # driving: mostly throttle, some braking / reversing, coasting
    "gta_drive": (("", 0.15), ("forward", 0.7), ("back", 0.15)),
    # temple run: running (nomove) with short one-key moves
    "templerun": (("nomove", 0.5), ("jump", 0.1), ("slide", 0.1), ("turnleft", 0.075), ("turnright", 0.075),
                  ("leftside", 0.075), ("rightside", 0.075)),
}


def _combos(value: Any) -> Any:
    """``{combination: probability}`` -> ``((combination, probability), ...)``."""
    return tuple(value.items()) if isinstance(value, Mapping) else value


@settings
class ActionDistribution:
    """Parameters of the designed action distribution (module doc). Durations are in video frames, mouse speeds
    in model units per frame (0.1 = Matrix-Game's typical turn)."""

    hold_median_frames: float = Field(16.0, gt=0, description="median key hold, frames")
    hold_sigma: float = Field(0.6, ge=0, description="log-normal sigma of key holds")
    hold_min_frames: int = Field(3, ge=1, description="shortest key hold, frames")
    hold_max_frames: int = Field(80, ge=1, description="longest key hold, frames")
    combos: Annotated[tuple[tuple[str, Annotated[float, Field(ge=0)]], ...] | None, BeforeValidator(_combos)] = Field(
        None, description='{combination: probability}, keys joined by "+", "" for none (null: the mode\'s defaults)')
    mouse_hold_median_frames: float = Field(12.0, gt=0, description="median mouse segment, frames")
    mouse_hold_sigma: float = Field(0.6, ge=0, description="log-normal sigma of mouse segments")
    p_turn: float = Field(0.5, ge=0, le=1, description="probability that a mouse segment turns")
    turn_speed_median: float = Field(0.1, gt=0, description="median turn speed, model units per frame")
    turn_speed_sigma: float = Field(0.4, ge=0, description="log-normal sigma of the turn speed")
    turn_speed_max: float = Field(0.3, gt=0, description="fastest turn, model units per frame")
    p_pitch: float = Field(0.15, ge=0, le=1, description="probability that a turn also pitches")
    pitch_ratio: float = Field(0.5, ge=0, description="pitch speed / turn speed")
    ramp_frames: int = Field(2, ge=0, description="frames a turn eases in and out over")

    @model_validator(mode="after")
    def _check(self) -> "ActionDistribution":
        if self.hold_min_frames > self.hold_max_frames:
            raise Invalid("hold_min_frames", self.hold_min_frames, f"at most hold_max_frames ({self.hold_max_frames})")
        return self

    def validate(self, mode: str | None = None) -> "ActionDistribution":
        """With ``mode``, check the key names of ``combos`` against the mode's keys (ValueError otherwise)."""
        if mode is not None:
            combo_table(self, mode)
        return self


def combo_table(dist: ActionDistribution, mode: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The combinations of ``dist`` for ``mode`` as (multi-hot rows [C, K] float32, probabilities [C] summing to 1,
    names). ValueError names an unknown key (listing the mode's keys) or bad probabilities."""
    if mode not in ACTION_MODES:
        raise ValueError(f"unknown action mode {mode!r}; allowed: {', '.join(sorted(ACTION_MODES))}")
    keys = ACTION_MODES[mode].keys
    combos = dist.combos if dist.combos is not None else DEFAULT_COMBOS[mode]
    if not combos:
        raise ValueError("actions.combos is empty")
    rows, probs, names = [], [], []
    for name, p in combos:
        parts = [k for k in str(name).split("+") if k]
        unknown = [k for k in parts if k not in keys]
        if unknown:
            raise ValueError(f"actions.combos: {name!r} has keys {unknown} that mode {mode!r} lacks; its keys are "
                             f"{list(keys)} (join keys with '+', '' = no key)")
        if mode == "templerun" and len(parts) != 1:
            raise ValueError(f"actions.combos: templerun actions are one-hot; {name!r} must name exactly one of "
                             f"{list(keys)}")
        if not (math.isfinite(float(p)) and float(p) >= 0):
            raise ValueError(f"actions.combos: probability of {name!r} must be finite and >= 0, got {p!r}")
        row = np.zeros(len(keys), np.float32)
        row[[keys.index(k) for k in parts]] = 1.0
        rows.append(row)
        probs.append(float(p))
        names.append("+".join(parts))
    total = sum(probs)
    if total <= 0:
        raise ValueError("actions.combos: the probabilities sum to 0")
    return np.stack(rows), np.asarray(probs) / total, names


def hold_durations(rng: np.random.Generator, total: int, median: float, sigma: float, lo: int, hi: int) -> list[int]:
    """Durations (frames) d_i = clip(round(LogNormal(log median, sigma)), lo, hi) until they cover ``total``
    frames; the last one is cut so that sum(d) == total."""
    out: list[int] = []
    left = total
    while left > 0:
        d = int(np.clip(round(float(rng.lognormal(math.log(median), sigma))), lo, hi))
        d = min(d, left)
        out.append(d)
        left -= d
    return out


def ramp_profile(duration: int, ramp: int) -> np.ndarray:
    """Speed profile of one turn of ``duration`` frames: 1 in the middle, raised-cosine ease-in and ease-out of
    r = min(ramp, duration // 2) frames, w(j) = (1 - cos(pi (j + 1) / (r + 1))) / 2 for j < r (mirrored at the
    end). Values in (0, 1]."""
    w = np.ones(duration, np.float32)
    r = min(ramp, duration // 2)
    if r > 0:
        up = (1.0 - np.cos(np.pi * (np.arange(r) + 1) / (r + 1))) / 2.0
        w[:r] = up
        w[duration - r:] = up[::-1]
    return w


def sample_actions(
    dist: ActionDistribution, mode: str, num_frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """One action stream of ``num_frames`` video frames in the model's action space of ``mode``.

    Returns:
        keyboard float32 [T, K_model] (multi-hot; templerun one-hot) and mouse float32 [T, 2] (pitch, yaw model
        units per frame), or None for modes without a mouse. Row 0 is idle.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    rows, probs, _ = combo_table(dist, mode)
    m = ACTION_MODES[mode]
    kb = np.zeros((num_frames, m.keyboard_dim), np.float32)
    idle = np.zeros(m.keyboard_dim, np.float32)
    if mode == "templerun":
        idle[m.keys.index("nomove")] = 1.0
    kb[0] = idle
    t = 1
    for d in hold_durations(rng, num_frames - 1, dist.hold_median_frames, dist.hold_sigma, dist.hold_min_frames,
                            dist.hold_max_frames):
        kb[t : t + d] = rows[int(rng.choice(len(probs), p=probs))]
        t += d
    if m.mouse_dim == 0:
        return kb, None
    mouse = np.zeros((num_frames, 2), np.float32)
    t = 1
    for d in hold_durations(rng, num_frames - 1, dist.mouse_hold_median_frames, dist.mouse_hold_sigma, 1,
                            max(dist.hold_max_frames, 1)):
        if rng.random() < dist.p_turn:
            v = min(float(rng.lognormal(math.log(dist.turn_speed_median), dist.turn_speed_sigma)), dist.turn_speed_max)
            yaw = v * (1.0 if rng.random() < 0.5 else -1.0)
            pitch = 0.0
            if rng.random() < dist.p_pitch:
                pitch = dist.pitch_ratio * v * (1.0 if rng.random() < 0.5 else -1.0)
            w = ramp_profile(d, dist.ramp_frames)
            mouse[t : t + d, 0] = pitch * w
            mouse[t : t + d, 1] = yaw * w
        t += d
    return kb, mouse


def sample_action_batch(
    dist: ActionDistribution, mode: str, batch: int, num_frames: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """``batch`` independent streams: keyboard [B, T, K], mouse [B, T, 2] (or None)."""
    out = [sample_actions(dist, mode, num_frames, rng) for _ in range(batch)]
    kb = np.stack([o[0] for o in out])
    mouse = None if out[0][1] is None else np.stack([o[1] for o in out])
    return kb, mouse


def hold_lengths(keyboard: np.ndarray) -> np.ndarray:
    """Lengths (frames) of the runs of identical keyboard rows in one stream [T, K] (holds of the same combination
    in a row form one run), row 0 excluded; the last run (cut by the clip end) excluded too when there is more
    than one."""
    kb = np.asarray(keyboard)[1:]
    if len(kb) == 0:
        return np.zeros(0, np.int64)
    change = np.flatnonzero(np.any(kb[1:] != kb[:-1], axis=1)) + 1
    bounds = np.concatenate([[0], change, [len(kb)]])
    lengths = np.diff(bounds)
    return lengths[:-1] if len(lengths) > 1 else lengths
