"""Scale benchmark: playmill's engines on one machine, each against its peer in the same run.

    python bench/scale.py [--quick] [--part curate|collect|...] [--workers 2]

One section per part (``--part`` repeats; default: every part), each a function registered in :data:`PARTS`
that returns its figures; the last line is one JSON object with every part's figures under its name.

- ``curate``: curation input frames/s of the ``local`` engine (a process pool) vs the ``ray`` engine (Ray
  actors), the same synthetic 640x352 30 fps episodes (bench/curate.py) and the same number of workers: the
  cost of running the same stage objects on Ray on one machine. The two must write identical shards (checked).
- ``collect``: sandbox collection frames/s with 1 worker vs 2 workers (target >= 1.7x on 2 idle cores), and
  2 streams on the Ray engine. It also prints how many cores one worker keeps busy (its CPU seconds, the x264
  encoder included, over the wall time): 2 workers cannot go faster than ``cores / that``.

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
    cfg = CurateConfig.from_dict({"clip": {"frames": 33, "stride": 33, "height": 176, "width": 320}} if args.quick
                                 else {})
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


# -- main --------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: under a minute on 2 cores")
    ap.add_argument("--part", action="append", choices=sorted(PARTS), help="a section to run (repeat; default: all)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes / Ray CPUs (default 2)")
    args = ap.parse_args()
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
