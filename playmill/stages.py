"""The stage runner: each stage of pipeline.yaml as a library function the CLI and the tests call.

``run_pipeline(cfg)`` runs the configured stages in order: rl (train the PPO collection agent) -> collect ->
curate -> train (base world model) -> distill (causal few-step student) -> generate (sample videos). Every stage
is resumable: a rerun skips finished work. Everything a stage writes lives under ``cfg.workdir``::

    episodes/  shards/<dataset>/  models/{rl,base,ode_pairs,student_init,student}/  generate/  reports/
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


def ppo_checkpoint(cfg: PipelineConfig) -> Path:
    """The policy that ``controller: ppo`` records with: ``collect.ppo_checkpoint`` or the rl stage's output."""
    return cfg.collect.ppo_checkpoint or cfg.models_dir / "rl" / "policy.zip"


def controller_factory(cfg: PipelineConfig):
    """The picklable ``factory(world) -> Controller`` of ``collect.controller``."""
    cc = cfg.collect
    if cc.controller != "ppo":
        return CONTROLLER_FACTORIES[cc.controller]
    from rl_agent.controller import make_ppo_controller

    ckpt = ppo_checkpoint(cfg)
    if not ckpt.is_file():
        raise FileNotFoundError(f"collect.controller is ppo but there is no policy at {ckpt}: train one with the rl "
                                f"stage (`playmill run pipeline.yaml --stages rl`, or `playmill rl train`) or set "
                                f"collect.ppo_checkpoint")
    return functools.partial(make_ppo_controller, checkpoint=str(ckpt), deterministic=cc.ppo_deterministic,
                             shield=cc.ppo_shield)


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
    result = collect(tasks, make_world, controller_factory(cfg), cfg.episodes_dir,
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


def run_rl(cfg: PipelineConfig, *, progress: bool = True):
    """The rl stage: train (or resume) the PPO collection agent of the ``rl:`` section into ``<workdir>/models/rl``
    (``policy.zip`` is what ``collect.controller: ppo`` records with), and plot its learning curves."""
    from rl_agent import plot_learning_curves, train_ppo

    out = cfg.models_dir / "rl"
    result = train_ppo(cfg.rl.settings, out, progress=progress)
    try:
        plot_learning_curves(result.progress_csv, out / "learning_curves.png")
    except ValueError as exc:  # too few rollouts to draw curves
        log.warning("rl: no learning curves: %s", exc)
    write_json_atomic(cfg.workdir / "reports" / "rl.json", {"stage": "rl", **result.to_dict()})
    return result


def train_config(cfg: PipelineConfig):
    """The :class:`model.train.TrainConfig` of the ``train:`` section."""
    from model.train import get_train_config

    return get_train_config(cfg.train.preset, **cfg.train.settings)


def train_shards(cfg: PipelineConfig, *, progress: bool = True) -> Path:
    """The shards the train stage reads (``train.dataset``); ``auto`` curates them at the model's clip size when
    the curate stage's clips do not fit (see :class:`playmill.config.TrainSection`)."""
    import dataclasses

    tcfg = train_config(cfg)
    if cfg.train.dataset != "auto":
        path = cfg.workdir / "shards" / cfg.train.dataset
        if not (path / "manifest.json").is_file():
            raise FileNotFoundError(f"train.dataset: {path} has no manifest.json; curate it first or use dataset: auto")
        return path
    clip = cfg.curate.config.clip
    if clip.frames >= tcfg.num_frames and (clip.height, clip.width) == (tcfg.height, tcfg.width):
        return cfg.shards_dir
    from curation import curate

    name = f"{cfg.curate.dataset}-{tcfg.width}x{tcfg.height}x{tcfg.num_frames}"
    fitted = dataclasses.replace(clip, frames=tcfg.num_frames, stride=tcfg.num_frames, height=tcfg.height,
                                 width=tcfg.width)
    out = cfg.workdir / "shards" / name
    log.info("train: curating the episodes at the model's clip size into %s", out)
    curate(cfg.episodes_dir, out, dataclasses.replace(cfg.curate.config, clip=fitted), engine=cfg.curate.engine,
           workers=cfg.curate.workers, progress=progress)
    return out


def run_train(cfg: PipelineConfig, *, progress: bool = True):
    """The train stage: the base world model (``train:`` section) on the sandbox shards -> ``<workdir>/models/base``
    (resumed when it exists; see model/TRAINING.md)."""
    from model.train import train

    shards = train_shards(cfg, progress=progress)
    result = train(train_config(cfg), shards, cfg.models_dir / "base", progress=progress)
    write_json_atomic(cfg.workdir / "reports" / "train.json", {"stage": "train", "shards": str(shards),
                                                               **_summary(result)})
    return result


DISTILL_STEPS = ("ode-pairs", "init", "dmd")


def distill_step(cfg: PipelineConfig, step: str, *, teacher: Path | None = None, shards: Path | None = None,
                 pairs: Path | None = None, student_init: Path | None = None, out: Path | None = None,
                 device: str | None = None, progress: bool = True) -> tuple[Any, Path]:
    """One step of the distill stage with the ``distill:`` section's configs -> ``(result, output folder)``.

    Defaults: teacher ``models/base``, shards the train shards, ODE pairs ``models/ode_pairs``, initialised student
    ``models/student_init``, outputs ``models/{ode_pairs,student_init,student}`` for ode-pairs, init and dmd."""
    from model.distill import distill_dmd, distill_init, make_ode_pairs
    from playmill.config import distill_configs

    if step not in DISTILL_STEPS:
        raise ValueError(f"unknown distill step {step!r}; expected one of {', '.join(DISTILL_STEPS)}")
    ocfg, icfg, dcfg = distill_configs(cfg.distill)
    models = cfg.models_dir
    teacher = teacher or models / "base"
    if step in ("ode-pairs", "dmd") and shards is None:
        shards = train_shards(cfg, progress=progress)
    if step == "ode-pairs":
        out = out or models / "ode_pairs"
        return make_ode_pairs(ocfg, teacher, shards, out, progress=progress, device=device), out
    if step == "init":
        out = out or models / "student_init"
        return distill_init(icfg, pairs or models / "ode_pairs", out, teacher=teacher, progress=progress,
                            device=device), out
    out = out or models / "student"
    return distill_dmd(dcfg, teacher, student_init or models / "student_init", out, shards_dir=shards,
                       progress=progress, device=device), out


def run_distill(cfg: PipelineConfig, *, progress: bool = True) -> dict[str, Any]:
    """The distill stage (Matrix-Game 2.0's Self-Forcing, model/TRAINING.md): ODE pairs from the base model on the
    train shards -> ``models/ode_pairs``; student initialisation by ODE regression -> ``models/student_init``; DMD
    self-forcing -> ``models/student`` (what ``generate --model student`` streams). Each step resumes."""
    shards = train_shards(cfg, progress=progress)
    results = {key: distill_step(cfg, step, shards=shards, progress=progress)[0]
               for key, step in (("ode_pairs", "ode-pairs"), ("init", "init"), ("dmd", "dmd"))}
    write_json_atomic(cfg.workdir / "reports" / "distill.json",
                      {"stage": "distill", **{k: _summary(v) for k, v in results.items()}})
    return results


def _summary(result: Any) -> dict[str, Any]:
    """The scalar and path fields of a result dataclass (histories left out) for a JSON report."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(result).items()
            if isinstance(v, (int, float, str, bool, Path, type(None)))}


def generate_inputs(cfg: PipelineConfig) -> tuple[Path, Path, Path]:
    """``(episode folder, first frame PNG, actions CSV)`` for the generate stage: the first frame and recorded
    actions of ``generate.episode`` (default: the last episode, in id order), written under ``<workdir>/generate``."""
    import cv2

    from capture.episode import list_episodes, read_episode

    episodes = list_episodes(cfg.episodes_dir)
    if cfg.generate.episode is not None:
        episodes = [e for e in episodes if e.name == cfg.generate.episode]
        if not episodes:
            raise FileNotFoundError(f"generate.episode: no episode {cfg.generate.episode!r} in {cfg.episodes_dir}")
    if not episodes:
        raise FileNotFoundError(f"generate: no episodes in {cfg.episodes_dir}; run the collect stage first")
    ep_dir = episodes[-1]
    out = cfg.workdir / "generate"
    out.mkdir(parents=True, exist_ok=True)
    image = out / f"{ep_dir.name}-frame0.png"
    ep = read_episode(ep_dir)
    first = next(iter(ep.frames()))
    if not cv2.imwrite(str(image), cv2.cvtColor(first, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {image}")
    return ep_dir, image, ep_dir / "actions.csv"


def run_generate(cfg: PipelineConfig, *, progress: bool = True) -> dict[str, Path]:
    """The generate stage: videos from the trained models, conditioned on an episode's first frame and
    recorded actions -> ``<workdir>/generate/{base,student}.mp4`` and a PNG strip comparing them with the recording."""
    models = cfg.generate.models
    if models is None:  # every model that has been trained in this workdir
        from model.bundle import latest_checkpoint

        models = [m for m, d in (("base", "base"), ("student", "student")) if latest_checkpoint(cfg.models_dir / d)]
        if not models:
            raise FileNotFoundError(f"generate: no trained model in {cfg.models_dir} (base/ or student/); run the "
                                    f"train stage (and distill for the student) first")
    ep_dir, image, actions = generate_inputs(cfg)
    out = cfg.workdir / "generate"
    written: dict[str, Path] = {}
    rows: dict[str, np.ndarray] = {}
    for name in models:
        if name == "base":
            from model.bundle import load_bundle
            from model.sample import generate_base

            import torch

            bundle = load_bundle(cfg.models_dir / "base", "cuda" if torch.cuda.is_available() else "cpu")
            frames = cfg.generate.frames or bundle.spec.num_frames  # default: the length it was trained on
            res = generate_base(bundle, image, actions, num_frames=frames,
                                steps=cfg.generate.steps, out_mp4=out / "base.mp4", seed=cfg.generate.seed,
                                progress=progress)
        else:
            from model.stream import generate_student

            res = generate_student(cfg.models_dir / "student", image, actions, out / "student.mp4",
                                   num_frames=cfg.generate.student_frames, seed=cfg.generate.seed, progress=progress,
                                   keep_frames=True)
        written[name] = out / f"{name}.mp4"
        rows[name] = res.frames
    strip = write_comparison_strip(out / "comparison.png", ep_dir, rows)
    write_json_atomic(cfg.workdir / "reports" / "generate.json",
                      {"stage": "generate", "episode": ep_dir.name, "image": str(image), "actions": str(actions),
                       "videos": {k: str(v) for k, v in written.items()}, "comparison": str(strip)})
    return written


def write_comparison_strip(path: Path, ep_dir: Path, rows: Mapping[str, np.ndarray], columns: int = 8) -> Path:
    """A PNG with one row per video: the recording, then each generated video, at ``columns`` evenly spaced
    frames of the shortest, each row labelled."""
    import cv2

    from capture.episode import read_episode
    from model.sample import load_image

    n = min(len(v) for v in rows.values())
    h, w = next(iter(rows.values())).shape[1:3]
    ep = read_episode(ep_dir)
    real = []
    for i, fr in enumerate(ep.frames()):
        if i >= n:
            break
        real.append(load_image(fr, h, w))  # the model's resize-crop of its conditioning frame
    picks = np.linspace(0, n - 1, min(columns, n)).round().astype(int)
    lines = []
    for label, frames in [("recording", np.stack(real)), *rows.items()]:
        tiles = [frames[i] for i in picks]
        row = np.concatenate(tiles, axis=1).copy()
        cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        lines.append(row)
    img = np.concatenate(lines, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    os.replace(tmp, path)
    return path


def run_pipeline(cfg: PipelineConfig, stages: list[str] | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Run ``stages`` (default: the config's) in pipeline order; returns each stage's result."""
    results: dict[str, Any] = {}
    from playmill.config import STAGES

    for stage in sorted(stages or cfg.stages, key=STAGES.index):
        log.info("stage %s", stage)
        if stage == "rl":
            results[stage] = run_rl(cfg, progress=progress)
        elif stage == "collect":
            results[stage] = run_collect(cfg, progress=progress)
        elif stage == "curate":
            results[stage] = run_curate(cfg, progress=progress)
        elif stage == "train":
            results[stage] = run_train(cfg, progress=progress)
        elif stage == "distill":
            results[stage] = run_distill(cfg, progress=progress)
        elif stage == "generate":
            results[stage] = run_generate(cfg, progress=progress)
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
