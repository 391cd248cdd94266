"""Curate one episode: load and validate it, stream its frames through the stages, write its work folder.

The episode source (:func:`load_episode`, then the decoder, a few frames at a time) feeds the stage list of
:mod:`curation.stages` (:func:`curation.stage.run_stream`); the sink writes what leaves the last stage: clips
into ``clips.parquet`` as they complete, drop records into ``rejects.parquet``. Memory stays bounded whatever
the length of the video: a batch of decoded frames and the state the stages hold (a dedup signature, one
resampling candidate, the open clip windows).

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence


from curation.config import CurateConfig
from curation.schema import REJECTS_SCHEMA, clip_schema, clip_table, rejects_table
from curation.stage import (
    Clip, DatasetParams, DropSpan, EpisodeContext, Frame, Item, Reject, Stage, clip_fields, run_stream,
)
from curation.stages import FrameActions, build_stages

WORK_DIR = ".work"
DONE_FILE = "done.json"
CLIPS_FILE = "clips.parquet"
EPISODE_REJECTS_FILE = "rejects.parquet"
_TMP = ".tmp-"
FRAME_BATCH = 16  # decoded frames per batch pushed through the stages


@dataclass
class EpisodeOutcome:
    """What processing one episode produced: ``status`` ``done`` (clips may be 0) or ``rejected`` (the whole
    episode), counts, input duration in seconds, ``idle_frames`` (identical frames kept because nothing was
    pressed: a player standing still, see :class:`~curation.stages.RedundantFrames`), the work folder and ``notes``:
    what the stages reported (``EpisodeContext.notes``: e.g. ``split``, ``consistency``; kept for rejected episodes
    too)."""

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
    notes: dict[str, Any] = field(default_factory=dict)
    idle_frames: int = 0
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


def work_key(cfg: CurateConfig, params: DatasetParams, stages: Sequence[Stage] = ()) -> str:
    """sha256 of what, besides the episode, decides its output: the config fingerprint, the dataset params and
    the stage classes that ran (another pipeline redoes the work)."""
    names = [f"{type(s).__module__}.{type(s).__qualname__}" for s in stages]
    return hashlib.sha256((cfg.fingerprint() + json.dumps(asdict(params), sort_keys=True)
                           + json.dumps(names)).encode()).hexdigest()


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
    """``(meta, FrameActions, video_path)`` of an episode, or raise :class:`~curation.stage.Reject`.

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
            raise Reject("validate", f"episode fails validation: {shown}{more}")
        meta = check_meta(ep_dir / "meta.json", folder_name=ep_dir.name).meta
        if meta is None:
            raise Reject("validate", "meta.json does not validate")
        df = pd.read_csv(ep_dir / "actions.csv")
    else:
        meta, df = chk.meta, chk.actions
    try:
        actions = FrameActions.from_table(df, meta.action_space.keys, keys)
    except ValueError as e:
        raise Reject("validate", str(e)) from None
    return meta, actions, ep_dir / "video.mp4"


# --------------------------------------------------------------------------------------------------------
# one episode


def process_episode(ep_dir: str | os.PathLike, work_root: str | os.PathLike, cfg: CurateConfig,
                    params: DatasetParams, stages: list[Stage] | None = None) -> EpisodeOutcome:
    """Curate one episode into ``work_root/<episode_id>/`` (atomically) and return its outcome.

    ``stages``: the set-up stage objects to run (the engines build them once per worker); None builds and sets
    up :func:`curation.stages.build_stages` of ``cfg``. Never raises for bad input: an unreadable, truncated or
    invalid episode becomes a ``rejected`` outcome with its reason in the episode's rejects. The source folder
    is only read.
    """
    if stages is None:
        stages = build_stages(cfg)
        for st in stages:
            st.setup()
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
            _curate(ep_dir, tmp, cfg, params, stages, outcome, rejects)
        except Reject as r:
            outcome.status = "rejected"
            outcome.clips = 0
            keep = {name for st in stages for name in st.side_files}  # e.g. measurements for the report
            for p in tmp.iterdir():
                if p.name not in keep:
                    p.unlink()
            rejects[:] = [dict(episode_id=eid, kind="episode", start_frame=0 if outcome.frames_in else -1,
                               end_frame=outcome.frames_in - 1 if outcome.frames_in else -1, stage=r.stage,
                               reason=r.reason, frames=outcome.frames_in)]
        import pyarrow.parquet as pq

        if not (tmp / CLIPS_FILE).exists():
            schema = clip_schema(len(params.keys), cfg.output.frame_codec, clip_fields(stages))
            pq.write_table(schema.empty_table(), tmp / CLIPS_FILE)
        pq.write_table(rejects_table(rejects) if rejects else REJECTS_SCHEMA.empty_table(),
                       tmp / EPISODE_REJECTS_FILE)
        outcome.rejects = len(rejects)
        outcome.seconds = time.perf_counter() - t_start
        final = work_root / eid
        outcome.work_dir = str(final)
        done = {**outcome.to_dict(), "work_key": work_key(cfg, params, stages)}
        (tmp / DONE_FILE).write_text(json.dumps(done, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return outcome


def _read_meta_best_effort(ep_dir: Path, out: EpisodeOutcome) -> None:
    """Source, scene and length from meta.json, so that even a rejected episode reports them."""
    try:
        meta_raw = json.loads((ep_dir / "meta.json").read_text())
        out.source, out.scene = str(meta_raw.get("source", "")), str(meta_raw.get("scene", ""))
        out.frames_in = int(meta_raw.get("frame_count", 0) or 0)
        out.input_s = out.frames_in / float(meta_raw.get("fps") or 1.0)
    except (OSError, ValueError, TypeError, AttributeError):
        pass


def frame_batches(video: Path, actions: FrameActions, size: int = FRAME_BATCH):
    """The source of an episode's stream: its decoded frames as :class:`~curation.stage.Frame` lists of
    ``size``, each frame's time from actions.csv; raises :class:`~curation.stage.Reject` (stage ``decode``)
    when the video cannot be decoded or its frame count differs from the rows of actions.csv."""
    from capture.video import VideoError, iter_frames

    n, i = len(actions), 0
    batch: list[Item] = []
    try:
        for _pts, image in iter_frames(video):
            if i >= n:
                raise Reject("decode", f"video has more frames than actions.csv's {n} rows")
            batch.append(Frame(i, float(actions.t[i]), image, i))
            i += 1
            if len(batch) == size:
                yield batch
                batch = []
    except VideoError as e:
        raise Reject("decode", str(e)) from None
    if i != n:
        raise Reject("decode", f"video has {i} frames, actions.csv has {n} rows")
    if batch:
        yield batch


def _curate(ep_dir: Path, tmp: Path, cfg: CurateConfig, params: DatasetParams, stages: list[Stage],
            out: EpisodeOutcome, rejects: list[dict]) -> None:
    import pyarrow.parquet as pq

    eid = ep_dir.name
    _read_meta_best_effort(ep_dir, out)
    meta, actions, video = load_episode(ep_dir, cfg, params.keys)
    out.source, out.scene = meta.source, meta.scene
    out.frames_in, out.input_s = len(actions), len(actions) / meta.fps
    ep = EpisodeContext(eid, meta, actions, params, tmp, video)
    out.notes = ep.notes  # what the stages report, even when one of them rejects the episode
    extra = clip_fields(stages)
    writer = None

    def sink(items: list[Item]) -> None:
        nonlocal writer
        for it in items:
            if isinstance(it, DropSpan):
                rejects.append(dict(episode_id=eid, kind=it.kind, start_frame=int(it.start_frame),
                                    end_frame=int(it.end_frame), stage=it.stage, reason=it.reason,
                                    frames=it.frame_count))
            elif isinstance(it, Clip):
                if writer is None:
                    writer = pq.ParquetWriter(tmp / CLIPS_FILE, clip_schema(len(params.keys), cfg.output.frame_codec,
                                                                            extra))
                a = it.actions
                writer.write_table(clip_table(
                    clip_id=f"{eid}-f{it.start_frame:07d}", episode_id=eid, source=meta.source, scene=meta.scene,
                    start_frame=it.start_frame, fps=params.fps, height=cfg.clip.height, width=cfg.clip.width,
                    frame_codec=cfg.output.frame_codec, media=it.media, keyboard=a.keyboard, mouse=a.mouse,
                    pose=a.pose, speed=a.speed, collision=a.collision, extra=extra, columns=it.columns,
                ))
                out.clips += 1
                out.clip_frames += len(a)

    try:
        for st in stages:
            st.start(ep)
        out.motion_step = ep.notes.get("motion_step")
        run_stream(stages, frame_batches(video, actions), sink)
        out.idle_frames = int(ep.notes.get("idle_frames_kept", 0))
    except BaseException:
        for st in stages:
            st.abort()
        raise
    finally:
        if writer is not None:
            writer.close()
