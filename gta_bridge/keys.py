"""Keyboard inferred from GTA V vehicle dynamics (and on foot, from the player's motion), with hysteresis.

The recorder drives with the game's AI tasks, which press no keys, so the keys of a frame are inferred from
what the vehicle does, as in Matrix-Game 2.0 ("keyboard inputs are inferred from vehicle dynamics: speed,
acceleration, steering angle"). Per tick (all pure functions over float64 arrays):

W / S (longitudinal)
    From ``Vehicle.Throttle`` (``throttle`` in [-1, 1], negative = driving backwards) and ``Vehicle.BrakePower``
    (``brake`` in [0, 1]) when the game reports them: W while throttle > ``throttle_on`` (released below
    ``throttle_off``), S while brake > ``brake_on`` or throttle < ``reverse_on``. Where they are missing (NaN),
    from the forward acceleration instead (W: a > ``accel_on_mps2``; S: braking or accelerating backwards).
A / D (steering)
    From the front-wheel angle ``steering_deg`` (+ = left after :func:`detect_steering_sign`) and its rate.
    A held key turns the wheels towards full lock at ``steer_in_rate_dps``; released, they return to centre at
    ``steer_out_rate_dps``. A wheel moving away from centre means its key is held; a wheel moving back towards
    centre means the key was released (or, moving at the steer-in rate, that the opposite key is held); a
    steady wheel off centre (|angle| >= ``steer_hold_deg``) means its key is still held.
space (handbrake)
    A deceleration stronger than ``handbrake_decel_mps2`` with no brake and no throttle while moving forward.
Hysteresis
    Every threshold has an on and a lower off level, both raised above the measured noise of the signal, and
    runs shorter than ``min_run_ticks`` are merged into their surroundings, so noise never flickers a key.

The defaults match the kinematic model of :mod:`gta_bridge.sim`; calibrate ``steer_in_rate_dps`` /
``steer_out_rate_dps`` for a real car from a recording driven by hand (the ``controls`` block of each tick
holds the real key states then; :func:`controls_agreement` compares).
"""

from __future__ import annotations

import numpy as np

from capture.settings import Field, settings

#: Key names used, in the action space's vocabulary.
DRIVE_KEYS: tuple[str, ...] = ("w", "s", "a", "d", "space")
WALK_KEYS: tuple[str, ...] = ("w", "s", "a", "d", "shift")


@settings
class KeyInferenceConfig:
    """Thresholds of the key inference (units in the names; rates in degrees per second; controls in [-1, 1]).
    Each on/off pair is a hysteresis: the key goes down above ``*_on`` and up below ``*_off``."""

    throttle_on: float = Field(0.5, ge=0, le=1, description="throttle that presses W")
    throttle_off: float = Field(0.3, ge=0, le=1, description="throttle that releases W")
    brake_on: float = Field(0.5, ge=0, le=1, description="brake that presses S")
    brake_off: float = Field(0.3, ge=0, le=1, description="brake that releases S")
    reverse_on: float = Field(-0.5, ge=-1, le=0, description="signed speed control that presses S in reverse")
    reverse_off: float = Field(-0.3, ge=-1, le=0, description="signed speed control that releases S in reverse")
    accel_on_mps2: float = Field(1.0, ge=0, description="acceleration that presses W without a logged throttle, m/s^2")
    accel_off_mps2: float = Field(0.5, ge=0, description="acceleration that releases it, m/s^2")
    steer_rate_min_dps: float = Field(30.0, ge=0, description="steering rate that counts as steering, deg/s")
    steer_hold_deg: float = Field(2.0, ge=0, description="steering angle that holds A/D, degrees")
    steer_release_deg: float = Field(1.0, ge=0, description="steering angle that releases A/D, degrees")
    steer_in_rate_dps: float = Field(120.0, gt=0, description="the game's steer-in rate, deg/s")
    steer_out_rate_dps: float = Field(240.0, gt=0, description="the game's steer-out rate, deg/s")
    handbrake_decel_mps2: float = Field(3.5, ge=0, description="deceleration that presses the handbrake, m/s^2")
    handbrake_release_mps2: float = Field(2.0, ge=0, description="deceleration that releases it, m/s^2")
    handbrake_min_speed_mps: float = Field(1.0, ge=0, description="slowest speed the handbrake is inferred at, m/s")
    min_run_ticks: int = Field(2, ge=1, description="shorter key presses or releases are merged away, ticks")
    walk_on_mps: float = Field(0.6, ge=0, description="walking speed that presses a move key, m/s")
    walk_off_mps: float = Field(0.3, ge=0, description="walking speed that releases it, m/s")
    sprint_mps: float = Field(4.5, gt=0, description="running speed that presses shift, m/s")


def hysteresis(x: np.ndarray, on: float, off: float, initial: bool = False) -> np.ndarray:
    """Boolean state per sample: turns on when ``x > on``, off when ``x < off`` (``off < on``); NaN holds."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.shape, dtype=bool)
    state = initial
    for i, v in enumerate(x):
        if v > on:
            state = True
        elif v < off:
            state = False
        out[i] = state
    return out


def merge_short_runs(state: np.ndarray, min_run: int) -> np.ndarray:
    """Replace runs shorter than ``min_run`` that sit between two runs of one equal value by that value.

    Works on any integer/bool labels; leading and trailing runs are kept (there is no context to merge into).
    One pass over the runs (merges cascade: a merged run can absorb the next short run).
    """
    s = np.asarray(state)
    if min_run <= 1 or s.size < 3:
        return s.copy()
    edges = np.flatnonzero(s[1:] != s[:-1]) + 1
    starts = np.concatenate([[0], edges])
    lengths = np.diff(np.concatenate([starts, [s.size]]))
    stack: list[list] = []  # [value, length]
    for st, ln in zip(starts, lengths):
        stack.append([s[st], int(ln)])
        while len(stack) >= 3 and stack[-2][1] < min_run and stack[-3][0] == stack[-1][0]:
            last = stack.pop()
            mid = stack.pop()
            stack[-1][1] += mid[1] + last[1]
    out = np.empty_like(s)
    i = 0
    for v, ln in stack:
        out[i:i + ln] = v
        i += ln
    return out


def robust_noise(x: np.ndarray) -> float:
    """Noise standard deviation of a mostly smooth signal, from the MAD of its second differences."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 5:
        return 0.0
    d2 = np.diff(x, 2)
    mad = np.median(np.abs(d2 - np.median(d2)))
    return float(1.4826 * mad / np.sqrt(6.0))


def detect_steering_sign(steer_deg: np.ndarray, speed_mps: np.ndarray, heading_deg: np.ndarray,
                         t_ms: np.ndarray) -> tuple[int, float]:
    """Sign s such that ``s * steer_deg`` is + for left turns, from the correlation of steer x speed with the
    yaw rate (heading is counter-clockwise +, so a left turn raises it). Returns ``(s, correlation)``; s is +1
    when the data cannot tell (|correlation| < 0.2 or too few moving ticks)."""
    steer = np.asarray(steer_deg, dtype=np.float64)
    v = np.asarray(speed_mps, dtype=np.float64)
    h = np.unwrap(np.radians(np.asarray(heading_deg, dtype=np.float64)))
    t = np.asarray(t_ms, dtype=np.float64) / 1000.0
    if steer.size < 10:
        return 1, 0.0
    dt = np.diff(t)
    yaw_rate = np.diff(h) / np.where(dt > 0, dt, np.nan)
    drive = (steer[1:] * v[1:])
    ok = np.isfinite(yaw_rate) & np.isfinite(drive) & (np.abs(v[1:]) > 2.0)
    if ok.sum() < 10 or np.std(drive[ok]) == 0 or np.std(yaw_rate[ok]) == 0:
        return 1, 0.0
    c = float(np.corrcoef(drive[ok], yaw_rate[ok])[0, 1])
    if not np.isfinite(c) or abs(c) < 0.2:
        return 1, c if np.isfinite(c) else 0.0
    return (1 if c > 0 else -1), c


def infer_steering(steer_left_deg: np.ndarray, t_ms: np.ndarray, cfg: KeyInferenceConfig) -> np.ndarray:
    """Per-tick steering key: +1 = left (A), -1 = right (D), 0 = none, from the wheel angle (+ = left) in
    degrees and the tick times in ms."""
    d = np.asarray(steer_left_deg, dtype=np.float64)
    t = np.asarray(t_ms, dtype=np.float64) / 1000.0
    n = d.size
    out = np.zeros(n, dtype=np.int8)
    if n == 0:
        return out
    sigma = robust_noise(d)
    dts = np.diff(t)
    dt_med = float(np.median(dts)) if dts.size else 1 / 60
    rate_min = max(cfg.steer_rate_min_dps, 5.0 * sigma * np.sqrt(2.0) / max(dt_med, 1e-3))
    hold = max(cfg.steer_hold_deg, 4.0 * sigma)
    release = max(cfg.steer_release_deg, 2.0 * sigma)
    state = 0
    for k in range(n):
        dk = d[k]
        if not np.isfinite(dk):
            out[k] = state
            continue
        prev = d[k - 1] if k > 0 and np.isfinite(d[k - 1]) else dk
        dt = t[k] - t[k - 1] if k > 0 else dt_med
        rate = (dk - prev) / dt if dt > 0 else 0.0
        if abs(rate) >= rate_min:
            direction = 1 if rate > 0 else -1
            away = np.sign(prev) == direction or abs(prev) < release
            if away:
                state = direction
            elif abs(dk) < release:  # reached the centre: the key was released
                state = 0
            elif abs(abs(rate) - cfg.steer_out_rate_dps) <= abs(abs(rate) - cfg.steer_in_rate_dps):
                state = 0  # returning at the self-centring speed: released
            else:
                state = direction  # returning at the steer-in speed: the opposite key is held
        else:
            if abs(dk) >= hold:
                state = 1 if dk > 0 else -1
            elif abs(dk) < release:
                state = 0
            elif state != 0 and np.sign(dk) != state:
                state = 0
        out[k] = state
    return merge_short_runs(out, cfg.min_run_ticks).astype(np.int8)


def _accel(v: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
    """Backward-difference acceleration (m/s^2) per tick (exact edges); smoothed over 5 ticks only when the
    speed is so noisy that the difference would exceed 1.5 m/s^2 of noise."""
    v = np.asarray(v, dtype=np.float64)
    t = np.asarray(t_ms, dtype=np.float64) / 1000.0
    a = np.zeros_like(v)
    if v.size < 2:
        return a
    dt = np.diff(t)
    a[1:] = np.diff(v) / np.where(dt > 0, dt, np.nan)
    a[0] = a[1]
    sigma_a = robust_noise(v) * np.sqrt(2.0) / max(float(np.median(dt)), 1e-3)
    if sigma_a > 1.5:
        k = np.ones(5) / 5.0
        a = np.convolve(np.nan_to_num(a), k, mode="same")
    return a


def infer_drive_keys(t_ms: np.ndarray, forward_speed_mps: np.ndarray, steer_left_deg: np.ndarray,
                     throttle: np.ndarray, brake: np.ndarray, cfg: KeyInferenceConfig) -> dict[str, np.ndarray]:
    """Per-tick driving keys ``{"w", "s", "a", "d", "space"} -> bool[N]`` from the vehicle dynamics."""
    v = np.asarray(forward_speed_mps, dtype=np.float64)
    th = np.asarray(throttle, dtype=np.float64)
    br = np.asarray(brake, dtype=np.float64)
    a = _accel(v, t_ms)
    have = np.isfinite(th) & np.isfinite(br)
    w_ctrl = hysteresis(th, cfg.throttle_on, cfg.throttle_off)
    rev = hysteresis(-th, -cfg.reverse_on, -cfg.reverse_off)
    brk = hysteresis(br, cfg.brake_on, cfg.brake_off)
    w_dyn = hysteresis(np.where(v > -0.2, a, -np.inf), cfg.accel_on_mps2, cfg.accel_off_mps2)
    s_dyn = hysteresis(np.where(v > 0.2, -a - 2.0, np.where(v < -0.2, -a, -np.inf)), cfg.accel_on_mps2,
                       cfg.accel_off_mps2)
    w = np.where(have, w_ctrl, w_dyn)
    s = np.where(have, brk | rev, s_dyn)
    decel = np.where((v > cfg.handbrake_min_speed_mps) & ~w & ~s, -a, -np.inf)
    space = hysteresis(decel, cfg.handbrake_decel_mps2, cfg.handbrake_release_mps2)
    steer = infer_steering(steer_left_deg, t_ms, cfg)
    m = cfg.min_run_ticks
    return {
        "w": merge_short_runs(w, m), "s": merge_short_runs(s, m), "space": merge_short_runs(space, m),
        "a": steer > 0, "d": steer < 0,
    }


def infer_walk_keys(velocity_xy: np.ndarray, yaw_deg: np.ndarray, cfg: KeyInferenceConfig) -> dict[str, np.ndarray]:
    """Per-tick on-foot keys ``{"w", "s", "a", "d", "shift"}`` from the player's velocity in the camera frame.

    ``velocity_xy``: ``[N, 2]`` Unreal (forward-north, right-east) velocity in m/s; ``yaw_deg``: Unreal camera
    yaw (clockwise from north). Forward/backward/strafe speeds above ``walk_on_mps`` press W/S/D/A.
    """
    vel = np.asarray(velocity_xy, dtype=np.float64)
    y = np.radians(np.asarray(yaw_deg, dtype=np.float64))
    fwd = vel[:, 0] * np.cos(y) + vel[:, 1] * np.sin(y)
    right = -vel[:, 0] * np.sin(y) + vel[:, 1] * np.cos(y)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    m = cfg.min_run_ticks
    on, off = cfg.walk_on_mps, cfg.walk_off_mps
    return {
        "w": merge_short_runs(hysteresis(fwd, on, off), m),
        "s": merge_short_runs(hysteresis(-fwd, on, off), m),
        "d": merge_short_runs(hysteresis(right, on, off), m),
        "a": merge_short_runs(hysteresis(-right, on, off), m),
        "shift": merge_short_runs(hysteresis(speed, cfg.sprint_mps, cfg.sprint_mps - 0.5), m),
    }


def controls_agreement(inferred: dict[str, np.ndarray], controls: dict[str, np.ndarray]) -> dict[str, float]:
    """Fraction of ticks where each inferred key equals the logged control (for ticks where a human pressed
    anything at all: the logged controls are all false under scripted driving)."""
    out: dict[str, float] = {}
    pressed_any = np.zeros(len(next(iter(controls.values()))), dtype=bool)
    for c in controls.values():
        pressed_any |= c
    if not pressed_any.any():
        return out
    for k, c in controls.items():
        if k in inferred:
            out[k] = float(np.mean(inferred[k][pressed_any] == c[pressed_any]))
    return out
