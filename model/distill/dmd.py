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

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import model_validator

from capture.settings import Field, Frames1p4k, Invalid, from_preset, settings

from ..run_log import RunLog, frames_uint8
from ..bundle import (
    latest_checkpoint,
    load_train_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_meta,
    read_state_json,
    read_tensors,
    save_train_checkpoint,
    write_json_atomic,
)
from ..checkpoint import load_state_dict_strict
from ..conditions import ConditionError
from ..dit import WorldModelDiT, i2v_condition
from ..parallel import (
    ParallelMode,
    all_max,
    all_mean,
    barrier,
    check_global_batch,
    clip_grad_norm,
    main_first,
    process_device,
    setup_distributed,
    shutdown_distributed,
    wrap,
)
from ..schedule import shift_sigma
from ..train import NonFiniteLossError, batch_rand, batch_randn, ema_update, sample_generators, step_generator
from .actions import ActionDistribution, sample_action_batch
from .init import CausalSpec, check_same_model, load_student, resolve_causal, student_run_description
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
    from tqdm.auto import tqdm

    from ..causal import rollout

    import torch.distributed as torch_dist

    cfg = config
    t_start = time.perf_counter()
    owns_group = not torch_dist.is_initialized()
    d = setup_distributed()
    dev = process_device(d, device)
    amp = torch.bfloat16 if (cfg.precision == "bf16" or (cfg.precision == "auto" and dev.type == "cuda")) else None
    out = Path(out_dir)

    # ---- the three networks ----
    tb = load_teacher(teacher, dev, True)
    sb, stored_causal = load_student(student_init, "cpu", cfg.use_ema_init)
    check_same_model(tb.run, sb.run, f"teacher {tb.weights}", f"student_init {sb.weights}")
    mcfg = tb.model_config
    mode = mcfg.mode
    act = mcfg.dit.action
    ccfg = stored_causal if cfg.causal is None else resolve_causal(cfg.causal, mcfg.name, mode)
    train_ccfg = ccfg if cfg.train_hide_first_frame is None else dataclasses.replace(
        ccfg, hide_first_frame=bool(cfg.train_hide_first_frame))
    cfg.actions.validate(mode)
    student = WorldModelDiT(mcfg.dit)
    student.load_state_dict(sb.dit.state_dict())
    student = student.to(dev).train()  # fresh: trainable but for the never-used norm weights
    critic = WorldModelDiT(mcfg.dit)
    critic.load_state_dict(tb.dit.state_dict())
    critic = critic.to(dev).train()  # fresh: trainable but for the never-used norm weights
    student.gradient_checkpointing = critic.gradient_checkpointing = cfg.gradient_checkpointing
    bf16 = amp is not None
    teacher_dit = wrap(tb.dit.eval().requires_grad_(False), d, cfg.parallel, bf16=bf16, trainable=False)
    student_model = wrap(student, d, cfg.parallel, bf16=bf16)
    critic_model = wrap(critic, d, cfg.parallel, bf16=bf16)
    g_params = list(student.parameters())  # all (the frozen norm weights get no gradient): the optimizer layout
    c_params = list(critic.parameters())   # of the checkpoints
    opt_g = torch.optim.AdamW(g_params, lr=cfg.lr_gen, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    opt_c = torch.optim.AdamW(c_params, lr=cfg.lr_critic, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    ema = {k: v.detach().clone().float() for k, v in student.state_dict().items()}

    # ---- first frames (real, or the ODE pairs') ----
    cond_bank, token_bank, n_frames, ff_desc = first_frame_conditions(
        tb, sb.run, None if shards_dir is None else Path(shards_dir), cfg.num_frames, cfg.first_frames, dev, amp)
    r = mcfg.vae.temporal_compression
    shift = float(cfg.shift if cfg.shift is not None else tb.timestep_shift)

    out.mkdir(parents=True, exist_ok=True)
    if d.main:
        write_json_atomic(out / "distill_dmd_config.json", {"config": cfg, "causal": ccfg.to_dict(),
                                                             "causal_train": train_ccfg.to_dict()})
    run = main_first(d, lambda: student_run_description(  # rank 0 copies the VAE / image encoder files
        sb.run, sb.weights, out, ccfg, "dmd", cfg, tb.weights, {
            "causal_train": train_ccfg.to_dict(), "student_init": os.fspath(sb.weights.resolve()),
            "first_frames": ff_desc}))
    b, global_batch = cfg.batch_size, cfg.batch_size * d.world
    mine = slice(d.rank * b, (d.rank + 1) * b)  # this rank's rollouts in the global batch

    # ---- resume ----
    start_step = resumed_from = gen_updates = 0
    last = latest_checkpoint(out) if resume else None
    if last is not None:
        state = read_state_json(last)
        old = state.get("run", {}).get("distill", {})
        check_global_batch(int(state.get("global_batch", old.get("batch_size", b))), b, 1, d.world, str(last),
                           "distill_dmd")
        diff = [k for k in _RESUME_KEYS if old.get(k) != run["distill"].get(k)]
        if diff:
            raise ValueError(f"cannot resume {last}: it was started with different settings ({', '.join(diff)}); "
                             "use another out_dir or restore them")
        load_train_checkpoint(last, student, ema, opt_g)
        load_state_dict_strict(critic, read_tensors(last / "critic.safetensors"), source=str(last / "critic.safetensors"))
        optimizer_from_tensors(opt_c, read_tensors(last / "critic_optimizer.safetensors"),
                               read_meta(last / "critic_optimizer.safetensors"))
        start_step = resumed_from = int(state["step"])
        gen_updates = int(state.get("generator_updates", 0))

    def save(step: int, losses: Mapping[str, Any]) -> Path | None:  # every rank (gathers shards), rank 0 writes
        tensors, meta = optimizer_to_tensors(opt_c)
        critic_files = {  # written before the student's files: `latest` moves only when all are written
            "critic.safetensors": (critic.state_dict(), {"critic_of": run["format"], "step": step}),
            "critic_optimizer.safetensors": (tensors, meta)}
        return save_train_checkpoint(out, step, student, ema, opt_g, run,
                                     {**losses, "generator_updates": gen_updates, "global_batch": global_batch,
                                      "world_size": d.world}, cfg.keep_last, write=d.main, extra=critic_files)

    run_log = RunLog(out, logger, config=cfg, enabled=d.main)  # rank 0 logs
    history = run_log.history

    def log(row: dict[str, Any]) -> None:  # log.jsonl + TensorBoard / wandb
        run_log.scalars(row["step"], {k: v for k, v in row.items() if k != "step"}, prefix="distill/dmd")

    def check_finite(step: int, what: str, loss: torch.Tensor, where: list[str]) -> None:
        here = not bool(torch.isfinite(loss))
        if not all_max(d, float(here)):  # every rank stops together
            return
        ck = latest_checkpoint(out)
        if here:
            write_json_atomic(out / ("nonfinite.json" if d.world == 1 else f"nonfinite-rank{d.rank}.json"),
                              {"step": step, "loss": what, "value": str(float(loss)), "inputs": where,
                               "last_checkpoint": os.fspath(ck) if ck else None})
        bar.close()
        raise NonFiniteLossError(step, where if here else ["(on another rank)"], float(loss), ck)

    bar = tqdm(total=cfg.max_steps, initial=start_step, desc=f"distill dmd {cfg.name}", unit="step",
               disable=not (progress and d.main))
    step = start_step
    critic_losses: list[float] = []
    while step < cfg.max_steps:
        rng = np.random.default_rng([cfg.seed, step, 1])
        # ---- the global batch's first frames + designed actions (drawn alike on every rank); this rank's part ----
        pick = rng.integers(0, len(cond_bank), global_batch)[mine]
        cond = i2v_condition(cond_bank[pick].to(dev), r)
        tokens = token_bank[pick].to(dev)
        kb_np, ms_np = sample_action_batch(cfg.actions, mode, global_batch, n_frames, rng)
        kb = torch.from_numpy(kb_np[mine]).to(dev)
        ms = None if ms_np is None else torch.from_numpy(ms_np[mine]).to(dev)
        check_model_actions(kb, ms, act.keyboard_dim, act.mouse_dim, "the designed action distribution (distill_dmd.actions)")
        where = [f"step {step + 1}: designed actions rng (seed {cfg.seed}, step {step}), first frames {pick.tolist()} "
                 f"of {ff_desc}"]
        gens = sample_generators(cfg.seed, step, range(mine.start, mine.stop))  # every draw of a rollout
        noise = batch_randn(gens, (mcfg.dit.out_dim, *cond.shape[2:])).to(dev)
        exit_step = int(torch.randint(0, ccfg.num_steps, (1,), generator=step_generator(cfg.seed, 0, step)))
        gen_turn = step % cfg.critic_per_gen == 0
        row: dict[str, Any] = {"step": step + 1, "exit_step": exit_step}

        # ---- generator update: DMD through the exit-step forward of every block ----
        x = rollout(student_model, noise, tokens, cond, kb, ms, train_ccfg, exit_step=exit_step, generator=gens,
                    grad=gen_turn, autocast_dtype=amp)
        if gen_turn:
            s = sample_sigmas(gens, shift, cfg.min_sigma, cfg.max_sigma)
            loss_g, stats = dmd_loss(x, teacher_dit, critic_model, tokens, cond, kb, ms, s, gens, amp)
            check_finite(step + 1, "generator", loss_g, where)
            loss_g.backward()
            row["gen_grad_norm"] = clip_grad_norm(g_params, cfg.grad_clip)
            opt_g.step()
            opt_g.zero_grad(set_to_none=True)
            ema_update(ema, student, cfg.ema_decay if step >= cfg.ema_start else 0.0)
            gen_updates += 1
            count = all_mean(d, stats["count"]) * d.world
            row.update({"gen_loss": all_mean(d, float(loss_g.detach())),
                        "dmd_grad_norm": math.sqrt(all_mean(d, stats["dmd_grad_sq"]) * d.world),
                        "score_gap": all_mean(d, stats["score_gap_sum"]) * d.world / count})

        # ---- critic update: flow matching on the student's samples ----
        s = sample_sigmas(gens, shift, cfg.min_sigma, cfg.max_sigma)
        loss_c = critic_loss(x, critic_model, tokens, cond, kb, ms, s, gens, amp)
        check_finite(step + 1, "critic", loss_c, where)
        loss_c.backward()
        row["critic_grad_norm"] = clip_grad_norm(c_params, cfg.grad_clip)
        opt_c.step()
        opt_c.zero_grad(set_to_none=True)
        row["critic_loss"] = all_mean(d, float(loss_c.detach()))
        critic_losses.append(row["critic_loss"])

        step += 1
        bar.update(1)
        if on_step is not None and d.main:
            on_step(step, row)
        if step % cfg.log_every == 0 or step == cfg.max_steps or step == start_step + 1:
            row["elapsed_s"] = time.perf_counter() - t_start
            log(row)
            bar.set_postfix(critic=f"{row['critic_loss']:.4f}")
        if d.main and run_log.logger != "none" and (step % cfg.ckpt_every == 0 or step == cfg.max_steps):
            with torch.no_grad():  # the student's own rollout of this step (what DMD trains on), decoded
                video = tb.vae.decode(x[:1].detach().float(), streaming=False)[0]
            run_log.images(step, "distill/dmd/rollout", frames_uint8(video))
        if step % cfg.ckpt_every == 0 or step == cfg.max_steps:
            save(step, {"critic_loss": row["critic_loss"], "gen_loss": row.get("gen_loss")})
            barrier(d)
    bar.close()
    run_log.close()
    final = latest_checkpoint(out)
    if final is None or int(final.name.split("-")[1]) != step:
        final = save(step, {}) or final
    barrier(d)
    final = latest_checkpoint(out)
    if owns_group:
        shutdown_distributed()
    return DistillDMDResult(final, out, step, gen_updates, critic_losses[0] if critic_losses else None,
                            critic_losses[-1] if critic_losses else None, resumed_from,
                            time.perf_counter() - t_start, ff_desc, history)
