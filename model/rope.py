"""Rotary position embeddings (RoPE) for video tokens.

A head vector x in R^D is read as D/2 interleaved pairs (x[2i], x[2i+1]) = the complex number
z_i = x[2i] + 1j * x[2i+1]. Position p rotates pair i by the angle p * w_i:

    z_i  ->  z_i * exp(1j * p * w_i)

so <R(m) q, R(n) k> = Re sum_i q_i conj(k_i) exp(1j (m - n) w_i) depends on positions only through m - n.

Wan 2.1 (and hence Matrix-Game 2.0) uses a 3D variant: the D/2 pairs are split into a time group and two
spatial groups; each group rotates with its own axis' position, with frequencies w_i = theta^(-2i / d_axis)
(i < d_axis / 2) where d_axis is the group's channel width. For head_dim D = 128 the groups are

    d_t = D - 4 * (D // 6) = 44,  d_h = d_w = 2 * (D // 6) = 42   (22, 21, 21 pairs),  theta = 10000.

Matrix-Game 2.0's action module uses a 1D temporal RoPE (theta 256) on the first 8 channels of each 64-wide head
(its (8, 28, 28) split is evaluated on a (T, 1, 1) grid, so the 56 spatial channels always have angle 0).

Angles are computed from integer positions in float64 and applied in float32; nothing is stored in a
state_dict. ``frame_offset`` shifts the time positions (the hook for causal generation with a KV cache).
"""

from __future__ import annotations

import torch


def inverse_frequencies(rot_dim: int, theta: float) -> torch.Tensor:
    """w_i = theta^(-2i / rot_dim) for i < rot_dim / 2, float64. Shape [rot_dim // 2]."""
    if rot_dim % 2:
        raise ValueError(f"rotary dimension must be even, got {rot_dim}")
    return theta ** (-torch.arange(0, rot_dim, 2, dtype=torch.float64) / rot_dim)


def wan_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channel widths of the (t, h, w) groups of Wan's 3D RoPE: (D - 4(D//6), 2(D//6), 2(D//6))."""
    if head_dim % 2:
        raise ValueError(f"head_dim must be even, got {head_dim}")
    s = head_dim // 6
    return head_dim - 4 * s, 2 * s, 2 * s


def video_rope_angles(
    grid: tuple[int, int, int],
    head_dim: int,
    theta: float = 10000.0,
    frame_offset: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Angles of Wan's 3D RoPE for tokens laid out (f, h, w) row-major.

    Args:
        grid: (F, H, W) token grid after patchification.
        head_dim: per-head width D.
        frame_offset: time position of the first frame (0 for a whole clip).

    Returns:
        float64 tensor [F * H * W, D // 2]: pair i of token (f, h, w) rotates by
        (f + frame_offset) * w_t[i] for the first d_t/2 pairs, h * w_h[.] for the next d_h/2, w * w_w[.] last.
    """
    f, h, w = grid
    d_t, d_h, d_w = wan_axis_dims(head_dim)
    pos_t = torch.arange(frame_offset, frame_offset + f, dtype=torch.float64, device=device)
    pos_h = torch.arange(h, dtype=torch.float64, device=device)
    pos_w = torch.arange(w, dtype=torch.float64, device=device)
    a_t = torch.outer(pos_t, inverse_frequencies(d_t, theta).to(device))  # [F, d_t/2]
    a_h = torch.outer(pos_h, inverse_frequencies(d_h, theta).to(device))  # [H, d_h/2]
    a_w = torch.outer(pos_w, inverse_frequencies(d_w, theta).to(device))  # [W, d_w/2]
    angles = torch.cat(
        [
            a_t[:, None, None, :].expand(f, h, w, -1),
            a_h[None, :, None, :].expand(f, h, w, -1),
            a_w[None, None, :, :].expand(f, h, w, -1),
        ],
        dim=-1,
    )
    return angles.reshape(f * h * w, head_dim // 2)


def temporal_rope_angles(
    positions: torch.Tensor, head_dim: int, rot_dim: int, theta: float
) -> torch.Tensor:
    """Angles of a 1D RoPE that rotates only the first ``rot_dim`` channels of each head.

    Args:
        positions: integer time positions, shape [L].
        head_dim: per-head width D.
        rot_dim: number of leading channels that rotate (even, <= D); the other pairs get angle 0.

    Returns:
        float64 tensor [L, D // 2].
    """
    if rot_dim > head_dim:
        raise ValueError(f"rot_dim {rot_dim} exceeds head_dim {head_dim}")
    pos = positions.to(torch.float64)
    rot = torch.outer(pos, inverse_frequencies(rot_dim, theta).to(pos.device))
    rest = torch.zeros(pos.shape[0], (head_dim - rot_dim) // 2, dtype=torch.float64, device=pos.device)
    return torch.cat([rot, rest], dim=-1)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of ``x`` by ``angles``.

    Args:
        x: [..., L, H, D] (sequence, heads, head channels).
        angles: [L, D // 2] (any float dtype; broadcast over leading dims and heads).

    Returns:
        Tensor like x: out[2i] = x[2i] cos a_i - x[2i+1] sin a_i, out[2i+1] = x[2i] sin a_i + x[2i+1] cos a_i.
    """
    cos = torch.cos(angles).to(torch.float32)[:, None, :]  # [L, 1, D/2]
    sin = torch.sin(angles).to(torch.float32)[:, None, :]
    xf = x.float().unflatten(-1, (-1, 2))  # [..., L, H, D/2, 2]
    x_re, x_im = xf[..., 0], xf[..., 1]
    out = torch.stack([x_re * cos - x_im * sin, x_re * sin + x_im * cos], dim=-1)
    return out.flatten(-2).type_as(x)
