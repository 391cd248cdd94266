"""Curate one episode, streaming: decode -> redundant frames -> resample -> resize/crop -> clips -> work folder.

Everything that depends only on the actions (velocity validation, the motion-matched resampling step,
NaN poses) is decided up front from actions.csv; the only per-pixel decision, the redundant-frame test, runs
online while the video is decoded one frame at a time. Selected frames are cropped and written straight into
the clip windows that are open (at most ``ceil(frames / stride)``), each window encoding into its own
ffmpeg process (h264) or a list of JPEGs, so memory stays bounded whatever the length of the video.

The result of an episode is a folder ``<work>/<episode_id>/`` with ``clips.parquet`` (clip rows in the shard
schema), ``rejects.parquet`` and ``done.json`` (its inputs' fingerprint and counts). It is built in a hidden
temp folder and renamed into place, so an episode is either completely done or not at all: the progress
journal of a resumable run is the set of these folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curation.config import CurateConfig
from curation.schema import REJECTS_SCHEMA, clip_schema, clip_table, rejects_table
from curation.stages import (
    FrameActions, OnlineResampler, RedundantFrameFilter, fold_spans, motion_step,
    nonfinite_pose_frames, resize_center_crop, runs, velocity_mask,
)

WORK_DIR = ".work"
DONE_FILE = "done.json"
CLIPS_FILE = "clips.parquet"
EPISODE_REJECTS_FILE = "rejects.parquet"
_TMP = ".tmp-"


@dataclass(frozen=True)
class DatasetParams:
    """Dataset-wide values resolved before episodes are processed: ``keys`` (the action space), ``fps``
    (frames/s of every clip) and ``motion_target_cm`` (cm per output frame for motion-matched sources)."""

    keys: tuple[str, ...]
    fps: float
    motion_target_cm: float | None = None


@dataclass
class EpisodeOutcome:
    """What processing one episode produced: ``status`` ``done`` (clips may be 0) or ``rejected`` (the whole
    episode), counts, input duration in seconds and the work folder."""

    episode_id: str
    source: str
    scene: str
    status: str
    clips: int = 0
    rejects: int = 0
    frames_in: int = 0
    input_s: float = 0.0
    clip_frames: int = 0
    motion_step: float | None = None
    work_dir: str = ""
    fingerprint: str = ""
    seconds: float = 0.0
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def episode_fingerprint(ep_dir: Path) -> str:
    """sha256 of the episode's meta.json bytes and the size and mtime of its other files (cheap: no video
    hashing); a changed source episode gets processed again."""
    h = hashlib.sha256()
    for name in ("meta.json", "actions.csv", "video.mp4"):
        p = ep_dir / name
        try:
            st = p.stat()
        except OSError:
            h.update(f"{name}:missing;".encode())
            continue
        if name == "meta.json":
            h.update(p.read_bytes())
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def work_key(cfg: CurateConfig, params: DatasetParams) -> str:
    """sha256 of what, besides the episode, decides its output: the config fingerprint and dataset params."""
    return hashlib.sha256((cfg.fingerprint() + json.dumps(asdict(params), sort_keys=True)).encode()).hexdigest()


def read_done(work_root: Path, episode_id: str) -> dict | None:
    """The done.json of a finished episode, or None."""
    try:
        return json.loads((work_root / episode_id / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None


def cleanup_work_temp(work_root: Path) -> None:
    """Remove temp folders of killed runs (curation holds a lock on the output folder, so none is live)."""
    if work_root.is_dir():
        for p in work_root.iterdir():
            if p.name.startswith(_TMP):
                shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------
# loading


def _is_pose_nan_only(problems: list) -> bool:
    from capture.episode import POSE_COLUMNS

    return bool(problems) and all(
        p.column in POSE_COLUMNS and ("is not finite" in p.message) and str(p.file).endswith("actions.csv")
        for p in problems
    )


def load_episode(ep_dir: Path, cfg: CurateConfig, keys: tuple[str, ...]):
    """``(meta, FrameActions, video_path)`` of an episode, or raise ``_Reject``.

    An episode that fails validation is rejected with the validator's problems, except when its only
    problems are non-finite pose values: those episodes are read as they are and the clips that contain
    such frames are rejected later (stage ``pose``)."""
    import pandas as pd

    from capture.validate import check_meta, inspect_episode

    chk = inspect_episode(ep_dir, check_video=cfg.check_video)
    if chk.problems:
        if not _is_pose_nan_only(chk.problems):
            shown = "; ".join(str(p) for p in chk.problems[:6])
            more = f" (and {len(chk.problems) - 6} more)" if len(chk.problems) > 6 else ""
            raise _Reject("validate", f"episode fails validation: {shown}{more}")
        meta = check_meta(ep_dir / "meta.json", folder_name=ep_dir.name).meta
        if meta is None:
            raise _Reject("validate", "meta.json does not validate")
        df = pd.read_csv(ep_dir / "actions.csv")
    else:
        meta, df = chk.meta, chk.actions
    try:
        actions = FrameActions.from_table(df, meta.action_space.keys, keys)
    except ValueError as e:
        raise _Reject("validate", str(e)) from None
    return meta, actions, ep_dir / "video.mp4"


class _Reject(Exception):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason = stage, reason


# --------------------------------------------------------------------------------------------------------
# clip windows


class _Window:
    """An open clip window: receives cropped frames, encodes them as they come."""

    def __init__(self, p0: int, tmp: Path, cfg: CurateConfig, fps: float) -> None:
        self.p0 = p0
        self.n = 0
        self.codec = cfg.output.frame_codec
        self.cfg = cfg
        self.jpegs: list[bytes] = []
        self.path = tmp / f"clip-{p0:08d}.mp4"
        self.writer = None
        if self.codec == "h264":
            from capture.video import VideoWriter

            self.writer = VideoWriter(self.path, cfg.clip.width, cfg.clip.height, fps, crf=cfg.output.crf,
                                      preset=cfg.output.preset, threads=1)

    def add(self, frame: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.write(frame)
        else:
            import cv2

            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                   [int(cv2.IMWRITE_JPEG_QUALITY), int(self.cfg.output.jpeg_quality)])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            self.jpegs.append(buf.tobytes())
        self.n += 1

    def finish(self) -> bytes | list[bytes]:
        if self.writer is None:
            return self.jpegs
        self.writer.close()
        data = self.path.read_bytes()
        self.path.unlink()
        return data

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


# --------------------------------------------------------------------------------------------------------
# one episode


def process_episode(ep_dir: str | os.PathLike, work_root: str | os.PathLike, cfg: CurateConfig,
                    params: DatasetParams) -> EpisodeOutcome:
    """Curate one episode into ``work_root/<episode_id>/`` (atomically) and return its outcome.

    Never raises for bad input: an unreadable, truncated or invalid episode becomes a ``rejected`` outcome
    with its reason in the episode's rejects. The source folder is only read.
    """
    t_start = time.perf_counter()
    ep_dir = Path(ep_dir)
    work_root = Path(work_root)
    work_root.mkdir(parents=True, exist_ok=True)
    eid = ep_dir.name
    tmp = work_root / f"{_TMP}{eid}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    outcome = EpisodeOutcome(eid, "", "", "done", fingerprint=episode_fingerprint(ep_dir))
    rejects: list[dict] = []
    try:
        try:
            _process(ep_dir, tmp, cfg, params, outcome, rejects)
        except _Reject as r:
            outcome.status = "rejected"
            outcome.clips = 0
            for p in tmp.iterdir():
                p.unlink()
            rejects[:] = [dict(episode_id=eid, kind="episode", start_frame=0 if outcome.frames_in else -1,
                               end_frame=outcome.frames_in - 1 if outcome.frames_in else -1, stage=r.stage,
                               reason=r.reason)]
        import pyarrow.parquet as pq

        if not (tmp / CLIPS_FILE).exists():
            pq.write_table(clip_schema(len(params.keys), cfg.output.frame_codec).empty_table(), tmp / CLIPS_FILE)
        pq.write_table(rejects_table(rejects) if rejects else REJECTS_SCHEMA.empty_table(),
                       tmp / EPISODE_REJECTS_FILE)
        outcome.rejects = len(rejects)
        outcome.seconds = time.perf_counter() - t_start
        final = work_root / eid
        outcome.work_dir = str(final)
        done = {**outcome.to_dict(), "work_key": work_key(cfg, params)}
        (tmp / DONE_FILE).write_text(json.dumps(done, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return outcome


def _process(ep_dir: Path, tmp: Path, cfg: CurateConfig, params: DatasetParams, out: EpisodeOutcome,
             rejects: list[dict]) -> None:
    import pyarrow.parquet as pq

    from capture.video import VideoError, iter_frames

    eid = ep_dir.name
    meta_raw: dict = {}
    try:  # best effort, so that even a rejected episode reports its source and length
        meta_raw = json.loads((ep_dir / "meta.json").read_text())
        out.source, out.scene = str(meta_raw.get("source", "")), str(meta_raw.get("scene", ""))
        out.frames_in = int(meta_raw.get("frame_count", 0) or 0)
        out.input_s = out.frames_in / float(meta_raw.get("fps") or 1.0)
    except (OSError, ValueError, TypeError):
        pass
    meta, A, video = load_episode(ep_dir, cfg, params.keys)
    out.source, out.scene = meta.source, meta.scene
    n = len(A)
    out.frames_in, out.input_s = n, n / meta.fps
    src_fps = float(meta.fps)

    def span(s: int, e: int, stage: str, reason: str, kind: str = "span") -> None:
        rejects.append(dict(episode_id=eid, kind=kind, start_frame=int(s), end_frame=int(e), stage=stage,
                            reason=reason))

    # ---- decisions from the actions alone
    motion = meta.source in cfg.resample.motion_sources
    if cfg.resample.mode == "none" and not motion and abs(src_fps - params.fps) > 0.01:
        raise _Reject("resample", f"episode fps {src_fps:g} differs from the dataset fps {params.fps:g} and "
                                  "resample.mode is none")
    if cfg.resample.mode == "fps" and not motion and src_fps < params.fps - 0.01:
        raise _Reject("resample", f"episode fps {src_fps:g} is below the dataset fps {params.fps:g} "
                                  "(frames are never invented)")
    valid, vreasons = velocity_mask(A.speed, A.mouse, src_fps, cfg.velocity)
    for r in vreasons:
        span(r.start_frame, r.end_frame, r.stage, r.reason)
    step_s: float | None
    if motion:
        target = cfg.resample.motion_target_cm or params.motion_target_cm
        if target is None:
            raise _Reject("resample", "motion-matched resampling needs resample.motion_target_cm or episodes of "
                                      "another source to measure it from")
        step = motion_step(A.pose, target, cfg.resample.max_motion_step, valid)
        out.motion_step = step
        step_s = step / src_fps
    elif cfg.resample.mode == "fps":
        step_s = 1.0 / params.fps
    else:
        step_s = None
    if not valid.any():
        raise _Reject("velocity", "no frame passes velocity validation: " + "; ".join(r.reason for r in vreasons[:3]))

    L, stride = cfg.clip.frames, cfg.clip.stride
    H, W = cfg.clip.height, cfg.clip.width
    schema = clip_schema(len(params.keys), cfg.output.frame_codec)
    writer = pq.ParquetWriter(tmp / CLIPS_FILE, schema)
    dedup = RedundantFrameFilter(cfg.dedup) if cfg.dedup.enabled else None
    resampler = OnlineResampler(step_s, 1.0 / src_fps) if step_s is not None else None

    # per-segment state
    seg: dict[str, Any] = {}

    def start_segment(i: int) -> None:
        seg.clear()
        seg.update(start=i, sel=[], windows=[], cand=None, dup_run=None, last_kept=None, skipped=0)
        if dedup is not None:
            dedup.reset()
        if resampler is not None:
            resampler.reset()

    def fold_start(p: int) -> int:
        return seg["start"] if p == 0 else seg["sel"][p - 1] + 1

    def finalize(win: _Window) -> None:
        sel = seg["sel"]
        ends = np.asarray(sel[win.p0:win.p0 + L], dtype=np.int64)
        starts = np.asarray([fold_start(p) for p in range(win.p0, win.p0 + L)], dtype=np.int64)
        fa = fold_spans(A, starts, ends)
        first, last = int(starts[0]), int(ends[-1])
        bad = nonfinite_pose_frames(fa.pose)
        if len(bad):
            win.abort()
            span(first, last, "pose", f"clip has non-finite poses at source frames {fa.frame[bad][:10].tolist()}",
                 kind="clip")
            return
        try:
            media = win.finish()
        except Exception as e:  # an encoder failure loses this clip only
            span(first, last, "encode", f"clip encoding failed: {e}", kind="clip")
            return
        tbl = clip_table(
            clip_id=f"{eid}-f{int(ends[0]):07d}", episode_id=eid, source=meta.source, scene=meta.scene,
            start_frame=int(ends[0]), fps=params.fps, height=H, width=W, frame_codec=cfg.output.frame_codec,
            media=media, keyboard=fa.keyboard, mouse=fa.mouse, pose=fa.pose, speed=fa.speed,
            collision=fa.collision,
        )
        writer.write_table(tbl)
        out.clips += 1
        out.clip_frames += L

    def emit(i: int, frame: np.ndarray) -> None:
        p = len(seg["sel"])
        seg["sel"].append(i)
        img = resize_center_crop(frame, H, W)
        if p % stride == 0:
            seg["windows"].append(_Window(p, tmp, cfg, params.fps))
        still_open = []
        for win in seg["windows"]:
            win.add(img)
            if win.n == L:
                finalize(win)
            else:
                still_open.append(win)
        seg["windows"] = still_open

    def close_dup_run() -> None:
        if seg.get("dup_run") is not None:
            s, e = seg["dup_run"]
            span(s, e, "dedup", f"{e - s + 1} redundant frame(s), nearly identical to frame {seg['last_kept']}; "
                                "actions folded into the next kept frame")
            seg["dup_run"] = None

    def end_segment(end: int) -> None:
        if not seg:
            return
        close_dup_run()
        if resampler is not None and seg["cand"] is not None:
            if resampler.finish():
                emit(*seg["cand"])
            else:
                seg["skipped"] += 1
        for win in seg["windows"]:
            win.abort()
        start, sel = seg["start"], seg["sel"]
        if seg["skipped"]:
            span(start, end, "resample", f"resampled to {1.0 / step_s:.4g} frames/s of source time: "
                                         f"{seg['skipped']} frame(s) skipped, actions folded into kept frames")
        covered = np.zeros(end - start + 1, dtype=bool)
        starts = list(range(0, len(sel) - L + 1, stride)) if len(sel) >= L else []
        for p0 in starts:
            covered[fold_start(p0) - start: sel[p0 + L - 1] - start + 1] = True
        last_covered = int(np.flatnonzero(covered)[-1]) if covered.any() else -1
        for s, e in runs(~covered):
            if not starts:
                why = f"segment of {len(sel)} curated frames is shorter than one {L}-frame clip"
            elif e > last_covered:
                why = f"frames after the last {L}-frame clip of the segment"
            else:
                why = f"frames between {L}-frame clip windows (clip.stride {stride} > clip.frames)"
            span(start + s, start + e, "clip", why)
        seg.clear()

    n_dec = 0
    try:
        try:
            for pts, frame in iter_frames(video):
                i = n_dec
                n_dec += 1
                if i >= n:
                    raise _Reject("decode", f"video has more frames than actions.csv's {n} rows")
                if not valid[i]:
                    if seg:
                        end_segment(i - 1)
                    continue
                if not seg:
                    start_segment(i)
                if dedup is not None and not dedup.keep(frame, float(A.t[i])):
                    dr = seg["dup_run"]
                    seg["dup_run"] = (i, i) if dr is None else (dr[0], i)
                    continue
                close_dup_run()
                seg["last_kept"] = i
                if resampler is None:
                    emit(i, frame)
                    continue
                decision = resampler.push(float(A.t[i]))
                if seg["cand"] is not None:
                    if decision:
                        emit(*seg["cand"])
                    else:
                        seg["skipped"] += 1
                seg["cand"] = (i, frame)
        except VideoError as e:
            raise _Reject("decode", str(e)) from None
        if n_dec != n:
            raise _Reject("decode", f"video has {n_dec} frames, actions.csv has {n} rows")
        if seg:
            end_segment(n - 1)
    finally:
        for win in seg.get("windows", []):
            win.abort()
        writer.close()
