"""Existing footage as playmill episodes: Sekai (videos + camera extrinsics) and generic mp4 + actions CSV.

Both write episodes with :class:`capture.episode.EpisodeWriter` (atomic, validated; the video re-encoded to
H.264 yuv420p at the source frame rate), skip episodes that already exist (reruns are cheap) and report
each failure with its reason without stopping.

Sekai (see shared/reference/curation-formats.md): each clip ``<youtubeId>_<startFrame>_<endFrame>.mp4`` has an
``.npz`` with key ``extrinsic`` (N, 4, 4): camera-to-world matrices in OpenCV axes (x right, y down,
z forward), translations normalised per video so that ``|t| <= 1`` on each axis. Conversion to the canonical
Unreal frame (left-handed, Z up, X forward, Y right, cm)::

    X_ue = z_cv,  Y_ue = x_cv,  Z_ue = -y_cv            (M = [[0,0,1],[1,0,0],[0,-1,0]], det M = -1)
    p_ue = scale_cm * M @ t_cv                          R_ue = M @ R_cv @ M^T  (det +1, a rotation)

so the camera's forward (+z_cv) becomes +X, its right (+x_cv) +Y and its up (-y_cv) +Z, and R_ue's columns
are the camera's forward/right/up axes in Unreal world coordinates, as in :mod:`capture.rotations`. This
assumes the reconstruction's world y axis points down (gravity), as it does when the world is the first
camera's frame and that camera is level. Sekai has no metric scale: ``scale_cm`` (cm per normalised unit) is
a config value; ``None`` picks it per video so that the median speed of the moving frames is
``walking_speed_cm_s`` (a walking person, ~1.4 m/s).

Actions, YUME-style (stdstu12/YUME decode_camera_controls_from_c2w_sequence.py): the relative transform
``T_rel = inv(T_{i-1}) @ T_i`` gives the motion in the previous camera's frame; key W when its z
(forward) translation > ``move_threshold``, S when < -threshold, D / A for x (right) likewise (normalised
units per frame; YUME uses 1e-4 per frame of stride; y, vertical, is ignored). The mouse is the change of the
Unreal rotator between frames: ``d_yaw`` = wrapped yaw difference (turn right +), ``d_pitch`` = pitch
difference (look up +), in degrees, with a dead zone ``rotation_deadzone_deg`` (YUME's 1e-3 rad is 0.057
deg). With no dead zone the mouse deltas sum exactly to the camera's yaw and pitch.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Mapping, Sequence

import numpy as np
from pydantic import model_validator

from capture.actions import DEFAULT_KEYS, ActionSpace, FrameAction
from capture.atomic import write_jsonl_atomic
from capture.errors import InputError
from capture.imports import ImportResult, rejects_path
from capture.names import slug
from capture.settings import Field, Invalid, SafeName, settings
from capture.video import X264Preset

#: An action space's key names: lower-case letters, digits and '_', at least one.
ActionKeys = tuple[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")], ...]

log = logging.getLogger(__name__)

#: OpenCV camera/world axes -> Unreal axes (a reflection: right-handed -> left-handed).
CV_TO_UE = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# --------------------------------------------------------------------------------------------------------
# pure maths


def _orthonormal(r: np.ndarray) -> np.ndarray:
    """The nearest rotation matrix (SVD), for extrinsics stored with rounding."""
    u, _, vt = np.linalg.svd(r)
    out = u @ vt
    if np.linalg.det(out) < 0:
        u[:, -1] *= -1
        out = u @ vt
    return out


@dataclass
class SekaiActions:
    """Per-frame values inferred from a c2w sequence. ``keys`` list of key-name sets; ``mouse`` float64
    [N, 2] (d_pitch, d_yaw) degrees; ``pos`` [N, 3] cm and ``quat`` [N, 4] in the Unreal frame; ``pitch``/
    ``yaw`` degrees; ``vel`` [N, 3] cm/s; ``speed`` [N] signed forward ground speed, cm/s; ``scale_cm``
    the cm per normalised unit used; ``rel_t`` [N, 3] camera-frame translation (normalised, OpenCV axes)."""

    keys: list[set[str]]
    mouse: np.ndarray
    pos: np.ndarray
    quat: np.ndarray
    pitch: np.ndarray
    yaw: np.ndarray
    vel: np.ndarray
    speed: np.ndarray
    scale_cm: float
    rel_t: np.ndarray


def sekai_actions(extrinsic: np.ndarray, fps: float, cfg: "SekaiImportConfig") -> SekaiActions:
    """Keys, mouse, Unreal-frame poses and speeds from Sekai c2w extrinsics ``(N, 4, 4)`` (pure)."""
    from capture.rotations import forward_vector, matrix_to_quat, quat_to_rotator, wrap_deg

    e = np.asarray(extrinsic, dtype=np.float64)
    if e.ndim != 3 or e.shape[1:] != (4, 4) or len(e) < 1:
        raise ValueError(f"extrinsic must have shape (N, 4, 4), got {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("extrinsic has non-finite values")
    n = len(e)
    r_cv = np.stack([_orthonormal(m[:3, :3]) for m in e])
    t_cv = e[:, :3, 3]
    # translation of frame i in the camera frame of i-1 (YUME's T_rel = inv(T_{i-1}) @ T_i)
    rel = np.zeros((n, 3))
    if n > 1:
        rel[1:] = np.einsum("nji,nj->ni", r_cv[:-1], t_cv[1:] - t_cv[:-1])
    step = np.linalg.norm(np.diff(t_cv, axis=0), axis=1) if n > 1 else np.zeros(0)
    if cfg.scale_cm is not None:
        scale = float(cfg.scale_cm)
    else:
        moving = step[step > cfg.move_threshold]
        scale = cfg.walking_speed_cm_s / (float(np.median(moving)) * fps) if len(moving) else 100.0
    pos = scale * t_cv @ CV_TO_UE.T
    r_ue = CV_TO_UE @ r_cv @ CV_TO_UE.T
    quat = matrix_to_quat(r_ue)
    rot = np.array([quat_to_rotator(q) for q in quat])
    pitch, yaw = rot[:, 0], rot[:, 1]
    mouse = np.zeros((n, 2))
    if n > 1:
        mouse[1:, 0] = np.diff(pitch)
        mouse[1:, 1] = [wrap_deg(d) for d in np.diff(yaw)]
    mouse[np.abs(mouse) < cfg.rotation_deadzone_deg] = 0.0
    thr = cfg.move_threshold
    keys: list[set[str]] = []
    for i in range(n):
        k = set()
        if i > 0:
            x, _, z = rel[i]
            if z > thr:
                k.add("w")
            elif z < -thr:
                k.add("s")
            if x > thr:
                k.add("d")
            elif x < -thr:
                k.add("a")
        keys.append(k)
    vel = np.zeros((n, 3))
    if n > 1:
        vel[1:] = np.diff(pos, axis=0) * fps
    speed = np.array([float(vel[i, :2] @ forward_vector(0.0, yaw[i])[:2]) for i in range(n)])
    return SekaiActions(keys, mouse, pos, quat, pitch, yaw, vel, speed, scale, rel)


# --------------------------------------------------------------------------------------------------------
# configs


@settings
class SekaiImportConfig:
    """Sekai import settings (``imports.sekai`` in pipeline.yaml). Sekai has no metric scale: ``scale_cm`` gives
    it, or (null) each video's median moving speed is taken to be ``walking_speed_cm_s``. Where the video and the
    extrinsics differ in length by at most ``frame_tolerance``, the shorter is used."""

    scale_cm: float | None = Field(None, gt=0, description="cm per normalised translation unit (null: from walking_speed_cm_s)")
    walking_speed_cm_s: float = Field(140.0, gt=0, description="the median moving speed when scale_cm is null, cm/s")
    move_threshold: float = Field(1e-4, ge=0, description="normalised translation per frame that presses W/S/A/D")
    rotation_deadzone_deg: float = Field(0.0, ge=0, lt=180, description="mouse deltas below this become 0, degrees")
    camera_dir: str | None = Field(None, min_length=1, description="folder of the .npz camera files (null: next to each video)")
    frame_tolerance: int = Field(2, ge=0, description="allowed difference between video frames and extrinsics")
    keys: ActionKeys = Field(DEFAULT_KEYS, description="the action space written")
    crf: int = Field(18, ge=0, le=51, description="x264 quality of the re-encoded video")
    preset: X264Preset = Field("veryfast", description="x264 preset of the re-encoded video")
    workers: int = Field(1, ge=1, description="parallel processes")

    @model_validator(mode="after")
    def _check(self) -> "SekaiImportConfig":
        missing = [k for k in ("w", "s", "a", "d") if k not in self.keys]
        if missing:
            raise Invalid("keys", list(self.keys), f"an action space with the keys the import infers (missing "
                                                   f"{missing})")
        return self


def _sekai_name(stem: str, index: int) -> tuple[str, int, int]:
    """``(scene, seed, index)`` for an episode id: ``<youtubeId>_<start>_<end>`` -> (youtubeId, start, end)."""
    parts = stem.rsplit("_", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return stem, 0, index


def _even_crop(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.ascontiguousarray(frame[: h - h % 2, : w - w % 2])


def _write_episode(episodes_dir: Path, eid: str, *, source: str, scene: str, seed: int, fps: float,
                   frames: Iterator[np.ndarray], n: int, action_space: ActionSpace, source_frame: str,
                   config: dict, pos: np.ndarray, quat: np.ndarray, pitch: np.ndarray, yaw: np.ndarray,
                   vel: np.ndarray, speed: np.ndarray, keys: Sequence[set[str]], mouse: np.ndarray,
                   raw: np.ndarray | None = None, collision: np.ndarray | None = None, crf: int = 18,
                   preset: str = "veryfast") -> Path:
    from capture.episode import EpisodeWriter
    from capture.world import Observation

    writer = None
    try:
        for i, frame in enumerate(frames):
            if i >= n:
                break
            frame = _even_crop(frame)
            if writer is None:
                writer = EpisodeWriter(episodes_dir, eid, source=source, scene=scene, seed=seed, fps=fps,
                                       width=frame.shape[1], height=frame.shape[0], action_space=action_space,
                                       source_frame=source_frame, config=config, crf=crf, preset=preset)
            obs = Observation(frame=frame, t_s=i / fps, pos_cm=pos[i], quat_wxyz=quat[i], pitch_deg=float(pitch[i]),
                              yaw_deg=float(yaw[i]), vel_cm_s=vel[i], speed_cm_s=float(speed[i]),
                              collision=bool(collision[i]) if collision is not None else False)
            mdx = mdy = None
            if raw is not None:
                mdx = None if not np.isfinite(raw[i, 0]) else float(raw[i, 0])
                mdy = None if not np.isfinite(raw[i, 1]) else float(raw[i, 1])
            act = FrameAction(keys=frozenset(keys[i]), d_pitch_deg=float(mouse[i, 0]), d_yaw_deg=float(mouse[i, 1]),
                              mouse_dx=mdx, mouse_dy=mdy)
            writer.append(obs, act)
        if writer is None:
            raise ValueError("the video has no frames")
        if writer.frame_count < n:
            raise ValueError(f"the video has {writer.frame_count} frames, expected {n}")
        return writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise


def load_extrinsics(npz: str | os.PathLike) -> np.ndarray:
    """The ``extrinsic`` array of a Sekai camera file as float64 ``(N, 4, 4)``, read without pickle.

    Raises :class:`capture.errors.InputError` naming the file, the key and what was expected: not an .npz
    (zip) archive, an unreadable member, no ``extrinsic`` key, an object (pickled) array, a wrong dtype or
    shape, non-finite values."""
    import zipfile

    p = Path(npz)
    want = "a NumPy .npz archive with the array 'extrinsic': float (N, 4, 4) camera-to-world matrices"
    if not zipfile.is_zipfile(p):  # np.load would take any other bytes for a pickle
        raise InputError(f"{p}: not an .npz archive (expected {want})")
    try:
        with np.load(p, allow_pickle=False) as z:
            if "extrinsic" not in z.files:
                raise InputError(f"{p}: no 'extrinsic' array (keys: {z.files}; expected {want})")
            raw = z["extrinsic"]
    except InputError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise InputError(f"{p}: 'extrinsic' is an object array, which would need pickle to load; expected "
                             f"{want}") from None
        raise InputError(f"{p}: unreadable 'extrinsic' array ({e}); expected {want}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise InputError(f"{p}: unreadable .npz archive ({type(e).__name__}: {e}); expected {want}") from None
    if raw.dtype.kind not in "fiu":
        raise InputError(f"{p}: 'extrinsic' has dtype {raw.dtype}; expected {want}")
    ext = raw.astype(np.float64)
    if ext.ndim != 3 or ext.shape[1:] != (4, 4) or len(ext) < 1:
        raise InputError(f"{p}: 'extrinsic' has shape {ext.shape}; expected {want}")
    bad = np.flatnonzero(~np.isfinite(ext).all(axis=(1, 2)))
    if bad.size:
        raise InputError(f"{p}: 'extrinsic' matrix {int(bad[0])} has NaN or infinite values ({bad.size} such "
                         "frame(s)); expected finite camera-to-world matrices")
    return ext


def _import_one_sekai(video: str, npz: str, episodes_dir: str, cfg: SekaiImportConfig, index: int) -> tuple[str, str | None, str | None]:
    """(name, written path or None, error or None); never raises."""
    from capture.episode import episode_id
    from capture.video import VideoError, iter_frames, probe_video

    name = Path(video).name
    try:
        stem = Path(video).stem
        scene, seed, idx = _sekai_name(stem, index)
        eid = episode_id("sekai", scene, seed, idx)
        if (Path(episodes_dir) / eid / "meta.json").is_file():
            return name, None, "exists"
        if not Path(npz).is_file():
            return name, None, f"no camera file {npz}"
        ext = load_extrinsics(npz)
        info = probe_video(video)
        n = min(info.frame_count, len(ext))
        if abs(info.frame_count - len(ext)) > cfg.frame_tolerance:
            return name, None, (f"video has {info.frame_count} frames but {npz} has {len(ext)} extrinsics "
                                f"(tolerance {cfg.frame_tolerance})")
        try:
            acts = sekai_actions(ext[:n], info.fps, cfg)
        except ValueError as e:
            return name, None, f"{npz}: 'extrinsic': {e}"
        config = {"source_video": name, "camera_file": Path(npz).name, "scale_cm": acts.scale_cm,
                  "scale_from": "config" if cfg.scale_cm is not None else f"walking speed {cfg.walking_speed_cm_s} cm/s",
                  "move_threshold": cfg.move_threshold, "rotation_deadzone_deg": cfg.rotation_deadzone_deg,
                  "axis_mapping": "X_ue=z_cv, Y_ue=x_cv, Z_ue=-y_cv"}
        path = _write_episode(
            Path(episodes_dir), eid, source="sekai", scene=scene, seed=seed, fps=info.fps,
            frames=(f for _, f in iter_frames(video)), n=n, action_space=ActionSpace(tuple(cfg.keys)),
            source_frame="opencv_c2w_normalised", config=config, pos=acts.pos, quat=acts.quat, pitch=acts.pitch,
            yaw=acts.yaw, vel=acts.vel, speed=acts.speed, keys=acts.keys, mouse=acts.mouse, crf=cfg.crf,
            preset=cfg.preset,
        )
        return name, str(path), None
    except (InputError, VideoError) as e:  # the message names the file: reported, the import goes on
        return name, None, str(e)
    except Exception as e:  # reported, the import goes on
        return name, None, f"{type(e).__name__}: {e}"


def import_sekai(src: str | os.PathLike, episodes_dir: str | os.PathLike,
                 config: SekaiImportConfig | Mapping[str, Any] | None = None) -> ImportResult:
    """Import every ``*.mp4`` under ``src`` (recursively) with its ``<stem>.npz`` camera file as a
    ``sekai`` episode in ``episodes_dir``. Existing episodes are skipped; a clip that cannot be imported is
    quarantined with its reason in ``<episodes_dir>/../rejects/sekai-<src name>.jsonl`` and the others import; no
    clip at all is reported in ``ImportResult.nothing``."""
    cfg = config if isinstance(config, SekaiImportConfig) else SekaiImportConfig.from_dict(config or {})
    src, episodes_dir = Path(src), Path(episodes_dir)
    if not src.exists():
        raise FileNotFoundError(f"Sekai source {src} does not exist")
    episodes_dir.mkdir(parents=True, exist_ok=True)
    videos = [src] if src.is_file() else sorted(src.rglob("*.mp4"))
    if not videos:
        return ImportResult(nothing=f"no *.mp4 clip under {src} (Sekai clips are <youtubeId>_<start>_<end>.mp4 "
                                    "with a .npz camera file of the same name)")
    cam_dir = Path(cfg.camera_dir) if cfg.camera_dir else None
    jobs = [(str(v), str((cam_dir or v.parent) / f"{v.stem}.npz"), str(episodes_dir), cfg, i)
            for i, v in enumerate(videos)]
    result = ImportResult()
    if cfg.workers > 1 and len(jobs) > 1:
        from capture.lifecycle import running_pool

        with running_pool(cfg.workers) as pool:  # workers die with this process
            outs = list(pool.map(_import_one_sekai, *zip(*jobs)))
    else:
        outs = [_import_one_sekai(*j) for j in jobs]
    records = []
    for job, (name, path, err) in zip(jobs, outs):
        if path:
            result.add_written(Path(path))
        elif err == "exists":
            result.skipped.append(name)
        else:
            log.info("sekai import of %s failed: %s", name, err)
            result.failed.append((name, err or "unknown error"))
            records.append({"source": "sekai", "video": job[0], "camera_file": job[1], "reason": err})
    if records:
        result.rejects_path = write_jsonl_atomic(
            rejects_path(episodes_dir, "sekai", slug(src.resolve().stem, fallback="clips")), records)
    return result


# --------------------------------------------------------------------------------------------------------
# generic mp4 + CSV


@settings
class GenericMapping:
    """How the columns of a generic actions CSV (one row per video frame, in order) map to the episode (the
    ``--mapping`` file of ``playmill import generic``, or ``imports.generic``).

    Keys: ``keys`` maps an action key to a column (held when the cell is truthy: 1, true, yes, x), or
    ``keys_column`` is one column of held key names separated by ``keys_separator`` (e.g. ``w+shift``). Mouse:
    ``d_pitch``/``d_yaw`` columns times ``mouse_scale_deg`` give degrees (look up +, turn right +; a negative
    scale flips a source's sign); ``mouse_dx``/``mouse_dy`` raw counts are kept as they are. Pose: ``x``/``y``/
    ``z`` times ``position_scale_cm`` (already in the Unreal frame); orientation from ``qw``..``qz``, or
    ``pitch``/``yaw``/``roll`` (degrees), else the running sum of the mouse. ``speed``: signed forward ground
    speed (cm/s), else computed from the positions (0 without them: disable curation's velocity stage).
    ``scene``/``seed``/``index`` name the episode ``generic-<scene>-s<seed>-i<index>``."""

    keys: dict[str, str] = Field(default_factory=dict, description="action key -> CSV column (held when truthy)")
    keys_column: str | None = Field(None, min_length=1, description="one column of held key names, e.g. w+shift")
    keys_separator: str = Field("+", min_length=1, description="separator of keys_column")
    d_pitch: str | None = Field(None, min_length=1, description="mouse pitch column (look up +)")
    d_yaw: str | None = Field(None, min_length=1, description="mouse yaw column (turn right +)")
    mouse_scale_deg: float = Field(1.0, description="degrees per unit of d_pitch/d_yaw (negative flips the sign)")
    mouse_dx: str | None = Field(None, min_length=1, description="raw mouse x count column")
    mouse_dy: str | None = Field(None, min_length=1, description="raw mouse y count column")
    x: str | None = Field(None, min_length=1, description="position x column (Unreal frame)")
    y: str | None = Field(None, min_length=1, description="position y column")
    z: str | None = Field(None, min_length=1, description="position z column")
    position_scale_cm: float = Field(1.0, gt=0, description="cm per position unit")
    qw: str | None = Field(None, min_length=1, description="quaternion w column")
    qx: str | None = Field(None, min_length=1, description="quaternion x column")
    qy: str | None = Field(None, min_length=1, description="quaternion y column")
    qz: str | None = Field(None, min_length=1, description="quaternion z column")
    pitch: str | None = Field(None, min_length=1, description="pitch column, degrees")
    yaw: str | None = Field(None, min_length=1, description="yaw column, degrees")
    roll: str | None = Field(None, min_length=1, description="roll column, degrees")
    speed: str | None = Field(None, min_length=1, description="signed forward ground speed column, cm/s")
    collision: str | None = Field(None, min_length=1, description="0/1 collision column")
    action_keys: ActionKeys | None = Field(None, description="the action space (null: playmill's default keys)")
    scene: SafeName = Field("generic", max_length=64, description="scene part of the episode id (a safe name)")
    seed: int = Field(0, ge=0, description="seed part of the episode id")
    index: int = Field(0, ge=0, description="index part of the episode id")
    fps: float | None = Field(None, gt=0, le=240, description="frame rate (null: the video's)")
    frame_tolerance: int = Field(0, ge=0, description="allowed difference between CSV rows and video frames")

    @model_validator(mode="after")
    def _check(self) -> "GenericMapping":
        space = ActionSpace(tuple(self.action_keys) if self.action_keys else DEFAULT_KEYS)
        for k in self.keys:
            if k not in space.keys:
                raise Invalid(f"keys.{k}", self.keys[k], f"a column for a key of the action space ({', '.join(space.keys)})")
        quat = [c for c in (self.qw, self.qx, self.qy, self.qz) if c is not None]
        if quat and len(quat) != 4:
            raise Invalid("qw", self.qw, "all four of qw, qx, qy, qz, or none")
        return self


_TRUE = {"1", "true", "yes", "y", "x", "t", "on", "pressed", "down"}


def _truthy(col) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):
        return col.fillna(0).to_numpy(dtype=np.float64) != 0
    return col.fillna("").astype(str).str.strip().str.lower().isin(_TRUE).to_numpy()


def generic_actions(df, mapping: GenericMapping, fps: float) -> dict[str, Any]:
    """Per-frame arrays from a generic actions table (pure): keys (list of sets), mouse, raw, pos, quat,
    pitch, yaw, vel, speed, collision, and the action space."""
    import pandas as pd

    from capture.rotations import forward_vector, quat_to_rotator, rotator_to_quat

    n = len(df)

    def col(name: str | None, what: str) -> np.ndarray | None:
        if name is None:
            return None
        if name not in df.columns:
            raise ValueError(f"column {name!r} (mapped to {what}) is not in the CSV; columns: {list(df.columns)}")
        v = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)  # text cells become NaN
        if not np.isfinite(v).all() and what not in ("mouse_dx", "mouse_dy"):
            bad = int(np.flatnonzero(~np.isfinite(v))[0])
            raise ValueError(f"column {name!r} ({what}) has an empty or non-numeric cell at row {bad}")
        return v

    keys_space = tuple(mapping.action_keys) if mapping.action_keys else DEFAULT_KEYS
    space = ActionSpace(keys_space)
    held = [set() for _ in range(n)]
    for k, c in mapping.keys.items():
        space.index(k)
        if c not in df.columns:
            raise ValueError(f"column {c!r} (key {k!r}) is not in the CSV; columns: {list(df.columns)}")
        for i in np.flatnonzero(_truthy(df[c])):
            held[i].add(k)
    if mapping.keys_column is not None:
        if mapping.keys_column not in df.columns:
            raise ValueError(f"keys column {mapping.keys_column!r} is not in the CSV")
        for i, cell in enumerate(df[mapping.keys_column].fillna("").astype(str)):
            for k in (p.strip().lower() for p in cell.split(mapping.keys_separator)):
                if k:
                    space.index(k)
                    held[i].add(k)
    mouse = np.zeros((n, 2))
    for j, (name, what) in enumerate(((mapping.d_pitch, "d_pitch"), (mapping.d_yaw, "d_yaw"))):
        v = col(name, what)
        if v is not None:
            mouse[:, j] = v * mapping.mouse_scale_deg
    raw = None
    if mapping.mouse_dx or mapping.mouse_dy:
        raw = np.full((n, 2), np.nan)
        for j, (name, what) in enumerate(((mapping.mouse_dx, "mouse_dx"), (mapping.mouse_dy, "mouse_dy"))):
            v = col(name, what)
            if v is not None:
                raw[:, j] = v
    pos = np.zeros((n, 3))
    have_pos = False
    for j, (name, what) in enumerate(((mapping.x, "x"), (mapping.y, "y"), (mapping.z, "z"))):
        v = col(name, what)
        if v is not None:
            pos[:, j] = v * mapping.position_scale_cm
            have_pos = True
    qcols = [mapping.qw, mapping.qx, mapping.qy, mapping.qz]
    if all(qcols):
        quat = np.column_stack([col(c, f"q{'wxyz'[i]}") for i, c in enumerate(qcols)])
        quat /= np.linalg.norm(quat, axis=1, keepdims=True)
        rot = np.array([quat_to_rotator(q) for q in quat])
        pitch, yaw = rot[:, 0], rot[:, 1]
    else:
        p, y, r = col(mapping.pitch, "pitch"), col(mapping.yaw, "yaw"), col(mapping.roll, "roll")
        pitch = p if p is not None else np.cumsum(mouse[:, 0]) - mouse[0, 0]
        yaw = y if y is not None else np.cumsum(mouse[:, 1]) - mouse[0, 1]
        roll = r if r is not None else np.zeros(n)
        quat = np.stack([rotator_to_quat(pitch[i], yaw[i], roll[i]) for i in range(n)])
    vel = np.zeros((n, 3))
    if have_pos and n > 1:
        vel[1:] = np.diff(pos, axis=0) * fps
    sp = col(mapping.speed, "speed")
    if sp is None:
        sp = np.array([float(vel[i, :2] @ forward_vector(0.0, yaw[i])[:2]) for i in range(n)])
    colv = col(mapping.collision, "collision")
    return dict(keys=held, mouse=mouse, raw=raw, pos=pos, quat=quat, pitch=np.asarray(pitch, float),
                yaw=np.asarray(yaw, float), vel=vel, speed=sp, collision=None if colv is None else colv != 0,
                space=space)


def import_generic(mp4: str | os.PathLike, csv: str | os.PathLike, episodes_dir: str | os.PathLike,
                   column_mapping: GenericMapping | Mapping[str, Any]) -> Path:
    """Import one mp4 + actions CSV (one row per video frame) as a ``generic`` episode; returns its folder.

    Raises :class:`capture.errors.InputError` naming the file and column for a CSV that does not fit the
    mapping or the video, :class:`capture.video.VideoError` for an unreadable video, ``FileExistsError`` when
    the episode exists already. The sources are only read.
    """
    import pandas as pd

    from capture.episode import episode_id
    from capture.video import iter_frames, probe_video

    mapping = column_mapping if isinstance(column_mapping, GenericMapping) else GenericMapping.from_dict(column_mapping)
    mp4, csv, episodes_dir = Path(mp4), Path(csv), Path(episodes_dir)
    episodes_dir.mkdir(parents=True, exist_ok=True)
    eid = episode_id("generic", mapping.scene, mapping.seed, mapping.index)
    if (episodes_dir / eid).exists():
        raise FileExistsError(errno.EEXIST, f"episode {episodes_dir / eid} exists already", str(episodes_dir / eid))
    info = probe_video(mp4)
    fps = float(mapping.fps or info.fps)
    try:
        df = pd.read_csv(csv, encoding="utf-8-sig")  # a byte-order mark (spreadsheet exports) is fine
    except Exception as e:
        raise InputError(f"{csv}: unreadable CSV: {e}") from None
    if abs(len(df) - info.frame_count) > mapping.frame_tolerance:
        raise InputError(f"{csv}: {len(df)} rows but {mp4} has {info.frame_count} frames (one row per frame; "
                         f"tolerance {mapping.frame_tolerance})")
    n = min(len(df), info.frame_count)
    try:
        a = generic_actions(df.iloc[:n].reset_index(drop=True), mapping, fps)
    except (ValueError, KeyError) as e:
        raise InputError(f"{csv}: {e}") from None
    config = {"source_video": mp4.name, "actions_csv": csv.name,
              "column_mapping": {k: (dict(v) if isinstance(v, Mapping) else (list(v) if isinstance(v, tuple) else v))
                                 for k, v in mapping.__dict__.items() if v not in (None, {}, ())}}
    return _write_episode(
        episodes_dir, eid, source="generic", scene=mapping.scene, seed=mapping.seed, fps=fps,
        frames=(f for _, f in iter_frames(mp4)), n=n, action_space=a["space"], source_frame="unreal",
        config=config, pos=a["pos"], quat=a["quat"], pitch=a["pitch"], yaw=a["yaw"], vel=a["vel"],
        speed=a["speed"], keys=a["keys"], mouse=a["mouse"], raw=a["raw"], collision=a["collision"],
    )


def import_generic_result(mp4: str | os.PathLike, csv: str | os.PathLike, episodes_dir: str | os.PathLike,
                          column_mapping: GenericMapping | Mapping[str, Any]) -> ImportResult:
    """:func:`import_generic` reported as an :class:`capture.imports.ImportResult` (what ``playmill import
    generic`` prints): an episode already there is skipped; a video or CSV that cannot be imported is quarantined
    with its reason in ``<episodes_dir>/../rejects/generic-<csv name>.jsonl``. A bad mapping still raises
    :class:`capture.settings.ConfigError`."""
    from capture.video import VideoError

    mapping = column_mapping if isinstance(column_mapping, GenericMapping) else GenericMapping.from_dict(column_mapping)
    res = ImportResult()
    try:
        res.add_written(import_generic(mp4, csv, episodes_dir, mapping))
    except FileExistsError as e:
        res.skipped.append(Path(str(e.filename or e)).name)
    except (InputError, VideoError) as e:
        res.rejects_path = write_jsonl_atomic(
            rejects_path(episodes_dir, "generic", slug(Path(csv).stem, fallback="actions")),
            [{"source": "generic", "video": str(mp4), "actions_csv": str(csv), "reason": str(e)}])
        res.failed.append((Path(mp4).name, str(e)))
    return res
