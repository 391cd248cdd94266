"""Scenario parameters of a GTA V recording session and their validation.

The allowed ranges and names come from the recording schema (``schema/recording-v1.schema.json``,
``$defs/scenario``), the same file the mod's ``Scenario.cs`` is checked against, so the mod, the schema and
the importer agree: vehicle density [0.1, 2.0] and NPC (ped) density [0.2, 1.5] as in the Matrix-Game 2.0
paper, a GTA V weather name, a time of day in [0, 24) hours.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from capture.errors import InputError

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "recording-v1.schema.json"


class ScenarioError(InputError):
    """A scenario with out-of-range or unknown parameters; ``problems`` lists each one with the allowed values."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The recording JSON Schema (parsed once)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Limits:
    """Allowed scenario values, read from the schema."""

    vehicle_density: tuple[float, float]
    ped_density: tuple[float, float]
    time_of_day_h: tuple[float, float]  # [min, max) hours
    fov_deg: tuple[float, float]
    speed_mps: tuple[float, float]
    duration_s_max: float
    sync_duration_ms: tuple[float, float]
    weathers: tuple[str, ...]
    behaviours: tuple[str, ...]
    views: tuple[str, ...]


@lru_cache(maxsize=1)
def limits() -> Limits:
    """The scenario limits of the schema."""
    defs = load_schema()["$defs"]
    props = defs["scenario"]["properties"]
    cam = defs["camera_rig"]["properties"]
    sync = props["sync"]["properties"]

    def rng(p: Mapping[str, Any]) -> tuple[float, float]:
        return float(p["minimum"]), float(p.get("maximum", p.get("exclusiveMaximum")))

    return Limits(
        vehicle_density=rng(props["vehicle_density"]),
        ped_density=rng(props["ped_density"]),
        time_of_day_h=rng(props["time_of_day_h"]),
        fov_deg=rng(cam["fov_deg"]),
        speed_mps=rng(props["speed_mps"]),
        duration_s_max=float(props["duration_s"]["maximum"]),
        sync_duration_ms=rng(sync["duration_ms"]),
        weathers=tuple(defs["weather"]["enum"]),
        behaviours=tuple(props["behaviour"]["enum"]),
        views=tuple(cam["view"]["enum"]),
    )


@dataclass(frozen=True)
class CameraRig:
    """The scripted camera: ``offset_m`` in the vehicle's body axes (x right, y forward, z up, metres),
    ``rotation_offset_deg`` a GTA Euler [pitch, roll, yaw] applied in the body frame, ``ped_offset_m`` the
    offset on foot, ``fov_deg`` the vertical field of view."""

    view: str = "first_person"
    offset_m: tuple[float, float, float] = (0.0, 0.5, 0.6)
    rotation_offset_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ped_offset_m: tuple[float, float, float] = (0.0, 0.15, 0.65)
    fov_deg: float = 60.0


@dataclass(frozen=True)
class Scenario:
    """Validated scenario parameters (units in the names)."""

    name: str
    seed: int
    weather: str
    time_of_day_h: float
    vehicle_density: float
    ped_density: float
    behaviour: str
    camera: CameraRig
    duration_s: float
    freeze_time: bool = True
    vehicle_model: str = "asea"
    speed_mps: float = 12.0
    waypoints_m: tuple[tuple[float, float, float], ...] = ()
    sync_duration_ms: float = 1500.0
    sync_at_end: bool = True
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def config(self) -> dict[str, Any]:
        """The meta.json ``config`` entries of this scenario."""
        return {
            "weather": self.weather, "time_of_day": self.time_of_day_h, "npc_density": self.ped_density,
            "vehicle_density": self.vehicle_density, "behaviour": self.behaviour, "camera_view": self.camera.view,
            "camera_offset_m": list(self.camera.offset_m), "camera_rotation_offset_deg":
                list(self.camera.rotation_offset_deg), "fov_deg": self.camera.fov_deg,
            "scenario": self.name, "scenario_seed": self.seed,
        }


_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _vec3(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 3 and all(_num(x) for x in v)


def validate_scenario(d: Any, *, where: str = "scenario") -> Scenario:
    """Check a scenario object (as in the recording header or the mod's settings) and return it.

    Raises :class:`ScenarioError` listing every problem, each naming the key and the allowed range or values,
    e.g. ``scenario.vehicle_density: 2.5 is outside the allowed range [0.1, 2.0]``.
    """
    lim = limits()
    problems: list[str] = []
    if not isinstance(d, Mapping):
        raise ScenarioError(f"{where}: must be a JSON object", [f"{where}: must be a JSON object"])
    allowed = set(load_schema()["$defs"]["scenario"]["properties"])
    for k in d:
        if k not in allowed:
            problems.append(f"{where}.{k}: unknown key (allowed: {', '.join(sorted(allowed))})")
    for k in load_schema()["$defs"]["scenario"]["required"]:
        if k not in d:
            problems.append(f"{where}.{k}: missing")

    def rng(key: str, value: Any, lo: float, hi: float, unit: str = "", hi_open: bool = False) -> None:
        if value is None:
            return
        if not _num(value):
            problems.append(f"{where}.{key}: {value!r} must be a number")
            return
        v = float(value)
        ok = lo <= v < hi if hi_open else lo <= v <= hi
        if not ok:
            close = ")" if hi_open else "]"
            problems.append(f"{where}.{key}: {value!r} is outside the allowed range [{lo:g}, {hi:g}{close}{unit}")

    name = d.get("name")
    if name is not None and (not isinstance(name, str) or not _NAME_RE.match(name)):
        problems.append(f"{where}.name: {name!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    seed = d.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1):
        problems.append(f"{where}.seed: {seed!r} must be an integer in [0, 2147483647]")
    weather = d.get("weather")
    if weather is not None and weather not in lim.weathers:
        problems.append(f"{where}.weather: {weather!r} is not a GTA V weather (allowed: {', '.join(lim.weathers)})")
    behaviour = d.get("behaviour")
    if behaviour is not None and behaviour not in lim.behaviours:
        problems.append(f"{where}.behaviour: {behaviour!r} is not a behaviour (allowed: {', '.join(lim.behaviours)})")
    rng("vehicle_density", d.get("vehicle_density"), *lim.vehicle_density)
    rng("ped_density", d.get("ped_density"), *lim.ped_density)
    rng("time_of_day_h", d.get("time_of_day_h"), *lim.time_of_day_h, unit=" hours", hi_open=True)
    rng("speed_mps", d.get("speed_mps"), *lim.speed_mps, unit=" m/s")
    dur = d.get("duration_s")
    if dur is not None and (not _num(dur) or not 0 < float(dur) <= lim.duration_s_max):
        problems.append(f"{where}.duration_s: {dur!r} is outside the allowed range (0, {lim.duration_s_max:g}] s")
    if "freeze_time" in d and not isinstance(d["freeze_time"], bool):
        problems.append(f"{where}.freeze_time: must be true or false")
    wps = d.get("waypoints_m", [])
    if not isinstance(wps, list) or not all(_vec3(w) for w in wps):
        problems.append(f"{where}.waypoints_m: must be a list of [x, y, z] positions in metres")
        wps = []

    cam = d.get("camera")
    rig = CameraRig()
    if cam is not None:
        if not isinstance(cam, Mapping):
            problems.append(f"{where}.camera: must be an object")
        else:
            cam_allowed = set(load_schema()["$defs"]["camera_rig"]["properties"])
            for k in cam:
                if k not in cam_allowed:
                    problems.append(f"{where}.camera.{k}: unknown key (allowed: {', '.join(sorted(cam_allowed))})")
            if cam.get("view") not in lim.views:
                problems.append(f"{where}.camera.view: {cam.get('view')!r} is not a view (allowed: "
                                f"{', '.join(lim.views)})")
            for k in ("offset_m", "rotation_offset_deg"):
                if not _vec3(cam.get(k)):
                    problems.append(f"{where}.camera.{k}: must be [x, y, z] numbers")
            if "ped_offset_m" in cam and not _vec3(cam["ped_offset_m"]):
                problems.append(f"{where}.camera.ped_offset_m: must be [x, y, z] numbers")
            rng("camera.fov_deg", cam.get("fov_deg", 60.0), *lim.fov_deg, unit=" degrees")
            if not problems:
                rig = CameraRig(
                    view=cam["view"], offset_m=tuple(map(float, cam["offset_m"])),
                    rotation_offset_deg=tuple(map(float, cam["rotation_offset_deg"])),
                    ped_offset_m=tuple(map(float, cam.get("ped_offset_m", CameraRig.ped_offset_m))),
                    fov_deg=float(cam.get("fov_deg", 60.0)),
                )
    sync = d.get("sync", {})
    if not isinstance(sync, Mapping):
        problems.append(f"{where}.sync: must be an object")
        sync = {}
    rng("sync.duration_ms", sync.get("duration_ms", 1500.0), *lim.sync_duration_ms, unit=" ms")
    if problems:
        raise ScenarioError(f"invalid {where}:\n  " + "\n  ".join(problems), problems)
    return Scenario(
        name=str(name), seed=int(seed), weather=str(weather), time_of_day_h=float(d["time_of_day_h"]),
        vehicle_density=float(d["vehicle_density"]), ped_density=float(d["ped_density"]), behaviour=str(behaviour),
        camera=rig, duration_s=float(dur), freeze_time=bool(d.get("freeze_time", True)),
        vehicle_model=str(d.get("vehicle_model", "asea")), speed_mps=float(d.get("speed_mps", 12.0)),
        waypoints_m=tuple(tuple(map(float, w)) for w in wps),
        sync_duration_ms=float(sync.get("duration_ms", 1500.0)), sync_at_end=bool(sync.get("at_end", True)),
        raw=dict(d),
    )
