"""PPO training of the collection agent (stable-baselines3, MultiInputPolicy, environments in processes).

:func:`train_ppo` is what ``playmill rl train`` calls. ``out_dir`` layout::

    config.json                    the RLConfig of the (latest) run
    checkpoints/ckpt_<steps>.zip   periodic checkpoints (atomic; the newest ``keep_checkpoints`` are kept)
    policy.zip                     the final policy (what collection uses: collect.ppo_checkpoint)
    logs/progress.csv              one row per rollout: timesteps, wall time, fps, mean episode reward, coverage,
                                   collisions and shield interventions per 1,000 frames, reward terms, losses
    logs/episodes.csv              one row per finished episode (reward terms, coverage, collisions, scene, ...)
    logs/sb3/run-<k>/              stable-baselines3's own logger output (csv / tensorboard) of run segment k
    learning_curves.png            written by :func:`rl_agent.plots.plot_learning_curves`

Resume: when ``out_dir/checkpoints`` holds a checkpoint, training continues from the newest one (weights and
optimiser state, timestep count) up to ``ppo.total_timesteps``; a finished run is not trained again. A checkpoint
whose observation or action space differs from the config raises
:class:`rl_agent.checkpoint.CheckpointMismatchError`. The novelty history of the environments is not saved
(it restarts empty).
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from stable_baselines3.common.callbacks import BaseCallback

from capture.atomic import write_json_atomic

from rl_agent.checkpoint import (
    CheckpointMismatchError,
    compare_spaces,
    config_of,
    latest_checkpoint,
    policy_kwargs,
    read_checkpoint_meta,
    save_checkpoint,
)
from rl_agent.config import RLConfig
from rl_agent.env import WorldFactory, make_vec_env_fn
from rl_agent.rewards import TERMS

log = logging.getLogger(__name__)

PROGRESS_FIELDS = ["timesteps", "frames", "wall_s", "fps", "episodes", "ep_rew_mean", "ep_len_mean", "coverage_pct",
                   "collisions_per_1k", "unshielded_collisions_per_1k", "shield_per_1k", "mean_speed_cm_s"] + [f"reward_{t}" for t in TERMS] + [
                   "world_restarts", "policy_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction",
                   "explained_variance"]
EPISODE_FIELDS = ["timesteps", "wall_s", "env", "scene", "scene_seed", "frames", "reward", "coverage_pct", "coverage_cells",
                  "collisions", "collisions_per_1k", "shield_active", "shield_interventions", "mean_speed_cm_s",
                  "world_restarted"] + [f"reward_{t}" for t in TERMS]


@dataclass
class TrainResult:
    """What :func:`train_ppo` did. ``checkpoint``: the final policy (``out_dir/policy.zip``);
    ``resumed_from``: the checkpoint training continued from (None for a fresh run); ``num_timesteps``:
    policy decisions trained in total (all segments); ``trained_timesteps``: in this call; ``stopped_by``:
    ``"timesteps"``, ``"wall_clock"`` or ``"already_done"``; ``world_restarts``: crashed worlds restarted."""

    out_dir: Path
    checkpoint: Path
    num_timesteps: int
    trained_timesteps: int
    resumed_from: Path | None
    wall_s: float
    episodes: int
    stopped_by: str
    world_restarts: int
    progress_csv: Path
    episodes_csv: Path

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def train_ppo(config: RLConfig | Mapping[str, Any] | None, out_dir: str | os.PathLike, progress: bool = True, *,
              make_world: WorldFactory | None = None) -> TrainResult:
    """Train (or resume training) a PPO collection agent; see the module docstring for ``out_dir``.

    ``config``: a :class:`RLConfig` or its nested mapping (the ``rl:`` section of pipeline.yaml).
    ``progress``: show a progress bar. ``make_world``: a picklable ``factory(scene, params) -> World`` to train
    on another world than the sandbox (e.g. an UnrealCV world)."""
    cfg = config if isinstance(config, RLConfig) else RLConfig.from_dict(config)
    if "tensorboard" in cfg.ppo.log_formats:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise RuntimeError("ppo.log_formats includes 'tensorboard' but the tensorboard package is not installed "
                               "(pip install tensorboard), or use log_formats: [csv]") from None
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    out = Path(out_dir)
    ckpt_dir, log_dir = out / "checkpoints", out / "logs"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    for stale in ckpt_dir.glob("*.tmp"):
        stale.unlink()

    resume_from = latest_checkpoint(ckpt_dir)
    done_steps = 0
    if resume_from is not None:
        meta = read_checkpoint_meta(resume_from)
        compare_spaces(meta, cfg.env, resume_from, "the configured")
        old = config_of(meta, resume_from)
        if policy_kwargs(old) != policy_kwargs(cfg):
            raise CheckpointMismatchError(f"{resume_from}: the policy architecture differs from the config "
                                          f"(checkpoint {policy_kwargs(old)}, config {policy_kwargs(cfg)})")
        done_steps = int(meta.get("num_timesteps", 0))
        log.info("resuming from %s at %d timesteps", resume_from, done_steps)
    write_json_atomic(out / "config.json", cfg.to_dict())

    final = out / "policy.zip"
    progress_csv, episodes_csv = log_dir / "progress.csv", log_dir / "episodes.csv"
    if resume_from is not None and done_steps >= cfg.ppo.total_timesteps:
        if not final.is_file():
            import shutil

            shutil.copyfile(resume_from, final.with_name(final.name + ".tmp"))
            os.replace(final.with_name(final.name + ".tmp"), final)
        return TrainResult(out, final, done_steps, 0, resume_from, 0.0, 0, "already_done", 0, progress_csv, episodes_csv)

    if cfg.ppo.torch_threads:
        torch.set_num_threads(cfg.ppo.torch_threads)
    fns = [functools.partial(make_vec_env_fn, cfg, rank, make_world) for rank in range(cfg.ppo.n_envs)]
    if cfg.ppo.vec_env == "subproc":
        from capture.lifecycle import child_of_this_process

        # each env worker dies with this process (kill -9 included) and leaves Ctrl-C to it
        venv = SubprocVecEnv([child_of_this_process(fn) for fn in fns], start_method="spawn")
    else:
        venv = DummyVecEnv(fns)
    t0 = time.monotonic()
    try:
        o = cfg.ppo
        model = PPO("MultiInputPolicy", venv, learning_rate=o.learning_rate, n_steps=o.n_steps, batch_size=o.batch_size,
                    n_epochs=o.n_epochs, gamma=o.gamma, gae_lambda=o.gae_lambda, clip_range=o.clip_range, ent_coef=o.ent_coef,
                    vf_coef=o.vf_coef, max_grad_norm=o.max_grad_norm, policy_kwargs=policy_kwargs(cfg),
                    seed=(o.seed + done_steps) % (2**31 - 1), device=o.device, verbose=0)
        if resume_from is not None:
            model.set_parameters(str(resume_from), exact_match=True, device=o.device)  # weights + optimiser, no unpickling
            model.num_timesteps = done_steps
        segment = 1 + sum(1 for _ in (log_dir / "sb3").glob("run-*")) if (log_dir / "sb3").is_dir() else 1
        model.set_logger(configure(str(log_dir / "sb3" / f"run-{segment}"), list(o.log_formats)))
        cb = _PlaymillCallback(cfg, ckpt_dir, progress_csv, episodes_csv, progress=progress, start_steps=done_steps, t0=t0)
        remaining = o.total_timesteps - done_steps
        from capture.lifecycle import checkpoints_kept, reports_interrupt

        def kept() -> str:
            return checkpoints_kept("rl train", latest_checkpoint(ckpt_dir), ckpt_dir, "Rerun with --resume "
                                    "(playmill rl train) or the same command (playmill run) to continue from it.")

        with reports_interrupt(kept):
            model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=resume_from is None,
                        progress_bar=False)
        trained = model.num_timesteps - done_steps
        last = save_checkpoint(model, ckpt_dir / f"ckpt_{model.num_timesteps:012d}.zip", cfg)
        _prune(ckpt_dir, cfg.ppo.keep_checkpoints)
        save_checkpoint(model, final, cfg)
        wall = time.monotonic() - t0
        stopped = "wall_clock" if cb.stopped_by_wall else "timesteps"
        log.info("trained %d timesteps in %.0f s (%s); final policy %s (last checkpoint %s)", trained, wall, stopped, final, last)
        return TrainResult(out, final, int(model.num_timesteps), int(trained), resume_from, wall, cb.episodes, stopped,
                           cb.world_restarts, progress_csv, episodes_csv)
    except BaseException:
        _kill_vec_env(venv)  # an interrupt mid-step leaves replies half read: close() could wait forever
        raise
    finally:
        venv.close()  # a killed SubprocVecEnv is already closed


def _kill_vec_env(venv: Any) -> None:
    """Stop a SubprocVecEnv ``venv`` now: SIGKILL its workers (see capture.lifecycle.kill_processes), close
    its pipes and mark it closed. Anything else is left to its own ``close()``."""
    from capture.lifecycle import kill_processes

    if not hasattr(venv, "processes"):
        return
    kill_processes(venv.processes)
    for remote in venv.remotes:
        remote.close()
    venv.closed = True


class _PlaymillCallback(BaseCallback):
    """Episode statistics, CSV logs, logger records, checkpoints, wall-clock budget and a progress bar."""

    def __init__(self, cfg: RLConfig, ckpt_dir: Path, progress_csv: Path, episodes_csv: Path, *,
                 progress: bool, start_steps: int, t0: float) -> None:
        super().__init__(verbose=0)
        self.cfg, self.ckpt_dir = cfg, ckpt_dir
        self.progress_csv, self.episodes_csv = progress_csv, episodes_csv
        self.progress, self.start_steps, self.t0 = progress, start_steps, t0
        every = cfg.ppo.checkpoint_every
        self.next_ckpt = (start_steps // every + 1) * every
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self.episodes = 0
        self.world_restarts = 0
        self.stopped_by_wall = False
        self.bar = None
        self._last_t = time.monotonic()
        self._last_steps = start_steps

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.cfg.ppo.total_timesteps, initial=self.start_steps, unit="step", desc="rl train",
                        disable=not self.progress, smoothing=0.05)

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        for rank, (info, done) in enumerate(zip(infos, dones)):
            if info.get("world_restarted"):
                self.world_restarts += 1
                log.warning("env %d: the world crashed and was restarted (%s); the episode was truncated",
                            rank, info.get("world_error"))
                if self.bar is not None:
                    self.bar.write(f"rl train: env {rank}: world restarted after a crash: {info.get('world_error')}")
            if done and info.get("episode_stats"):
                self._episode(rank, info)
        if self.bar is not None:
            self.bar.update(len(infos))
        if self.num_timesteps >= self.next_ckpt:
            save_checkpoint(self.model, self.ckpt_dir / f"ckpt_{self.num_timesteps:012d}.zip", self.cfg)
            _prune(self.ckpt_dir, self.cfg.ppo.keep_checkpoints)
            every = self.cfg.ppo.checkpoint_every
            self.next_ckpt = (self.num_timesteps // every + 1) * every
        if self.cfg.ppo.max_wall_s and time.monotonic() - self.t0 >= self.cfg.ppo.max_wall_s:
            self.stopped_by_wall = True
            return False
        return True

    def _episode(self, rank: int, info: dict[str, Any]) -> None:
        st = info["episode_stats"]
        self.episodes += 1
        frames = max(1, int(st.get("frames", 0)))
        row = {"timesteps": self.num_timesteps, "wall_s": round(time.monotonic() - self.t0, 2), "env": rank,
               "scene": st.get("scene"), "scene_seed": st.get("scene_seed"), "frames": frames,
               "reward": sum(float(st.get(f"reward/{t}", 0.0)) for t in TERMS),
               "coverage_pct": 100.0 * float(st.get("coverage", float("nan"))),
               "coverage_cells": st.get("coverage_cells"), "collisions": st.get("collisions"),
               "collisions_per_1k": st.get("collisions_per_1k"), "shield_active": int(bool(st.get("shield_active"))),
               "shield_interventions": st.get("shield_interventions"),
               "mean_speed_cm_s": st.get("mean_speed_cm_s"), "world_restarted": int(bool(info.get("world_restarted")))}
        for t in TERMS:
            row[f"reward_{t}"] = st.get(f"reward/{t}")
        row["shield_per_1k"] = 1000.0 * float(st.get("shield_interventions", 0)) / frames
        self.recent.append(row)
        _append_csv(self.episodes_csv, EPISODE_FIELDS, row)

    def _on_rollout_end(self) -> None:
        now = time.monotonic()
        fps = (self.num_timesteps - self._last_steps) / max(1e-9, now - self._last_t)
        self._last_t, self._last_steps = now, self.num_timesteps
        rec = list(self.recent)

        def mean(key: str, rows: list[dict[str, Any]] = rec) -> float:
            vals = [float(r[key]) for r in rows if r.get(key) is not None and not math.isnan(float(r[key]))]
            return float(np.mean(vals)) if vals else float("nan")

        ep_buf = list(self.model.ep_info_buffer or [])
        values = self.model.logger.name_to_value
        row = {"timesteps": self.num_timesteps, "frames": self.num_timesteps * self.cfg.env.action_repeat,
               "wall_s": round(now - self.t0, 2), "fps": round(fps, 2), "episodes": self.episodes,
               "ep_rew_mean": float(np.mean([e["r"] for e in ep_buf])) if ep_buf else float("nan"),
               "ep_len_mean": float(np.mean([e["l"] for e in ep_buf])) if ep_buf else float("nan"),
               "coverage_pct": mean("coverage_pct"), "collisions_per_1k": mean("collisions_per_1k"),
               "unshielded_collisions_per_1k": mean("collisions_per_1k", [r for r in rec if not r.get("shield_active")]),
               "shield_per_1k": mean("shield_per_1k"), "mean_speed_cm_s": mean("mean_speed_cm_s"),
               "world_restarts": self.world_restarts}
        for t in TERMS:
            row[f"reward_{t}"] = mean(f"reward_{t}")
        for name, key in (("policy_loss", "train/policy_gradient_loss"), ("value_loss", "train/value_loss"),
                          ("entropy_loss", "train/entropy_loss"), ("approx_kl", "train/approx_kl"),
                          ("clip_fraction", "train/clip_fraction"), ("explained_variance", "train/explained_variance")):
            row[name] = values.get(key, float("nan"))
        _append_csv(self.progress_csv, PROGRESS_FIELDS, row)
        for key in ("coverage_pct", "collisions_per_1k", "unshielded_collisions_per_1k", "shield_per_1k", "mean_speed_cm_s"):
            self.logger.record(f"playmill/{key}", row[key])
        for t in TERMS:
            self.logger.record(f"reward/{t}", row[f"reward_{t}"])
        self.logger.record("env/world_restarts", self.world_restarts)
        if self.bar is not None:
            self.bar.set_postfix(cov=f"{row['coverage_pct']:.1f}%", coll=f"{row['collisions_per_1k']:.0f}/1k",
                                 rew=f"{row['ep_rew_mean']:.1f}", refresh=False)

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _prune(ckpt_dir: Path, keep: int) -> None:
    ckpts = sorted(ckpt_dir.glob("ckpt_*.zip"))
    for p in ckpts[:-keep] if keep > 0 else []:
        p.unlink(missing_ok=True)


def _append_csv(path: Path, fieldnames: list[str], row: Mapping[str, Any]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: ("" if v is None else (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v))
                    for k, v in row.items()})
