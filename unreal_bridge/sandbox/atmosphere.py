"""Lighting and weather from the time of day: sun, ambient light, sky colours, fog (pure functions).

``time_of_day_h`` is in hours on [0, 24]: the sun rises at 6, is highest (65 degrees) at 12 and sets at 18.
Directions are in the Unreal frame (X forward, Y right, Z up). Colours are linear RGB in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEATHERS: tuple[str, ...] = ("clear", "overcast", "fog", "rain")
RGB = tuple[float, float, float]

_SUN_MAX_ELEVATION_DEG = 65.0
_SUN_YAW_OFFSET_DEG = 25.0  # so that the noon sun is not aligned with the street grid


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    t = float(np.clip(t, 0.0, 1.0))
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _scale(a: RGB, k: float) -> RGB:
    return tuple(float(x * k) for x in a)  # type: ignore[return-value]


def _smoothstep(e0: float, e1: float, x: float) -> float:
    t = float(np.clip((x - e0) / (e1 - e0), 0.0, 1.0))
    return t * t * (3.0 - 2.0 * t)


def sun_elevation_deg(time_of_day_h: float) -> float:
    """Sun elevation above the horizon (degrees; negative at night)."""
    return float(_SUN_MAX_ELEVATION_DEG * np.sin(np.pi * (float(time_of_day_h) - 6.0) / 12.0))


def sun_direction(time_of_day_h: float) -> np.ndarray:
    """Unit vector from the scene towards the sun (Unreal frame); swings from yaw -90 at 6h to +90 at 18h."""
    elev = np.radians(sun_elevation_deg(time_of_day_h))
    yaw = np.radians(-90.0 + 180.0 * (float(time_of_day_h) - 6.0) / 12.0 + _SUN_YAW_OFFSET_DEG)
    return np.array([np.cos(elev) * np.cos(yaw), np.cos(elev) * np.sin(yaw), np.sin(elev)])


@dataclass(frozen=True)
class Atmosphere:
    """Everything the renderer needs to light a scene.

    ``light_dir``: unit vector towards the main light (the sun by day, the moon at night). ``light_color`` and
    ``ambient``: light colours with intensity folded in. ``sky_zenith``/``sky_horizon``: sky gradient;
    ``sun_disc``: colour of the visible sun disc (None when hidden). ``fog_color``/``fog_density_per_m``:
    exponential fog (0: none). ``night``: lit windows and lamps. ``rain``: falling streaks.
    ``window``: colour of window glass seen from inside. ``daylight``: 0 (night) .. 1 (day)."""

    light_dir: np.ndarray
    light_color: RGB
    ambient: RGB
    sky_zenith: RGB
    sky_horizon: RGB
    sun_disc: RGB | None
    fog_color: RGB
    fog_density_per_m: float
    night: bool
    rain: bool
    window: RGB
    daylight: float


def atmosphere(time_of_day_h: float, weather: str, indoor: bool = False) -> Atmosphere:
    """The lighting of a scene at ``time_of_day_h`` in ``weather`` (see :data:`WEATHERS`)."""
    if weather not in WEATHERS:
        raise ValueError(f"weather={weather!r} is not supported; allowed: {list(WEATHERS)}")
    elev = sun_elevation_deg(time_of_day_h)
    day = _smoothstep(-8.0, 12.0, elev)  # 0 at night, 1 in full day
    golden = _smoothstep(25.0, 2.0, elev) * _smoothstep(-8.0, 2.0, elev)  # sunrise / sunset glow

    zenith = _mix((0.015, 0.02, 0.06), (0.20, 0.42, 0.82), day)
    horizon = _mix((0.05, 0.07, 0.14), (0.68, 0.80, 0.94), day)
    horizon = _mix(horizon, (0.98, 0.60, 0.34), 0.75 * golden)
    zenith = _mix(zenith, (0.28, 0.30, 0.55), 0.5 * golden)
    sun_col = _mix((1.0, 0.97, 0.90), (1.0, 0.62, 0.34), golden)
    light_dir = sun_direction(time_of_day_h)
    light = _scale(sun_col, 0.95 * day)
    ambient = _mix((0.10, 0.12, 0.20), (0.40, 0.42, 0.47), day)
    sun_disc: RGB | None = _mix((1.0, 1.0, 0.92), (1.0, 0.75, 0.45), golden) if elev > -2.0 else None
    if day < 0.5:  # moonlight
        light_dir = np.array([0.3, -0.5, 0.81])
        light_dir = light_dir / np.linalg.norm(light_dir)
        light = _mix((0.16, 0.18, 0.26), light, day * 2.0)
    fog_density = 0.0
    fog_color = horizon

    if weather in ("overcast", "fog", "rain"):
        grey = {"overcast": 0.66, "fog": 0.72, "rain": 0.50}[weather]
        cloud = _scale((grey, grey * 1.01, grey * 1.04), 0.15 + 0.85 * day)
        zenith = _scale(cloud, 0.85)
        horizon = cloud
        sun_disc = None
        dim = {"overcast": 0.35, "fog": 0.25, "rain": 0.22}[weather]
        light = _scale(light, dim)
        ambient = _mix(_scale(ambient, 1.1), _scale(cloud, 0.75), 0.5 * day)
        fog_color = cloud
        fog_density = {"overcast": 0.0, "fog": 0.045, "rain": 0.012}[weather]

    window = _mix(horizon, zenith, 0.3)
    if indoor:
        # ceiling lights on: a warm constant part, plus daylight through the windows
        ambient = _mix((0.62, 0.57, 0.50), _mix((0.74, 0.74, 0.76), ambient, 0.2), day)
        light = _scale(_mix(light, (0.9, 0.88, 0.82), 0.6), 0.4)
        light_dir = np.array([0.6, 0.4, 0.7]) / np.linalg.norm([0.6, 0.4, 0.7])
        fog_density *= 0.5
    return Atmosphere(light_dir, light, ambient, zenith, horizon, sun_disc, fog_color, fog_density,
                      day < 0.35, weather == "rain", window, day)
