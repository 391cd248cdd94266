"""The stage runner: each stage of pipeline.yaml as a library function the CLI and the tests call.

``run_pipeline(cfg)`` runs the configured stages in order (collect -> curate -> rl -> train -> distill ->
generate as they land). Every stage is resumable: a rerun skips finished work.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from capture.collect import CollectResult, EpisodeTask, collect, plan_episodes
from playmill.config import CollectConfig, PipelineConfig, sample_param

log = logging.getLogger(__name__)


# --- factories (module-level so worker processes can unpickle them) ------------------------------------


def make_sandbox_world(scene: str, params: Mapping[str, Any], *, width: int, height: int, fps: float,
                       fov_deg: float):
    from unreal_bridge.sandbox import SandboxWorld

    return SandboxWorld(scene=scene, width=width, height=height, fps=fps, fov_deg=fov_deg, **dict(params))


def make_unrealcv_world(scene: str, params: Mapping[str, Any], *, settings: Mapping[str, Any]):
    from unreal_bridge.unrealcv_world import make_unrealcv_world as make

    return make(scene, {**dict(settings), **dict(params)})


def make_wander_controller(world):
    from unreal_bridge.sandbox import WanderController

    return WanderController(world)


def make_navmesh_controller(world):
    from unreal_bridge.navmesh_controller import make_navmesh_controller as make

    return make(world)


CONTROLLER_FACTORIES = {"navmesh": make_navmesh_controller, "wander": make_wander_controller}


def sandbox_episode_params(cc: CollectConfig, scene: str, seed: int) -> dict[str, Any]:
    """Per-episode sandbox parameters, drawn from the config deterministically from the episode seed."""
    rng = np.random.default_rng([seed, 7919])
    sb = cc.sandbox
    return {
        "weather": sample_param(sb.weather, rng),
        "time_of_day": round(float(sample_param(sb.time_of_day, rng)), 3),
        "npc_density": float(sample_param(sb.npc_density, rng)),
        "vehicle_density": float(sample_param(sb.vehicle_density, rng)),
    }


def collect_plan(cfg: PipelineConfig) -> list[EpisodeTask]:
    cc = cfg.collect
    params_for = functools.partial(sandbox_episode_params, cc) if cc.source == "sandbox" else None
    return plan_episodes(cc.source, cc.scenes, cc.episodes_per_scene, cc.frames, cfg.seed, params_for)


def run_collect(cfg: PipelineConfig, *, progress: bool = True) -> CollectResult:
    """The collect stage: record the planned episodes into ``<workdir>/episodes`` and write
    ``<workdir>/reports/collect.json`` (written, skipped and failed episodes with reasons)."""
    cc = cfg.collect
    if cc.source == "unrealcv":
        settings = {"width": cc.width, "height": cc.height, "fps": cc.fps, **cc.unrealcv}
        make_world = functools.partial(make_unrealcv_world, settings=settings)
    else:
        make_world = functools.partial(make_sandbox_world, width=cc.width, height=cc.height, fps=cc.fps,
                                       fov_deg=cc.sandbox.fov_deg)
    tasks = collect_plan(cfg)
    result = collect(tasks, make_world, CONTROLLER_FACTORIES[cc.controller], cfg.episodes_dir,
                     workers=cc.workers, progress=progress, encoder={"preset": cc.preset, "crf": cc.crf})
    report = {
        "stage": "collect",
        "planned": len(tasks),
        "written": [p.name for p in result.written],
        "skipped_existing": result.skipped,
        "failed": [{"episode_id": e, "reason": r} for e, r in result.failed],
        "removed_temp": [str(p) for p in result.removed_temp],
    }
    write_json_atomic(cfg.workdir / "reports" / "collect.json", report)
    return result


def run_curate(cfg: PipelineConfig, *, progress: bool = True):
    """The curate stage: episodes -> ``<workdir>/shards/<dataset>`` (Parquet shards, rejects, manifest), then
    ``report.html`` beside them (plots and preview strips)."""
    from curation import curate, write_report

    sec = cfg.curate
    result = curate(cfg.episodes_dir, cfg.shards_dir, sec.config, engine=sec.engine, workers=sec.workers,
                    progress=progress)
    write_report(cfg.shards_dir)
    return result


def run_pipeline(cfg: PipelineConfig, stages: list[str] | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Run ``stages`` (default: the config's) in pipeline order; returns each stage's result."""
    results: dict[str, Any] = {}
    for stage in stages or cfg.stages:
        log.info("stage %s", stage)
        if stage == "collect":
            results[stage] = run_collect(cfg, progress=progress)
        elif stage == "curate":
            results[stage] = run_curate(cfg, progress=progress)
        else:  # the config validator only lets through stages that exist
            raise ValueError(f"unknown stage {stage!r}")
    return results


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
