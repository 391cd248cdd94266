"""``playmill rl train`` and ``playmill rl eval``: the RL collection agent (the logic is in :mod:`rl_agent.run`;
the settings are the config's ``rl:`` section)."""

from __future__ import annotations

import argparse
from typing import Any

from capture.errors import InputError
from playmill.cli import UsageError, add_progress, add_sugar, add_verb, load, print_run

#: ``--minutes`` without ``--timesteps`` lifts the decision budget to this, so the clock decides.
UNBOUNDED_TIMESTEPS: int = 10**9

TRAIN_DESCRIPTION = """\
Train (or resume) a PPO collection agent with the config's rl section (preset, env, reward, shield, ppo):
vectorised environments in worker processes, CSV (and TensorBoard) logs, periodic checkpoints. The settings,
lowest precedence first: rl.preset, the config's rl keys, the flags below, --set.

output (--out, default <workdir>/models/rl): config.json, checkpoints/ckpt_<decisions>.zip, policy.zip (the final
policy: collect.ppo_checkpoint), logs/progress.csv, logs/episodes.csv, logs/sb3/ (TensorBoard), learning_curves.png,
train_result.json. An --out that holds checkpoints needs --resume (continue from the newest one, same
observation/action space) or --fresh (delete the previous run's files first).
presets: default (200k decisions, all scenes), smoke (512 decisions in one scene: seconds), bench (30 minutes)."""

EVAL_DESCRIPTION = """\
Evaluate a PPO checkpoint side by side with the random policy and the wander and navmesh controllers: every
policy runs the same worlds, rl.eval.seeds held-out scene seeds (never trained on) per scene. Metrics: coverage
% of the navigable 2 m cells, collisions per 1,000 frames, mean speed, action entropy, stuck time. The table is
printed and written as <checkpoint stem>.eval.csv and .eval.json next to the checkpoint (or in --out-dir). The
checkpoint's own env settings are used unless a CONFIG or --set rl.env.* is given (its observation and action
spaces must then equal the checkpoint's)."""


def add_verbs(sub: Any) -> None:
    rl = add_verb(sub, "rl", help="train and evaluate the PPO collection agent", config=None,
                  description="The RL collection agent (Matrix-Game 2.0 recipe): PPO on the sandbox (or any World) "
                              "with collision, exploration and diversity rewards and a collision shield during "
                              "training; evaluation against random, wander and navmesh controllers. Collect with it "
                              "through collect.controller: ppo. Details: rl_agent/README.md.",
                  example="playmill rl train --set rl.preset=smoke --out runs/rl_smoke")
    rsub = rl.add_subparsers(dest="rl_verb", metavar="VERB", required=True)
    p = add_verb(rsub, "train", help="train (or resume) a PPO agent", description=TRAIN_DESCRIPTION,
                 example="playmill rl train --out runs/default/models/rl --envs 2 --minutes 30", func=cmd_rl_train)
    p.add_argument("--out", help="run folder (default: <workdir>/models/rl)")
    for flag, key, what in (("--preset", "rl.preset", "default, smoke or bench"),
                            ("--envs", "rl.ppo.n_envs", "environments (worker processes)"),
                            ("--timesteps", "rl.ppo.total_timesteps", "total policy decisions to train"),
                            ("--checkpoint-every", "rl.ppo.checkpoint_every", "decisions between checkpoints"),
                            ("--seed", "rl.ppo.seed", "the training seed pool and the policy's init"),
                            ("--vec-env", "rl.ppo.vec_env", "subproc (one process per environment) or dummy")):
        add_sugar(p, flag, key, what)
    p.add_argument("--minutes", type=float, help="stop after this many minutes (rl.ppo.max_wall_s); without "
                                                 "--timesteps the decision budget is lifted so the clock decides")
    p.add_argument("--world", default="sandbox", help="sandbox (default), unrealcv (a running UnrealCV server), or "
                                                      "MODULE:FUNCTION of a picklable factory(scene, params) -> World")
    tb = p.add_mutually_exclusive_group()
    tb.add_argument("--tensorboard", dest="tensorboard", action="store_true", default=None,
                    help="write TensorBoard logs (error if tensorboard is not installed); default: when installed")
    tb.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", help="CSV logs only")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    mode.add_argument("--fresh", action="store_true", help="delete the previous run's files in --out, then start anew")
    p.add_argument("--no-plot", action="store_true", help="do not write learning_curves.png")
    add_progress(p)

    p = add_verb(rsub, "eval", help="compare a checkpoint with random, wander and navmesh on held-out seeds",
                 description=EVAL_DESCRIPTION, config="option", func=cmd_rl_eval,
                 example="playmill rl eval runs/default/models/rl/policy.zip --seeds 5 --plot")
    p.add_argument("checkpoint", help="a checkpoint (policy.zip, checkpoints/ckpt_*.zip) or a run folder")
    add_sugar(p, "--policies", "rl.eval.policies", "comma-separated: ppo, ppo+shield, random, wander, navmesh",
              as_list=True)
    add_sugar(p, "--scenes", "rl.eval.scenes", "comma-separated scene families (default: the checkpoint's)",
              as_list=True)
    for flag, key, what in (("--seeds", "rl.eval.seeds", "held-out scene seeds per scene"),
                            ("--seed-base", "rl.eval.seed_base", "offset into the held-out seeds"),
                            ("--steps", "rl.eval.steps", "frames per episode"),
                            ("--workers", "rl.eval.workers", "parallel worker processes"),
                            ("--weather", "rl.eval.weather", "weather of every world"),
                            ("--time-of-day", "rl.eval.time_of_day", "hours, 0-24")):
        add_sugar(p, flag, key, what)
    p.add_argument("--shield", action="store_true", help="also evaluate ppo+shield (= --set rl.eval.shield=true)")
    p.add_argument("--deterministic", action="store_true", help="PPO takes its most likely action "
                                                                "(= --set rl.eval.deterministic=true)")
    p.add_argument("--out-dir", help="where the .eval.csv/.eval.json go (default: the checkpoint's folder)")
    p.add_argument("--plot", action="store_true", help="also write the run's learning curves")
    add_progress(p)


def cmd_rl_train(args: argparse.Namespace) -> int:
    from playmill.config import write_resolved
    from playmill.stages import run_stage
    from rl_agent.run import train_run, with_tensorboard, world_factory

    extra = []
    if args.minutes is not None:
        if not args.minutes > 0:
            raise UsageError(f"--minutes {args.minutes}: expected a positive number of minutes")
        extra.append(f"rl.ppo.max_wall_s={60.0 * args.minutes}")
        if args.sugar_timesteps is None:
            extra.append(f"rl.ppo.total_timesteps={UNBOUNDED_TIMESTEPS}")
    cfg = load(args, extra)
    try:
        rl = with_tensorboard(cfg.rl, args.tensorboard)
        make_world = world_factory(args.world)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = args.out or cfg.models_dir / "rl"
    mode = "fresh" if args.fresh else "resume" if args.resume else "new"
    def train(c: Any, progress: bool) -> Any:
        run = train_run(rl, out, mode=mode, make_world=make_world, progress=progress, plot=not args.no_plot)
        write_resolved(c, out)  # the complete config beside the run (its rl section is also config.json)
        return run

    report = run_stage(cfg, "rl", progress=not args.no_progress, reraise=(UsageError,), run=train,
                       describe=_describe_train)
    from playmill.stages import PipelineRun

    lines = []
    if report.status in ("done", "skipped"):
        res = report.result.result
        if res.world_restarts:
            report.warnings.append(f"{res.world_restarts} world crash(es) mid-episode: each world was restarted and "
                                   f"its episode truncated (world_restarted in {res.episodes_csv})")
        if res.stopped_by == "already_done":
            report.warnings.append(f"already trained to {res.num_timesteps} decisions: raise --timesteps "
                                   "(rl.ppo.total_timesteps) to train further")
        lines = [f"policy: {res.checkpoint}", f"logs:   {res.progress_csv}",
                 f"next:   playmill rl eval {res.checkpoint}"]
        if "tensorboard" in rl.ppo.log_formats:
            lines.insert(2, f"tensorboard --logdir {report.result.out_dir / 'logs' / 'sb3'}")
    elif report.status == "failed":
        lines = ["checkpoints written so far are kept; fix the cause, then rerun with --resume"]
    run = PipelineRun([report], [report.result.curves] if report.result is not None and report.result.curves else [])
    return print_run(run, lines)


def _describe_train(cfg: Any, run: Any) -> tuple:
    r = run.result
    start = f", resumed from {r.resumed_from.name}" if r.resumed_from else ""
    how = {"timesteps": "the decision budget", "wall_clock": "the time budget"}.get(r.stopped_by, r.stopped_by)
    wrote = (f"{r.trained_timesteps} decisions now ({r.num_timesteps} in all{start}), {r.episodes} episodes; "
             f"stopped by {how}")
    return ("skipped" if r.stopped_by == "already_done" else "done"), wrote, run.out_dir, []


def cmd_rl_eval(args: argparse.Namespace) -> int:
    import math

    from rl_agent.checkpoint import CheckpointError, CheckpointMismatchError
    from rl_agent.run import evaluate_checkpoint, progress_csv_of, resolve_checkpoint

    extra = [f"rl.eval.{k}=true" for k in ("shield", "deterministic") if getattr(args, k)]
    cfg = load(args, extra)
    own_env = args.config is None and not any(o.startswith("rl.env.") for o in args.overrides)
    try:
        ckpt = resolve_checkpoint(args.checkpoint)
        from rl_agent.checkpoint import load_policy

        load_policy(ckpt, expected_env=None if own_env else cfg.rl.env)  # a bad checkpoint: nothing is run
    except CheckpointMismatchError as exc:  # the checkpoint does not fit the settings: data, exit 1
        raise InputError(f"{exc}\nThe checkpoint was trained with another observation/action space: evaluate it "
                         "with its own settings (leave out the CONFIG/--set rl.env keys that differ)") from None
    except FileNotFoundError as exc:  # the path given does not exist: exit 2
        raise UsageError(str(exc)) from None
    except (CheckpointError, ValueError) as exc:  # the file cannot be used: exit 1
        raise InputError(f"bad checkpoint: {exc}") from None
    if args.plot and progress_csv_of(ckpt) is None:
        raise UsageError(f"--plot: no logs/progress.csv next to {ckpt}; the learning curves come from the training "
                         "run's folder")
    from capture.lifecycle import reports_interrupt

    with reports_interrupt(lambda: "rl eval interrupted: nothing was written; rerun the same command."):
        ev = evaluate_checkpoint(ckpt, cfg.rl, own_env=own_env, out_dir=args.out_dir, plot=args.plot,
                                 progress=not args.no_progress)
    print(f"rl eval: {ev.checkpoint} ({ev.num_timesteps} decisions trained); {', '.join(ev.policies)} on "
          f"{len(ev.scenes)} scene(s) x {len(ev.seeds)} held-out seed(s), {cfg.rl.eval.steps} frames each")
    print(ev.table.format())
    if ev.ratios:
        cov, col = ev.ratios["coverage_vs_random"], ev.ratios["collisions_vs_random"]
        print(f"ppo / random: coverage {cov:.2f}x (target >= 2x), collisions per 1,000 frames "
              f"{col:.2f}x (target <= 0.2x)" if math.isfinite(cov) and math.isfinite(col) else
              "ppo / random: undefined (random had no coverage or no collisions)")
    print(f"  table   {ev.csv_path}\n  details {ev.json_path}" + (f"\n  curves  {ev.curves}" if ev.curves else ""))
    return 0
