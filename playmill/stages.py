"""The stage runner: each stage of pipeline.yaml as a library function the CLI and the tests call.

``run_pipeline(cfg)`` runs the configured stages in order: rl (train the PPO collection agent) -> collect ->
curate -> train (base world model) -> distill (causal few-step student) -> generate (sample videos) -> eval (the
models on held-out test episodes, :mod:`playmill.evaluation`), and returns a :class:`PipelineRun`: one :class:`StageReport` per stage (done / skipped / failed / not run, what it
wrote, where, how long, its warnings) and the files to open. Every stage is resumable: a rerun skips finished
work. Everything a stage writes lives under ``cfg.workdir``, with the complete resolved config beside it
(``pipeline.resolved.yaml``) and a report in ``reports/<stage>.json``::

    episodes/  shards/<dataset>/  models/{rl,base,ode_pairs,student_init,student}/  generate/  reports/

Generate and eval condition on the held-out ``test`` episodes of ``curate.split``; train and distill read the
``train`` split of the shards.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from capture.atomic import write_json_atomic
from capture.collect import CollectResult, EpisodeTask, collect, plan_episodes
from capture.settings import dump
from playmill.config import STAGES, CollectConfig, PipelineConfig, sample_param, write_resolved
from playmill.evaluation import run_eval, test_episodes

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
    return plan_episodes(cc.source, list(cc.scenes), cc.episodes_per_scene, cc.frames, cfg.seed, params_for)


# --- the stages ------------------------------------------------------------------------------------------


def is_rank_zero() -> bool:
    """False in a torchrun process other than rank 0 (``RANK`` > 0): those train beside rank 0 but write no
    report or resolved config and print no summary; rank 0 does, once."""
    return os.environ.get("RANK", "0") == "0"


def _record(cfg: PipelineConfig, stage: str, report: Mapping[str, Any], *outputs: Path) -> None:
    """``reports/<stage>.json`` (with the resolved config) and ``pipeline.resolved.yaml`` beside each output
    (rank 0 alone under torchrun)."""
    if not is_rank_zero():
        return
    for folder in outputs:
        write_resolved(cfg, folder)
    write_json_atomic(cfg.reports_dir / f"{stage}.json", {"stage": stage, **report, "config": dump(cfg)})


def run_collect(cfg: PipelineConfig, *, progress: bool = True) -> CollectResult:
    """The collect stage: record the planned episodes into ``<workdir>/episodes`` and write
    ``<workdir>/reports/collect.json`` (written, skipped and failed episodes with reasons)."""
    cc = cfg.collect
    streams = None
    if cc.source == "unrealcv":
        settings = cc.unrealcv.to_dict()
        make_world = functools.partial(make_unrealcv_world, settings=settings)
        streams = [functools.partial(make_unrealcv_world, settings={**settings, "host": e.host, "port": e.port})
                   for e in cc.endpoints for _ in range(e.streams)] or None
    else:
        make_world = functools.partial(make_sandbox_world, width=cc.width, height=cc.height, fps=cc.fps,
                                       fov_deg=cc.sandbox.fov_deg)
    tasks = collect_plan(cfg)
    result = collect(tasks, make_world, controller_factory(cfg), cfg.episodes_dir,
                     workers=cc.workers, progress=progress, encoder={"preset": cc.preset, "crf": cc.crf},
                     engine=cc.engine, streams=streams, ray_address=cfg.ray.address)
    _record(cfg, "collect", {
        "engine": cc.engine,
        "planned": len(tasks),
        "written": [p.name for p in result.written],
        "skipped_existing": result.skipped,
        "failed": [{"episode_id": e, "reason": r} for e, r in result.failed],
        "rerun": [{"episode_id": e, "reason": r} for e, r in result.rerun],
        "removed_temp": [str(p) for p in result.removed_temp],
    }, cfg.episodes_dir)
    return result


def run_curate(cfg: PipelineConfig, *, progress: bool = True):
    """The curate stage: episodes -> ``<workdir>/shards/<dataset>`` (Parquet shards, rejects, manifest), then
    ``report.html`` beside them (plots and preview strips)."""
    from curation import curate, write_report

    sec = cfg.curate
    result = curate(cfg.episodes_dir, cfg.shards_dir, sec.config, engine=sec.engine, workers=sec.workers,
                    progress=progress, ray_address=cfg.ray.address)
    write_report(cfg.shards_dir)
    _record(cfg, "curate", _summary(result), cfg.shards_dir)
    _warn_bad_data(cfg.shards_dir)
    return result


def _warn_bad_data(shards: Path, limit: int = 20) -> None:
    """A warning for each episode curation rejected whole and each clip it dropped for bad data, with the stage
    and the reason (from rejects.parquet; spans cut by design, e.g. frames after the last clip, are not listed)."""
    from curation.shards import bad_data_rejects

    rows = bad_data_rejects(shards)
    for r in rows[:limit]:
        what = "episode" if r["kind"] == "episode" else f"clip of frames {r['start_frame']}-{r['end_frame']} of"
        log.warning("rejected %s %s (%s): %s", what, r["episode_id"], r["stage"], r["reason"].splitlines()[0])
    if len(rows) > limit:
        log.warning("... and %d more rejected for bad data in %s", len(rows) - limit, shards / "rejects.parquet")


def base_checkpoints_kept(out: Path) -> str:
    """What an interrupted train stage kept (its newest checkpoint) and how to continue."""
    from capture.lifecycle import checkpoints_kept
    from model.bundle import latest_checkpoint

    return checkpoints_kept("train", latest_checkpoint(out), out, "Rerun the same command to resume from it.")


def run_rl(cfg: PipelineConfig, *, progress: bool = True):
    """The rl stage: train (or resume) the PPO collection agent of the ``rl:`` section into ``<workdir>/models/rl``
    (``policy.zip`` is what ``collect.controller: ppo`` records with), with its learning curves."""
    from rl_agent.run import train_run

    out = cfg.models_dir / "rl"
    run = train_run(cfg.rl, out, mode="resume", progress=progress)
    if run.curves is None:
        log.warning("rl: too few rollouts to draw learning curves: raise rl.ppo.total_timesteps")
    _record(cfg, "rl", run.result.to_dict(), out)
    return run.result


def train_shards(cfg: PipelineConfig, *, progress: bool = True) -> Path:
    """The shards the train stage reads (``train.dataset``); ``auto`` curates them at the model's clip size when
    the curate stage's clips do not fit (see :class:`playmill.config.TrainSection`). Under torchrun rank 0
    curates while the other ranks wait (:func:`model.parallel.run_on_rank_zero`), then every rank trains on them."""
    tcfg = cfg.train
    if tcfg.dataset != "auto":
        path = cfg.workdir / "shards" / tcfg.dataset
        if not (path / "manifest.json").is_file():
            raise FileNotFoundError(f"train.dataset: {path} has no manifest.json; curate it first or use dataset: auto")
        return path
    clip = cfg.curate.clip
    if clip.frames >= tcfg.num_frames and (clip.height, clip.width) == (tcfg.height, tcfg.width):
        return cfg.shards_dir
    from curation import curate

    name = f"{cfg.curate.dataset}-{tcfg.width}x{tcfg.height}x{tcfg.num_frames}"
    fitted = dataclasses.replace(clip, frames=tcfg.num_frames, stride=tcfg.num_frames, height=tcfg.height,
                                 width=tcfg.width)
    out = cfg.workdir / "shards" / name

    def prepare() -> None:
        log.info("train: curating the episodes at the model's clip size into %s", out)
        curate(cfg.episodes_dir, out, dataclasses.replace(cfg.curate.config, clip=fitted), engine=cfg.curate.engine,
               workers=cfg.curate.workers, progress=progress, ray_address=cfg.ray.address)

    from model.parallel import run_on_rank_zero

    run_on_rank_zero(prepare, f"curating {out} for train.dataset: auto")
    return out


def run_train(cfg: PipelineConfig, *, shards: Path | None = None, out: Path | None = None, resume: bool = True,
              progress: bool = True):
    """The train stage: the base world model (``train:`` section) -> ``<workdir>/models/base`` (resumed when it
    exists; see model/TRAINING.md). ``shards``/``out`` replace the train shards and the run folder."""
    from model.train import train

    from capture.lifecycle import reports_interrupt

    shards = shards or train_shards(cfg, progress=progress)
    out = out or cfg.models_dir / "base"
    with reports_interrupt(lambda: base_checkpoints_kept(out)):
        result = train(cfg.train.config, shards, out, progress=progress, resume=resume)
    _record(cfg, "train", {"shards": str(shards), **_summary(result)}, out)
    return result


DISTILL_STEPS = ("ode-pairs", "init", "dmd")


def distill_step(cfg: PipelineConfig, step: str, *, teacher: Path | None = None, shards: Path | None = None,
                 pairs: Path | None = None, student_init: Path | None = None, out: Path | None = None,
                 device: str | None = None, progress: bool = True) -> tuple[Any, Path]:
    """One step of the distill stage with the ``distill:`` section's configs -> ``(result, output folder)``.

    Defaults: teacher ``models/base``, shards the train shards, ODE pairs ``models/ode_pairs``, initialised student
    ``models/student_init``, outputs ``models/{ode_pairs,student_init,student}`` for ode-pairs, init and dmd."""
    from model.distill import distill_dmd, distill_init, make_ode_pairs

    if step not in DISTILL_STEPS:
        raise ValueError(f"unknown distill step {step!r}; expected one of {', '.join(DISTILL_STEPS)}")
    sec, models = cfg.distill, cfg.models_dir
    teacher = teacher or models / "base"
    if step in ("ode-pairs", "dmd") and shards is None:
        shards = train_shards(cfg, progress=progress)
    if step == "ode-pairs":
        out = out or models / "ode_pairs"
        res = make_ode_pairs(sec.ode_pairs, teacher, shards, out, progress=progress, device=device)
    elif step == "init":
        out = out or models / "student_init"
        res = distill_init(sec.init, pairs or models / "ode_pairs", out, teacher=teacher, progress=progress,
                           device=device, logger=sec.logger)
    else:
        out = out or models / "student"
        res = distill_dmd(sec.dmd, teacher, student_init or models / "student_init", out, shards_dir=shards,
                          progress=progress, device=device, logger=sec.logger)
    if is_rank_zero():
        write_resolved(cfg, out)
    return res, out


def run_distill(cfg: PipelineConfig, *, progress: bool = True) -> dict[str, Any]:
    """The distill stage (Matrix-Game 2.0's Self-Forcing, model/TRAINING.md): ODE pairs from the base model on the
    train shards -> ``models/ode_pairs``; student initialisation by ODE regression -> ``models/student_init``; DMD
    self-forcing -> ``models/student`` (what ``generate --model student`` streams). Each step resumes."""
    shards = train_shards(cfg, progress=progress)
    results = {key: distill_step(cfg, step, shards=shards, progress=progress)[0]
               for key, step in (("ode_pairs", "ode-pairs"), ("init", "init"), ("dmd", "dmd"))}
    _record(cfg, "distill", {k: _summary(v) for k, v in results.items()})
    return results


def _summary(result: Any) -> dict[str, Any]:
    """The scalar and path fields of a result dataclass (histories left out) for a JSON report."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(result).items()
            if isinstance(v, (int, float, str, bool, Path, type(None)))}


def generate_inputs(cfg: PipelineConfig) -> tuple[Path, Path, Path]:
    """``(episode folder, first frame PNG, actions CSV)`` for the generate stage: the first frame and recorded
    actions of ``generate.episode`` (default: the first held-out test episode of ``curate.split``, so the models
    never trained on it; the last episode, in id order, when there is none), written under ``<workdir>/generate``."""
    import cv2

    from capture.episode import list_episodes, read_episode

    episodes = list_episodes(cfg.episodes_dir)
    held_out = test_episodes(cfg)
    if cfg.generate.episode is None and held_out:
        episodes = held_out[:1]
    elif cfg.generate.episode is None and episodes:
        log.warning("generate: no test episode in %s (curate.split); conditioning on a training episode",
                    cfg.episodes_dir)
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
    first = next(iter(read_episode(ep_dir).frames()))
    if not cv2.imwrite(str(image), cv2.cvtColor(first, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {image}")
    return ep_dir, image, ep_dir / "actions.csv"


def _generate_one(cfg: PipelineConfig, name: str, image: Path, actions: Path, out: Path, progress: bool):
    if name == "base":
        import torch

        from model.bundle import load_bundle
        from model.sample import generate_base

        bundle = load_bundle(cfg.models_dir / "base", "cuda" if torch.cuda.is_available() else "cpu")
        frames = cfg.generate.frames or bundle.spec.num_frames  # default: the length it was trained on
        return generate_base(bundle, image, actions, num_frames=frames, steps=cfg.generate.steps,
                             out_mp4=out / "base.mp4", seed=cfg.generate.seed, progress=progress)
    from model.stream import generate_student

    return generate_student(cfg.models_dir / "student", image, actions, out / "student.mp4",
                            num_frames=cfg.generate.student_frames, seed=cfg.generate.seed, progress=progress,
                            keep_frames=True)


def run_generate(cfg: PipelineConfig, *, progress: bool = True) -> dict[str, Path]:
    """The generate stage: videos from the trained models, conditioned on an episode's first frame and
    recorded actions -> ``<workdir>/generate/{base,student}.mp4`` and a PNG strip comparing them with the recording."""
    models = cfg.generate.models
    if models is None:  # every model that has been trained in this workdir
        from model.bundle import latest_checkpoint

        models = [m for m in ("base", "student") if latest_checkpoint(cfg.models_dir / m)]
        if not models:
            raise FileNotFoundError(f"generate: no trained model in {cfg.models_dir} (base/ or student/); run the "
                                    f"train stage (and distill for the student) first")
    ep_dir, image, actions = generate_inputs(cfg)
    out = cfg.workdir / "generate"
    rows = {name: _generate_one(cfg, name, image, actions, out, progress).frames for name in models}
    written = {name: out / f"{name}.mp4" for name in models}
    strip = write_comparison_strip(out / "comparison.png", ep_dir, rows)
    _record(cfg, "generate", {"episode": ep_dir.name, "image": str(image), "actions": str(actions),
                              "videos": {k: str(v) for k, v in written.items()}, "comparison": str(strip)}, out)
    return written


def write_comparison_strip(path: Path, ep_dir: Path, rows: Mapping[str, np.ndarray], columns: int = 8) -> Path:
    """A PNG with one row per video: the recording, then each generated video, at ``columns`` evenly spaced
    frames of the shortest, each row labelled."""
    import cv2

    from capture.episode import read_episode
    from model.sample import load_image

    n = min(len(v) for v in rows.values())
    h, w = next(iter(rows.values())).shape[1:3]
    real = []
    for i, fr in enumerate(read_episode(ep_dir).frames()):
        if i >= n:
            break
        real.append(load_image(fr, h, w))  # the model's resize-crop of its conditioning frame
    picks = np.linspace(0, n - 1, min(columns, n)).round().astype(int)
    lines = []
    for label, frames in [("recording", np.stack(real)), *rows.items()]:
        row = np.concatenate([frames[i] for i in picks], axis=1).copy()
        cv2.putText(row, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        lines.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(np.concatenate(lines, axis=0), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    os.replace(tmp, path)
    return path


def run_eval_stage(cfg: PipelineConfig, *, progress: bool = True, **models: Any) -> dict[str, Any]:
    """The eval stage: :func:`playmill.evaluation.run_eval` (the trained models on up to ``eval.episodes`` held-out
    test episodes -> ``<workdir>/reports/eval.html``), recorded in ``<workdir>/reports/eval.json`` (with the resolved
    config). ``models``: checkpoints to evaluate instead of the workdir's (``base``, ``student``, and a Matrix-Game
    2.0 student's ``vae``, ``image_encoder``, ``mode``; ``device``)."""
    report = run_eval(cfg, progress=progress, **models)
    _record(cfg, "eval", report)
    return report


# --- what each stage did, in a line ------------------------------------------------------------------------


@dataclass
class StageReport:
    """One row of the run's summary. ``status``: done | skipped (nothing left to do) | failed | not run;
    ``wrote``: what it wrote, in words; ``where``: its output folder; ``failed_items``: ``(item, reason)`` for
    each item that failed while the stage went on (exit code 1); ``error``: why the stage itself failed."""

    stage: str
    status: str = "not run"
    wrote: str = ""
    where: Path | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    failed_items: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    result: Any = None


def _describe_collect(cfg: PipelineConfig, r: CollectResult) -> tuple[str, str, Path, list]:
    status = "skipped" if not r.written and not r.failed else "done"
    wrote = f"{len(r.written)} episode(s), {len(r.skipped)} already there, {len(r.failed)} failed"
    if r.rerun:
        wrote += f"; {len(r.rerun)} run again (worker died)"
    if r.removed_temp:
        wrote += f"; removed {len(r.removed_temp)} unfinished"
    return status, wrote, cfg.episodes_dir, [(e, reason.splitlines()[0]) for e, reason in r.failed]


def _describe_curate(cfg: PipelineConfig, r: Any) -> tuple[str, str, Path, list]:
    if r.clips == 0:  # no empty success: the stages after it would have nothing to read
        why = (f"no clips: no episodes in {cfg.episodes_dir} (collect or import some first)" if not r.episodes
               else f"no clips: all {r.episodes} episode(s) gave no clip; the reasons are in "
                    f"{r.out_dir / 'rejects.parquet'}")
        return "failed", why, r.out_dir, []
    done = "up to date" if r.up_to_date else f"{r.processed} episode(s) curated, {r.reused} reused"
    wrote = f"{r.clips} clip(s) in {len(r.shards)} shard(s) ({done}); {r.rejected} episode(s) rejected"
    return ("skipped" if r.up_to_date else "done"), wrote, r.out_dir, []


def _describe_rl(cfg: PipelineConfig, r: Any) -> tuple[str, str, Path, list]:
    wrote = f"policy.zip: {r.num_timesteps} decisions ({r.trained_timesteps} now), {r.episodes} episodes"
    return ("skipped" if r.stopped_by == "already_done" else "done"), wrote, cfg.models_dir / "rl", []


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _describe_train(cfg: PipelineConfig, r: Any) -> tuple[str, str, Path, list]:
    wrote = (f"{r.steps} steps, loss {_fmt(r.final_loss)}, validation {_fmt(r.val_loss_initial)} -> "
             f"{_fmt(r.val_loss_final)}")
    return ("skipped" if r.steps == r.resumed_from else "done"), wrote, r.out_dir, []


def _describe_distill(cfg: PipelineConfig, r: Mapping[str, Any]) -> tuple[str, str, Path, list]:
    p, i, d = r["ode_pairs"], r["init"], r["dmd"]
    idle = p.computed == 0 and i.steps == i.resumed_from and d.steps == d.resumed_from
    wrote = f"{p.num_pairs} ODE pairs, {i.steps} init steps, {d.steps} DMD steps"
    return ("skipped" if idle else "done"), wrote, d.out_dir, []


def _describe_generate(cfg: PipelineConfig, r: Mapping[str, Path]) -> tuple[str, str, Path, list]:
    return "done", ", ".join(p.name for p in r.values()) + ", comparison.png", cfg.workdir / "generate", []


def _describe_eval(cfg: PipelineConfig, r: Mapping[str, Any]) -> tuple[str, str, Path, list]:
    kappas = [f"{m} {_fmt(r['summary'].get(f'{m}: recorded actions', {}).get('mouse_kappa'))}" for m in r["models"]]
    wrote = f"{len(r['episodes'])} test episode(s), mouse kappa " + ", ".join(kappas) + "; eval.json, eval.html"
    return "done", wrote, cfg.reports_dir, []


#: stage -> (run(cfg, progress=...), describe(cfg, result) -> (status, wrote, where, failed items))
STAGE_FUNCTIONS: dict[str, tuple[Callable[..., Any], Callable[..., tuple]]] = {
    "rl": (run_rl, _describe_rl),
    "collect": (run_collect, _describe_collect),
    "curate": (run_curate, _describe_curate),
    "train": (run_train, _describe_train),
    "distill": (run_distill, _describe_distill),
    "generate": (run_generate, _describe_generate),
    "eval": (run_eval_stage, _describe_eval),
}


class _Warnings(logging.Handler):
    """Collects the warnings logged while a stage runs (they are printed as they happen too)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class PipelineRun:
    """What :func:`run_pipeline` did: one :class:`StageReport` per stage asked for, in pipeline order, and the
    files a person opens to look at the result."""

    stages: list[StageReport]
    open: list[Path]

    @property
    def results(self) -> dict[str, Any]:
        return {s.stage: s.result for s in self.stages if s.status in ("done", "skipped")}

    @property
    def exit_code(self) -> int:
        """0 every stage done or skipped with no failed item; 1 otherwise."""
        return 1 if any(s.status in ("failed", "not run") or s.failed_items for s in self.stages) else 0

    def table(self, relative_to: Path | None = None) -> str:
        """The summary a person acts on: one row per stage (status, time, what it wrote, where), then the
        failures with their reasons, the warnings (each says what to change) and the files to open."""

        def show(p: Path | None) -> str:
            if p is None:
                return ""
            try:
                return str(p.resolve().relative_to(relative_to.resolve())) if relative_to else str(p)
            except ValueError:
                return str(p)

        rows = [("stage", "status", "time", "wrote", "where")]
        for s in self.stages:
            wrote = s.wrote if s.status in ("done", "skipped") else (s.error or "")
            rows.append((s.stage, s.status, _duration(s.seconds) if s.status != "not run" else "",
                         wrote if len(wrote) <= 70 else wrote[:67] + "...", show(s.where)))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        problems = [f"  {s.stage}: {s.error}" for s in self.stages if s.status == "failed"]
        problems += [f"  {s.stage}: {item}: {why}" for s in self.stages for item, why in s.failed_items]
        if problems:
            lines += ["failed (fix the cause and rerun the same command: finished work is kept):", *problems]
        warnings = [f"  {s.stage}: {w}" for s in self.stages for w in s.warnings]
        if warnings:
            lines += ["warnings:", *warnings]
        if self.open:
            lines += ["open:", *(f"  {show(p)}" for p in self.open)]
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def run_stage(cfg: PipelineConfig, stage: str, *, progress: bool = True,
              run: Callable[..., Any] | None = None, describe: Callable[..., tuple] | None = None,
              reraise: tuple[type[BaseException], ...] = ()) -> StageReport:
    """Run one stage and describe it; an exception becomes ``status: failed`` with its reason (the caller
    decides whether later stages run), except those of ``reraise`` (a usage error found before any work: the
    command line turns it into exit code 2). ``run``/``describe`` replace the stage's own (a verb's variant
    of a stage); ``describe`` may say ``failed`` (its ``wrote`` is then the reason). Shard readers opened by the
    stage verify as ``cfg.verify_shards`` says. KeyboardInterrupt propagates."""
    from curation.shards import shard_verification

    run = run or STAGE_FUNCTIONS[stage][0]
    describe = describe or STAGE_FUNCTIONS[stage][1]
    rep = StageReport(stage)
    handler = _Warnings()
    logging.getLogger().addHandler(handler)
    t0 = time.perf_counter()
    try:
        with shard_verification(cfg.verify_shards):
            rep.result = run(cfg, progress=progress)
        rep.status, rep.wrote, rep.where, rep.failed_items = describe(cfg, rep.result)
        if rep.status == "failed":  # the stage ran but gave nothing to go on with (e.g. no clip)
            rep.error = rep.wrote
    except reraise:
        raise
    except Exception as exc:  # reported in the summary; the traceback is in the log at debug level
        log.debug("stage %s failed", stage, exc_info=True)
        rep.status, rep.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        logging.getLogger().removeHandler(handler)
        rep.seconds = time.perf_counter() - t0
    rep.warnings = handler.messages
    return rep


def run_pipeline(cfg: PipelineConfig, stages: list[str] | tuple[str, ...] | None = None, *,
                 progress: bool = True, reraise: tuple[type[BaseException], ...] = ()) -> PipelineRun:
    """Run ``stages`` (default: the config's) in pipeline order. A stage that fails stops the ones after it
    (they read its outputs); they are reported as not run. ``reraise``: see :func:`run_stage`."""
    order = sorted(stages or cfg.stages, key=STAGES.index)
    reports = []
    for stage in order:
        if reports and reports[-1].status in ("failed", "not run"):
            reports.append(StageReport(stage, error=f"{reports[-1].stage} did not finish"))
            continue
        log.info("stage %s", stage)
        reports.append(run_stage(cfg, stage, progress=progress, reraise=reraise))
    return PipelineRun(reports, files_to_open(cfg, order))


def files_to_open(cfg: PipelineConfig, stages: list[str]) -> list[Path]:
    """The files a person looks at after these stages: the curation report, the comparison strip, the
    evaluation report, the RL learning curves (those that exist)."""
    candidates = {"rl": cfg.models_dir / "rl" / "learning_curves.png", "curate": cfg.shards_dir / "report.html",
                  "generate": cfg.workdir / "generate" / "comparison.png", "eval": cfg.reports_dir / "eval.html"}
    return [p for s, p in candidates.items() if s in stages and p.is_file()]
