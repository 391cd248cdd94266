"""Wan 2.1 causal 3D VAE: 8x8 spatial and 4x temporal compression, 16 latent channels.

Shapes: video [B, 3, T, H, W] in [-1, 1], T = 1 + 4k, H and W multiples of 8  <->  latents
[B, 16, 1 + k, H/8, W/8]. Latent 0 encodes frame 0 alone; latent i >= 1 encodes frames 4i-3 ... 4i.

Causality. Every temporal operation looks only at the past:

- ``CausalConv3d`` with temporal kernel k pads k - 1 zero frames on the past side (none on the future side);
- temporal downsampling (encoder) passes frame 0 through and maps frames (2j-2, 2j-1, 2j) -> output j >= 1 by a
  stride-2 temporal conv: 1 + 2m frames -> 1 + m frames;
- temporal upsampling (decoder) passes frame 0 through and maps every later frame n to two frames with a causal
  temporal conv over frames 1, 2, ... (frame 0 excluded from its context): 1 + m frames -> 1 + 2m frames.

Streaming. Because of this, a video can be processed in chunks with a :class:`CausalCache` that carries, for each
temporal layer, the last input frames it still needs (2 for a kernel-3 conv, the pending window start for a
stride-2 conv, whether frame 0 was seen for the resamplers). The reference encodes chunks of 1, 4, 4, ... frames
and decodes one latent frame at a time; the result equals a single full causal pass (one chunk, fresh cache) up to
float round-off (tests/model/test_vae.py).

Module and parameter names follow Wan-Video/Wan2.1 wan/modules/vae.py so that with base_dim 96 the state_dict has
exactly the keys and shapes of the released ``Wan2.1_VAE.pth``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint
from .configs import VAEConfig


class CausalCache:
    """Per-layer temporal state carried from one chunk to the next during streaming encode/decode.

    A fresh cache means "nothing seen yet": processing a whole video as one chunk with a fresh cache is the full
    causal pass.
    """

    def __init__(self) -> None:
        self._state: dict[int, Any] = {}

    def get(self, layer: nn.Module) -> Any:
        return self._state.get(id(layer))

    def set(self, layer: nn.Module, value: Any) -> None:
        self._state[id(layer)] = value

    def __len__(self) -> int:
        return len(self._state)


def _triple(v: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class CausalConv3d(nn.Conv3d):
    """Conv3d whose temporal padding is all on the past side.

    ``padding=(p_t, p_h, p_w)`` is interpreted as the symmetric padding of an ordinary conv; causally this becomes
    2 p_t zero frames before the first frame and none after, so output frame t depends on input frames <= t.
    With a cache, the zero frames are replaced by the real last input frames of the previous chunk.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        pt, ph, pw = _triple(padding)
        self.time_pad = 2 * pt
        self.spatial_pad = (pw, pw, ph, ph)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:  # type: ignore[override]
        """x [B, C, T, H, W] -> [B, C', T', H', W']; ``cache`` continues a previous chunk."""
        if self.time_pad == 0:
            return super().forward(F.pad(x, self.spatial_pad))
        past = cache.get(self) if cache is not None else None
        if past is not None:
            x = torch.cat([past, x], dim=2)
        if cache is not None:
            cache.set(self, x[:, :, -self.time_pad :].clone())
        n_zero = self.time_pad - (0 if past is None else past.shape[2])
        return super().forward(F.pad(x, (*self.spatial_pad, n_zero, 0)))


class ChannelRMSNorm(nn.Module):
    """RMS norm over the channel axis (dim 1): y = x / ||x||_2 * sqrt(C) * gamma.

    gamma has shape [C, 1, 1, 1] for 5D video tensors (``images=False``) and [C, 1, 1] for 4D images.
    """

    def __init__(self, dim: int, images: bool) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


def _per_frame(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D map to every frame: [B, C, T, H, W] -> [B, C', T, H', W']."""
    b, _, t = x.shape[:3]
    y = fn(x.transpose(1, 2).flatten(0, 1))
    return y.unflatten(0, (b, t)).transpose(1, 2)


class _Upsample2x(nn.Module):
    """Nearest-neighbour 2x spatial upsampling of [N, C, H, W] (computed in float32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").type_as(x)


class Resample(nn.Module):
    """Spatial (and optionally temporal) 2x resampling.

    Modes:
        downsample2d: ZeroPad2d(0,1,0,1) + Conv2d(3, stride 2) per frame.
        downsample3d: the same, then the causal stride-2 temporal conv ``time_conv`` (kernel 3):
            out_0 = x_0, out_j = time_conv(x_{2j-2}, x_{2j-1}, x_{2j}).
        upsample2d: nearest 2x + Conv2d(C -> C/2, 3) per frame.
        upsample3d: first the temporal doubling ``time_conv`` (C -> 2C, causal kernel 3 over frames >= 1, the two
            channel halves interleaved as frames 2n-1, 2n), frame 0 passed through; then the spatial upsample.
    """

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode in ("upsample2d", "upsample3d"):
            self.resample = nn.Sequential(_Upsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        elif mode in ("downsample2d", "downsample3d"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        else:
            raise ValueError(f"unknown resample mode {mode!r}")
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, 2 * dim, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=0)

    def _temporal_upsample(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        first_seen = cache.get(self)
        cache.set(self, True)
        head = None if first_seen else x[:, :, :1]
        rest = x if first_seen else x[:, :, 1:]
        if rest.shape[2] == 0:
            return x
        y = self.time_conv(rest, cache)  # [B, 2C, n, H, W]
        b, c2, n, h, w = y.shape
        y = y.view(b, 2, c2 // 2, n, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c2 // 2, 2 * n, h, w)
        return y if head is None else torch.cat([head, y], dim=2)

    def _temporal_downsample(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        pending = cache.get(self)
        head = x[:, :, :1] if pending is None else None
        buf = x if pending is None else torch.cat([pending, x], dim=2)
        n = (buf.shape[2] - 1) // 2  # complete windows (2j, 2j+1, 2j+2)
        cache.set(self, buf[:, :, 2 * n :].clone())
        parts = [] if head is None else [head]
        if n > 0:
            parts.append(self.time_conv(buf[:, :, : 2 * n + 1]))
        return torch.cat(parts, dim=2)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        cache = CausalCache() if cache is None else cache
        if self.mode == "upsample3d":
            x = self._temporal_upsample(x, cache)
        x = _per_frame(self.resample, x)
        if self.mode == "downsample3d":
            x = self._temporal_downsample(x, cache)
        return x


class ResidualBlock(nn.Module):
    """x -> shortcut(x) + [RMS, SiLU, CausalConv3d(3), RMS, SiLU, Dropout, CausalConv3d(3)](x)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            ChannelRMSNorm(in_dim, images=False),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            ChannelRMSNorm(out_dim, images=False),
            nn.SiLU(),
            nn.Dropout(dropout),
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head spatial self-attention within each frame (no temporal mixing), residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = ChannelRMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).reshape(n, 3 * c, h * w).transpose(1, 2).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]  # [N, HW, C]
        return self.proj(y.transpose(1, 2).reshape(n, c, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + _per_frame(self._attend, x)


def _run(layer: nn.Module, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
    if isinstance(layer, (CausalConv3d, ResidualBlock, Resample)):
        return layer(x, cache)
    return layer(x)


class Encoder3d(nn.Module):
    """Video [B, 3, T, H, W] -> 2 * z_dim channels at [T', H/8, W/8] (mean and log-variance before ``conv1``)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        layers: list[nn.Module] = []
        scale = 1.0
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(d_in, d_out, cfg.dropout))
                if scale in cfg.attn_scales:
                    layers.append(AttentionBlock(d_out))
                d_in = d_out
            if i != len(cfg.dim_mult) - 1:
                layers.append(Resample(d_out, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"))
                scale /= 2.0
        self.downsamples = nn.Sequential(*layers)
        d = dims[-1]
        self.middle = nn.Sequential(ResidualBlock(d, d, cfg.dropout), AttentionBlock(d), ResidualBlock(d, d, cfg.dropout))
        self.head = nn.Sequential(ChannelRMSNorm(d, images=False), nn.SiLU(), CausalConv3d(d, 2 * cfg.z_dim, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        cache = CausalCache() if cache is None else cache
        x = self.conv1(x, cache)
        for layer in (*self.downsamples, *self.middle, *self.head):
            x = _run(layer, x, cache)
        return x


class Decoder3d(nn.Module):
    """Latents [B, z_dim, T', h, w] -> video [B, 3, 1 + 4 (T' - 1), 8h, 8w]."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        mult = cfg.dim_mult
        dims = [cfg.base_dim * m for m in (mult[-1], *mult[::-1])]
        temporal_upsample = cfg.temporal_downsample[::-1]
        scale = 1.0 / 2 ** (len(mult) - 2)
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        d = dims[0]
        self.middle = nn.Sequential(ResidualBlock(d, d, cfg.dropout), AttentionBlock(d), ResidualBlock(d, d, cfg.dropout))
        layers: list[nn.Module] = []
        d_in = dims[0]
        for i, d_out in enumerate(dims[1:]):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResidualBlock(d_in, d_out, cfg.dropout))
                if scale in cfg.attn_scales:
                    layers.append(AttentionBlock(d_out))
                d_in = d_out
            if i != len(mult) - 1:
                layers.append(Resample(d_out, "upsample3d" if temporal_upsample[i] else "upsample2d"))
                d_in = d_out // 2  # the upsampling conv halves the channels
                scale *= 2.0
        self.upsamples = nn.Sequential(*layers)
        self.head = nn.Sequential(ChannelRMSNorm(d_in, images=False), nn.SiLU(), CausalConv3d(d_in, 3, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        cache = CausalCache() if cache is None else cache
        x = self.conv1(x, cache)
        for layer in (*self.middle, *self.upsamples, *self.head):
            x = _run(layer, x, cache)
        return x


class WanVAE(nn.Module):
    """The Wan 2.1 video VAE with latent normalisation.

    ``encode`` returns normalised latents (mu - mean) / std, the space the DiT works in; ``decode`` inverts it.
    ``streaming=True`` (default) follows the reference: chunks of 1, 4, 4, ... frames to encode, one latent frame at
    a time to decode, with a causal feature cache (bounded memory); ``streaming=False`` does one full causal pass.
    """

    def __init__(self, cfg: VAEConfig | None = None) -> None:
        super().__init__()
        cfg = VAEConfig() if cfg is None else cfg
        if len(cfg.latent_mean) != cfg.z_dim or len(cfg.latent_std) != cfg.z_dim:
            raise ValueError(f"latent_mean and latent_std need {cfg.z_dim} values")
        self.cfg = cfg
        self.encoder = Encoder3d(cfg)
        self.conv1 = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, 1)
        self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
        self.decoder = Decoder3d(cfg)
        self.register_buffer("latent_mean", torch.empty(1, cfg.z_dim, 1, 1, 1), persistent=False)
        self.register_buffer("latent_std", torch.empty(1, cfg.z_dim, 1, 1, 1), persistent=False)
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """(Re)compute the non-persistent latent statistics on the parameters' device (after a meta-device load)."""
        device = self.conv1.weight.device
        self.latent_mean = torch.tensor(self.cfg.latent_mean, device=device).view(1, -1, 1, 1, 1)
        self.latent_std = torch.tensor(self.cfg.latent_std, device=device).view(1, -1, 1, 1, 1)

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], cfg: VAEConfig | None = None, device: str | torch.device = "cpu"
    ) -> "WanVAE":
        """Build on the meta device and load ``Wan2.1_VAE.pth`` (or a safetensors export) strictly."""
        with torch.device("meta"):
            vae = cls(cfg)
        load_checkpoint(vae, path, prefix=None)
        vae.reset_buffers()
        return vae.to(device)

    # -- latent normalisation -----------------------------------------------------------------------------------
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents -> (z - mean) / std."""
        return (z - self.latent_mean.to(z)) / self.latent_std.to(z)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> z * std + mean."""
        return z * self.latent_std.to(z) + self.latent_mean.to(z)

    # -- encoder ------------------------------------------------------------------------------------------------
    def _check_video(self, video: torch.Tensor) -> None:
        r, s = self.cfg.temporal_compression, self.cfg.spatial_compression
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be [B, 3, T, H, W], got {tuple(video.shape)}")
        t, h, w = video.shape[2:]
        if (t - 1) % r or h % s or w % s:
            raise ValueError(f"video [T={t}, H={h}, W={w}] needs T = 1 + {r}k and H, W multiples of {s}")

    def encode_moments(self, video: torch.Tensor, streaming: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of the raw latents, each [B, z_dim, 1 + (T-1)/4, H/8, W/8]."""
        self._check_video(video)
        if streaming:
            enc = StreamingEncoder(self)
            r = self.cfg.temporal_compression
            chunks = [video[:, :, :1]] + list(video[:, :, 1:].split(r, dim=2) if video.shape[2] > 1 else ())
            return _cat_moments([enc.push_moments(c) for c in chunks])
        h = self.encoder(video)
        mu, logvar = self.conv1(h).chunk(2, dim=1)
        return mu, logvar

    def encode(
        self,
        video: torch.Tensor,
        streaming: bool = True,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Video [B, 3, T, H, W] in [-1, 1] -> normalised latents (posterior mean, or a sample if ``sample``)."""
        mu, logvar = self.encode_moments(video, streaming)
        z = mu if not sample else mu + torch.exp(0.5 * logvar.clamp(-30.0, 20.0)) * _randn_like(mu, generator)
        return self.normalize(z)

    # -- decoder ------------------------------------------------------------------------------------------------
    def decode(self, latents: torch.Tensor, streaming: bool = True, normalized: bool = True) -> torch.Tensor:
        """Latents [B, z_dim, T', h, w] -> video [B, 3, 1 + 4 (T' - 1), 8h, 8w] (not clamped).

        ``normalized``: the latents are in the normalised space of :meth:`encode` (default) or raw.
        """
        if streaming:
            return StreamingDecoder(self, normalized=normalized).push(latents)
        z = self.denormalize(latents) if normalized else latents
        return self.decoder(self.conv2(z))

    def forward(
        self, video: torch.Tensor, sample_posterior: bool = True, streaming: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct for training: returns (reconstruction, mu, logvar) with raw-space posterior moments."""
        mu, logvar = self.encode_moments(video, streaming)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample_posterior else mu
        return self.decode(z, streaming=streaming, normalized=False), mu, logvar


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _cat_moments(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([p[0] for p in parts], dim=2), torch.cat([p[1] for p in parts], dim=2)


class StreamingEncoder:
    """Encode a video chunk by chunk: first 1 + 4a frames (a >= 0), then 4b frames per call (b >= 1).

    Each call returns the latents of the frames pushed so far that are complete: a chunk of 1 + 4a frames gives
    1 + a latents, a chunk of 4b frames gives b latents.
    """

    def __init__(self, vae: WanVAE) -> None:
        self.vae = vae
        self.cache = CausalCache()
        self.frames_seen = 0

    def push_moments(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames [B, 3, n, H, W] -> raw-latent (mu, logvar) for the new latent frames."""
        r = self.vae.cfg.temporal_compression
        n = frames.shape[2]
        first = self.frames_seen == 0
        if n == 0 or (first and (n - 1) % r) or (not first and n % r):
            raise ValueError(f"chunk of {n} frames: the first chunk needs 1 + {r}a frames, later chunks {r}b frames")
        self.frames_seen += n
        mu, logvar = self.vae.conv1(self.vae.encoder(frames, self.cache)).chunk(2, dim=1)
        return mu, logvar

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, n, H, W] -> normalised posterior-mean latents of the new latent frames."""
        return self.vae.normalize(self.push_moments(frames)[0])


class StreamingDecoder:
    """Decode latents chunk by chunk (e.g. 3 latent frames per generated block): the first call's first latent
    gives 1 frame, every other latent frame gives 4. Internally one latent frame at a time, as the reference."""

    def __init__(self, vae: WanVAE, normalized: bool = True) -> None:
        self.vae = vae
        self.normalized = normalized
        self.cache = CausalCache()

    def push(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, z_dim, n, h, w] -> frames [B, 3, n', 8h, 8w] (n' = 1 + 4(n-1) on the first call, else 4n)."""
        z = self.vae.denormalize(latents) if self.normalized else latents
        x = self.vae.conv2(z)
        return torch.cat([self.vae.decoder(x[:, :, i : i + 1], self.cache) for i in range(x.shape[2])], dim=2)
