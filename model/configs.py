"""Model configurations: the tiny CPU config and the Matrix-Game 2.0 1.3B configs, with their action modes.

A :class:`ModelConfig` bundles the three networks of the recipe:

- :class:`VAEConfig`: the Wan 2.1 causal 3D VAE (8x8 spatial, 4x temporal compression, 16 latent channels);
- :class:`DiTConfig`: the Wan 2.1 image-to-video DiT with Matrix-Game 2.0 action modules (:class:`ActionConfig`);
- :class:`ImageEncoderConfig`: the CLIP ViT-H/14 visual tower whose penultimate-layer tokens condition the DiT.

Named configs (``get_config(name, mode)``):

- ``"tiny"``: a few-hundred-thousand-parameter model that trains on a CPU.
- ``"mg2-1.3b"``: the released distilled (causal, few-step) Matrix-Game 2.0 checkpoints. Action modules in
  blocks 0-14, local attention window per mode (universal 6, gta_drive 4, templerun 6 latent frames).
- ``"mg2-1.3b-base"``: the bidirectional foundation model layout: action modules in all 30 blocks, global attention.

Modes (``ACTION_MODES``) fix the action inputs: universal = keyboard [W, S, A, D] + mouse (pitch, yaw);
gta_drive = keyboard [forward, back] + mouse (steering via yaw); templerun = 7 one-hot keys, no mouse.
Sources: SkyworkAI/Matrix-Game Matrix-Game-2/configs/{distilled_model/*,foundation_model}/config.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

# Per-channel statistics of the Wan 2.1 VAE latent space (Wan-Video/Wan2.1 wan/modules/vae.py, class WanVAE).
WAN21_LATENT_MEAN: tuple[float, ...] = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
WAN21_LATENT_STD: tuple[float, ...] = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)

# OpenAI CLIP pixel statistics (used by Wan's CLIP image encoder).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ActionMode:
    """The action inputs of one Matrix-Game 2.0 mode.

    keyboard_dim: width of the per-frame keyboard vector (multi-hot, or one-hot for templerun).
    mouse_dim: width of the per-frame mouse vector (d_pitch, d_yaw), 0 when the mode has no mouse.
    keys: the meaning of each keyboard channel, in order.
    local_attn_size: attention window (latent frames) of the distilled causal model for this mode.
    """

    name: str
    keyboard_dim: int
    mouse_dim: int
    keys: tuple[str, ...]
    local_attn_size: int


ACTION_MODES: dict[str, ActionMode] = {
    "universal": ActionMode("universal", 4, 2, ("w", "s", "a", "d"), 6),
    "gta_drive": ActionMode("gta_drive", 2, 2, ("forward", "back"), 4),
    "templerun": ActionMode(
        "templerun", 7, 0, ("nomove", "jump", "slide", "turnleft", "turnright", "leftside", "rightside"), 6
    ),
}


@dataclass(frozen=True)
class ActionConfig:
    """Matrix-Game 2.0 action module (wan/modules/action_module.py), shared widths at full size.

    keyboard_dim / mouse_dim: per-frame action widths; 0 disables that branch (templerun has no mouse).
    hidden_size: keyboard embedding width (Lin(k, 128) -> SiLU -> Lin(128, 128) per raw frame).
    keyboard_hidden_dim / mouse_hidden_dim: attention widths of the two branches (1024 = 16 heads x 64).
    num_heads: heads of both branches.
    vae_time_compression: raw video frames per latent frame (4).
    window_size: latent frames of action history per latent frame; each latent frame sees
        ``vae_time_compression * window_size`` = 12 raw action rows.
    rope_theta / rope_time_dim: temporal RoPE of both branches; only the first ``rope_time_dim`` channels of each
        head rotate (the reference's (8, 28, 28) split over a (T, 1, 1) grid leaves the 56 h/w channels at angle 0).
    qkv_bias: bias of the q/k/v/output projections (False in every released config).
    qk_norm: RMS-normalise q and k per head. The reference's norm has a weight that it never applies.
    blocks: indices of the DiT blocks that carry an action module.
    """

    keyboard_dim: int = 4
    mouse_dim: int = 2
    hidden_size: int = 128
    keyboard_hidden_dim: int = 1024
    mouse_hidden_dim: int = 1024
    num_heads: int = 16
    vae_time_compression: int = 4
    window_size: int = 3
    rope_theta: float = 256.0
    rope_time_dim: int = 8
    qkv_bias: bool = False
    qk_norm: bool = True
    blocks: tuple[int, ...] = tuple(range(15))

    @property
    def window_rows(self) -> int:
        """Raw action rows in one latent frame's window (12 at full size)."""
        return self.vae_time_compression * self.window_size


@dataclass(frozen=True)
class DiTConfig:
    """Wan 2.1 I2V DiT as used by Matrix-Game 2.0 (CausalWanModel).

    in_dim = out_dim (noisy latent) + vae_time_compression (mask) + out_dim (first-frame latent) = 36.
    patch_size: Conv3d patchifier kernel = stride, (1, 2, 2).
    image_dim: width of the image-encoder tokens fed to ``img_emb`` (CLIP ViT-H/14: 1280).
    rope_theta: base of the 3D (t, h, w) RoPE of self-attention.
    local_attn_size / sink_size / num_frame_per_block: causal-student settings (block-causal mask, rolling
        KV cache); they do not change the parameters. local_attn_size -1 = unbounded.
    action: the action module config, or None for a DiT without action modules.
    """

    in_dim: int = 36
    out_dim: int = 16
    dim: int = 1536
    ffn_dim: int = 8960
    freq_dim: int = 256
    num_heads: int = 12
    num_layers: int = 30
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    image_dim: int = 1280
    rope_theta: float = 10000.0
    local_attn_size: int = -1
    sink_size: int = 0
    num_frame_per_block: int = 3
    action: ActionConfig | None = field(default_factory=ActionConfig)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


@dataclass(frozen=True)
class VAEConfig:
    """Wan 2.1 causal 3D VAE (wan/modules/vae.py, _video_vae).

    base_dim: width of the first stage (96 in the released model); stages are base_dim * (1,) + dim_mult.
    z_dim: latent channels (16).
    temporal_downsample: which of the three encoder downsamplings also halve time ((False, True, True) -> 4x).
    latent_mean / latent_std: per-channel statistics; ``encode`` returns (mu - mean) / std.
    """

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    dropout: float = 0.0
    latent_mean: tuple[float, ...] = WAN21_LATENT_MEAN
    latent_std: tuple[float, ...] = WAN21_LATENT_STD

    @property
    def spatial_compression(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_compression(self) -> int:
        return 2 ** sum(self.temporal_downsample)


@dataclass(frozen=True)
class ImageEncoderConfig:
    """CLIP-style ViT visual tower (Wan's layout of open-clip xlm-roberta-large-vit-huge-14).

    output_blocks: the tokens are taken after this many transformer blocks, before ``post_norm``
        (Wan/Matrix-Game: 31 of 32 blocks, the penultimate layer). Output: [B, 1 + (image_size/patch)^2, dim].
    """

    image_size: int = 224
    patch_size: int = 14
    dim: int = 1280
    mlp_ratio: float = 4.0
    num_heads: int = 16
    num_layers: int = 32
    out_dim: int = 1024
    output_blocks: int = 31
    norm_eps: float = 1e-5
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @property
    def num_tokens(self) -> int:
        return 1 + (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class ModelConfig:
    """A complete world-model configuration: name, action mode and the three networks."""

    name: str
    mode: str
    dit: DiTConfig
    vae: VAEConfig
    image_encoder: ImageEncoderConfig


def _action_for_mode(base: ActionConfig, mode: ActionMode, blocks: Sequence[int]) -> ActionConfig:
    return replace(base, keyboard_dim=mode.keyboard_dim, mouse_dim=mode.mouse_dim, blocks=tuple(blocks))


def _mg2(mode: ActionMode, blocks: Sequence[int], local_attn_size: int, name: str) -> ModelConfig:
    dit = DiTConfig(
        local_attn_size=local_attn_size,
        action=_action_for_mode(ActionConfig(), mode, blocks),
    )
    return ModelConfig(name=name, mode=mode.name, dit=dit, vae=VAEConfig(), image_encoder=ImageEncoderConfig())


def _tiny(mode: ActionMode, blocks: Sequence[int], local_attn_size: int, name: str) -> ModelConfig:
    action = ActionConfig(
        hidden_size=16,
        keyboard_hidden_dim=32,
        mouse_hidden_dim=32,
        num_heads=4,
        rope_time_dim=4,
    )
    image = ImageEncoderConfig(
        image_size=32, patch_size=8, dim=32, mlp_ratio=2.0, num_heads=2, num_layers=3, out_dim=16, output_blocks=2
    )
    dit = DiTConfig(
        dim=64,
        ffn_dim=128,
        freq_dim=32,
        num_heads=2,
        num_layers=3,
        image_dim=image.dim,
        local_attn_size=local_attn_size,
        action=_action_for_mode(action, mode, blocks),
    )
    vae = VAEConfig(base_dim=8)
    return ModelConfig(name=name, mode=mode.name, dit=dit, vae=vae, image_encoder=image)


# name -> (builder, default action blocks, local attention size or None = the mode's)
_CONFIGS = {
    "tiny": (_tiny, (0, 1), None),
    "mg2-1.3b": (_mg2, tuple(range(15)), None),
    "mg2-1.3b-base": (_mg2, tuple(range(30)), -1),
}


def list_configs() -> list[str]:
    """Names accepted by :func:`get_config`."""
    return sorted(_CONFIGS)


def get_config(name: str = "mg2-1.3b", mode: str = "universal", action_blocks: Sequence[int] | None = None) -> ModelConfig:
    """Return the named configuration for an action mode.

    Args:
        name: one of :func:`list_configs` ("tiny", "mg2-1.3b", "mg2-1.3b-base").
        mode: one of ``ACTION_MODES`` ("universal", "gta_drive", "templerun").
        action_blocks: override the DiT blocks that carry an action module.
    """
    if name not in _CONFIGS:
        raise ValueError(f"unknown model config {name!r}; allowed: {', '.join(list_configs())}")
    if mode not in ACTION_MODES:
        raise ValueError(f"unknown action mode {mode!r}; allowed: {', '.join(sorted(ACTION_MODES))}")
    builder, default_blocks, local = _CONFIGS[name]
    m = ACTION_MODES[mode]
    blocks = tuple(default_blocks if action_blocks is None else action_blocks)
    cfg = builder(m, blocks, m.local_attn_size if local is None else local, name)
    n_layers = cfg.dit.num_layers
    if any(not 0 <= b < n_layers for b in blocks):
        raise ValueError(f"action_blocks must lie in [0, {n_layers}), got {list(blocks)}")
    return cfg
