"""Sekai footage (videos + camera extrinsics) as playmill episodes, and what every footage importer shares.

Sekai (see shared/reference/curation-formats.md): each clip ``<youtubeId>_<startFrame>_<endFrame>.mp4`` has an
``.npz`` with key ``extrinsic`` (N, 4, 4): camera-to-world matrices, translations normalised per video so that
``|t| <= 1`` on each axis, and optionally ``intrinsic`` (the focal length gives the field of view). The world
frame of the matrices is declared in ``imports.sekai.world`` (:class:`capture.frames.WorldFrame`; Sekai's: OpenCV
camera axes in a right-handed world whose y points down, the first camera's frame of a level camera) and
converted to the canonical Unreal frame (left-handed, Z up, X forward, Y right, cm) by :mod:`capture.frames`::

    p_ue = scale_cm * W @ t        R_ue = W @ R @ C        (Sekai's frame: W = C^T = [[0,0,1],[1,0,0],[0,-1,0]])

so the camera's forward becomes +X, its right +Y and its up +Z, and R_ue's columns are the camera's forward/right/up
axes in Unreal world coordinates, as in :mod:`capture.rotations`. A rotation whose determinant contradicts the
declared handedness is refused; a world frame that reads a Z-up reconstruction as Y-up gives labels that do not
follow the video, which the label check (``check``, :mod:`curation.import_check`) catches: the clip is refused (or
warned about) with the ``world`` under which its labels do follow the video. Sekai has no metric scale:
``scale_cm`` (cm per normalised unit) is a config value; ``None`` picks it per video so that the median speed of the
moving frames is ``walking_speed_cm_s`` (a walking person, ~1.4 m/s).

Actions, YUME-style (stdstu12/YUME decode_camera_controls_from_c2w_sequence.py): the relative transform
``T_rel = inv(T_{i-1}) @ T_i`` gives the motion in the previous camera's frame; key W when its forward translation >
the threshold, S when < -threshold, D / A for the right axis likewise; the vertical is ignored. The threshold is
the larger of ``move_threshold`` (normalised units per frame; YUME uses 1e-4 per frame of stride) and
``move_ratio`` times the frame's horizontal step: a camera that turns while it walks moves a little sideways in
the previous frame's axes (3 degrees of turn: 5 % of the step), which is no strafe. The mouse is the change of the Unreal rotator between frames:
``d_yaw`` = wrapped yaw difference (turn right +), ``d_pitch`` = pitch difference (look up +), in degrees, with a
dead zone ``rotation_deadzone_deg`` (YUME's 1e-3 rad is 0.057 deg). With no dead zone the mouse deltas sum
exactly to the camera's yaw and pitch.

Every importer writes episodes with :func:`write_episode_arrays` (:class:`capture.episode.EpisodeWriter`: atomic,
validated; the video re-encoded to H.264 yuv420p at the source frame rate), skips episodes that already exist
(reruns are cheap) and reports each failure with its reason without stopping.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Mapping

import numpy as np

from pydantic import model_validator

from capture.actions import DEFAULT_KEYS, ActionSpace, FrameAction
from capture.errors import InputError
from capture.frames import WorldFrame
from capture.imports import ImportResult
from capture.settings import Field, Invalid, settings
from capture.video import X264Preset

#: An action space's key names: lower-case letters, digits and '_', at least one.
ActionKeys = tuple[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")], ...]
#: ``check`` of an import: the label diagnosis off, warning with the fix, or refusing the faulty episodes.
CHECK_MODES: tuple[str, ...] = ("off", "warn", "refuse")

#: The type of an import's ``check`` key (``check: off`` in YAML is false: capture.settings reads it as "off").
CheckMode = Literal[CHECK_MODES]

log = logging.getLogger(__name__)

#: OpenCV camera/world axes -> Unreal axes (a reflection: right-handed -> left-handed).
CV_TO_UE = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# --------------------------------------------------------------------------------------------------------
# pure maths


def _orthonormal(r: np.ndarray) -> np.ndarray:
    """The nearest orthogonal matrix (SVD) with the determinant sign of ``r`` (+1: a rotation; -1: a rotation
    in a left-handed world), for extrinsics stored with rounding."""
    u, _, vt = np.linalg.svd(r)
    out = u @ vt
    if np.sign(np.linalg.det(out)) != np.sign(np.linalg.det(r)):
        u[:, -1] *= -1
        out = u @ vt
    return out


@dataclass
class Track:
    """What an importer writes, per video frame (N frames): ``keys`` (a list of key-name sets, or bool [N, K] over
    the action space), ``mouse`` float64 [N, 2] (d_pitch, d_yaw degrees), ``pos`` [N, 3] cm and ``quat`` [N, 4] in
    the Unreal frame, ``pitch``/``yaw`` degrees, ``vel`` [N, 3] cm/s, ``speed`` [N] signed forward ground speed
    cm/s; optional ``raw`` [N, 2] mouse counts (NaN: none), ``collision`` [N] and ``extras`` {name: [N]} (written
    as ``<source>_<name>`` columns, NaN an empty cell)."""

    keys: Any
    mouse: np.ndarray
    pos: np.ndarray
    quat: np.ndarray
    pitch: np.ndarray
    yaw: np.ndarray
    vel: np.ndarray
    speed: np.ndarray
    raw: np.ndarray | None = None
    collision: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.mouse)

    def key_sets(self, space: ActionSpace) -> list[set[str]]:
        """``keys`` as a list of key-name sets."""
        k = self.keys
        if isinstance(k, np.ndarray):
            return [{space.keys[j] for j in np.flatnonzero(row)} for row in k]
        return [set(x) for x in k]

    def rows(self, sl: slice) -> "Track":
        """Frames ``sl`` as a :class:`Track`."""
        cut = lambda a: None if a is None else a[sl]  # noqa: E731
        return Track(self.keys[sl], self.mouse[sl], self.pos[sl], self.quat[sl], self.pitch[sl], self.yaw[sl],
                     self.vel[sl], self.speed[sl], cut(self.raw), cut(self.collision),
                     {k: v[sl] for k, v in self.extras.items()})


def velocity_and_speed(pos: np.ndarray, yaw_deg: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(vel [N, 3] cm/s, speed [N] cm/s)``: backward differences of the positions (row 0: 0) and their component
    along the yaw's horizontal forward axis (signed: negative = backwards)."""
    pos = np.asarray(pos, dtype=np.float64)
    vel = np.zeros_like(pos)
    if len(pos) > 1:
        vel[1:] = np.diff(pos, axis=0) * fps
    y = np.radians(np.asarray(yaw_deg, dtype=np.float64))
    return vel, vel[:, 0] * np.cos(y) + vel[:, 1] * np.sin(y)


@dataclass
class SekaiActions(Track):
    """:class:`Track` of a c2w sequence (``keys`` key-name sets), plus ``scale_cm`` (the cm per normalised unit
    used) and ``rel_t`` [N, 3] (each frame's translation in the previous camera's axes, normalised)."""

    scale_cm: float = 1.0
    rel_t: np.ndarray | None = None


def sekai_actions(extrinsic: np.ndarray, fps: float, cfg: "SekaiImportConfig") -> SekaiActions:
    """Keys, mouse, Unreal-frame poses and speeds from Sekai c2w extrinsics ``(N, 4, 4)`` in the world frame
    ``cfg.world`` (pure; module doc). Raises ``ValueError`` for a malformed array or rotations whose handedness
    contradicts the declared frame."""
    from capture.frames import camera_to_body, handedness_problem, world_to_unreal
    from capture.rotations import matrix_to_quat, quat_to_rotator, wrap_deg

    e = np.asarray(extrinsic, dtype=np.float64)
    if e.ndim != 3 or e.shape[1:] != (4, 4) or len(e) < 1:
        raise ValueError(f"extrinsic must have shape (N, 4, 4), got {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("extrinsic has non-finite values")
    why = handedness_problem(e[:, :3, :3], cfg.world)
    if why is not None:
        raise ValueError(f"extrinsic: {why} (imports.sekai.world.handedness)")
    n = len(e)
    r_w = np.stack([_orthonormal(m[:3, :3]) for m in e])
    t_w = e[:, :3, 3]
    w_ue, c_body = world_to_unreal(cfg.world), camera_to_body(cfg.world.camera_axes)
    # translation of frame i in the camera axes of frame i-1 (YUME's T_rel = inv(T_{i-1}) @ T_i), then as the
    # camera's (forward, right, up)
    rel = np.zeros((n, 3))
    if n > 1:
        rel[1:] = np.einsum("nji,nj->ni", r_w[:-1], t_w[1:] - t_w[:-1])
    body = rel @ c_body  # rows: (forward, right, up) steps, normalised units
    step = np.linalg.norm(np.diff(t_w, axis=0), axis=1) if n > 1 else np.zeros(0)
    if cfg.scale_cm is not None:
        scale = float(cfg.scale_cm)
    else:
        moving = step[step > cfg.move_threshold]
        scale = cfg.walking_speed_cm_s / (float(np.median(moving)) * fps) if len(moving) else 100.0
    pos = scale * t_w @ w_ue.T
    quat = matrix_to_quat(w_ue @ r_w @ c_body)
    rot = np.array([quat_to_rotator(q) for q in quat])
    pitch, yaw = rot[:, 0], rot[:, 1]
    mouse = np.zeros((n, 2))
    if n > 1:
        mouse[1:, 0] = np.diff(pitch)
        mouse[1:, 1] = [wrap_deg(d) for d in np.diff(yaw)]
    mouse[np.abs(mouse) < cfg.rotation_deadzone_deg] = 0.0
    keys: list[set[str]] = []
    for i in range(n):
        k = set()
        if i > 0:
            fwd, right, _ = body[i]
            thr = max(cfg.move_threshold, cfg.move_ratio * float(np.hypot(fwd, right)))
            if fwd > thr:
                k.add("w")
            elif fwd < -thr:
                k.add("s")
            if right > thr:
                k.add("d")
            elif right < -thr:
                k.add("a")
        keys.append(k)
    vel, speed = velocity_and_speed(pos, yaw, fps)
    return SekaiActions(keys, mouse, pos, quat, pitch, yaw, vel, speed, scale_cm=scale, rel_t=rel)


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
    move_ratio: float = Field(0.25, ge=0, lt=1, description="and the share of the frame's horizontal step it must carry (turning while walking drifts a little sideways)")
    rotation_deadzone_deg: float = Field(0.0, ge=0, lt=180, description="mouse deltas below this become 0, degrees")
    camera_dir: str | None = Field(None, min_length=1, description="folder of the .npz camera files (null: next to each video)")
    frame_tolerance: int = Field(2, ge=0, description="allowed difference between video frames and extrinsics")
    keys: ActionKeys = Field(DEFAULT_KEYS, description="the action space written")
    world: WorldFrame = Field(default_factory=WorldFrame, description="the world frame of the extrinsics (Sekai: up -y, right-handed, OpenCV camera axes)")
    fov_deg: float | None = Field(None, gt=1, lt=179, description="horizontal field of view when the .npz has no 'intrinsic' (null: unknown; the checks then skip the mouse scale)")
    check: CheckMode = Field("refuse", description="label diagnosis against the video: off, warn, or refuse (quarantine a clip whose rotation contradicts the world frame; other faults are warnings)")
    check_gap: int = Field(3, ge=1, le=8, description="frames between the two images of the check's translation evidence (2-4 for walking footage: enough parallax)")
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


def write_episode_arrays(episodes_dir: Path, eid: str, track: Track, *, source: str, scene: str, seed: int,
                         fps: float, frames: Iterator[np.ndarray], action_space: ActionSpace, source_frame: str,
                         config: dict, crf: int = 18, preset: str = "veryfast") -> Path:
    """Write one imported episode: the ``track`` (:class:`Track`) of ``len(track)`` frames over the first as many
    of ``frames`` (the video, cropped to an even size)."""
    from capture.episode import EpisodeWriter
    from capture.world import Observation

    n, t = len(track), track
    keys = t.key_sets(action_space)
    writer = None
    try:
        for i, frame in enumerate(frames):
            if i >= n:
                break
            frame = _even_crop(frame)
            if writer is None:
                writer = EpisodeWriter(episodes_dir, eid, source=source, scene=scene, seed=seed, fps=fps,
                                       width=frame.shape[1], height=frame.shape[0], action_space=action_space,
                                       source_frame=source_frame, config=config, crf=crf, preset=preset,
                                       extras=tuple(sorted(t.extras)))
            obs = Observation(frame=frame, t_s=i / fps, pos_cm=t.pos[i], quat_wxyz=t.quat[i],
                              pitch_deg=float(t.pitch[i]), yaw_deg=float(t.yaw[i]), vel_cm_s=t.vel[i],
                              speed_cm_s=float(t.speed[i]),
                              collision=bool(t.collision[i]) if t.collision is not None else False,
                              extras={k: float(v[i]) for k, v in t.extras.items() if np.isfinite(v[i])})
            mdx = mdy = None
            if t.raw is not None:
                mdx = None if not np.isfinite(t.raw[i, 0]) else float(t.raw[i, 0])
                mdy = None if not np.isfinite(t.raw[i, 1]) else float(t.raw[i, 1])
            act = FrameAction(keys=frozenset(keys[i]), d_pitch_deg=float(t.mouse[i, 0]),
                              d_yaw_deg=float(t.mouse[i, 1]), mouse_dx=mdx, mouse_dy=mdy)
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


def sekai_fov(npz: Any, width: int, fallback: float | None) -> float | None:
    """Horizontal field of view from a Sekai camera file's optional ``intrinsic`` ((3, 3) or (N, 3, 3); focal length
    in pixels, or divided by the width as Sekai stores it), else ``fallback``."""
    if "intrinsic" not in getattr(npz, "files", ()):
        return fallback
    k = np.asarray(npz["intrinsic"], dtype=np.float64).reshape(-1, 3, 3)
    fx = float(np.median(k[:, 0, 0]))
    if not np.isfinite(fx) or fx <= 0:
        return fallback
    w = 1.0 if fx < 5.0 else float(width)
    return float(np.degrees(2.0 * np.arctan(w / (2.0 * fx))))


@dataclass
class SekaiClip:
    """One Sekai clip read and converted: ``name`` (the video's file name), its episode id parts, the extrinsics
    used, the video's frame rate and size, the horizontal field of view (None: unknown) and the actions."""

    name: str
    video: Path
    npz: Path
    eid: str
    scene: str
    seed: int
    index: int
    ext: np.ndarray
    fps: float
    fov_deg: float | None
    acts: SekaiActions


def read_sekai_clip(video: str, npz: str, cfg: SekaiImportConfig, index: int) -> SekaiClip:
    """Read a clip's camera file and video header and convert its actions; ValueError naming the file."""
    from capture.episode import episode_id
    from capture.video import probe_video

    name = Path(video).name
    scene, seed, idx = _sekai_name(Path(video).stem, index)
    eid = episode_id("sekai", scene, seed, idx)
    if not Path(npz).is_file():
        raise InputError(f"no camera file {npz}")
    ext = load_extrinsics(npz)
    info = probe_video(video)
    try:
        with np.load(npz, allow_pickle=False) as z:
            fov = sekai_fov(z, info.width, cfg.fov_deg)
    except ValueError:  # an unreadable 'intrinsic': the field of view stays unknown
        fov = cfg.fov_deg
    n = min(info.frame_count, len(ext))
    if abs(info.frame_count - len(ext)) > cfg.frame_tolerance:
        raise InputError(f"video has {info.frame_count} frames but {npz} has {len(ext)} extrinsics "
                         f"(tolerance {cfg.frame_tolerance})")
    try:
        acts = sekai_actions(ext[:n], info.fps, cfg)
    except ValueError as e:
        raise InputError(f"{npz}: 'extrinsic': {e}") from None
    return SekaiClip(name, Path(video), Path(npz), eid, scene, seed, idx, ext[:n], info.fps, fov, acts)


def _sekai_item(clip: SekaiClip, cfg: SekaiImportConfig, acts: SekaiActions | None = None):
    from curation.import_check import CheckItem

    a = acts or clip.acts
    space = ActionSpace(tuple(cfg.keys))
    kb = np.array([space.to_multihot(k) for k in a.keys], dtype=bool).reshape(len(a.keys), len(space))
    return CheckItem(clip.name, clip.video, space.keys, kb, a.mouse, a.speed, None, clip.fps, fov_deg=clip.fov_deg,
                     source="sekai", translation_gap=cfg.check_gap)


#: Faults a wrong world frame produces (it rotates the camera's axes): what ``check: refuse`` refuses a clip for.
#: Key faults alone (W/S, A/D) rest on weaker evidence in walking footage and stay warnings.
FRAME_FAULTS: tuple[str, ...] = ("axes_swap", "yaw_sign", "pitch_sign", "mirrored", "unrelated")


def _candidate_frames(configured: WorldFrame) -> list[tuple[int, WorldFrame]]:
    """The world frames :func:`world_fixes` tries, each with the number of settings it changes in ``configured``:
    every up axis, both handednesses, both camera conventions (the configured ``forward`` is kept where it is
    still horizontal; dropping it counts as a change)."""
    from capture.frames import AXES

    out = []
    for u in AXES:
        for h in ("right", "left"):
            for c in ("opencv", "opengl"):
                fwd = configured.forward if configured.forward is not None and configured.forward[1] != u[1] else None
                frame = WorldFrame(up=u, handedness=h, camera_axes=c, forward=fwd)
                changed = sum(getattr(frame, k) != getattr(configured, k)
                              for k in ("up", "handedness", "camera_axes", "forward"))
                out.append((changed, frame))
    return out


def world_fixes(clip: SekaiClip, cfg: SekaiImportConfig, scope: Any) -> list[str]:
    """The ``imports.sekai.world`` under which the labels follow the video, when the configured one's do not.

    Every other candidate frame (:func:`_candidate_frames`) whose handedness the rotations fit converts the clip's
    extrinsics again, and its labels are diagnosed against the video's motion measured for the configured frame
    (``scope``: the clip's :class:`curation.import_check.CheckReport`; no second decode). The frame that changes
    the fewest settings among those the diagnosis finds no fault in is named (:func:`curation.import_check.
    smallest_fix`): a wrong up axis is named as that, not as a different frame that fits as well. Empty when no
    candidate fits, or when the video could not be analysed."""
    from dataclasses import replace

    from curation.import_check import diagnose_item, smallest_fix

    if scope is None or not scope.motions or scope.motions[0] is None or scope.diagnosis is None:
        return []
    motion = scope.motions[0]

    def score(frame: WorldFrame):
        try:
            a = sekai_actions(clip.ext, clip.fps, replace(cfg, world=frame))
        except ValueError:
            return None  # the handedness does not fit these rotations
        return diagnose_item(_sekai_item(clip, cfg, a), motion).diagnosis

    found = smallest_fix(((n, f) for n, f in _candidate_frames(cfg.world) if n > 0), score, scope.diagnosis)
    if found is None:
        return []
    best, d = found
    keys = ", ".join(f"{k}: {v}" for k, v in best.to_dict().items() if v is not None)
    return [f"world: {{{keys}}}  # labels follow the video in this frame ({d.summary()})"]


def _import_one_sekai(video: str, npz: str, episodes_dir: str, cfg: SekaiImportConfig, index: int) -> dict[str, Any]:
    """One clip: ``{name, path | None, error | None, warnings, notes}``; never raises."""
    from capture.video import VideoError, iter_frames

    name = Path(video).name
    out: dict[str, Any] = {"name": name, "path": None, "error": None, "warnings": [], "notes": []}
    try:
        scene, seed, idx = _sekai_name(Path(video).stem, index)
        from capture.episode import episode_id

        if (Path(episodes_dir) / episode_id("sekai", scene, seed, idx) / "meta.json").is_file():
            out["error"] = "exists"
            return out
        clip = read_sekai_clip(video, npz, cfg, index)
        if cfg.check != "off":
            from curation.import_check import check_mode_outcome

            res = ImportResult()
            item = _sekai_item(clip, cfg)
            refused = check_mode_outcome([item], cfg.check, lambda d, scope: world_fixes(clip, cfg, scope), res,
                                         refuse_codes=FRAME_FAULTS)
            out["warnings"] += res.warnings
            out["notes"] += res.notes
            if refused:
                out["error"] = res.failed[0][1]
                return out
        acts = clip.acts
        config = {"source_video": name, "camera_file": clip.npz.name, "scale_cm": acts.scale_cm,
                  "scale_from": "config" if cfg.scale_cm is not None else f"walking speed {cfg.walking_speed_cm_s} cm/s",
                  "move_threshold": cfg.move_threshold, "move_ratio": cfg.move_ratio,
                  "rotation_deadzone_deg": cfg.rotation_deadzone_deg,
                  "world": cfg.world.to_dict()}
        if clip.fov_deg is not None:
            config["fov_deg"] = clip.fov_deg
        path = write_episode_arrays(
            Path(episodes_dir), clip.eid, acts, source="sekai", scene=clip.scene, seed=clip.seed, fps=clip.fps,
            frames=(f for _, f in iter_frames(video)), action_space=ActionSpace(tuple(cfg.keys)),
            source_frame="c2w, translation normalised: " + cfg.world.describe(), config=config, crf=cfg.crf,
            preset=cfg.preset,
        )
        out["path"] = str(path)
    except (InputError, VideoError) as e:  # the message names the file: reported, the import goes on
        out["error"] = str(e)
    except Exception as e:  # reported, the import goes on
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def _sekai_jobs(src: Path, episodes_dir: Path, cfg: SekaiImportConfig) -> list[tuple]:
    videos = [src] if src.is_file() else sorted(src.rglob("*.mp4"))
    cam_dir = Path(cfg.camera_dir) if cfg.camera_dir else None
    return [(str(v), str((cam_dir or v.parent) / f"{v.stem}.npz"), str(episodes_dir), cfg, i)
            for i, v in enumerate(videos)]


def import_sekai(src: str | os.PathLike, episodes_dir: str | os.PathLike,
                 config: SekaiImportConfig | Mapping[str, Any] | None = None) -> ImportResult:
    """Import every ``*.mp4`` under ``src`` (recursively) with its ``<stem>.npz`` camera file as a
    ``sekai`` episode in ``episodes_dir``. Existing episodes are skipped; failures are reported with reasons and
    quarantined (``<episodes_dir>/../rejects/sekai-<src>.jsonl``); with ``check`` the labels are diagnosed against
    each video first (:mod:`curation.import_check`) and a clip whose motion contradicts the world frame is
    refused (or warned about) with the ``world`` that fits it."""
    from capture.imports import write_rejects

    cfg = config if isinstance(config, SekaiImportConfig) else SekaiImportConfig.from_dict(config or {})
    src, episodes_dir = Path(src), Path(episodes_dir)
    if not src.exists():
        raise FileNotFoundError(f"Sekai source {src} does not exist")
    jobs = _sekai_jobs(src, episodes_dir, cfg)
    if not jobs:
        return ImportResult(nothing=f"no *.mp4 clip under {src} (Sekai clips are <youtubeId>_<start>_<end>.mp4 "
                                    "with a .npz camera file of the same name)")
    created = not episodes_dir.exists()
    episodes_dir.mkdir(parents=True, exist_ok=True)
    result = ImportResult()
    if cfg.workers > 1 and len(jobs) > 1:
        from capture.lifecycle import running_pool

        with running_pool(cfg.workers) as pool:  # workers die with this process
            outs = list(pool.map(_import_one_sekai, *zip(*jobs)))
    else:
        outs = [_import_one_sekai(*j) for j in jobs]
    for o in outs:
        result.warnings += [f"{o['name']}: {w}" if not w.startswith(o["name"]) else w for w in o["warnings"]]
        result.notes += o["notes"]
        if o["path"]:
            result.add_written(Path(o["path"]))
        elif o["error"] == "exists":
            result.skipped.append(o["name"])
        else:
            log.info("sekai import of %s failed: %s", o["name"], o["error"])
            result.failed.append((o["name"], o["error"] or "unknown error"))
    if result.failed:
        by_name = {Path(j[0]).name: j for j in jobs}
        result.rejects_path = write_rejects(
            episodes_dir, "sekai", src.resolve().stem, fallback="clips",
            records=[{"video": by_name[n][0], "camera_file": by_name[n][1], "reason": r} for n, r in result.failed])
    if created and not any(episodes_dir.iterdir()):
        episodes_dir.rmdir()
    return result


def check_sekai(src: str | os.PathLike, config: SekaiImportConfig | Mapping[str, Any] | None = None):
    """The label diagnosis of the Sekai clips under ``src`` without writing anything: a
    :class:`curation.import_check.CheckReport` whose ``fixes`` name the world frame that fits the video."""
    from curation.import_check import CheckReport, check_items

    cfg = config if isinstance(config, SekaiImportConfig) else SekaiImportConfig.from_dict(config or {})
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"Sekai source {src} does not exist")
    clips, failed = [], []
    for video, npz, _, _, i in _sekai_jobs(src, src, cfg):
        try:
            clips.append(read_sekai_clip(video, npz, cfg, i))
        except Exception as e:
            failed.append((Path(video).name, str(e)))
    report = check_items([_sekai_item(c, cfg) for c in clips]) if clips else CheckReport()
    report.failed += failed
    if report.diagnosis is not None and not report.diagnosis.ok:
        for i, (c, ec) in enumerate(zip(clips, report.episodes)):  # clips differ in content: the first that tells
            if ec.diagnosis is not None and not ec.diagnosis.ok:
                report.fixes = world_fixes(c, cfg, report.subset([i]))
                if report.fixes:
                    break
    return report
