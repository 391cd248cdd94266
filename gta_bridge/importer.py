"""Import a GTA V recording session (behaviour.jsonl + ticks.csv + OBS video) into playmill episodes.

    import_gta(recording_dir, episodes_dir, config) -> GtaImportResult
    playmill import gta RECORDING_DIR... [--out DIR] [--set imports.gta.KEY=VALUE]

Steps
    1. Read the log (:mod:`gta_bridge.recording`): bad lines / out-of-order / non-finite ticks are quarantined,
       an unknown schema version or an out-of-range scenario is an error.
    2. Per tick: the camera pose from the rig (``Camera_position = Vehicle_position + R_vehicle * offset``,
       float64) converted to the Unreal frame (:mod:`gta_bridge.frames`), velocities, the signed forward speed,
       and the keys inferred from the dynamics with hysteresis (:mod:`gta_bridge.keys`).
    3. Pass 1 over the video at a small size: presentation times, sync-marker codes, image motion, repeated
       frames. Alignment (:mod:`gta_bridge.sync`): by the marker, or without one by cross-correlating image
       motion with the logged camera yaw.
    4. Each video frame is given the tick it shows; frames are resampled onto a constant-rate grid at
       ``config.fps`` (nearest frame in time, so dropped frames leave no hole shorter than
       ``max_frame_gap_ms`` and duplicated frames keep the tick they really show). Spans without usable video or
       ticks are cut out and quarantined with their reason; the remaining runs become episodes.
    5. Pass 2 streams the chosen frames at the output size into :class:`capture.episode.EpisodeWriter`
       (source ``gta``), one episode per run. Rejects go to a JSON-lines file (``GtaImportResult.rejects_path``,
       by default ``<episodes_dir>/../rejects/gta-<session_id>.jsonl``).

Per frame: keys held at any tick since the previous frame (row 0: the keys held at its tick), mouse
``d_pitch``/``d_yaw`` = the change of the camera's Unreal pitch/yaw since the previous frame, pose and velocity of
the frame's tick, extras ``gta_steer`` (logged wheel angle, deg), ``gta_throttle``, ``gta_brake``, ``gta_gear``,
``gta_speed_mps`` (signed forward speed), ``gta_tick``, ``gta_game_time_ms``, ``gta_video_frame``,
``gta_in_vehicle``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

import numpy as np
from pydantic import AfterValidator

from capture.actions import ActionSpace, FrameAction
from capture.atomic import write_jsonl_atomic
from capture.episode import EpisodeWriter, META_FILE, episode_id
from capture.errors import InputError
from capture.imports import ImportResult, rejects_path as quarantine_path
from capture.names import check_name, slug
from capture.rotations import quat_to_matrix
from capture.settings import Field, Invalid, SafeName, settings
from capture.video import DEFAULT_CRF, DEFAULT_PRESET, VideoError, X264Preset, iter_frames, probe_video
from capture.world import Observation
from gta_bridge import frames as fr
from gta_bridge.keys import (KeyInferenceConfig, controls_agreement, detect_steering_sign, infer_drive_keys,
                             infer_walk_keys)
from gta_bridge.recording import (CONTROL_NAMES, Recording, RecordingError, Reject, TickTable, read_recording)
from gta_bridge.sync import Alignment, AlignmentError, align_by_marker, align_by_motion, decode_marker, horizontal_shift

SOURCE = "gta"
SOURCE_FRAME = ("gta_v: right-handed, Z up, X east, Y north, metres, GTA Euler [pitch, roll, yaw] deg (order YXZ); "
                "converted to Unreal: X = north, Y = east, Z = up, cm; pitch = pitch, yaw = -yaw, roll = roll")
EXTRAS: tuple[str, ...] = ("steer", "throttle", "brake", "gear", "speed_mps", "tick", "game_time_ms", "video_frame",
                           "in_vehicle")
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".mov")


class GtaImportError(RecordingError):
    """The recording cannot be imported (nothing usable); the message says which file and why."""


def _gta_keys(space: ActionSpace) -> ActionSpace:
    missing = [k for k in ("w", "s", "a", "d", "space", "shift") if k not in space.keys]
    if missing:
        raise Invalid("", list(space.keys), f"an action space with the keys the GTA import infers (missing {missing})")
    return space


@settings
class GtaImportConfig:
    """Options of :func:`import_gta` (``imports.gta`` in pipeline.yaml; units in the names). The marker-less
    alignment searches ``max_offset_s`` and accepts a peak correlation of ``min_motion_ncc`` that leads the best
    offset more than 1 s away by ``min_motion_margin``. Spans where a frame is shown more than
    ``max_tick_gap_ms`` after its tick (pause menu, loading, alt-tab) are cut. Where the rig pose and the logged
    camera differ by more than ``rig_tolerance_cm``, the logged camera is used."""

    fps: float = Field(25.0, gt=0, le=240, description="output frame rate")
    width: int | None = Field(None, ge=2, multiple_of=2, description="output width, px (null: the video's, rounded down to even)")
    height: int | None = Field(None, ge=2, multiple_of=2, description="output height, px (null: the video's)")
    sync: Literal["auto", "marker", "motion"] = Field("auto", description="align by the sync marker, by image motion, or auto (the marker when shown)")
    max_offset_s: float = Field(60.0, gt=0, description="largest video/log offset searched without a marker, s")
    min_motion_ncc: float = Field(0.3, gt=0, le=1, description="least peak correlation of the marker-less alignment")
    min_motion_margin: float = Field(0.15, ge=0, lt=1, description="least lead of the peak over other offsets")
    min_episode_frames: int = Field(57, ge=1, description="shorter runs are quarantined, frames")
    max_frame_gap_ms: float = Field(100.0, gt=0, description="an output frame needs a video frame this close in time, ms")
    max_tick_gap_ms: float = Field(250.0, gt=0, description="a longer wait between tick and frame cuts the span, ms")
    steering_sign: Literal["auto", "+1", "-1"] = Field("auto", description="sign of the logged steering angle (+1: + = left); auto: from the yaw rate")
    render_lag_ticks: int = Field(0, ge=0, description="frames show the state logged this many ticks earlier")
    rig_tolerance_cm: float = Field(5.0, gt=0, description="rig pose vs logged camera tolerance, cm")
    analysis_width: int = Field(160, ge=16, description="width the video is analysed at, px")
    video: SafeName | None = Field(None, description="the video's file name in the recording folder (null: the only one)")
    rejects_path: str | None = Field(None, min_length=1, description="rejects file (null: <episodes>/../rejects/gta-<session>.jsonl)")
    action_space: Annotated[ActionSpace, AfterValidator(_gta_keys)] = Field(
        default_factory=ActionSpace, description="the recorded keys")
    keys: KeyInferenceConfig = Field(default_factory=KeyInferenceConfig, description="key inference thresholds")
    crf: int = Field(DEFAULT_CRF, ge=0, le=51, description="x264 quality of the episodes")
    preset: X264Preset = Field(DEFAULT_PRESET, description="x264 preset of the episodes")
    threads: int = Field(1, ge=0, description="encoder threads (0: ffmpeg's choice)")


@dataclass(kw_only=True)
class GtaImportResult(ImportResult):
    """What :func:`import_gta` did with one recording session: :class:`capture.imports.ImportResult` (episodes
    written, already there, frames, warnings) plus ``rejects``: the quarantined spans (also in ``rejects_path``;
    the rest of the session imports), ``alignment`` and ``stats``: alignment, key frequencies, steering sign,
    rig residuals, duplicates, controls agreement."""

    recording_dir: Path
    session_id: str
    video_path: Path
    alignment: Alignment
    rejects: list[Reject]
    stats: dict[str, Any]


# --------------------------------------------------------------------------------------------------------
# per-tick quantities


@dataclass
class TickDerived:
    """Per tick (Unreal frame, float64): camera pose, look angles, velocity, signed speed, keys, collision."""

    cam_pos_cm: np.ndarray
    cam_quat: np.ndarray
    pitch_deg: np.ndarray
    yaw_deg: np.ndarray  # unwrapped
    vel_cm_s: np.ndarray
    speed_cm_s: np.ndarray
    keys: np.ndarray  # bool[N, K] in action-space order
    collided: np.ndarray
    steering_sign: int
    steering_corr: float
    rig_residual_cm: np.ndarray
    rig_fallback: int


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where mask is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def derive_ticks(t: TickTable, rig_offset_m, rig_rot_offset_deg, ped_offset_m, cfg: GtaImportConfig
                 ) -> TickDerived:
    """Camera poses from the rig, Unreal conversions, velocities and inferred keys for every tick."""
    n = len(t)
    # body rotation of the vehicle: the logged quaternion when finite, else the Euler vector
    q_ok = np.all(np.isfinite(t.veh_quat), axis=1) & (np.linalg.norm(np.nan_to_num(t.veh_quat), axis=1) > 0.5)
    r_veh = fr.gta_euler_to_matrix(np.nan_to_num(t.veh_rot))
    if q_ok.any():
        r_veh[q_ok] = fr.gta_quat_xyzw_to_matrix(t.veh_quat[q_ok])
    r_ped = fr.gta_euler_to_matrix(np.stack([np.zeros(n), np.zeros(n), np.nan_to_num(t.ped_heading)], axis=1))
    pos_v, mat_v = fr.rig_pose_gta(np.nan_to_num(t.veh_pos), r_veh, rig_offset_m, rig_rot_offset_deg)
    pos_p, mat_p = fr.rig_pose_gta(np.nan_to_num(t.ped_pos), r_ped, ped_offset_m, rig_rot_offset_deg)
    logged_mat = fr.gta_euler_to_matrix(np.nan_to_num(t.cam_rot))
    use_v = (t.cam_rig == "vehicle") & t.in_vehicle
    use_p = (t.cam_rig == "ped") & ~t.in_vehicle
    cam_pos = np.where(use_v[:, None], pos_v, np.where(use_p[:, None], pos_p, t.cam_pos))
    cam_mat = np.where(use_v[:, None, None], mat_v, np.where(use_p[:, None, None], mat_p, logged_mat))
    resid = np.linalg.norm(cam_pos - t.cam_pos, axis=1) * 100.0
    rot_resid = np.degrees(np.arccos(np.clip((np.einsum("nij,nij->n", cam_mat, logged_mat) - 1) / 2, -1, 1)))
    bad = (resid > cfg.rig_tolerance_cm) | (rot_resid > 0.5)
    cam_pos = np.where(bad[:, None], t.cam_pos, cam_pos)
    cam_mat = np.where(bad[:, None, None], logged_mat, cam_mat)
    pos_cm, quat = fr.gta_pose_to_ue(cam_pos, cam_mat)
    pitch, yaw = fr.ue_quat_to_pitch_yaw(quat)
    yaw_unwrapped = np.degrees(np.unwrap(np.radians(yaw)))

    vel_m = np.where(t.in_vehicle[:, None], t.veh_vel, t.ped_vel)
    vel_cm = fr.gta_vector_to_ue_cm(np.nan_to_num(vel_m))
    fwd = quat_to_matrix(quat)[:, :, 0]
    fwd_h = fwd[:, :2] / np.maximum(np.linalg.norm(fwd[:, :2], axis=1, keepdims=True), 1e-9)
    speed = np.einsum("ni,ni->n", vel_cm[:, :2], fwd_h)

    # keys
    space = cfg.action_space
    keys = np.zeros((n, len(space)), dtype=bool)
    veh = t.in_vehicle
    if cfg.steering_sign == "auto":
        sign, corr = detect_steering_sign(t.steer[veh], t.fwd_speed[veh], t.heading[veh], t.wall_ms[veh])
    else:
        sign, corr = int(cfg.steering_sign), float("nan")
    for a, b in _runs(veh):
        k = infer_drive_keys(t.wall_ms[a:b], t.fwd_speed[a:b], sign * t.steer[a:b], t.throttle[a:b], t.brake[a:b],
                             cfg.keys)
        for name, v in k.items():
            keys[a:b, space.index(name)] = v
    for a, b in _runs(~veh):
        k = infer_walk_keys(vel_cm[a:b, :2] / 100.0, yaw[a:b], cfg.keys)
        for name, v in k.items():
            keys[a:b, space.index(name)] = v
    return TickDerived(pos_cm, quat, pitch, yaw_unwrapped, vel_cm, speed, keys, t.collided.copy(), sign, corr,
                       resid, int(bad.sum()))


# --------------------------------------------------------------------------------------------------------
# video analysis (pass 1)


@dataclass
class VideoAnalysis:
    """Per video frame: ``pts_s``, marker ``code`` (-1: none), horizontal shift ``dx_px`` and its phase
    correlation ``response`` against the previous frame, mean absolute grey difference ``diff`` to it."""

    pts_s: np.ndarray
    code: np.ndarray
    dx_px: np.ndarray
    response: np.ndarray
    diff: np.ndarray
    width: int
    height: int


def analyse_video(path: Path, analysis_width: int, src_w: int, src_h: int) -> VideoAnalysis:
    """Pass 1: decode the video at a small size and measure what alignment needs."""
    import cv2

    aw = min(analysis_width, src_w)
    aw -= aw % 2
    ah = max(2, int(round(aw * src_h / src_w / 2)) * 2)
    pts, codes, dxs, resp, diffs = [], [], [], [], []
    prev = None
    window = cv2.createHanningWindow((aw, ah), cv2.CV_32F)
    for p, frame in iter_frames(path, aw, ah):
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
        code = decode_marker(g)
        pts.append(p)
        codes.append(-1 if code is None else code)
        if prev is None:
            dxs.append(np.nan)
            resp.append(0.0)
            diffs.append(np.inf)
        else:
            diffs.append(float(np.mean(np.abs(g - prev))))
            if code is None and codes[-2] < 0:
                dx, r = horizontal_shift(prev, g, window)
                dxs.append(dx)
                resp.append(r)
            else:
                dxs.append(np.nan)
                resp.append(0.0)
        prev = g
    if not pts:
        raise RecordingError(f"{path}: the video has no frames")
    return VideoAnalysis(np.array(pts), np.array(codes, dtype=np.int64), np.array(dxs), np.array(resp),
                         np.array(diffs), aw, ah)


# --------------------------------------------------------------------------------------------------------
# the plan: which video frame and tick every output frame uses


@dataclass
class Plan:
    """Output frames grouped in segments: per segment the source video frame and tick index per frame."""

    segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (grid wall ms, video frame index, tick index)
    rejects: list[Reject]
    duplicates_reassigned: int
    frame_tick: np.ndarray  # tick index per video frame (-1 = none)
    frame_valid: np.ndarray


def _reject_spans(mask_bad: np.ndarray, reasons: np.ndarray, grid_ms: np.ndarray, src: np.ndarray, video_name: str
                  ) -> list[Reject]:
    out = []
    for a, b in _runs(mask_bad):
        # split the bad run by reason
        i = a
        while i < b:
            j = i
            while j < b and reasons[j] == reasons[i]:
                j += 1
            kind, why = reasons[i].split("|", 1)
            out.append(Reject(kind, f"{why}; {j - i} output frame(s) at {grid_ms[i] / 1000:.3f}-"
                                    f"{grid_ms[j - 1] / 1000:.3f} s cut", video_name, None, None, int(src[i]),
                              grid_ms[i] / 1000.0, grid_ms[j - 1] / 1000.0))
            i = j
    return out


def plan_frames(rec: Recording, der: TickDerived, va: VideoAnalysis, al: Alignment, cfg: GtaImportConfig,
                video_name: str) -> Plan:
    """Assign ticks to video frames and choose the output frames (see the module docstring)."""
    t = rec.ticks
    wall = t.wall_ms
    w = al.wall_ms(va.pts_s)
    n_ticks = len(t)
    dt_med = float(np.median(np.diff(wall))) if n_ticks > 1 else 1000.0 / 60
    k = np.searchsorted(wall, w, side="right") - 1 - cfg.render_lag_ticks
    valid = (k >= 0) & (w <= wall[-1] + max(cfg.max_tick_gap_ms, 2 * dt_med))
    kk = np.clip(k, 0, n_ticks - 1)
    reason = np.full(w.size, "", dtype=object)
    reason[~valid & (k < 0)] = "no_log|before the first tick of the log"
    reason[~valid & (k >= 0)] = "no_log|after the last tick of the log"
    # frames that show a quarantined tick: ticks missing right after theirs
    nxt = np.minimum(kk + 1, n_ticks - 1)
    missing_after = (t.tick[nxt] - t.tick[kk] > 1) & (kk + 1 < n_ticks)
    shows_missing = valid & missing_after & (w - wall[kk] > 0.5 * dt_med)
    reason[shows_missing] = "quarantined_ticks|the frame shows a quarantined tick"
    valid &= ~shows_missing
    # the game stopped ticking (pause menu, loading screen, alt-tab): the picture is not the logged state
    stale = valid & (w - wall[kk] > cfg.max_tick_gap_ms)
    reason[stale] = (f"game_paused|no game tick for more than {cfg.max_tick_gap_ms:g} ms (paused, loading or "
                     "alt-tabbed)")
    valid &= ~stale
    # repeated images (OBS render lag): a picture (almost) identical to the previous one while its neighbours
    # change and the logged camera moved between the two ticks -> it shows the previous frame's tick
    dup_reassigned = 0
    moved = np.zeros(w.size, dtype=bool)
    moved[1:] = (np.linalg.norm(der.cam_pos_cm[kk[1:]] - der.cam_pos_cm[kk[:-1]], axis=1) > 1.0) | (
        np.abs(der.yaw_deg[kk[1:]] - der.yaw_deg[kk[:-1]]) > 0.05)
    diff = np.where(np.isfinite(va.diff) & (va.code < 0), va.diff, np.nan)
    for i in range(1, w.size):
        if not (moved[i] and valid[i] and valid[i - 1] and va.code[i] < 0 and np.isfinite(diff[i])):
            continue
        around = diff[[j for j in (i - 2, i - 1, i + 1, i + 2) if 0 <= j < w.size]]
        around = around[np.isfinite(around)]
        if around.size and diff[i] < 0.25 * np.median(around) and np.median(around) > 1.5:
            kk[i] = kk[i - 1]
            dup_reassigned += 1
    # the marker, and everything outside the record phase, is not gameplay
    record = (t.phase[kk] == "record") & (va.code < 0)
    usable = valid & record

    rejects: list[Reject] = []
    rec_idx = np.flatnonzero(usable)
    if rec_idx.size == 0:
        raise GtaImportError(f"{rec.directory}: no video frame of {video_name} shows a recorded tick of "
                             f"{rec.jsonl_path.name}: the video and the log do not overlap (alignment "
                             f"{al.method}, offset {al.offset_s:.3f} s)")
    # ticks of the record phase the video does not cover
    rec_ticks = np.flatnonzero(t.phase == "record")
    if rec_ticks.size:
        first_cov, last_cov = w[0], w[-1]
        uncovered_end = rec_ticks[wall[rec_ticks] > last_cov + cfg.max_frame_gap_ms]
        if uncovered_end.size:
            a, b = uncovered_end[0], uncovered_end[-1]
            rejects.append(Reject(
                "video_short", f"{video_name} ends at {va.pts_s[-1]:.3f} s (frame {w.size - 1}, log time "
                f"{last_cov / 1000:.3f} s) but {rec.jsonl_path.name} records until tick {int(t.tick[b])} "
                f"({wall[b] / 1000:.3f} s): ticks {int(t.tick[a])}-{int(t.tick[b])} have no video",
                video_name, None, int(t.tick[a]), w.size - 1, wall[a] / 1000.0, wall[b] / 1000.0))
        uncovered_start = rec_ticks[wall[rec_ticks] < first_cov - cfg.max_frame_gap_ms]
        if uncovered_start.size:
            a, b = uncovered_start[0], uncovered_start[-1]
            rejects.append(Reject(
                "video_late", f"{video_name} starts at log time {first_cov / 1000:.3f} s, after the recording "
                f"started: ticks {int(t.tick[a])}-{int(t.tick[b])} have no video", video_name, None, int(t.tick[a]),
                0, wall[a] / 1000.0, wall[b] / 1000.0))

    period = 1000.0 / cfg.fps
    start, end = w[rec_idx[0]], w[rec_idx[-1]]
    grid = start + period * np.arange(int(math.floor((end - start) / period + 1e-9)) + 1)
    j = np.searchsorted(w, grid)
    left = np.clip(j - 1, 0, w.size - 1)
    right = np.clip(j, 0, w.size - 1)
    src = np.where(np.abs(w[left] - grid) <= np.abs(w[right] - grid), left, right)
    gap = np.abs(w[src] - grid) > cfg.max_frame_gap_ms
    ok = usable[src] & ~gap
    greason = np.where(gap, f"video_gap|no frame of {video_name} within {cfg.max_frame_gap_ms:g} ms (dropped frames)",
                       np.where(usable[src], "", reason[src]))
    greason = np.where((greason == "") & ~ok, "not_recorded|the frame shows the sync marker or a non-record phase",
                       greason)
    bad = ~ok & np.array([not str(r).startswith("not_recorded") for r in greason])
    rejects += _reject_spans(bad, greason, grid, src, video_name)
    segments = []
    for a, b in _runs(ok):
        if b - a < cfg.min_episode_frames:
            rejects.append(Reject("short_segment", f"only {b - a} usable output frames in a row (min_episode_frames "
                                  f"= {cfg.min_episode_frames})", video_name, None, int(t.tick[kk[src[a]]]),
                                  int(src[a]), grid[a] / 1000.0, grid[b - 1] / 1000.0))
            continue
        segments.append((grid[a:b], src[a:b], kk[src[a:b]]))
    frame_tick = np.where(valid, kk, -1)
    return Plan(segments, rejects, dup_reassigned, frame_tick, usable)


# --------------------------------------------------------------------------------------------------------
# import


def find_video(recording_dir: Path, name: str | None) -> Path:
    """The OBS video of a recording folder: ``name`` if given, else the only .mp4/.mkv/.mov there."""
    if name is not None:
        p = recording_dir / check_name(name, "imports.gta.video (a file name inside the recording folder)")
        if not p.is_file():
            raise RecordingError(f"{p}: video not found")
        return p
    vids = sorted(p for p in recording_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not vids:
        raise RecordingError(f"{recording_dir}: no video ({', '.join(VIDEO_SUFFIXES)}) next to the behaviour log; "
                             "put the OBS recording of this session in the folder")
    if len(vids) > 1:
        raise RecordingError(f"{recording_dir}: several videos {[v.name for v in vids]}; choose one "
                             "(--set imports.gta.video=NAME)")
    return vids[0]


def _clean(o: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def _write_rejects(path: Path, rejects: Sequence[Reject], recording: Path, session_id: str) -> None:
    write_jsonl_atomic(path, (_clean({"source": SOURCE, "recording": str(recording), "session_id": session_id,
                                      **r.to_dict()}) for r in rejects))


def import_gta(recording_dir: str | os.PathLike, episodes_dir: str | os.PathLike,
               config: GtaImportConfig | None = None) -> GtaImportResult:
    """Import one recording session folder into ``episodes_dir`` (created if missing).

    Raises :class:`gta_bridge.recording.RecordingError` (unreadable log, unknown version, no video, nothing
    usable), :class:`gta_bridge.scenario.ScenarioError` (scenario out of range) or
    :class:`gta_bridge.sync.AlignmentError` (no marker and no overlap); each message names the file.
    Idempotent: episodes already present are skipped.
    """
    cfg = config or GtaImportConfig()
    rdir = Path(recording_dir)
    rec = read_recording(rdir)
    video = find_video(rdir, cfg.video)
    info = probe_video(video)
    sc = rec.header.scenario
    warnings = list(rec.warnings)
    rejects = list(rec.rejects)

    der = derive_ticks(rec.ticks, sc.camera.offset_m, sc.camera.rotation_offset_deg, sc.camera.ped_offset_m, cfg)
    if der.rig_fallback:
        warnings.append(f"{rec.jsonl_path}: on {der.rig_fallback} tick(s) the camera rig disagreed with the logged "
                        f"camera by more than {cfg.rig_tolerance_cm:g} cm or 0.5 deg; the logged camera was used")
    if cfg.steering_sign == "auto" and abs(der.steering_corr) < 0.2 and rec.ticks.in_vehicle.any():
        warnings.append(f"{rec.jsonl_path}: the steering sign could not be checked against the yaw rate "
                        f"(correlation {der.steering_corr:.2f}); assumed + = left")

    va = analyse_video(video, cfg.analysis_width, info.width, info.height)
    t = rec.ticks
    hits = np.flatnonzero(va.code >= 0)
    vfov = float(np.nanmedian(t.cam_fov)) if np.isfinite(t.cam_fov).any() else sc.camera.fov_deg
    hfov = 2 * math.degrees(math.atan(math.tan(math.radians(vfov) / 2) * va.width / va.height))
    dyaw = -va.dx_px * hfov / va.width  # image shift -> camera yaw change (deg, right +)
    motion_ok = np.isfinite(va.dx_px) & (va.response > 0.05)
    if cfg.sync == "marker" and hits.size == 0:
        raise AlignmentError(f"{video}: no sync marker found in any of its {va.pts_s.size} frames (sync = 'marker')")
    if hits.size and cfg.sync != "motion":
        nxt = np.append(t.wall_ms[1:], t.wall_ms[-1] + (np.median(np.diff(t.wall_ms)) if len(t) > 1 else 16.7))
        try:
            al = align_by_marker(va.pts_s[hits], va.code[hits], t.wall_ms, t.sync_code, nxt)
        except AlignmentError as e:
            raise AlignmentError(f"{video} / {rec.jsonl_path}: {e}") from None
    else:
        al = align_by_motion(va.pts_s, dyaw, motion_ok, t.wall_ms, der.yaw_deg, max_offset_s=cfg.max_offset_s,
                             min_ncc=cfg.min_motion_ncc, min_margin=cfg.min_motion_margin, video_name=str(video),
                             log_name=str(rec.jsonl_path))
        if hits.size == 0:
            warnings.append(f"{video}: no sync marker in the video; aligned by image motion (offset "
                            f"{al.offset_s:.3f} s, correlation {al.score:.2f})")

    plan = plan_frames(rec, der, va, al, cfg, video.name)
    rejects += plan.rejects
    for r in plan.rejects:
        if r.kind in ("video_short", "video_late"):
            warnings.append(r.reason)

    out_w = cfg.width or info.width - info.width % 2
    out_h = cfg.height or info.height - info.height % 2
    episodes_root = Path(episodes_dir)
    episodes_root.mkdir(parents=True, exist_ok=True)
    scene = f"{sc.name}_{rec.header.session_id}"
    base_config = _clean({
        **sc.config(), "recording": rdir.name, "session_id": rec.header.session_id,
        "game_build": rec.header.game_build, "mod_version": rec.header.mod_version, "video": video.name,
        "video_fps": info.fps, "alignment": al.to_dict(), "steering_sign": der.steering_sign,
        "key_inference": "dynamics",
        # horizontal field of view of the logged gameplay camera (the output is a scale of the whole frame, so it
        # is the episode's too): what the action-label check needs to judge mouse units
        "fov_deg": round(hfov, 4),
    })
    written: list[Path] = []
    skipped: list[Path] = []
    todo: list[tuple[int, str]] = []
    for s_i in range(len(plan.segments)):
        eid = episode_id(SOURCE, scene, sc.seed, s_i)
        if (episodes_root / eid / META_FILE).is_file():
            skipped.append(episodes_root / eid)
        else:
            todo.append((s_i, eid))
    n_frames = 0
    if todo:
        n_frames = _write_episodes(video, out_w, out_h, rec, der, plan, todo, episodes_root, scene, base_config,
                                   cfg, written)

    rejects_path = None
    if rejects:
        rejects_path = Path(cfg.rejects_path) if cfg.rejects_path else (
            quarantine_path(episodes_root, SOURCE, rec.header.session_id))
        _write_rejects(rejects_path, rejects, rdir, rec.header.session_id)
    space = cfg.action_space
    rec_mask = t.phase == "record"
    stats: dict[str, Any] = {
        "alignment": al.to_dict(), "steering_sign": der.steering_sign, "steering_corr": der.steering_corr,
        "video_frames": int(va.pts_s.size), "marker_frames": int(hits.size),
        "duplicates_reassigned": plan.duplicates_reassigned,
        "rig_residual_p99_cm": float(np.percentile(der.rig_residual_cm, 99)) if len(t) else float("nan"),
        "key_fraction": {k: float(der.keys[rec_mask, space.index(k)].mean()) if rec_mask.any() else 0.0
                         for k in ("w", "s", "a", "d", "space", "shift")},
        "segments": len(plan.segments), "ticks": len(t),
    }
    ctl = {name: t.controls[:, i] for i, name in enumerate(CONTROL_NAMES)}
    agree = controls_agreement(
        {"w": der.keys[:, space.index("w")], "s": der.keys[:, space.index("s")],
         "a": der.keys[:, space.index("a")], "d": der.keys[:, space.index("d")],
         "space": der.keys[:, space.index("space")]},
        {"w": ctl["accelerate"], "s": ctl["brake"], "a": ctl["left"], "d": ctl["right"], "space": ctl["handbrake"]})
    if agree:
        stats["controls_agreement"] = agree
    return GtaImportResult(written=written, skipped=[p.name for p in skipped], frames=n_frames,
                           rejects_path=rejects_path, warnings=warnings, recording_dir=rdir,
                           session_id=rec.header.session_id, video_path=video, alignment=al, rejects=rejects,
                           stats=stats)


def _write_episodes(video: Path, out_w: int, out_h: int, rec: Recording, der: TickDerived, plan: Plan,
                    todo: list[tuple[int, str]], root: Path, scene: str, base_config: dict, cfg: GtaImportConfig,
                    written: list[Path]) -> int:
    """Pass 2: stream the video at the output size and write the planned segments."""
    t = rec.ticks
    sc = rec.header.scenario
    space = cfg.action_space
    # (video frame index, segment, position in segment) in video order
    wanted: list[tuple[int, int, int]] = []
    todo_ids = dict(todo)
    for s_i in todo_ids:
        _, src, _ = plan.segments[s_i]
        wanted += [(int(f), s_i, n) for n, f in enumerate(src)]
    wanted.sort()
    writers: dict[int, EpisodeWriter] = {}
    prev_tick: dict[int, int] = {}
    n_written = 0
    pos = 0
    try:
        for vi, (_, frame) in enumerate(iter_frames(video, out_w, out_h)):
            while pos < len(wanted) and wanted[pos][0] == vi:
                _, s_i, n = wanted[pos]
                pos += 1
                grid, src, ticks = plan.segments[s_i]
                if s_i not in writers:
                    cfg_meta = {**base_config, "segment": s_i,
                                "segment_start_s": float(grid[0] / 1000.0), "segment_frames": int(len(src))}
                    writers[s_i] = EpisodeWriter(root, todo_ids[s_i], source=SOURCE, scene=scene, seed=sc.seed,
                                                 fps=cfg.fps, width=out_w, height=out_h, action_space=space,
                                                 source_frame=SOURCE_FRAME, config=cfg_meta, extras=EXTRAS,
                                                 crf=cfg.crf, preset=cfg.preset, threads=cfg.threads)
                k = int(ticks[n])
                kp = prev_tick.get(s_i, k)
                lo = kp + 1 if n > 0 and k > kp else k
                held = der.keys[lo:k + 1].any(axis=0)
                collided = bool(der.collided[lo:k + 1].any())
                action = FrameAction(keys=space.from_multihot(held.astype(np.uint8)),
                                     d_pitch_deg=0.0 if n == 0 else float(der.pitch_deg[k] - der.pitch_deg[kp]),
                                     d_yaw_deg=0.0 if n == 0 else float(der.yaw_deg[k] - der.yaw_deg[kp]))
                inv = bool(t.in_vehicle[k])

                def opt(v: float) -> float | None:
                    return float(v) if inv and math.isfinite(v) else None

                extras = {
                    "steer": opt(t.steer[k]), "throttle": opt(t.throttle[k]), "brake": opt(t.brake[k]),
                    "gear": float(t.gear[k]) if inv and t.gear[k] >= 0 else None,
                    "speed_mps": float(der.speed_cm_s[k] / 100.0), "tick": float(t.tick[k]),
                    "game_time_ms": float(t.game_time_ms[k]), "video_frame": float(vi), "in_vehicle": float(inv),
                }
                obs = Observation(frame=frame, t_s=n / cfg.fps, pos_cm=der.cam_pos_cm[k], quat_wxyz=der.cam_quat[k],
                                  pitch_deg=float(der.pitch_deg[k]), yaw_deg=float(der.yaw_deg[k]),
                                  vel_cm_s=der.vel_cm_s[k], speed_cm_s=float(der.speed_cm_s[k]), collision=collided,
                                  extras=extras)
                writers[s_i].append(obs, action)
                prev_tick[s_i] = k
                n_written += 1
                if n == len(src) - 1:
                    written.append(writers.pop(s_i).commit())
            if pos >= len(wanted):
                break
        if writers:
            raise RecordingError(f"{video}: the video ended before frame {wanted[pos][0] if pos < len(wanted) else '?'}"
                                 " of the plan (it changed between the two passes?)")
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return n_written


# --------------------------------------------------------------------------------------------------------
# several sessions (``playmill import gta``)


def import_gta_sessions(recording_dirs: Sequence[str | os.PathLike], episodes_dir: str | os.PathLike,
                        config: GtaImportConfig | None = None) -> ImportResult:
    """Import several recording sessions into ``episodes_dir``: one that cannot be imported at all, or that gives
    no episode, is reported in ``failed`` with its reason (and, when it cannot be imported, quarantined as a whole:
    a ``kind: recording`` line in ``<episodes_dir>/../rejects/gta-<folder name>.jsonl``); the others still import.
    ``notes`` say how each session was aligned."""
    cfg = config or GtaImportConfig()
    total = ImportResult()
    for d in map(Path, recording_dirs):
        try:
            r = import_gta(d, episodes_dir, cfg)
        except (InputError, VideoError, OSError) as e:  # the message names the file
            path = quarantine_path(episodes_dir, SOURCE, slug(d.name, fallback="recording"))
            write_jsonl_atomic(path, [{"source": SOURCE, "recording": str(d), "kind": "recording", "reason": str(e)}])
            total.failed.append((str(d), f"{e} (recorded in {path})"))
            continue
        if not (r.written or r.skipped):
            short = [x for x in r.rejects if x.kind == "short_segment"]
            why = (f"no run of usable frames reaches min_episode_frames = {cfg.min_episode_frames} ("
                   f"{len(short)} shorter run(s))" if short else "no usable frames")
            where = f"; every span is in {r.rejects_path}" if r.rejects_path else ""
            total.failed.append((str(d), f"no episode: {why}{where}"))
        total.written += r.written
        total.skipped += r.skipped
        total.frames += r.frames
        total.warnings += [f"{d}: {w}" for w in r.warnings]
        total.notes.append(f"{d}: aligned by {r.alignment.method} (offset {r.alignment.offset_s:.3f} s); "
                           f"{len(r.rejects)} span(s) quarantined"
                           + (f" -> {r.rejects_path}" if r.rejects_path else ""))
        total.rejects_path = r.rejects_path or total.rejects_path
    return total
