"""Whole-curation benchmark: throughput, shard size per codec, reader speed, and memory on a long video.

Input: synthetic 640x352 episodes at 30 fps written with capture's EpisodeWriter (a camera panning over a
procedural texture, mouse turns, W held, a frozen stretch and duplicated frames every few seconds), curated
with the default config (352x640, 57-frame clips, 25 fps, dedup and velocity on) without the action-label check
(``consistency``, which decodes each video once more: ``bench/motion.py`` and ``bench/label_check.py`` measure it),
so that the figures compare the same video work as the peer.

Figures, each beside its peer run on the same input in the same run:

1. curation frames/s per core (``curate(..., workers=1)``: decode, dedup, resample, crop, H.264 clip
   encode, shards) vs the same video work done by one ffmpeg command on one thread
   (``mpdecimate,fps=25,scale,crop`` + libx264 segments of 57 frames; no actions, no shards);
2. shard bytes per hour of curated video for ``frame_codec`` h264 and jpeg;
3. reader frames/s per core into tensors (``ShardIterableDataset``, no DataLoader workers; target >= 1,000)
   vs decoding the same clips with the ffmpeg command line (``ffmpeg -i clip.mp4 -f rawvideo`` per clip, through a pipe);
4. peak RSS of a curation of one long episode (100,000 frames; ``--quick``: 3,000 frames) in a fresh
   process, target < 2 GB, vs loading that video whole (what a non-streaming pipeline holds: measured when it
   fits in 4 GB, else computed as frames x bytes per frame).

    python bench/curate.py [--quick]

Prints a table, then as its very last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

W, H, FPS = 640, 352, 30.0


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (ffmpeg, worker processes)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    img = np.zeros((h, w, 3), np.float32)
    for scale, amp in ((64, 110), (16, 60), (4, 25)):
        small = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amp
    for _ in range(h * w // 5000):
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        img[y:y + int(rng.integers(4, 40)), x:x + int(rng.integers(4, 60))] = rng.random(3) * 255
    return np.clip(img, 0, 255).astype(np.uint8)


def make_episode(episodes_dir: Path, index: int, n: int, seed: int, preset: str = "veryfast") -> Path:
    """A synthetic 640x352, 30 fps episode of ``n`` frames (see the module doc)."""
    from capture.actions import ActionSpace, FrameAction
    from capture.episode import EpisodeWriter, episode_id
    from capture.rotations import rotator_to_quat
    from capture.world import Observation

    rng = np.random.default_rng(seed)
    tex = _texture(H + 64, W * 4, rng)
    eid = episode_id("sandbox", "bench", seed, index)
    yaw = 0.0
    x = 0.0
    pos = np.zeros(3)
    with EpisodeWriter(episodes_dir, eid, source="sandbox", scene="bench", seed=seed, fps=FPS, width=W, height=H,
                       action_space=ActionSpace(), source_frame="unreal", config={}, preset=preset) as wr:
        frame = None
        for i in range(n):
            frozen = (i % 300) in range(150, 165) or (i % 47 == 46)  # a frozen stretch, duplicated frames
            d_yaw = 0.0 if i == 0 else 0.6
            if not frozen or frame is None:
                x = (x + 3.0) % (W * 3)
                xi = int(x)
                frame = np.ascontiguousarray(tex[32:32 + H, xi:xi + W])
            yaw += d_yaw
            pos = pos + np.array([150.0 / FPS, 0.0, 0.0]) if i else pos
            obs = Observation(frame=frame, t_s=i / FPS, pos_cm=pos, quat_wxyz=rotator_to_quat(0.0, yaw),
                              pitch_deg=0.0, yaw_deg=yaw, vel_cm_s=np.array([150.0, 0, 0]), speed_cm_s=150.0,
                              collision=False)
            wr.append(obs, FrameAction(keys=frozenset() if i == 0 else frozenset({"w"}), d_yaw_deg=d_yaw))
        return wr.commit()


def ffmpeg_peer(video: Path, out_dir: Path) -> float:
    """Seconds for one ffmpeg on one thread to do the video work of curation (no actions, no shards)."""
    from capture.video import ffmpeg_exe

    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1", "-i", str(video),
           "-vf", "mpdecimate,fps=25,scale=640:352:flags=area,crop=640:352", "-fps_mode", "cfr",
           "-filter_threads", "1", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-threads", "1",
           "-g", "57", "-f", "segment", "-segment_frames", ",".join(str(57 * k) for k in range(1, 400)),
           "-reset_timestamps", "1", str(out_dir / "seg-%05d.mp4")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


NO_CHECK = {"consistency": {"enabled": False}}  # the curation stages the peer also does (module doc)

RSS_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from curation.runner import curate
    r = curate(sys.argv[1], sys.argv[2], {"consistency": {"enabled": False}}, workers=1, progress=False)
    hwm = 0
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            hwm = int(line.split()[1]) * 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"clips": r.clips, "peak_rss": hwm, "max_child_rss": child}))
""")

NAIVE_SCRIPT = textwrap.dedent("""
    import json, sys
    from capture.video import read_video
    frames, _ = read_video(sys.argv[1])
    hwm = 0
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            hwm = int(line.split()[1]) * 1024
    print(json.dumps({"frames": len(frames), "peak_rss": hwm}))
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (under a minute on 2 cores)")
    args = ap.parse_args()
    n_eps, ep_frames, long_frames = (2, 400, 1500) if args.quick else (6, 1800, 100_000)

    import torch

    from capture.episode import list_episodes
    from capture.video import ffmpeg_exe
    from curation.config import CurateConfig
    from curation.runner import curate
    from curation.reader import ShardIterableDataset
    from curation.shards import read_manifest

    torch.set_num_threads(1)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        eps = td / "episodes"
        eps.mkdir()
        for i in range(n_eps):
            make_episode(eps, i, ep_frames, seed=100 + i)
        frames_in = n_eps * ep_frames

        # 1. curation throughput, one core
        c0, t0 = _cpu(), time.perf_counter()
        r = curate(eps, td / "h264", CurateConfig.from_dict(NO_CHECK), workers=1, progress=False)
        t_cur, c_cur = time.perf_counter() - t0, _cpu() - c0
        c0 = _cpu()
        t_peer = sum(ffmpeg_peer(p / "video.mp4", td / "peer" / p.name) for p in list_episodes(eps))
        c_peer = _cpu() - c0
        res["curate_fps_per_core"] = frames_in / c_cur
        res["ffmpeg_fps_per_core"] = frames_in / c_peer
        res["curate_fps_wall"] = frames_in / t_cur
        res["ffmpeg_fps_wall"] = frames_in / t_peer
        res["clips"] = r.clips

        # 2. shard bytes per hour, per codec
        rj = curate(eps, td / "jpeg", CurateConfig.from_dict({**NO_CHECK, "output": {"frame_codec": "jpeg"}}), workers=1,
                    progress=False)
        for codec, d in (("h264", td / "h264"), ("jpeg", td / "jpeg")):
            m = read_manifest(d)
            res[f"shard_gb_per_hour_{codec}"] = m["totals"]["bytes"] / 1e9 / max(m["totals"]["hours"], 1e-12)
        del rj

        # 3. reader frames/s per core into tensors, vs the ffmpeg command line per clip
        ds = ShardIterableDataset(td / "h264", shuffle=True, seed=0)
        c0 = _cpu()
        n_frames = 0
        for item in ds:
            n_frames += int(item["frames"].shape[0])
            assert item["frames"].dtype == torch.uint8
        res["reader_fps_per_core"] = n_frames / (_cpu() - c0)
        import pyarrow.parquet as pq

        man = read_manifest(td / "h264")
        vids = [v for s in man["shards"]
                for v in pq.read_table(td / "h264" / s["file"], columns=["video"]).column("video").to_pylist()]
        c0 = _cpu()
        n_peer = 0
        for v in vids:  # the ffmpeg command line decoding each clip to raw RGB through a pipe
            p = td / "clip.mp4"
            p.write_bytes(v)
            raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-threads", "1",
                                  "-i", str(p), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
                                 capture_output=True, check=True).stdout
            fr = np.frombuffer(raw, np.uint8).reshape(-1, int(man["height"]), int(man["width"]), 3)
            torch.from_numpy(fr.copy()).permute(0, 3, 1, 2).contiguous()
            n_peer += len(fr)
        res["reader_fps_ffmpeg_cli"] = n_peer / (_cpu() - c0)

        # 4. peak RSS on one long episode, in a fresh process
        long_eps = td / "long"
        long_eps.mkdir()
        t0 = time.perf_counter()
        lp = make_episode(long_eps, 0, long_frames, seed=7, preset="ultrafast")
        res["long_make_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(long_eps), str(td / "long_shards")],
                             capture_output=True, text=True, env=env, check=True)
        res["long_curate_s"] = time.perf_counter() - t0
        rss = json.loads(out.stdout.strip().splitlines()[-1])
        res["peak_rss_gb"] = rss["peak_rss"] / 1e9
        res["max_child_rss_gb"] = rss["max_child_rss"] / 1e9
        naive_bytes = long_frames * W * H * 3
        if naive_bytes < 4e9:
            out = subprocess.run([sys.executable, "-c", NAIVE_SCRIPT, str(lp / "video.mp4")], capture_output=True,
                                 text=True, env=env, check=True)
            res["naive_peak_rss_gb"] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss"] / 1e9
            res["naive_measured"] = True
        else:
            res["naive_peak_rss_gb"] = naive_bytes / 1e9
            res["naive_measured"] = False

    print(f"curation benchmark ({'quick' if args.quick else 'full'}): {n_eps} episodes x {ep_frames} frames at "
          f"{W}x{H} {FPS:g} fps -> {res['clips']} clips of 57 frames at 352x640, 25 fps; long episode "
          f"{long_frames} frames{' (--quick: not 100,000)' if args.quick else ''}")
    rows = [
        ("curation frames per CPU-second", f"{res['curate_fps_per_core']:.0f}",
         f"ffmpeg one-command peer: {res['ffmpeg_fps_per_core']:.0f}", ""),
        ("curation frames/s, 1 worker, wall", f"{res['curate_fps_wall']:.0f}",
         f"ffmpeg one-command peer: {res['ffmpeg_fps_wall']:.0f}", ""),
        ("shard GB per hour, h264", f"{res['shard_gb_per_hour_h264']:.2f}", "", ""),
        ("shard GB per hour, jpeg", f"{res['shard_gb_per_hour_jpeg']:.2f}", "", ""),
        ("reader frames per CPU-second", f"{res['reader_fps_per_core']:.0f}",
         f"ffmpeg CLI per clip: {res['reader_fps_ffmpeg_cli']:.0f}", ">= 1000"),
        (f"peak RSS, {long_frames} frames", f"{res['peak_rss_gb']:.3f} GB",
         f"whole video in memory: {res['naive_peak_rss_gb']:.2f} GB"
         + ("" if res["naive_measured"] else " (computed)"), "< 2 GB"),
        ("largest ffmpeg child RSS", f"{res['max_child_rss_gb']:.3f} GB", "", ""),
    ]
    wid = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"{'figure':<{wid[0]}}  {'playmill':>{wid[1]}}  {'peer':<{wid[2]}}  target")
    for r in rows:
        print(f"{r[0]:<{wid[0]}}  {r[1]:>{wid[1]}}  {r[2]:<{wid[2]}}  {r[3]}")
    print(f"(long episode: made in {res['long_make_s']:.0f} s, curated in {res['long_curate_s']:.0f} s; per CPU-second "
          "figures count every process: Python, its ffmpeg decoders and encoders)")
    print(json.dumps({
        "bench": "curate", "quick": args.quick, "frames": frames_in, "long_frames": long_frames,
        "curate_fps_per_core": round(res["curate_fps_per_core"], 1),
        "ffmpeg_peer_fps_per_core": round(res["ffmpeg_fps_per_core"], 1),
        "curate_fps_wall_1_worker": round(res["curate_fps_wall"], 1), "ffmpeg_peer_fps_wall": round(res["ffmpeg_fps_wall"], 1),
        "shard_gb_per_hour_h264": round(res["shard_gb_per_hour_h264"], 3),
        "shard_gb_per_hour_jpeg": round(res["shard_gb_per_hour_jpeg"], 3),
        "reader_fps_per_core": round(res["reader_fps_per_core"], 1),
        "reader_fps_ffmpeg_cli": round(res["reader_fps_ffmpeg_cli"], 1),
        "peak_rss_gb": round(res["peak_rss_gb"], 3), "naive_peak_rss_gb": round(res["naive_peak_rss_gb"], 3),
        "naive_measured": res["naive_measured"],
    }))


if __name__ == "__main__":
    main()
