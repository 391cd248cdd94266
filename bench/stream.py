"""Streaming generation with the causal student: per-block latency, the KV cache against recomputation, frames/s.

    python bench/stream.py [--quick] [--device cpu|cuda] [--config tiny|mg2-1.3b] [--latent-frames 150]
                           [--threads N]                      (--threads defaults to 1 on CPU)

Random weights (the zero-initialised output layers randomised, so every path computes), the causal preset of the
config (tiny: blocks of 2 latent frames after frame 0, window 4, 3 steps; mg2-1.3b: the released universal
student, blocks of 3, window 6, steps [1000, 908.8, 714.0]). Defaults: tiny at 64x112 on CPU; mg2-1.3b at
352x640 (latents 44x80, 880 tokens per latent frame) with bf16 autocast on CUDA.

1. cached streaming (:class:`model.causal.CausalStreamer`): every block = the few-step denoise + the cache
   rewrite, over ``--latent-frames`` latent frames. Per-block latency: first = median of the first ten full
   blocks once the window is full, last = median of the last ten (fewer on short runs); ratio last/first
   (<= 1.1: no growth with length); the same ratio measured interleaved (early and late blocks of two streams
   timed alternately, robust to load from other processes). KV-cache bytes after the first full window and at the end (constant = bounded memory).
2. peers without a cache, every step recomputing the context with the uncached block-causal forward
   (:func:`model.causal.causal_forward` over [clean context ; noisy block]): (a) the context = the window's frames
   (the same attention cost per step as the cache, but one forward per block fewer; not the same output, since
   a cached frame's keys carry its own earlier window); (b) the context = the whole prefix (the exact uncached
   equivalent; grows with the length), timed on the last blocks -> the cache's speed-ups (peer / cached block time).
3. end to end (:func:`model.stream.stream_student`): image + actions -> decoded video frames, including the
   streamed VAE condition encoder and the streaming VAE decoder -> video frames/s.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import model  # noqa: E402
from model.bundle import Bundle  # noqa: E402
from model.causal import CausalConfig, CausalStreamer, block_spans, causal_forward  # noqa: E402
from model.conditions import build_condition_spec  # noqa: E402
from model.stream import Student, stream_student  # noqa: E402

KEYS = ("w", "s", "a", "d")


def randomize_outputs(dit: torch.nn.Module, std: float = 0.05) -> None:
    """Random values for the zero-initialised output layers (head, action projections)."""
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if name.endswith(("head.head.weight", "proj_mouse.weight", "proj_keyboard.weight")):
                p.normal_(0.0, std)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def inputs(mc, frames: int, h: int, w: int, device: torch.device, g: torch.Generator) -> dict:
    n_raw = 1 + 4 * (frames - 1)
    act = mc.dit.action
    return dict(
        img=torch.randn(1, mc.image_encoder.num_tokens, mc.image_encoder.dim, generator=g).to(device),
        cond=model.i2v_condition(torch.randn(1, 16, frames, h, w, generator=g)).to(device),
        kb=torch.randint(0, 2, (1, n_raw, act.keyboard_dim), generator=g).float().to(device),
        ms=(0.1 * torch.randn(1, n_raw, act.mouse_dim, generator=g)).to(device) if act.mouse_dim else None,
    )


def cached_stream(dit, cfg: CausalConfig, d: dict, frames: int, h: int, w: int, device, amp) -> dict:
    """Block-by-block generation with the KV cache; per-block seconds and cache bytes."""
    st = CausalStreamer(dit, cfg, d["img"], d["cond"], autocast_dtype=amp)
    g = torch.Generator().manual_seed(1)
    secs, sizes, starts = [], [], []
    with torch.no_grad():
        for start, n in block_spans(frames, cfg):
            noise = torch.randn(1, 16, n, h, w, generator=g).to(device)
            sync(device)
            t0 = time.perf_counter()
            st.generate_block(noise, start, d["kb"], d["ms"], generator=g)
            sync(device)
            secs.append(time.perf_counter() - t0)
            sizes.append(st.cache.nbytes())
            starts.append((start, n))
    return {"secs": secs, "sizes": sizes, "spans": starts}


def interleaved_latency(dit, cfg: CausalConfig, d: dict, frames: int, h: int, w: int, device, amp, k: int) -> tuple:
    """Block latency early vs late in the same stretch of time: streamer A times its first ``k`` steady blocks
    while streamer B (advanced untimed to near the end) times its last ``k``, alternating block by block, so that
    load from other processes hits both alike. Returns (median early s, median late s)."""
    spans = block_spans(frames, cfg)
    a = CausalStreamer(dit, cfg, d["img"], d["cond"], autocast_dtype=amp)
    b = CausalStreamer(dit, cfg, d["img"], d["cond"], autocast_dtype=amp)
    g = torch.Generator().manual_seed(2)
    win = cfg.local_attn_frames if cfg.local_attn_frames != -1 else frames

    def run(st, span) -> float:
        start, n = span
        noise = torch.randn(1, 16, n, h, w, generator=g).to(device)
        sync(device)
        t0 = time.perf_counter()
        st.generate_block(noise, start, d["kb"], d["ms"], generator=g)
        sync(device)
        return time.perf_counter() - t0

    full = [sp for sp in spans if sp[1] == cfg.chunk_frames]
    late = full[-k:]
    with torch.no_grad():
        a_iter = iter(spans)
        early_spans = []
        for sp in a_iter:  # A: up to the window being full, untimed
            run(a, sp)
            if sp[0] + sp[1] >= win:
                break
        early_spans = [sp for sp in a_iter if sp[1] == cfg.chunk_frames][:k]
        for sp in spans:  # B: untimed up to its last k blocks
            if sp == late[0]:
                break
            run(b, sp)
        early, late_s = [], []
        for sa, sb in zip(early_spans, late):
            early.append(run(a, sa))
            late_s.append(run(b, sb))
    return median(early), median(late_s)


def recompute_stream(dit, cfg: CausalConfig, d: dict, frames: int, h: int, w: int, device, amp, blocks: list[int],
                     full_prefix: bool = False) -> list:
    """The peers without a cache: every step runs the uncached block-causal forward over [context ; block], the
    context being the window's clean frames, or (``full_prefix``) every earlier frame - the exact equivalent of the
    cached stream, since a frame's keys depend on its own window at every layer. Times the blocks ``blocks``."""
    g = torch.Generator().manual_seed(1)
    clean = torch.zeros(1, 16, frames, h, w, device=device)
    secs = []
    win = -1 if full_prefix else cfg.local_attn_frames
    spans = block_spans(frames, cfg)
    with torch.no_grad(), torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        for start, n in (spans[i] for i in blocks):
            end = start + n
            lo = 0 if win == -1 else max(0, end - win)
            x = torch.randn(1, 16, n, h, w, generator=g).to(device)
            rows = 1 + 4 * (end - 1)
            sync(device)
            t0 = time.perf_counter()
            for i, s in enumerate(cfg.sigmas):
                seq = torch.cat([clean[:, :, lo:start], x], dim=2)
                t = torch.zeros(1, end - lo, device=device)
                t[:, start - lo :] = 1000 * s
                v = causal_forward(dit, seq, t, d["img"], d["cond"][:, :, lo:end], d["kb"][:, :rows],
                                   None if d["ms"] is None else d["ms"][:, :rows], cfg, frame_offset=lo)
                x0 = (seq - s * v.float())[:, :, start - lo :]
                if i + 1 < cfg.num_steps:
                    nxt = cfg.sigmas[i + 1]
                    x = (1 - nxt) * x0 + nxt * torch.randn(x0.shape, generator=g).to(device)
            sync(device)
            secs.append(time.perf_counter() - t0)
            clean[:, :, start:end] = x0
    return secs


def end_to_end(mc, dit, cfg: CausalConfig, frames: int, height: int, width: int, device) -> dict:
    """stream_student on an in-memory bundle (random VAE and image encoder): video frames/s and per-block seconds."""
    torch.manual_seed(0)
    vae = model.build_vae(mc, device).eval().requires_grad_(False)
    enc = model.build_image_encoder(mc, device).eval().requires_grad_(False)
    spec = build_condition_spec(mc.mode, KEYS, num_frames=9, height=height, width=width, mouse_scale=0.05)
    bundle = Bundle(dit, vae, enc, spec, mc, 25.0, 5.0, {}, Path("random"))
    n_raw = 1 + 4 * (frames - 1)
    rng = np.random.default_rng(0)
    kb = (rng.random((n_raw, len(KEYS))) < 0.3).astype(np.float32)
    mouse = rng.normal(0, 1.0, (n_raw, 2)).astype(np.float32)
    img = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    secs, nframes = [], 0
    t0 = time.perf_counter()
    for blk in stream_student(Student(bundle, cfg, "bench"), img, (kb, mouse), num_frames=n_raw):
        secs.append(blk.seconds)
        nframes += len(blk.frames)
    total = time.perf_counter() - t0
    return {"secs": secs, "frames": nframes, "seconds": total}


def median(xs: list) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames (under a minute on CPU)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--config", default=None, help="tiny (default on CPU) or mg2-1.3b (default on CUDA)")
    ap.add_argument("--latent-frames", type=int, default=None, help="latent frames to stream (default 150; quick 45)")
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run with the VAE")
    args = ap.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    name = args.config or ("mg2-1.3b" if device.type == "cuda" else "tiny")
    mc = model.get_config(name, "universal")
    height = args.height or (352 if name.startswith("mg2") else 64)
    width = args.width or (640 if name.startswith("mg2") else 112)
    h, w = height // 8, width // 8
    frames = args.latent_frames or (45 if args.quick else 150)
    cfg = CausalConfig.for_model(name, "universal")
    amp = torch.bfloat16 if device.type == "cuda" else None

    torch.manual_seed(0)
    dit = model.build_dit(mc, device).eval().requires_grad_(False)
    randomize_outputs(dit)
    d = inputs(mc, frames, h, w, device, torch.Generator().manual_seed(0))
    print(f"config {name} on {device} ({torch.get_num_threads()} threads), latents {h}x{w} "
          f"({h * w // 4} tokens/latent frame), {frames} latent frames, chunk {cfg.chunk_frames}, "
          f"window {cfg.local_attn_frames}, {cfg.num_steps} steps")

    cached_stream(dit, cfg, d, min(frames, 3 * cfg.chunk_frames + 1), h, w, device, amp)  # warm-up
    c = cached_stream(dit, cfg, d, frames, h, w, device, amp)
    spans, secs, sizes = c["spans"], c["secs"], c["sizes"]
    full = [i for i, (s, n) in enumerate(spans) if n == cfg.chunk_frames]
    win = cfg.local_attn_frames if cfg.local_attn_frames != -1 else frames
    steady = [i for i in full if spans[i][0] + spans[i][1] >= win]  # the window is full from here on
    k = max(1, min(10, len(steady) // 3))
    first = median([secs[i] for i in steady[:k]])
    last = median([secs[i] for i in steady[-k:]])
    total = sum(secs)
    print(f"cached: {len(secs)} blocks in {total:.2f} s; block latency first {first * 1e3:.1f} ms, "
          f"last {last * 1e3:.1f} ms, ratio {last / first:.3f}; KV cache {sizes[steady[0]] / 2**20:.2f} MB after the "
          f"window fills, {sizes[-1] / 2**20:.2f} MB at the end")
    i_first, i_last = interleaved_latency(dit, cfg, d, frames, h, w, device, amp, max(1, min(20, len(steady) // 3)))
    print(f"interleaved (early and late blocks timed alternately): first {i_first * 1e3:.1f} ms, last "
          f"{i_last * 1e3:.1f} ms, ratio {i_last / i_first:.3f}")

    peer_blocks = steady if not args.quick else steady[:8]
    recompute_stream(dit, cfg, d, frames, h, w, device, amp, peer_blocks[:2])  # warm-up
    p = recompute_stream(dit, cfg, d, frames, h, w, device, amp, peer_blocks)
    peer_steady, cached_steady = median(p), median([secs[i] for i in peer_blocks])
    speedup = peer_steady / cached_steady
    print(f"peer, recompute the window: {len(p)} blocks, steady block {peer_steady * 1e3:.1f} ms vs cached "
          f"{cached_steady * 1e3:.1f} ms -> cache speed-up {speedup:.2f}x")
    last_blocks = steady[-1:]
    exact = median(recompute_stream(dit, cfg, d, frames, h, w, device, amp, last_blocks, full_prefix=True))
    exact_speedup = exact / last
    print(f"peer, recompute the whole prefix (the exact uncached equivalent) at latent frame {frames}: block "
          f"{exact * 1e3:.1f} ms vs cached {last * 1e3:.1f} ms -> cache speed-up {exact_speedup:.2f}x")

    lat_fps = frames / total
    out = {
        "config": name, "device": str(device), "threads": torch.get_num_threads(), "height": height, "width": width,
        "latent_frames": frames, "chunk_frames": cfg.chunk_frames, "local_attn_frames": cfg.local_attn_frames,
        "steps": cfg.num_steps, "first_block_ms": round(first * 1e3, 2), "last_block_ms": round(last * 1e3, 2),
        "latency_ratio": round(last / first, 3), "interleaved_first_block_ms": round(i_first * 1e3, 2),
        "interleaved_last_block_ms": round(i_last * 1e3, 2), "interleaved_latency_ratio": round(i_last / i_first, 3), "cache_mb_window_full": round(sizes[steady[0]] / 2**20, 3),
        "cache_mb_end": round(sizes[-1] / 2**20, 3), "recompute_window_block_ms": round(peer_steady * 1e3, 2),
        "cached_block_ms": round(cached_steady * 1e3, 2), "cache_speedup_vs_window": round(speedup, 2),
        "recompute_prefix_block_ms_at_end": round(exact * 1e3, 2), "cache_speedup_vs_prefix": round(exact_speedup, 2),
        "dit_latent_frames_per_s": round(lat_fps, 2), "dit_video_frames_per_s": round(4 * lat_fps, 2),
    }
    if not args.no_e2e:
        e2e_frames = min(frames, 21 if args.quick else 45)
        e = end_to_end(mc, dit, cfg, e2e_frames, height, width, device)
        e_first, e_last = median(e["secs"][2:5]), median(e["secs"][-3:])
        print(f"end to end (DiT + streamed VAE encode/decode): {e['frames']} video frames in {e['seconds']:.2f} s = "
              f"{e['frames'] / e['seconds']:.2f} frames/s; block {e_first * 1e3:.0f} ms early, {e_last * 1e3:.0f} ms late")
        out.update({"e2e_latent_frames": e2e_frames, "e2e_video_frames": e["frames"],
                    "e2e_video_frames_per_s": round(e["frames"] / e["seconds"], 2),
                    "e2e_block_ms_early": round(e_first * 1e3, 1), "e2e_block_ms_late": round(e_last * 1e3, 1)})
    if device.type == "cuda":
        out["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
