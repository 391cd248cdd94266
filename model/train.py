"""Base training of the Matrix-Game 2.0 world model: rectified-flow matching on VAE latents, image-to-video,
keyboard and mouse actions. One file, top to bottom: config, data, model, the step, the loop.

The algorithm (one optimizer step, ``grad_accum`` micro-batches of ``batch_size`` clips per rank):

    x0        = VAE.encode(clip)                         clean latents [B, 16, F, h, w] (or the latent cache)
    y         = [mask ; VAE.encode([frame0, 0, ..., 0])] image-to-video condition [B, 4 + 16, F, h, w]
    c         = ImageEncoder(frame0)                     image tokens [B, Lc, D]
    kb, m     = keyboard_map(keyboard), mouse_scale * mouse      per raw frame [B, T, K], [B, T, 2]
    u ~ U(0, 1),  s = shift * u / (1 + (shift - 1) * u)  Wan / SD3 timestep shift (more time at high noise)
    eps ~ N(0, I)
    x_s       = (1 - s) x0 + s eps                       the straight path from data (s = 0) to noise (s = 1)
    v         = eps - x0                                 its velocity dx_s / ds
    loss      = mean || DiT(x_s, 1000 s, c, y, kb, m) - v ||^2
    AdamW on the accumulated gradient, clipped to ``grad_clip``; EMA of the weights.

Sampling integrates dx/ds = DiT(x, s) from s = 1 (noise) to s = 0 with Euler steps (:mod:`model.sample`).

Around it: bf16 autocast on CUDA, gradient checkpointing, torchrun with DDP or FSDP2 (``parallel``;
initialised from the environment when WORLD_SIZE > 1, :mod:`model.parallel`), data through the curation shard
reader (or a latent cache, :mod:`model.latents`), batch order and noise that depend neither on the number of
processes nor on interruptions (so N processes train what one does, and a resumed run equals an uninterrupted
one, on any number of processes), checkpoints every ``ckpt_every`` steps in safetensors (:mod:`model.bundle`),
a stop with the step and clip ids on a non-finite loss, and a JSONL log (the bookkeeping shared with the
distillation loops is :mod:`model.runloop`). For ``tiny`` runs without a VAE checkpoint, a VAE is first fitted
to the clips (:mod:`model.vae_train`).

Library entry points (the CLI calls them): :func:`train`, :func:`get_train_config`;
:func:`model.latents.encode_latents`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

from capture.settings import Field, Frames1p4k, from_preset, settings

from .bundle import (
    load_image_encoder,
    load_vae,
    read_meta,
    save_module,
    save_train_checkpoint,
    to_jsonable,
    write_json_atomic,
)
from .checkpoint import compare_state_dict, load_checkpoint, read_state_dict, strip_prefix
from .conditions import ConditionSpec, build_condition_spec
from .configs import ACTION_MODES, ModelConfig, get_config, list_configs
from .dit import WorldModelDiT, i2v_condition
from .image_encoder import ImageEncoder
from .latents import LatentDataset, encode_clips, encode_latents
from .parallel import Dist, ParallelMode, all_mean, barrier, gradient_sync, wrap
from .run_log import LoggerName, RunLog, frames_uint8, logger_field
from .runloop import (  # noqa: F401  (NonFiniteLossError, ema_update: model.train names too, as before)
    NonFiniteLossError, Session, check_resume, due, ema_update, finish_run, new_ema, optimizer_step,
    resume_checkpoint, set_lr, start_session, step_bar, stop_if_nonfinite, warmup_lr
)
from .schedule import shift_sigma
from .vae import WanVAE
from .vae_train import latent_statistics, set_latent_statistics, train_vae

log = logging.getLogger(__name__)

# ==========================================================================================================
# Config


@settings
class TrainConfig:
    """Everything a base-training run needs besides the data and the output folder (the ``train:`` section of
    pipeline.yaml, with ``preset`` and ``dataset``). Each key: type, default, range and doc below.

    Model: ``model`` / ``mode`` / ``action_blocks`` name a :func:`model.get_config` entry; without
    ``vae_checkpoint`` a small model fits a VAE first (``vae_*``) and uses a frozen, seeded random image encoder.
    Optimisation: AdamW, linear warm-up then constant or cosine to 10 %, gradient accumulation and clipping, EMA.
    ``timestep_shift``: the shift of the training (and sampling) noise levels (:mod:`model.schedule`).

    Several processes (torchrun, :mod:`model.parallel`): ``parallel`` ddp (replicated model, averaged gradients)
    or fsdp (FSDP2: weights, gradients, optimizer state and EMA sharded over the ranks; with bf16 the weights are
    gathered in bf16 and gradients reduced in fp32). ``batch_size`` is per process: a step trains on
    ``batch_size x grad_accum x processes`` clips. ``gradient_checkpointing`` works in both modes.
    """

    name: str = Field("tiny", min_length=1, description="the run's name (shown in logs)")
    model: Literal[tuple(list_configs())] = Field("tiny", description="architecture: a model.get_config name")
    mode: Literal[tuple(ACTION_MODES)] = Field("universal", description="action mode: the keys the model takes")
    action_blocks: tuple[Annotated[int, Field(ge=0)], ...] | None = Field(
        None, description="DiT blocks with an action module (null: the architecture's)")
    init_checkpoint: str | None = Field(None, description="DiT weights to start from (e.g. Matrix-Game 2.0's base)")
    init_strict: bool = Field(True, description="false: load the matching keys of init_checkpoint and report the others")
    vae_checkpoint: str | None = Field(None, description="Wan 2.1 VAE weights (null: small models fit a VAE first)")
    image_encoder_checkpoint: str | None = Field(None, description="CLIP ViT-H/14 weights (null: a seeded random ViT)")
    # data
    height: int = Field(64, ge=16, multiple_of=16, description="clip height the model trains at, px")
    width: int = Field(112, ge=16, multiple_of=16, description="clip width the model trains at, px")
    num_frames: Frames1p4k = Field(17, ge=5, description="frames per clip, 1 + 4k; longer clips are trimmed")
    keyboard_map: dict[str, str] | None = Field(None, description="model key -> dataset key (null: by name)")
    mouse_scale: float | None = Field(None, gt=0, description="model units per degree of mouse (null: from the data)")
    cache_latents: bool = Field(True, description="encode every clip once into <out>/latents and train from it")
    latent_dtype: Literal["float16", "float32"] = Field("float32", description="storage dtype of the latent cache")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    # optimisation
    batch_size: int = Field(8, ge=1, description="clips per micro-batch per rank")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_steps: int = Field(1000, ge=1, description="optimizer steps in all (a rerun resumes up to it)")
    lr: float = Field(3e-3, gt=0, description="peak learning rate")
    betas: tuple[float, float] = Field((0.9, 0.99), description="AdamW betas")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(20, ge=0, description="linear warm-up steps")
    lr_schedule: Literal["constant", "cosine"] = Field("cosine", description="after warm-up: constant, or cosine to 10 %")
    grad_clip: float = Field(1.0, gt=0, description="gradient-norm clip")
    ema_decay: float = Field(0.99, ge=0, lt=1, description="EMA decay of the weights")
    ema_start: int = Field(0, ge=0, description="the EMA copies the weights until this step")
    timestep_shift: float = Field(3.0, gt=0, description="shift of the training and sampling noise levels")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 autocast on CUDA, fp32 on CPU")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass (less memory)")
    compile: bool = Field(False, description="torch.compile the DiT")
    parallel: ParallelMode = Field("ddp", description="under torchrun: ddp (the model on every process) or fsdp "
                                   "(FSDP2: weights, gradients, optimizer state and EMA sharded)")
    seed: int = Field(0, ge=0, description="seed of the batch order and the noise (resumed runs and any number of processes train the same)")
    # bookkeeping
    log_every: int = Field(10, ge=1, description="steps between log rows")
    logger: LoggerName = logger_field()
    sample_every: int = Field(0, ge=0, description="steps between sample images (real vs predicted frames) in the logger (0: at each validation)")
    val_every: int = Field(100, ge=1, description="steps between validation losses")
    val_clips: int = Field(8, ge=1, description="clips of the fixed validation batch")
    ckpt_every: int = Field(200, ge=1, description="steps between checkpoints")
    keep_last: int = Field(3, ge=1, description="newest checkpoints kept")
    # VAE warm-up (only when vae_checkpoint is None)
    vae_train_steps: int = Field(300, ge=0, description="steps of the VAE fitted first when vae_checkpoint is null")
    vae_lr: float = Field(1e-3, gt=0, description="learning rate of the VAE warm-up")
    vae_batch_size: int = Field(4, ge=1, description="clips per VAE warm-up batch")
    vae_crop: tuple[int, int] = Field((24, 24), description="random crop of the VAE warm-up, px")
    vae_clips: int = Field(64, ge=1, description="clips the VAE is fitted to")


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Trains on a CPU in minutes: 17 frames at 64x112 -> latents [16, 5, 8, 14], 140 tokens per clip; the tiny
    # VAE is fitted first (vae_train_steps) and the image encoder is a frozen seeded random ViT.
    "tiny": TrainConfig(),
    # The paper's base model: the bidirectional foundation layout (action modules in all 30 blocks), 57 frames
    # at 352x640 (latents [16, 15, 44, 80], 13,200 tokens), Wan 2.1 VAE and CLIP ViT-H/14 required.
    "mg2-1.3b": TrainConfig(
        name="mg2-1.3b", model="mg2-1.3b-base", height=352, width=640, num_frames=57, latent_dtype="float16",
        num_workers=4, batch_size=1, grad_accum=8, max_steps=5000, lr=1e-5, betas=(0.9, 0.999), weight_decay=0.01,
        warmup_steps=100, lr_schedule="constant", ema_decay=0.999, ema_start=200, timestep_shift=5.0,
        gradient_checkpointing=True, log_every=10, val_every=250, ckpt_every=500, vae_train_steps=0,
    ),
}


def list_train_configs() -> list[str]:
    return sorted(TRAIN_PRESETS)


def get_train_config(name: str = "tiny", **overrides: Any) -> TrainConfig:
    """A preset (``tiny``, ``mg2-1.3b``) with ``overrides`` applied; :class:`capture.settings.ConfigError` naming
    every unknown key or bad value."""
    return from_preset(TrainConfig, TRAIN_PRESETS, name, overrides, "train")


def train_config_from_dict(d: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from its JSON form (``train_config.json``, a checkpoint's metadata); validated."""
    return TrainConfig.from_dict(d, "train_config")


@dataclass
class TrainResult:
    """What a run produced. ``checkpoint``: the final checkpoint folder (sample from it);
    ``history``: the logged rows (also in ``out_dir/log.jsonl``)."""

    checkpoint: Path
    out_dir: Path
    steps: int
    final_loss: float
    val_loss_initial: float | None
    val_loss_final: float | None
    samples_per_s: float
    elapsed_s: float
    vae_checkpoint: Path
    vae_psnr: float | None
    resumed_from: int
    history: list[dict[str, Any]] = field(default_factory=list)


# ==========================================================================================================
# Data: one seeded stream of clips per epoch, cut into global batches the same way on any number of processes


class ClipBatches(Sampler[list[int]]):
    """Infinite stream of index batches for one rank: ``grad_accum`` micro-batches of ``batch_size`` per step,
    starting at optimizer step ``start``.

    Epoch e orders all clips: row groups are permuted with seed (seed, e) and the rows of each group shuffled, so
    consecutive clips come from the same Parquet row group (the unit of I/O). Step k of the epoch trains on the
    next S = batch_size x grad_accum x world clips of that order (the *global batch*; a last partial step is
    dropped); rank r takes the contiguous positions [r A B, (r + 1) A B) of it (A = grad_accum, B = batch_size)
    and micro-batch a the positions r A B + a B .. + B (:meth:`positions`). The global batch of every step is
    therefore the same whatever the number of processes (and grad_accum) that S is split into: N processes with
    batch B train what one process with batch N x B trains. The order is a pure function of (seed, epoch), so a
    resumed run sees exactly the batches an uninterrupted one would, on any number of processes.
    """

    def __init__(self, row_groups: Sequence[Any], batch_size: int, seed: int, rank: int, world: int,
                 start: int = 0, grad_accum: int = 1) -> None:
        self.groups = [(g.first, g.rows) for g in row_groups]
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.grad_accum, self.start = grad_accum, start
        self.global_batch = batch_size * grad_accum * world
        n = sum(r for _, r in self.groups)
        self.per_epoch = n // self.global_batch  # optimizer steps per epoch
        if self.per_epoch == 0:
            raise ValueError(f"{n} clips cannot fill one global batch of {self.global_batch} = batch_size "
                             f"{batch_size} x grad_accum {grad_accum} x {world} process(es)")

    def epoch_order(self, epoch: int) -> list[int]:
        """All clip indices in the order of ``epoch`` (the same on every rank)."""
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(len(self.groups))
        return [first + int(i) for first, rows in (self.groups[p] for p in perm) for i in rng.permutation(rows)]

    def positions(self, micro: int) -> range:
        """Positions in the step's global batch of this rank's micro-batch ``micro`` (for per-sample noise)."""
        first = (self.rank * self.grad_accum + micro) * self.batch_size
        return range(first, first + self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while True:
            epoch, k = divmod(step, self.per_epoch)
            order = self.epoch_order(epoch)
            for s in range(k, self.per_epoch):
                base = s * self.global_batch
                for a in range(self.grad_accum):
                    p = self.positions(a)
                    yield order[base + p.start : base + p.stop]
            step = (epoch + 1) * self.per_epoch


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def step_generator(seed: int, rank: int, micro_step: int) -> torch.Generator:
    """An RNG shared by a step: a pure function of (seed, stream, step) (the same on every rank for a given
    ``rank`` argument, e.g. DMD's exit step with ``rank=0``), so a resumed run repeats it."""
    s = int(np.random.SeedSequence([seed, rank, micro_step]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(s)


def sample_generators(seed: int, step: int, positions: Iterable[int]) -> list[torch.Generator]:
    """One RNG per sample: a pure function of (seed, step, position of the sample in the step's global batch).
    Every random draw of a sample (its noise level, its noise) comes from its own generator, so the draws do not
    depend on how the global batch is split over processes and micro-batches, nor on a resume."""
    out = []
    for p in positions:
        s = int(np.random.SeedSequence([seed, step, p, 23]).generate_state(1, np.uint64)[0] >> 1)
        out.append(torch.Generator().manual_seed(s))
    return out


def batch_randn(gens: Sequence[torch.Generator], shape: Sequence[int]) -> torch.Tensor:
    """[len(gens), *shape] standard normal, row i from ``gens[i]`` (float32, CPU)."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in gens])


def batch_rand(gens: Sequence[torch.Generator]) -> torch.Tensor:
    """[len(gens)] uniform in [0, 1), entry i from ``gens[i]``."""
    return torch.cat([torch.rand(1, generator=g) for g in gens])


# ==========================================================================================================
# The networks around the DiT


def _weights_ref(path: Path, out_dir: Path) -> str:
    """How a checkpoint refers to the VAE / image-encoder file: relative to a checkpoint folder
    (``out_dir/checkpoints/step-N``) when the file is inside the run folder (the run can be moved), else absolute."""
    p, root = path.resolve(), out_dir.resolve()
    if p.is_relative_to(root):
        return os.path.relpath(p, root / "checkpoints" / "step")
    return os.fspath(p)


def prepare_vae(cfg: TrainConfig, mcfg: ModelConfig, shards_dir: Path, out_dir: Path, d: Dist, progress: bool,
                spec: ConditionSpec, run_log: RunLog | None = None) -> tuple[WanVAE, Path, float | None]:
    """The VAE: loaded from ``vae_checkpoint``, reused from ``out_dir/vae.safetensors``, or (small configs) fitted
    to the first ``vae_clips`` clips on rank 0 and saved there."""
    target = out_dir / "vae.safetensors"
    if cfg.vae_checkpoint:
        return load_vae(cfg.vae_checkpoint, mcfg.vae, d.device), Path(cfg.vae_checkpoint).resolve(), None
    psnr = None
    fit_here = not target.is_file()
    barrier(d)  # every rank has looked before rank 0 writes the file: they agree on fitting it
    if fit_here:
        if cfg.vae_train_steps <= 0:
            raise ValueError(f"model {cfg.model!r} needs train.vae_checkpoint (e.g. Wan2.1_VAE.pth): "
                             "vae_train_steps is 0, so no VAE is fitted")
        if d.main:
            from curation.reader import ShardDataset

            ds = ShardDataset(shards_dir, split="train")
            n = min(len(ds), cfg.vae_clips)
            t = 1 + 4 * ((ds.index.clip_frames - 1) // 4)  # all of each clip, as 1 + 4k frames
            clips = torch.stack([ds[i]["frames"][:t] for i in range(n)])  # uint8 [N, T, 3, H, W]
            vae = WanVAE(mcfg.vae).to(d.device)
            fit = train_vae(vae, clips, steps=cfg.vae_train_steps, batch_size=cfg.vae_batch_size,
                            crop_size=tuple(cfg.vae_crop), lr=cfg.vae_lr, seed=cfg.seed, progress=progress,
                            run_log=run_log)
            mean, std = latent_statistics(vae, clips.to(d.device))
            set_latent_statistics(vae, mean, std)
            psnr = fit.psnr_db
            if fit.r2 < 0.5:
                log.warning("the VAE warm-up explains only %.0f%% of the clips' variance after %d attempts: raise "
                            "train.vae_train_steps or set train.vae_checkpoint", 100 * fit.r2, fit.attempts)
            save_module(target, vae, vae.cfg, {"trained_steps": cfg.vae_train_steps, "attempts": fit.attempts,
                                               "final_mse": fit.losses[-1], "psnr_db": psnr, "r2": fit.r2, "clips": n})
        barrier(d)
    else:
        psnr = read_meta(target).get("psnr_db")
    return load_vae(target, device=d.device), target, psnr


def prepare_image_encoder(cfg: TrainConfig, mcfg: ModelConfig, out_dir: Path, d: Dist) -> tuple[ImageEncoder, Path]:
    """The frozen image encoder: CLIP weights from ``image_encoder_checkpoint``, or (small configs) a seeded random
    ViT saved once to ``out_dir/image_encoder.safetensors`` (its tokens are still a fixed function of frame 0)."""
    if cfg.image_encoder_checkpoint:
        p = Path(cfg.image_encoder_checkpoint)
        return load_image_encoder(p, mcfg.image_encoder, d.device), p.resolve()
    if cfg.model.startswith("mg2"):
        raise ValueError(f"model {cfg.model!r} needs train.image_encoder_checkpoint (Wan's CLIP ViT-H/14 .pth)")
    target = out_dir / "image_encoder.safetensors"
    if not target.is_file() and d.main:
        torch.manual_seed(cfg.seed + 1)
        save_module(target, ImageEncoder(mcfg.image_encoder), mcfg.image_encoder, {"random_init_seed": cfg.seed + 1})
    barrier(d)
    return load_image_encoder(target, device=d.device), target


def build_model(cfg: TrainConfig, mcfg: ModelConfig, d: Dist) -> WorldModelDiT:
    """The DiT in fp32 on the device, optionally from ``init_checkpoint`` (strict, or matching keys only)."""
    torch.manual_seed(cfg.seed)
    dit = WorldModelDiT(mcfg.dit)
    if cfg.init_checkpoint:
        if cfg.init_strict:
            load_checkpoint(dit, cfg.init_checkpoint)
        else:
            sd = strip_prefix(read_state_dict(cfg.init_checkpoint))
            missing, unexpected, mismatched = compare_state_dict(dit, sd)
            bad = {k for k, _, _ in mismatched}
            dit.load_state_dict({k: v for k, v in sd.items() if k not in unexpected and k not in bad}, strict=False)
            if d.main:
                print(f"init_checkpoint {cfg.init_checkpoint}: loaded {len(sd) - len(unexpected) - len(bad)} tensors; "
                      f"{len(missing)} missing (kept initialised), {len(unexpected)} unexpected and "
                      f"{len(bad)} mis-shaped (ignored): missing {missing[:10]}, unexpected {unexpected[:10]}")
    dit.gradient_checkpointing = cfg.gradient_checkpointing
    return dit.to(d.device)


# ==========================================================================================================
# One batch -> model inputs, and the loss


@dataclass
class Inputs:
    """DiT inputs of a batch: clean latents x0 [B, 16, F, h, w], i2v condition y [B, 20, F, h, w], image tokens
    [B, Lc, D], keyboard [B, T, K], mouse [B, T, 2] or None, and the clip ids."""

    x0: torch.Tensor
    cond: torch.Tensor
    image_tokens: torch.Tensor
    keyboard: torch.Tensor
    mouse: torch.Tensor | None
    clip_ids: list[str]


def batch_inputs(batch: Mapping[str, Any], spec: ConditionSpec, device: torch.device, vae: WanVAE,
                 image_encoder: ImageEncoder, autocast_dtype: torch.dtype | None, r: int) -> Inputs:
    """Turn a collated batch (reader items with ``frames``, or latent-cache items) into :class:`Inputs`."""
    n = spec.num_frames
    if "latents" in batch:  # latent cache
        x0, cond_lat = batch["latents"].to(device), batch["cond_latents"].to(device)
        tokens = batch["image_tokens"].to(device) if "image_tokens" in batch else None
        if tokens is None:
            raise ValueError("the latent cache has no image features: re-run encode_latents with an image encoder")
    else:  # pixels: encode on the fly
        frames = batch["frames"][:, :n].to(device, non_blocking=True)
        x0, cond_lat, tokens = encode_clips(vae, image_encoder, frames, autocast_dtype=autocast_dtype)
    keyboard = spec.keyboard(batch["keyboard"][:, :n]).to(device)
    mouse = spec.mouse(batch["mouse"][:, :n])
    return Inputs(x0, i2v_condition(cond_lat, r), tokens, keyboard, None if mouse is None else mouse.to(device),
                  list(batch["clip_id"]))


def flow_matching_loss(dit: nn.Module, inp: Inputs, shift: float, gens: Sequence[torch.Generator],
                       autocast_dtype: torch.dtype | None, u: torch.Tensor | None = None) -> torch.Tensor:
    """The rectified-flow loss of one batch (see the module doc): the mean over the batch, sample i drawing its
    noise level and noise from ``gens[i]`` (:func:`sample_generators`). ``u`` fixes the noise levels (validation)."""
    x0 = inp.x0
    b = x0.shape[0]
    if len(gens) != b:
        raise ValueError(f"flow_matching_loss needs one generator per sample: {len(gens)} for a batch of {b}")
    if u is None:
        u = batch_rand(gens)
    s = shift_sigma(u, shift).to(x0.device)  # [B] noise level in [0, 1]
    eps = batch_randn(gens, x0.shape[1:]).to(x0.device)
    s5 = s.view(b, 1, 1, 1, 1)
    x_s = (1.0 - s5) * x0 + s5 * eps
    target = eps - x0
    with torch.autocast(x0.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        v = dit(x_s, s * 1000.0, inp.image_tokens, inp.cond, inp.keyboard, inp.mouse)
    return F.mse_loss(v.float(), target)


# ==========================================================================================================
# The loop


def _lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant or a cosine from ``lr`` to 10 % of it at ``max_steps``."""
    lr = warmup_lr(cfg.lr, step, cfg.warmup_steps)
    if cfg.lr_schedule == "cosine":
        p = min(1.0, step / max(1, cfg.max_steps))
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))
    return lr


_RUN_KEYS = ("model", "mode", "action_blocks", "height", "width", "num_frames", "keyboard_map", "timestep_shift",
             "seed", "betas", "weight_decay", "vae_checkpoint", "image_encoder_checkpoint")


def _mouse_sample(shards_dir: Path, n: int) -> Iterator[np.ndarray]:
    """The mouse arrays of the first ``n`` clips (frames not decoded), for the mouse scale without manifest stats."""
    from curation.reader import ShardDataset

    ds = ShardDataset(shards_dir, decode=False, split="train")
    for i in range(min(n, len(ds))):
        yield ds[i]["mouse"].numpy()


def _check_resume(cfg: TrainConfig, spec: ConditionSpec, state: Mapping[str, Any], ckpt: Path, world: int) -> None:
    """Refuse to resume a run whose settings (or resolved conditions: mapping, mouse scale) would change it. The
    number of processes may change as long as the global batch (batch_size x grad_accum x processes) stays."""
    old = state.get("run", {}).get("train", {})
    new = to_jsonable(cfg)
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in _RUN_KEYS if k in old and old.get(k) != new.get(k)]
    old_spec = state.get("run", {}).get("conditions")
    if old_spec is not None and old_spec != spec.to_dict():
        changed.append(f"conditions: {old_spec} -> {spec.to_dict()}")
    check_resume(ckpt, state, "train", batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, world=world,
                 old_batch=int(old.get("batch_size", cfg.batch_size)) * int(old.get("grad_accum", 1)), changed=changed)


def _data_contract(cfg: TrainConfig, shards_dir: Path) -> tuple[ModelConfig, Any, ConditionSpec]:
    """(model config, shards index, conditions): what the run trains on, checked against the data (action space,
    resolution, clip length, mouse scale)."""
    from curation.reader import open_shards

    mcfg = get_config(cfg.model, cfg.mode, cfg.action_blocks)
    index = open_shards(shards_dir)
    spec = build_condition_spec(
        cfg.mode, index.keys, num_frames=cfg.num_frames, height=cfg.height, width=cfg.width,
        keyboard_map=cfg.keyboard_map, mouse_scale=cfg.mouse_scale, manifest=index.manifest,
        mouse_sample=_mouse_sample(shards_dir, 256),
        dataset_geometry=(index.height, index.width, index.clip_frames), where=str(shards_dir / "manifest.json"),
    )
    return mcfg, index, spec


@dataclass
class _TrainData:
    """What the DiT trains on: the conditions, the frozen VAE (fitted first for small configs) and image encoder
    with their files, and the train / validation sets (the latent cache, or the clips encoded every step)."""

    spec: ConditionSpec
    vae: WanVAE
    vae_path: Path
    vae_psnr: float | None
    image_encoder: ImageEncoder
    enc_path: Path
    train: Any
    val: Any
    device: torch.device
    amp: torch.dtype | None
    r: int  # the VAE's temporal compression

    def inputs(self, batch: Mapping[str, Any]) -> Inputs:
        return batch_inputs(batch, self.spec, self.device, self.vae, self.image_encoder, self.amp, self.r)

    @property
    def row_groups(self) -> Sequence[Any]:
        return self.train.row_groups if isinstance(self.train, LatentDataset) else self.train.index.row_groups


def _prepare_data(cfg: TrainConfig, mcfg: ModelConfig, spec: ConditionSpec, shards_dir: Path, out_dir: Path,
                  s: Session, progress: bool, run_log: RunLog) -> _TrainData:
    """The frozen networks, then the datasets: with ``cache_latents`` every clip is encoded once
    (:mod:`model.latents`). Without val clips the validation uses the first training clips."""
    from curation.reader import ShardDataset

    d = s.d
    vae, vae_path, vae_psnr = prepare_vae(cfg, mcfg, shards_dir, out_dir, d, progress, spec, run_log)
    image_encoder, enc_path = prepare_image_encoder(cfg, mcfg, out_dir, d)
    if cfg.cache_latents:
        latents_dir = encode_latents(shards_dir, vae, out_dir / "latents", image_encoder=image_encoder,
                                     num_frames=cfg.num_frames, dtype=cfg.latent_dtype, device=d.device,
                                     progress=progress and d.main, rank=d.rank, world_size=d.world)
        dataset: Any = LatentDataset(latents_dir, split="train")
        val_set: Any = LatentDataset(latents_dir, split="val")
    else:
        dataset = ShardDataset(shards_dir, split="train")
        val_set = ShardDataset(shards_dir, split="val")
    if len(dataset) == 0:
        raise ValueError(f"{shards_dir}: the train split has no clips (manifest.json split.clip_counts); record more "
                         "episodes or lower curate.split.val / test")
    if len(val_set) == 0:  # no held-out clips: validate on the first training clips, as before splits existed
        val_set = dataset
    return _TrainData(spec, vae, vae_path, vae_psnr, image_encoder, enc_path, dataset, val_set, d.device, s.amp,
                      mcfg.vae.temporal_compression)


def _loader(dataset: Any, sampler: ClipBatches, cfg: TrainConfig, d: Dist) -> DataLoader:
    from capture.lifecycle import child_of_this_process

    return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers, collate_fn=collate,
                      pin_memory=d.device.type == "cuda", persistent_workers=cfg.num_workers > 0,
                      worker_init_fn=child_of_this_process() if cfg.num_workers > 0 else None)


def _run_description(cfg: TrainConfig, mcfg: ModelConfig, index: Any, data: _TrainData, shards_dir: Path,
                     out_dir: Path) -> dict[str, Any]:
    """The run description stored in every checkpoint's metadata (what :func:`model.bundle.load_bundle` reads)."""
    return {
        "format": "playmill.world_model/1", "train": to_jsonable(cfg), "model": to_jsonable(mcfg),
        "conditions": data.spec.to_dict(), "fps": float(index.fps), "timestep_shift": cfg.timestep_shift,
        # paths relative to a checkpoint folder (out_dir/checkpoints/step-N/) when inside the run
        "vae": _weights_ref(data.vae_path, out_dir),
        "image_encoder": _weights_ref(data.enc_path, out_dir),
        "dataset": {"shards": os.fspath(shards_dir.resolve()), "clips": index.num_clips},
    }


def _model_and_optimizer(cfg: TrainConfig, mcfg: ModelConfig, d: Dist, amp: torch.dtype | None
                         ) -> tuple[WorldModelDiT, nn.Module, list[nn.Parameter], torch.optim.Optimizer]:
    """(the DiT, the module the steps call: the DiT replicated or sharded over the ranks and optionally compiled,
    its trainable parameters, AdamW over them)."""
    dit = build_model(cfg, mcfg, d)
    model: nn.Module = wrap(dit, d, cfg.parallel, bf16=amp is not None)
    if cfg.compile:
        model = torch.compile(model)
    params = [p for p in dit.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                            fused=d.device.type == "cuda")
    return dit, model, params, opt


def _val_loss(dit: nn.Module, inp: Inputs, cfg: TrainConfig, amp: torch.dtype | None) -> float:
    """The loss of the fixed validation batch: noise from seed + 999 and evenly spaced noise levels. Every rank
    evaluates all of it (a sharded model needs every rank in its forward), so the value is the same on any world
    size."""
    n = inp.x0.shape[0]
    dit.eval()
    with torch.no_grad():
        v = flow_matching_loss(dit, inp, cfg.timestep_shift, sample_generators(cfg.seed + 999, 0, range(n)), amp,
                               u=(torch.arange(n) + 0.5) / n)
    dit.train()
    return float(v)


def _accumulate_gradients(model: nn.Module, batches: Iterator[dict[str, Any]], sampler: ClipBatches,
                          data: _TrainData, cfg: TrainConfig, step: int, s: Session, out_dir: Path, bar: Any) -> float:
    """The gradient of one optimizer step: ``grad_accum`` micro-batches, each loss scaled by 1 / grad_accum and
    every sample drawing its noise from its own generator; the gradients are reduced over the ranks once, after
    the last. A non-finite loss stops every rank (:func:`~model.runloop.stop_if_nonfinite`: ``nonfinite.json``
    names the clips). Returns the step's mean loss on this rank."""
    total = 0.0
    for micro in range(cfg.grad_accum):
        inp = data.inputs(next(batches))
        loss = flow_matching_loss(model, inp, cfg.timestep_shift,
                                  sample_generators(cfg.seed, step, sampler.positions(micro)), s.amp)
        stop_if_nonfinite(s, out_dir, loss, step + 1, {
            "step": step + 1, "micro_batch": micro, "rank": s.d.rank, "clip_ids": inp.clip_ids,
            "loss": str(float(loss.detach()))}, inp.clip_ids, bar)
        with gradient_sync(model, micro == cfg.grad_accum - 1):
            (loss / cfg.grad_accum).backward()
        total += float(loss.detach()) / cfg.grad_accum
    return total


def train(
    config: TrainConfig,
    shards_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    progress: bool = True,
    *,
    resume: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (or resume training) a base world model on a shards folder.

    Args:
        config: :class:`TrainConfig` (see :func:`get_train_config`).
        shards_dir: a curated "playmill.shards/1" folder (read with :mod:`curation.reader`): training reads its
            ``train`` split and the validation loss uses its ``val`` split (the first training clips when val is
            empty); ``test`` clips are never read.
        out_dir: the run folder (layout in :mod:`model.bundle`); an existing run there is resumed from its
            latest checkpoint when ``resume`` (settings that change the run must match).
        progress: tqdm bars on rank 0.
        on_step: called as ``on_step(step, loss)`` after every optimizer step (rank 0), e.g. for a UI.

    Under torchrun every process calls it (:mod:`model.parallel`; ``config.parallel`` picks DDP or FSDP): each
    trains on its part of every global batch, rank 0 writes the log and the checkpoints. A process group that
    exists already is used (and left open); one this call creates is destroyed at the end.

    Returns:
        :class:`TrainResult`. Raises :class:`NonFiniteLossError` on a NaN/inf loss,
        :class:`~model.conditions.ConditionError` / ``ShardsError`` when the data does not fit the config.
    """
    cfg = config
    s = start_session(cfg.precision)
    d, amp = s.d, s.amp
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # ---- data contract, frozen networks, datasets; the DiT, optimizer, EMA; resume ----
    mcfg, index, spec = _data_contract(cfg, shards_dir)
    if d.main:
        write_json_atomic(out_dir / "train_config.json", cfg)
    run_log = RunLog(out_dir, cfg.logger, config=cfg, enabled=d.main)
    data = _prepare_data(cfg, mcfg, spec, shards_dir, out_dir, s, progress, run_log)
    dit, model, params, opt = _model_and_optimizer(cfg, mcfg, d, amp)
    ema = new_ema(dit)
    run = _run_description(cfg, mcfg, index, data, shards_dir, out_dir)
    resumed = resume_checkpoint(out_dir, resume, dit, ema, opt,
                                lambda ckpt, state: _check_resume(cfg, spec, state, ckpt, d.world))
    start_step = 0 if resumed is None else int(resumed[1]["step"])
    loss_value = float("nan") if resumed is None else float(resumed[1].get("loss", float("nan")))
    sampler = ClipBatches(data.row_groups, cfg.batch_size, cfg.seed, d.rank, d.world, start=start_step,
                          grad_accum=cfg.grad_accum)
    batches = iter(_loader(data.train, sampler, cfg, d))
    val_inp = data.inputs(collate([data.val[i] for i in range(min(cfg.val_clips, len(data.val)))]))  # fixed
    samples_per_step = cfg.batch_size * cfg.grad_accum * d.world

    def save(step: int) -> Path | None:  # every rank (gathers shards), rank 0 writes
        state = {"loss": loss_value, "global_batch": samples_per_step, "world_size": d.world}
        return save_train_checkpoint(out_dir, step, dit, ema, opt, run, state, cfg.keep_last, write=d.main)

    # every rank evaluates; a resumed run reports the step-0 loss it logged when it started
    val_initial = _val_loss(dit, val_inp, cfg, amp) if start_step == 0 else _logged_initial_val_loss(run_log.path)
    if val_initial is not None:
        run_log.scalars(0, {"val_loss": val_initial}, prefix="train")
    dit.train()
    bar = step_bar(s, f"train {cfg.name}", cfg.max_steps, start_step, progress)
    step, steps_timed, t_loop = start_step, 0, 0.0
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        lr = _lr_at(cfg, step)
        set_lr(opt, lr)
        total = _accumulate_gradients(model, batches, sampler, data, cfg, step, s, out_dir, bar)
        grad_norm = optimizer_step(opt, params, cfg.grad_clip)
        ema_update(ema, dit, cfg.ema_decay if step >= cfg.ema_start else 0.0)  # copies the weights until ema_start
        step += 1
        loss_value = all_mean(d, total)  # the mean over ranks (what the averaged gradient optimised)
        t_loop += time.perf_counter() - t0
        steps_timed += 1
        bar.update(1)
        if on_step is not None and d.main:
            on_step(step, loss_value)
        # ---- bookkeeping ----
        if due(step, cfg.log_every, cfg.max_steps):
            row = {"loss": loss_value, "lr": lr, "grad_norm": grad_norm,
                   "samples_per_s": samples_per_step * steps_timed / max(t_loop, 1e-9), "elapsed_s": s.elapsed_s()}
            if due(step, cfg.val_every, cfg.max_steps):
                row["val_loss"] = _val_loss(dit, val_inp, cfg, amp)
            run_log.scalars(step, row, prefix="train")
        if due(step, cfg.sample_every or cfg.val_every, cfg.max_steps):
            if run_log.logger != "none":  # every rank runs the forward (a sharded model needs them all); rank 0 logs
                run_log.images(step, "train/samples", _val_preview(dit, data.vae, val_inp, cfg.timestep_shift, amp),
                               cols=val_inp.x0.shape[2] * data.r - data.r + 1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
        if due(step, cfg.ckpt_every, cfg.max_steps):
            save(step)
            barrier(d)
    final = finish_run(s, out_dir, step, save, bar, run_log)
    return TrainResult(
        checkpoint=final, out_dir=out_dir, steps=step, final_loss=loss_value,
        val_loss_initial=val_initial, val_loss_final=run_log.last("val_loss"),
        samples_per_s=samples_per_step * steps_timed / max(t_loop, 1e-9) if steps_timed else 0.0,
        elapsed_s=s.elapsed_s(), vae_checkpoint=data.vae_path, vae_psnr=data.vae_psnr,
        resumed_from=start_step, history=run_log.history,
    )


@torch.no_grad()
def _val_preview(dit: nn.Module, vae: WanVAE, inp: Inputs, shift: float, amp: torch.dtype | None) -> np.ndarray:
    """uint8 frames [2T, H, W, 3]: the first validation clip (VAE round trip) then the DiT's one-step estimate of
    it from the half-noised latents (x0_hat = x_s - s v at s = shift(0.5))."""
    was_training = dit.training
    dit.eval()
    x0 = inp.x0[:1]
    s = float(shift_sigma(torch.tensor([0.5]), shift)[0])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)).to(x0.device)
    x_s = (1.0 - s) * x0 + s * eps
    with torch.autocast(x0.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        v = dit(x_s, torch.full((1,), s * 1000.0, device=x0.device), inp.image_tokens[:1], inp.cond[:1],
                inp.keyboard[:1], None if inp.mouse is None else inp.mouse[:1])
    x0_hat = x_s - s * v.float()
    real, pred = (frames_uint8(vae.decode(z, streaming=False)[0]) for z in (x0, x0_hat))
    dit.train(was_training)
    return np.concatenate([real, pred])


def _logged_initial_val_loss(log_path: Path) -> float | None:
    """The step-0 validation loss a resumed run logged when it started (None when the log has none)."""
    try:
        with open(log_path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if row.get("step") == 0 and row.get("val_loss") is not None:
                    return float(row["val_loss"])
    except (OSError, ValueError):
        return None
    return None

