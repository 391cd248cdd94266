"""Image encoder: the CLIP ViT-H/14 visual tower that conditions the DiT, and small CPU variants of it.

Interface (every encoder): ``encoder(images) -> tokens`` with images [B, 3, H, W] in [-1, 1] (any H, W; they
are resized) and tokens [B, num_tokens, dim]. For ViT-H/14 at 224 px: [B, 257, 1280].

What Matrix-Game 2.0 / Wan 2.1 do (Wan-Video/Wan2.1 wan/modules/clip.py; SkyworkAI/Matrix-Game
Matrix-Game-2/wan/vae/wanx_vae_src/clip.py): the image is bicubically resized to 224 x 224, mapped to [0, 1] and
normalised with the OpenAI CLIP mean/std; the ViT runs its patch embedding, class token, positional embedding
and pre-LayerNorm, then only the first 31 of its 32 blocks (``use_31_block``); the tokens are returned without
``post_norm`` or the projection ``head``. The weights file is Wan's
``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`` (the whole XLM-RoBERTa CLIP; only ``visual.*`` is
used), whose vision keys use Wan's names. open_clip's own ViT-H-14 names (``visual.conv1``,
``visual.class_embedding``, ``visual.transformer.resblocks.N...``) are converted by
:func:`convert_open_clip_visual`.

Block (pre-norm): x <- x + Attn(LN1(x)); x <- x + MLP(LN2(x)), MLP = Linear(D, 4D) -> GELU -> Linear(4D, D),
attention with a packed q/k/v projection ``to_qkv`` [3D, D] (rows ordered q, k, v) and 16 heads.
"""

from __future__ import annotations

import math
import os
import re

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .checkpoint import load_state_dict_strict, read_state_dict
from .configs import ImageEncoderConfig


class ViTSelfAttention(nn.Module):
    """Multi-head self-attention with a packed q/k/v projection (``to_qkv``) and output ``proj``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.to_qkv(x).unflatten(-1, (3, self.num_heads, -1)).unbind(2)  # [B, L, H, Dh]
        return self.proj(attention(q, k, v).flatten(2))


class ViTBlock(nn.Module):
    """Pre-norm transformer block: norm1 -> attn, norm2 -> mlp (Linear, GELU, Linear)."""

    def __init__(self, dim: int, mlp_ratio: float, num_heads: int, eps: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = ViTSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """CLIP-style ViT visual tower in Wan's parameter layout.

    Parameters: patch_embedding (Conv2d, no bias), cls_embedding [1, 1, D], pos_embedding [1, 1 + G^2, D],
    pre_norm, transformer.N (blocks), post_norm, head [D, out_dim]. ``post_norm`` and ``head`` are part of the
    checkpoint (and of CLIP's pooled embedding) but not of the token features the DiT uses.
    """

    def __init__(self, cfg: ImageEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        gain = 1.0 / math.sqrt(d)
        self.patch_embedding = nn.Conv2d(3, d, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.cls_embedding = nn.Parameter(gain * torch.randn(1, 1, d))
        self.pos_embedding = nn.Parameter(gain * torch.randn(1, cfg.num_tokens, d))
        self.pre_norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.transformer = nn.Sequential(
            *(ViTBlock(d, cfg.mlp_ratio, cfg.num_heads, cfg.norm_eps) for _ in range(cfg.num_layers))
        )
        self.post_norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        self.head = nn.Parameter(gain * torch.randn(d, cfg.out_dim))

    def forward(self, pixels: torch.Tensor, num_blocks: int | None = None) -> torch.Tensor:
        """pixels [B, 3, S, S] (CLIP-normalised, S = image_size) -> tokens after ``num_blocks`` blocks
        [B, 1 + (S / patch)^2, D] (default ``cfg.output_blocks``)."""
        n = self.cfg.output_blocks if num_blocks is None else num_blocks
        x = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_embedding.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        x = self.pre_norm(x)
        for block in self.transformer[:n]:
            x = block(x)
        return x


class ImageEncoder(nn.Module):
    """Image -> conditioning tokens. State-dict keys are ``visual.*`` as in the CLIP checkpoints.

    Args:
        cfg: ViT configuration (``ImageEncoderConfig()`` is CLIP ViT-H/14; the tiny config is a 3-block ViT).
    """

    def __init__(self, cfg: ImageEncoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = ImageEncoderConfig() if cfg is None else cfg
        self.visual = VisionTransformer(self.cfg)
        self.register_buffer("pixel_mean", torch.empty(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.empty(1, 3, 1, 1), persistent=False)
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """(Re)compute the non-persistent pixel statistics on the parameters' device (after a meta-device load)."""
        device = self.visual.pos_embedding.device
        self.pixel_mean = torch.tensor(self.cfg.mean, device=device).view(1, 3, 1, 1)
        self.pixel_std = torch.tensor(self.cfg.std, device=device).view(1, 3, 1, 1)

    @property
    def num_tokens(self) -> int:
        return self.cfg.num_tokens

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> bicubic resize to image_size, (x + 1) / 2, CLIP mean/std normalisation."""
        s = self.cfg.image_size
        x = F.interpolate(images.float(), size=(s, s), mode="bicubic", align_corners=False)
        x = x * 0.5 + 0.5
        return (x - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [-1, 1] -> tokens [B, num_tokens, dim]."""
        return self.visual(self.preprocess(images))

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], cfg: ImageEncoderConfig | None = None, device: str | torch.device = "cpu"
    ) -> "ImageEncoder":
        """Build the encoder on the meta device and load a CLIP checkpoint into it (strict on ``visual.*``)."""
        with torch.device("meta"):
            enc = cls(cfg)
        load_image_encoder_weights(enc, path)
        enc.reset_buffers()
        return enc.to(device)


_OPEN_CLIP_BLOCK = {
    "ln_1": "norm1",
    "ln_2": "norm2",
    "attn.in_proj_weight": "attn.to_qkv.weight",
    "attn.in_proj_bias": "attn.to_qkv.bias",
    "attn.out_proj": "attn.proj",
    "mlp.c_fc": "mlp.0",
    "mlp.c_proj": "mlp.2",
}


def convert_open_clip_visual(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an open_clip ViT state dict (``visual.conv1`` ...) to Wan's layout (``visual.patch_embedding`` ...).

    Mapping: conv1 -> patch_embedding; class_embedding [D] -> cls_embedding [1, 1, D]; positional_embedding
    [N, D] -> pos_embedding [1, N, D]; ln_pre/ln_post -> pre_norm/post_norm; proj -> head;
    transformer.resblocks.N.{ln_1, ln_2, attn.in_proj_*, attn.out_proj, mlp.c_fc, mlp.c_proj} ->
    transformer.N.{norm1, norm2, attn.to_qkv.*, attn.proj, mlp.0, mlp.2}. Both pack q/k/v as rows [q; k; v].
    Keys outside ``visual.`` are dropped.
    """
    out: dict[str, torch.Tensor] = {}
    block = re.compile(r"^visual\.transformer\.resblocks\.(\d+)\.(.+)$")
    for key, value in state_dict.items():
        if not key.startswith("visual."):
            continue
        m = block.match(key)
        if m:
            idx, rest = m.groups()
            for src, dst in _OPEN_CLIP_BLOCK.items():
                if rest == src or rest.startswith(src + "."):
                    rest = dst + rest[len(src) :]
                    break
            out[f"visual.transformer.{idx}.{rest}"] = value
            continue
        name = key[len("visual.") :]
        if name == "conv1.weight":
            out["visual.patch_embedding.weight"] = value
        elif name == "class_embedding":
            out["visual.cls_embedding"] = value.reshape(1, 1, -1)
        elif name == "positional_embedding":
            out["visual.pos_embedding"] = value.unsqueeze(0)
        elif name.startswith("ln_pre."):
            out["visual.pre_norm." + name[len("ln_pre.") :]] = value
        elif name.startswith("ln_post."):
            out["visual.post_norm." + name[len("ln_post.") :]] = value
        elif name == "proj":
            out["visual.head"] = value
        else:
            out[key] = value
    return out


def load_image_encoder_weights(encoder: ImageEncoder, path: str | os.PathLike[str]) -> None:
    """Load ``visual.*`` weights from a Wan CLIP ``.pth`` or an open_clip / safetensors file, strictly.

    Text-tower keys (``textual.*``, ``log_scale``, open_clip's ``transformer.*`` etc.) are ignored; a key named
    ``visual.conv1.weight`` marks the open_clip layout, which is converted first. Raises
    :class:`~model.checkpoint.CheckpointMismatchError` listing missing/unexpected/mis-shaped keys.
    """
    sd = read_state_dict(path)
    if "visual.conv1.weight" in sd:
        sd = convert_open_clip_visual(sd)
    sd = {k: v for k, v in sd.items() if k.startswith("visual.")}
    load_state_dict_strict(encoder, sd, source=str(path))
