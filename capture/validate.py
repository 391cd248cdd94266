"""Episode validation: every problem of an episode folder, each naming the file, row and column.

:func:`validate_episode` checks one episode folder against "playmill.episode/1" (DESIGN.md section 3) and
returns a list of :class:`Problem` (empty when the episode is valid); it keeps going after the first problem.
:func:`validate_paths` is what ``playmill validate PATH...`` runs: it accepts episode folders and folders of
episodes. The actions.csv reader used by :func:`capture.episode.read_episode` and by the writer's final
check, :func:`read_actions_csv`, lives here so that what is validated is exactly what is read.

Rows are numbered from 0 in data order (the header is not a row), so row ``i`` is frame ``i``. A problem
that repeats on many rows of one column is listed for the first ``max_rows_per_check`` rows (default 20)
and then summarised in one more problem with the count and the last row; pass ``None`` to list all.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from capture.actions import ActionSpace
from capture.episode import (
    ACTIONS_FILE, META_FILE, OPTIONAL_COLUMNS, TEMP_PREFIX, VIDEO_FILE, EpisodeMeta,
    actions_columns, meta_field_problems, sha256_file,
)
from capture.video import VideoError, probe_video

if TYPE_CHECKING:
    import pandas as pd

#: Allowed deviation of a quaternion's norm from 1.
QUAT_NORM_TOLERANCE = 1e-6
#: Allowed deviation, in frames/s, of the video's frame rate from meta.json's fps.
FPS_TOLERANCE = 0.01
#: Default number of rows listed per (column, problem kind) before a summary problem.
MAX_ROWS_PER_CHECK = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an episode: ``file``, 0-based data ``row`` (or None), ``column`` (or meta.json
    field, or None) and a ``message`` saying what is wrong."""

    file: Path
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = str(self.file)
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f" {'field' if str(self.file).endswith('.json') else 'column'} {self.column}"
        return f"{where}: {self.message}"


@dataclass
class MetaCheck:
    """Result of :func:`check_meta`: the parsed meta (None unless fully valid), the fields that are valid on
    their own (so other checks can still use them), and the problems."""

    meta: EpisodeMeta | None
    fields: dict[str, Any]
    problems: list[Problem]

    @property
    def action_space(self) -> ActionSpace | None:
        return ActionSpace.from_dict(self.fields["action_space"]) if "action_space" in self.fields else None


@dataclass
class EpisodeCheck:
    """Result of :func:`inspect_episode`: meta and typed actions table (None when invalid) and all problems."""

    meta: EpisodeMeta | None
    actions: "pd.DataFrame | None"
    problems: list[Problem] = field(default_factory=list)


class _Report:
    """Collects problems of one file, capping the rows listed per (column, kind)."""

    def __init__(self, file: Path, max_rows: int | None) -> None:
        self.file = file
        self.max_rows = max_rows
        self.problems: list[Problem] = []

    def add(self, message: str, row: int | None = None, column: str | None = None) -> None:
        self.problems.append(Problem(self.file, row, column, message))

    def rows(self, rows: np.ndarray, column: str | None, message: Callable[[int], str]) -> None:
        """One problem per row index in ``rows`` (ascending), capped, with a summary of the rest."""
        rows = np.asarray(rows)
        shown = rows if self.max_rows is None else rows[: self.max_rows]
        for r in shown.tolist():
            self.add(message(r), r, column)
        if len(shown) < len(rows):
            rest = rows[len(shown):]
            self.add(f"{len(rest)} more rows with the same problem (rows {int(rest[0])} to {int(rest[-1])}), "
                     f"e.g. {message(int(rest[0]))}", None, column)


# --------------------------------------------------------------------------------------------------------
# meta.json


def check_meta(meta_path: str | os.PathLike, *, folder_name: str | None = None) -> MetaCheck:
    """Read and check meta.json; ``folder_name`` (the episode folder) must equal its ``episode_id``."""
    meta_path = Path(meta_path)
    rep = _Report(meta_path, None)
    try:
        text = meta_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        rep.add("missing file")
        return MetaCheck(None, {}, rep.problems)
    except (OSError, UnicodeDecodeError) as e:
        rep.add(f"unreadable: {e}")
        return MetaCheck(None, {}, rep.problems)
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        rep.add(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}")
        return MetaCheck(None, {}, rep.problems)
    field_problems = meta_field_problems(d)
    for name, msg in field_problems:
        rep.add(msg, None, name)
    if not isinstance(d, dict):
        return MetaCheck(None, {}, rep.problems)
    bad = {name for name, _ in field_problems}
    fields = {k: v for k, v in d.items() if k not in bad}
    if folder_name is not None and "episode_id" in fields and fields["episode_id"] != folder_name:
        rep.add(f"is {fields['episode_id']!r} but the episode folder is named {folder_name!r}", None, "episode_id")
    meta = EpisodeMeta.from_dict(d) if not field_problems else None
    return MetaCheck(meta, fields, rep.problems)


# --------------------------------------------------------------------------------------------------------
# actions.csv


def _check_header(rep: _Report, header: list[str], keys: Sequence[str] | None, source: str | None) -> list[str]:
    """Check the header's columns; returns the extra columns (in header order)."""
    if keys is None:
        keys = [c[4:] for c in header if c.startswith("key_")]
    base = actions_columns(list(keys))
    base_set = set(base)
    prefix = f"{source}_" if source else None
    seen: set[str] = set()
    extras: list[str] = []
    for pos, c in enumerate(header):
        if c in seen:
            rep.add(f"duplicate column (again at position {pos})", None, c)
            continue
        seen.add(c)
        if c in base_set:
            continue
        if c.startswith("key_"):
            rep.add(f"unknown key column: {c[4:]!r} is not in meta.json action_space {list(keys)}", None, c)
        elif prefix is None or (c.startswith(prefix) and len(c) > len(prefix)):
            extras.append(c)
        else:
            rep.add(f"unknown column; expected {', '.join(base)}, then extras named {prefix}<name>", None, c)
    for c in base:
        if c not in seen:
            rep.add("missing column", None, c)
    present = [c for c in dict.fromkeys(header) if c in base_set]
    expected = [c for c in base if c in seen]
    if present != expected:
        for i, (got, want) in enumerate(zip(present, expected)):
            if got != want:
                after = f"after {expected[i - 1]!r}" if i else "first"
                rep.add(f"out of order: {got!r} stands where {want!r} belongs ({want!r} comes {after})", None, got)
    last_base = max((i for i, c in enumerate(header) if c in base_set), default=-1)
    for i, c in enumerate(header):
        if c in extras and i < last_base:
            rep.add("out of order: extra columns must come after 'collision'", None, c)
    return extras


def _field_counts(data: bytes) -> np.ndarray:
    """Number of comma-separated fields of every line (header first); a final newline ends the last line."""
    arr = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(arr))
    commas = np.flatnonzero(arr == 44)
    return np.bincount(np.searchsorted(ends, commas), minlength=len(ends))[: len(ends)] + 1


def _parse_strings(text: str, ncols: int, rep: _Report) -> tuple[list[np.ndarray], np.ndarray]:
    """Slow path: every cell as a string, and the mask of ragged rows (reported here; their cells are
    padded or cut to the header's width and left out of the cell checks)."""
    rows = list(csv.reader(io.StringIO(text)))[1:]
    bad = np.array([i for i, r in enumerate(rows) if len(r) != ncols], dtype=np.int64)
    rep.rows(bad, None, lambda r: (f"has {len(rows[r])} fields, the header has {ncols} (line {r + 2})"
                                   if rows[r] else f"blank line (line {r + 2})"))
    fixed = [r[:ncols] + [""] * (ncols - len(r)) if len(r) != ncols else r for r in rows]
    ragged = np.zeros(len(rows), dtype=bool)
    ragged[bad] = True
    if not fixed:
        return [np.empty(0, dtype=object) for _ in range(ncols)], ragged
    table = np.array(fixed, dtype=object).reshape(len(fixed), ncols)
    return [table[:, j] for j in range(ncols)], ragged


def _to_float(strings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strings to float64: ``(values, empty mask, non-numeric mask)``; bad or empty cells become NaN."""
    s = np.asarray(strings, dtype=object)
    stripped = np.array([x.strip() for x in s.tolist()], dtype=object) if len(s) else s
    empty = stripped == ""
    vals = np.full(len(s), np.nan)
    bad = np.zeros(len(s), dtype=bool)
    ok = ~empty
    try:
        vals[ok] = stripped[ok].astype(np.float64)
    except (ValueError, TypeError):
        for i in np.flatnonzero(ok).tolist():
            try:
                vals[i] = float(stripped[i])
            except ValueError:
                bad[i] = True
    return vals, np.asarray(empty, dtype=bool), bad


def read_actions_csv(
    path: str | os.PathLike,
    *,
    action_space: ActionSpace | None = None,
    source: str | None = None,
    frame_count: int | None = None,
    max_rows_per_check: int | None = MAX_ROWS_PER_CHECK,
) -> tuple["pd.DataFrame | None", list[Problem]]:
    """Read and check actions.csv; ``(typed table or None, problems)``. The table is None unless valid.

    ``action_space``/``source``/``frame_count`` come from meta.json; a None one is not checked (the key
    columns are then taken from the header). Floats are parsed exactly (shortest-repr round trip). The
    typed table has ``frame`` int64, key columns and ``collision`` uint8, the rest float64 (NaN = empty).
    """
    import pandas as pd

    path = Path(path)
    rep = _Report(path, max_rows_per_check)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        rep.add("missing file")
        return None, rep.problems
    except OSError as e:
        rep.add(f"unreadable: {e}")
        return None, rep.problems
    if data.startswith(codecs.BOM_UTF8):  # a byte-order mark (spreadsheet exports) is not part of the header
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        rep.add(f"unreadable: not UTF-8 text (byte {e.start})")
        return None, rep.problems
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        rep.add("empty file: no header line")
        return None, rep.problems
    try:
        header = next(csv.reader([first]))
    except csv.Error as e:  # a stray carriage return or NUL in the header
        rep.add(f"the header line is not valid CSV: {e}", column=None)
        return None, rep.problems
    ncols = len(header)
    keys = action_space.keys if action_space is not None else None
    extras = _check_header(rep, header, keys, source)
    optional = set(OPTIONAL_COLUMNS) | set(extras)

    # one vectorised look at the line structure decides between the fast and the slow parser
    counts = _field_counts(data)[1:]
    ragged = np.flatnonzero(counts != ncols)
    columns: list[np.ndarray] | None = None  # float64 per column (fast path)
    if not len(ragged) and b'"' not in data and len(set(header)) == ncols:
        float_cols = [j for j, c in enumerate(header) if c not in optional]
        try:
            df = pd.read_csv(
                io.BytesIO(data), header=None, skiprows=1, names=list(range(ncols)), index_col=False,
                dtype={j: (np.float64 if j in float_cols else str) for j in range(ncols)},
                keep_default_na=False, na_values={j: [""] for j in float_cols}, skip_blank_lines=False,
                engine="c",
            )
            fast = [df[j].to_numpy(dtype=np.float64) if j in float_cols else df[j].to_numpy(dtype=object)
                    for j in range(ncols)]
            if not any(np.isnan(fast[j]).any() for j in float_cols):
                columns = fast
        except (ValueError, pd.errors.ParserError):
            columns = None
    if columns is not None:
        strings_or_floats = columns
        skip = np.zeros(len(columns[0]) if ncols else 0, dtype=bool)
    else:
        try:
            strings_or_floats, skip = _parse_strings(text, ncols, rep)
        except csv.Error as e:  # e.g. a carriage return inside an unquoted cell
            rep.add(f"not valid CSV: {e}")
            return None, rep.problems
    n = len(strings_or_floats[0]) if ncols else 0

    values: dict[str, np.ndarray] = {}
    invalid: dict[str, np.ndarray] = {}  # cells excluded from the value checks
    for j, name in enumerate(header):
        col = strings_or_floats[j]
        if name in values:
            continue
        if col.dtype == np.float64:
            vals, empty, bad = col, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        else:
            vals, empty, bad = _to_float(col)
            empty &= ~skip
            bad &= ~skip
        if name not in optional and empty.any():
            rep.rows(np.flatnonzero(empty), name,
                     lambda r: "empty cell (only mouse_dx, mouse_dy and extra columns may be empty)")
        if bad.any():
            rep.rows(np.flatnonzero(bad), name, lambda r, col=col: f"not a number: {col[r]!r}")
        nonfinite = ~empty & ~bad & ~skip & ~np.isfinite(vals)
        if nonfinite.any():
            rep.rows(np.flatnonzero(nonfinite), name, lambda r, vals=vals: f"{float(vals[r])!r} is not finite")
        values[name] = vals
        invalid[name] = empty | bad | nonfinite | skip

    if frame_count is not None and n != frame_count:
        rep.add(f"{n} rows, but meta.json frame_count is {frame_count}")
    if n == 0:
        rep.add("no rows")

    def ok(name: str) -> np.ndarray:
        return ~invalid[name]

    if "frame" in values:
        v = values["frame"]
        wrong = np.flatnonzero(ok("frame") & (v != np.arange(n)))
        rep.rows(wrong, "frame", lambda r: f"frame is {_num(v[r])}, expected {r} (frames count 0, 1, 2, ...)")
    if "t" in values and n:
        t, good = values["t"], ok("t")
        if good[0] and t[0] != 0.0:
            rep.add(f"t must start at 0, got {float(t[0])!r}", 0, "t")
        nonincr = np.flatnonzero(good[1:] & good[:-1] & (np.diff(t) <= 0)) + 1
        rep.rows(nonincr, "t", lambda r: f"t {float(t[r])!r} is not after the previous row's {float(t[r - 1])!r} "
                                         "(t must strictly increase)")
    for name in [c for c in header if c.startswith("key_") and c in values] + ["collision"]:
        if name in values:
            v = values[name]
            wrong = np.flatnonzero(ok(name) & (v != 0) & (v != 1))
            rep.rows(wrong, name, lambda r, v=v: f"{_num(v[r])} is not 0 or 1")
    quat = ("qw", "qx", "qy", "qz")
    if all(q in values for q in quat):
        good = np.logical_and.reduce([ok(q) for q in quat])
        norm = np.sqrt(sum(values[q] ** 2 for q in quat))
        wrong = np.flatnonzero(good & (np.abs(norm - 1.0) > QUAT_NORM_TOLERANCE))
        tol = f"{QUAT_NORM_TOLERANCE:g}".replace("e-0", "e-")
        rep.rows(wrong, "qw", lambda r: f"quaternion norm {norm[r]:.9g} is not 1 (tolerance {tol})")

    if rep.problems:
        return None, rep.problems
    typed: dict[str, np.ndarray] = {}
    for name in header:
        v = values[name]
        if name == "frame":
            typed[name] = v.astype(np.int64)
        elif name.startswith("key_") or name == "collision":
            typed[name] = v.astype(np.uint8)
        else:
            typed[name] = v
    return pd.DataFrame(typed, columns=header), rep.problems


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# --------------------------------------------------------------------------------------------------------
# video.mp4


def video_problems(
    video_path: str | os.PathLike, meta_fields: dict[str, Any], *, check_video: bool = True,
    fps_tolerance: float = FPS_TOLERANCE,
) -> list[Problem]:
    """Problems of video.mp4 against the (valid) meta.json fields: missing file always; with ``check_video``
    also unreadable/corrupt, codec, pixel format, size, frame count, frame rate and sha256."""
    video_path = Path(video_path)
    rep = _Report(video_path, None)
    if not video_path.is_file():
        rep.add("missing file")
        return rep.problems
    if not check_video:
        return rep.problems
    try:
        info = probe_video(video_path)
    except VideoError as e:
        rep.add(str(e).replace(f" {video_path}:", ":", 1))
        return rep.problems
    if info.codec != "h264":
        rep.add(f"codec is {info.codec}, expected h264")
    if info.pix_fmt != "yuv420p":
        rep.add(f"pixel format is {info.pix_fmt}, expected yuv420p")
    w, h = meta_fields.get("width"), meta_fields.get("height")
    if w is not None and h is not None and (info.width, info.height) != (w, h):
        rep.add(f"size is {info.width}x{info.height}, meta.json says {w}x{h}")
    fc = meta_fields.get("frame_count")
    if fc is not None and info.frame_count != fc:
        rep.add(f"has {info.frame_count} frames, meta.json frame_count is {fc}")
    fps = meta_fields.get("fps")
    if fps is not None and abs(info.fps - fps) > fps_tolerance:
        rep.add(f"frame rate is {info.fps:.6g} fps, meta.json fps is {fps:.6g} (tolerance {fps_tolerance:g})")
    sha = meta_fields.get("video_sha256")
    if sha is not None:
        actual = sha256_file(video_path)
        if actual != sha:
            rep.add(f"sha256 is {actual}, meta.json video_sha256 is {sha} (the video was changed or replaced)")
    return rep.problems


# --------------------------------------------------------------------------------------------------------
# whole episodes


def inspect_episode(
    path: str | os.PathLike, *, check_video: bool = True, max_rows_per_check: int | None = MAX_ROWS_PER_CHECK,
) -> EpisodeCheck:
    """Check meta.json, actions.csv and (with ``check_video``) video.mp4 of the episode folder ``path``."""
    path = Path(path)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        return EpisodeCheck(None, None, [Problem(path, None, None, f"not an episode folder: {what}")])
    mc = check_meta(path / META_FILE, folder_name=path.name)
    fields = mc.fields
    df, csv_problems = read_actions_csv(
        path / ACTIONS_FILE, action_space=mc.action_space, source=fields.get("source"),
        frame_count=fields.get("frame_count"), max_rows_per_check=max_rows_per_check,
    )
    problems = mc.problems + csv_problems + video_problems(path / VIDEO_FILE, fields, check_video=check_video)
    return EpisodeCheck(mc.meta if not problems else None, df if not problems else None, problems)


def validate_episode(
    path: str | os.PathLike, *, check_video: bool = True, max_rows_per_check: int | None = MAX_ROWS_PER_CHECK,
) -> list[Problem]:
    """Every problem of the episode folder ``path`` (empty list: valid). ``check_video=False`` skips probing
    and hashing the video (its presence is still checked)."""
    return inspect_episode(path, check_video=check_video, max_rows_per_check=max_rows_per_check).problems


def _is_episode_folder(p: Path) -> bool:
    return any((p / f).exists() for f in (META_FILE, ACTIONS_FILE, VIDEO_FILE))


def validate_paths(
    paths: Iterable[str | os.PathLike], *, check_video: bool = True,
) -> dict[Path, list[Problem]]:
    """Validate episode folders and folders of episodes: ``{episode folder: problems}``.

    A folder holding meta.json, actions.csv or video.mp4 is an episode; any other folder is a folder of
    episodes, and each of its sub-folders (hidden and temporary ones skipped) is validated. A path that does
    not exist, or a folder with neither, is reported as a problem of that path.
    """
    out: dict[Path, list[Problem]] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_file() and p.name in (META_FILE, ACTIONS_FILE, VIDEO_FILE):
            p = p.parent
        if not p.exists():
            out[p] = [Problem(p, None, None, "does not exist")]
        elif not p.is_dir():
            out[p] = [Problem(p, None, None, "is not an episode folder or a folder of episodes")]
        elif _is_episode_folder(p):
            out[p] = validate_episode(p, check_video=check_video)
        else:
            subs = sorted(d for d in p.iterdir()
                          if d.is_dir() and not d.name.startswith(".") and not d.name.startswith(TEMP_PREFIX))
            if not subs:
                out[p] = [Problem(p, None, None, f"is neither an episode folder (no {META_FILE}, {ACTIONS_FILE} "
                                                 f"or {VIDEO_FILE}) nor a folder of episodes")]
            for d in subs:
                out[d] = validate_episode(d, check_video=check_video)
    return out


__all__ = [
    "Problem", "MetaCheck", "EpisodeCheck", "QUAT_NORM_TOLERANCE", "FPS_TOLERANCE", "MAX_ROWS_PER_CHECK",
    "check_meta", "read_actions_csv", "video_problems", "inspect_episode", "validate_episode",
    "validate_paths",
]
