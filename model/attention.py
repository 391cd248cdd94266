"""Attention kernel and frame-level attention masks.

Every attention in the model (DiT self-attention, the action module's temporal mouse attention and its
keyboard cross-attention) is restricted along time only. A single boolean *frame mask* ``M[q_frame, k_frame]``
(True = may attend) therefore describes all of them:

- ``None``: full bidirectional attention (the base model and the bidirectional teacher);
- :func:`block_causal_frame_mask`: the causal student's block-causal pattern (chunks of latent frames, a
  local window, optionally the first frame as its own block).

:func:`expand_frame_mask` turns a frame mask into a token mask for sequences laid out frame-major.
The query and key frame counts may differ, which is the shape a KV cache produces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D) + log mask) v with [batch, seq, heads, head_dim] tensors.

    Args:
        q: [B, Lq, H, D]; k, v: [B, Lk, H, D].
        mask: optional bool [Lq, Lk] (or broadcastable to [B, H, Lq, Lk]); True = attend. Every query row
            must allow at least one key.

    Returns:
        [B, Lq, H, D].
    """
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
    )
    return out.transpose(1, 2)


def block_causal_frame_mask(
    num_frames: int,
    frames_per_block: int,
    local_attn_size: int = -1,
    independent_first_frame: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Block-causal mask over latent frames, as used by the causal (Self-Forcing) student.

    Frames are grouped into blocks of ``frames_per_block`` (with ``independent_first_frame``, frame 0 is a
    block of its own and the blocks start at frame 1). Frame q attends to frame k iff

        k < end(q)   and   (local_attn_size == -1  or  k >= end(q) - local_attn_size)

    where end(q) is one past the last frame of q's block. Attention is bidirectional inside a block.

    Returns:
        bool tensor [num_frames, num_frames].
    """
    if frames_per_block < 1:
        raise ValueError(f"frames_per_block must be >= 1, got {frames_per_block}")
    idx = torch.arange(num_frames, device=device)
    if independent_first_frame:
        end = torch.where(idx == 0, 1, 1 + ((idx - 1) // frames_per_block + 1) * frames_per_block)
    else:
        end = ((idx // frames_per_block) + 1) * frames_per_block
    end = end.clamp(max=num_frames)
    keys = idx[None, :]
    mask = keys < end[:, None]
    if local_attn_size != -1:
        if local_attn_size < 1:
            raise ValueError(f"local_attn_size must be -1 or >= 1, got {local_attn_size}")
        mask &= keys >= (end[:, None] - local_attn_size)
    return mask


def expand_frame_mask(frame_mask: torch.Tensor, q_tokens_per_frame: int, k_tokens_per_frame: int) -> torch.Tensor:
    """Token mask for frame-major sequences: [Fq, Fk] -> [Fq * q_tokens_per_frame, Fk * k_tokens_per_frame]."""
    return frame_mask.repeat_interleave(q_tokens_per_frame, dim=0).repeat_interleave(k_tokens_per_frame, dim=1)
