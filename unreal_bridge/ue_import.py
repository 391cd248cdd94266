"""Import recordings made inside Unreal (MP4 + CSV per recording) into playmill episodes (source ``unreal_export``).

    import_unreal(src_dir, episodes_dir, config) -> ImportResult        (``playmill import unreal DIR``)
    playmill import unreal SRC_DIR [--out DIR] [--set imports.unreal.fps=25]

A recording is ``<name>.mp4`` + ``<name>.csv`` (+ optional ``<name>.json``) anywhere under ``src_dir``; the CSV has
one row per video frame, written by an in-engine recorder (columns: ``unreal_bridge/UE_EXPORT.md`` and
:data:`REQUIRED_COLUMNS`). Per frame the importer derives, in float64:

* ``t``: ``time_s`` minus the first row's (must increase strictly);
* keys: the ``keys`` cell (UE key names, ``|``-separated) as the action space's multi-hot vector;
* pose: ``x_cm, y_cm, z_cm`` and the quaternion of the rotator ``(pitch_deg, yaw_deg, roll_deg)`` (Unreal's
  ``FRotator::Quaternion``); the pitch is normalised to (-180, 180] and must lie in [-90, 90];
* mouse: ``d_pitch`` = pitch change, ``d_yaw`` = yaw change wrapped to (-180, 180] (the yaw is unwrapped, so a
  turn through +-180 is a small delta), since the previous row (row 0: 0); raw ``mouse_dx/mouse_dy`` when given;
* velocity ``(p_i - p_{i-1}) / (t_i - t_{i-1})`` cm/s (row 0 takes row 1's), signed forward ground speed along the
  yaw; ``collision`` from the optional column (else 0).

Every problem is reported with the file, the CSV line (the header is line 1) and the column; a recording with any
problem is not imported: it is quarantined, with its reason, in a JSON-lines rejects file
(``<episodes_dir>/../rejects/unreal_export-<src_dir name>.jsonl`` unless ``config.rejects_path``), and the other
recordings still import. Sources are never modified. The video is re-encoded (H.264, yuv420p, constant frame rate)
at the output size; episodes are written atomically and a rerun skips the ones already there.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from pydantic import model_validator

from capture.actions import ActionSpace, FrameAction
from capture.atomic import write_jsonl_atomic
from capture.episode import EpisodeWriter, META_FILE, episode_id
from capture.errors import InputError
from capture.imports import ImportResult, rejects_path as quarantine_path
from capture.names import slug
from capture.rotations import rotator_to_quat, wrap_deg
from capture.settings import Field, Invalid, settings
from capture.video import DEFAULT_CRF, DEFAULT_PRESET, X264Preset, VideoError, iter_frames, probe_video
from capture.world import Observation

SOURCE = "unreal_export"
SOURCE_FRAME = "unreal: left-handed, Z up, X forward, Y right, cm; rotators (pitch, yaw, roll) in degrees (in-engine export)"
#: Columns every CSV must have (any order; extra columns are ignored).
REQUIRED_COLUMNS: tuple[str, ...] = ("frame", "time_s", "keys", "x_cm", "y_cm", "z_cm", "pitch_deg", "yaw_deg",
                                     "roll_deg")
#: Columns used when present: raw mouse counts since the previous frame (cells may be empty), a 0/1 blocked flag.
OPTIONAL_COLUMNS: tuple[str, ...] = ("mouse_dx", "mouse_dy", "collision")
VIDEO_SUFFIX = ".mp4"
#: Unreal key names (``FKey::GetFName``, case-insensitive) and short names -> action-space key names.
UE_KEYS: dict[str, str] = {
    "w": "w", "a": "a", "s": "s", "d": "d",
    "spacebar": "space", "space": "space",
    "leftshift": "shift", "rightshift": "shift", "shift": "shift",
    "leftcontrol": "ctrl", "rightcontrol": "ctrl", "ctrl": "ctrl", "control": "ctrl",
    "leftmousebutton": "lmb", "lmb": "lmb", "rightmousebutton": "rmb", "rmb": "rmb",
}
_KEY_SPLIT_RE = re.compile(r"[|+\s]+")
_MAX_REPORTED = 20


# ------------------------------------------------------------------------------------------------ errors and results


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recording: the file, the CSV line (1 = header; None: the whole file), the column."""

    file: str
    message: str
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        return f"{where}" + (f" column {self.column!r}" if self.column else "") + f": {self.message}"


class RecordingError(InputError):
    """A recording that cannot be imported; ``problems`` lists each problem with file, line and column."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:_MAX_REPORTED])
        more = f"\n  ... and {len(self.problems) - _MAX_REPORTED} more" if len(self.problems) > _MAX_REPORTED else ""
        super().__init__(f"{len(self.problems)} problem(s):\n{shown}{more}")


@dataclass(frozen=True)
class Recording:
    """One recording: ``name`` (path under the source folder without suffix, ``/``-separated), its files."""

    name: str
    video: Path | None
    csv: Path | None
    sidecar: Path | None = None


@dataclass(frozen=True)
class Reject:
    """A quarantined recording and why (the first problems, each with file, line and column)."""

    recording: str
    reason: str
    problems: tuple[Problem, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"source": SOURCE, "recording": self.recording, "reason": self.reason,
                "problems": [{k: v for k, v in asdict(p).items() if v is not None} for p in self.problems[:_MAX_REPORTED]]}


@settings
class UEImportConfig:
    """Options of :func:`import_unreal` (``imports.unreal`` in pipeline.yaml): the episodes' frame rate and size,
    the scene written to meta.json (null: the sidecar's ``level``, else the recording's name), where rejects go
    (null: see the module docstring), the recorded keys (every key the CSVs use must be in it) and the H.264
    encoder."""

    fps: float | None = Field(None, gt=0, le=240, description="the episodes' frame rate (null: the video's)")
    width: int | None = Field(None, ge=2, multiple_of=2, description="output width, px (null: the video's, rounded down to even)")
    height: int | None = Field(None, ge=2, multiple_of=2, description="output height, px (null: the video's)")
    scene: str | None = Field(None, min_length=1, description="meta.json scene (null: the sidecar's level or the recording's name)")
    rejects_path: str | None = Field(None, min_length=1, description="rejects file (null: <episodes>/../rejects/unreal_export-<src>.jsonl)")
    action_space: ActionSpace = Field(default_factory=ActionSpace, description="the recorded keys")
    crf: int = Field(DEFAULT_CRF, ge=0, le=51, description="x264 quality of the episodes")
    preset: X264Preset = Field(DEFAULT_PRESET, description="x264 preset of the episodes")
    threads: int = Field(1, ge=0, description="encoder threads (0: ffmpeg's choice)")

    @model_validator(mode="after")
    def _size(self) -> "UEImportConfig":
        if (self.width is None) != (self.height is None):
            raise Invalid("width", self.width, "width and height together (or neither)")
        return self


# ------------------------------------------------------------------------------------------------ finding recordings


def find_recordings(src_dir: str | os.PathLike) -> list[Recording]:
    """Every ``<name>.mp4`` / ``<name>.csv`` pair under ``src_dir`` (recursively, hidden folders skipped), sorted by
    name; an MP4 without a CSV or a CSV without an MP4 is listed with the other file missing (``None``)."""
    root = Path(src_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"recordings folder {root} does not exist")
    found: dict[str, dict[str, Path]] = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        suffix = p.suffix.lower()
        if suffix in (VIDEO_SUFFIX, ".csv", ".json"):
            found.setdefault(rel.with_suffix("").as_posix(), {})[suffix] = p
    out = []
    for name in sorted(found):
        files = found[name]
        if VIDEO_SUFFIX in files or ".csv" in files:
            out.append(Recording(name, files.get(VIDEO_SUFFIX), files.get(".csv"), files.get(".json")))
    return out


# ------------------------------------------------------------------------------------------------ the CSV


@dataclass
class ExportTable:
    """A validated export CSV, one entry per video frame (float64 unless noted).

    ``t_s`` seconds from the first row; ``keys`` uint8 [N, K] multi-hot; ``pos_cm`` [N, 3]; ``pitch_deg``
    normalised, ``yaw_deg`` unwrapped, ``roll_deg`` normalised; ``mouse_dx``/``mouse_dy`` [N] (NaN where empty) or
    None; ``collision`` bool [N]."""

    t_s: np.ndarray
    keys: np.ndarray
    pos_cm: np.ndarray
    pitch_deg: np.ndarray
    yaw_deg: np.ndarray
    roll_deg: np.ndarray
    mouse_dx: np.ndarray | None
    mouse_dy: np.ndarray | None
    collision: np.ndarray

    def __len__(self) -> int:
        return len(self.t_s)


def _number(cell: str, allow_empty: bool = False) -> float | None:
    s = cell.strip()
    if not s:
        if allow_empty:
            return math.nan
        return None
    try:
        return float(s)
    except ValueError:
        return None


def read_export_csv(path: str | os.PathLike, action_space: ActionSpace) -> ExportTable:
    """Read and validate an export CSV; :class:`RecordingError` listing every problem (file, line, column)."""
    path = Path(path)
    f = str(path)
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise RecordingError([Problem(f, f"cannot read the CSV: {e}")]) from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or not any(c.strip() for c in rows[0]):
        raise RecordingError([Problem(f, "the CSV is empty (expected a header line)", 1)])
    header = [c.strip() for c in rows[0]]
    dups = sorted({c for c in header if header.count(c) > 1})
    if dups:
        problems.append(Problem(f, f"duplicate column(s) {dups}", 1))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    for c in missing:
        problems.append(Problem(f, "missing column (required: " + ", ".join(REQUIRED_COLUMNS) + ")", 1, c))
    if problems:
        raise RecordingError(problems)
    col = {c: header.index(c) for c in header}
    data = [(i + 2, r) for i, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    if not data:
        raise RecordingError([Problem(f, "the CSV has a header but no rows", 2)])
    n = len(data)
    num_cols = ["frame", "time_s", "x_cm", "y_cm", "z_cm", "pitch_deg", "yaw_deg", "roll_deg"]
    opt = [c for c in OPTIONAL_COLUMNS if c in col]
    values = {c: np.full(n, np.nan) for c in num_cols + opt}
    keys = np.zeros((n, len(action_space)), dtype=np.uint8)
    for k, (line, r) in enumerate(data):
        if len(r) != len(header):
            problems.append(Problem(f, f"has {len(r)} cells, the header has {len(header)}", line))
            continue
        for c in num_cols + opt:
            v = _number(r[col[c]], allow_empty=c in ("mouse_dx", "mouse_dy"))
            if v is None:
                problems.append(Problem(f, f"{r[col[c]]!r} is not a number", line, c))
            elif c not in ("mouse_dx", "mouse_dy") and not math.isfinite(v):
                problems.append(Problem(f, f"{r[col[c]].strip()!r} is not finite (NaN or infinite)", line, c))
            elif c in ("mouse_dx", "mouse_dy") and math.isinf(v):
                problems.append(Problem(f, f"{r[col[c]].strip()!r} is infinite", line, c))
            else:
                values[c][k] = v
        for name in (s for s in _KEY_SPLIT_RE.split(r[col["keys"]].strip()) if s):
            key = UE_KEYS.get(name.lower(), name.lower())
            if key not in action_space.keys:
                problems.append(Problem(f, f"unknown key {name!r}; use Unreal key names (W, A, S, D, SpaceBar, LeftShift, "
                                           f"LeftControl, LeftMouseButton, RightMouseButton) of the action space "
                                           f"{list(action_space.keys)}, separated by '|'", line, "keys"))
            else:
                keys[k, action_space.index(key)] = 1
    lines = np.array([ln for ln, _ in data])
    fr = values["frame"]
    if np.all(np.isfinite(fr)):
        bad = np.nonzero(fr != fr[0] + np.arange(n))[0]
        if len(bad):
            problems.append(Problem(f, f"frame numbers must increase by 1 per row (one row per video frame); expected "
                                       f"{fr[0] + bad[0]:g}, got {fr[bad[0]]:g}", int(lines[bad[0]]), "frame"))
    t = values["time_s"]
    dt = np.diff(t)
    bad = np.nonzero(np.isfinite(dt) & (dt <= 0))[0]
    for b in bad[:_MAX_REPORTED]:
        problems.append(Problem(f, f"time must increase: {float(t[b + 1])!r} s follows {float(t[b])!r} s (not monotonic)",
                                int(lines[b + 1]), "time_s"))
    pitch = np.array([wrap_deg(p) if math.isfinite(p) else p for p in values["pitch_deg"]])
    bad = np.nonzero(np.isfinite(pitch) & (np.abs(pitch) > 90.0 + 1e-9))[0]
    for b in bad[:_MAX_REPORTED]:
        problems.append(Problem(f, f"pitch {float(values['pitch_deg'][b])!r} deg is outside [-90, 90] (after normalising to "
                                   "(-180, 180])", int(lines[b]), "pitch_deg"))
    if "collision" in values:
        c = values["collision"]
        bad = np.nonzero(np.isfinite(c) & (c != 0) & (c != 1))[0]
        for b in bad[:_MAX_REPORTED]:
            problems.append(Problem(f, f"collision must be 0 or 1, got {float(c[b])!r}", int(lines[b]), "collision"))
    if problems:
        raise RecordingError(problems)
    yaw = values["yaw_deg"]
    d_yaw = np.array([wrap_deg(b - a) for a, b in zip(yaw[:-1], yaw[1:])])
    yaw_u = np.r_[yaw[0], yaw[0] + np.cumsum(d_yaw)]
    return ExportTable(
        t_s=t - t[0], keys=keys, pos_cm=np.stack([values["x_cm"], values["y_cm"], values["z_cm"]], axis=1),
        pitch_deg=pitch, yaw_deg=yaw_u, roll_deg=np.array([wrap_deg(r) for r in values["roll_deg"]]),
        mouse_dx=values.get("mouse_dx"), mouse_dy=values.get("mouse_dy"),
        collision=(values["collision"] == 1) if "collision" in values else np.zeros(n, dtype=bool),
    )


def velocities(pos_cm: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Backward-difference velocities (cm/s, [N, 3]); row 0 takes row 1's (zeros for a single row)."""
    v = np.zeros_like(pos_cm)
    if len(pos_cm) > 1:
        v[1:] = np.diff(pos_cm, axis=0) / np.diff(t_s)[:, None]
        v[0] = v[1]
    return v


def frame_actions(table: ExportTable, action_space: ActionSpace) -> list[FrameAction]:
    """Row ``i``'s action: its keys, the rotator change since row ``i-1`` (row 0: none), raw mouse counts."""
    d_pitch = np.r_[0.0, np.diff(table.pitch_deg)]
    d_yaw = np.r_[0.0, np.diff(table.yaw_deg)]
    out = []
    for i in range(len(table)):
        mdx = None if table.mouse_dx is None or math.isnan(table.mouse_dx[i]) else float(table.mouse_dx[i])
        mdy = None if table.mouse_dy is None or math.isnan(table.mouse_dy[i]) else float(table.mouse_dy[i])
        out.append(FrameAction(action_space.from_multihot(table.keys[i]), float(d_pitch[i]), float(d_yaw[i]), mdx, mdy))
    return out


def observations(table: ExportTable, frames: Iterable[np.ndarray]) -> Iterable[Observation]:
    """The per-frame observations (pose, velocity, forward speed, collision) joined with the decoded frames."""
    vel = velocities(table.pos_cm, table.t_s)
    for i, frame in enumerate(frames):
        if i >= len(table):
            raise RecordingError([Problem("<video>", f"the video has more than {len(table)} frames")])
        y = math.radians(table.yaw_deg[i])
        yield Observation(
            frame=frame, t_s=float(table.t_s[i]), pos_cm=table.pos_cm[i].copy(),
            quat_wxyz=rotator_to_quat(table.pitch_deg[i], table.yaw_deg[i], table.roll_deg[i]),
            pitch_deg=float(table.pitch_deg[i]), yaw_deg=float(table.yaw_deg[i]), vel_cm_s=vel[i].copy(),
            speed_cm_s=float(vel[i, 0] * math.cos(y) + vel[i, 1] * math.sin(y)), collision=bool(table.collision[i]),
        )


# ------------------------------------------------------------------------------------------------ one recording


def _sidecar(rec: Recording) -> dict[str, Any]:
    if rec.sidecar is None:
        return {}
    f = str(rec.sidecar)
    try:
        d = json.loads(rec.sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordingError([Problem(f, f"unreadable JSON sidecar: {e}")]) from None
    problems = []
    if not isinstance(d, dict):
        raise RecordingError([Problem(f, "the sidecar must be a JSON object")])
    if "level" in d and (not isinstance(d["level"], str) or not d["level"].strip()):
        problems.append(Problem(f, f"'level' must be a non-empty string, got {d['level']!r}", column="level"))
    if "config" in d and not isinstance(d["config"], dict):
        problems.append(Problem(f, "'config' must be an object", column="config"))
    if problems:
        raise RecordingError(problems)
    return d


def recording_seed(name: str) -> int:
    """A stable 31-bit number for a recording name (sha256): the episode's ``seed`` field and id part."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "little") & 0x7FFFFFFF


def recording_episode_id(name: str) -> str:
    """``unreal_export-<name>-s<seed>-i00000`` (see :func:`capture.episode.episode_id`)."""
    return episode_id(SOURCE, name, recording_seed(name), 0)


def import_recording(rec: Recording, episodes_dir: Path, cfg: UEImportConfig) -> Path | None:
    """Import one recording; the episode folder, or None when it already exists. Raises :class:`RecordingError`."""
    if rec.csv is None or rec.video is None:
        have, lack = (rec.video, "CSV") if rec.csv is None else (rec.csv, "MP4 video")
        raise RecordingError([Problem(str(have), f"no matching {lack} ({rec.name}{'.csv' if lack == 'CSV' else VIDEO_SUFFIX})")])
    eid = recording_episode_id(rec.name)
    target = episodes_dir / eid
    if (target / META_FILE).is_file():
        return None
    side = _sidecar(rec)
    table = read_export_csv(rec.csv, cfg.action_space)
    vf = str(rec.video)
    try:
        info = probe_video(rec.video)
    except VideoError as e:
        raise RecordingError([Problem(vf, str(e))]) from None
    if info.frame_count != len(table):
        raise RecordingError([Problem(vf, f"the video has {info.frame_count} frames but {rec.csv.name} has "
                                          f"{len(table)} rows (one row per frame is required)")])
    width = cfg.width if cfg.width is not None else info.width - info.width % 2
    height = cfg.height if cfg.height is not None else info.height - info.height % 2
    if width < 2 or height < 2:
        raise RecordingError([Problem(vf, f"the video is {info.width}x{info.height}: too small")])
    fps = float(cfg.fps) if cfg.fps is not None else float(info.fps)
    if not (math.isfinite(fps) and fps > 0):
        raise RecordingError([Problem(vf, f"the video has no usable frame rate ({info.fps!r}); set fps")])
    scene = cfg.scene or side.get("level") or rec.name
    config = {"recording": rec.name, "video_fps": info.fps, "video_size": [info.width, info.height],
              "csv_rows": len(table), **(side.get("config") or {})}
    acts = frame_actions(table, cfg.action_space)
    frames = (f for _, f in iter_frames(rec.video, width, height))
    try:
        with EpisodeWriter(episodes_dir, eid, source=SOURCE, scene=scene, seed=recording_seed(rec.name), fps=fps,
                           width=width, height=height, action_space=cfg.action_space, source_frame=SOURCE_FRAME,
                           config=config, crf=cfg.crf, preset=cfg.preset, threads=cfg.threads) as writer:
            for obs, act in zip(observations(table, frames), acts):
                writer.append(obs, act)
            if writer.frame_count != len(table):
                raise RecordingError([Problem(vf, f"only {writer.frame_count} of {len(table)} frames could be decoded")])
            return writer.commit()
    except VideoError as e:
        raise RecordingError([Problem(vf, str(e))]) from None
    except FileExistsError:
        return None


def import_unreal(src_dir: str | os.PathLike, episodes_dir: str | os.PathLike,
                  config: UEImportConfig | None = None) -> ImportResult:
    """Import every recording under ``src_dir`` into ``episodes_dir`` (created if missing); see the module docstring.

    Bad recordings are quarantined (``ImportResult.failed``, with their problems in the rejects file) and the others still
    import; an existing episode is skipped; a folder without recordings is reported in ``ImportResult.nothing``.
    Raises only for a missing ``src_dir`` or a bad ``config``."""
    cfg = config or UEImportConfig()
    src = Path(src_dir)
    recs = find_recordings(src)
    out_dir = Path(episodes_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ImportResult()
    rejects: list[Reject] = []
    for rec in recs:
        try:
            path = import_recording(rec, out_dir, cfg)
        except RecordingError as e:
            first = e.problems[0] if e.problems else Problem(rec.name, str(e))
            rejects.append(Reject(rec.name, str(first), tuple(e.problems)))
            continue
        except (ValueError, OSError) as e:  # e.g. the episode writer refusing a frame: quarantine, go on
            rejects.append(Reject(rec.name, f"{type(e).__name__}: {e}"))
            continue
        if path is None:
            result.skipped.append(recording_episode_id(rec.name))
        else:
            result.add_written(path)
    rejects_path = Path(cfg.rejects_path) if cfg.rejects_path else (
        quarantine_path(out_dir, SOURCE, slug(src.resolve().name, fallback="recordings")))
    # the file always shows the latest run: rewritten, or removed when nothing was rejected
    if rejects:
        result.rejects_path = write_jsonl_atomic(rejects_path, (r.to_dict() for r in rejects))
    elif rejects_path.is_file():
        rejects_path.unlink()
    result.failed = [(r.recording, r.reason) for r in rejects]
    if not recs:
        result.nothing = (f"no recordings (<name>{VIDEO_SUFFIX} + <name>.csv) under {src}; see "
                          "unreal_bridge/UE_EXPORT.md for what the in-engine recorder writes")
    return result
