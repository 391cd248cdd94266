"""Student initialisation: regress the causal few-step student onto the teacher's ODE endpoints.

The student is the base model's DiT (weights copied from the teacher) run block-causally
(:func:`model.causal.causal_forward`: chunks of ``chunk_frames`` latent frames, a local window, optionally the
first frame hidden from later frames). One step on a batch of ODE pairs (:mod:`model.distill.ode_pairs`):

    sigma_1 > ... > sigma_K                        the student's few-step noise levels (the pairs' kept levels)
    k_b ~ U{1..K} per sample and per block b       a random step of the schedule for every block
    x[f]   = ode_latents[k_{b(f)}][f]              frame f of the teacher's state at sigma_{k_{b(f)}}
    t[f]   = 1000 sigma_{k_{b(f)}}                 per-frame timestep
    v      = Student(x, t, c, y, kb, m | block-causal mask)
    x0_hat = x - sigma * v                         the student's denoised output (flow prediction)
    loss   = mean || x0_hat - ode_latents[K + 1] ||^2          onto the clean endpoint x_0

AdamW (warm-up then constant), gradient clipping, EMA of the weights, checkpoints every ``ckpt_every`` steps
(:func:`model.bundle.save_train_checkpoint`), deterministic batches and draws (a resumed run equals an
uninterrupted one), and a stop with the step and pair ids on a non-finite loss. Under torchrun the student is
replicated (``parallel: ddp``) or sharded (``fsdp``) and every process takes its part of each global batch of
``batch_size x processes`` pairs; batches and per-sample draws do not depend on the number of processes
(:mod:`model.parallel`).

The run folder is a *student* run: ``load_bundle(out_dir)`` loads it like a base run, and its weights' metadata
holds the teacher's run description plus ``format`` "playmill.causal_student/1", ``stage`` "init", ``causal``
(the :class:`model.causal.CausalConfig` fields the student was trained with), ``distill`` (this config) and
``teacher``. The VAE and image encoder of a small teacher (files inside its run folder) are copied into the
student's folder; external ones (Wan 2.1 VAE, CLIP) are referenced by absolute path.

Library entry point: :func:`distill_init` (CLI ``playmill distill init``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import AfterValidator

from capture.settings import Field, Invalid, from_preset, settings

from ..bundle import (
    CHECKPOINTS,
    Bundle,
    load_bundle,
    resolve_weights,
    save_train_checkpoint,
    to_jsonable,
    write_json_atomic,
)
from ..dit import WorldModelDiT, i2v_condition
from ..parallel import ParallelMode, all_mean, barrier, main_first, wrap
from ..run_log import RunLog
from ..runloop import (
    check_resume, due, ema_update, finish_run, new_ema, optimizer_step, resume_checkpoint, set_lr,
    start_session, step_bar, stop_if_nonfinite, warmup_lr
)
from ..train import ClipBatches, collate, sample_generators
from .ode_pairs import OdePairs, check_model_actions

STUDENT_FORMAT = "playmill.causal_student/1"


def _causal():
    from .. import causal

    return causal


def resolve_causal(spec: Any, model_name: str = "tiny", mode: str = "universal"):
    """A :class:`model.causal.CausalConfig` from None (``CausalConfig.for_model(model_name, mode)``), a preset
    name, a mapping of fields (``preset`` picks the base, else the model's preset; ``steps`` + ``shift`` may
    replace ``sigmas``) or a CausalConfig."""
    causal = _causal()
    if isinstance(spec, causal.CausalConfig):
        return spec
    if spec is None:
        return causal.CausalConfig.for_model(model_name, mode)
    if isinstance(spec, str):
        return causal.CausalConfig.preset(spec)
    if isinstance(spec, Mapping):
        d = dict(spec)
        if "preset" in d:
            return causal.CausalConfig.from_dict(d)
        base = causal.CausalConfig.for_model(model_name, mode).to_dict()
        if "steps" in d:
            base.pop("sigmas")
        return causal.CausalConfig.from_dict({**base, **d})
    raise ValueError(f"causal must be null, a preset name, a mapping of CausalConfig fields or a CausalConfig, "
                     f"got {spec!r}")


def _check_causal(spec: Any) -> Any:
    try:
        resolve_causal(spec)
    except ValueError as exc:
        detail = "; ".join(getattr(exc, "problems", None) or [str(exc)])
        raise Invalid("", spec, f"null, a causal preset name or a mapping of CausalConfig keys ({detail})") from None
    return spec


#: The student's causal settings: null (the teacher's preset), a preset name, or a mapping of CausalConfig keys
#: (``preset`` picks the base; ``steps`` + ``shift`` may replace ``sigmas``).
CausalSpec = Annotated[str | dict[str, Any] | None, AfterValidator(_check_causal)]


@settings
class DistillInitConfig:
    """Student-initialisation settings: AdamW(lr, betas, weight_decay), ``warmup_steps`` linear warm-up then
    constant, gradient-norm clipping, EMA; a fixed validation batch of ``val_pairs`` pairs evaluated at step 0
    and every ``val_every`` steps. The causal config's ``sigmas`` must equal the pairs' kept levels. Under torchrun
    (:mod:`model.parallel`) every process takes ``batch_size`` pairs of each global batch."""

    name: str = Field("tiny", min_length=1, description="the run's name")
    causal: CausalSpec = Field(None, description="the student's causal config (null: the teacher's preset)")
    train_hide_first_frame: bool | None = Field(
        None, description="hide latent frame 0 from later blocks while training (null: as in causal)")
    max_steps: int = Field(200, ge=1, description="optimizer steps")
    batch_size: int = Field(4, ge=1, description="pairs per step")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    betas: tuple[float, float] = Field((0.9, 0.99), description="AdamW betas")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps")
    grad_clip: float = Field(1.0, gt=0, description="gradient-norm clip")
    ema_decay: float = Field(0.9, ge=0, lt=1, description="EMA decay")
    ema_start: int = Field(0, ge=0, description="the EMA copies the weights until this step")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU")
    parallel: ParallelMode = Field("ddp", description="under torchrun: ddp (the student on every process) or fsdp "
                                   "(FSDP2: sharded); batch_size is per process")
    gradient_checkpointing: bool = Field(False, description="recompute each block in the backward pass (less memory)")
    seed: int = Field(0, ge=0, description="seed of the pair order")
    log_every: int = Field(10, ge=1, description="steps between log rows")
    val_every: int = Field(50, ge=1, description="steps between validation losses")
    val_pairs: int = Field(8, ge=1, description="pairs of the fixed validation batch")
    ckpt_every: int = Field(100, ge=1, description="steps between checkpoints")
    keep_last: int = Field(2, ge=1, description="newest checkpoints kept")


DISTILL_INIT_PRESETS: dict[str, DistillInitConfig] = {
    "tiny": DistillInitConfig(),
    # Matrix-Game 2.0: 6k student steps at lr 6e-6 (paper); Self-Forcing's optimiser settings otherwise.
    "mg2": DistillInitConfig(name="mg2", causal=None, train_hide_first_frame=True, max_steps=6000, batch_size=1, lr=6e-6, betas=(0.0, 0.999),
                             weight_decay=0.01, warmup_steps=0, grad_clip=10.0, ema_decay=0.99, ema_start=200,
                             log_every=10, val_every=500, val_pairs=4, ckpt_every=500, keep_last=3),
}


def get_distill_init_config(name: str = "tiny", **overrides: Any) -> DistillInitConfig:
    """A preset ("tiny", "mg2") with overrides; :class:`capture.settings.ConfigError` naming any bad key."""
    return from_preset(DistillInitConfig, DISTILL_INIT_PRESETS, name, overrides, "distill.init")


# ----------------------------------------------------------------------------------------------------------
# Student checkpoints


def run_root(weights: Path) -> Path:
    """The run folder of a weights file inside ``<run>/checkpoints/step-N/`` (else the file's folder)."""
    ck = weights.parent
    return ck.parent.parent if ck.parent.name == CHECKPOINTS else ck


def _file_ref(src: Path, src_root: Path, out_dir: Path, name: str) -> str:
    """Copy a run-local file (inside ``src_root``) into ``out_dir/name`` and refer to it relative to a checkpoint
    folder of ``out_dir``; refer to an external file (a Wan / CLIP checkpoint) by absolute path."""
    src = src.resolve()
    if src.is_relative_to(src_root.resolve()):
        dst = out_dir / name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            tmp = out_dir / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        return os.path.relpath(dst.resolve(), (out_dir / CHECKPOINTS / "step").resolve())
    return os.fspath(src)


def student_run_description(source_run: Mapping[str, Any], source_weights: Path, out_dir: Path, causal_cfg: Any,
                            stage: str, config: Any, teacher: Path, extra: Mapping[str, Any] | None = None) -> dict:
    """The run description of a student checkpoint (see the module doc), VAE / image encoder re-referenced."""
    base = source_weights.parent
    root = run_root(source_weights)

    def ref(key: str, name: str) -> str:
        p = Path(source_run[key])
        return _file_ref(p if p.is_absolute() else base / p, root, out_dir, name)

    run = {k: v for k, v in source_run.items() if k not in ("train", "step", "ema")}
    run.update({
        "format": STUDENT_FORMAT, "stage": stage, "causal": causal_cfg.to_dict(), "distill": to_jsonable(config),
        "teacher": os.fspath(Path(teacher).resolve()),
        "vae": ref("vae", "vae.safetensors"), "image_encoder": ref("image_encoder", "image_encoder.safetensors"),
        **(extra or {}),
    })
    return run


def is_student(run: Mapping[str, Any]) -> bool:
    return "causal" in run


def load_student(checkpoint: str | os.PathLike[str] | Bundle, device: str | torch.device = "cpu",
                 use_ema: bool = True) -> tuple[Bundle, Any]:
    """A student checkpoint (run folder, checkpoint folder or weights file) as (Bundle, CausalConfig). A base
    checkpoint is refused with a message saying which stage makes a student."""
    b = checkpoint if isinstance(checkpoint, Bundle) else load_bundle(checkpoint, device, use_ema)
    if not is_student(b.run):
        raise ValueError(f"{b.weights} is a base (bidirectional) model checkpoint, not a causal student: make one "
                         "with `playmill distill init` (model.distill.distill_init)")
    return b, _causal().CausalConfig.from_dict(b.run["causal"])


# ----------------------------------------------------------------------------------------------------------
# The step


def frame_blocks(num_frames: int, cfg: Any) -> torch.Tensor:
    """Block index of every latent frame [F] (long), blocks as :func:`model.causal.block_spans` cuts them."""
    out = torch.empty(num_frames, dtype=torch.long)
    for b, (start, n) in enumerate(_causal().block_spans(num_frames, cfg)):
        out[start : start + n] = b
    return out


def init_batch_inputs(items: Mapping[str, Any], device: torch.device, temporal_compression: int) -> dict[str, Any]:
    """A collated batch of ODE pairs -> tensors on ``device``: states [B, K+1, 16, F, h, w], cond, tokens, actions."""
    return {
        "states": items["ode_latents"].to(device),
        "cond": i2v_condition(items["cond_latents"].to(device), temporal_compression),
        "tokens": items["image_tokens"].to(device),
        "keyboard": items["keyboard"].to(device),
        "mouse": items["mouse"].to(device) if "mouse" in items else None,
    }


def ode_regression_loss(student: torch.nn.Module, inp: Mapping[str, Any], sigmas: Sequence[float], causal_cfg: Any,
                        gens: Sequence[torch.Generator] | None, amp: torch.dtype | None,
                        step_index: torch.Tensor | None = None) -> torch.Tensor:
    """The ODE-regression loss of one batch (module doc). ``step_index`` [B, num_blocks] fixes the per-block steps
    (0-based into ``sigmas`` without the final 0); None draws sample i's from ``gens[i]``."""
    states = inp["states"]
    b, k1, _, f = states.shape[:4]
    k = k1 - 1
    blocks = frame_blocks(f, causal_cfg)
    nb = int(blocks.max()) + 1
    if step_index is None:
        step_index = torch.stack([torch.randint(0, k, (nb,), generator=g) for g in gens])
    idx = step_index[:, blocks].to(states.device)  # [B, F]
    sig = torch.tensor(list(sigmas[:k]), dtype=torch.float32, device=states.device)[idx]  # [B, F]
    gather = idx[:, None, None, :, None, None].expand(b, 1, states.shape[2], f, *states.shape[4:])
    x_t = states.gather(1, gather)[:, 0]  # [B, 16, F, h, w]
    with torch.autocast(states.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        v = _causal().causal_forward(student, x_t, sig * 1000.0, inp["tokens"], inp["cond"], inp["keyboard"],
                                     inp["mouse"], causal_cfg)
    x0_hat = x_t - sig[:, None, :, None, None] * v.float()
    return F.mse_loss(x0_hat, states[:, -1])


# ----------------------------------------------------------------------------------------------------------
# The loop


@dataclass
class DistillInitResult:
    """``checkpoint``: the final student checkpoint folder; ``val_loss_initial`` / ``val_loss_final``: the
    fixed-batch ODE-regression loss of the teacher's weights (step 0) and of the trained student."""

    checkpoint: Path
    out_dir: Path
    steps: int
    final_loss: float
    val_loss_initial: float | None
    val_loss_final: float | None
    resumed_from: int
    elapsed_s: float
    history: list[dict[str, Any]] = field(default_factory=list)


class _Group:
    def __init__(self, first: int, rows: int) -> None:
        self.first, self.rows = first, rows


_RESUME_KEYS = ("causal", "train_hide_first_frame", "seed", "betas", "weight_decay")


def training_causal(ccfg: Any, hide_first_frame: bool | None) -> Any:
    """The causal config a student trains with: ``ccfg`` with ``hide_first_frame`` replaced unless it is None."""
    return ccfg if hide_first_frame is None else dataclasses.replace(ccfg, hide_first_frame=bool(hide_first_frame))


def trainable_copy(dit_cfg: Any, source: torch.nn.Module, device: torch.device,
                   gradient_checkpointing: bool) -> WorldModelDiT:
    """A fresh DiT of ``dit_cfg`` holding ``source``'s weights, on ``device`` in train mode: trainable but for the
    never-used norm weights (what the student and the DMD critic start as)."""
    net = WorldModelDiT(dit_cfg)
    net.load_state_dict(source.state_dict())
    net = net.to(device).train()
    net.gradient_checkpointing = gradient_checkpointing
    return net


def _student_causal(cfg: DistillInitConfig, pairs: OdePairs) -> tuple[Any, Any]:
    """(the student's causal config, the one it trains with), its noise levels checked against the pairs'."""
    tm = pairs.manifest["teacher_run"]["model"]
    ccfg = resolve_causal(cfg.causal, tm["name"], tm["mode"])
    if len(ccfg.sigmas) != len(pairs.sigmas) - 1 or not np.allclose(tuple(ccfg.sigmas), pairs.sigmas[:-1], rtol=0, atol=1e-5):
        raise ValueError(f"{pairs.dir}: the pairs keep the noise levels {list(pairs.sigmas[:-1])} but the student's "
                         f"causal config has sigmas {list(ccfg.sigmas)}; make the pairs with "
                         f"sigmas={list(ccfg.sigmas)} or set causal.sigmas to the pairs' levels")
    return ccfg, training_causal(ccfg, cfg.train_hide_first_frame)


def _pairs_teacher(teacher: str | os.PathLike[str] | None, pairs: OdePairs) -> Bundle:
    """The base model the pairs were made with (``teacher``, default the one their manifest names), on the CPU."""
    man = pairs.manifest
    teacher_weights = resolve_weights(teacher if teacher is not None else man["teacher"], True)
    tb = load_bundle(teacher_weights, "cpu", True)
    if is_student(tb.run):
        raise ValueError(f"teacher {teacher_weights} is a causal student checkpoint; pass the base model the pairs "
                         f"were made with ({man['teacher']})")
    check_same_model(tb.run, man["teacher_run"], f"teacher {teacher_weights}", f"the ODE pairs {pairs.dir}")
    return tb


def _check_resume(cfg: DistillInitConfig, run: Mapping[str, Any], ckpt: Path, state: Mapping[str, Any],
                  world: int) -> None:
    old = state.get("run", {})
    changed = [k for k in _RESUME_KEYS if old.get("distill", {}).get(k) != run["distill"].get(k)]
    if old.get("pairs_key") != run["pairs_key"]:
        changed.append("pairs")
    check_resume(ckpt, state, "distill_init", batch_size=cfg.batch_size, grad_accum=1, world=world,
                 old_batch=old.get("distill", {}).get("batch_size", cfg.batch_size), changed=changed)


def _load_pairs(pairs: OdePairs, idx: Sequence[int], act: Any, device: torch.device,
                temporal_compression: int) -> tuple[dict[str, Any], list[str]]:
    """Pairs ``idx`` as model inputs (:func:`init_batch_inputs`) and their names; their actions checked."""
    items = collate([pairs[i] for i in idx])
    names = [f"pair {p} (clip {c})" for p, c in zip(items["pair_id"], items["clip_id"])]
    check_model_actions(items["keyboard"], items.get("mouse"), act.keyboard_dim, act.mouse_dim,
                        f"{pairs.dir}: {', '.join(names)}")
    return init_batch_inputs(items, device, temporal_compression), names


def _pair_sampler(pairs: OdePairs, cfg: DistillInitConfig, d: Any, start_step: int) -> ClipBatches:
    """This rank's batches of pair indices from ``start_step`` on: a seeded order of all pairs cut into global
    batches of ``batch_size x processes`` (:class:`~model.train.ClipBatches`)."""
    n, global_batch = len(pairs), cfg.batch_size * d.world
    if n < global_batch:
        raise ValueError(f"{pairs.dir} holds {n} ODE pairs, fewer than the global batch {global_batch} "
                         f"(distill_init.batch_size {cfg.batch_size} x {d.world} process(es)): make more pairs or "
                         "lower the batch size")
    return ClipBatches([_Group(0, n)], cfg.batch_size, cfg.seed, d.rank, d.world, start=start_step)


def _val_step_index(val_inp: Mapping[str, Any], causal_cfg: Any, num_levels: int, seed: int) -> torch.Tensor:
    """The fixed per-block steps [B, num_blocks] of the validation batch (drawn from ``seed`` + 999)."""
    nb = int(frame_blocks(val_inp["states"].shape[3], causal_cfg).max()) + 1
    return torch.randint(0, num_levels, (val_inp["states"].shape[0], nb),
                         generator=torch.Generator().manual_seed(seed + 999))


def _val_loss(student: torch.nn.Module, inp: Mapping[str, Any], sigmas: Sequence[float], causal_cfg: Any,
              amp: torch.dtype | None, step_index: torch.Tensor) -> float:
    student.eval()
    with torch.no_grad():
        v = ode_regression_loss(student, inp, sigmas, causal_cfg, None, amp, step_index)
    student.train()
    return float(v)


def distill_init(
    config: DistillInitConfig,
    pairs_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    teacher: str | os.PathLike[str] | None = None,
    progress: bool = True,
    resume: bool = True,
    device: str | torch.device | None = None,
    logger: str = "tensorboard",
    on_step: Callable[[int, float], None] | None = None,
) -> DistillInitResult:
    """Initialise a causal student from the teacher's weights by ODE regression on ``pairs_dir``.

    Args:
        config: :class:`DistillInitConfig` (:func:`get_distill_init_config`).
        pairs_dir: an ODE-pairs folder (:func:`model.distill.make_ode_pairs`).
        out_dir: the student run folder (resumed from its latest checkpoint when ``resume``).
        teacher: the base checkpoint to start from and to copy the VAE / image encoder / conditions from
            (default: the one recorded in the pairs' manifest). It must be the model the pairs were made with.
        on_step: called as ``on_step(step, loss)`` after every step (rank 0).

    Under torchrun every process calls it (see the module doc); rank 0 writes the log and checkpoints.

    Returns:
        :class:`DistillInitResult`. Raises :class:`~model.train.NonFiniteLossError` on a NaN/inf loss
        (``nonfinite.json`` names the step and pairs; the last checkpoint is kept), ValueError for a teacher or
        pairs of another model / mode, ConditionError for pairs with malformed actions.
    """
    cfg = config
    s = start_session(cfg.precision, device)
    d, dev, amp = s.d, s.device, s.amp
    out = Path(out_dir)
    pairs = OdePairs(pairs_dir)
    ccfg, train_ccfg = _student_causal(cfg, pairs)
    tb = _pairs_teacher(teacher, pairs)
    act, r = tb.model_config.dit.action, tb.model_config.vae.temporal_compression
    out.mkdir(parents=True, exist_ok=True)
    if d.main:
        write_json_atomic(out / "distill_init_config.json", {"config": cfg, "causal": ccfg.to_dict(),
                                                             "causal_train": train_ccfg.to_dict()})

    # ---- the student (the teacher's weights), optimizer, EMA; resume ----
    student = trainable_copy(tb.model_config.dit, tb.dit, dev, cfg.gradient_checkpointing)
    model = wrap(student, d, cfg.parallel, bf16=amp is not None)
    params = list(student.parameters())  # all (the frozen norm weights get no gradient): the checkpoints' layout
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    ema = new_ema(student)
    run = main_first(d, lambda: student_run_description(  # rank 0 copies the VAE / image encoder files
        tb.run, tb.weights, out, ccfg, "init", cfg, tb.weights,
        {"pairs": os.fspath(pairs.dir.resolve()), "pairs_key": pairs.manifest.get("key"),
         "causal_train": train_ccfg.to_dict()}))
    global_batch = cfg.batch_size * d.world
    resumed = resume_checkpoint(out, resume, student, ema, opt,
                                lambda ckpt, state: _check_resume(cfg, run, ckpt, state, d.world))
    start_step = 0 if resumed is None else int(resumed[1]["step"])
    loss_value = float("nan") if resumed is None else float(resumed[1].get("loss", float("nan")))

    sampler = _pair_sampler(pairs, cfg, d, start_step)
    batches = iter(sampler)
    val_inp, _ = _load_pairs(pairs, range(min(cfg.val_pairs, len(pairs))), act, dev, r)
    val_idx = _val_step_index(val_inp, ccfg, len(pairs.sigmas) - 1, cfg.seed)
    run_log = RunLog(out, logger, config=cfg, enabled=d.main)  # rank 0 logs

    def save(step: int) -> Path | None:  # every rank (gathers shards), rank 0 writes
        return save_train_checkpoint(out, step, student, ema, opt, run,
                                     {"loss": loss_value, "global_batch": global_batch, "world_size": d.world},
                                     cfg.keep_last, write=d.main)

    val_initial = _val_loss(student, val_inp, pairs.sigmas, train_ccfg, amp, val_idx) if start_step == 0 else None
    if val_initial is not None:
        run_log.scalars(0, {"val_loss": val_initial}, prefix="distill/init")
    bar = step_bar(s, f"distill init {cfg.name}", cfg.max_steps, start_step, progress)
    step = start_step
    while step < cfg.max_steps:
        lr = warmup_lr(cfg.lr, step, cfg.warmup_steps)
        set_lr(opt, lr)
        inp, names = _load_pairs(pairs, next(batches), act, dev, r)
        gens = sample_generators(cfg.seed, step, sampler.positions(0))
        loss = ode_regression_loss(model, inp, pairs.sigmas, train_ccfg, gens, amp)
        stop_if_nonfinite(s, out, loss, step + 1, {"step": step + 1, "pairs": names, "loss": str(float(loss.detach()))},
                          names, bar)
        loss.backward()
        grad_norm = optimizer_step(opt, params, cfg.grad_clip)
        ema_update(ema, student, cfg.ema_decay if step >= cfg.ema_start else 0.0)
        step += 1
        loss_value = all_mean(d, float(loss.detach()))
        bar.update(1)
        if on_step is not None and d.main:
            on_step(step, loss_value)
        if due(step, cfg.log_every, cfg.max_steps):
            row = {"loss": loss_value, "lr": lr, "grad_norm": grad_norm, "elapsed_s": s.elapsed_s()}
            if due(step, cfg.val_every, cfg.max_steps):
                row["val_loss"] = _val_loss(student, val_inp, pairs.sigmas, train_ccfg, amp, val_idx)
            run_log.scalars(step, row, prefix="distill/init")
            bar.set_postfix(loss=f"{loss_value:.4f}")
        if due(step, cfg.ckpt_every, cfg.max_steps):
            save(step)
            barrier(d)
    final = finish_run(s, out, step, save, bar, run_log)
    return DistillInitResult(final, out, step, loss_value, val_initial, run_log.last("val_loss"), start_step,
                             s.elapsed_s(), run_log.history)


def check_same_model(run: Mapping[str, Any], other: Mapping[str, Any], what: str, other_what: str) -> None:
    """Two run descriptions describe the same network and conditions (mode, keys, mouse scale, geometry);
    ValueError naming both and the difference otherwise (e.g. a checkpoint of another action mode)."""
    a_m, b_m = run.get("model", {}), other.get("model", {})
    a_c, b_c = run.get("conditions", {}), other.get("conditions", {})
    if a_c.get("mode") != b_c.get("mode") or a_m.get("mode") != b_m.get("mode"):
        raise ValueError(f"{what} is a {a_c.get('mode')!r}-mode model but {other_what} belongs to a "
                         f"{b_c.get('mode')!r}-mode model; use checkpoints of the same action mode")
    if a_m != b_m:
        keys = sorted(k for k in set(a_m.get("dit", {})) | set(b_m.get("dit", {}))
                      if a_m.get("dit", {}).get(k) != b_m.get("dit", {}).get(k))
        raise ValueError(f"{what} and {other_what} are different networks (DiT settings differ in {keys or 'name'})")
    diff = sorted(k for k in set(a_c) | set(b_c) if k != "num_frames" and a_c.get(k) != b_c.get(k))
    if diff:
        raise ValueError(f"{what} and {other_what} use different action conditions (differ in {diff})")
