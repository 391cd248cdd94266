"""A short VAE warm-up for small configs (``tiny``), so that generated latents decode to meaningful video.

Matrix-Game 2.0 uses the pretrained Wan 2.1 VAE; a toy-sized model has no pretrained VAE. When a run has no
``vae_checkpoint``, :func:`train_vae` fits the config's (tiny) Wan-architecture VAE to the dataset's clips:

    loss = || D(E_mu(v)) - v ||^2  +  || grad_x D(E_mu(v)) - grad_x v ||^2  +  || grad_y (...) - grad_y v ||^2

on random spatio-temporal crops v of ``crop_frames`` (1 + 4k) frames and ``crop_size`` pixels (the VAE is fully
convolutional, so crops train it for full frames at a fraction of the cost), Adam(W) with a short linear warm-up
then a constant rate, a fixed number of steps.

Initialisation matters more than anything else at this budget. With PyTorch's default conv init every layer
shrinks its input by about sqrt(3), so after the ~10 convolutions of the encoder -> decoder main path the output
hardly depends on the input and training sits for thousands of steps on the "predict the mean colour" plateau
(measured: still flat after 800 steps). :func:`init_for_training` makes the main path variance-preserving
(Kaiming-normal convolutions with gain 1, zero biases), the residual blocks identities (zero last conv, as
ResNet's zero-gamma) and the causal temporal resampling convolutions pass the newest frame through; from there
a few hundred steps give a blurry but faithful VAE (21-24 dB on the test world over seeds, motion preserved).
How long the plateau lasts still depends on the seed, so :func:`train_vae` checks the result and retries from a
fresh initialisation when the VAE has not left it.
Then :func:`latent_statistics` measures the per-channel mean and std of the posterior means over the clips and
stores them in the VAE config, so that ``encode`` returns roughly unit-variance latents, the scale the
flow-matching noise assumes (the full-size Wan VAE ships its own statistics).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .vae import ResidualBlock, Resample, WanVAE


@torch.no_grad()
def init_for_training(vae: WanVAE) -> WanVAE:
    """Re-initialise a VAE for training from scratch (see the module doc): Kaiming-normal (gain 1) convolutions
    with zero biases, zero-initialised last convolution of every residual branch, temporal resampling
    convolutions that copy the newest frame (upsampling: into both output frames), and the decoder's output
    convolution scaled by 0.1 (the first reconstructions are near 0 instead of large random images)."""
    for m in vae.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            if m.bias is not None:
                m.bias.zero_()
    for m in vae.modules():
        if isinstance(m, ResidualBlock):
            m.residual[-1].weight.zero_()
        if isinstance(m, Resample) and hasattr(m, "time_conv"):
            w = m.time_conv.weight  # [C_out, C, 3, 1, 1], taps ordered oldest -> newest
            w.zero_()
            c = w.shape[1]
            eye = torch.eye(c, dtype=w.dtype, device=w.device)
            for k in range(w.shape[0] // c):
                w[k * c : (k + 1) * c, :, -1, 0, 0] = eye
    vae.decoder.head[-1].weight.mul_(0.1)
    return vae


def _crop_batch(clips: torch.Tensor, batch: int, frames: int, size: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """Random crops of uint8 clips [N, T, 3, H, W] -> float video [B, 3, frames, h, w] in [-1, 1]."""
    n, t, _, h, w = clips.shape
    ch, cw = min(size[0], h), min(size[1], w)
    out = []
    for _ in range(batch):
        i = int(torch.randint(n, (1,), generator=g))
        t0 = int(torch.randint(t - frames + 1, (1,), generator=g))
        y0 = int(torch.randint(h - ch + 1, (1,), generator=g))
        x0 = int(torch.randint(w - cw + 1, (1,), generator=g))
        out.append(clips[i, t0 : t0 + frames, :, y0 : y0 + ch, x0 : x0 + cw])
    return torch.stack(out).permute(0, 2, 1, 3, 4).float().div(127.5).sub(1.0)


@dataclasses.dataclass
class VAEWarmup:
    """What :func:`train_vae` did: per-step MSE of the kept attempt, full-clip PSNR (dB) and explained variance
    R^2 of the reconstructions, and how many attempts (fresh initialisations) it took."""

    losses: list[float]
    psnr_db: float
    r2: float
    attempts: int


def train_vae(
    vae: WanVAE,
    clips: torch.Tensor,
    *,
    steps: int = 300,
    batch_size: int = 4,
    crop_frames: int = 5,
    crop_size: tuple[int, int] = (24, 24),
    lr: float = 1e-3,
    seed: int = 0,
    min_r2: float = 0.5,
    max_attempts: int = 3,
    progress: bool = True,
    run_log: Any = None,
) -> VAEWarmup:
    """Fit ``vae`` (in place, from :func:`init_for_training`) to uint8 clips [N, T, 3, H, W].

    The posterior mean is decoded (no sampling noise: faster convergence) and there is no KL term (only the
    posterior mean is ever used; :func:`latent_statistics` sets the latent scale). The image-gradient terms
    (finite differences along x and y) weight edges, which shortens the initial "mean colour" phase.

    Safeguard: whether and when training leaves that phase depends on the seed. If after ``steps`` the
    reconstructions of the first clips explain less than ``min_r2`` of their variance (R^2 = 1 - MSE / Var),
    the VAE is re-initialised with the next seed and trained again, up to ``max_attempts`` times (the best
    attempt is kept).

    ``run_log``: a :class:`model.run_log.RunLog`: the loss every 10 steps (``vae/*`` and ``vae_log.jsonl``, steps counted
    over all attempts) and, after each attempt, its PSNR, R^2 and reconstructions of the first clip (``vae/reconstruction``).
    """
    if (crop_frames - 1) % vae.cfg.temporal_compression:
        raise ValueError(f"crop_frames must be 1 + {vae.cfg.temporal_compression}k, got {crop_frames}")
    device = next(vae.parameters()).device
    eval_clips = clips[: min(4, len(clips))]
    best: tuple[float, dict, VAEWarmup] | None = None
    for attempt in range(1, max_attempts + 1):
        torch.manual_seed(seed + 1000 * (attempt - 1))
        g = torch.Generator().manual_seed(seed + 1000 * (attempt - 1))
        init_for_training(vae)
        vae.train().requires_grad_(True)
        opt = torch.optim.AdamW(vae.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
        losses: list[float] = []
        bar = tqdm(range(steps), desc=f"vae warm-up (attempt {attempt})" if attempt > 1 else "vae warm-up",
                   disable=not progress)
        for step in bar:
            v = _crop_batch(clips, batch_size, min(crop_frames, clips.shape[1]), crop_size, g).to(device)
            mu, _ = vae.encode_moments(v, streaming=False)
            rec = vae.decode(mu, streaming=False, normalized=False)
            mse = (rec - v).pow(2).mean()
            dx = (rec.diff(dim=-1) - v.diff(dim=-1)).pow(2).mean()
            dy = (rec.diff(dim=-2) - v.diff(dim=-2)).pow(2).mean()
            loss = mse + dx + dy
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(mse.detach()))
            if step % 10 == 0:
                bar.set_postfix(mse=f"{losses[-1]:.4f}")
                if run_log is not None:
                    run_log.scalars((attempt - 1) * steps + step, {"loss": float(loss.detach()), "mse": losses[-1],
                                                                    "attempt": attempt}, prefix="vae",
                                       jsonl="vae_log.jsonl")
        vae.eval().requires_grad_(False)
        psnr, r2 = reconstruction_quality(vae, eval_clips)
        if run_log is not None:
            at = attempt * steps
            run_log.scalars(at, {"psnr_db": psnr, "r2": r2, "attempt": attempt}, prefix="vae", jsonl="vae_log.jsonl")
            run_log.images(at, "vae/reconstruction", _reconstruction_strip(vae, eval_clips[:1]),
                           cols=eval_clips.shape[1])
        result = VAEWarmup(losses, psnr, r2, attempt)
        if best is None or r2 > best[0]:
            best = (r2, {k: v.detach().clone() for k, v in vae.state_dict().items()}, result)
        if r2 >= min_r2:
            break
    assert best is not None
    vae.load_state_dict(best[1])
    return best[2]


@torch.no_grad()
def latent_statistics(vae: WanVAE, clips: torch.Tensor, batch_size: int = 4) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the raw posterior means over uint8 clips [N, T, 3, H, W] (T = 1 + 4k)."""
    device = next(vae.parameters()).device
    mus = []
    for i in range(0, len(clips), batch_size):
        v = clips[i : i + batch_size].permute(0, 2, 1, 3, 4).float().div(127.5).sub(1.0).to(device)
        mus.append(vae.encode_moments(v, streaming=False)[0].transpose(0, 1).flatten(1).cpu())
    z = torch.cat(mus, dim=1).double()
    return z.mean(1).tolist(), z.std(1).clamp_min(1e-3).tolist()


def set_latent_statistics(vae: WanVAE, mean: Sequence[float], std: Sequence[float]) -> WanVAE:
    """Store latent statistics in ``vae.cfg`` (so they travel with the saved config) and its buffers."""
    vae.cfg = dataclasses.replace(vae.cfg, latent_mean=tuple(float(m) for m in mean), latent_std=tuple(float(s) for s in std))
    vae.reset_buffers()
    return vae


@torch.no_grad()
def _reconstruction_strip(vae: WanVAE, clip: torch.Tensor) -> np.ndarray:
    """uint8 [2T, H, W, 3]: a uint8 clip [1, T, 3, H, W] above its reconstruction."""
    v = clip.permute(0, 2, 1, 3, 4).float().div(127.5).sub(1.0).to(next(vae.parameters()).device)
    rec = vae.decode(vae.encode(v, streaming=False), streaming=False).clamp(-1, 1)
    real = clip[0].permute(0, 2, 3, 1).cpu().numpy()
    out = rec[0].add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()
    return np.concatenate([real, out])


def reconstruction_quality(vae: WanVAE, clips: torch.Tensor) -> tuple[float, float]:
    """(PSNR in dB with peak-to-peak 2 on [-1, 1], explained variance R^2) of full-clip reconstructions of uint8
    clips [N, T, 3, H, W] (T = 1 + 4k)."""
    with torch.no_grad():
        v = clips.permute(0, 2, 1, 3, 4).float().div(127.5).sub(1.0).to(next(vae.parameters()).device)
        rec = vae.decode(vae.encode(v, streaming=False), streaming=False).clamp(-1, 1)
        mse = float((rec - v).pow(2).mean())
        var = float(v.var())
    return float(10 * np.log10(4.0 / max(mse, 1e-12))), 1.0 - mse / max(var, 1e-12)
