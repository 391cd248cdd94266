"""``playmill rl train`` and ``playmill rl eval``: the command line of the RL collection agent.

Thin: it builds a :class:`rl_agent.config.RLConfig` from a preset, a YAML file and ``--set`` overrides, then
calls :func:`rl_agent.train_ppo` / :func:`rl_agent.evaluation.evaluate`. ``playmill/cli.py`` hooks it with::

    from rl_agent.cli import add_arguments as add_rl_arguments
    add_rl_arguments(sub)              # sub: the top-level subparsers; adds the ``rl`` verb (func=run_from_args)

It also runs alone: ``python -m rl_agent.cli train ...``.

Exit codes: 0 done; 1 the work ran but failed (a world that kept crashing, an evaluation episode that raised);
2 bad usage, a bad config or a bad checkpoint (nothing was run); 130 interrupted (rerun with ``--resume``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from rl_agent.config import (
    PRESETS,
    SANDBOX_SCENES,
    SANDBOX_WEATHERS,
    RLConfigError,
    RLConfig,
    heldout_seeds,
    merge_config,
    preset_dict,
)


#: Sections of a RLConfig mapping (what an rl config file or a pipeline.yaml ``rl:`` section may give).
SECTIONS: tuple[str, ...] = ("env", "reward", "shield", "ppo")
#: Policies ``rl eval`` can compare.
EVAL_POLICIES: tuple[str, ...] = ("ppo", "ppo+shield", "random", "wander", "navmesh")
#: ``--minutes`` without ``--timesteps`` lifts the decision budget to this, so the clock decides.
UNBOUNDED_TIMESTEPS: int = 10**9
#: Worlds ``rl train --world`` knows by name (else MODULE:FUNCTION of a factory(scene, params) -> World).
WORLDS: dict[str, str | None] = {"sandbox": None, "unrealcv": "unreal_bridge.unrealcv_world:make_unrealcv_world"}

RL_EPILOG = """\
examples:
  playmill rl train --preset smoke --out runs/rl_smoke          a token run in seconds (pipeline check)
  playmill rl train --out runs/default/models/rl --minutes 30          30 minutes of PPO on the sandbox, 2 processes
  playmill rl train --out runs/default/models/rl --resume --timesteps 400000    continue a run to 400k decisions
  playmill rl eval runs/default/models/rl/policy.zip --plot            PPO vs random vs wander vs navmesh
"""

TRAIN_EPILOG = """\
config, lowest precedence first: --preset (default: 'default'), --config FILE, --set KEY=VALUE, then the
flags (--envs, --timesteps, --minutes, ...). --config takes an rl config YAML ({preset:, env:, reward:, shield:,
ppo:}) or a pipeline.yaml, whose rl: section is used (what the pipeline's rl stage trains with). --set values
are YAML: --set env.scenes=[city,park] --set shield.enabled=false.

presets: default (200k decisions, all scenes), smoke (512 decisions in one scene: seconds; not a trained
agent), bench (a 30-minute wall-clock budget, what bench/rl.py trains).

output (--out): config.json, checkpoints/ckpt_<decisions>.zip (every ppo.checkpoint_every decisions, newest
ppo.keep_checkpoints kept), policy.zip (the final policy: give it to collect.ppo_checkpoint), logs/progress.csv,
logs/episodes.csv, logs/sb3/run-<k>/ (TensorBoard event files when tensorboard is installed), learning_curves.png,
train_result.json. An --out that holds checkpoints needs --resume (continue from the newest one, same
observation/action space) or --fresh (delete the previous run's files first).

examples:
  playmill rl train --preset smoke --out runs/rl_smoke
  playmill rl train --out runs/default/models/rl --envs 2 --minutes 30
  playmill rl train --config pipeline.yaml --out runs/default/models/rl --set ppo.learning_rate=1e-4
  playmill rl train --out runs/default/models/rl --resume --timesteps 400000
  playmill rl train --out runs/ue --world unrealcv --envs 1 --set env.scenes=[city]
  tensorboard --logdir runs/default/models/rl/logs/sb3
"""

EVAL_EPILOG = """\
Every policy runs --steps frames in the same worlds: each of --scenes x --seeds held-out scene seeds (never
trained on), clear weather at noon. Metrics: coverage % of the navigable 2 m cells, collisions (blocked frames)
per 1,000 frames, mean speed (cm/s), action entropy (bits), stuck time (% of frames a move key moved the agent
less than a quarter of the commanded distance). PPO runs without the shield unless ppo+shield is listed.
The table is printed and written as <checkpoint stem>.eval.csv and .eval.json next to the checkpoint (or in
--out-dir).

examples:
  playmill rl eval runs/default/models/rl/policy.zip
  playmill rl eval runs/default/models/rl --seeds 5 --steps 2000 --plot
  playmill rl eval runs/default/models/rl/checkpoints/ckpt_000000100000.zip --policies ppo,ppo+shield,random
  playmill rl eval runs/default/models/rl/policy.zip --config pipeline.yaml      fails (exit 2) if its spaces differ
"""


# ----------------------------------------------------------------------------------------------------- parser


def add_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``rl`` verb (sub-verbs ``train`` and ``eval``) to ``subparsers`` (an ``add_subparsers()`` result);
    both sub-verbs set ``func=run_from_args``. Returns the ``rl`` parser."""
    rl = subparsers.add_parser(
        "rl", help="train and evaluate the PPO collection agent",
        description="The RL collection agent (Matrix-Game 2.0 recipe): PPO on the sandbox (or any World) with "
                    "collision, exploration and diversity rewards and a collision shield during training; "
                    "evaluation against random, wander and navmesh controllers. Collect with it through "
                    "collect.controller: ppo + collect.ppo_checkpoint in pipeline.yaml.",
        epilog=RL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_verbs(rl)
    return rl


def add_verbs(parser: argparse.ArgumentParser) -> None:
    """Add the sub-verbs ``train`` and ``eval`` (``dest="rl_verb"``, ``func=run_from_args``) to ``parser``."""
    rsub = parser.add_subparsers(dest="rl_verb", metavar="VERB", required=True)
    t = rsub.add_parser("train", help="train (or resume) a PPO agent",
                        description="Train a PPO collection agent: vectorised environments in worker processes, "
                                    "CSV (and TensorBoard) logs, periodic checkpoints, resume.",
                        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(t)
    t.set_defaults(func=run_from_args)
    e = rsub.add_parser("eval", help="compare a checkpoint with random, wander and navmesh on held-out seeds",
                        description="Evaluate a PPO checkpoint side by side with the random policy and the wander "
                                    "and navmesh controllers on held-out scene seeds.",
                        epilog=EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_arguments(e)
    e.set_defaults(func=run_from_args)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``rl train``."""
    p.add_argument("--out", type=Path, default=Path("runs/default/models/rl"), help="run folder (default: runs/default/models/rl)")
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="starting config: " + ", ".join(PRESETS) + " (default: default, or with --resume the run's "
                        "own config.json)")
    p.add_argument("--config", type=Path, default=None,
                   help="YAML: an rl config ({env:, reward:, shield:, ppo:}) or a pipeline.yaml (its rl: section)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (dotted, YAML value), e.g. ppo.n_steps=512; repeatable")
    p.add_argument("--envs", type=int, default=None, help="environments (worker processes): ppo.n_envs")
    p.add_argument("--timesteps", type=int, default=None, help="total policy decisions to train: ppo.total_timesteps")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop after this many minutes of training (ppo.max_wall_s); without --timesteps the "
                        "decision budget is lifted so the clock decides")
    p.add_argument("--checkpoint-every", type=int, default=None, help="decisions between checkpoints: ppo.checkpoint_every")
    p.add_argument("--seed", type=int, default=None, help="ppo.seed (the training seed pool and the policy's init)")
    p.add_argument("--vec-env", choices=["subproc", "dummy"], default=None,
                   help="subproc: one process per environment (default); dummy: all in this process")
    p.add_argument("--world", default="sandbox",
                   help="world to train in: sandbox (default), unrealcv (a running UnrealCV server, see "
                        "unreal_bridge), or MODULE:FUNCTION of a picklable factory(scene, params) -> World")
    tb = p.add_mutually_exclusive_group()
    tb.add_argument("--tensorboard", dest="tensorboard", action="store_true", default=None,
                    help="write TensorBoard logs (error if tensorboard is not installed); default: when installed")
    tb.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", help="CSV logs only")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue from the newest checkpoint in --out (up to the total decisions)")
    mode.add_argument("--fresh", action="store_true",
                      help="delete the previous run's checkpoints, logs, policy and plots in --out, then start anew")
    p.add_argument("--no-plot", action="store_true", help="do not write learning_curves.png at the end")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``rl eval``."""
    p.add_argument("checkpoint", type=Path,
                   help="a checkpoint (policy.zip or checkpoints/ckpt_*.zip) or a run folder (its policy.zip, else "
                        "its newest checkpoint)")
    p.add_argument("--policies", default=None,
                   help="comma-separated subset of " + ", ".join(EVAL_POLICIES) + " (default: ppo, random, wander, "
                        "and navmesh when unreal_bridge.navmesh_controller is available)")
    p.add_argument("--shield", action="store_true", help="also evaluate ppo+shield (the policy behind the collision shield)")
    p.add_argument("--seeds", type=int, default=3, help="held-out scene seeds per scene (default 3)")
    p.add_argument("--seed-base", type=int, default=0, help="offset into the held-out seeds (default 0)")
    p.add_argument("--scenes", default=None,
                   help="comma-separated scene families (" + ", ".join(SANDBOX_SCENES) + "; default: the checkpoint's)")
    p.add_argument("--steps", type=int, default=1000, help="frames per episode (default 1000 = 40 s at 25 fps)")
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes (default 2)")
    p.add_argument("--deterministic", action="store_true", help="PPO takes its most likely action instead of sampling")
    p.add_argument("--weather", default="clear", choices=list(SANDBOX_WEATHERS), help="weather of every world (default clear)")
    p.add_argument("--time-of-day", type=float, default=12.0, help="hours, 0-24 (default 12)")
    p.add_argument("--config", type=Path, default=None,
                   help="evaluate under this config's env (rl config or pipeline.yaml); its observation and action "
                        "spaces must equal the checkpoint's")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an env key of the evaluation, e.g. env.npc_density=1.5; repeatable")
    p.add_argument("--out-dir", type=Path, default=None, help="where the .eval.csv/.eval.json go (default: the checkpoint's folder)")
    p.add_argument("--plot", action="store_true", help="also write the run's learning curves (learning_curves.png)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


# ----------------------------------------------------------------------------------------------------- running


class UsageError(ValueError):
    """Bad command-line input (exit code 2); the message names the argument and what to do."""


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``rl train`` or ``rl eval`` with parsed :func:`add_arguments` options; returns the exit code."""
    from rl_agent.checkpoint import CheckpointError

    verb = getattr(args, "rl_verb", None)
    try:
        if verb == "train":
            return run_train(args)
        if verb == "eval":
            return run_eval(args)
        raise UsageError(f"unknown rl verb {verb!r}; expected train or eval")
    except RLConfigError as exc:
        print(f"playmill rl {verb}: bad config:", file=sys.stderr)
        for pr in exc.problems:
            print(f"  {pr}", file=sys.stderr)
        print("Nothing was run. Fix the key(s) above (`playmill rl train --help` explains the config).", file=sys.stderr)
        return 2
    except CheckpointError as exc:
        from rl_agent.checkpoint import CheckpointMismatchError

        print(f"playmill rl {verb}: bad checkpoint: {exc}", file=sys.stderr)
        if isinstance(exc, CheckpointMismatchError):
            print("Nothing was run. The checkpoint was trained with another observation/action space: use it with its "
                  "own settings (leave out the --config/--set env keys that differ), or train a new run in another "
                  "--out.", file=sys.stderr)
        return 2
    except (UsageError, FileNotFoundError) as exc:
        print(f"playmill rl {verb}: error: {exc}", file=sys.stderr)
        return 2
    except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
        # a SubprocVecEnv worker died: its own traceback is above on stderr
        print(f"playmill rl {verb}: failed: an environment worker process died ({type(exc).__name__}); its traceback "
              "is printed above. Rerun with --vec-env dummy to see the error in this process, then --resume.",
              file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a world that kept crashing, a non-finite observation (ObservationError), ...
        print(f"playmill rl {verb}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if verb == "train":
            print("Checkpoints written so far are kept; fix the cause, then rerun with --resume.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"playmill rl {verb}: interrupted" + ("; rerun with --resume to continue from the last checkpoint"
                                                  if verb == "train" else ""), file=sys.stderr)
        return 130


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["ppo.n_envs=4", "env.scenes=[city]"]`` -> ``{"ppo": {"n_envs": 4}, "env": {"scenes": ["city"]}}``.

    Keys are dotted paths ``SECTION.KEY`` (sections: env, reward, shield, ppo); values are parsed as YAML
    (``4`` int, ``1e-4`` float, ``false`` bool, ``[a, b]`` list, else a string). Raises :class:`UsageError`."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. ppo.n_envs=4")
        key, raw = item.split("=", 1)
        parts = [k.strip() for k in key.strip().split(".")]
        if len(parts) != 2 or not all(parts):
            hint = ""
            if len(parts) == 1 and parts[0]:
                owners = [s for s in SECTIONS if parts[0] in _section_fields(s)]
                hint = f"; did you mean {owners[0]}.{parts[0]}?" if owners else ""
            raise UsageError(f"--set {item!r}: the key must be SECTION.KEY with SECTION one of {', '.join(SECTIONS)}{hint}")
        if parts[0] not in SECTIONS:
            raise UsageError(f"--set {item!r}: unknown section {parts[0]!r}; expected one of {', '.join(SECTIONS)}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise UsageError(f"--set {item!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None
        if isinstance(value, str) and _looks_numeric(value):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        out.setdefault(parts[0], {})[parts[1]] = value
    return out


def read_config_file(path: Path) -> tuple[dict[str, Any], str | None]:
    """Read ``--config``: returns (the RLConfig mapping, the preset it names or None).

    An rl config file is the mapping itself (keys env, reward, shield, ppo and optionally preset); a
    pipeline.yaml (a top-level ``rl:`` key) gives its ``rl:`` section (the same keys, no preset)."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"--config {path}: cannot read it as YAML: {exc}") from None
    if doc is None:
        return {}, None
    if not isinstance(doc, dict):
        raise UsageError(f"--config {path}: expected a mapping of settings, got {type(doc).__name__}")
    if "rl" in doc:  # a pipeline.yaml: its rl: section is a RLConfig mapping (validated by from_dict)
        section = doc["rl"] or {}
        if not isinstance(section, dict):
            raise UsageError(f"--config {path}: rl: expected a mapping of env, reward, shield, ppo, got "
                             f"{type(section).__name__}")
        return dict(section), None
    unknown = [k for k in doc if k not in SECTIONS + ("preset",)]
    if unknown:
        raise RLConfigError([f"{path}: {k}: unknown key; allowed keys here: {', '.join(SECTIONS)}, preset "
                             "(or a pipeline.yaml with an rl: section)" for k in unknown])
    picked = {k: v for k, v in doc.items() if k in SECTIONS}
    preset = doc.get("preset")
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        raise RLConfigError([f"{path}: preset: {preset!r} is not a preset; expected one of {', '.join(PRESETS)}"])
    return picked, preset


def build_train_config(args: argparse.Namespace) -> RLConfig:
    """The :class:`RLConfig` of ``rl train`` options (see the train epilog for the precedence)."""
    file_cfg: dict[str, Any] = {}
    file_preset = None
    if args.config is not None:
        file_cfg, file_preset = read_config_file(args.config)
    preset = args.preset or file_preset
    base: dict[str, Any]
    own = Path(args.out) / "config.json"
    if preset is None and args.config is None and args.resume and own.is_file():
        try:
            base = json.loads(own.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"{own}: the run's config cannot be read ({exc}); give --preset or --config") from None
    else:
        base = preset_dict(preset or "default")
    d = merge_config(merge_config(base, file_cfg), parse_overrides(args.overrides))
    ppo: dict[str, Any] = {}
    if args.envs is not None:
        ppo["n_envs"] = args.envs
    if args.timesteps is not None:
        ppo["total_timesteps"] = args.timesteps
    if args.minutes is not None:
        if not (isinstance(args.minutes, float) and math.isfinite(args.minutes) and args.minutes > 0):
            raise UsageError(f"--minutes {args.minutes}: expected a positive number of minutes")
        ppo["max_wall_s"] = 60.0 * args.minutes
        if args.timesteps is None:
            ppo["total_timesteps"] = UNBOUNDED_TIMESTEPS
    if args.checkpoint_every is not None:
        ppo["checkpoint_every"] = args.checkpoint_every
    if args.seed is not None:
        ppo["seed"] = args.seed
    if args.vec_env is not None:
        ppo["vec_env"] = args.vec_env
    d = merge_config(d, {"ppo": ppo})
    cfg = RLConfig.from_dict(d)
    formats = [f for f in cfg.ppo.log_formats if f != "tensorboard"]
    if args.tensorboard is True or (args.tensorboard is None and tensorboard_installed()):
        formats.append("tensorboard")
    if args.tensorboard is True and not tensorboard_installed():
        raise UsageError("--tensorboard: the tensorboard package is not installed (pip install tensorboard); "
                         "leave the flag out for CSV logs only")
    import dataclasses

    return dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, log_formats=tuple(formats)))


def tensorboard_installed() -> bool:
    """Whether the ``tensorboard`` package can be imported (stable-baselines3 writes event files with it)."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def world_factory(spec: str) -> Any:
    """``--world``: None for the sandbox, else the factory ``MODULE:FUNCTION`` names (a known name or a path)."""
    import importlib

    target = WORLDS.get(spec, spec)
    if target is None:
        return None
    if ":" not in target:
        raise UsageError(f"--world {spec!r}: expected {', '.join(WORLDS)} or MODULE:FUNCTION")
    mod, _, fn = target.partition(":")
    try:
        factory = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--world {spec!r}: cannot import {target}: {exc}") from None
    if not callable(factory):
        raise UsageError(f"--world {spec!r}: {target} is not callable")
    return factory


RUN_FILES: tuple[str, ...] = ("checkpoints", "logs", "policy.zip", "config.json", "learning_curves.png", "train_result.json")


def run_train(args: argparse.Namespace) -> int:
    """``rl train``: build the config, check the run folder, train, plot, summarise."""
    from rl_agent.checkpoint import latest_checkpoint
    from rl_agent.train import train_ppo

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    make_world = world_factory(args.world)
    cfg = build_train_config(args)
    previous = latest_checkpoint(out / "checkpoints")
    if previous is not None and not (args.resume or args.fresh):
        raise UsageError(f"--out {out} holds checkpoints of a previous run (newest {previous.name}); pass --resume to "
                         "continue it, --fresh to delete it and start anew, or choose another --out")
    if args.fresh:
        for name in RUN_FILES:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    if args.resume and previous is None:
        print(f"rl train: no checkpoint in {out / 'checkpoints'}; starting a new run", file=sys.stderr)
    o = cfg.ppo
    budget = f"{o.total_timesteps} decisions" if o.total_timesteps < UNBOUNDED_TIMESTEPS else "no decision limit"
    if o.max_wall_s:
        budget += f", at most {o.max_wall_s / 60:.1f} min"
    print(f"rl train: {budget}; {o.n_envs} environment(s) ({o.vec_env}); scenes {', '.join(cfg.env.scenes)}; "
          f"logs {', '.join(o.log_formats)} -> {out}")
    res = train_ppo(cfg, out, progress=not args.no_progress, make_world=make_world)
    png = None
    if not args.no_plot and _has_rows(res.progress_csv):
        from rl_agent.plots import plot_learning_curves

        png = plot_learning_curves(res.progress_csv, out / "learning_curves.png",
                                   title=f"PPO collection agent: {res.num_timesteps} decisions")
    summary = res.to_dict()
    summary["learning_curves_png"] = str(png) if png else None
    tmp = out / "train_result.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    os.replace(tmp, out / "train_result.json")
    if res.stopped_by == "already_done":
        print(f"rl train: already trained to {res.num_timesteps} decisions (ppo.total_timesteps {o.total_timesteps}); "
              f"nothing to do. Raise --timesteps to train further. Policy: {res.checkpoint}")
        return 0
    how = {"timesteps": "reached the decision budget", "wall_clock": "reached the time budget"}.get(res.stopped_by, res.stopped_by)
    start = f" (resumed from {res.resumed_from.name})" if res.resumed_from else ""
    print(f"rl train: trained {res.trained_timesteps} decisions ({res.trained_timesteps * cfg.env.action_repeat} frames) "
          f"in {res.wall_s:.0f} s{start}, {how}; {res.num_timesteps} in total, {res.episodes} episodes")
    if res.world_restarts:
        print(f"rl train: {res.world_restarts} world crash(es) mid-episode: each world was restarted and its episode "
              f"truncated (see the warnings above and world_restarted in {res.episodes_csv})")
    print(f"  policy    {res.checkpoint}")
    print(f"  logs      {res.progress_csv}")
    if "tensorboard" in o.log_formats:
        print(f"  tensorboard --logdir {out / 'logs' / 'sb3'}")
    if png:
        print(f"  curves    {png}")
    print(f"  next: playmill rl eval {res.checkpoint}")
    return 0


def _has_rows(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return sum(1 for _ in f) >= 2
    except OSError:
        return False


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file from ``path``: the file itself, or a run folder's policy.zip / newest checkpoint."""
    from rl_agent.checkpoint import latest_checkpoint

    if path.is_dir():
        if (path / "policy.zip").is_file():
            return path / "policy.zip"
        newest = latest_checkpoint(path / "checkpoints")
        if newest is None:
            raise UsageError(f"{path}: a folder without policy.zip or checkpoints/ckpt_*.zip; give a checkpoint file "
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


def run_eval(args: argparse.Namespace) -> int:
    """``rl eval``: load and check the checkpoint, evaluate every policy on held-out seeds, print, write."""
    import dataclasses

    from rl_agent.checkpoint import compare_spaces, load_policy
    from rl_agent.evaluation import evaluate, navmesh_controller_available

    ckpt = resolve_checkpoint(Path(args.checkpoint))
    loaded = load_policy(ckpt)  # CheckpointError / CheckpointMismatchError: not a checkpoint, weights do not fit
    env = loaded.config.env
    if args.config is not None or args.overrides:
        file_cfg, _ = read_config_file(args.config) if args.config is not None else ({}, None)
        over = parse_overrides(args.overrides)
        bad = [k for k in over if k != "env"]
        if bad:
            raise UsageError(f"--set: rl eval takes env.* keys only (got {', '.join(bad)}.*)")
        d = merge_config(merge_config(loaded.config.to_dict(), {"env": file_cfg.get("env", {})} if args.config else {}), over)
        env = RLConfig.from_dict(d).env
        compare_spaces(loaded.meta, env, ckpt, "the --config/--set")
    if args.seeds < 1:
        raise UsageError(f"--seeds {args.seeds}: expected at least 1")
    if args.steps < 1:
        raise UsageError(f"--steps {args.steps}: expected at least 1 frame")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: expected at least 1")
    if args.seed_base < 0:
        raise UsageError(f"--seed-base {args.seed_base}: expected >= 0")
    if not 0.0 <= args.time_of_day <= 24.0:
        raise UsageError(f"--time-of-day {args.time_of_day}: expected hours in [0, 24]")
    scenes = list(env.scenes) if args.scenes is None else [s.strip() for s in args.scenes.split(",") if s.strip()]
    bad = [s for s in scenes if s not in SANDBOX_SCENES]
    if bad or not scenes:
        raise UsageError(f"--scenes {args.scenes!r}: {bad or 'none given'}; expected a comma-separated subset of "
                         f"{', '.join(SANDBOX_SCENES)}")
    if args.policies is None:
        names = ["ppo", "random", "wander"] + (["navmesh"] if navmesh_controller_available() else [])
    else:
        names = [s.strip() for s in args.policies.split(",") if s.strip()]
        bad = [s for s in names if s not in EVAL_POLICIES]
        if bad or not names:
            raise UsageError(f"--policies {args.policies!r}: {bad or 'none given'}; expected a comma-separated subset "
                             f"of {', '.join(EVAL_POLICIES)}")
        if "navmesh" in names and not navmesh_controller_available():
            raise UsageError("--policies navmesh: unreal_bridge.navmesh_controller is not available here")
    if args.shield and "ppo+shield" not in names:
        names.insert(names.index("ppo") + 1 if "ppo" in names else 0, "ppo+shield")
    names = list(dict.fromkeys(names))
    progress_csv = progress_csv_of(ckpt) if args.plot else None
    if args.plot and progress_csv is None:
        raise UsageError(f"--plot: no logs/progress.csv next to {ckpt} (in {ckpt.parent} or {ckpt.parent.parent}); "
                         "the learning curves come from the training run's folder")
    from rl_agent.evaluation import PolicySpec

    specs = {}
    for n in names:
        if n == "ppo":
            specs[n] = PolicySpec("ppo", str(ckpt), deterministic=args.deterministic)
        elif n == "ppo+shield":
            specs[n] = PolicySpec("ppo", str(ckpt), shield=True, deterministic=args.deterministic)
        else:
            specs[n] = PolicySpec(n)
    seeds = heldout_seeds(args.seeds, base=args.seed_base)
    print(f"rl eval: {ckpt} ({loaded.meta.get('num_timesteps', '?')} decisions trained); {', '.join(names)} on "
          f"{len(scenes)} scene(s) x {len(seeds)} held-out seed(s), {args.steps} frames each")
    try:
        table = evaluate(specs, seeds, args.steps, scenes=scenes, env=env, workers=args.workers,
                         progress=not args.no_progress, weather=args.weather, time_of_day=args.time_of_day)
    except Exception as exc:  # an episode raised (a world fault, a worker that died): the work ran but failed
        print(f"playmill rl eval: an evaluation episode failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(table.format())
    ratios: dict[str, float] = {}
    if "ppo" in specs and "random" in specs:
        ratios = {"coverage_vs_random": table.ratio("coverage_pct", "ppo", "random"),
                  "collisions_vs_random": table.ratio("collisions_per_1k", "ppo", "random")}
        print(f"ppo / random: coverage {ratios['coverage_vs_random']:.2f}x (target >= 2x), collisions per 1,000 frames "
              f"{ratios['collisions_vs_random']:.2f}x (target <= 0.2x)")
    out_dir = Path(args.out_dir) if args.out_dir is not None else ckpt.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / f"{ckpt.stem}.eval.csv", out_dir / f"{ckpt.stem}.eval.json"
    write_eval_csv(table, csv_path)
    doc = table.to_dict()
    doc.update({"checkpoint": str(ckpt), "num_timesteps": loaded.meta.get("num_timesteps"), "env": dataclasses.asdict(env),
                "weather": args.weather, "time_of_day": args.time_of_day, "deterministic": bool(args.deterministic),
                **{k: (v if math.isfinite(v) else None) for k, v in ratios.items()}})
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=_json_default), encoding="utf-8")
    os.replace(tmp, json_path)
    print(f"  table   {csv_path}\n  details {json_path}")
    if progress_csv is not None:
        from rl_agent.plots import plot_learning_curves

        png = plot_learning_curves(progress_csv, progress_csv.parent.parent / "learning_curves.png",
                                   title=f"PPO collection agent: {loaded.meta.get('num_timesteps', '?')} decisions")
        print(f"  curves  {png}")
    return 0


def write_eval_csv(table: Any, path: Path) -> Path:
    """One row per policy: the :class:`rl_agent.evaluation.EvalRow` fields (atomic write)."""
    from rl_agent.evaluation import EvalRow

    import dataclasses

    cols = [f.name for f in dataclasses.fields(EvalRow)]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in table.rows:
            w.writerow({c: (round(v, 4) if isinstance(v, float) else v) for c, v in r.__dict__.items()})
    os.replace(tmp, path)
    return path


def _json_default(x: Any) -> Any:
    if isinstance(x, (tuple, set)):
        return list(x)
    if isinstance(x, Path):
        return str(x)
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _section_fields(section: str) -> set[str]:
    import dataclasses

    from rl_agent.config import EnvConfig, PPOConfig, RewardConfig, ShieldConfig

    klass = {"env": EnvConfig, "reward": RewardConfig, "shield": ShieldConfig, "ppo": PPOConfig}[section]
    return {f.name for f in dataclasses.fields(klass)}


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return s.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rl_agent.cli train|eval ...`` (the same as ``playmill rl ...``)."""
    parser = argparse.ArgumentParser(prog="python -m rl_agent.cli", description="Train and evaluate the PPO collection "
                                     "agent (the same as `playmill rl ...`).", epilog=RL_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    add_verbs(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
