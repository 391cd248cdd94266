"""Reading (and, for the simulator, writing) a GTA V recording session: behaviour.jsonl + ticks.csv.

The format is ``playmill.gta.recording`` version 1, defined by ``schema/recording-v1.schema.json``. A reader
never trusts the file: a header it cannot read or an unknown version is an error (:class:`RecordingError`
naming the file and line); a bad tick line (truncated or malformed JSON, missing fields, a tick out of order,
non-finite dynamics) is quarantined as a :class:`Reject` with its file, line, tick and reason, and the rest is
read. ticks.csv is cross-checked against the JSON lines row by row; a tick whose JSON line was lost is
recovered from its CSV row when that row is complete.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from capture.errors import InputError
from capture.names import name_problem
from gta_bridge.scenario import Scenario, ScenarioError, load_schema, validate_scenario

SCHEMA_NAME = "playmill.gta.recording"
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
JSONL_NAME = "behaviour.jsonl"
CSV_NAME = "ticks.csv"
#: ticks.csv columns, in order (from the schema's ``$defs/csv_row``).
CSV_COLUMNS: tuple[str, ...] = tuple(load_schema()["$defs"]["csv_row"]["x-column-order"])
CONTROL_NAMES: tuple[str, ...] = ("accelerate", "brake", "left", "right", "handbrake", "move_forward",
                                  "move_back", "move_left", "move_right", "sprint")


class RecordingError(InputError):
    """A recording that cannot be imported at all; the message names the file (and line)."""


@dataclass
class Reject:
    """A quarantined piece of a recording: what, where (file, line, tick, video frame, time span) and why.

    Times ``t_start_s``/``t_end_s`` are log wall-clock seconds (0 = first logged tick) when known."""

    kind: str
    reason: str
    file: str = ""
    line: int | None = None
    tick: int | None = None
    frame: int | None = None
    t_start_s: float | None = None
    t_end_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.tick is not None:
            where += f" tick {self.tick}"
        if self.frame is not None:
            where += f" video frame {self.frame}"
        return f"{where}: [{self.kind}] {self.reason}"


@dataclass
class Header:
    """The session header: ids, versions, the validated scenario and the sync marker settings."""

    session_id: str
    mod_version: str
    game_build: str
    started_utc: str
    scenario: Scenario
    sync_duration_ms: float
    sync_at_end: bool
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


_VEC = ("x", "y", "z")


@dataclass
class TickTable:
    """The good ticks of a session, sorted by tick, as float64 arrays (NaN = not available).

    Positions in m, rotations as GTA Euler [pitch, roll, yaw] in degrees, speeds in m/s, times in ms.
    ``cam_rig``: "vehicle" / "ped" / "gameplay" (what the rendering camera followed). ``line``: source line in
    behaviour.jsonl (0 = recovered from ticks.csv).
    """

    tick: np.ndarray
    frame: np.ndarray
    game_time_ms: np.ndarray
    wall_ms: np.ndarray
    phase: np.ndarray
    mode: np.ndarray
    in_vehicle: np.ndarray
    veh_pos: np.ndarray
    veh_rot: np.ndarray
    veh_quat: np.ndarray
    veh_vel: np.ndarray
    veh_speed: np.ndarray
    fwd_speed: np.ndarray
    heading: np.ndarray
    steer: np.ndarray
    throttle: np.ndarray
    brake: np.ndarray
    gear: np.ndarray
    collided: np.ndarray
    ped_pos: np.ndarray
    ped_rot: np.ndarray
    ped_heading: np.ndarray
    ped_vel: np.ndarray
    cam_pos: np.ndarray
    cam_rot: np.ndarray
    cam_fov: np.ndarray
    cam_rig: np.ndarray
    controls: np.ndarray
    sync_code: np.ndarray
    line: np.ndarray

    def __len__(self) -> int:
        return int(self.tick.size)

    def index_of_tick(self, tick: int) -> int | None:
        i = int(np.searchsorted(self.tick, tick))
        return i if i < self.tick.size and self.tick[i] == tick else None


@dataclass
class Recording:
    """A parsed session: header, good ticks, footer (None when the session was cut off), rejects, warnings."""

    directory: Path
    jsonl_path: Path
    csv_path: Path | None
    header: Header
    ticks: TickTable
    footer: dict[str, Any] | None
    rejects: list[Reject]
    warnings: list[str]


class _BadTick(Exception):
    def __init__(self, kind: str, reason: str, tick: int | None = None, wall_ms: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.tick = tick
        self.wall_ms = wall_ms


def _num(v: Any, what: str, *, nullable: bool = True) -> float:
    if v is None:
        if nullable:
            return math.nan
        raise _BadTick("bad_tick", f"{what} is null")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _BadTick("bad_tick", f"{what} must be a number, got {v!r}")
    return float(v)


def _vec(v: Any, n: int, what: str) -> list[float]:
    if not isinstance(v, list) or len(v) != n:
        raise _BadTick("bad_tick", f"{what} must be a list of {n} numbers, got {v!r}")
    return [_num(x, what) for x in v]


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _BadTick("bad_tick", f"{what} must be an integer, got {v!r}")
    return v


def _obj(d: Mapping, key: str, required: Sequence[str]) -> Mapping:
    o = d.get(key)
    if not isinstance(o, Mapping):
        raise _BadTick("bad_tick", f"'{key}' must be an object")
    missing = [k for k in required if k not in o]
    if missing:
        raise _BadTick("bad_tick", f"'{key}' lacks {missing}")
    return o


_TICK_KEYS = load_schema()["$defs"]["tick"]["required"]
_VEH_KEYS = load_schema()["$defs"]["vehicle"]["required"]
_PLAYER_KEYS = load_schema()["$defs"]["player"]["required"]
_CAM_KEYS = load_schema()["$defs"]["camera"]["required"]


def _finite(vals: Iterable[float]) -> bool:
    return all(math.isfinite(x) for x in vals)


def parse_tick(d: Any) -> dict[str, Any]:
    """Flatten one tick object into the :class:`TickTable` fields; raises ``_BadTick`` (kind, reason)."""
    if not isinstance(d, Mapping):
        raise _BadTick("bad_tick", "not a JSON object")
    missing = [k for k in _TICK_KEYS if k not in d]
    if missing:
        raise _BadTick("bad_tick", f"missing keys {missing}")
    tick = _int(d["tick"], "tick")
    wall = _num(d["wall_time_ms"], "wall_time_ms", nullable=False)
    r: dict[str, Any] = {"tick": tick, "frame": _int(d["frame"], "frame"),
                         "game_time_ms": _int(d["game_time_ms"], "game_time_ms"), "wall_ms": wall,
                         "phase": str(d["phase"]), "mode": str(d["mode"])}
    try:
        p = _obj(d, "player", _PLAYER_KEYS)
        r["in_vehicle"] = bool(p["in_vehicle"])
        r["ped_pos"] = _vec(p["position_m"], 3, "player.position_m")
        r["ped_rot"] = _vec(p["rotation_deg"], 3, "player.rotation_deg")
        r["ped_heading"] = _num(p["heading_deg"], "player.heading_deg")
        r["ped_vel"] = _vec(p["velocity_mps"], 3, "player.velocity_mps")
        v = d["vehicle"]
        if v is None:
            if r["in_vehicle"]:
                raise _BadTick("bad_tick", "player.in_vehicle is true but vehicle is null")
            nan3 = [math.nan] * 3
            r.update(veh_pos=nan3, veh_rot=nan3, veh_quat=[math.nan] * 4, veh_vel=nan3, veh_speed=math.nan,
                     fwd_speed=math.nan, heading=math.nan, steer=math.nan, throttle=math.nan, brake=math.nan,
                     gear=-1, collided=False)
        else:
            v = _obj(d, "vehicle", _VEH_KEYS)
            r.update(
                veh_pos=_vec(v["position_m"], 3, "vehicle.position_m"),
                veh_rot=_vec(v["rotation_deg"], 3, "vehicle.rotation_deg"),
                veh_quat=_vec(v["quaternion_xyzw"], 4, "vehicle.quaternion_xyzw"),
                veh_vel=_vec(v["velocity_mps"], 3, "vehicle.velocity_mps"),
                veh_speed=_num(v["speed_mps"], "vehicle.speed_mps"),
                fwd_speed=_num(v["forward_speed_mps"], "vehicle.forward_speed_mps"),
                heading=_num(v["heading_deg"], "vehicle.heading_deg"),
                steer=_num(v["steering_deg"], "vehicle.steering_deg"),
                throttle=_num(v["throttle"], "vehicle.throttle"),
                brake=_num(v["brake"], "vehicle.brake"),
                gear=_int(v["gear"], "vehicle.gear"),
                collided=bool(v["collided"]),
            )
        c = _obj(d, "camera", _CAM_KEYS)
        r["cam_pos"] = _vec(c["position_m"], 3, "camera.position_m")
        r["cam_rot"] = _vec(c["rotation_deg"], 3, "camera.rotation_deg")
        r["cam_fov"] = _num(c["fov_deg"], "camera.fov_deg")
        r["cam_rig"] = str(c["rig"])
        ctl = d["controls"]
        if not isinstance(ctl, Mapping):
            raise _BadTick("bad_tick", "'controls' must be an object")
        r["controls"] = [bool(ctl.get(k, False)) for k in CONTROL_NAMES]
        sc = d["sync_code"]
        r["sync_code"] = -1 if sc is None else _int(sc, "sync_code")
    except _BadTick as e:
        e.tick, e.wall_ms = tick, wall
        raise
    # non-finite dynamics: what the import needs must be finite
    need: list[tuple[str, Iterable[float]]] = [("camera.position_m", r["cam_pos"]),
                                               ("camera.rotation_deg", r["cam_rot"])]
    if r["in_vehicle"]:
        need += [("vehicle.position_m", r["veh_pos"]), ("vehicle.rotation_deg", r["veh_rot"]),
                 ("vehicle.velocity_mps", r["veh_vel"]), ("vehicle.forward_speed_mps", [r["fwd_speed"]]),
                 ("vehicle.steering_deg", [r["steer"]]), ("vehicle.heading_deg", [r["heading"]])]
    else:
        need += [("player.position_m", r["ped_pos"]), ("player.velocity_mps", r["ped_vel"]),
                 ("player.heading_deg", [r["ped_heading"]])]
    for name, vals in need:
        if not _finite(vals):
            raise _BadTick("nan_dynamics", f"{name} is not finite ({list(vals)})", tick, wall)
    if not math.isfinite(wall):
        raise _BadTick("nan_dynamics", "wall_time_ms is not finite", tick, None)
    return r


def _table(rows: list[dict[str, Any]]) -> TickTable:
    def col(name: str, dtype=np.float64) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=dtype)

    def vec(name: str, n: int) -> np.ndarray:
        return np.array([r[name] for r in rows], dtype=np.float64).reshape(-1, n)

    return TickTable(
        tick=col("tick", np.int64), frame=col("frame", np.int64), game_time_ms=col("game_time_ms", np.int64),
        wall_ms=col("wall_ms"), phase=col("phase", object), mode=col("mode", object),
        in_vehicle=col("in_vehicle", bool), veh_pos=vec("veh_pos", 3), veh_rot=vec("veh_rot", 3),
        veh_quat=vec("veh_quat", 4), veh_vel=vec("veh_vel", 3), veh_speed=col("veh_speed"),
        fwd_speed=col("fwd_speed"), heading=col("heading"), steer=col("steer"), throttle=col("throttle"),
        brake=col("brake"), gear=col("gear", np.int64), collided=col("collided", bool), ped_pos=vec("ped_pos", 3),
        ped_rot=vec("ped_rot", 3), ped_heading=col("ped_heading"), ped_vel=vec("ped_vel", 3),
        cam_pos=vec("cam_pos", 3), cam_rot=vec("cam_rot", 3), cam_fov=col("cam_fov"), cam_rig=col("cam_rig", object),
        controls=np.array([r["controls"] for r in rows], dtype=bool).reshape(-1, len(CONTROL_NAMES)),
        sync_code=col("sync_code", np.int64), line=col("line", np.int64),
    )


def parse_header(d: Any, path: Path) -> Header:
    """Check the header line; raises :class:`RecordingError` (unknown schema/version, bad fields) or
    :class:`ScenarioError` (out-of-range scenario), naming the file."""
    if not isinstance(d, Mapping) or d.get("record") != "header":
        raise RecordingError(f"{path}:1: the first line must be the session header "
                             f"({{\"record\": \"header\", ...}}), got {str(d)[:80]!r}")
    if d.get("schema") != SCHEMA_NAME:
        raise RecordingError(f"{path}:1: unknown recording schema {d.get('schema')!r} (expected {SCHEMA_NAME!r})")
    version = d.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise RecordingError(f"{path}:1: unknown schema version {version!r} of {SCHEMA_NAME} (this importer reads "
                             f"version{'s' if len(SUPPORTED_VERSIONS) > 1 else ''} "
                             f"{', '.join(map(str, SUPPORTED_VERSIONS))}); update playmill or re-record")
    missing = [k for k in load_schema()["$defs"]["header"]["required"] if k not in d]
    if missing:
        raise RecordingError(f"{path}:1: the header lacks {missing}")
    try:
        scenario = validate_scenario(d["scenario"], where="scenario")
    except ScenarioError as e:
        raise ScenarioError(f"{path}:1: invalid scenario in the session header:\n  " + "\n  ".join(e.problems),
                            e.problems) from None
    why = name_problem(d["session_id"], 64)
    if why is not None:  # it names the rejects file and the episodes: it must not lead out of their folders
        raise RecordingError(f"{path}:1: session_id {str(d['session_id'])[:80]!r} is not a safe name: {why} (the "
                             "schema allows 1-64 letters, digits, '_' and '-')")
    sm = d.get("sync_marker", {})
    if not isinstance(sm, Mapping):
        raise RecordingError(f"{path}:1: sync_marker must be an object, got {str(sm)[:60]!r}")
    if (sm.get("kind"), sm.get("rows"), sm.get("cols"), sm.get("bits")) != ("binary_grid", 4, 8, 12):
        raise RecordingError(f"{path}:1: unsupported sync marker {sm!r} (this importer decodes binary_grid 4x8, "
                             "12 bits)")
    return Header(session_id=str(d["session_id"]), mod_version=str(d["mod_version"]),
                  game_build=str(d["game_build"]), started_utc=str(d["started_utc"]), scenario=scenario,
                  sync_duration_ms=float(sm.get("duration_ms", scenario.sync_duration_ms)),
                  sync_at_end=bool(sm.get("at_end", scenario.sync_at_end)), raw=dict(d))


def _csv_float(s: str) -> float:
    return math.nan if s == "" else float(s)


def _read_csv(path: Path, rejects: list[Reject], warnings: list[str]
              ) -> dict[tuple[int, int], tuple[int, dict[str, str]]]:
    """Rows of ticks.csv keyed by (tick, frame): ``-> (line number, {column: cell})``."""
    rows: dict[tuple[int, int], tuple[int, dict[str, str]]] = {}
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:  # a byte-order mark is fine
        reader = csv.reader(fh)
        try:
            head = next(reader)
        except StopIteration:
            warnings.append(f"{path}: empty file; the CSV cross-check was skipped")
            return rows
        if tuple(head) != CSV_COLUMNS:
            warnings.append(f"{path}:1: unexpected columns {head[:6]}...; expected the {len(CSV_COLUMNS)} columns of "
                            "the schema ($defs/csv_row); the CSV cross-check was skipped")
            return rows
        for lineno, cells in enumerate(reader, start=2):
            if len(cells) != len(CSV_COLUMNS):
                rejects.append(Reject("bad_csv_row", f"{len(cells)} cells, expected {len(CSV_COLUMNS)} "
                                      "(truncated row?)", str(path), lineno))
                continue
            try:
                key = (int(cells[0]), int(cells[1]))
            except ValueError:
                rejects.append(Reject("bad_csv_row", f"tick/frame {cells[:2]!r} are not integers", str(path), lineno))
                continue
            rows[key] = (lineno, dict(zip(CSV_COLUMNS, cells)))
    return rows


def _csv_disagreement(r: Mapping[str, Any], c: Mapping[str, str]) -> str | None:
    """Why a CSV row disagrees with its JSON tick (None when they agree)."""
    try:
        if int(c["frame"]) != r["frame"] or int(c["game_time_ms"]) != r["game_time_ms"]:
            return f"frame/game_time_ms {c['frame']}/{c['game_time_ms']} vs {r['frame']}/{r['game_time_ms']}"
        if abs(float(c["wall_time_ms"]) - r["wall_ms"]) > 1e-3:
            return f"wall_time_ms {c['wall_time_ms']} vs {r['wall_ms']}"
        pos = r["veh_pos"] if r["in_vehicle"] else r["ped_pos"]
        pairs = list(zip(("pos_x_m", "pos_y_m", "pos_z_m"), pos)) + list(
            zip(("cam_x_m", "cam_y_m", "cam_z_m", "cam_pitch_deg", "cam_roll_deg", "cam_yaw_deg"),
                list(r["cam_pos"]) + list(r["cam_rot"])))
        for name, val in pairs:
            cv = _csv_float(c[name])
            if not (math.isnan(cv) and math.isnan(val)) and not abs(cv - val) <= 1e-4 * max(1.0, abs(val)):
                return f"{name} {c[name]} vs {val}"
    except (ValueError, KeyError) as e:
        return f"unreadable row ({e})"
    return None


def _recover_from_csv(c: Mapping[str, str]) -> dict[str, Any]:
    """A tick rebuilt from its CSV row (the camera pose is taken as logged; no velocity vector, no controls)."""
    def f(k: str) -> float:
        return _csv_float(c[k])

    inv = c["in_vehicle"] == "1"
    pos = [f("pos_x_m"), f("pos_y_m"), f("pos_z_m")]
    rot = [f("rot_pitch_deg"), f("rot_roll_deg"), f("rot_yaw_deg")]
    from gta_bridge.frames import gta_euler_to_matrix

    fwd = gta_euler_to_matrix(np.array(rot))[:, 1] if _finite(rot) else np.full(3, np.nan)
    nan3 = [math.nan] * 3
    sp = f("forward_speed_mps") if inv else f("speed_mps")
    vel = list(fwd * sp) if math.isfinite(sp) else nan3
    r: dict[str, Any] = {
        "tick": int(c["tick"]), "frame": int(c["frame"]), "game_time_ms": int(c["game_time_ms"]),
        "wall_ms": f("wall_time_ms"), "phase": c["phase"], "mode": c["mode"], "in_vehicle": inv,
        "ped_pos": pos, "ped_rot": rot, "ped_heading": rot[2] % 360.0, "ped_vel": vel,
        "cam_pos": [f("cam_x_m"), f("cam_y_m"), f("cam_z_m")],
        "cam_rot": [f("cam_pitch_deg"), f("cam_roll_deg"), f("cam_yaw_deg")], "cam_fov": f("cam_fov_deg"),
        "cam_rig": "gameplay", "controls": [False] * len(CONTROL_NAMES),
        "sync_code": -1 if c["sync_code"] == "" else int(c["sync_code"]),
    }
    if inv:
        r.update(veh_pos=pos, veh_rot=rot, veh_quat=[math.nan] * 4, veh_vel=vel, veh_speed=f("speed_mps"),
                 fwd_speed=f("forward_speed_mps"), heading=rot[2] % 360.0, steer=f("steering_deg"),
                 throttle=f("throttle"), brake=f("brake"), gear=int(c["gear"]) if c["gear"] else -1, collided=False)
    else:
        r.update(veh_pos=nan3, veh_rot=nan3, veh_quat=[math.nan] * 4, veh_vel=nan3, veh_speed=math.nan,
                 fwd_speed=math.nan, heading=math.nan, steer=math.nan, throttle=math.nan, brake=math.nan, gear=-1,
                 collided=False)
    return r


def find_recording_files(recording_dir: str | os.PathLike) -> tuple[Path, Path | None]:
    """``(behaviour.jsonl, ticks.csv or None)`` of a session folder; :class:`RecordingError` when the log is
    missing."""
    d = Path(recording_dir)
    if not d.is_dir():
        raise RecordingError(f"{d}: not a recording folder (does not exist or is not a folder)")
    jsonl = d / JSONL_NAME
    if not jsonl.is_file():
        others = sorted(p.name for p in d.glob("*.jsonl"))
        hint = f" (found {others}; the log must be named {JSONL_NAME})" if others else ""
        raise RecordingError(f"{d}: no behaviour log {JSONL_NAME}{hint}")
    csv_path = d / CSV_NAME
    return jsonl, csv_path if csv_path.is_file() else None


def read_recording(recording_dir: str | os.PathLike) -> Recording:
    """Parse a session folder (behaviour.jsonl, ticks.csv). See the module docstring for what is an error and
    what is quarantined."""
    jsonl, csv_path = find_recording_files(recording_dir)
    rejects: list[Reject] = []
    warnings: list[str] = []
    raw = jsonl.read_bytes()
    if not raw.strip():
        raise RecordingError(f"{jsonl}: empty file (no session header)")
    text = raw.decode("utf-8-sig", errors="replace")  # a byte-order mark is fine
    lines = text.split("\n")
    ends_with_newline = text.endswith("\n")
    if ends_with_newline:
        lines = lines[:-1]
    try:
        head = json.loads(lines[0])
    except json.JSONDecodeError as e:
        raise RecordingError(f"{jsonl}:1: the session header is not valid JSON ({e.msg} at column {e.colno})") from None
    header = parse_header(head, jsonl)

    rows: list[dict[str, Any]] = []
    footer: dict[str, Any] | None = None
    last_tick, last_wall = -1, -math.inf
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        is_last = lineno == len(lines)
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            why = ("truncated last line (the session was cut off while writing)" if is_last and not ends_with_newline
                   else f"malformed JSON ({e.msg} at column {e.colno})")
            rejects.append(Reject("bad_line", why, str(jsonl), lineno))
            continue
        if isinstance(d, Mapping) and d.get("record") == "footer":
            footer = dict(d)
            continue
        if not isinstance(d, Mapping) or d.get("record") != "tick":
            rejects.append(Reject("bad_line", f"unknown record {str(d)[:60]!r}", str(jsonl), lineno))
            continue
        try:
            r = parse_tick(d)
        except _BadTick as e:
            rejects.append(Reject(e.kind, e.reason, str(jsonl), lineno, e.tick,
                                  t_start_s=None if e.wall_ms is None else e.wall_ms / 1000.0))
            continue
        if r["tick"] <= last_tick or r["wall_ms"] <= last_wall:
            rejects.append(Reject("out_of_order", f"tick {r['tick']} at wall {r['wall_ms']:.3f} ms comes after tick "
                                  f"{last_tick} at {last_wall:.3f} ms (ticks and times must increase)", str(jsonl),
                                  lineno, r["tick"], t_start_s=r["wall_ms"] / 1000.0))
            continue
        r["line"] = lineno
        rows.append(r)
        last_tick, last_wall = r["tick"], r["wall_ms"]
    if footer is None:
        warnings.append(f"{jsonl}: no footer line: the session was cut off after tick {last_tick}")
    elif footer.get("ticks") is not None and footer.get("ticks") != last_tick + 1:
        warnings.append(f"{jsonl}: the footer says {footer.get('ticks')} ticks, the log holds ticks up to {last_tick}")

    if csv_path is None:
        warnings.append(f"{Path(recording_dir) / CSV_NAME}: missing; the CSV cross-check was skipped")
    else:
        csv_rows = _read_csv(csv_path, rejects, warnings)
        if csv_rows:
            kept: list[dict[str, Any]] = []
            for r in rows:
                c = csv_rows.pop((r["tick"], r["frame"]), None)
                if c is None:
                    kept.append(r)
                    continue
                why = _csv_disagreement(r, c[1])
                if why is None:
                    kept.append(r)
                else:
                    rejects.append(Reject("csv_mismatch", f"{CSV_NAME} line {c[0]} disagrees with the JSON line: "
                                          f"{why}", str(jsonl), r["line"], r["tick"], t_start_s=r["wall_ms"] / 1000.0))
            # ticks whose JSON line was lost: recover them from complete CSV rows
            recovered = 0
            good_ticks = {r["tick"] for r in kept}
            rejected_ticks = {r.tick for r in rejects if r.tick is not None}
            for (t, _frame), (lineno, c) in csv_rows.items():
                if t in good_ticks or t in rejected_ticks:
                    continue
                try:
                    r = parse_tick_from_csv(c)
                except _BadTick:
                    continue
                r["line"] = 0
                kept.append(r)
                recovered += 1
            if recovered:
                warnings.append(f"{jsonl}: {recovered} tick(s) with a lost JSON line were recovered from {CSV_NAME}")
            kept.sort(key=lambda r: r["tick"])
            # order must still hold after recovery
            rows = []
            lt, lw = -1, -math.inf
            for r in kept:
                if r["tick"] > lt and r["wall_ms"] > lw:
                    rows.append(r)
                    lt, lw = r["tick"], r["wall_ms"]
    if not rows:
        raise RecordingError(f"{jsonl}: no readable tick lines ({len(rejects)} quarantined)")
    return Recording(Path(recording_dir), jsonl, csv_path, header, _table(rows), footer, rejects, warnings)


def parse_tick_from_csv(c: Mapping[str, str]) -> dict[str, Any]:
    """A tick recovered from a ticks.csv row; raises ``_BadTick`` when the row lacks finite dynamics."""
    try:
        r = _recover_from_csv(c)
    except (ValueError, KeyError) as e:
        raise _BadTick("bad_csv_row", str(e)) from None
    need = list(r["cam_pos"]) + list(r["cam_rot"]) + list(r["ped_pos"]) + [r["wall_ms"]]
    if r["in_vehicle"]:
        need += [r["fwd_speed"], r["steer"]]
    if not _finite(need):
        raise _BadTick("nan_dynamics", "row has non-finite dynamics")
    return r


# --------------------------------------------------------------------------------------------------------
# writing (the simulator writes exactly what the mod writes)


def _short32(x: float) -> str:
    s = np.format_float_positional(np.float32(x), unique=True, trim="-")
    return s


def tick_csv_row(d: Mapping[str, Any]) -> list[str]:
    """The ticks.csv cells of a tick object (the collector's summary; same rules as the mod's TickCsv)."""
    veh = d.get("vehicle")
    ply = d["player"]
    inv = veh is not None and ply["in_vehicle"]
    src = veh if inv else ply
    pos, rot = src["position_m"], src["rotation_deg"]
    cam = d["camera"]

    def num(v: Any) -> str:
        return "" if v is None else _short32(v)

    return [
        str(d["tick"]), str(d["frame"]), str(d["game_time_ms"]), repr(float(d["wall_time_ms"])), d["phase"], d["mode"],
        "1" if inv else "0", *(num(v) for v in pos), *(num(v) for v in rot), num(src["speed_mps"]),
        num(veh["forward_speed_mps"]) if inv else "", num(veh["steering_deg"]) if inv else "",
        num(veh["throttle"]) if inv else "", num(veh["brake"]) if inv else "", str(veh["gear"]) if inv else "",
        *(num(v) for v in cam["position_m"]), *(num(v) for v in cam["rotation_deg"]), num(cam["fov_deg"]),
        "" if d["sync_code"] is None else str(d["sync_code"]), str(len(d["events"])),
    ]


def dumps_line(obj: Any) -> str:
    """One compact JSON line (no NaN: non-finite floats must already be None)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def write_recording(directory: str | os.PathLike, header: Mapping[str, Any], ticks: Iterable[Mapping[str, Any]],
                    footer: Mapping[str, Any] | None) -> Path:
    """Write behaviour.jsonl and ticks.csv into ``directory`` (created), exactly as the mod does."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    with open(d / JSONL_NAME, "w", encoding="utf-8", newline="\n") as fj:
        fj.write(dumps_line(header) + "\n")
        for t in ticks:
            fj.write(dumps_line(t) + "\n")
            w.writerow(tick_csv_row(t))
        if footer is not None:
            fj.write(dumps_line(footer) + "\n")
    (d / CSV_NAME).write_text(buf.getvalue(), encoding="utf-8", newline="")
    return d


def f32(x: float) -> float | None:
    """A float32 game value as the mod writes it: rounded to float32, None when not finite."""
    v = float(np.float32(x))
    return v if math.isfinite(v) else None
