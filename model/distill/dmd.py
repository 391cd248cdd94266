"""DMD self-forcing: the causal student generates with its own KV cache and is pulled towards the teacher's
distribution by distribution-matching distillation. The whole algorithm, top to bottom, in one file.

Three networks: the student G (causal, trainable; from ``distill init``), the real score R (the frozen
bidirectional teacher) and the fake score C (the critic: bidirectional, trainable, starts as a copy of the
teacher; it learns the flow of the *student's* samples). One iteration ``step`` (``critic_per_gen`` = 5 in
Matrix-Game 2.0 / Self-Forcing):

    c, y    = first-frame conditions (real first frames from shards, or those of the ODE pairs: data-free)
    kb, m   ~ the designed action distribution (model.distill.actions)          no clips, no recorded actions
    e       ~ U{0 .. K-1}                                    one exit step, shared by every block
    x       = rollout(G, eps, c, y, kb, m, exit=e)           block by block with the KV cache; only the exit-step
                                                             forward of each block keeps its graph (Self-Forcing)
    if step % critic_per_gen == 0:                           generator update
        s  = clamp(shift(u), min_sigma, max_sigma),  u ~ U(0, 1)       per sample
        x_s = (1 - s) x + s n,  n ~ N(0, I)                  (no gradient)
        x0_real = x_s - s R(x_s, 1000 s)                     the teacher's denoising of the student's sample
        x0_fake = x_s - s C(x_s, 1000 s)                     the critic's
        g  = (x0_fake - x0_real) / mean|x - x0_real|          DMD gradient, normalised per sample
        L_G = 0.5 || x - sg(x - g) ||^2                     d L_G / d x = g: moves x towards the real score
        AdamW step on G (clip), EMA of G
    critic update (every step), on sg(x):
        x_s = (1 - s) x + s n,  L_C = || C(x_s, 1000 s) - (n - x) ||^2      flow matching on the student's samples
        AdamW step on C (clip)

Settings (``mg2`` preset): AdamW betas (0, 0.999), weight decay 0.01, generator lr 2e-6, critic lr 4e-7 (the
paper quotes 6e-6 for its stages), gradient clip 10, EMA 0.99 from step 200, timesteps shifted by 5 and clamped
to [20, 980], 4k steps. Self-Forcing's classifier-free guidance of the real score is not used: the teacher has no
unconditional branch (no text; actions are always given).

First frames. DMD needs no clips or actions, but an image-to-video student needs first frames: with
``shards_dir`` the first frames of (up to ``first_frames``) real clips are encoded with the teacher's VAE and
image encoder; without it the conditions stored in the ODE pairs the student was initialised on are reused
(``first_frame_latent`` / ``clip_feature``; no video is read). Rollouts then have the pairs' length.

Several processes (torchrun, :mod:`model.parallel`): the student and the critic are replicated (``parallel:
ddp``) or sharded (``fsdp``, the frozen teacher too); each step draws the first frames and actions of the global
batch (``batch_size x processes`` rollouts) on every rank and each rank rolls out its contiguous part, every
sample with its own generator, so N processes with batch B train what one process with batch N x B trains.

Checkpoints: ``checkpoints/step-N/`` holds the student (``dit.safetensors``, ``dit_ema.safetensors``,
``optimizer.safetensors``) as a loadable student run (:mod:`model.distill.init`, stage "dmd"), plus
``critic.safetensors`` and ``critic_optimizer.safetensors``; a rerun resumes (draws are pure functions of
(seed, step)); a non-finite loss stops with the step named and the last checkpoint kept.

Library entry point: :func:`distill_dmd` (CLI ``playmill distill dmd``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import model_validator

from capture.settings import Field, Frames1p4k, Invalid, from_preset, settings

from ..bundle import (
    Bundle,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_meta,
    read_tensors,
    save_train_checkpoint,
    write_json_atomic,
)
from ..checkpoint import load_state_dict_strict
from ..conditions import ConditionError
from ..dit import WorldModelDiT, i2v_condition
from ..parallel import ParallelMode, all_mean, barrier, main_first, wrap
from ..run_log import RunLog, frames_uint8
from ..runloop import (
    Session, check_resume, due, ema_update, finish_run, new_ema, optimizer_step, resume_checkpoint,
    start_session, step_bar, stop_if_nonfinite
)
from ..schedule import shift_sigma
from ..train import batch_rand, batch_randn, sample_generators, step_generator
from .actions import ActionDistribution, sample_action_batch
from .init import (
    CausalSpec,
    check_same_model,
    load_student,
    resolve_causal,
    student_run_description,
    trainable_copy,
    training_causal,
)
from .ode_pairs import OdePairs, check_model_actions, load_teacher


@settings
class DistillDMDConfig:
    """DMD self-forcing settings (module doc). Each iteration updates the critic; every ``critic_per_gen``-th
    also the generator. The score timesteps are s = clamp(shift(u), min_sigma, max_sigma). The checkpoint
    stores ``causal`` for generation."""

    name: str = Field("tiny", min_length=1, description="the run's name")
    causal: CausalSpec = Field(None, description="the student's causal config (null: the student-init checkpoint's)")
    train_hide_first_frame: bool | None = Field(
        None, description="hide latent frame 0 from later blocks while training (null: as in causal)")
    max_steps: int = Field(60, ge=1, description="iterations")
    critic_per_gen: int = Field(2, ge=1, description="critic updates per generator update")
    batch_size: int = Field(2, ge=1, description="rollouts per iteration (per process under torchrun)")
    num_frames: Frames1p4k | None = Field(None, description="raw frames per rollout, 1 + 4k (null: the teacher's clips)")
    first_frames: int = Field(256, ge=1, description="distinct first frames to draw from")
    actions: ActionDistribution = Field(default_factory=ActionDistribution, description="the designed action distribution")
    lr_gen: float = Field(1e-4, gt=0, description="generator learning rate")
    lr_critic: float = Field(1e-3, gt=0, description="critic learning rate")
    betas: tuple[float, float] = Field((0.0, 0.999), description="AdamW betas")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(10.0, gt=0, description="gradient-norm clip")
    ema_decay: float = Field(0.9, ge=0, lt=1, description="EMA decay of the generator")
    ema_start: int = Field(0, ge=0, description="the EMA copies the weights until this step")
    shift: float | None = Field(None, gt=0, description="shift of the score timesteps (null: the teacher's)")
    min_sigma: float = Field(0.02, ge=0, le=1, description="lowest score noise level")
    max_sigma: float = Field(0.98, ge=0, le=1, description="highest score noise level")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU")
    parallel: ParallelMode = Field("ddp", description="under torchrun: ddp (student and critic on every process) or "
                                   "fsdp (FSDP2: sharded, the frozen teacher too); batch_size is per process")
    gradient_checkpointing: bool = Field(False, description="recompute each block of the student and the critic in "
                                         "the backward pass (less memory)")
    use_ema_init: bool = Field(True, description="start from the initialised student's EMA weights")
    seed: int = Field(0, ge=0, description="seed of the draws (a resumed run equals an uninterrupted one)")
    log_every: int = Field(5, ge=1, description="steps between log rows")
    ckpt_every: int = Field(50, ge=1, description="steps between checkpoints")
    keep_last: int = Field(2, ge=1, description="newest checkpoints kept")

    @model_validator(mode="after")
    def _check(self) -> "DistillDMDConfig":
        if self.min_sigma >= self.max_sigma:
            raise Invalid("min_sigma", self.min_sigma, f"less than max_sigma ({self.max_sigma})")
        return self


DMD_PRESETS: dict[str, DistillDMDConfig] = {
    "tiny": DistillDMDConfig(),
    "mg2": DistillDMDConfig(name="mg2", train_hide_first_frame=True, max_steps=4000, critic_per_gen=5, batch_size=1,
                            lr_gen=2e-6, lr_critic=4e-7, ema_decay=0.99, ema_start=200, shift=5.0,
                            log_every=10, ckpt_every=250, keep_last=3),
}


def get_distill_dmd_config(name: str = "tiny", **overrides: Any) -> DistillDMDConfig:
    """A preset ("tiny", "mg2") with overrides (``actions`` may give only some of its keys);
    :class:`capture.settings.ConfigError` naming any bad key."""
    return from_preset(DistillDMDConfig, DMD_PRESETS, name, overrides, "distill.dmd")


@dataclass
class DistillDMDResult:
    """``checkpoint``: the final student checkpoint folder (a student run: ``load_bundle(out_dir)``);
    ``generator_updates``: generator steps taken in total; ``history``: logged rows (``out_dir/log.jsonl``)."""

    checkpoint: Path
    out_dir: Path
    steps: int
    generator_updates: int
    critic_loss_first: float | None
    critic_loss_last: float | None
    resumed_from: int
    elapsed_s: float
    first_frames: str
    history: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------
# First frames


def first_frame_conditions(bundle: Any, student_run: Mapping[str, Any], shards_dir: Path | None, num_frames: int | None,
                           limit: int, device: torch.device, amp: torch.dtype | None
                           ) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    """(cond latents [N, 16, F, h, w], image tokens [N, Lc, D], raw frames per rollout, description): from the
    first frames of up to ``limit`` clips of ``shards_dir`` (encoded with the teacher's VAE / image encoder), or,
    without shards, from the ODE pairs the student was initialised on."""
    from ..latents import encode_condition

    if shards_dir is not None:
        from curation.reader import ShardDataset, open_shards

        spec = bundle.spec
        n = num_frames or spec.num_frames
        index = open_shards(shards_dir)
        if (index.height, index.width) != (spec.height, spec.width):
            raise ConditionError(f"{shards_dir / 'manifest.json'}: clips are {index.width}x{index.height}; the teacher "
                                 f"works at {spec.width}x{spec.height}")
        ds = ShardDataset(shards_dir, split="train")
        if len(ds) == 0:
            raise ConditionError(f"{shards_dir}: no clips")
        conds, toks = [], []
        for i in range(min(limit, len(ds))):
            frame0 = ds[i]["frames"][0][None].to(device)
            c, t = encode_condition(bundle.vae, bundle.image_encoder, frame0, n, autocast_dtype=amp)
            conds.append(c[0].cpu())
            toks.append(t[0].cpu())
        return torch.stack(conds), torch.stack(toks), n, f"shards:{Path(shards_dir).resolve()}"
    pairs_dir = student_run.get("pairs")
    if not pairs_dir or not (Path(pairs_dir) / "manifest.json").is_file():
        raise ValueError("distill_dmd needs first frames: pass shards_dir (real clips' first frames), or a student "
                         f"initialised on ODE pairs that still exist (recorded: {pairs_dir!r})")
    pairs = OdePairs(pairs_dir)
    n = int(pairs.manifest["num_frames"])
    if num_frames is not None and num_frames != n:
        raise ValueError(f"distill_dmd.num_frames is {num_frames} but the ODE pairs' first frames {pairs_dir} were "
                         f"encoded for {n} frames; pass shards_dir to encode first frames at another length")
    seen: dict[str, int] = {}
    for i, cid in enumerate(pairs.clip_ids()):
        if cid not in seen:
            seen[cid] = i
        if len(seen) >= limit:
            break
    items = [pairs[i] for i in seen.values()]
    return (torch.stack([it["cond_latents"] for it in items]), torch.stack([it["image_tokens"] for it in items]), n,
            f"pairs:{Path(pairs_dir).resolve()}")


# ----------------------------------------------------------------------------------------------------------
# The two losses


def sample_sigmas(gens: Sequence[torch.Generator], shift: float, lo: float, hi: float) -> torch.Tensor:
    """Score timesteps as noise levels [B]: s = clamp(shift * u / (1 + (shift - 1) u), lo, hi), u ~ U(0, 1),
    sample i's u from ``gens[i]``."""
    return shift_sigma(batch_rand(gens), shift).clamp(lo, hi)


def dmd_loss(x: torch.Tensor, teacher: WorldModelDiT, critic: WorldModelDiT, tokens: torch.Tensor, cond: torch.Tensor,
             kb: torch.Tensor, ms: torch.Tensor | None, s: torch.Tensor, gens: Sequence[torch.Generator],
             amp: torch.dtype | None) -> tuple[torch.Tensor, dict[str, float]]:
    """The generator's DMD loss 0.5 || x - sg(x - grad) ||^2 with grad = (x0_fake - x0_real) / mean|x - x0_real|
    (module doc); ``x`` carries the student's graph; sample i's noise from ``gens[i]``. Stats: the squared norm of
    grad and the summed |x0_fake - x0_real| with its element count (summable over ranks)."""
    s5 = s.to(x.device).view(-1, 1, 1, 1, 1)
    noise = batch_randn(gens, x.shape[1:]).to(x.device)
    with torch.no_grad():
        x_s = (1 - s5) * x.detach() + s5 * noise
        t = (s * 1000.0).to(x.device)
        with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            v_real = teacher(x_s, t, tokens, cond, kb, ms).float()
            v_fake = critic(x_s, t, tokens, cond, kb, ms).float()
        x0_real = x_s - s5 * v_real
        x0_fake = x_s - s5 * v_fake
        norm = (x.detach() - x0_real).abs().mean(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1e-6)
        grad = torch.nan_to_num((x0_fake - x0_real) / norm)
    loss = 0.5 * F.mse_loss(x.double(), (x.detach() - grad).double())
    return loss.float(), {"dmd_grad_sq": float(grad.double().pow(2).sum()),
                          "score_gap_sum": float((x0_fake - x0_real).abs().double().sum()), "count": grad.numel()}


def critic_loss(x: torch.Tensor, critic: WorldModelDiT, tokens: torch.Tensor, cond: torch.Tensor, kb: torch.Tensor,
                ms: torch.Tensor | None, s: torch.Tensor, gens: Sequence[torch.Generator],
                amp: torch.dtype | None) -> torch.Tensor:
    """Flow matching of the critic on the student's (detached) samples: || C(x_s, 1000 s) - (n - x) ||^2, sample
    i's noise from ``gens[i]``."""
    x = x.detach()
    s5 = s.to(x.device).view(-1, 1, 1, 1, 1)
    noise = batch_randn(gens, x.shape[1:]).to(x.device)
    x_s = (1 - s5) * x + s5 * noise
    with torch.autocast(x.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        v = critic(x_s, (s * 1000.0).to(x.device), tokens, cond, kb, ms)
    return F.mse_loss(v.float(), noise - x)


# ----------------------------------------------------------------------------------------------------------
# The loop


_RESUME_KEYS = ("causal", "train_hide_first_frame", "critic_per_gen", "seed", "betas", "num_frames",
                "actions", "shift", "min_sigma", "max_sigma")


@dataclass
class _Networks:
    """The three networks (module doc) and their optimizers. ``*_model``: what the steps call (replicated or
    sharded over the ranks); ``student`` / ``critic``: the plain modules (weights, EMA, checkpoints)."""

    teacher: Bundle  # the frozen real score R (and the VAE of the previews)
    student_init: Bundle
    causal: Any  # the student's CausalConfig (stored for generation)
    train_causal: Any  # the one it trains with (train_hide_first_frame applied)
    student: WorldModelDiT
    critic: WorldModelDiT
    teacher_model: torch.nn.Module
    student_model: torch.nn.Module
    critic_model: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_c: torch.optim.Optimizer
    ema: dict[str, torch.Tensor]


def _networks(cfg: DistillDMDConfig, teacher: str | os.PathLike[str], student_init: str | os.PathLike[str],
              s: Session) -> _Networks:
    """Load the teacher and the initialised student (same model and action mode); the student G and the critic C
    start as trainable copies of them; AdamW for each (all parameters: the checkpoints' optimizer layout)."""
    tb = load_teacher(teacher, s.device, True)
    sb, stored_causal = load_student(student_init, "cpu", cfg.use_ema_init)
    check_same_model(tb.run, sb.run, f"teacher {tb.weights}", f"student_init {sb.weights}")
    mcfg = tb.model_config
    ccfg = stored_causal if cfg.causal is None else resolve_causal(cfg.causal, mcfg.name, mcfg.mode)
    cfg.actions.validate(mcfg.mode)
    student = trainable_copy(mcfg.dit, sb.dit, s.device, cfg.gradient_checkpointing)
    critic = trainable_copy(mcfg.dit, tb.dit, s.device, cfg.gradient_checkpointing)
    bf16 = s.amp is not None

    def adamw(net: WorldModelDiT, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(list(net.parameters()), lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)

    return _Networks(
        teacher=tb, student_init=sb, causal=ccfg, train_causal=training_causal(ccfg, cfg.train_hide_first_frame),
        student=student, critic=critic,
        teacher_model=wrap(tb.dit.eval().requires_grad_(False), s.d, cfg.parallel, bf16=bf16, trainable=False),
        student_model=wrap(student, s.d, cfg.parallel, bf16=bf16), critic_model=wrap(critic, s.d, cfg.parallel, bf16=bf16),
        opt_g=adamw(student, cfg.lr_gen), opt_c=adamw(critic, cfg.lr_critic), ema=new_ema(student))


@dataclass
class _Rollouts:
    """The inputs of this rank's rollouts of a step: first-frame conditions, designed actions, one generator per
    rollout (all its draws), its starting noise, and the description an error names them by."""

    cond: torch.Tensor
    tokens: torch.Tensor
    kb: torch.Tensor
    ms: torch.Tensor | None
    gens: list[torch.Generator]
    noise: torch.Tensor
    where: list[str]


def _draw_rollouts(cfg: DistillDMDConfig, step: int, net: _Networks, first: tuple, s: Session) -> _Rollouts:
    """The global batch's first frames and designed actions, drawn alike on every rank from (seed, step); this
    rank's contiguous part of it, each rollout with its own generator (so any number of processes draws the same)."""
    cond_bank, token_bank, n_frames, ff_desc = first
    mcfg = net.teacher.model_config
    act = mcfg.dit.action
    b, global_batch = cfg.batch_size, cfg.batch_size * s.d.world
    mine = slice(s.d.rank * b, (s.d.rank + 1) * b)  # this rank's rollouts in the global batch
    rng = np.random.default_rng([cfg.seed, step, 1])
    pick = rng.integers(0, len(cond_bank), global_batch)[mine]
    cond = i2v_condition(cond_bank[pick].to(s.device), mcfg.vae.temporal_compression)
    tokens = token_bank[pick].to(s.device)
    kb_np, ms_np = sample_action_batch(cfg.actions, mcfg.mode, global_batch, n_frames, rng)
    kb = torch.from_numpy(kb_np[mine]).to(s.device)
    ms = None if ms_np is None else torch.from_numpy(ms_np[mine]).to(s.device)
    check_model_actions(kb, ms, act.keyboard_dim, act.mouse_dim, "the designed action distribution (distill_dmd.actions)")
    where = [f"step {step + 1}: designed actions rng (seed {cfg.seed}, step {step}), first frames {pick.tolist()} "
             f"of {ff_desc}"]
    gens = sample_generators(cfg.seed, step, range(mine.start, mine.stop))  # every draw of a rollout
    noise = batch_randn(gens, (mcfg.dit.out_dim, *cond.shape[2:])).to(s.device)
    return _Rollouts(cond, tokens, kb, ms, gens, noise, where)


def _stop_if_nonfinite(s: Session, out: Path, step: int, what: str, loss: torch.Tensor, where: list[str],
                       bar: Any) -> None:
    record = {"step": step, "loss": what, "value": str(float(loss.detach())), "inputs": where}
    stop_if_nonfinite(s, out, loss, step, record,
                      where, bar)


def _generator_update(cfg: DistillDMDConfig, net: _Networks, x: torch.Tensor, ro: _Rollouts, shift: float, step: int,
                      s: Session, out: Path, bar: Any) -> dict[str, float]:
    """DMD through the exit-step forward of every block: one AdamW step on G and its EMA; the log row's entries."""
    sig = sample_sigmas(ro.gens, shift, cfg.min_sigma, cfg.max_sigma)
    loss_g, stats = dmd_loss(x, net.teacher_model, net.critic_model, ro.tokens, ro.cond, ro.kb, ro.ms, sig, ro.gens,
                             s.amp)
    _stop_if_nonfinite(s, out, step + 1, "generator", loss_g, ro.where, bar)
    loss_g.backward()
    row = {"gen_grad_norm": optimizer_step(net.opt_g, net.student.parameters(), cfg.grad_clip)}
    ema_update(net.ema, net.student, cfg.ema_decay if step >= cfg.ema_start else 0.0)
    d = s.d
    count = all_mean(d, stats["count"]) * d.world
    row.update({"gen_loss": all_mean(d, float(loss_g.detach())),
                "dmd_grad_norm": math.sqrt(all_mean(d, stats["dmd_grad_sq"]) * d.world),
                "score_gap": all_mean(d, stats["score_gap_sum"]) * d.world / count})
    return row


def _critic_update(cfg: DistillDMDConfig, net: _Networks, x: torch.Tensor, ro: _Rollouts, shift: float, step: int,
                   s: Session, out: Path, bar: Any) -> dict[str, float]:
    """Flow matching of the critic on the student's samples: one AdamW step on C; the log row's entries."""
    sig = sample_sigmas(ro.gens, shift, cfg.min_sigma, cfg.max_sigma)
    loss_c = critic_loss(x, net.critic_model, ro.tokens, ro.cond, ro.kb, ro.ms, sig, ro.gens, s.amp)
    _stop_if_nonfinite(s, out, step + 1, "critic", loss_c, ro.where, bar)
    loss_c.backward()
    row = {"critic_grad_norm": optimizer_step(net.opt_c, net.critic.parameters(), cfg.grad_clip)}
    row["critic_loss"] = all_mean(s.d, float(loss_c.detach()))
    return row


def _resume(cfg: DistillDMDConfig, net: _Networks, run: Mapping[str, Any], out: Path, enabled: bool,
            world: int) -> tuple[int, int]:
    """Resume from the run's latest checkpoint (the student, its EMA and optimizer, the critic and its optimizer);
    (step, generator updates) it reached, (0, 0) on a fresh run."""

    def check(ckpt: Path, state: Mapping[str, Any]) -> None:
        old = state.get("run", {}).get("distill", {})
        check_resume(ckpt, state, "distill_dmd", batch_size=cfg.batch_size, grad_accum=1, world=world,
                     old_batch=old.get("batch_size", cfg.batch_size),
                     changed=[k for k in _RESUME_KEYS if old.get(k) != run["distill"].get(k)])

    resumed = resume_checkpoint(out, enabled, net.student, net.ema, net.opt_g, check)
    if resumed is None:
        return 0, 0
    last, state = resumed
    load_state_dict_strict(net.critic, read_tensors(last / "critic.safetensors"), source=str(last / "critic.safetensors"))
    optimizer_from_tensors(net.opt_c, read_tensors(last / "critic_optimizer.safetensors"),
                           read_meta(last / "critic_optimizer.safetensors"))
    return int(state["step"]), int(state.get("generator_updates", 0))


def _save(out: Path, step: int, net: _Networks, run: Mapping[str, Any], state: Mapping[str, Any],
          cfg: DistillDMDConfig, d: Any) -> Path | None:
    """A checkpoint: the student as a loadable student run, plus the critic and its optimizer. Every rank calls it
    (it gathers shards); rank 0 writes and gets the folder."""
    tensors, meta = optimizer_to_tensors(net.opt_c)
    critic_files = {  # written before the student's files: `latest` moves only when all are written
        "critic.safetensors": (net.critic.state_dict(), {"critic_of": run["format"], "step": step}),
        "critic_optimizer.safetensors": (tensors, meta)}
    return save_train_checkpoint(out, step, net.student, net.ema, net.opt_g, run,
                                 {**state, "global_batch": cfg.batch_size * d.world, "world_size": d.world},
                                 cfg.keep_last, write=d.main, extra=critic_files)


@torch.no_grad()
def _log_rollout(run_log: RunLog, step: int, vae: Any, x: torch.Tensor) -> None:
    """The student's own rollout of this step (what DMD trains on), decoded, in the logger."""
    video = vae.decode(x[:1].detach().float(), streaming=False)[0]
    run_log.images(step, "distill/dmd/rollout", frames_uint8(video))


def distill_dmd(
    config: DistillDMDConfig,
    teacher: str | os.PathLike[str],
    student_init: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    shards_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    resume: bool = True,
    device: str | torch.device | None = None,
    logger: str = "tensorboard",
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> DistillDMDResult:
    """Train the causal student by DMD self-forcing (module doc).

    Args:
        config: :class:`DistillDMDConfig` (:func:`get_distill_dmd_config`).
        teacher: the base model run / checkpoint (real score; the critic starts from it).
        student_init: the student run / checkpoint of ``distill init`` (or of an earlier DMD run).
        out_dir: the DMD run folder (a student run; resumed from its latest checkpoint when ``resume``).
        shards_dir: real clips whose first frames condition the rollouts; None = data-free, reusing the first
            frames of the ODE pairs the student was initialised on.
        on_step: called as ``on_step(step, row)`` after every iteration (row: losses of that iteration; rank 0).

    Under torchrun every process calls it (see the module doc); rank 0 writes the log and checkpoints.

    Returns:
        :class:`DistillDMDResult`. Raises :class:`~model.train.NonFiniteLossError` on a NaN/inf loss (step named,
        last checkpoint kept), ValueError for a teacher that is a student, a student-init that is a base model,
        or checkpoints of different models / action modes, ConditionError for a malformed action distribution.
    """
    from ..causal import rollout

    cfg = config
    s = start_session(cfg.precision, device)
    d, amp = s.d, s.amp
    out = Path(out_dir)
    net = _networks(cfg, teacher, student_init, s)
    tb, sb = net.teacher, net.student_init
    first = first_frame_conditions(  # (cond latents, image tokens, frames per rollout, description)
        tb, sb.run, None if shards_dir is None else Path(shards_dir), cfg.num_frames, cfg.first_frames, s.device, amp)
    shift = float(cfg.shift if cfg.shift is not None else tb.timestep_shift)
    out.mkdir(parents=True, exist_ok=True)
    if d.main:
        write_json_atomic(out / "distill_dmd_config.json", {"config": cfg, "causal": net.causal.to_dict(),
                                                             "causal_train": net.train_causal.to_dict()})
    run = main_first(d, lambda: student_run_description(  # rank 0 copies the VAE / image encoder files
        sb.run, sb.weights, out, net.causal, "dmd", cfg, tb.weights, {
            "causal_train": net.train_causal.to_dict(), "student_init": os.fspath(sb.weights.resolve()),
            "first_frames": first[3]}))
    start_step, gen_updates = _resume(cfg, net, run, out, resume, d.world)

    def save(step: int, losses: Mapping[str, Any]) -> Path | None:
        return _save(out, step, net, run, {**losses, "generator_updates": gen_updates}, cfg, d)

    run_log = RunLog(out, logger, config=cfg, enabled=d.main)  # rank 0 logs
    bar = step_bar(s, f"distill dmd {cfg.name}", cfg.max_steps, start_step, progress)
    step = start_step
    critic_losses: list[float] = []
    while step < cfg.max_steps:
        ro = _draw_rollouts(cfg, step, net, first, s)
        exit_step = int(torch.randint(0, net.causal.num_steps, (1,), generator=step_generator(cfg.seed, 0, step)))
        gen_turn = step % cfg.critic_per_gen == 0
        row: dict[str, Any] = {"step": step + 1, "exit_step": exit_step}
        x = rollout(net.student_model, ro.noise, ro.tokens, ro.cond, ro.kb, ro.ms, net.train_causal,
                    exit_step=exit_step, generator=ro.gens, grad=gen_turn, autocast_dtype=amp)
        if gen_turn:  # generator update, then (every step) the critic's
            row.update(_generator_update(cfg, net, x, ro, shift, step, s, out, bar))
            gen_updates += 1
        row.update(_critic_update(cfg, net, x, ro, shift, step, s, out, bar))
        critic_losses.append(row["critic_loss"])

        step += 1
        bar.update(1)
        if on_step is not None and d.main:
            on_step(step, row)
        if due(step, cfg.log_every, cfg.max_steps) or step == start_step + 1:
            row["elapsed_s"] = s.elapsed_s()
            run_log.scalars(step, {k: v for k, v in row.items() if k != "step"}, prefix="distill/dmd")
            bar.set_postfix(critic=f"{row['critic_loss']:.4f}")
        if due(step, cfg.ckpt_every, cfg.max_steps):
            if d.main and run_log.logger != "none":
                _log_rollout(run_log, step, tb.vae, x)
            save(step, {"critic_loss": row["critic_loss"], "gen_loss": row.get("gen_loss")})
            barrier(d)
    final = finish_run(s, out, step, lambda k: save(k, {}), bar, run_log)
    return DistillDMDResult(final, out, step, gen_updates, critic_losses[0] if critic_losses else None,
                            critic_losses[-1] if critic_losses else None, start_step, s.elapsed_s(), first[3],
                            run_log.history)
