"""Base-training throughput: the training step of model/train.py, against peers in the same run.

    python bench/train.py [--quick] [--threads N]     (--threads defaults to 1)

CPU (always), the ``tiny`` preset (17 frames at 64x112, batch 8), one optimizer step = flow-matching loss
forward + backward + AdamW + EMA, exactly :func:`model.train.flow_matching_loss` as ``train`` runs it:

1. cached latents (the default: ``cache_latents: true``) - the step alone;
2. peer: pixels - the same step plus the VAE encode of the clip and of the first frame (+ image encoder) that
   a run without the latent cache does every step -> the speed-up the cache buys;
3. peer: cached latents with gradient checkpointing on -> the recompute overhead (on at full size to fit memory).

CUDA (when available): ``mg2-1.3b`` (the 1.3B foundation layout) at 352x640, 57 frames (latents
[16, 15, 44, 80], 13,200 tokens), batch 1, bf16 autocast: samples/s and peak memory with gradient
checkpointing on, and off (reported as OOM if it does not fit). Skipped with a message on CPU.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import model  # noqa: E402
from model.conditions import build_condition_spec  # noqa: E402
from model.dit import i2v_condition  # noqa: E402
from model.latents import encode_clips  # noqa: E402
from model.train import Inputs, flow_matching_loss, get_train_config, sample_generators  # noqa: E402

KEYS = ("w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb")


def make_batch(cfg, mcfg, batch: int, device: torch.device, g: torch.Generator) -> dict:
    """A synthetic reader batch: uint8 frames [B, T, 3, H, W], keyboard [B, T, 9], mouse [B, T, 2]."""
    t = cfg.num_frames
    return {
        "frames": torch.randint(0, 256, (batch, t, 3, cfg.height, cfg.width), generator=g, dtype=torch.uint8),
        "keyboard": torch.randint(0, 2, (batch, t, len(KEYS)), generator=g, dtype=torch.uint8),
        "mouse": torch.randn(batch, t, 2, generator=g) * 2.0,
    }


def timed_steps(cfg, mcfg, device, *, pixels: bool, ckpt: bool, steps: int, warmup: int, amp, vae=None, enc=None) -> dict:
    """Run ``warmup + steps`` optimizer steps; return samples/s and peak memory."""
    torch.manual_seed(0)
    dit = model.build_dit(mcfg, device)
    dit.gradient_checkpointing = ckpt
    params = [p for p in dit.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, fused=device.type == "cuda")
    ema = {k: v.detach().clone().float() for k, v in dit.state_dict().items()}
    spec = build_condition_spec(cfg.mode, KEYS, num_frames=cfg.num_frames, height=cfg.height, width=cfg.width,
                                mouse_scale=0.05)
    g = torch.Generator().manual_seed(0)
    batch = make_batch(cfg, mcfg, cfg.batch_size, device, g)
    r = mcfg.vae.temporal_compression
    f = 1 + (cfg.num_frames - 1) // r
    h, w = cfg.height // 8, cfg.width // 8
    cached = None
    if not pixels:  # what the latent cache hands the step
        cached = (torch.randn(cfg.batch_size, 16, f, h, w, device=device), torch.randn(cfg.batch_size, 16, f, h, w, device=device),
                  torch.randn(cfg.batch_size, mcfg.image_encoder.num_tokens, mcfg.image_encoder.dim, device=device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        if pixels:
            x0, cond_lat, tokens = encode_clips(vae, enc, batch["frames"].to(device), streaming=device.type == "cuda", autocast_dtype=amp)
        else:
            x0, cond_lat, tokens = cached
        mouse = spec.mouse(batch["mouse"])
        inp = Inputs(x0, i2v_condition(cond_lat, r), tokens, spec.keyboard(batch["keyboard"]).to(device),
                     None if mouse is None else mouse.to(device), [])
        loss = flow_matching_loss(dit, inp, cfg.timestep_shift, sample_generators(0, i, range(cfg.batch_size)), amp)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for k, v in dit.state_dict().items():
                ema[k].lerp_(v.float(), 1.0 - cfg.ema_decay)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    out = {"samples_per_s": cfg.batch_size * steps / dt, "step_s": dt / steps}
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few steps (under a minute on 2 cores)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads for torch (default 1: on a shared 2-core machine two OpenMP threads that wait "
                         "for each other are many times slower than one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    steps, warmup = (8, 2) if args.quick else (40, 5)

    cpu = torch.device("cpu")
    cfg = get_train_config("tiny")
    mcfg = model.get_config(cfg.model, cfg.mode)
    torch.manual_seed(0)
    vae = model.build_vae(mcfg).eval().requires_grad_(False)
    enc = model.build_image_encoder(mcfg).eval().requires_grad_(False)
    rows = []
    cached = timed_steps(cfg, mcfg, cpu, pixels=False, ckpt=False, steps=steps, warmup=warmup, amp=None)
    rows.append(("tiny, cached latents (train default)", cached))
    pix = timed_steps(cfg, mcfg, cpu, pixels=True, ckpt=False, steps=max(2, steps // 4), warmup=1, amp=None, vae=vae, enc=enc)
    rows.append(("tiny, pixels (VAE encode every step)", pix))
    ck = timed_steps(cfg, mcfg, cpu, pixels=False, ckpt=True, steps=steps, warmup=warmup, amp=None)
    rows.append(("tiny, cached latents + grad checkpointing", ck))

    result: dict = {
        "bench": "train",
        "device": "cpu",
        "threads": args.threads,
        "tiny_batch": cfg.batch_size,
        "tiny_cached_samples_per_s": round(cached["samples_per_s"], 2),
        "tiny_pixels_samples_per_s": round(pix["samples_per_s"], 2),
        "latent_cache_speedup": round(cached["samples_per_s"] / pix["samples_per_s"], 2),
        "tiny_grad_ckpt_samples_per_s": round(ck["samples_per_s"], 2),
        "grad_ckpt_slowdown": round(cached["samples_per_s"] / ck["samples_per_s"], 3),
        "mg2_1p3b": None,
    }

    cuda_rows = []
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        big = get_train_config("mg2-1.3b", batch_size=1)
        bcfg = model.get_config(big.model, big.mode)
        figs = {}
        for ckpt in (True, False):
            try:
                r = timed_steps(big, bcfg, dev, pixels=False, ckpt=ckpt, steps=3 if args.quick else 10, warmup=1,
                                amp=torch.bfloat16)
                cuda_rows.append((f"mg2-1.3b 352x640x57, bf16, grad ckpt {'on' if ckpt else 'off'}", r))
                figs["ckpt" if ckpt else "no_ckpt"] = {k: round(v, 3) for k, v in r.items()}
            except torch.OutOfMemoryError:
                cuda_rows.append((f"mg2-1.3b 352x640x57, bf16, grad ckpt {'on' if ckpt else 'off'}", {"oom": True}))
                figs["ckpt" if ckpt else "no_ckpt"] = "oom"
            torch.cuda.empty_cache()
        result["mg2_1p3b"] = {"gpu": torch.cuda.get_device_name(dev), **figs}
        result["device"] = "cpu+cuda"

    print(f"training step throughput (forward + backward + AdamW + EMA), {args.threads} CPU thread(s)")
    print(f"{'configuration':<48} {'samples/s':>10} {'s/step':>8} {'peak GiB':>9}")
    for name, r in rows + cuda_rows:
        if r.get("oom"):
            print(f"{name:<48} {'OOM':>10}")
            continue
        peak = f"{r['peak_gib']:.1f}" if "peak_gib" in r else "-"
        print(f"{name:<48} {r['samples_per_s']:>10.2f} {r['step_s']:>8.3f} {peak:>9}")
    print(f"latent cache speed-up (cached vs pixels): {result['latent_cache_speedup']:.2f}x; "
          f"gradient checkpointing costs {100 * (result['grad_ckpt_slowdown'] - 1):.1f} % on tiny")
    if not torch.cuda.is_available():
        print("mg2-1.3b at 352x640, 57 frames: skipped (no CUDA device; run this on a GPU for samples/s and peak memory)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
