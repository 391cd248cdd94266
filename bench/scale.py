"""Scale benchmark: playmill's engines on one machine, each against its peer in the same run.

    python bench/scale.py [--quick] [--part curate|collect|train] [--workers 2]

One section per part (``--part`` repeats; default: every part), each a function registered in :data:`PARTS`
that returns its figures; the last line is one JSON object with every part's figures under its name.

- ``curate``: curation input frames/s of the ``local`` engine (a process pool) vs the ``ray`` engine (Ray
  actors), the same synthetic 640x352 30 fps episodes (bench/curate.py) and the same number of workers: the
  cost of running the same stage objects on Ray on one machine. The two must write identical shards (checked).
- ``collect``: sandbox collection frames/s with 1 worker vs 2 workers (target >= 1.7x on 2 idle cores), and
  2 streams on the Ray engine. It also prints how many cores one worker keeps busy (its CPU seconds, the x264
  encoder included, over the wall time): 2 workers cannot go faster than ``cores / that``.

- ``train``: base training throughput (the ``tiny`` preset: 17 frames at 64x112, 140 tokens per clip, from
  cached latents) on the CPU, one thread per process, the *same global batch* of 8 clips per step: 1 process
  (batch 8) vs 2 processes under torchrun (gloo), batch 4 each, ``parallel: ddp`` and ``fsdp``. One step is what
  ``model.train.train`` runs: flow-matching loss on the (wrapped) model with per-sample noise, backward
  (gradients averaged over the ranks), gradient clipping, AdamW, EMA. Figures: samples/s of each, the speed-up
  of 2 processes over 1 and of FSDP over DDP, and the model state per rank (weights, gradients, AdamW moments,
  EMA: DDP holds all of it on every rank, FSDP half). On a shared 2-core machine the 2-process rows compete
  with everything else running: read the ratios with the load recorded beside them.

Ray start-up (``ray.init`` of a local Ray and its shutdown) is timed on its own and left out of the Ray rows:
it is paid once per run, not per episode. The machine may be shared: the load average (1 min) before and
after each part is printed and recorded, so figures taken under load can be told apart.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

PARTS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {}


def part(name: str):
    """Register a section of the bench: ``fn(args, tmp) -> figures``."""
    def deco(fn):
        PARTS[name] = fn
        return fn
    return deco


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (pool workers, ffmpeg)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed_ray_start(workers: int) -> tuple[Any, float]:
    """A local Ray with ``workers`` CPUs, and the seconds it took to start."""
    from capture.ray_engine import import_ray

    ray = import_ray()
    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray, time.perf_counter() - t0


def row(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<46} {value:>18}   {note}")


# -- curate ------------------------------------------------------------------------------------------------


@part("curate")
def bench_curate(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from curate import make_episode  # bench/curate.py: the synthetic 640x352 30 fps episodes

    from curation import CurateConfig, curate

    n_eps, frames = (2, 150) if args.quick else (4, 900)
    eps = tmp / "curate-episodes"
    eps.mkdir()
    for i in range(n_eps):
        make_episode(eps, i, frames, seed=100 + i)
    no_check = {"consistency": {"enabled": False}}  # the engines' figures, without the label check's second decode
    cfg = CurateConfig.from_dict({**no_check, "clip": {"frames": 33, "stride": 33, "height": 176, "width": 320}}
                                 if args.quick else no_check)
    total = n_eps * frames

    def run(engine: str, out: Path) -> float:
        t0 = time.perf_counter()
        curate(eps, out, cfg, engine=engine, workers=args.workers, progress=False)
        return total / (time.perf_counter() - t0)

    load0 = load()
    local = run("local", tmp / "curate-local")
    ray, startup = timed_ray_start(args.workers)
    try:
        viaray = run("ray", tmp / "curate-ray")
    finally:
        t0 = time.perf_counter()
        ray.shutdown()
        startup += time.perf_counter() - t0
    same = _shard_shas(tmp / "curate-local") == _shard_shas(tmp / "curate-ray")
    print(f"curate: {n_eps} episodes x {frames} frames (640x352, 30 fps) -> "
          f"{cfg.clip.frames}-frame {cfg.clip.width}x{cfg.clip.height} clips, {args.workers} workers")
    row("local engine (process pool)", f"{local:8.1f} frames/s")
    row("ray engine (actors)", f"{viaray:8.1f} frames/s", f"{viaray / local:.2f}x local; identical shards: {same}")
    row("ray start + shutdown (once per run)", f"{startup:8.1f} s")
    if not same:
        raise SystemExit("the local and Ray engines wrote different shards")
    return {"episodes": n_eps, "frames": total, "workers": args.workers, "local_fps": round(local, 1),
            "ray_fps": round(viaray, 1), "ray_vs_local": round(viaray / local, 3), "ray_startup_s": round(startup, 1),
            "identical_shards": same, "load_before": load0, "load_after": load()}


def _shard_shas(out: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.parquet"))]


# -- collect -----------------------------------------------------------------------------------------------


@part("collect")
def bench_collect(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from capture.collect import collect, plan_episodes
    from playmill.stages import make_sandbox_world, make_wander_controller

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    w, h = (160, 96) if args.quick else (640, 352)
    per_scene, frames = (1, 150) if args.quick else (4, 300)  # full: the default pipeline's collect stage
    tasks = plan_episodes("sandbox", ["city", "park"], per_scene, frames, base_seed=11)
    make_world = functools.partial(make_sandbox_world, width=w, height=h, fps=25.0, fov_deg=90.0)

    cores_busy: dict[str, float] = {}

    def run(name: str, **kw) -> float:
        t0, c0 = time.perf_counter(), cpu_s()
        res = collect(tasks, make_world, make_wander_controller, tmp / name, progress=False,
                      encoder={"preset": "ultrafast"}, **kw)
        dt = time.perf_counter() - t0
        cores_busy[name] = (cpu_s() - c0) / dt  # Ray's workers are not our children: local runs only
        if res.failed:
            raise SystemExit(f"collection failed: {res.failed}")
        return res.frames_written / dt

    load0 = load()
    one = run("w1", workers=1)
    two = run("w2", workers=2)
    load1 = load()
    ceiling = cores / cores_busy["w1"]  # 2 workers cannot beat the cores one worker leaves unused
    ray, startup = timed_ray_start(2)
    try:
        viaray = run("ray", workers=2, engine="ray")
    finally:
        ray.shutdown()
    def same(name: str) -> bool:
        return all((tmp / "w1" / t.episode_id / name).read_bytes() == (tmp / "ray" / t.episode_id / name).read_bytes()
                   for t in tasks)

    same_actions = same("actions.csv")
    same_videos = sum((tmp / "w1" / t.episode_id / "video.mp4").read_bytes()
                      == (tmp / "ray" / t.episode_id / "video.mp4").read_bytes() for t in tasks)
    print(f"collect: sandbox city + park, {len(tasks)} episodes x {frames} frames at {w}x{h}, x264 ultrafast")
    row("1 worker", f"{one:8.1f} frames/s", f"keeps {cores_busy['w1']:.2f} cores busy (render + x264): "
                                            f"at most {ceiling:.2f}x on {cores} cores")
    row("2 workers (local pool)", f"{two:8.1f} frames/s", f"{two / one:.2f}x one worker (target >= 1.7x on 2 idle cores); "
                                                          f"{cores_busy['w2']:.2f} cores busy")
    row("2 streams on Ray", f"{viaray:8.1f} frames/s", f"{viaray / one:.2f}x one worker; same actions as local: {same_actions}, "
                                                      f"same video bytes: {same_videos}/{len(tasks)}")
    row("ray start (once per run)", f"{startup:8.1f} s")
    return {"episodes": len(tasks), "frames": len(tasks) * frames, "size": [w, h], "fps_1worker": round(one, 1),
            "fps_2workers": round(two, 1), "speedup_2_vs_1": round(two / one, 2),
            "cores_busy_1worker": round(cores_busy["w1"], 2), "cores_busy_2workers": round(cores_busy["w2"], 2),
            "speedup_ceiling": round(ceiling, 2), "cores": cores, "ray_fps_2streams": round(viaray, 1),
            "ray_vs_1worker": round(viaray / one, 2), "ray_startup_s": round(startup, 1), "same_actions": same_actions,
            "same_videos": same_videos,
            "load_before": load0, "load_after_local": load1, "load_after": load()}


# -- train -------------------------------------------------------------------------------------------------

TRAIN_GLOBAL_BATCH = 8


def train_rate(parallel: str, global_batch: int, steps: int, warmup: int) -> dict[str, Any]:
    """Time ``steps`` training steps of the tiny DiT on synthetic cached latents in this process (one of
    ``WORLD_SIZE`` under torchrun, each taking its share of ``global_batch``): samples/s over all ranks and this
    rank's model-state bytes."""
    import torch

    import model
    from model.conditions import build_condition_spec
    from model.dit import i2v_condition
    from model.parallel import all_max, barrier, clip_grad_norm, full_tensor, setup_distributed, wrap
    from model.train import Inputs, ema_update, flow_matching_loss, get_train_config, sample_generators

    torch.set_num_threads(1)
    d = setup_distributed()
    cfg = get_train_config("tiny")
    mcfg = model.get_config(cfg.model, cfg.mode)
    batch = global_batch // d.world
    torch.manual_seed(0)
    dit = model.build_dit(mcfg)
    net = wrap(dit, d, parallel)
    params = [p for p in dit.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas)
    ema = {k: v.detach().clone().float() for k, v in dit.state_dict().items()}
    keys = ("w", "s", "a", "d")
    spec = build_condition_spec(cfg.mode, keys, num_frames=cfg.num_frames, height=cfg.height, width=cfg.width,
                                mouse_scale=0.05)
    g = torch.Generator().manual_seed(1 + d.rank)
    f, h, w = 1 + (cfg.num_frames - 1) // 4, cfg.height // 8, cfg.width // 8
    inp = Inputs(torch.randn(batch, 16, f, h, w, generator=g),
                 i2v_condition(torch.randn(batch, 16, f, h, w, generator=g)),
                 torch.randn(batch, mcfg.image_encoder.num_tokens, mcfg.image_encoder.dim, generator=g),
                 spec.keyboard(torch.randint(0, 2, (batch, cfg.num_frames, len(keys)), generator=g, dtype=torch.uint8)),
                 spec.mouse(torch.randn(batch, cfg.num_frames, 2, generator=g)), [])
    mine = range(d.rank * batch, (d.rank + 1) * batch)  # this rank's positions in the global batch
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            barrier(d)
            t0 = time.perf_counter()
        loss = flow_matching_loss(net, inp, cfg.timestep_shift, sample_generators(0, i, mine), None)
        loss.backward()
        clip_grad_norm(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema_update(ema, dit, cfg.ema_decay)
    barrier(d)
    dt = all_max(d, time.perf_counter() - t0)
    local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in params)
    full = sum(full_tensor(p).numel() for p in params)
    # fp32 weights + gradients + two AdamW moments + EMA
    return {"samples_per_s": global_batch * steps / dt, "step_s": dt / steps, "state_mb_per_rank": local * 20 / 2**20,
            "state_mb_full": full * 20 / 2**20, "rank": d.rank, "world": d.world}


def _train_worker(args: argparse.Namespace) -> None:
    """Entry point of each torchrun process: DDP, then FSDP, in one process group; rank 0 writes the figures."""
    from model.parallel import shutdown_distributed

    out = {p: train_rate(p, TRAIN_GLOBAL_BATCH, args.steps, args.warmup) for p in ("ddp", "fsdp")}
    if out["ddp"]["rank"] == 0:
        Path(args.train_worker).write_text(json.dumps(out))
    shutdown_distributed()


@part("train")
def bench_train(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import subprocess

    steps, warmup = (6, 2) if args.quick else (30, 5)
    os.environ.pop("WORLD_SIZE", None)
    load0 = load()
    one = train_rate("ddp", TRAIN_GLOBAL_BATCH, steps, warmup)
    res = tmp / "train.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
           "--train-worker", str(res), "--steps", str(steps), "--warmup", str(warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"torchrun failed:\n{proc.stderr[-4000:]}")
    two = json.loads(res.read_text())
    print(f"train: tiny preset, global batch {TRAIN_GLOBAL_BATCH}, {steps} steps, 1 CPU thread per process")
    for name, r in (("1 process, batch 8", one), ("2 processes DDP, batch 4 each", two["ddp"]),
                    ("2 processes FSDP, batch 4 each", two["fsdp"])):
        row(name, f"{r['samples_per_s']:8.1f} samples/s", f"{r['step_s']:.3f} s/step; model state "
                                                          f"{r['state_mb_per_rank']:.2f} MB per rank")
    fig = {
        "global_batch": TRAIN_GLOBAL_BATCH, "steps": steps,
        "one_samples_per_s": round(one["samples_per_s"], 2),
        "ddp2_samples_per_s": round(two["ddp"]["samples_per_s"], 2),
        "fsdp2_samples_per_s": round(two["fsdp"]["samples_per_s"], 2),
        "ddp2_vs_one": round(two["ddp"]["samples_per_s"] / one["samples_per_s"], 3),
        "fsdp2_vs_one": round(two["fsdp"]["samples_per_s"] / one["samples_per_s"], 3),
        "fsdp_vs_ddp": round(two["fsdp"]["samples_per_s"] / two["ddp"]["samples_per_s"], 3),
        "state_mb_per_rank_ddp": round(two["ddp"]["state_mb_per_rank"], 3),
        "state_mb_per_rank_fsdp": round(two["fsdp"]["state_mb_per_rank"], 3),
        "load_before": load0, "load_after": load(),
    }
    row("2 processes vs 1", f"DDP {fig['ddp2_vs_one']:.2f}x", f"FSDP {fig['fsdp2_vs_one']:.2f}x; FSDP vs DDP "
        f"{fig['fsdp_vs_ddp']:.2f}x; FSDP keeps {fig['state_mb_per_rank_fsdp'] / fig['state_mb_per_rank_ddp']:.2f} "
        "of the model state per rank")
    return fig


# -- main --------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: under a minute on 2 cores")
    ap.add_argument("--part", action="append", choices=sorted(PARTS), help="a section to run (repeat; default: all)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes / Ray CPUs (default 2)")
    ap.add_argument("--train-worker", help=argparse.SUPPRESS)  # a torchrun process of the train part
    ap.add_argument("--steps", type=int, default=6, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.train_worker:
        _train_worker(args)
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"scale bench: {cores} cores, load average {os.getloadavg()[0]:.2f} (1 min){' (quick)' if args.quick else ''}")
    out: dict[str, Any] = {"bench": "scale", "quick": args.quick, "cores": cores}
    tmp = Path(tempfile.mkdtemp(prefix="playmill-bench-scale-"))
    try:
        for name in args.part or list(PARTS):
            (tmp / name).mkdir()
            out[name] = PARTS[name](args, tmp / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
