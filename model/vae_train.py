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
a few hundred steps give a blurry but faithful VAE (21-23 dB on the test world over seeds, motion preserved;
without the warm-up of the learning rate the plateau's length varies more from seed to seed).
Then :func:`latent_statistics` measures the per-channel mean and std of the posterior means over the clips and
stores them in the VAE config, so that ``encode`` returns roughly unit-variance latents, the scale the
flow-matching noise assumes (the full-size Wan VAE ships its own statistics).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

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


def train_vae(
    vae: WanVAE,
    clips: torch.Tensor,
    *,
    steps: int = 300,
    batch_size: int = 4,
    crop_frames: int = 5,
    crop_size: tuple[int, int] = (32, 32),
    lr: float = 2e-3,
    warmup_steps: int = 50,
    seed: int = 0,
    init: bool = True,
    progress: bool = True,
) -> list[float]:
    """Fit ``vae`` (in place) to uint8 clips [N, T, 3, H, W]; returns the per-step reconstruction MSE.

    ``init``: start from :func:`init_for_training` (True for a fresh VAE; False to continue a trained one).
    The posterior mean is decoded (no sampling noise: faster convergence) and there is no KL term (only the
    posterior mean is ever used; :func:`latent_statistics` sets the latent scale). The image-gradient terms
    (finite differences along x and y) weight edges, which shortens the initial "mean colour" phase.
    """
    if (crop_frames - 1) % vae.cfg.temporal_compression:
        raise ValueError(f"crop_frames must be 1 + {vae.cfg.temporal_compression}k, got {crop_frames}")
    device = next(vae.parameters()).device
    g = torch.Generator().manual_seed(seed)
    if init:
        init_for_training(vae)
    vae.train().requires_grad_(True)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
    losses: list[float] = []
    bar = tqdm(range(steps), desc="vae warm-up", disable=not progress)
    for step in bar:
        for group in opt.param_groups:  # linear warm-up, then constant
            group["lr"] = lr * min(1.0, (step + 1) / max(1, warmup_steps))
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
    vae.eval().requires_grad_(False)
    return losses


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


def reconstruction_psnr(vae: WanVAE, clips: torch.Tensor) -> float:
    """PSNR (dB, peak-to-peak 2 on [-1, 1]) of full-clip reconstructions of uint8 clips [N, T, 3, H, W]."""
    with torch.no_grad():
        v = clips.permute(0, 2, 1, 3, 4).float().div(127.5).sub(1.0).to(next(vae.parameters()).device)
        rec = vae.decode(vae.encode(v, streaming=False), streaming=False).clamp(-1, 1)
        mse = float((rec - v).pow(2).mean())
    return float(10 * np.log10(4.0 / max(mse, 1e-12)))
