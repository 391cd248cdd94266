"""Redundant-frame filter vs ffmpeg's mpdecimate, on the same H.264 videos with labelled injected duplicates.

Each video is a camera path over a procedural texture (fast pans, slow pans of 0.5-1 px/frame, a small
object moving over a still background) into which duplicates are injected and labelled: exact copies of the
previous frame, near copies (the previous frame plus Gaussian noise, as a re-encoded duplicate looks) and
frozen runs of several copies. Both filters see the same encoded file:

* playmill: ``capture.video.iter_frames`` (PyAV, in-process, one thread) + :class:`curation.stages.RedundantFrameFilter`;
* peer: the real ``ffmpeg -vf mpdecimate,showinfo`` (default hi/lo/frac), kept frames read from showinfo's pts.

A "positive" is a dropped frame: precision/recall/F1 of dropping exactly the injected duplicates.
Throughput is frames/s end to end (decode included, one thread each) and, for playmill, of the filter alone.

    python bench/dedup.py [--quick]

Prints a table, then as its very last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from capture.video import VideoWriter, ffmpeg_exe, iter_frames  # noqa: E402
from curation.config import DedupConfig  # noqa: E402
from curation.stages import RedundantFrameFilter  # noqa: E402


def texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A gameplay-like texture: smoothed colour noise at several scales plus hard-edged rectangles."""
    import cv2

    img = np.zeros((h, w, 3), np.float32)
    for scale, amp in ((64, 90), (16, 50), (4, 25)):
        small = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amp
    for _ in range(max(4, h * w // 6000)):
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        hh, ww = int(rng.integers(4, 40)), int(rng.integers(4, 60))
        img[y:y + hh, x:x + ww] = rng.random(3) * 255
    return np.clip(img, 0, 255).astype(np.uint8)


def make_video(path: Path, n: int, w: int, h: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Write a labelled video of ``n`` frames; returns ``dup`` bool[n] (True: an injected duplicate) and each
    frame's kind (duplicates: exact, near, frozen; real frames: fast, slow, object)."""
    tex = texture(h * 2, w * 3, rng)
    x, y = float(w), float(h // 2)
    labels = []
    kinds: list[str] = []
    prev = None
    speed = 4.0
    obj = None
    with VideoWriter(path, w, h, 30.0, crf=18, preset="veryfast") as vw:
        i = 0
        frozen = 0
        while i < n:
            if prev is not None and frozen > 0:
                frame = prev.copy()
                frozen -= 1
                labels.append(True)
                kinds.append("frozen")
            elif prev is not None and rng.random() < 0.12:
                kind = rng.random()
                if kind < 0.4:
                    frame = prev.copy()  # exact duplicate
                    kinds.append("exact")
                elif kind < 0.8:  # near duplicate: re-encoded/noisy copy
                    noise = rng.normal(0, rng.uniform(1.0, 2.5), prev.shape)
                    frame = np.clip(prev.astype(np.float32) + noise, 0, 255).astype(np.uint8)
                    kinds.append("near")
                else:
                    frame = prev.copy()
                    frozen = int(rng.integers(2, 8))  # a frozen game: a run of copies
                    kinds.append("frozen")
                labels.append(True)
            else:
                if rng.random() < 0.04:  # change motion regime
                    r = rng.random()
                    speed = float(rng.uniform(0.5, 1.0)) if r < 0.35 else (0.0 if r < 0.5 else float(rng.uniform(2, 10)))
                    obj = [float(rng.integers(0, w - 20)), float(rng.integers(0, h - 20))] if speed == 0.0 else None
                x = (x + speed) % (w * 2)
                y = h // 2 + 20 * np.sin(x / 97.0)
                xi, yi = int(x), int(y)
                fx, fy = x - xi, y - yi
                crop = tex[yi:yi + h + 1, xi:xi + w + 1].astype(np.float32)  # sub-pixel pan (bilinear)
                frame = ((1 - fx) * (1 - fy) * crop[:-1, :-1] + fx * (1 - fy) * crop[:-1, 1:]
                         + (1 - fx) * fy * crop[1:, :-1] + fx * fy * crop[1:, 1:]).astype(np.uint8)
                if obj is not None:  # still camera, a small object walks across
                    obj[0] = (obj[0] + 2.0) % (w - 20)
                    frame[int(obj[1]):int(obj[1]) + 16, int(obj[0]):int(obj[0]) + 12] = (250, 30, 30)
                labels.append(False)
                kinds.append("object" if obj is not None else ("slow" if speed < 1.5 else "fast"))
            vw.write(np.ascontiguousarray(frame))
            prev = frame
            i += 1
    return np.asarray(labels[:n], dtype=bool), kinds[:n]


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (ffmpeg)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def run_ours(path: Path, cfg: DedupConfig) -> tuple[np.ndarray, float, float, float]:
    """keep mask, end-to-end seconds (decode + filter), filter-only seconds (OpenCV on one thread), CPU s."""
    import cv2

    cv2.setNumThreads(1)
    c0 = _cpu()
    t0 = time.perf_counter()
    filt = RedundantFrameFilter(cfg)
    keep = []
    t_filter = 0.0
    # decode straight to the compare size (ffmpeg's area scaler): the filter never needs more pixels
    for t, f in iter_frames(path, width=cfg.compare_width, threads=1):
        a = time.perf_counter()
        keep.append(filt.keep(f, t))
        t_filter += time.perf_counter() - a
    return np.asarray(keep), time.perf_counter() - t0, t_filter, _cpu() - c0


_PTS = re.compile(r"\bn:\s*\d+\s+pts:\s*(\d+)\s+pts_time:([\d.]+)")


def run_mpdecimate(path: Path, n: int, fps: float = 30.0) -> tuple[np.ndarray, float, float]:
    """keep mask from ffmpeg's mpdecimate (frames whose pts show up after it), seconds and CPU seconds."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-threads", "1", "-i", str(path), "-vf",
           "mpdecimate,showinfo", "-fps_mode", "passthrough", "-filter_threads", "1", "-f", "null", "-"]
    c0 = _cpu()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    dt = time.perf_counter() - t0
    cpu = _cpu() - c0
    keep = np.zeros(n, dtype=bool)
    for m in _PTS.finditer(res.stderr):
        idx = int(round(float(m.group(2)) * fps))
        if 0 <= idx < n:
            keep[idx] = True
    return keep, dt, cpu


def prf(dup: np.ndarray, keep: np.ndarray) -> tuple[float, float, float]:
    dropped = ~keep
    tp = int((dropped & dup).sum())
    fp = int((dropped & ~dup).sum())
    fn = int((~dropped & dup).sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small videos (under a minute on 2 cores)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n_videos, n_frames, (w, h) = (3, 300, (640, 352)) if args.quick else (8, 1500, (640, 352))
    rng = np.random.default_rng(args.seed)
    cfg = DedupConfig()
    names = ("ours", "mpdecimate")
    dups, kinds, keeps = [], [], {k: [] for k in names}
    secs = {k: 0.0 for k in names}
    cpus = {k: 0.0 for k in names}
    filter_s = 0.0
    with tempfile.TemporaryDirectory() as td:
        for v in range(n_videos):
            path = Path(td) / f"v{v}.mp4"
            dup, kind = make_video(path, n_frames, w, h, rng)
            dups.append(dup)
            kinds += kind
            keep_o, t_o, tf_o, c_o = run_ours(path, cfg)
            keep_m, t_m, c_m = run_mpdecimate(path, n_frames)
            cpus["ours"] += c_o
            cpus["mpdecimate"] += c_m
            keeps["ours"].append(keep_o)
            keeps["mpdecimate"].append(keep_m)
            secs["ours"] += t_o
            secs["mpdecimate"] += t_m
            filter_s += tf_o
    dup = np.concatenate(dups)
    kind_arr = np.asarray(kinds)
    frames_total = len(dup)
    rows = {}
    for name in names:
        keep = np.concatenate(keeps[name])
        p, r, f1 = prf(dup, keep)
        rows[name] = dict(precision=p, recall=r, f1=f1, fps=frames_total / secs[name], cpu_fps=frames_total / cpus[name],
                          filter_fps=frames_total / filter_s if name == "ours" else None,
                          fp=int((~keep & ~dup).sum()), fn=int((keep & dup).sum()),
                          by_kind={k: float((~keep[kind_arr == k]).mean()) for k in sorted(set(kinds))})
    print(f"redundant-frame filter vs ffmpeg mpdecimate: {n_videos} videos x {n_frames} frames at {w}x{h}, "
          f"{int(dup.sum())} injected duplicates (exact, near = noisy copy, frozen runs)")
    print(f"{'filter':<12}{'precision':>10}{'recall':>9}{'F1':>8}{'FP':>6}{'FN':>6}{'frames/s':>10}"
          f"{'frames/CPU-s':>14}{'filter-only f/s':>17}")
    for name, r in rows.items():
        fo = f"{r['filter_fps']:.0f}" if r["filter_fps"] else "-"
        print(f"{name:<12}{r['precision']:>10.4f}{r['recall']:>9.4f}{r['f1']:>8.4f}{r['fp']:>6}{r['fn']:>6}"
              f"{r['fps']:>10.0f}{r['cpu_fps']:>14.0f}{fo:>17}")
    ks = sorted(set(kinds))
    print("\nshare of frames dropped, by kind (duplicates should be 1, real frames 0):")
    print(f"{'filter':<12}" + "".join(f"{k + ('*' if k in ('exact', 'near', 'frozen') else ''):>10}" for k in ks))
    print(f"{'(frames)':<12}" + "".join(f"{int((kind_arr == k).sum()):>10}" for k in ks))
    for name, r in rows.items():
        print(f"{name:<12}" + "".join(f"{r['by_kind'][k]:>10.3f}" for k in ks))
    print("* injected duplicates. frames/s: decode + filter end to end (wall clock), one thread each; "
          "frames/CPU-s: the same per CPU second of all processes (playmill: PyAV decodes and area-scales "
          "to the compare width in-process, beside the Python filter).")
    o, m = rows["ours"], rows["mpdecimate"]
    print(json.dumps({
        "bench": "dedup", "quick": args.quick, "frames": frames_total,
        "f1": round(o["f1"], 4), "precision": round(o["precision"], 4), "recall": round(o["recall"], 4),
        "f1_mpdecimate": round(m["f1"], 4), "precision_mpdecimate": round(m["precision"], 4),
        "recall_mpdecimate": round(m["recall"], 4),
        "fps": round(o["fps"], 1), "fps_mpdecimate": round(m["fps"], 1),
        "frames_per_cpu_s": round(o["cpu_fps"], 1), "frames_per_cpu_s_mpdecimate": round(m["cpu_fps"], 1),
        "filter_only_fps": round(o["filter_fps"], 1),
        "speed_ratio_vs_mpdecimate": round(o["fps"] / m["fps"], 3),
        "drop_rate_by_kind": {k: round(v, 4) for k, v in o["by_kind"].items()},
        "drop_rate_by_kind_mpdecimate": {k: round(v, 4) for k, v in m["by_kind"].items()},
    }))


if __name__ == "__main__":
    main()
