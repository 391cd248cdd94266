"""Matrix-Game 2.0 action module: frame-level keyboard and mouse conditioning inside a DiT block.

Actions are given per *raw video frame*: keyboard [B, N, K] and mouse [B, N, 2] (d_pitch, d_yaw), with
N = 1 + r (T_total - 1) raw frames for T_total latent frames (r = 4, the VAE's temporal compression).

Action windows. Latent frame i (absolute index) sees the r * w = 12 raw rows i*r - 12 ... i*r - 1, where rows
before the clip start repeat row 0 (the reference left-pads the sequence with 12 copies of its first row).
Latent 0 thus sees 12 copies of row 0; latent 1 sees 8 copies of row 0 then rows 0..3.

Mouse branch (per spatial location s of the latent grid, sequence over time):

    m_i   = window_i(mouse)                              [12 * 2]
    h_i,s = MLP([x_i,s ; m_i])                            Lin(C + 24, Cm) -> GELU(tanh) -> Lin -> LayerNorm
    q,k,v = split(t_qkv(h)) into 16 heads, q,k <- RMS(q), RMS(k)  (no weight, as the reference)
    q,k  <- temporal RoPE(position = latent frame index), first 8 of 64 channels, theta 256
    x    <- x + proj_mouse(attention over time at each s)         (zero-initialised projection)

Keyboard branch (a cross-attention from every video token to one key/value token per latent frame):

    e_n   = keyboard_embed(keyboard_n)                   Lin(K, 128) -> SiLU -> Lin(128, 128), per raw frame
    c_j   = window_j(e)                                  [12 * 128]
    k,v   = split(keyboard_attn_kv(c_j)),  q = mouse_attn_q(x) (after the mouse residual)
    q,k  <- RMS, temporal RoPE (q at its token's frame, k at frame j)
    x    <- x + proj_keyboard(attention over frames)      (zero-initialised projection)

Both attentions take an optional frame mask [T, T] (block-causal for the student; None = bidirectional) and a
``frame_offset`` for RoPE and window positions: with ``frame_offset`` = o the call covers latent frames
o ... o + T - 1 and the actions must cover latent frames 0 ... o + T - 1 (the hook for a KV cache).

Reference bug fixed here: in the reference's non-cached path the per-frame mouse windows are expanded with
``num_frame_per_block`` instead of the number of latent frames, which breaks bidirectional training whenever
T != num_frame_per_block. Here nothing depends on ``num_frame_per_block``; any T works.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .attention import attention, expand_frame_mask
from .configs import ActionConfig
from .norms import RMSNorm
from .rope import apply_rotary, temporal_rope_angles


def action_windows(
    actions: torch.Tensor, num_frames: int, frame_offset: int, ratio: int, window: int, row_offset: int = 0
) -> torch.Tensor:
    """Per-latent-frame windows of raw action rows.

    Args:
        actions: [B, N, C] per raw frame: raw rows row_offset ... row_offset + N - 1 with
            row_offset + N = 1 + ratio * (frame_offset + num_frames - 1).
        num_frames: latent frames T covered by this call.
        frame_offset: absolute index of the first of them.
        ratio: raw frames per latent frame (4); window: latent frames of history (3).
        row_offset: the raw row that ``actions[:, 0]`` holds (0 = the whole history; a KV-cached stream passes
            only the rows its windows need, row_offset <= max(0, ratio * (frame_offset - window))).

    Returns:
        [B, T, ratio * window * C]: row block j of frame i is raw row clamp(i*ratio - ratio*window + j, min=0),
        flattened row-major (row, channel) as the reference does.
    """
    b, n, c = actions.shape
    total = frame_offset + num_frames
    rows = ratio * window
    if (n + row_offset - 1) % ratio != 0 or (n + row_offset - 1) // ratio + 1 != total:
        rows_from = f" from raw row {row_offset}" if row_offset else ""
        minus = f" - {row_offset}" if row_offset else ""
        raise ValueError(
            f"actions have {n} raw frames{rows_from}; expected 1 + {ratio} * ({total} - 1){minus} = "
            f"{1 + ratio * (total - 1) - row_offset} for latent frames 0..{total - 1} "
            f"(frame_offset={frame_offset}, latent frames in call={num_frames})"
        )
    if row_offset < 0 or row_offset > max(0, ratio * frame_offset - rows):
        raise ValueError(f"row_offset {row_offset} drops rows that latent frame {frame_offset}'s window needs "
                         f"(allowed 0..{max(0, ratio * frame_offset - rows)})")
    start = (torch.arange(frame_offset, total, device=actions.device) * ratio - rows)[:, None]  # [T, 1]
    idx = (start + torch.arange(rows, device=actions.device)[None, :]).clamp(min=0) - row_offset  # [T, rows]
    return actions[:, idx.reshape(-1)].reshape(b, num_frames, rows * c)


class ActionModule(nn.Module):
    """Keyboard + mouse injection for one DiT block; parameter names follow the released checkpoints.

    Args:
        cfg: action config (widths, heads, windows, RoPE).
        dim: the DiT hidden width C (1536).
    """

    def __init__(self, cfg: ActionConfig, dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim = dim
        self.num_heads = cfg.num_heads
        rows = cfg.window_rows
        self.enable_mouse = cfg.mouse_dim > 0
        self.enable_keyboard = cfg.keyboard_dim > 0

        if self.enable_keyboard:
            self.keyboard_embed = nn.Sequential(
                nn.Linear(cfg.keyboard_dim, cfg.hidden_size), nn.SiLU(), nn.Linear(cfg.hidden_size, cfg.hidden_size)
            )
        if self.enable_mouse:
            cm = cfg.mouse_hidden_dim
            self.mouse_mlp = nn.Sequential(
                nn.Linear(dim + cfg.mouse_dim * rows, cm),
                nn.GELU(approximate="tanh"),
                nn.Linear(cm, cm),
                nn.LayerNorm(cm),
            )
            self.t_qkv = nn.Linear(cm, 3 * cm, bias=cfg.qkv_bias)
            self.img_attn_q_norm = self._qk_norm(cm // cfg.num_heads)
            self.img_attn_k_norm = self._qk_norm(cm // cfg.num_heads)
            self.proj_mouse = nn.Linear(cm, dim, bias=cfg.qkv_bias)
        if self.enable_keyboard:
            ck = cfg.keyboard_hidden_dim
            self.key_attn_q_norm = self._qk_norm(ck // cfg.num_heads)
            self.key_attn_k_norm = self._qk_norm(ck // cfg.num_heads)
            self.mouse_attn_q = nn.Linear(dim, ck, bias=cfg.qkv_bias)
            self.keyboard_attn_kv = nn.Linear(cfg.hidden_size * rows, 2 * ck, bias=cfg.qkv_bias)
            self.proj_keyboard = nn.Linear(ck, dim, bias=cfg.qkv_bias)
        self.zero_init_output()

    def _qk_norm(self, head_dim: int) -> nn.Module:
        return RMSNorm(head_dim, eps=1e-6, apply_weight=False) if self.cfg.qk_norm else nn.Identity()

    def zero_init_output(self) -> None:
        """Zero the output projections so that a fresh module is the identity map."""
        for name in ("proj_mouse", "proj_keyboard"):
            layer = getattr(self, name, None)
            if layer is not None:
                nn.init.zeros_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def _rope(self, positions: torch.Tensor, head_dim: int) -> torch.Tensor:
        return temporal_rope_angles(positions, head_dim, self.cfg.rope_time_dim, self.cfg.rope_theta)

    def _windows(self, rows: torch.Tensor, t: int, frame_offset: int, kv: Any) -> torch.Tensor:
        """Each of the ``t`` latent frames' window of raw action ``rows`` (:func:`action_windows`); with a KV cache
        the rows start at its ``action_row_offset``."""
        row0 = 0 if kv is None else kv.action_row_offset
        return action_windows(rows, t, frame_offset, self.cfg.vae_time_compression, self.cfg.window_size, row0)

    def mouse_residual(
        self,
        x: torch.Tensor,
        grid: tuple[int, int, int],
        mouse: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
        frame_offset: int = 0,
        kv: Any = None,
    ) -> torch.Tensor:
        """The mouse branch's residual proj_mouse(...), shape [B, T*S, C] (see the module docstring).
        ``kv``: a per-block KV cache (:class:`model.causal.LayerKVView`): attend over its cached frames too."""
        t, gh, gw = grid
        s = gh * gw
        b, _, c = x.shape
        win = self._windows(mouse, t, frame_offset, kv)  # [B, T, 24]
        h = x.reshape(b, t, s, c)
        feats = torch.cat([h, win.to(h.dtype)[:, :, None, :].expand(b, t, s, win.shape[-1])], dim=-1)
        feats = self.mouse_mlp(feats)  # [B, T, S, Cm]
        qkv = self.t_qkv(feats).unflatten(-1, (3, self.num_heads, -1))  # [B, T, S, 3, H, Dh]
        q, k, v = qkv.permute(3, 0, 2, 1, 4, 5).unbind(0)  # each [B, S, T, H, Dh]
        q, k = self.img_attn_q_norm(q), self.img_attn_k_norm(k)
        dh = q.shape[-1]
        angles = self._rope(torch.arange(frame_offset, frame_offset + t, device=x.device), dh)  # [T, Dh/2]
        q, k = apply_rotary(q, angles), apply_rotary(k, angles)
        q, k, v = q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1)  # [B*S, T, H, Dh]
        out = attention(q, k, v, frame_mask) if kv is None else kv.attend("mouse", q, k, v)
        out = out.reshape(b, s, t, -1).transpose(1, 2).reshape(b, t * s, -1)
        return self.proj_mouse(out)

    def keyboard_residual(
        self,
        x: torch.Tensor,
        grid: tuple[int, int, int],
        keyboard: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
        frame_offset: int = 0,
        kv: Any = None,
    ) -> torch.Tensor:
        """The keyboard branch's residual proj_keyboard(...), shape [B, T*S, C] (see the module docstring).
        ``kv``: a per-block KV cache (:class:`model.causal.LayerKVView`): attend over its cached frames too."""
        t, gh, gw = grid
        s = gh * gw
        emb = self.keyboard_embed(keyboard.to(x.dtype))  # [B, N, hidden]
        win = self._windows(emb, t, frame_offset, kv)  # [B, T, 12*h]
        k, v = self.keyboard_attn_kv(win).unflatten(-1, (2, self.num_heads, -1)).unbind(2)  # [B, T, H, Dh]
        q = self.mouse_attn_q(x).unflatten(-1, (self.num_heads, -1))  # [B, T*S, H, Dh]
        q, k = self.key_attn_q_norm(q), self.key_attn_k_norm(k)
        dh = q.shape[-1]
        frames = torch.arange(frame_offset, frame_offset + t, device=x.device)
        q = apply_rotary(q, self._rope(frames.repeat_interleave(s), dh))
        k = apply_rotary(k, self._rope(frames, dh))
        if kv is not None:
            out = kv.attend("keyboard", q, k, v)
        else:
            out = attention(q, k, v, None if frame_mask is None else expand_frame_mask(frame_mask, s, 1))  # [B, T*S, H, Dh]
        return self.proj_keyboard(out.flatten(2))

    def forward(
        self,
        x: torch.Tensor,
        grid: tuple[int, int, int],
        keyboard: torch.Tensor | None = None,
        mouse: torch.Tensor | None = None,
        frame_mask: torch.Tensor | None = None,
        frame_offset: int = 0,
        kv: Any = None,
    ) -> torch.Tensor:
        """Apply the mouse then the keyboard residual.

        Args:
            x: video tokens [B, T*S, C], frame-major (S = H*W tokens per latent frame).
            grid: (T, H, W) token grid.
            keyboard: [B, N, K] or None (branch skipped); mouse: [B, N, 2] or None (branch skipped).
            frame_mask: optional bool [T, T], True = may attend (None = bidirectional).
            frame_offset: absolute index of the first latent frame of x.
            kv: the block's KV cache (:class:`model.causal.LayerKVView`) when streaming a causal student, else None.

        Returns:
            [B, T*S, C].
        """
        if mouse is not None and self.enable_mouse:
            x = x + self.mouse_residual(x, grid, mouse, frame_mask, frame_offset, kv)
        if keyboard is not None and self.enable_keyboard:
            x = x + self.keyboard_residual(x, grid, keyboard, frame_mask, frame_offset, kv)
        return x
