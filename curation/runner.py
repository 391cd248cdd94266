"""``curate()``: episodes folder -> shards folder, resumable, on a local process pool or on Ray (:mod:`curation.engines`).

Run layout (``out_dir``)::

    manifest.json  part-00000.parquet ...  rejects.parquet     the dataset (DESIGN.md section 4)
    .work/<episode_id>/{clips,rejects}.parquet, done.json      per-episode results = the progress journal
    .curate.lock                                               one curation per folder at a time

Resumability: an episode's work folder appears atomically when the episode is finished (see
:mod:`curation.process`); its ``done.json`` records the fingerprint of the source episode and of the config.
A rerun reuses every finished episode whose fingerprints still match, processes the rest, then packs all
work folders into shards again (deterministically: the clip ids are ``<episode_id>-f<start_frame>`` and the
order is fixed: by split, then by episode id), writing the manifest last. So a run killed at any point (even with
SIGKILL) and rerun ends with every clip exactly once and a manifest that matches the shards.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from curation.card import CARD_FILE, write_dataset_card
from curation.config import ENGINES, SPLITS, CurateConfig
from curation.process import (
    CLIPS_FILE, EPISODE_REJECTS_FILE, WORK_DIR, DatasetParams, EpisodeOutcome, cleanup_work_temp,
    episode_fingerprint, read_done, work_key,
)
from curation.schema import MANIFEST_FILE
from curation.shards import pack_shards, read_manifest
from curation.split import HeldOutSplit, episode_split
from curation.stage import clip_fields

log = logging.getLogger(__name__)
LOCK_FILE = ".curate.lock"


@dataclass
class CurateResult:
    """What a curation run did. ``episodes``: all episode folders seen; ``processed``: curated in this run;
    ``reused``: finished by an earlier run and reused; ``rejected``: episodes rejected whole (this run or
    reused); ``clips``: clips in the dataset; ``up_to_date``: nothing had changed since the last complete
    run, so nothing was rewritten."""

    out_dir: Path
    manifest_path: Path
    episodes: int = 0
    processed: int = 0
    reused: int = 0
    rejected: int = 0
    clips: int = 0
    rejects: int = 0
    shards: list[Path] = field(default_factory=list)
    up_to_date: bool = False
    seconds: float = 0.0
    outcomes: list[EpisodeOutcome] = field(default_factory=list)

    @property
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.out_dir)


def episode_folders(episodes_dir: Path) -> list[Path]:
    """Every non-hidden sub-folder of ``episodes_dir`` (complete or not: broken ones are rejected with
    their reason), sorted by name."""
    if not episodes_dir.is_dir():
        raise FileNotFoundError(f"episodes folder {episodes_dir} does not exist")
    return sorted(p for p in episodes_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_meta(ep: Path) -> dict | None:
    try:
        m = json.loads((ep / "meta.json").read_text(encoding="utf-8"))
        return m if isinstance(m, dict) else None
    except (OSError, ValueError):
        return None


def resolve_params(episodes: Sequence[Path], cfg: CurateConfig) -> DatasetParams:
    """The dataset's key list, fps and (for motion-matched sources) target displacement per output frame.

    Keys: ``cfg.action_keys`` or the first episode's (by id) whose meta.json has an action space. The motion
    target, when not in the config and motion sources are present, is the median per-frame displacement of
    the other sources' episodes resampled to the dataset fps (velocity-valid frames only).
    """
    from curation.stages import velocity_mask

    metas = [(ep, _read_meta(ep)) for ep in episodes]
    keys = cfg.action_keys
    if keys is None:
        for _, m in metas:
            ks = (m or {}).get("action_space", {}).get("keys") if isinstance((m or {}).get("action_space"), dict) else None
            if isinstance(ks, list) and ks:
                keys = tuple(str(k) for k in ks)
                break
    if keys is None:
        from capture.actions import DEFAULT_KEYS

        keys = DEFAULT_KEYS
    target = cfg.resample.motion_target_cm
    motion = set(cfg.resample.motion_sources)
    if motion and target is None and any((m or {}).get("source") in motion for _, m in metas):
        import pandas as pd

        per_frame: list[np.ndarray] = []
        for ep, m in metas:
            if not m or m.get("source") in motion:
                continue
            try:
                df = pd.read_csv(ep / "actions.csv", usecols=["x", "y", "z", "speed", "d_pitch", "d_yaw"])
                fps = float(m["fps"])
            except Exception:
                continue
            p = df[["x", "y", "z"]].to_numpy(dtype=np.float64)
            valid, _ = velocity_mask(df["speed"].to_numpy(), df[["d_pitch", "d_yaw"]].to_numpy(), fps, cfg.velocity,
                                     pos=p)
            ok = valid[1:] & valid[:-1] & np.isfinite(p).all(axis=1)[1:] & np.isfinite(p).all(axis=1)[:-1]
            d = np.linalg.norm(np.diff(p, axis=0), axis=1)[ok]
            per_frame.append(d * (fps / cfg.resample.fps))  # displacement per output frame at the dataset fps
        if per_frame and sum(map(len, per_frame)):
            target = float(np.median(np.concatenate(per_frame)))
            log.info("motion target: median displacement %.4g cm per output frame from the reference episodes", target)
    return DatasetParams(keys=tuple(keys), fps=float(cfg.resample.fps), motion_target_cm=target)


def _inputs_key(episodes: Sequence[Path], cfg: CurateConfig, params: DatasetParams, wk: str) -> str:
    import hashlib

    h = hashlib.sha256(wk.encode())
    h.update(json.dumps(cfg.to_dict()["output"], sort_keys=True).encode())
    for ep in episodes:
        h.update(f"{ep.name}:{episode_fingerprint(ep)};".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------
# curate


def curate(
    episodes_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: CurateConfig | Mapping[str, Any] | None = None,
    engine: str = "local",
    workers: int = 1,
    progress: bool = True,
    ray_address: str = "local",
    pipeline: Sequence[type] | None = None,
) -> CurateResult:
    """Curate every episode of ``episodes_dir`` into the shards folder ``out_dir``.

    ``config``: a :class:`CurateConfig` or the ``curate:`` mapping of pipeline.yaml (None: defaults).
    ``engine``: ``local`` (a process pool of ``workers`` processes; 1 = in this process) or ``ray`` (``workers``
    Ray actors on the cluster ``ray_address``: ``local`` starts a private Ray unless one is initialised; see
    :func:`capture.ray_engine.ray_session`). Both run the same stage objects and write the same shards.
    ``pipeline``: the stage classes to run, in order (default :data:`curation.stages.PIPELINE`).
    ``progress``: a progress bar over episodes. Ctrl-C / SIGTERM stop the workers and raise
    :class:`capture.lifecycle.Interrupted` saying what was kept. Bad episodes (unreadable or truncated video, failed validation, NaN poses) are rejected into
    rejects.parquet with their reasons and the run goes on; sources are only read. Resumable (see module doc).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    cfg = config if isinstance(config, CurateConfig) else CurateConfig.from_dict(config)
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    episodes_dir, out_dir = Path(episodes_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = open(out_dir / LOCK_FILE, "w")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"{out_dir} is being curated by another process (lock {out_dir / LOCK_FILE})") from None
        episodes = episode_folders(episodes_dir)
        params = resolve_params(episodes, cfg)
        result = CurateResult(out_dir=out_dir, manifest_path=out_dir / MANIFEST_FILE, episodes=len(episodes))
        work_root = out_dir / WORK_DIR
        from curation.engines import EpisodeWorker, run_local, run_ray

        worker = EpisodeWorker.for_run(cfg, params, work_root, pipeline)
        wk = work_key(cfg, params, worker.stages)
        inputs = _inputs_key(episodes, cfg, params, wk)
        try:
            m = read_manifest(out_dir)
            if m.get("inputs_sha256") == inputs and all((out_dir / s["file"]).is_file() for s in m["shards"]):
                if not (out_dir / CARD_FILE).is_file():  # curated before dataset cards existed
                    write_dataset_card(out_dir, m)
                result.up_to_date = True
                result.clips = m["totals"]["clips"]
                result.rejects = m["rejects"]["rows"]
                result.rejected = m["totals"].get("episodes_rejected", 0)
                result.reused = len(episodes)
                result.shards = [out_dir / s["file"] for s in m["shards"]]
                result.seconds = time.perf_counter() - t0
                return result
        except Exception:
            pass

        work_root.mkdir(exist_ok=True)
        cleanup_work_temp(work_root)
        todo, outcomes = [], {}
        for ep in episodes:
            done = read_done(work_root, ep.name)
            if done and done.get("work_key") == wk and done.get("fingerprint") == episode_fingerprint(ep) \
                    and (work_root / ep.name / CLIPS_FILE).is_file():
                outcomes[ep.name] = {**done, "reused": True}
            else:
                todo.append(ep)
        known = {ep.name for ep in episodes}
        for p in work_root.iterdir():  # episodes that are gone from the source folder
            if p.is_dir() and p.name not in known:
                shutil.rmtree(p, ignore_errors=True)
        bar = tqdm(total=len(todo), unit="episode", desc="curate", disable=not progress or not todo)

        def on_done(o: dict) -> None:
            outcomes[o["episode_id"]] = o
            bar.update(1)

        try:
            if engine == "ray":
                run_ray(todo, worker, workers, on_done, ray_address)
            else:
                run_local(todo, worker, workers, on_done)
        except KeyboardInterrupt as exc:
            from capture.lifecycle import interrupted

            done = sum(1 for o in outcomes.values() if not o.get("reused") and o.get("status") != "failed")
            raise interrupted(exc, f"curate interrupted: {done} episode(s) curated in this run and "
                                   f"{len(episodes) - len(todo)} from earlier runs are kept in {work_root}; no "
                                   f"manifest was written. Rerun the same command to finish.") from None
        finally:
            bar.close()
        failed = [o for o in outcomes.values() if o.get("status") == "failed"]
        if failed:  # internal errors (not bad input): do not write a manifest that silently lacks them
            raise RuntimeError("curation failed for episode(s): " +
                               "; ".join(f"{o['episode_id']}: {o.get('error')}" for o in failed[:5]))

        sources: dict[str, dict[str, Any]] = {}
        for ep in episodes:
            o = outcomes[ep.name]
            s = sources.setdefault(o.get("source") or "unknown",
                                   {"episodes": 0, "episodes_rejected": 0, "input_hours": 0.0})
            s["episodes"] += 1
            s["episodes_rejected"] += o.get("status") == "rejected"
            s["input_hours"] += float(o.get("input_s") or 0.0) / 3600.0
        steps = [o["motion_step"] for o in outcomes.values() if o.get("motion_step")]
        extra = {
            "clip_frames": cfg.clip.frames, "fps": params.fps, "height": cfg.clip.height, "width": cfg.clip.width,
            "sources": dict(sorted(sources.items())),
            "totals": {"episodes": len(episodes),
                       "episodes_rejected": sum(o.get("status") == "rejected" for o in outcomes.values()),
                       "input_hours": sum(s["input_hours"] for s in sources.values()),
                       "idle_frames_kept": sum(int(o.get("idle_frames") or 0) for o in outcomes.values())},
            "config": cfg.to_dict(),
            "config_sha256": cfg.fingerprint(),
            "motion": {"target_cm_per_frame": params.motion_target_cm,
                       "steps": {"count": len(steps), "median": float(np.median(steps)) if steps else None}},
            "inputs_sha256": inputs,
            "producer": _producer(),
        }
        work_dirs = {ep.name: work_root / ep.name for ep in episodes}
        for st in worker.stages:  # the sections of the stages that summarise (e.g. split, consistency)
            section = st.summarise(outcomes, work_dirs, out_dir)
            if section is not None:
                extra[st.name] = section
        split_stage = any(isinstance(st, HeldOutSplit) for st in worker.stages)
        split_of = {ep.name: episode_split(outcomes[ep.name]) for ep in episodes}
        order = sorted(episodes, key=lambda e: (SPLITS.index(split_of[e.name]), e.name))  # one split per shard
        packed = pack_shards(
            out_dir, [work_dirs[e.name] / CLIPS_FILE for e in order],
            [work_dirs[e.name] / EPISODE_REJECTS_FILE for e in order], keys=params.keys,
            frame_codec=cfg.output.frame_codec, shard_max_rows=cfg.output.shard_max_rows,
            shard_max_bytes=cfg.output.shard_max_bytes, row_group_rows=cfg.output.row_group_rows,
            manifest_extra=extra, splits=[split_of[e.name] for e in order] if split_stage else None,
            extra_fields=clip_fields(worker.stages),
        )
        if not cfg.output.keep_work:
            shutil.rmtree(work_root, ignore_errors=True)
        result.processed = sum(1 for o in outcomes.values() if not o.get("reused"))
        result.reused = sum(1 for o in outcomes.values() if o.get("reused"))
        result.rejected = extra["totals"]["episodes_rejected"]
        result.clips = packed.manifest["totals"]["clips"]
        result.rejects = packed.manifest["rejects"]["rows"]
        result.shards = packed.shards
        result.outcomes = [EpisodeOutcome(**{k: v for k, v in outcomes[ep.name].items()
                                             if k in EpisodeOutcome.__dataclass_fields__}) for ep in episodes]
        result.seconds = time.perf_counter() - t0
        return result
    finally:
        try:
            fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            lock.close()


def _producer() -> str:
    try:
        from capture.episode import producer

        return producer()
    except Exception:  # pragma: no cover
        return "playmill unknown"

