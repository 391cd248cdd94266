"""The episode format "playmill.episode/1" (DESIGN.md section 3): names, meta.json, the atomic writer, the reader.

An episode is a folder ``<episodes_dir>/<episode_id>/`` holding ``video.mp4`` (H.264, yuv420p, constant
frame rate), ``actions.csv`` (one row per video frame) and ``meta.json``. :class:`EpisodeWriter` builds it in
a hidden temporary folder ``.tmp-<episode_id>-<pid>-<random>`` of ``episodes_dir`` and renames it into place
only when it is complete, so a reader never sees a half-written episode. :func:`read_episode` loads one and
raises :class:`EpisodeError` listing what is wrong (the checks live in :mod:`capture.validate`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from capture.actions import ActionSpace, FrameAction
from capture.errors import InputError
from capture.names import check_name, name_problem
from capture.video import DEFAULT_CRF, DEFAULT_PRESET, VideoWriter, iter_frames
from capture.world import Observation

if TYPE_CHECKING:
    import pandas as pd

    from capture.validate import Problem

log = logging.getLogger(__name__)

SCHEMA = "playmill.episode/1"
#: Allowed meta.json ``source`` values (DESIGN.md section 3).
SOURCES: tuple[str, ...] = ("sandbox", "unrealcv", "unreal_export", "gta", "sekai", "generic", "vpt")
VIDEO_FILE = "video.mp4"
ACTIONS_FILE = "actions.csv"
META_FILE = "meta.json"
#: Name prefix of the writer's temporary folders (hidden; skipped by :func:`list_episodes`).
TEMP_PREFIX = ".tmp-"
_OWNER_FILE = ".owner.json"

#: Camera pose columns: position in cm, orientation as a unit quaternion (w, x, y, z). Float64.
POSE_COLUMNS: tuple[str, ...] = ("x", "y", "z", "qw", "qx", "qy", "qz")
#: Mouse columns: look deltas in degrees (float64) and raw device counts (float64, may be empty).
MOUSE_COLUMNS: tuple[str, ...] = ("d_pitch", "d_yaw", "mouse_dx", "mouse_dy")
#: Velocity (cm/s), signed forward ground speed (cm/s) and the collision flag (0/1).
MOTION_COLUMNS: tuple[str, ...] = ("vx", "vy", "vz", "speed", "collision")
#: Columns whose cells may be empty (besides the extras).
OPTIONAL_COLUMNS: tuple[str, ...] = ("mouse_dx", "mouse_dy")


class EpisodeError(InputError):
    """A malformed episode, or one that cannot be written. ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: Sequence["Problem"] = ()) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)


# --------------------------------------------------------------------------------------------------------
# names and columns


def extra_column(source: str, name: str) -> str:
    """The actions.csv column of a source-specific per-frame value: ``<source>_<name>``."""
    return f"{source}_{name}"


def actions_columns(action_space: ActionSpace | Sequence[str], extras: Sequence[str] = ()) -> list[str]:
    """The actions.csv header, in order: ``frame, t, key_<k>..., d_pitch, d_yaw, mouse_dx, mouse_dy,
    x, y, z, qw, qx, qy, qz, vx, vy, vz, speed, collision`` then ``extras``.

    ``action_space``: an :class:`ActionSpace` or its key names. ``extras``: full extra column names, already
    prefixed with the source (see :func:`extra_column`).
    """
    keys = action_space.keys if isinstance(action_space, ActionSpace) else tuple(action_space)
    return ["frame", "t", *(f"key_{k}" for k in keys), *MOUSE_COLUMNS, *POSE_COLUMNS, *MOTION_COLUMNS,
            *extras]


_ID_PART_RE = re.compile(r"[^a-z0-9_]+")


def _id_part(what: str, value: str, max_len: int) -> str:
    part = _ID_PART_RE.sub("_", str(value).lower()).strip("_")[:max_len].strip("_")
    if not part:
        raise ValueError(f"episode_id: {what} {value!r} has no letters or digits")
    return part


def episode_id(source: str, scene: str, seed: int, index: int) -> str:
    """Deterministic, readable, filesystem-safe episode id: ``<source>-<scene>-s<seed>-i<index>``.

    ``source`` and ``scene`` are lower-cased, every run of characters other than ``a-z``, ``0-9`` and ``_``
    becomes ``_`` (so ``-`` only separates fields), the scene is cut to 64 characters; ``seed`` (>= 0) is
    zero-padded to 10 digits (every 32-bit seed; larger seeds just get longer) and ``index`` (>= 0) to 5,
    so ids sort by scene, seed and index. Example: ``episode_id("sandbox", "City", 42, 3)`` is
    ``"sandbox-city-s0000000042-i00003"``. Scenes that differ only in case or punctuation share a prefix;
    the seed and index keep ids distinct within a run.
    """
    for name, v in (("seed", seed), ("index", index)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"episode_id: {name} must be a non-negative int, got {v!r}")
    return check_name(f"{_id_part('source', source, 32)}-{_id_part('scene', scene, 64)}-s{int(seed):010d}"
                      f"-i{int(index):05d}", "episode id")


def producer() -> str:
    """``"playmill <version>"`` of the installed package (``"playmill unknown"`` when not installed)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return f"playmill {version('playmill')}"
    except (ImportError, PackageNotFoundError):
        return "playmill unknown"


# --------------------------------------------------------------------------------------------------------
# meta.json

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def meta_field_problems(d: Any) -> list[tuple[str | None, str]]:
    """Every problem of a parsed meta.json object, as ``(field or None, message)``; empty when valid."""
    if not isinstance(d, Mapping):
        return [(None, f"must be a JSON object, got {type(d).__name__}")]
    out: list[tuple[str | None, str]] = []
    missing = [f for f in META_FIELDS if f not in d]
    for f in missing:
        out.append((f, "missing field"))

    def check(name: str, ok: bool, want: str) -> bool:
        if name in d and not ok:
            out.append((name, f"must be {want}, got {d[name]!r}"))
        return name in d and ok

    if check("schema", isinstance(d.get("schema"), str), "a string") and d["schema"] != SCHEMA:
        out.append(("schema", f"is {d['schema']!r}, expected {SCHEMA!r}"))
    if check("episode_id", isinstance(d.get("episode_id"), str) and bool(d.get("episode_id")), "a non-empty string"):
        why = name_problem(d["episode_id"])
        if why is not None:
            out.append(("episode_id", f"{d['episode_id']!r} is not a safe folder name: {why}"))
    if check("source", isinstance(d.get("source"), str), "a string") and d["source"] not in SOURCES:
        out.append(("source", f"{d['source']!r} is not one of {list(SOURCES)}"))
    check("scene", isinstance(d.get("scene"), str), "a string")
    check("seed", _is_int(d.get("seed")), "an integer")
    check("fps", _is_num(d.get("fps")) and math.isfinite(d["fps"]) and d["fps"] > 0, "a positive finite number")
    for name in ("width", "height"):
        if check(name, _is_int(d.get(name)) and d[name] > 0, "a positive integer") and d[name] % 2:
            out.append((name, f"{d[name]} must be even (yuv420p video)"))
    check("frame_count", _is_int(d.get("frame_count")) and d["frame_count"] > 0, "a positive integer")
    if "action_space" in d:
        try:
            ActionSpace.from_dict(d["action_space"])
        except (ValueError, TypeError) as e:
            out.append(("action_space", str(e)))
    check("source_frame", isinstance(d.get("source_frame"), str), "a string")
    check("config", isinstance(d.get("config"), dict), "an object")
    if check("created_utc", isinstance(d.get("created_utc"), str), "an ISO 8601 string"):
        try:
            datetime.fromisoformat(d["created_utc"].replace("Z", "+00:00"))
        except ValueError:
            out.append(("created_utc", f"{d['created_utc']!r} is not an ISO 8601 time"))
    check("producer", isinstance(d.get("producer"), str), "a string")
    check("video_sha256", isinstance(d.get("video_sha256"), str) and bool(_SHA256_RE.match(d["video_sha256"])),
          "64 lower-case hex digits")
    return out


@dataclass
class EpisodeMeta:
    """The contents of meta.json.

    ``fps`` in frames/s; ``width``/``height`` in pixels; ``frame_count`` video frames = actions.csv rows;
    ``source_frame`` the coordinate frame the source worked in before conversion to Unreal's; ``config`` the
    source parameters (weather, time_of_day, densities, ...); ``created_utc`` ISO 8601 UTC time the episode
    was committed; ``producer`` ``"playmill <version>"``; ``video_sha256`` hex digest of video.mp4.
    """

    episode_id: str
    source: str
    scene: str
    seed: int
    fps: float
    width: int
    height: int
    frame_count: int
    action_space: ActionSpace
    source_frame: str
    config: dict[str, Any] = field(default_factory=dict)
    created_utc: str = ""
    producer: str = ""
    video_sha256: str = ""
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """The meta.json object, fields in the DESIGN.md order."""
        return {
            "schema": self.schema, "episode_id": self.episode_id, "source": self.source, "scene": self.scene,
            "seed": self.seed, "fps": self.fps, "width": self.width, "height": self.height,
            "frame_count": self.frame_count, "action_space": self.action_space.to_dict(),
            "source_frame": self.source_frame, "config": self.config, "created_utc": self.created_utc,
            "producer": self.producer, "video_sha256": self.video_sha256,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EpisodeMeta":
        """Parse a meta.json object; ``ValueError`` listing every problem. Unknown fields are ignored."""
        problems = meta_field_problems(d)
        if problems:
            raise ValueError("; ".join(f"{f}: {m}" if f else m for f, m in problems))
        return cls(
            episode_id=d["episode_id"], source=d["source"], scene=d["scene"], seed=int(d["seed"]),
            fps=float(d["fps"]), width=int(d["width"]), height=int(d["height"]),
            frame_count=int(d["frame_count"]), action_space=ActionSpace.from_dict(d["action_space"]),
            source_frame=d["source_frame"], config=dict(d["config"]), created_utc=d["created_utc"],
            producer=d["producer"], video_sha256=d["video_sha256"], schema=d["schema"],
        )


#: The meta.json fields, in order.
META_FIELDS: tuple[str, ...] = (
    "schema", "episode_id", "source", "scene", "seed", "fps", "width", "height", "frame_count", "action_space",
    "source_frame", "config", "created_utc", "producer", "video_sha256",
)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------
# durable, atomic file-system steps


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems refuse fsync on directories
        if not directory or e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _write_durable(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


_renameat2: Any = None


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists (atomically so on Linux)."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            pass
    if _renameat2:
        at_fdcwd, rename_noreplace = -100, 1
        if _renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(errno.EEXIST, f"episode already exists: {dst}", str(dst))
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # flag unsupported by this file system
            raise OSError(err, f"cannot rename {src} to {dst}: {os.strerror(err)}")
    if dst.exists():
        raise FileExistsError(errno.EEXIST, f"episode already exists: {dst}", str(dst))
    os.rename(src, dst)


def _pid_alive(pid: int) -> bool:
    """True when process ``pid`` runs on this machine (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _rmtree(path: Path, attempts: int = 5) -> bool:
    """Remove a folder tree, retrying while a dying process may still add files to it. True when gone."""
    for i in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return True
        time.sleep(0.05 * (i + 1))
    return not path.exists()


def _idle_seconds(folder: Path) -> float | None:
    """Seconds since anything in ``folder`` (or the folder itself) was last modified; None if it vanished."""
    try:
        newest = max([folder.stat().st_mtime] + [f.stat().st_mtime for f in folder.iterdir()])
    except OSError:
        return None
    return time.time() - newest


def cleanup_stale_temp(episodes_dir: str | os.PathLike, *, max_age_s: float | None = None) -> list[Path]:
    """Remove temporary folders left by killed writers in ``episodes_dir``; returns (and logs) what it removed.

    A temp folder is stale when its episode is already complete (its writer can never commit it: episodes are
    never replaced; e.g. a rerun finished the episode of a worker that died), or when its writer process (host
    and pid recorded by the writer) is no longer running on this host; folders of live writers of unfinished
    episodes, including this process's, are never touched. A folder written from another host (a shared file
    system) cannot be checked: it is kept unless ``max_age_s`` is given and nothing in it was modified for that
    many seconds.
    """
    root = Path(episodes_dir)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    host = socket.gethostname()
    for p in sorted(root.iterdir()):
        if not p.name.startswith(TEMP_PREFIX) or not p.is_dir():
            continue
        eid = p.name[len(TEMP_PREFIX):].rsplit("-", 2)[0]
        if eid and (root / eid / META_FILE).is_file():
            if _rmtree(p):
                log.info("removed temporary folder %s: episode %s is complete", p, eid)
                removed.append(p)
            continue
        owner_host, pid = host, -1
        try:
            owner = json.loads((p / _OWNER_FILE).read_text())
            owner_host, pid = str(owner["host"]), int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            try:  # killed before the owner file was written: the pid is in the name
                pid = int(p.name.rsplit("-", 2)[1])
            except (IndexError, ValueError):
                pid = -1
        if owner_host == host:
            if _pid_alive(pid):
                continue
            why = f"writer pid {pid} is not running"
        else:
            age = _idle_seconds(p)
            if max_age_s is None or age is None or age <= max_age_s:
                continue
            why = f"written from host {owner_host}, nothing modified for {age:.0f} s"
        if _rmtree(p):
            log.info("removed stale temporary episode folder %s (%s)", p, why)
            removed.append(p)
        else:
            log.warning("could not remove stale temporary episode folder %s (%s)", p, why)
    return removed


def list_episodes(episodes_dir: str | os.PathLike) -> list[Path]:
    """Complete episodes of ``episodes_dir`` (folders with a meta.json, temp and hidden folders skipped), sorted."""
    root = Path(episodes_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if not p.name.startswith(".") and p.is_dir() and (p / META_FILE).is_file())


# --------------------------------------------------------------------------------------------------------
# writing


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


_r = float.__repr__  # shortest string that parses back to the same float64


class EpisodeWriter:
    """Write one episode atomically.

    Frames stream into ffmpeg as they are appended; the actions.csv rows are kept in memory (about 300
    bytes a frame) and written at :meth:`commit`, which also validates the rows exactly as a reader will see
    them, hashes the video, writes meta.json, fsyncs, and renames the temp folder into
    ``episodes_dir/<episode_id>``. Any exception inside the ``with`` block, or :meth:`abort`, removes the
    temp folder; leaving the block without ``commit()`` discards the episode and raises ``EpisodeError``.

    ``fps`` in frames/s, ``width``/``height`` in pixels (even), ``action_space`` the keys of the key
    columns, ``source_frame``/``config`` recorded in meta.json, ``extras`` the names (without the
    ``<source>_`` prefix) of the per-frame ``Observation.extras`` values written as extra columns; a
    declared extra missing from an observation is an empty cell, an undeclared one is an error.
    ``crf``/``preset``/``threads``: see :class:`capture.video.VideoWriter`.
    """

    def __init__(
        self,
        episodes_dir: str | os.PathLike,
        episode_id: str,
        *,
        source: str,
        scene: str,
        seed: int,
        fps: float,
        width: int,
        height: int,
        action_space: ActionSpace,
        source_frame: str,
        config: Mapping[str, Any],
        extras: Sequence[str] = (),
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        threads: int = 1,
    ) -> None:
        self.episodes_dir = Path(episodes_dir)
        self.target = self.episodes_dir / check_name(episode_id, "episode id")
        if not isinstance(action_space, ActionSpace):
            raise TypeError(f"episode {episode_id}: action_space must be an ActionSpace, "
                            f"got {type(action_space).__name__}")
        extras = tuple(str(e) for e in extras)
        if len(set(extras)) != len(extras) or any(not e or "," in e or '"' in e or "\n" in e for e in extras):
            raise ValueError(f"episode {episode_id}: extras must be distinct names without ',', '\"' or "
                             f"newlines, got {list(extras)}")
        self.meta = EpisodeMeta(
            episode_id=episode_id, source=source, scene=scene, seed=_as_int(seed, "seed", episode_id),
            fps=float(fps), width=_as_int(width, "width", episode_id), height=_as_int(height, "height", episode_id),
            frame_count=1, action_space=action_space, source_frame=source_frame, config=dict(config),
            created_utc=_utc_now(), producer=producer(), video_sha256="0" * 64,
        )
        problems = meta_field_problems(self.meta.to_dict())  # frame_count and video_sha256 are placeholders
        if problems:
            raise ValueError(f"episode {episode_id}: " + "; ".join(f"{f}: {m}" for f, m in problems))
        try:
            json.dumps(self.meta.config, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"episode {episode_id}: config is not JSON-serialisable: {e}") from None
        if self.target.exists():
            raise FileExistsError(errno.EEXIST, f"episode already exists: {self.target}", str(self.target))
        if not self.episodes_dir.is_dir():
            raise FileNotFoundError(errno.ENOENT, f"episodes folder does not exist: {self.episodes_dir}",
                                    str(self.episodes_dir))

        self.action_space = action_space
        self.extras = extras
        self._extra_set = frozenset(extras)
        self._keys = action_space.keys
        self._keyset = frozenset(action_space.keys)
        self._rows: list[str] = []
        self._last_t = -math.inf
        self._done = False
        self.temp_dir = self.episodes_dir / f"{TEMP_PREFIX}{episode_id}-{os.getpid()}-{secrets.token_hex(4)}"
        self.temp_dir.mkdir()
        try:
            (self.temp_dir / _OWNER_FILE).write_text(
                json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started_utc": self.meta.created_utc})
            )
            self._video = VideoWriter(self.temp_dir / VIDEO_FILE, width, height, fps, crf=crf, preset=preset,
                                      threads=threads)
        except BaseException:
            _rmtree(self.temp_dir)
            raise

    # -- context manager
    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._done:
            return
        self.abort()
        if exc_type is None:
            raise EpisodeError(f"episode {self.meta.episode_id}: the writer was closed without commit(); "
                               "the episode was discarded")

    @property
    def frame_count(self) -> int:
        """Frames appended so far."""
        return len(self._rows)

    def append(self, obs: Observation, action: FrameAction) -> None:
        """Add frame ``i`` (``obs``) and the action that produced it (row 0: the idle action).

        Raises ``ValueError`` naming the frame for a wrong frame array, non-finite values, a wrong-sized pose,
        a non-increasing time, a key outside the action space or an undeclared extra.
        """
        if self._done:
            raise EpisodeError(f"episode {self.meta.episode_id}: append() after commit()/abort()")
        i = len(self._rows)
        where = f"episode {self.meta.episode_id} frame {i}"
        t = float(obs.t_s)
        if not math.isfinite(t) or t <= self._last_t or (i == 0 and t != 0.0):
            want = "0 for the first frame" if i == 0 else f"finite and after {self._last_t!r}"
            raise ValueError(f"{where}: t_s {t!r} must be {want}")
        if not action.keys <= self._keyset:
            raise ValueError(f"{where}: keys {sorted(action.keys - self._keyset)} are not in the action space "
                             f"{list(self._keys)}")
        pose = _floats(obs.pos_cm, 3, "pos_cm", where) + _floats(obs.quat_wxyz, 4, "quat_wxyz", where)
        norm = math.sqrt(pose[3] ** 2 + pose[4] ** 2 + pose[5] ** 2 + pose[6] ** 2)
        if abs(norm - 1.0) > 1e-6:
            raise ValueError(f"{where}: quat_wxyz norm {norm!r} is not 1 (tolerance 1e-6)")
        vel = _floats(obs.vel_cm_s, 3, "vel_cm_s", where)
        speed = float(obs.speed_cm_s)
        if not math.isfinite(speed):
            raise ValueError(f"{where}: speed_cm_s {speed!r} is not finite")
        extras = obs.extras
        if extras and not self._extra_set.issuperset(extras):
            raise ValueError(f"{where}: extras {sorted(set(extras) - self._extra_set)} were not declared "
                             f"(declared: {list(self.extras)})")
        extra_cells = []
        for name in self.extras:
            v = extras.get(name)
            if v is None:
                extra_cells.append("")
            else:
                v = float(v)
                if not math.isfinite(v):
                    raise ValueError(f"{where}: extra {name!r} value {v!r} is not finite")
                extra_cells.append(_r(v))
        mdx, mdy = action.mouse_dx, action.mouse_dy
        cells = [
            str(i), _r(t), *("1" if k in action.keys else "0" for k in self._keys),
            _r(action.d_pitch_deg), _r(action.d_yaw_deg),
            "" if mdx is None else _r(_finite(mdx, "mouse_dx", where)),
            "" if mdy is None else _r(_finite(mdy, "mouse_dy", where)),
            *map(_r, pose), *map(_r, vel), _r(speed), "1" if obs.collision else "0", *extra_cells,
        ]
        self._video.write(obs.frame)
        self._rows.append(",".join(cells))
        self._last_t = t

    def commit(self) -> Path:
        """Finish the episode and move it into place; returns ``episodes_dir/<episode_id>``.

        Raises ``FileExistsError`` when that folder exists, :class:`EpisodeError` when no frame was appended
        or the rows do not validate, :class:`capture.video.VideoError` when encoding failed; in every case
        the temp folder is removed.
        """
        from capture.validate import read_actions_csv

        if self._done:
            raise EpisodeError(f"episode {self.meta.episode_id}: commit() after commit()/abort()")
        try:
            if not self._rows:
                raise EpisodeError(f"episode {self.meta.episode_id}: no frames were appended")
            self._video.close()
            self.meta.frame_count = len(self._rows)
            csv_path = self.temp_dir / ACTIONS_FILE
            header = actions_columns(self.action_space, [extra_column(self.meta.source, e) for e in self.extras])
            _write_durable(csv_path, ",".join(header) + "\n" + "\n".join(self._rows) + "\n")
            _, problems = read_actions_csv(csv_path, action_space=self.action_space, source=self.meta.source,
                                           frame_count=self.meta.frame_count)
            if problems:
                raise EpisodeError(f"episode {self.meta.episode_id}: actions.csv does not validate:\n"
                                   + "\n".join(map(str, problems[:20])), problems)
            video_path = self.temp_dir / VIDEO_FILE
            _fsync_path(video_path)
            self.meta.video_sha256 = sha256_file(video_path)
            self.meta.created_utc = _utc_now()
            _write_durable(self.temp_dir / META_FILE, json.dumps(self.meta.to_dict(), indent=2) + "\n")
            (self.temp_dir / _OWNER_FILE).unlink()
            _fsync_path(self.temp_dir, directory=True)
            _rename_noreplace(self.temp_dir, self.target)
            _fsync_path(self.episodes_dir, directory=True)
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._rows = []
        return self.target

    def abort(self) -> None:
        """Stop ffmpeg and remove the temp folder (nothing is left behind). Safe to call more than once."""
        if self._done:
            return
        self._done = True
        self._rows = []
        try:
            self._video.abort()
        finally:
            _rmtree(self.temp_dir)


def _as_int(v: Any, name: str, episode_id: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"episode {episode_id}: {name} must be an integer, got {v!r}")
    return int(v)


def _floats(arr: Any, n: int, name: str, where: str) -> list[float]:
    a = np.asarray(arr, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{where}: {name} must have shape ({n},), got {a.shape}")
    out = a.tolist()
    if not all(map(math.isfinite, out)):
        raise ValueError(f"{where}: {name} {out} is not finite")
    return out


def _finite(v: Any, name: str, where: str) -> float:
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{where}: {name} {f!r} is not finite")
    return f


# --------------------------------------------------------------------------------------------------------
# reading


@dataclass
class Episode:
    """A complete, validated episode.

    ``actions``: the actions.csv table; ``frame`` int64, key columns and ``collision`` uint8, every other
    column float64 (empty ``mouse_dx``/``mouse_dy``/extra cells are NaN). Units as in DESIGN.md: t in s,
    d_pitch/d_yaw in degrees, positions in cm, velocities and speed in cm/s.
    """

    path: Path
    meta: EpisodeMeta
    actions: "pd.DataFrame"
    video_path: Path
    action_space: ActionSpace

    def __len__(self) -> int:
        return self.meta.frame_count

    @property
    def extra_columns(self) -> list[str]:
        """The extra (``<source>_<name>``) columns of actions.csv."""
        return list(self.actions.columns[len(actions_columns(self.action_space)):])

    def keyboard(self) -> np.ndarray:
        """Multi-hot keys, ``uint8[N, K]`` in action-space order."""
        return self.actions[self.action_space.columns].to_numpy(dtype=np.uint8)

    def mouse(self) -> np.ndarray:
        """Mouse look ``float64[N, 2]``: (d_pitch, d_yaw) in degrees."""
        return self.actions[["d_pitch", "d_yaw"]].to_numpy(dtype=np.float64)

    def poses(self) -> np.ndarray:
        """Camera poses ``float64[N, 7]``: x, y, z (cm), qw, qx, qy, qz."""
        return self.actions[list(POSE_COLUMNS)].to_numpy(dtype=np.float64)

    def times(self) -> np.ndarray:
        """Frame times ``float64[N]`` in seconds since the episode start."""
        return self.actions["t"].to_numpy(dtype=np.float64)

    def frames(self, width: int | None = None, height: int | None = None) -> Iterator[np.ndarray]:
        """Decoded RGB frames ``uint8[H, W, 3]`` in order (streamed; optional resize)."""
        for _, frame in iter_frames(self.video_path, width, height):
            yield frame


def read_episode(path: str | os.PathLike, *, check_video: bool = False) -> Episode:
    """Load and validate the episode folder ``path``.

    meta.json and actions.csv are always checked in full and video.mp4 must exist; ``check_video=True`` also
    probes the video and verifies its sha256 (slower). Raises :class:`EpisodeError` whose message and
    ``problems`` name each file, row, column and problem.
    """
    from capture.validate import inspect_episode

    path = Path(path)
    check = inspect_episode(path, check_video=check_video)
    if check.problems or check.meta is None or check.actions is None:
        raise EpisodeError(f"malformed episode {path}:\n" + "\n".join(f"  {p}" for p in check.problems),
                           check.problems)
    return Episode(path=path, meta=check.meta, actions=check.actions, video_path=path / VIDEO_FILE,
                   action_space=check.meta.action_space)
