"""RL collection agent: environment throughput, then PPO vs the random policy and the wandering controller.

1. Environment steps/s per core at 64x64: the raw sandbox world rendering 64x64 (the peer), and the gymnasium
   environment (``playmill/Sandbox-v0`` defaults: a 116x64 render resized to a 64x64 observation, 12 range rays,
   the collision shield, reward terms), both driven by uniform random actions in one process.
2. Training: ``train_ppo`` with the default config (all three scene families, 2 environment processes) for a
   wall-clock budget: 30 minutes in the full run; ``--quick`` trains a token 512 decisions (a pipeline check,
   not a trained agent: its comparison figures mean nothing and are labelled so).
3. Evaluation on held-out scene seeds (never seen in training): the PPO policy without the shield, with the
   shield, the random policy, the wander controller (and the navmesh controller when
   ``unreal_bridge.navmesh_controller`` exists), side by side. Targets: coverage >= 2x random, collisions per
   1,000 frames <= a fifth of random's.

The learning curves are saved as a PNG next to the run (its path is printed).

    python bench/rl.py --quick      # < 1 min on 2 cores (token training)
    python bench/rl.py              # ~35 min on 2 cores (30 min of training)

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rl_agent import RLConfig, heldout_seeds, train_ppo  # noqa: E402
from rl_agent.evaluation import evaluate, navmesh_controller_available  # noqa: E402
from rl_agent.plots import plot_learning_curves  # noqa: E402


def world_fps(scene: str, seconds: float) -> float:
    """Raw SandboxWorld frames/s at 64x64 under random keys and mouse (one process)."""
    from capture.actions import FrameAction
    from rl_agent.env import make_sandbox_world

    rng = np.random.default_rng(0)
    world = make_sandbox_world(scene, {"weather": "clear"}, width=64, height=64, fps=25.0, fov_deg=90.0)
    world.reset(heldout_seeds(1, base=100)[0])
    keys = ["w", "s", "a", "d", "shift", "space"]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pressed = frozenset(k for k in keys if rng.random() < 0.3)
        world.step(FrameAction(pressed, d_pitch_deg=float(rng.normal(0, 1)), d_yaw_deg=float(rng.normal(0, 4))))
        n += 1
    dt = time.perf_counter() - t0
    world.close()
    return n / dt


def env_fps(scene: str, seconds: float) -> tuple[float, float]:
    """(frames/s, decisions/s) of the gymnasium environment with default settings in one scene."""
    from rl_agent.env import PlaymillEnv

    env = PlaymillEnv({"scenes": [scene], "max_frames": 10**7, "weathers": ["clear"]})
    env.reset(seed=0, options={"scene_seed": heldout_seeds(1, base=100)[0]})
    env.action_space.seed(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env.step(env.action_space.sample())
        n += 1
    dt = time.perf_counter() - t0
    env.close()
    return n * env.cfg.action_repeat / dt, n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="token training, small evaluation: under a minute on 2 cores")
    ap.add_argument("--out", default=None, help="run folder (default runs/bench_rl/quick or runs/bench_rl/full)")
    ap.add_argument("--minutes", type=float, default=None, help="training budget in minutes (full run default 30)")
    ap.add_argument("--resume", action="store_true", help="continue a previous run in --out instead of starting fresh")
    args = ap.parse_args()
    quick = args.quick
    root = Path(__file__).resolve().parents[1]
    out = Path(args.out) if args.out else root / "runs" / "bench_rl" / ("quick" if quick else "full")
    if out.exists() and not args.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    ncores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    t_start = time.perf_counter()

    # 1. throughput ------------------------------------------------------------------------------------
    scenes_speed = ["indoor"] if quick else ["city", "indoor", "park"]
    secs = 3.0 if quick else 15.0
    speed_rows = []
    for sc in scenes_speed:
        wf = world_fps(sc, secs)
        ef, ed = env_fps(sc, secs)
        speed_rows.append((sc, wf, ef, ed))

    # 2. training ---------------------------------------------------------------------------------------
    if quick:  # the `smoke` preset (playmill rl train --preset smoke)
        cfg = RLConfig.from_dict({"preset": "smoke", "ppo": {"n_envs": 2}})
    else:  # the `bench` preset (playmill rl train --preset bench): 30 minutes of wall clock
        minutes = 30.0 if args.minutes is None else args.minutes
        cfg = RLConfig.from_dict({"preset": "bench", "ppo": {"n_envs": 2, "max_wall_s": 60.0 * minutes}})
    res = train_ppo(cfg, out, progress=not quick)
    png = plot_learning_curves(res.progress_csv, out / "learning_curves.png",
                               title=f"PPO collection agent: {res.num_timesteps} decisions, {res.wall_s / 60:.1f} min")

    # 3. evaluation -------------------------------------------------------------------------------------
    seeds = heldout_seeds(1 if quick else 3)
    scenes_eval = ["indoor"] if quick else ["city", "indoor", "park"]
    steps = 200 if quick else 1000
    policies: dict[str, str] = {"ppo": f"ppo:{res.checkpoint}", "ppo+shield": f"ppo+shield:{res.checkpoint}",
                                "random": "random", "wander": "wander"}
    if quick:
        policies.pop("ppo+shield")
    if navmesh_controller_available():
        policies["navmesh"] = "navmesh"
    table = evaluate(policies, seeds, steps, scenes=scenes_eval, env=cfg.env, workers=2, progress=not quick)
    (out / "eval.json").write_text(json.dumps(table.to_dict(), indent=1))
    cov_ratio = table.ratio("coverage_pct", "ppo", "random")
    coll_ratio = table.ratio("collisions_per_1k", "ppo", "random")

    # report --------------------------------------------------------------------------------------------
    total = time.perf_counter() - t_start
    print(f"rl bench{' (quick: token training of 512 decisions, comparison NOT meaningful)' if quick else ''}: "
          f"{ncores} cores, load average {load:.1f} at start")
    print("\nenvironment throughput, one process (= per core), random actions")
    print(f"  {'scene':<8} {'world 64x64 frames/s':>21} {'env frames/s':>13} {'env decisions/s':>16} {'env/world':>10}")
    for sc, wf, ef, ed in speed_rows:
        print(f"  {sc:<8} {wf:>21.1f} {ef:>13.1f} {ed:>16.1f} {ef / wf:>10.2f}")
    print(f"\ntraining: {res.trained_timesteps} decisions ({res.trained_timesteps * cfg.env.action_repeat} frames) in "
          f"{res.wall_s:.0f} s, stopped by {res.stopped_by}, {res.episodes} episodes, {res.world_restarts} world restarts")
    print(f"  checkpoint {res.checkpoint}")
    print(f"  learning curves {png}")
    print(f"\nheld-out evaluation ({len(seeds)} seeds x {len(scenes_eval)} scenes, {steps} frames each)")
    print(table.format())
    print(f"\n  coverage ppo / random   {cov_ratio:6.2f}x   target >= 2x   {'met' if cov_ratio >= 2 else 'NOT met'}")
    print(f"  collisions ppo / random {coll_ratio:6.2f}x   target <= 0.2x {'met' if coll_ratio <= 0.2 else 'NOT met'}")
    print(f"  total bench time {total:.0f} s")
    figures = {
        "bench": "rl", "quick": quick, "cores": ncores, "load_avg_start": round(load, 2),
        "world_fps_64_per_core": {sc: round(wf, 1) for sc, wf, _, _ in speed_rows},
        "env_frames_per_s_per_core": {sc: round(ef, 1) for sc, _, ef, _ in speed_rows},
        "env_decisions_per_s_per_core": {sc: round(ed, 1) for sc, _, _, ed in speed_rows},
        "train_decisions": res.trained_timesteps, "train_frames": res.trained_timesteps * cfg.env.action_repeat,
        "train_wall_s": round(res.wall_s, 1),
        "eval": {r.policy: {"coverage_pct": round(r.coverage_pct, 2), "collisions_per_1k": round(r.collisions_per_1k, 1),
                            "mean_speed_cm_s": round(r.mean_speed_cm_s, 1), "action_entropy_bits": round(r.action_entropy_bits, 2),
                            "stuck_pct": round(r.stuck_pct, 1)} for r in table.rows},
        "coverage_vs_random": round(cov_ratio, 2), "collisions_vs_random": round(coll_ratio, 3),
        "targets_met": {"coverage_2x": bool(cov_ratio >= 2), "collisions_fifth": bool(coll_ratio <= 0.2)},
        "learning_curves_png": str(png), "total_s": round(total, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
