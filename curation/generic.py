"""Generic footage: videos plus an actions log in any CSV layout, described by a column mapping (version 2).

``playmill import generic VIDEO CSV --mapping map.yaml`` (or :func:`import_generic`): the mapping
(:class:`GenericMapping`, the ``imports.generic`` section) says what each column means; every key is in the config
schema (``playmill config schema``) and the README has worked examples. What it can say:

Episodes and videos
    One video and one CSV; or one CSV holding many episodes (``episode``: the column naming each row's episode,
    matched to the video whose file name without extension is that value) and a glob of videos; or several
    CSVs and videos paired by file name. Each episode is ``generic-<name>-s<seed>-i<index>`` where ``name`` is the
    episode's value (or the video's file name), or ``scene`` when one video is imported.

Alignment of rows and frames
    Without a ``time`` column row ``i + row_offset`` describes video frame ``i`` (``row_offset > 0``: the log
    starts before the video; ``< 0``: after it). With ``time`` (seconds times ``time_scale_s``) rows are events at
    ``t_video = t_row - time_offset_s`` and go through the capture timeline (:class:`capture.timeline.InputTimeline`):
    mouse deltas are summed into the frame whose interval ``(t[i-1], t[i]]`` holds them, a key held in rows
    ``r..m`` is held from ``t_r`` to ``t_m``, and states (poses, absolute angles, speed) are interpolated at the
    frame times. Only frames that rows describe are imported.

Keys (the action space ``action_keys``)
    ``keys``: one column per key (``{w: fwd, space: jump}``; a list ``[w, a, s, d]`` means columns of the same
    names). A key column is 0/1 (or true/false, yes/no, pressed/released); any other value is an error naming
    the cell, unless ``key_threshold`` says analog values above it are held. ``keys_column``: one column listing
    the held keys, ``w+a`` (``keys_separator``) or JSON ``["w", "a"]``. ``keys_bitmask`` with ``bits`` (key per
    bit, least significant first). ``key_names`` renames a log's key names to action keys (``{forward: w}``; null
    ignores a name). A name that is neither is an error that lists them.

Look (degrees, look up +, turn right +: DESIGN.md section 2)
    ``d_pitch``/``d_yaw``: per-row deltas in ``mouse_units`` (``deg``, ``rad``, or ``counts`` times
    ``deg_per_count``), times ``mouse_scale``. Else absolute ``pitch``/``yaw`` (``angle_units``) turned into
    per-frame deltas, wrapped into (-180, 180] so a turn through +-180 is a small step; else the orientation of
    the quaternion columns; else raw ``mouse_dx``/``mouse_dy`` counts with ``deg_per_count`` (screen y grows
    downwards: ``d_pitch = -dy * s``). ``yaw_positive: left`` (counter-clockwise yaw, as in most maths and many
    engines) and ``pitch_positive: down`` flip a log's signs, for deltas and absolute angles alike. Raw
    ``mouse_dx``/``mouse_dy`` are kept in the episode.

Pose
    ``x``/``y``/``z`` times ``position_scale_cm``; quaternion ``qw..qz`` (camera-to-world) or absolute angles;
    ``world`` (:class:`capture.frames.WorldFrame`) when they are not in Unreal's frame; ``speed`` (cm/s, else
    from the positions) and ``collision``.

Video
    Re-encoded with x264 ``crf``/``preset``; ``mirror`` flips it left-right; ``fov_deg`` (horizontal field of
    view) is recorded in meta.json for the label checks.

Checks
    :func:`check_generic` (``--check``) runs the label diagnosis (:mod:`curation.import_check`) on what would be
    imported and names the mapping change that fixes each convention error it finds; ``check: warn`` runs it
    during the import too, ``refuse`` quarantines the episodes it faults. Nothing is written on failure: a bad
    CSV or video is quarantined with its reason (``<episodes_dir>/../rejects/generic-<csv>.jsonl``), the others
    import, and an --out folder the import created stays away when nothing was written.
"""

from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping, Sequence

import numpy as np
from pydantic import BeforeValidator, model_validator

from capture.actions import DEFAULT_KEYS, ActionSpace
from capture.frames import WorldFrame
from capture.imports import ImportResult
from capture.settings import Field, InputError, Invalid, SafeName, settings
from capture.video import X264Preset
from curation.importers import ActionKeys, CheckMode, Track, velocity_and_speed

__all__ = ["GenericMapping", "GenericEpisode", "EpisodeArrays", "generic_arrays", "plan_generic", "import_generic",
           "check_generic", "mapping_fixes"]

_TRUE = {"1", "1.0", "true", "yes", "y", "x", "t", "on", "pressed", "down", "held"}
_FALSE = {"0", "0.0", "false", "no", "n", "f", "off", "released", "up", "", "nan", "none"}
_COLUMN = Annotated[str, Field(min_length=1)]


def _key_columns(v: Any) -> Any:
    """``keys: [w, a]`` means the columns named like the keys."""
    if isinstance(v, (list, tuple)):
        return {str(k): str(k) for k in v}
    return v


# --------------------------------------------------------------------------------------------------------
# the mapping


@settings
class GenericMapping:
    """How a generic actions CSV maps onto episodes (module doc; ``imports.generic`` or ``--mapping FILE``)."""

    # episodes and naming
    episode: str | None = Field(None, min_length=1, description="column naming each row's episode (one CSV, many episodes; matched to the video of that file name)")
    scene: SafeName | None = Field(None, max_length=64, description="episode name when one video is imported (null: the video's file name; a safe name)")
    seed: int = Field(0, ge=0, description="seed part of the episode ids")
    index: int = Field(0, ge=0, description="index part of the episode ids")
    fps: float | None = Field(None, gt=0, le=240, description="frame rate (null: the video's)")
    frame_tolerance: int = Field(0, ge=0, description="allowed difference between the rows and the video's frames")
    # alignment
    row_offset: int = Field(0, description="row i + row_offset describes video frame i (> 0: the log starts earlier than the video)")
    time: str | None = Field(None, min_length=1, description="column of row times: rows are aligned to frames by time (the capture timeline)")
    time_scale_s: float = Field(1.0, gt=0, description="seconds per unit of the time column (0.001 for milliseconds)")
    time_offset_s: float = Field(0.0, description="the log time of video frame 0, seconds")
    # keys
    keys: Annotated[dict[str, _COLUMN], BeforeValidator(_key_columns)] = Field(default_factory=dict, description="action key -> its 0/1 column (a list: columns named like the keys)")
    key_threshold: float | None = Field(None, description="analog key columns: held when the value is above this (null: columns must be 0/1)")
    keys_column: str | None = Field(None, min_length=1, description="one column listing the held keys: w+a or JSON [\"w\", \"a\"]")
    keys_separator: str = Field("+", min_length=1, description="separator of keys_column")
    keys_bitmask: str | None = Field(None, min_length=1, description="one integer column whose bits are keys (see bits)")
    bits: tuple[str, ...] = Field((), description="the key (or key name) of each bit of keys_bitmask, least significant first")
    key_names: dict[str, str | None] = Field(default_factory=dict, description="log key name -> action key (null: ignore it)")
    # look
    d_pitch: str | None = Field(None, min_length=1, description="per-row pitch delta column (look up +, unless pitch_positive: down)")
    d_yaw: str | None = Field(None, min_length=1, description="per-row yaw delta column (turn right +, unless yaw_positive: left)")
    mouse_units: Literal["deg", "rad", "counts"] = Field("deg", description="units of d_pitch/d_yaw: deg, rad or counts (times deg_per_count)")
    deg_per_count: float | None = Field(None, gt=0, description="degrees per mouse count (the game's sensitivity), for counts")
    mouse_scale: float = Field(1.0, gt=0, description="factor on the look deltas after the units (a sensitivity correction)")
    yaw_positive: Literal["right", "left"] = Field("right", description="which way a positive yaw (delta or absolute) turns: right (clockwise seen from above) or left")
    pitch_positive: Literal["up", "down"] = Field("up", description="which way a positive pitch (delta or absolute) looks")
    mouse_dx: str | None = Field(None, min_length=1, description="raw mouse x counts column (right +), kept; the look source with deg_per_count when nothing else is")
    mouse_dy: str | None = Field(None, min_length=1, description="raw mouse y counts column (down +)")
    pitch: str | None = Field(None, min_length=1, description="absolute pitch column (angle_units)")
    yaw: str | None = Field(None, min_length=1, description="absolute yaw column (angle_units); deltas come from it, wrapped, when d_yaw is not mapped")
    roll: str | None = Field(None, min_length=1, description="absolute roll column (angle_units)")
    angle_units: Literal["deg", "rad"] = Field("deg", description="units of the absolute pitch/yaw/roll columns")
    # pose
    x: str | None = Field(None, min_length=1, description="position x column")
    y: str | None = Field(None, min_length=1, description="position y column")
    z: str | None = Field(None, min_length=1, description="position z column")
    position_scale_cm: float = Field(1.0, gt=0, description="cm per position unit (100 for metres)")
    qw: str | None = Field(None, min_length=1, description="camera-to-world quaternion w column")
    qx: str | None = Field(None, min_length=1, description="quaternion x column")
    qy: str | None = Field(None, min_length=1, description="quaternion y column")
    qz: str | None = Field(None, min_length=1, description="quaternion z column")
    world: WorldFrame | None = Field(None, description="the world frame of the positions and quaternions (null: Unreal's: x forward, y right, z up, cm)")
    speed: str | None = Field(None, min_length=1, description="signed forward ground speed column, cm/s (null: from the positions)")
    collision: str | None = Field(None, min_length=1, description="0/1 blocked column")
    # video and output
    action_keys: ActionKeys | None = Field(None, description="the action space (null: playmill's default keys)")
    mirror: bool = Field(False, description="flip the video left-right (a mirrored recording)")
    fov_deg: float | None = Field(None, gt=1, lt=179, description="horizontal field of view of the footage, degrees (meta.json; the label checks use it)")
    crf: int = Field(18, ge=0, le=51, description="x264 quality of the re-encoded video")
    preset: X264Preset = Field("veryfast", description="x264 preset of the re-encoded video")
    check: CheckMode = Field("warn", description="label diagnosis during the import: off, warn (print the fix) or refuse (quarantine faulty episodes)")

    @model_validator(mode="after")
    def _check(self) -> "GenericMapping":
        space = self.space
        for k in self.keys:
            if k not in space.keys:
                raise Invalid(f"keys.{k}", self.keys[k], f"a column for a key of the action space ({', '.join(space.keys)})")
        for name, target in self.key_names.items():
            if target is not None and target not in space.keys:
                raise Invalid(f"key_names.{name}", target, f"a key of the action space ({', '.join(space.keys)}) or null")
        quat = [c for c in (self.qw, self.qx, self.qy, self.qz) if c is not None]
        if quat and len(quat) != 4:
            raise Invalid("qw", self.qw, "all four of qw, qx, qy, qz, or none")
        if self.keys_bitmask is not None and not self.bits:
            raise Invalid("bits", [], "the key of each bit of keys_bitmask, least significant first")
        if self.mouse_units == "counts" and self.deg_per_count is None:
            raise Invalid("deg_per_count", None, "degrees per count (the game's mouse sensitivity) with mouse_units: counts")
        if self.time is not None and self.row_offset:
            raise Invalid("row_offset", self.row_offset, "0 with a time column (use time_offset_s)")
        return self

    @property
    def space(self) -> ActionSpace:
        return ActionSpace(tuple(self.action_keys) if self.action_keys else DEFAULT_KEYS)


# --------------------------------------------------------------------------------------------------------
# reading the columns (per row)


def _fail(where: str, msg: str) -> InputError:
    return InputError(f"{where}: {msg}")


def _numeric(df, name: str, what: str, where: str, allow_empty: bool = False) -> np.ndarray:
    import pandas as pd

    if name not in df.columns:
        raise _fail(where, f"column {name!r} (mapped to {what}) is not in the CSV; columns: {list(df.columns)}")
    v = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v)
    if bad.any() and not allow_empty:
        i = int(np.flatnonzero(bad)[0])
        raise _fail(where, f"column {name!r} ({what}) has an empty or non-numeric cell at row {i}: {df[name].iloc[i]!r}")
    return v


def _binary(df, name: str, key: str, threshold: float | None, where: str) -> np.ndarray:
    """bool[R] of a key column: 0/1, true/false, ... or (with ``threshold``) analog values above it."""
    import pandas as pd

    if name not in df.columns:
        raise _fail(where, f"column {name!r} (key {key!r}) is not in the CSV; columns: {list(df.columns)}")
    col = df[name]
    num = pd.to_numeric(col, errors="coerce")
    if num.notna().all() or (pd.api.types.is_numeric_dtype(col)):
        v = num.fillna(0.0).to_numpy(dtype=np.float64)
        if threshold is not None:
            return v > threshold
        bad = ~np.isin(v, (0.0, 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _fail(where, f"column {name!r} (key {key!r}) is not binary: {float(v[i]):g} at row {i} (a key column "
                               f"holds 0/1; set key_threshold for an analog column, or map another column)")
        return v == 1.0
    text = col.fillna("").astype(str).str.strip().str.lower()
    held = text.isin(_TRUE).to_numpy()
    bad = ~(held | text.isin(_FALSE).to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _fail(where, f"column {name!r} (key {key!r}) is not binary: {col.iloc[i]!r} at row {i} (expected 0/1, "
                           "true/false, yes/no or pressed/released)")
    return held


def _name_to_key(name: str, mapping: GenericMapping, unknown: set[str]) -> str | None:
    n = name.strip().lower()
    if not n:
        return None
    if n in mapping.key_names:
        return mapping.key_names[n]
    if name.strip() in mapping.key_names:
        return mapping.key_names[name.strip()]
    if n in mapping.space.keys:
        return n
    unknown.add(name.strip())
    return None


def _listed_keys(cell: str, sep: str) -> list[str]:
    c = cell.strip()
    if c.startswith("["):
        try:
            v = json.loads(c)
        except ValueError:
            raise ValueError(f"{cell!r} is not a JSON list") from None
        if not isinstance(v, list):
            raise ValueError(f"{cell!r} is not a JSON list")
        return [str(x) for x in v]
    return c.split(sep)


def key_matrix(df, mapping: GenericMapping, where: str) -> np.ndarray:
    """bool[R, K]: the keys held in each row, from every key source the mapping names."""
    space = mapping.space
    r = len(df)
    held = np.zeros((r, len(space)), dtype=bool)
    for k, c in mapping.keys.items():
        held[:, space.index(k)] |= _binary(df, c, k, mapping.key_threshold, where)
    unknown: set[str] = set()
    if mapping.keys_column is not None:
        if mapping.keys_column not in df.columns:
            raise _fail(where, f"keys column {mapping.keys_column!r} is not in the CSV; columns: {list(df.columns)}")
        for i, cell in enumerate(df[mapping.keys_column].fillna("").astype(str)):
            try:
                names = _listed_keys(cell, mapping.keys_separator)
            except ValueError as e:
                raise _fail(where, f"keys column {mapping.keys_column!r} row {i}: {e}") from None
            for name in names:
                k = _name_to_key(name, mapping, unknown)
                if k is not None:
                    held[i, space.index(k)] = True
    if mapping.keys_bitmask is not None:
        v = _numeric(df, mapping.keys_bitmask, "keys_bitmask", where)
        if (v < 0).any() or (v != np.round(v)).any():
            i = int(np.flatnonzero((v < 0) | (v != np.round(v)))[0])
            raise _fail(where, f"column {mapping.keys_bitmask!r} (keys_bitmask) holds {float(v[i]):g} at row {i}, not a "
                               "non-negative integer")
        bits = v.astype(np.int64)
        for b, name in enumerate(mapping.bits):
            k = _name_to_key(name, mapping, unknown)
            if k is not None:
                held[:, space.index(k)] |= ((bits >> b) & 1).astype(bool)
    if unknown:
        raise _fail(where, f"key names {sorted(unknown)} are not keys of the action space {list(space.keys)}; map them "
                           "with key_names (e.g. {forward: w}; null ignores a name) or set action_keys")
    return held


@dataclass
class RowArrays:
    """Per-row values of a log (R rows), in playmill's units and signs (module doc). ``look`` [R, 2] degrees or
    None (deltas not given per row); ``angles`` [R, 3] absolute pitch, yaw, roll degrees or None; ``quat`` [R, 4]
    Unreal-frame quaternions or None; ``raw`` [R, 2] counts or None; ``pos`` [R, 3] cm or None; ``speed``,
    ``collision`` [R] or None; ``t`` [R] video seconds or None."""

    keys: np.ndarray
    look: np.ndarray | None
    angles: np.ndarray | None
    quat: np.ndarray | None
    raw: np.ndarray | None
    pos: np.ndarray | None
    speed: np.ndarray | None
    collision: np.ndarray | None
    t: np.ndarray | None


def row_arrays(df, mapping: GenericMapping, where: str) -> RowArrays:
    """Every mapped column of ``df`` as per-row arrays (pure, apart from the table)."""
    from capture.frames import camera_to_body, world_to_unreal
    from capture.rotations import matrix_to_quat, quat_to_matrix

    m = mapping
    col = lambda name, what, empty=False: None if name is None else _numeric(df, name, what, where, empty)  # noqa: E731
    ysign = 1.0 if m.yaw_positive == "right" else -1.0
    psign = 1.0 if m.pitch_positive == "up" else -1.0
    look = None
    if m.d_pitch or m.d_yaw:
        unit = {"deg": 1.0, "rad": 180.0 / math.pi, "counts": m.deg_per_count or 1.0}[m.mouse_units] * m.mouse_scale
        look = np.zeros((len(df), 2))
        for j, (name, what, sign) in enumerate(((m.d_pitch, "d_pitch", psign), (m.d_yaw, "d_yaw", ysign))):
            v = col(name, what)
            if v is not None:
                look[:, j] = v * unit * sign
    angles = None
    if m.pitch or m.yaw or m.roll:
        unit = 1.0 if m.angle_units == "deg" else 180.0 / math.pi
        angles = np.zeros((len(df), 3))
        for j, (name, what, sign) in enumerate(((m.pitch, "pitch", psign), (m.yaw, "yaw", ysign), (m.roll, "roll", 1.0))):
            v = col(name, what)
            if v is not None:
                angles[:, j] = v * unit * sign
    quat = None
    if m.qw is not None:
        q = np.column_stack([col(c, f"q{'wxyz'[i]}") for i, c in enumerate((m.qw, m.qx, m.qy, m.qz))])
        norm = np.linalg.norm(q, axis=1)
        if (norm < 1e-9).any():
            raise _fail(where, f"quaternion columns are all zero at row {int(np.flatnonzero(norm < 1e-9)[0])}")
        q = q / norm[:, None]
        if m.world is not None:
            q = matrix_to_quat(world_to_unreal(m.world) @ quat_to_matrix(q) @ camera_to_body(m.world.camera_axes))
        quat = q
    raw = None
    if m.mouse_dx or m.mouse_dy:
        raw = np.full((len(df), 2), np.nan)
        for j, (name, what) in enumerate(((m.mouse_dx, "mouse_dx"), (m.mouse_dy, "mouse_dy"))):
            v = col(name, what, True)
            if v is not None:
                raw[:, j] = v
    pos = None
    if m.x or m.y or m.z:
        pos = np.zeros((len(df), 3))
        for j, (name, what) in enumerate(((m.x, "x"), (m.y, "y"), (m.z, "z"))):
            v = col(name, what)
            if v is not None:
                pos[:, j] = v
        if m.world is not None:
            pos = pos @ world_to_unreal(m.world).T
        pos = pos * m.position_scale_cm
    t = None
    if m.time is not None:
        t = col(m.time, "time") * m.time_scale_s - m.time_offset_s
        bad = np.flatnonzero(np.diff(t) < 0)
        if bad.size:
            raise _fail(where, f"column {m.time!r} (time) goes backwards at row {int(bad[0]) + 1}")
    sp = col(m.speed, "speed")
    coll = col(m.collision, "collision")
    return RowArrays(key_matrix(df, m, where), look, angles, quat, raw, pos, sp, None if coll is None else coll != 0, t)


# --------------------------------------------------------------------------------------------------------
# rows -> frames


@dataclass
class EpisodeArrays(Track):
    """The :class:`curation.importers.Track` of one episode (``keys`` bool [n, K]) and ``first``: the video frame its
    row 0 describes (frames ``first .. first + n - 1`` are imported)."""

    first: int = 0


def _rows_by_index(rows: RowArrays, n_frames: int, offset: int, tolerance: int, where: str,
                   video: str = "the video") -> tuple[int, np.ndarray]:
    """``(first frame, row of each frame)`` for row ``i + offset`` = frame ``i``."""
    r = len(rows.keys)
    if abs(r - n_frames) > tolerance + abs(offset):  # an offset leaves that many frames or rows without a partner
        raise _fail(where, f"{r} rows but {video} has {n_frames} frames (one row per frame; row_offset {offset}, "
                           f"frame_tolerance {tolerance})")
    first = max(0, -offset)
    last = min(n_frames, r - offset)  # exclusive
    if last - first < 1:
        raise _fail(where, f"no video frame has a row with row_offset {offset} ({r} rows, {n_frames} frames)")
    return first, np.arange(first, last) + offset


def _interp(t_frames: np.ndarray, t_rows: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(t_frames, t_rows, v[:, j]) for j in range(v.shape[1])], axis=1)


def generic_arrays(rows: RowArrays, mapping: GenericMapping, n_frames: int, fps: float, where: str,
                   video: str = "the video") -> EpisodeArrays:
    """Rows aligned to the video's frames (module doc) and completed: deltas from absolute angles, orientation,
    velocity and speed (pure)."""
    from capture.rotations import quat_to_rotator, rotator_to_quat, wrap_deg

    k = rows.keys.shape[1]
    if rows.t is None:
        first, idx = _rows_by_index(rows, n_frames, mapping.row_offset, mapping.frame_tolerance, where, video)
        n = len(idx)
        keys = rows.keys[idx]
        mouse = rows.look[idx] if rows.look is not None else None
        raw = rows.raw[idx] if rows.raw is not None else None
        prev = idx - 1  # the row before each frame's, for deltas of absolute values
        take = lambda a: None if a is None else a[idx]  # noqa: E731
        angles, quat, pos, speed = take(rows.angles), take(rows.quat), take(rows.pos), take(rows.speed)
        coll = take(rows.collision)
        prev_angles = None if rows.angles is None else rows.angles[np.maximum(prev, 0)]
        prev_quat = None if rows.quat is None else rows.quat[np.maximum(prev, 0)]
        has_prev = prev >= 0
    else:
        from capture.timeline import InputTimeline

        t = rows.t
        frame_t = np.arange(n_frames) / fps
        inside = np.flatnonzero((frame_t >= t[0] - 1e-9) & (frame_t <= t[-1] + 1e-9))
        if len(inside) < 1:
            raise _fail(where, f"the rows' times ({t[0]:.3f} .. {t[-1]:.3f} s of video time) cover no video frame "
                               f"(0 .. {(n_frames - 1) / fps:.3f} s); check time, time_scale_s and time_offset_s")
        first, n = int(inside[0]), len(inside)
        ft = frame_t[first:first + n]
        space = ActionSpace(tuple(f"k{j}" for j in range(k)))
        tl = InputTimeline(space)
        for j in range(k):
            d = np.diff(np.r_[0, rows.keys[:, j].astype(np.int8), 0])
            for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1):
                tl.key_down(f"k{j}", t[s] * 1000.0)
                tl.key_up(f"k{j}", t[e] * 1000.0)
        mouse = None
        if rows.look is not None or rows.raw is not None:
            for i in range(len(t)):
                lk = rows.look[i] if rows.look is not None else (0.0, 0.0)
                rw = rows.raw[i] if rows.raw is not None else (np.nan, np.nan)
                tl.mouse_move(t[i] * 1000.0, d_pitch_deg=float(lk[0]), d_yaw_deg=float(lk[1]),
                              dx=None if not np.isfinite(rw[0]) else float(rw[0]),
                              dy=None if not np.isfinite(rw[1]) else float(rw[1]))
        fi = tl.align(ft)
        keys = fi.keyboard.astype(bool)
        if rows.look is not None:
            mouse = np.column_stack([fi.d_pitch_deg, fi.d_yaw_deg])
        raw = np.column_stack([fi.mouse_dx, fi.mouse_dy]) if rows.raw is not None else None
        ft_prev = np.r_[ft[0] - 1.0 / fps, ft[:-1]]
        unwrap = lambda a: None if a is None else np.column_stack(  # noqa: E731
            [a[:, 0], np.degrees(np.unwrap(np.radians(a[:, 1]))), a[:, 2]])
        ang_u = unwrap(rows.angles)
        angles = None if ang_u is None else _interp(ft, t, ang_u)
        prev_angles = None if ang_u is None else _interp(ft_prev, t, ang_u)
        has_prev = ft_prev >= t[0] - 1e-9
        quat = prev_quat = None
        if rows.quat is not None:
            from scipy.spatial.transform import Rotation, Slerp

            uniq = np.r_[True, np.diff(t) > 0]
            sl = Slerp(t[uniq], Rotation.from_quat(rows.quat[uniq][:, [1, 2, 3, 0]]))
            to_wxyz = lambda r: r.as_quat()[:, [3, 0, 1, 2]]  # noqa: E731
            quat = to_wxyz(sl(np.clip(ft, t[0], t[-1])))
            prev_quat = to_wxyz(sl(np.clip(ft_prev, t[0], t[-1])))
        pos = None if rows.pos is None else _interp(ft, t, rows.pos)
        speed = None if rows.speed is None else np.interp(ft, t, rows.speed)
        coll = None if rows.collision is None else np.interp(ft, t, rows.collision.astype(float)) >= 0.5
    # orientation per frame, and the look deltas where no delta column gave them
    if quat is not None:
        rot = np.array([quat_to_rotator(q) for q in quat])
        pitch, yaw = rot[:, 0], rot[:, 1]
        if mouse is None:
            prot = np.array([quat_to_rotator(q) for q in prev_quat])
            mouse = np.column_stack([pitch - prot[:, 0], [wrap_deg(d) for d in yaw - prot[:, 1]]])
            mouse[~has_prev] = 0.0
    elif angles is not None:
        pitch, yaw = angles[:, 0], angles[:, 1]
        if mouse is None:
            mouse = np.column_stack([pitch - prev_angles[:, 0], [wrap_deg(d) for d in yaw - prev_angles[:, 1]]])
            mouse[~has_prev] = 0.0
        quat = rotator_to_quat(pitch, yaw, angles[:, 2])
    if mouse is None:
        mouse = np.zeros((n, 2))
        if raw is not None and mapping.deg_per_count is not None:
            s = mapping.deg_per_count * mapping.mouse_scale
            mouse = np.column_stack([-np.nan_to_num(raw[:, 1]) * s * (1.0 if mapping.pitch_positive == "up" else -1.0),
                                     np.nan_to_num(raw[:, 0]) * s * (1.0 if mapping.yaw_positive == "right" else -1.0)])
    if quat is None:
        pitch = np.cumsum(mouse[:, 0]) - mouse[0, 0]
        yaw = np.cumsum(mouse[:, 1]) - mouse[0, 1]
        quat = rotator_to_quat(pitch, yaw, 0.0)
    pos = np.zeros((n, 3)) if pos is None else pos
    vel, from_pos = velocity_and_speed(pos, yaw, fps)
    return EpisodeArrays(keys, np.asarray(mouse, float), pos, np.asarray(quat, float), np.asarray(pitch, float),
                         np.asarray(yaw, float), vel, np.asarray(from_pos if speed is None else speed, float), raw,
                         coll, first=first)


# --------------------------------------------------------------------------------------------------------
# planning: which rows and which video make each episode


@dataclass
class GenericEpisode:
    """One episode to import: its ``name`` (the id's scene part), ``video``, ``csv`` and the rows' table."""

    name: str
    video: Path
    csv: Path
    table: Any = field(repr=False)


def _expand(pattern: str | os.PathLike | Sequence[str | os.PathLike], what: str) -> list[Path]:
    items = [pattern] if isinstance(pattern, (str, os.PathLike)) else list(pattern)
    out: list[Path] = []
    for it in items:
        s = os.fspath(it)
        if glob.has_magic(s):
            found = sorted(Path(p) for p in glob.glob(s, recursive=True) if Path(p).is_file())
            if not found:
                raise InputError(f"{s}: no {what} matches this pattern")
            out += found
        elif Path(s).is_dir():
            raise InputError(f"{s}: a folder; give the {what} file or a quoted pattern such as '{s}/*'")
        elif not Path(s).is_file():
            raise InputError(f"{s}: no such {what} file")
        else:
            out.append(Path(s))
    return out


def read_log(csv: Path):
    """The CSV as a table (a byte-order mark, as spreadsheets write, is accepted); InputError naming the file."""
    import pandas as pd

    try:
        return pd.read_csv(csv, encoding="utf-8-sig")
    except Exception as e:
        raise InputError(f"{csv}: unreadable CSV: {e}") from None


def plan_generic(videos, csvs, mapping: GenericMapping) -> tuple[list[GenericEpisode], list[tuple[str, str]]]:
    """``(episodes, failures)``: the episodes the videos and CSVs make under ``mapping`` (module doc), and
    ``(item, reason)`` for each video or log part that makes none. InputError when the arguments name nothing."""
    from capture.episode import episode_id

    vids = _expand(videos, "video")
    logs = _expand(csvs, "CSV")
    by_stem: dict[str, Path] = {}
    for v in vids:
        by_stem.setdefault(v.stem, v)
    episodes: list[GenericEpisode] = []
    failed: list[tuple[str, str]] = []
    used: set[Path] = set()
    for csv in logs:
        try:
            df = read_log(csv)
        except InputError as e:  # the log is data: quarantined, the others go on
            partner = vids[0] if len(vids) == 1 and len(logs) == 1 else by_stem.get(csv.stem)
            if partner is not None:
                used.add(partner)
            failed.append((partner.name if partner is not None else csv.name, str(e)))
            continue
        if mapping.episode is not None:
            if mapping.episode not in df.columns:
                raise InputError(f"{csv}: episode column {mapping.episode!r} is not in the CSV; columns: {list(df.columns)}")
            for value, part in df.groupby(df[mapping.episode].astype(str), sort=False):
                video = by_stem.get(value)
                if video is None:
                    failed.append((f"{csv.name} episode {value}", f"no video named {value}.* among the {len(vids)} "
                                   f"video(s) given ({', '.join(sorted(by_stem)[:5])}{', ...' if len(by_stem) > 5 else ''})"))
                    continue
                used.add(video)
                episodes.append(GenericEpisode(value, video, csv, part.reset_index(drop=True)))
        else:
            video = vids[0] if len(vids) == 1 and len(logs) == 1 else by_stem.get(csv.stem)
            if video is None:
                failed.append((csv.name, f"no video named {csv.stem}.* to pair with (CSVs and videos pair by file name)"))
                continue
            used.add(video)
            name = mapping.scene if (mapping.scene and len(logs) == 1) else video.stem
            episodes.append(GenericEpisode(name, video, csv, df))
    for v in vids:
        if v not in used:
            failed.append((v.name, "no actions for this video (no CSV of that name" +
                           (f", no {mapping.episode} value {v.stem!r}" if mapping.episode else "") + ")"))
    if mapping.scene and len(episodes) > 1:
        raise InputError(f"scene {mapping.scene!r} names one episode but there are {len(episodes)}: leave scene out "
                         "(each episode is named after its video or episode value)")
    ok = []
    for ep in episodes:
        try:
            episode_id("generic", ep.name, mapping.seed, mapping.index)  # the id is a safe folder name, or this fails
        except ValueError as e:
            failed.append((ep.video.name, f"episode name {ep.name!r}: {e}"))
            continue
        ok.append(ep)
    return ok, failed


# --------------------------------------------------------------------------------------------------------
# importing


def _frames_of(video: Path, first: int, mirror: bool) -> Iterable[np.ndarray]:
    from capture.video import iter_frames

    for i, (_, f) in enumerate(iter_frames(video)):
        if i < first:
            continue
        yield np.ascontiguousarray(f[:, ::-1]) if mirror else f


def episode_arrays(ep: GenericEpisode, mapping: GenericMapping) -> tuple[EpisodeArrays, float, Any]:
    """``(arrays, fps, video info)`` of a planned episode; InputError naming the CSV for a log that does not fit."""
    from capture.video import probe_video

    info = probe_video(ep.video)
    fps = float(mapping.fps or info.fps)
    where = f"{ep.csv}" + (f" (episode {ep.name})" if mapping.episode else "")
    try:
        rows = row_arrays(ep.table, mapping, where)
        arr = generic_arrays(rows, mapping, info.frame_count, fps, where, str(ep.video))
    except InputError:
        raise
    except (ValueError, KeyError) as e:
        raise InputError(f"{where}: {e}") from None
    return arr, fps, info


def _episode_config(ep: GenericEpisode, mapping: GenericMapping, arr: EpisodeArrays) -> dict[str, Any]:
    cfg = {"source_video": ep.video.name, "actions_csv": ep.csv.name, "first_video_frame": arr.first,
           "column_mapping": {k: v for k, v in mapping.to_dict().items() if v not in (None, {}, [], ())}}
    if mapping.fov_deg is not None:
        cfg["fov_deg"] = mapping.fov_deg
    return cfg


def _write(ep: GenericEpisode, mapping: GenericMapping, arr: EpisodeArrays, fps: float, episodes_dir: Path) -> Path:
    from capture.episode import episode_id
    from curation.importers import write_episode_arrays

    return write_episode_arrays(
        episodes_dir, episode_id("generic", ep.name, mapping.seed, mapping.index), arr, source="generic",
        scene=ep.name, seed=mapping.seed, fps=fps, frames=_frames_of(ep.video, arr.first, mapping.mirror),
        action_space=mapping.space, source_frame="unreal" if mapping.world is None else mapping.world.describe(),
        config=_episode_config(ep, mapping, arr), crf=mapping.crf, preset=mapping.preset)


def import_generic(videos, csvs, episodes_dir: str | os.PathLike,
                   mapping: GenericMapping | Mapping[str, Any] | None = None) -> ImportResult:
    """Import the episodes of ``videos`` (a file, a glob pattern or a list) and their actions ``csvs`` under
    ``mapping`` into ``episodes_dir`` (module doc). Existing episodes are skipped; each episode that cannot be
    imported is quarantined with its reason and the others go on; the sources are only read. InputError when the
    arguments name no video or CSV."""
    from capture.episode import episode_id
    from capture.imports import write_rejects
    from capture.video import VideoError
    from curation.import_check import check_mode_outcome

    m = mapping if isinstance(mapping, GenericMapping) else GenericMapping.from_dict(mapping or {})
    out = Path(episodes_dir)
    episodes, failed = plan_generic(videos, csvs, m)
    res = ImportResult(failed=list(failed))
    created = not out.exists()
    todo: list[tuple[GenericEpisode, EpisodeArrays, float, int]] = []
    for ep in episodes:
        eid = episode_id("generic", ep.name, m.seed, m.index)
        if (out / eid / "meta.json").is_file():
            res.skipped.append(eid)
            continue
        try:
            arr, fps, info = episode_arrays(ep, m)
        except (InputError, VideoError) as e:
            res.failed.append((ep.video.name if not m.episode else f"{ep.csv.name} episode {ep.name}", str(e)))
            continue
        todo.append((ep, arr, fps, info.frame_count))
    if m.check != "off" and todo:
        built = [(ep, n, fps) for ep, _, fps, n in todo]
        refused = check_mode_outcome([_check_item(ep, arr, m, fps) for ep, arr, fps, _ in todo], m.check,
                                     lambda d, scope: mapping_fixes(d, m, todo[0][2], scope, built), res)
        todo = [t for t in todo if t[0].name not in refused]
    for ep, arr, fps, _ in todo:
        try:
            if not out.exists():
                out.mkdir(parents=True)
            path = _write(ep, m, arr, fps, out)
        except FileExistsError:
            res.skipped.append(ep.name)
            continue
        except (InputError, VideoError, ValueError) as e:
            res.failed.append((ep.video.name, str(e)))
            continue
        res.add_written(path)
    if res.failed:
        name = Path(os.fspath(csvs if isinstance(csvs, (str, os.PathLike)) else list(csvs)[0])).stem
        res.rejects_path = write_rejects(out, "generic", name, [{"item": n, "reason": r} for n, r in res.failed],
                                         fallback="actions")
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # nothing written: no empty --out folder left behind
    return res


# --------------------------------------------------------------------------------------------------------
# checks: the label diagnosis, in mapping terms


def check_generic(videos, csvs, mapping: GenericMapping | Mapping[str, Any] | None = None):
    """The label diagnosis of what :func:`import_generic` would import, without writing anything: a
    :class:`curation.import_check.CheckReport` whose ``fixes`` are the mapping changes that fix the faults
    (:func:`mapping_fixes`)."""
    from capture.video import VideoError
    from curation.import_check import check_items

    m = mapping if isinstance(mapping, GenericMapping) else GenericMapping.from_dict(mapping or {})
    episodes, failed = plan_generic(videos, csvs, m)
    items, built, notes = [], [], []
    for ep in episodes:
        try:
            arr, fps, info = episode_arrays(ep, _loose(m))  # what overlaps, even when the counts differ (an offset?)
        except (InputError, VideoError) as e:
            failed.append((ep.video.name, str(e)))
            continue
        if abs(len(ep.table) - info.frame_count) > m.frame_tolerance + abs(m.row_offset):
            notes.append(f"{ep.name}: {len(ep.table)} rows for {info.frame_count} video frames: the import would "
                         f"refuse this (frame_tolerance {m.frame_tolerance}); checked the {len(arr)} frames that "
                         "have a row")
        items.append(_check_item(ep, arr, m, fps))
        built.append((ep, info.frame_count, fps))
    report = check_items(items)
    report.failed += failed
    report.notes += notes
    if report.diagnosis is not None and not report.diagnosis.ok:
        report.fixes = mapping_fixes(report.diagnosis, m, items[0].fps, report, built)
    return report


def _loose(m: GenericMapping) -> GenericMapping:
    from dataclasses import replace

    return replace(m, frame_tolerance=10**9)


def _check_item(ep: GenericEpisode, arr: EpisodeArrays, m: GenericMapping, fps: float):
    from curation.import_check import CheckItem

    moving = m.speed or m.x or m.y or m.z  # without them the speed is unknown (not 0: standing still)
    return CheckItem(ep.name, ep.video, m.space.keys, arr.keys, arr.mouse, arr.speed if moving else None,
                     arr.collision, fps, first=arr.first, fov_deg=m.fov_deg, mirror=m.mirror, source="generic")


#: A mapping change: the keys it sets and its YAML line.
Change = tuple[dict[str, Any], str]
#: Faults of the look conventions: with one of them the search tries swapping, flipping and mirroring.
LOOK_FAULTS: tuple[str, ...] = ("axes_swap", "yaw_sign", "pitch_sign", "mirrored", "unrelated")
_UNIT_FAULTS = ("mouse_radians", "mouse_degrees_as_radians", "mouse_counts", "mouse_scale")


def _yaml(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_yaml(x)}" for k, x in v.items()) + "}"
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else f"{v:.6g}" if isinstance(v, float) else str(v)


def _change(**patch: Any) -> Change:
    return patch, ", ".join(f"{k}: {_yaml(v)}" for k, v in patch.items())


def _look_source(m: GenericMapping) -> str | None:
    """Where the look deltas come from (the precedence of :func:`generic_arrays`)."""
    return ("deltas" if (m.d_pitch or m.d_yaw) else "quat" if m.qw else "angles" if (m.pitch or m.yaw) else
            "raw" if (m.mouse_dx or m.mouse_dy) else None)


def _swap_axes(m: GenericMapping) -> Change | None:
    src = _look_source(m)
    a, b = {"deltas": ("d_pitch", "d_yaw"), "angles": ("pitch", "yaw"), "raw": ("mouse_dy", "mouse_dx")}.get(src, (None, None))
    return None if a is None else _change(**{a: getattr(m, b), b: getattr(m, a)})


def _flip(m: GenericMapping, which: str) -> Change | None:
    if _look_source(m) not in ("deltas", "angles", "raw"):
        return None  # quaternions: their world frame, not a sign
    if which == "yaw":
        return _change(yaw_positive="left" if m.yaw_positive == "right" else "right")
    return _change(pitch_positive="down" if m.pitch_positive == "up" else "up")


def _swap_keys(m: GenericMapping, a: str, b: str) -> Change | None:
    """Keys ``a`` and ``b`` exchanged: their columns, or the log names that map onto them."""
    if a in m.keys or b in m.keys:
        swapped = {a: m.keys.get(b), b: m.keys.get(a)}
        keys = {k: swapped.get(k, v) for k, v in m.keys.items()}
        keys.update({k: v for k, v in swapped.items() if k not in keys})
        return _change(keys={k: v for k, v in keys.items() if v is not None})
    if m.keys_column or m.keys_bitmask:
        names = dict(m.key_names)
        for k in (a, b):  # a log name that is the key itself maps onto it unless renamed
            if k not in names and all(t != k for t in names.values()):
                names[k] = k
        return _change(key_names={n: (b if t == a else a if t == b else t) for n, t in names.items()})
    return None


def _shift(diagnosis, m: GenericMapping, fps: float) -> Change:
    from curation.import_check import shift_rows

    k = shift_rows(diagnosis)
    if m.time is not None:
        return _change(time_offset_s=round(m.time_offset_s + k / fps, 6))
    return _change(row_offset=m.row_offset + k)


def _units(code: str, diagnosis, m: GenericMapping) -> Change | None:
    src = _look_source(m)
    slope = float(diagnosis.scores.slope)
    if code in ("mouse_radians", "mouse_degrees_as_radians") and src in ("deltas", "angles"):
        return _change(**{"mouse_units" if src == "deltas" else "angle_units": "rad" if code == "mouse_radians" else "deg"})
    if src in ("deltas", "raw") and np.isfinite(slope) and slope > 0:
        return _change(mouse_scale=round(m.mouse_scale * slope, 4))
    return None


def _fault_changes(diagnosis, m: GenericMapping, fps: float) -> list[tuple[Any, Change | None]]:
    """Each fault with the change its name calls for (None: not expressible in the mapping)."""
    out: list[tuple[Any, Change | None]] = []
    for f in diagnosis.faults:
        c = f.code
        ch: Change | None = None
        if c == "shift":
            ch = _shift(diagnosis, m, fps)
        elif c in ("yaw_sign", "pitch_sign"):
            ch = _flip(m, c.split("_")[0])
        elif c == "axes_swap":
            ch = _swap_axes(m)
            flip = _flip(m, "yaw") if "negate" in f.fix else None  # after the swap the yaw sign applies to it
            if ch is not None and flip is not None:
                ch = ({**ch[0], **flip[0]}, f"{ch[1]}, {flip[1]}")
        elif c == "mirrored":
            ch = _change(mirror=not m.mirror)
        elif c in ("ws_swap", "ad_swap"):
            ch = _swap_keys(m, *(("w", "s") if c == "ws_swap" else ("a", "d")))
        elif c in _UNIT_FAULTS:
            ch = _units(c, diagnosis, m)
        out.append((f, ch))
    return out


def _candidates(diagnosis, m: GenericMapping, fps: float) -> list[tuple[int, tuple[Change, ...]]]:
    """The mapping changes the check tries (:func:`curation.import_check.smallest_fix`), each with the number of
    conventions it changes (a swap of two columns is one): every combination of the row shift and the unit change
    the diagnosis measured (a shift measured on swapped axes can be spurious: each is optional), and with a look
    fault swapping pitch and yaw, flipping either sign and mirroring the video, with swapped keys (or a mirrored
    video) swapping them."""
    from itertools import combinations

    codes = set(diagnosis.codes)
    options: list[Change | None] = [ch for f, ch in _fault_changes(diagnosis, m, fps)
                                    if f.code == "shift" or f.code in _UNIT_FAULTS]
    if codes & set(LOOK_FAULTS):
        options += [_swap_axes(m), _flip(m, "yaw"), _flip(m, "pitch"), _change(mirror=not m.mirror)]
    if "ws_swap" in codes:
        options.append(_swap_keys(m, "w", "s"))
    if codes & {"ad_swap", "mirrored"}:
        options.append(_swap_keys(m, "a", "d"))
    opts = [o for o in options if o is not None]
    return [(r, combo) for r in range(1, len(opts) + 1) for combo in combinations(opts, r)]


def _rebuilt_items(built: Sequence[tuple[GenericEpisode, int, float]], indices: Sequence[int], m: GenericMapping):
    """The check items of the episodes at ``indices`` of ``built`` (episode, video frames, fps) under ``m``; None
    when the log does not fit it."""
    items = []
    for i in indices:
        ep, n_frames, fps = built[i]
        where = f"{ep.csv}"
        try:
            arr = generic_arrays(row_arrays(ep.table, m, where), m, n_frames, fps, where, str(ep.video))
        except (InputError, ValueError, KeyError):
            return None
        items.append(_check_item(ep, arr, m, fps))
    return items


def mapping_fixes(diagnosis, m: GenericMapping, fps: float, scope: Any = None,
                  built: Sequence[tuple[GenericEpisode, int, float]] | None = None, max_size: int = 3) -> list[str]:
    """The mapping changes (YAML lines) that fix the faults of a :class:`curation.consistency.Diagnosis` (``fps``:
    the episodes' frame rate, for a time offset).

    With ``scope`` (the :class:`curation.import_check.CheckReport` the diagnosis covers, its motions measured) and
    ``built`` (per checked item: its episode, video frame count and fps) the changes are checked: the candidates
    of :func:`_candidates` rebuild the labels from the logs and are diagnosed against the video, and the one that
    changes the fewest settings under which the labels agree with it is named (up to ``max_size`` settings). When
    none does, or without a scope, each fault's own change is named, marked as not confirmed."""
    from dataclasses import replace

    from curation.import_check import rediagnose, smallest_fix

    if scope is not None and built is not None and scope.motions:
        loose = _loose(m)

        def score(changes: tuple[Change, ...]):
            try:
                m2 = replace(loose, **{k: v for ch in changes for k, v in ch[0].items()})
            except Exception:  # pydantic's ValidationError: a change this mapping cannot take
                return None
            items = _rebuilt_items(built, scope.indices, m2)
            return None if items is None else rediagnose(items, scope.motions)

        found = smallest_fix(_candidates(diagnosis, m, fps), score, diagnosis, max_size=max_size)
        if found is not None:
            changes, d = found
            lines = [ch[1] for ch in changes]
            these = "this change" if len(lines) == 1 else f"these {len(lines)} changes"
            return lines[:-1] + [f"{lines[-1]}  # checked: with {these} the {d.summary()}"]
    out = []
    for f, ch in _fault_changes(diagnosis, m, fps):
        out.append(f"# {f.what}: {f.fix}" if ch is None else f"{ch[1]}  # {f.what} (not confirmed by a re-check)")
    return out
