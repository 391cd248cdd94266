"""Training and evaluation runs of the collection agent: what ``playmill rl train|eval`` and the pipeline's rl
stage call (the command line only parses and prints).

A training run folder holds ``config.json``, ``checkpoints/ckpt_<decisions>.zip``, ``policy.zip`` (the final
policy: give it to ``collect.ppo_checkpoint``), ``logs/progress.csv``, ``logs/episodes.csv``, ``logs/sb3/``
(TensorBoard event files when tensorboard is installed), ``learning_curves.png`` and ``train_result.json``.
An evaluation writes ``<checkpoint stem>.eval.csv`` and ``.eval.json`` next to the checkpoint (or in ``out_dir``).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from capture.atomic import write_json_atomic
from capture.errors import InputError, UsageError
from rl_agent.config import RLConfig, heldout_seeds

#: Worlds known by name (else MODULE:FUNCTION of a picklable factory(scene, params) -> World).
WORLDS: dict[str, str | None] = {"sandbox": None, "unrealcv": "unreal_bridge.unrealcv_world:make_unrealcv_world"}
#: What a fresh run deletes from its folder first.
RUN_FILES: tuple[str, ...] = ("checkpoints", "logs", "policy.zip", "config.json", "learning_curves.png",
                              "train_result.json")

__all__ = ["EvalRun", "TrainRun", "evaluate_checkpoint", "resolve_checkpoint", "tensorboard_installed",
           "train_run", "with_tensorboard", "world_factory"]


def tensorboard_installed() -> bool:
    """Whether the ``tensorboard`` package can be imported (stable-baselines3 writes event files with it)."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def with_tensorboard(cfg: RLConfig, tensorboard: bool | None) -> RLConfig:
    """``cfg`` with ``tensorboard`` in ``ppo.log_formats`` when asked (True), or when installed (None)."""
    if tensorboard is True and not tensorboard_installed():
        raise ValueError("--tensorboard: the tensorboard package is not installed (pip install tensorboard); leave "
                         "the flag out for CSV logs only")
    formats = [f for f in cfg.ppo.log_formats if f != "tensorboard"]
    if tensorboard is True or (tensorboard is None and tensorboard_installed()):
        formats.append("tensorboard")
    return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, log_formats=tuple(formats)))


def world_factory(spec: str) -> Any:
    """None for the sandbox, else the factory ``spec`` names (a name of :data:`WORLDS` or ``MODULE:FUNCTION``);
    ValueError naming what is wrong."""
    target = WORLDS.get(spec, spec)
    if target is None:
        return None
    if ":" not in target:
        raise ValueError(f"--world {spec!r}: expected {', '.join(WORLDS)} or MODULE:FUNCTION")
    mod, _, fn = target.partition(":")
    try:
        factory = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--world {spec!r}: cannot import {target}: {exc}") from None
    if not callable(factory):
        raise ValueError(f"--world {spec!r}: {target} is not callable")
    return factory


@dataclass
class TrainRun:
    """A training run: the :class:`rl_agent.train.TrainResult`, its folder, the learning curves (None when there
    were too few rollouts to draw them) and whether it started from scratch."""

    result: Any
    out_dir: Path
    curves: Path | None
    started_fresh: bool


def train_run(cfg: RLConfig, out_dir: str | os.PathLike, *, mode: Literal["new", "resume", "fresh"] = "resume",
              make_world: Any = None, progress: bool = True, plot: bool = True) -> TrainRun:
    """Train (or continue) the agent into ``out_dir``. ``mode``: ``new`` refuses a folder that holds checkpoints of
    a previous run; ``resume`` continues from its newest checkpoint (same observation/action space) up to
    ``ppo.total_timesteps``; ``fresh`` deletes the previous run's files first. :class:`capture.errors.UsageError`
    for a folder it must not touch."""
    from rl_agent.checkpoint import latest_checkpoint
    from rl_agent.train import train_ppo

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    previous = latest_checkpoint(out / "checkpoints")
    if previous is not None and mode == "new":
        raise UsageError(f"{out} holds checkpoints of a previous run (newest {previous.name}); pass --resume to "
                         "continue it, --fresh to delete it and start anew, or choose another --out")
    if mode == "fresh":
        for name in RUN_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    res = train_ppo(cfg, out, progress=progress, make_world=make_world)
    png = None
    if plot and _has_rows(res.progress_csv):
        from rl_agent.plots import plot_learning_curves

        png = plot_learning_curves(res.progress_csv, out / "learning_curves.png",
                                   title=f"PPO collection agent: {res.num_timesteps} decisions")
    write_json_atomic(out / "train_result.json", {**res.to_dict(), "learning_curves_png": png})
    return TrainRun(res, out, png, previous is None or mode == "fresh")


def _has_rows(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return sum(1 for _ in f) >= 2
    except OSError:
        return False


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file from ``path``: the file itself, or a run folder's policy.zip / newest checkpoint."""
    from rl_agent.checkpoint import latest_checkpoint

    path = Path(path)
    if path.is_dir():
        if (path / "policy.zip").is_file():
            return path / "policy.zip"
        newest = latest_checkpoint(path / "checkpoints")
        if newest is None:
            raise InputError(f"{path}: a folder without policy.zip or checkpoints/ckpt_*.zip; give a checkpoint file "
                             "or a run folder of `playmill rl train`")
        return newest
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint (train one with `playmill rl train --out DIR`)")
    return path


def progress_csv_of(checkpoint: Path) -> Path | None:
    """The ``logs/progress.csv`` of the run a checkpoint belongs to (``RUN/policy.zip`` or
    ``RUN/checkpoints/ckpt_*.zip``), or None."""
    for run in (checkpoint.parent, checkpoint.parent.parent):
        p = run / "logs" / "progress.csv"
        if p.is_file():
            return p
    return None


@dataclass
class EvalRun:
    """An evaluation: the checkpoint, the policies compared, the :class:`rl_agent.evaluation.EvalTable`, the
    ppo/random ratios (empty without both), the files written and the curves (when asked)."""

    checkpoint: Path
    num_timesteps: Any
    policies: list[str]
    scenes: list[str]
    seeds: list[int]
    table: Any
    ratios: dict[str, float]
    csv_path: Path
    json_path: Path
    curves: Path | None


def _policy_names(cfg: RLConfig) -> list[str]:
    from rl_agent.evaluation import navmesh_controller_available

    ev = cfg.eval
    if ev.policies is None:
        names = ["ppo", "random", "wander"] + (["navmesh"] if navmesh_controller_available() else [])
    else:
        names = list(ev.policies)
        if "navmesh" in names and not navmesh_controller_available():
            raise ValueError("rl.eval.policies: navmesh needs unreal_bridge.navmesh_controller, not available here")
    if ev.shield and "ppo+shield" not in names:
        names.insert(names.index("ppo") + 1 if "ppo" in names else 0, "ppo+shield")
    return list(dict.fromkeys(names))


def evaluate_checkpoint(checkpoint: str | os.PathLike, cfg: RLConfig, *, own_env: bool = True,
                        out_dir: str | os.PathLike | None = None, plot: bool = False,
                        progress: bool = True) -> EvalRun:
    """Evaluate a checkpoint side by side with the baselines of ``cfg.eval`` on held-out scene seeds; write the
    table as CSV and JSON. ``own_env``: evaluate under the checkpoint's own env settings, else under ``cfg.env``
    (whose observation and action spaces must equal the checkpoint's). Raises :class:`rl_agent.checkpoint.
    CheckpointError` for a bad checkpoint; an evaluation episode that raises propagates (the work failed)."""
    from rl_agent.checkpoint import compare_spaces, load_policy
    from rl_agent.evaluation import PolicySpec, evaluate

    ckpt = resolve_checkpoint(checkpoint)
    loaded = load_policy(ckpt)
    env = loaded.config.env
    if not own_env:
        compare_spaces(loaded.meta, cfg.env, ckpt, "the configured")
        env = cfg.env
    ev = cfg.eval
    names = _policy_names(cfg)
    progress_csv = progress_csv_of(ckpt) if plot else None
    if plot and progress_csv is None:
        raise ValueError(f"--plot: no logs/progress.csv next to {ckpt} (in {ckpt.parent} or {ckpt.parent.parent}); "
                         "the learning curves come from the training run's folder")
    specs = {n: (PolicySpec("ppo", str(ckpt), shield=n == "ppo+shield", deterministic=ev.deterministic)
                 if n in ("ppo", "ppo+shield") else PolicySpec(n)) for n in names}
    scenes = list(ev.scenes or env.scenes)
    seeds = heldout_seeds(ev.seeds, base=ev.seed_base)
    table = evaluate(specs, seeds, ev.steps, scenes=scenes, env=env, workers=ev.workers, progress=progress,
                     weather=ev.weather, time_of_day=ev.time_of_day)
    ratios: dict[str, float] = {}
    if "ppo" in specs and "random" in specs:
        ratios = {"coverage_vs_random": table.ratio("coverage_pct", "ppo", "random"),
                  "collisions_vs_random": table.ratio("collisions_per_1k", "ppo", "random")}
    out = Path(out_dir) if out_dir is not None else ckpt.parent
    csv_path, json_path = out / f"{ckpt.stem}.eval.csv", out / f"{ckpt.stem}.eval.json"
    write_eval_csv(table, csv_path)
    doc = {**table.to_dict(), "checkpoint": str(ckpt), "num_timesteps": loaded.meta.get("num_timesteps"),
           "env": dataclasses.asdict(env), "eval": dataclasses.asdict(ev),
           **{k: (v if math.isfinite(v) else None) for k, v in ratios.items()}}
    write_json_atomic(json_path, doc)
    png = None
    if progress_csv is not None:
        from rl_agent.plots import plot_learning_curves

        png = plot_learning_curves(progress_csv, progress_csv.parent.parent / "learning_curves.png",
                                   title=f"PPO collection agent: {loaded.meta.get('num_timesteps', '?')} decisions")
    return EvalRun(ckpt, loaded.meta.get("num_timesteps"), names, scenes, seeds, table, ratios, csv_path,
                   json_path, png)


def write_eval_csv(table: Any, path: Path) -> Path:
    """One row per policy: the :class:`rl_agent.evaluation.EvalRow` fields (atomic write)."""
    from rl_agent.evaluation import EvalRow

    cols = [f.name for f in dataclasses.fields(EvalRow)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in table.rows:
            w.writerow({c: (round(v, 4) if isinstance(v, float) else v) for c, v in r.__dict__.items()})
    os.replace(tmp, path)
    return path

