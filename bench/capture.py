"""Capture throughput: render-only vs recorded (render + H.264 encode + CSV), and 2 workers vs 1.

    python bench/capture.py [--quick] [--scene city] [--width 640 --height 352]

1. render-only: the sandbox world stepped by the wandering controller, frames discarded; pinned to one core.
2. recorded: the same world, seed and controller through the episode writer (H.264 encoded in-process with
   PyAV, so render, encode and CSV share that one core).
3. workers: the same set of episodes collected with 1 and with 2 worker processes (unpinned).

Targets (issue "Foundation"): >= 100 recorded frames/s per core, recording overhead <= 30 % over render-only,
2 workers >= 1.7x one worker. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.collect import collect, plan_episodes, record_episode  # noqa: E402
from playmill.stages import make_sandbox_world, make_wander_controller  # noqa: E402


def pin_to_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def render_only(scene: str, seed: int, frames: int, size: tuple[int, int]) -> tuple[float, float]:
    """(frames/s wall, frames per CPU-second of this process) of stepping and rendering without recording."""
    world = make_sandbox_world(scene, {}, width=size[0], height=size[1], fps=25.0, fov_deg=90.0)
    ctl = make_wander_controller(world)
    seed = plan_episodes("sandbox", [scene], 1, frames, base_seed=seed)[0].seed  # the same scene as recorded()
    obs = world.reset(seed)
    ctl.reset(seed, obs)
    for _ in range(10):  # warm-up
        obs = world.step(ctl.act(obs))
    obs = world.reset(seed)
    ctl.reset(seed, obs)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(frames - 1):
        obs = world.step(ctl.act(obs))
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    world.close()
    return (frames - 1) / dt, (frames - 1) / dc


def recorded(scene: str, seed: int, frames: int, size: tuple[int, int], out: Path, preset: str) -> tuple[float, float]:
    """(frames/s wall, frames per CPU-second) of record_episode, not counting the scene build of its reset (timed
    separately, subtracted), as render_only does not count it either. Encoding runs in this process (PyAV), so
    the process's CPU time is render + encode + CSV, whatever else the machine runs."""
    world = make_sandbox_world(scene, {}, width=size[0], height=size[1], fps=25.0, fov_deg=90.0)
    ctl = make_wander_controller(world)
    task = plan_episodes("sandbox", [scene], 1, frames, base_seed=seed)[0]
    out.mkdir(parents=True, exist_ok=True)
    world.reset(task.seed)  # warm the renderer as in render_only
    t0, c0 = time.perf_counter(), time.process_time()
    world.reset(task.seed)
    t_reset, c_reset = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    record_episode(world, ctl, out, task, encoder={"preset": preset})
    dt, dc = time.perf_counter() - t0 - t_reset, time.process_time() - c0 - c_reset
    world.close()
    shutil.rmtree(out, ignore_errors=True)
    return frames / dt, frames / dc


def workers_fps(scenes: list[str], episodes: int, frames: int, size: tuple[int, int], workers: int, out: Path,
                preset: str) -> float:
    make_world = functools.partial(make_sandbox_world, width=size[0], height=size[1], fps=25.0, fov_deg=90.0)
    tasks = plan_episodes("sandbox", scenes, episodes, frames, base_seed=11)
    t0 = time.perf_counter()
    res = collect(tasks, make_world, make_wander_controller, out, workers=workers, progress=False,
                  encoder={"preset": preset})
    dt = time.perf_counter() - t0
    if res.failed:
        raise RuntimeError(f"collection failed: {res.failed}")
    return res.frames_written / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, under a minute on 2 cores")
    ap.add_argument("--scene", default="city", choices=["city", "indoor", "park"])
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=352)
    ap.add_argument("--preset", default="ultrafast", help="x264 preset of the recorder (pipeline.yaml collect.preset)")
    args = ap.parse_args()
    size = (args.width, args.height)
    frames = 150 if args.quick else 750
    ep_frames, episodes = (100, 2) if args.quick else (300, 4)
    ncores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tmp = Path(tempfile.mkdtemp(prefix="playmill-bench-capture-"))
    try:
        # 2 workers vs 1 first, before this process pins itself to one core
        w1 = workers_fps([args.scene, "park"], episodes // 2 or 1, ep_frames, size, 1, tmp / "w1", args.preset)
        w2 = workers_fps([args.scene, "park"], episodes // 2 or 1, ep_frames, size, 2, tmp / "w2", args.preset)
        core = pin_to_one_core()
        runs = []  # alternate the two, 3 times: the best of each is the least disturbed by other jobs
        for _ in range(3):
            runs.append((render_only(args.scene, 3, frames, size), recorded(args.scene, 3, frames, size, tmp / "rec",
                                                                              args.preset)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    render, render_cpu = max(r[0][0] for r in runs), max(r[0][1] for r in runs)
    rec, rec_cpu = max(r[1][0] for r in runs), max(r[1][1] for r in runs)
    overhead = render / rec - 1.0
    overhead_cpu = render_cpu / rec_cpu - 1.0
    rows = [
        ("render-only (1 core)", f"{render:8.1f} frames/s", ""),
        ("recorded: render + H.264 + CSV (1 core)", f"{rec:8.1f} frames/s", f"target >= 100 ({rec / 25:.1f}x real time at 25 fps)"),
        ("recording overhead over render-only", f"{overhead * 100:8.1f} %", "target <= 30 % (wall clock, best of 3)"),
        ("  the same in CPU time of this process", f"{overhead_cpu * 100:8.1f} %",
         f"render {render_cpu:.1f}, recorded {rec_cpu:.1f} frames per CPU-s"),
        ("collect, 1 worker", f"{w1:8.1f} frames/s", ""),
        ("collect, 2 workers", f"{w2:8.1f} frames/s", f"{w2 / w1:.2f}x one worker (target >= 1.7x)"),
    ]
    print(f"capture bench: scene {args.scene}, {size[0]}x{size[1]}, {frames} frames, x264 {args.preset}, pinned to core {core}, "
          f"{ncores} cores available{' (quick)' if args.quick else ''}")
    for name, val, note in rows:
        print(f"  {name:<42} {val}   {note}")
    print(json.dumps({"bench": "capture", "scene": args.scene, "width": size[0], "height": size[1],
                      "quick": args.quick, "preset": args.preset, "render_fps_1core": round(render, 1),
                      "recorded_fps_1core": round(rec, 1), "recording_overhead": round(overhead, 3),
                      "recording_overhead_cpu": round(overhead_cpu, 3), "render_fps_per_cpu_s": round(render_cpu, 1),
                      "recorded_fps_per_cpu_s": round(rec_cpu, 1),
                      "collect_fps_1worker": round(w1, 1), "collect_fps_2workers": round(w2, 1),
                      "workers_speedup": round(w2 / w1, 2), "cores": ncores}))


if __name__ == "__main__":
    main()
