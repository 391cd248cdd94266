"""playmill model package: the Matrix-Game 2.0 world model (see DESIGN.md section 1).

Networks (architecture; training and distillation come in later modules):

- :class:`WanVAE`: Wan 2.1 causal 3D VAE, streaming encode/decode (:class:`StreamingEncoder`,
  :class:`StreamingDecoder`), latent normalisation.
- :class:`WorldModelDiT`: Wan 2.1 I2V DiT with Matrix-Game 2.0 keyboard/mouse :class:`ActionModule` s.
- :class:`ImageEncoder`: CLIP ViT-H/14 visual tower (penultimate-layer tokens) or a tiny ViT.

Configs: :func:`get_config` ("tiny", "mg2-1.3b", "mg2-1.3b-base") x ``ACTION_MODES`` (universal, gta_drive,
templerun). Weights: :func:`load_checkpoint` (strict; raises :class:`CheckpointMismatchError`).

Training and sampling (loaded on first use; see model/TRAINING.md): :func:`train` with a :class:`TrainConfig`
from :func:`get_train_config` ("tiny", "mg2-1.3b"), :func:`encode_latents` (latent cache), :func:`generate_base`
(first frame + actions -> mp4), :func:`load_bundle`; dataset actions -> model inputs in :mod:`model.conditions`.
Several processes (torchrun; DDP or FSDP2 by the configs' ``parallel`` key): :mod:`model.parallel`.
Evaluation (:mod:`model.evaluate`, :mod:`model.metrics`): :func:`evaluate_episode` (controllability with the
camera-motion estimator of :mod:`capture.motion`, fidelity, temporal quality, loops, baselines),
:func:`controllability`, the GameWorld-style :func:`action_script`, PSNR/SSIM/flicker/warp error, and LPIPS/FVD
with weights the user supplies.

Example::

    import torch, model
    cfg = model.get_config("tiny", mode="universal")
    dit, vae, enc = model.build_dit(cfg), model.WanVAE(cfg.vae), model.ImageEncoder(cfg.image_encoder)
"""

from __future__ import annotations

import torch

from .action_module import ActionModule, action_windows
from .attention import block_causal_frame_mask, expand_frame_mask
from .checkpoint import (
    CheckpointMismatchError,
    compare_state_dict,
    load_checkpoint,
    load_state_dict_strict,
    read_state_dict,
    strip_prefix,
)
from .configs import (
    ACTION_MODES,
    ActionConfig,
    ActionMode,
    DiTConfig,
    ImageEncoderConfig,
    ModelConfig,
    VAEConfig,
    get_config,
    list_configs,
)
from .dit import WorldModelDiT, i2v_condition, sinusoidal_embedding
from .image_encoder import ImageEncoder, convert_open_clip_visual, load_image_encoder_weights
from .vae import CausalCache, StreamingDecoder, StreamingEncoder, WanVAE


def build_dit(cfg: ModelConfig | DiTConfig, device: str | torch.device = "cpu") -> WorldModelDiT:
    """Instantiate the DiT of ``cfg`` on ``device`` (use "meta" for the full size without allocating memory)."""
    dit_cfg = cfg.dit if isinstance(cfg, ModelConfig) else cfg
    with torch.device(device):
        return WorldModelDiT(dit_cfg)


def build_vae(cfg: ModelConfig | VAEConfig, device: str | torch.device = "cpu") -> WanVAE:
    """Instantiate the VAE of ``cfg`` on ``device``."""
    vae_cfg = cfg.vae if isinstance(cfg, ModelConfig) else cfg
    with torch.device(device):
        return WanVAE(vae_cfg)


def build_image_encoder(cfg: ModelConfig | ImageEncoderConfig, device: str | torch.device = "cpu") -> ImageEncoder:
    """Instantiate the image encoder of ``cfg`` on ``device``."""
    enc_cfg = cfg.image_encoder if isinstance(cfg, ModelConfig) else cfg
    with torch.device(device):
        return ImageEncoder(enc_cfg)


# Training / sampling names, imported on first use so that ``import model`` stays light.
_LAZY = {
    "TrainConfig": "model.train", "TrainResult": "model.train", "train": "model.train",
    "get_train_config": "model.train", "list_train_configs": "model.train", "NonFiniteLossError": "model.runloop",
    "encode_latents": "model.latents", "LatentDataset": "model.latents",
    "generate_base": "model.sample", "GenerateResult": "model.sample",
    "load_bundle": "model.bundle", "Bundle": "model.bundle",
    "ConditionSpec": "model.conditions", "ConditionError": "model.conditions",
    "build_condition_spec": "model.conditions", "mouse_scale_from_manifest": "model.conditions",
    "mouse_scale_from_clips": "model.conditions",
    "make_ode_pairs": "model.distill", "OdePairsConfig": "model.distill", "get_ode_pairs_config": "model.distill",
    "distill_init": "model.distill", "DistillInitConfig": "model.distill", "get_distill_init_config": "model.distill",
    "distill_dmd": "model.distill", "DistillDMDConfig": "model.distill", "get_distill_dmd_config": "model.distill",
    "ActionDistribution": "model.distill",
    "CausalConfig": "model.causal", "CausalStreamer": "model.causal", "KVCache": "model.causal",
    "block_mask": "model.causal", "causal_forward": "model.causal", "rollout": "model.causal",
    "PositionLimitError": "model.causal",
    "generate_student": "model.stream", "stream_student": "model.stream", "StudentResult": "model.stream",
    "generate_interactive": "model.stream", "TerminalActions": "model.stream",
    "evaluate_episode": "model.evaluate", "EvalConfig": "model.evaluate", "controllability": "model.evaluate",
    "Controllability": "model.evaluate", "action_script": "model.evaluate", "composite_script": "model.evaluate",
    "loop_script": "model.evaluate", "summarise": "model.evaluate", "ACTION_CLASSES": "model.evaluate",
    "psnr": "model.metrics", "ssim": "model.metrics", "flicker_score": "model.metrics", "warp_error": "model.metrics",
    "LPIPS": "model.metrics", "fvd": "model.metrics", "write_eval_html": "model.eval_report",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTION_MODES",
    "ActionConfig",
    "ActionMode",
    "ActionModule",
    "CausalCache",
    "CheckpointMismatchError",
    "DiTConfig",
    "ImageEncoder",
    "ImageEncoderConfig",
    "ModelConfig",
    "StreamingDecoder",
    "StreamingEncoder",
    "VAEConfig",
    "WanVAE",
    "WorldModelDiT",
    "action_windows",
    "block_causal_frame_mask",
    "build_dit",
    "build_image_encoder",
    "build_vae",
    "compare_state_dict",
    "convert_open_clip_visual",
    "expand_frame_mask",
    "get_config",
    "i2v_condition",
    "list_configs",
    "load_checkpoint",
    "load_image_encoder_weights",
    "load_state_dict_strict",
    "read_state_dict",
    "sinusoidal_embedding",
    "strip_prefix",
    *sorted(_LAZY),
]
