"""Wan 2.1 image-to-video DiT with Matrix-Game 2.0 action modules (the flow-matching denoiser).

Input assembly (image-to-video): the noisy latent z_t [B, 16, F, H, W] is concatenated along channels with
the conditioning of :func:`i2v_condition` = [mask (4) ; first-frame latent (16)] -> 36 channels, and
patchified by a Conv3d with kernel = stride = (1, 2, 2) into L = F * (H/2) * (W/2) tokens of width C,
frame-major. There is no text: the context tokens are ``img_emb(CLIP tokens)`` [B, 257, C].

Time conditioning is per latent frame (diffusion forcing / causal students give each frame its own t):

    e   = MLP(sinusoid(t))                      [B, F, C]      time_embedding: Lin -> SiLU -> Lin
    e0  = Lin(SiLU(e)) reshaped                 [B, F, 6, C]   time_projection
    (shift1, scale1, gate1, shift2, scale2, gate2) = blocks.N.modulation [1, 6, C] + e0   (per frame)

Block (adaLN-style, every op broadcast per frame):

    x <- x + gate1 * SelfAttn(LN(x) * (1 + scale1) + shift1)      q/k RMSNorm, 3D RoPE, optional frame mask
    x <- x + CrossAttn(LN_affine(x), context)                     q/k RMSNorm, no RoPE
    x <- ActionModule(x)                                          only in the configured blocks
    x <- x + gate2 * FFN(LN(x) * (1 + scale2) + shift2)           Lin -> GELU(tanh) -> Lin

Head: y = Lin(LN(x) * (1 + scale) + shift) with (shift, scale) = head.modulation [1, 2, C] + e, then
unpatchify to [B, 16, F, H, W]. The output is the flow-matching prediction (velocity v = noise - x0).

Hooks for the causal student (a later issue): ``frame_mask`` (bool [F, F], e.g.
:func:`model.attention.block_causal_frame_mask`) restricts every attention in time, and ``frame_offset`` shifts
the RoPE time positions and the action windows, so a chunk can be processed at its absolute position.

State-dict keys and shapes match the released Matrix-Game 2.0 checkpoints exactly (see tests/model).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .action_module import ActionModule
from .attention import attention, expand_frame_mask
from .checkpoint import MG2_DISTILLED_PREFIX, load_checkpoint
from .configs import DiTConfig
from .norms import RMSNorm
from .rope import apply_rotary, video_rope_angles


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Wan's timestep embedding, cosines first: [cos(t w_j), sin(t w_j)], w_j = 10000^(-j / (dim/2)).

    Args:
        t: timesteps [N] (any real values, e.g. 0..1000).
        dim: even embedding width.

    Returns:
        float64 tensor [N, dim].
    """
    if dim % 2:
        raise ValueError(f"timestep embedding width must be even, got {dim}")
    half = dim // 2
    pos = t.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    args = torch.outer(pos, freqs)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def i2v_condition(image_latents: torch.Tensor, temporal_compression: int = 4) -> torch.Tensor:
    """Image-to-video conditioning ``cond_concat`` = [mask ; image latents] along channels.

    Args:
        image_latents: normalised VAE latents [B, 16, F, H, W] of the video [first frame, zeros x r(F-1)]
            (so latent 0 holds the first frame).
        temporal_compression: r, the raw frames per latent frame; it is also the number of mask channels
            (one per raw frame folded into a latent frame).

    Returns:
        [B, r + 16, F, H, W]: mask channels are 1 on latent frame 0 and 0 elsewhere.
    """
    b, _, f, h, w = image_latents.shape
    mask = torch.zeros(b, temporal_compression, f, h, w, dtype=image_latents.dtype, device=image_latents.device)
    mask[:, :, 0] = 1
    return torch.cat([mask, image_latents], dim=1)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, num_frames: int) -> torch.Tensor:
    """x * (1 + scale) + shift with per-frame (shift, scale) [B, F, 1, C] on tokens [B, F*S, C]."""
    xf = x.unflatten(1, (num_frames, -1))
    return (xf * (1 + scale) + shift).flatten(1, 2)


def _gate(y: torch.Tensor, gate: torch.Tensor, num_frames: int) -> torch.Tensor:
    """y * gate with per-frame gate [B, F, 1, C] on tokens [B, F*S, C]."""
    return (y.unflatten(1, (num_frames, -1)) * gate).flatten(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention with q/k RMSNorm (over the full width) and 3D RoPE."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def qkv(self, x: torch.Tensor, rope_angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rotated q, k and v, each [B, L, H, Dh] (the part a KV cache will store)."""
        q = self.norm_q(self.q(x)).unflatten(-1, (self.num_heads, -1))
        k = self.norm_k(self.k(x)).unflatten(-1, (self.num_heads, -1))
        v = self.v(x).unflatten(-1, (self.num_heads, -1))
        return apply_rotary(q, rope_angles), apply_rotary(k, rope_angles), v

    def forward(
        self, x: torch.Tensor, rope_angles: torch.Tensor, mask: torch.Tensor | None = None, kv: Any = None
    ) -> torch.Tensor:
        """x [B, L, C], rope_angles [L, Dh/2], mask bool [L, L] or None -> [B, L, C].

        ``kv``: a per-block KV-cache hook (:class:`model.causal.LayerKVView`); it attends over its cached frames
        plus these tokens (``mask`` is then unused)."""
        q, k, v = self.qkv(x, rope_angles)
        out = attention(q, k, v, mask) if kv is None else kv.attend("self", q, k, v)
        return self.o(out.flatten(2))


class CrossAttention(nn.Module):
    """Multi-head cross-attention from video tokens to image-context tokens (Wan's i2v cross-attention)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the context tokens, each [B, Lc, H, Dh] (what a KV cache computes once)."""
        k = self.norm_k(self.k(context)).unflatten(-1, (self.num_heads, -1))
        v = self.v(context).unflatten(-1, (self.num_heads, -1))
        return k, v

    def forward(self, x: torch.Tensor, context: torch.Tensor, kv: Any = None) -> torch.Tensor:
        """x [B, L, C], context [B, Lc, C] -> [B, L, C]. ``kv``: optional per-block cache of the context k/v."""
        q = self.norm_q(self.q(x)).unflatten(-1, (self.num_heads, -1))
        k, v = self.context_kv(context) if kv is None else kv.cross_kv(self, context)
        return self.o(attention(q, k, v).flatten(2))


class DiTBlock(nn.Module):
    """One Wan attention block with per-frame adaLN modulation and an optional action module."""

    def __init__(self, cfg: DiTConfig, with_action: bool) -> None:
        super().__init__()
        dim = cfg.dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(dim, cfg.num_heads, cfg.qk_norm, cfg.eps)
        self.norm3 = nn.LayerNorm(dim, eps=cfg.eps) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(dim, cfg.num_heads, cfg.qk_norm, cfg.eps)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        self.action_model = ActionModule(cfg.action, dim) if with_action and cfg.action is not None else None

    def forward(
        self,
        x: torch.Tensor,
        e: torch.Tensor,
        grid: tuple[int, int, int],
        context: torch.Tensor,
        rope_angles: torch.Tensor,
        keyboard: torch.Tensor | None = None,
        mouse: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        token_mask: torch.Tensor | None = None,
        frame_offset: int = 0,
        kv: Any = None,
    ) -> torch.Tensor:
        """
        Args:
            x: tokens [B, L, C], L = F * S.
            e: per-frame modulation [B, F, 6, C] (time_projection output).
            grid: (F, H, W) token grid.
            context: image tokens [B, Lc, C].
            rope_angles: [L, Dh/2] self-attention RoPE angles.
            keyboard / mouse: per raw frame actions or None.
            frame_mask: bool [F, F] or None; token_mask: the same expanded to [L, L] (or None).
            frame_offset: absolute index of the first latent frame.
            kv: this block's KV-cache hook (:class:`model.causal.LayerKVView`) or None; with a cache every attention in
                time runs over the cached frames plus these (the masks are unused).
        """
        f = grid[0]
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation.unsqueeze(1) + e).chunk(6, dim=2)
        y = self.self_attn(_modulate(self.norm1(x), shift1, scale1, f), rope_angles, token_mask, kv)
        x = x + _gate(y, gate1, f)
        x = x + self.cross_attn(self.norm3(x), context, kv)
        if self.action_model is not None:
            x = self.action_model(x, grid, keyboard, mouse, frame_mask, frame_offset, kv)
        y = self.ffn(_modulate(self.norm2(x), shift2, scale2, f))
        return x + _gate(y, gate2, f)


class Head(nn.Module):
    """Output head: modulated LayerNorm then Linear to prod(patch) * out_dim channels per token."""

    def __init__(self, dim: int, out_dim: int, patch_size: tuple[int, int, int], eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = nn.Linear(dim, math.prod(patch_size) * out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x [B, L, C], e per-frame time embedding [B, F, 1, C] -> [B, L, prod(patch) * out_dim]."""
        shift, scale = (self.modulation.unsqueeze(1) + e).chunk(2, dim=2)
        return self.head(_modulate(self.norm(x), shift, scale, num_frames))


class MLPProj(nn.Module):
    """Image-token projection: LayerNorm -> Linear -> GELU -> Linear -> LayerNorm (``img_emb.proj``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim)
        )

    def forward(self, image_tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(image_tokens)


class WorldModelDiT(nn.Module):
    """The action-conditioned image-to-video DiT (Matrix-Game 2.0's ``CausalWanModel`` parameters).

    Args:
        cfg: :class:`~model.configs.DiTConfig`.
    """

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.dim % cfg.num_heads or (cfg.dim // cfg.num_heads) % 2:
            raise ValueError("dim must split into heads of even width")
        self.patch_embedding = nn.Conv3d(cfg.in_dim, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 6 * cfg.dim))
        action_blocks = set(cfg.action.blocks) if cfg.action is not None else set()
        self.blocks = nn.ModuleList(DiTBlock(cfg, i in action_blocks) for i in range(cfg.num_layers))
        self.head = Head(cfg.dim, cfg.out_dim, cfg.patch_size, cfg.eps)
        self.img_emb = MLPProj(cfg.image_dim, cfg.dim)
        self.gradient_checkpointing = False
        self.init_weights()

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        cfg: DiTConfig,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> "WorldModelDiT":
        """Build on the meta device and load a Matrix-Game 2.0 checkpoint strictly ("model." prefix stripped).

        Raises :class:`~model.checkpoint.CheckpointMismatchError` (missing / unexpected / mis-shaped keys) when
        the file does not fit ``cfg`` (for example a templerun checkpoint with a universal config).
        """
        with torch.device("meta"):
            model = cls(cfg)
        load_checkpoint(model, path, prefix=MG2_DISTILLED_PREFIX)
        return model.to(device=device, dtype=dtype)

    def init_weights(self) -> None:
        """Wan's initialisation: Xavier-uniform linears (zero bias), N(0, 0.02) time MLP, zero output head
        and zero action output projections (a fresh model predicts 0, fresh action modules are identities)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.patch_embedding.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for m in self.time_embedding.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)
        for block in self.blocks:
            if block.action_model is not None:
                block.action_model.zero_init_output()

    def _check_inputs(
        self, x: torch.Tensor, cond: torch.Tensor | None, keyboard: torch.Tensor | None, mouse: torch.Tensor | None
    ) -> None:
        cfg = self.cfg
        n_in = x.shape[1] + (0 if cond is None else cond.shape[1])
        if n_in != cfg.in_dim:
            raise ValueError(
                f"latent ({x.shape[1]} ch) + cond ({0 if cond is None else cond.shape[1]} ch) = {n_in} channels; "
                f"the DiT expects in_dim={cfg.in_dim}"
            )
        pt, ph, pw = cfg.patch_size
        if x.shape[2] % pt or x.shape[3] % ph or x.shape[4] % pw:
            raise ValueError(f"latent grid {tuple(x.shape[2:])} is not divisible by patch size {cfg.patch_size}")
        act = cfg.action
        if act is None:
            if keyboard is not None or mouse is not None:
                raise ValueError("this DiT has no action modules (action=None); pass keyboard=None, mouse=None")
            return
        if keyboard is not None and keyboard.shape[-1] != act.keyboard_dim:
            raise ValueError(f"keyboard has {keyboard.shape[-1]} channels; this model expects {act.keyboard_dim}")
        if mouse is not None and act.mouse_dim == 0:
            raise ValueError("this model has no mouse input (mouse_dim=0); pass mouse=None")
        if mouse is not None and mouse.shape[-1] != act.mouse_dim:
            raise ValueError(f"mouse has {mouse.shape[-1]} channels; this model expects {act.mouse_dim}")

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """[B, F*H*W, pt*ph*pw*C] (channel-last within a patch) -> [B, C, F*pt, H*ph, W*pw]."""
        b = x.shape[0]
        f, h, w = grid
        pt, ph, pw = self.cfg.patch_size
        c = self.cfg.out_dim
        x = x.view(b, f, h, w, pt, ph, pw, c)
        x = torch.einsum("bfhwpqrc->bcfphqwr", x)
        return x.reshape(b, c, f * pt, h * ph, w * pw)

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        image_tokens: torch.Tensor,
        cond: torch.Tensor | None = None,
        keyboard: torch.Tensor | None = None,
        mouse: torch.Tensor | None = None,
        *,
        frame_mask: torch.Tensor | None = None,
        frame_offset: int = 0,
        kv_cache: Any = None,
    ) -> torch.Tensor:
        """Predict the flow (velocity) for noisy latents.

        Args:
            x: noisy latents [B, out_dim, F, H, W].
            timestep: [B] (one t per sample) or [B, F] (one t per latent frame), in [0, 1000].
            image_tokens: image-encoder tokens [B, Lc, image_dim] (CLIP: [B, 257, 1280]).
            cond: i2v conditioning [B, in_dim - out_dim, F, H, W] (:func:`i2v_condition`).
            keyboard: [B, N, K] per raw frame, N = 1 + 4 (frame_offset + F - 1); None skips the branch.
            mouse: [B, N, 2] per raw frame; None skips the branch.
            frame_mask: optional bool [F, F] restricting attention in time (True = attend); None = full.
            frame_offset: absolute index of the first latent frame (RoPE and action windows).
            kv_cache: a :class:`model.causal.KVCache` (streaming a causal student): ``x`` is one block at
                ``frame_offset`` and attends to the cached earlier frames; ``frame_mask`` must be None; the actions
                hold raw rows ``kv_cache.action_row_offset ...`` (see :meth:`model.causal.KVCache.action_rows`).

        Returns:
            [B, out_dim, F, H, W].
        """
        self._check_inputs(x, cond, keyboard, mouse)
        b = x.shape[0]
        if cond is not None:
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        x = self.patch_embedding(x)  # [B, C, F, H', W']
        grid = (x.shape[2], x.shape[3], x.shape[4])
        x = x.flatten(2).transpose(1, 2)  # [B, L, C]

        if timestep.ndim == 1:
            timestep = timestep[:, None].expand(b, grid[0])
        if timestep.shape != (b, grid[0]):
            raise ValueError(f"timestep must be [B] or [B, F] = [{b}, {grid[0]}], got {tuple(timestep.shape)}")
        e = self.time_embedding(sinusoidal_embedding(timestep.flatten(), self.cfg.freq_dim).to(x.dtype))  # [B*F, C]
        e0 = self.time_projection(e).unflatten(1, (6, self.cfg.dim)).unflatten(0, (b, grid[0]))  # [B, F, 6, C]
        context = self.img_emb(image_tokens.to(x.dtype))

        rope_angles = video_rope_angles(grid, self.cfg.head_dim, self.cfg.rope_theta, frame_offset, device=x.device)
        s = grid[1] * grid[2]
        if kv_cache is not None:
            if frame_mask is not None:
                raise ValueError("frame_mask must be None with a kv_cache (the cache decides what each block sees)")
            kv_cache.begin(frame_offset, grid[0], s, b)
        token_mask = None if frame_mask is None else expand_frame_mask(frame_mask, s, s)
        for i, block in enumerate(self.blocks):
            kv = None if kv_cache is None else kv_cache.layer(i)
            args = (x, e0, grid, context, rope_angles, keyboard, mouse, frame_mask, token_mask, frame_offset, kv)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, *args, use_reentrant=False)
            else:
                x = block(*args)

        x = self.head(x, e.unflatten(0, (b, grid[0])).unsqueeze(2), grid[0])
        return self.unpatchify(x, grid)
