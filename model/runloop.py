"""What the three training loops share (base training :func:`model.train.train`, student initialisation
:func:`model.distill.distill_init`, DMD :func:`model.distill.distill_dmd`), so that each of them shows its
algorithm and nothing else. The shape of every loop:

    s = start_session(cfg.precision, device)        process group under torchrun, device, autocast dtype, clock
    resumed = resume_checkpoint(out, resume, net, ema, opt, check)        (checkpoint, state), None on a fresh run
    bar = step_bar(s, "train tiny", cfg.max_steps, start_step, progress)
    while step < cfg.max_steps:
        set_lr(opt, warmup_lr(cfg.lr, step, cfg.warmup_steps))
        loss = ...                                                           the stage's own step
        stop_if_nonfinite(s, out, loss, step + 1, record, inputs, bar)      every rank stops together
        loss.backward()
        grad_norm = optimizer_step(opt, params, cfg.grad_clip)
        ema_update(ema, net, cfg.ema_decay if step >= cfg.ema_start else 0.0)
        step += 1
        if due(step, cfg.log_every, cfg.max_steps): run_log.scalars(...)
        if due(step, cfg.ckpt_every, cfg.max_steps): save(step)
    final = finish_run(s, out, step, save, bar, run_log)       the last checkpoint; the process group left

Checkpoints themselves (files, layout) are :mod:`model.bundle`'s; processes and collectives :mod:`model.parallel`'s.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from .bundle import latest_checkpoint, load_train_checkpoint, read_state_json, write_json_atomic
from .parallel import (
    Dist,
    all_max,
    barrier,
    check_global_batch,
    clip_grad_norm,
    process_device,
    setup_distributed,
    shutdown_distributed,
)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf: training stopped. Names the step, the clips of the batch and the last good
    checkpoint (kept)."""

    def __init__(self, step: int, clip_ids: Sequence[str], loss: float, checkpoint: Path | None) -> None:
        self.step, self.clip_ids, self.loss, self.checkpoint = step, list(clip_ids), loss, checkpoint
        super().__init__(
            f"non-finite loss ({loss}) at step {step} on clips {list(clip_ids)}; training stopped. "
            f"Last good checkpoint: {checkpoint if checkpoint else 'none yet'} (kept). Check these clips' actions "
            f"and frames, or lower train.lr")


# ----------------------------------------------------------------------------------------------------------
# The process


@dataclass
class Session:
    """This process's part of a run: its place (:class:`~model.parallel.Dist`), the device it computes on, the
    autocast dtype (bf16, or None for fp32) and the start time. :meth:`close` destroys the process group when
    :func:`start_session` created it (a caller's group is left open)."""

    d: Dist
    device: torch.device
    amp: torch.dtype | None
    owns_group: bool
    t_start: float

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t_start

    def close(self) -> None:
        if self.owns_group:
            shutdown_distributed()


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for ``precision`` "bf16", or "auto" on CUDA; None (fp32, no autocast) otherwise."""
    return torch.bfloat16 if precision == "bf16" or (precision == "auto" and device.type == "cuda") else None


def start_session(precision: str = "auto", device: str | torch.device | None = None) -> Session:
    """Start the clock, join (or, under torchrun, create) the process group and pick the device
    (:func:`~model.parallel.process_device`) and the autocast dtype (:func:`autocast_dtype`)."""
    import torch.distributed as torch_dist

    t_start = time.perf_counter()
    owns_group = not torch_dist.is_initialized()
    d = setup_distributed()
    dev = process_device(d, device)
    return Session(d, dev, autocast_dtype(precision, dev), owns_group, t_start)


# ----------------------------------------------------------------------------------------------------------
# Optimisation


def new_ema(module: nn.Module) -> dict[str, torch.Tensor]:
    """float32 copies of ``module.state_dict()``: the EMA of the weights at step 0."""
    return {k: v.detach().clone().float() for k, v in module.state_dict().items()}


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], module: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * weights, per tensor of ``module.state_dict()`` (float32 copies)."""
    for k, v in module.state_dict().items():
        ema[k].lerp_(v.float(), 1.0 - decay)


def warmup_lr(lr: float, step: int, warmup_steps: int) -> float:
    """``lr`` x min(1, (step + 1) / warmup_steps): linear warm-up, then constant."""
    return lr * min(1.0, (step + 1) / max(1, warmup_steps))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def optimizer_step(opt: torch.optim.Optimizer, params: Iterable[torch.Tensor], grad_clip: float) -> float:
    """Clip the gradient norm of ``params`` to ``grad_clip``, step ``opt`` and clear the gradients; returns the
    norm before clipping."""
    grad_norm = clip_grad_norm(params, grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return grad_norm


def stop_if_nonfinite(s: Session, out_dir: Path, loss: torch.Tensor, step: int, record: Mapping[str, Any],
                      inputs: Sequence[str], bar: Any = None) -> None:
    """Every rank calls it with its loss: when the loss is NaN/inf on any rank, every rank stops together. The
    rank(s) holding the bad loss write ``nonfinite.json`` (``nonfinite-rank<r>.json`` under torchrun): ``record``
    plus the last checkpoint (kept); then every rank closes ``bar`` and raises :class:`NonFiniteLossError` naming
    ``step`` and ``inputs`` (the clips or pairs of the batch)."""
    here = not bool(torch.isfinite(loss))
    if not all_max(s.d, float(here)):
        return
    ck = latest_checkpoint(out_dir)
    if here:
        name = "nonfinite.json" if s.d.world == 1 else f"nonfinite-rank{s.d.rank}.json"
        write_json_atomic(out_dir / name, {**record, "last_checkpoint": os.fspath(ck) if ck else None})
    if bar is not None:
        bar.close()
    raise NonFiniteLossError(step, inputs if here else ["(on another rank)"], float(loss.detach()), ck)


# ----------------------------------------------------------------------------------------------------------
# Progress, cadence, checkpoints


def step_bar(s: Session, desc: str, max_steps: int, start: int, progress: bool) -> Any:
    """The tqdm bar of the optimizer steps (rank 0 only, when ``progress``)."""
    from tqdm.auto import tqdm

    return tqdm(total=max_steps, initial=start, desc=desc, unit="step", disable=not (progress and s.d.main))


def due(step: int, every: int, last: int) -> bool:
    """Whether ``step`` (1-based, just taken) is one to log / validate / save at: each ``every``-th, and the last."""
    return step % every == 0 or step == last


def check_resume(ckpt: Path, state: Mapping[str, Any], section: str, *, batch_size: int, grad_accum: int,
                 world: int, old_batch: int, changed: Sequence[str]) -> None:
    """Refuse to resume ``ckpt`` when the run would change: its global batch (``batch_size x grad_accum x
    processes``; ``old_batch`` for a checkpoint that does not record one) must stay
    (:func:`~model.parallel.check_global_batch`, which says how on this number of processes), and ``changed``
    (the settings that differ, named) must be empty."""
    check_global_batch(int(state.get("global_batch", old_batch)), batch_size, grad_accum, world, str(ckpt), section)
    if changed:
        raise ValueError(f"cannot resume {ckpt}: it was started with different settings ({'; '.join(changed)}); "
                         "use another out_dir or restore them")


def resume_checkpoint(out_dir: Path, enabled: bool, module: nn.Module, ema: dict[str, torch.Tensor],
                      opt: torch.optim.Optimizer, check: Callable[[Path, dict[str, Any]], None]
                      ) -> tuple[Path, dict[str, Any]] | None:
    """The run's latest checkpoint and its state.json, after ``check(checkpoint, state)`` accepted it and its
    weights, EMA and optimizer state were loaded into ``module``, ``ema`` and ``opt``; None on a fresh run (or
    when not ``enabled``)."""
    last = latest_checkpoint(out_dir) if enabled else None
    if last is None:
        return None
    state = read_state_json(last)
    check(last, state)
    load_train_checkpoint(last, module, ema, opt)
    return last, state


def final_checkpoint(s: Session, out_dir: Path, step: int, save: Callable[[int], Path | None]) -> Path | None:
    """The checkpoint of the last ``step``: written now (``save``, on every rank) unless the loop's last one is of
    this step (a run resumed at its max_steps trains nothing); read back after every rank is done."""
    last = latest_checkpoint(out_dir)
    if last is None or int(last.name.split("-")[1]) != step:
        save(step)
    barrier(s.d)
    return latest_checkpoint(out_dir)



def finish_run(s: Session, out_dir: Path, step: int, save: Callable[[int], Path | None], bar: Any,
               run_log: Any) -> Path | None:
    """The end of a loop, on every rank: close the progress bar and the log, make sure the last step has its
    checkpoint (:func:`final_checkpoint`) and leave the process group when the run created it. Returns the final
    checkpoint folder."""
    bar.close()
    run_log.close()
    final = final_checkpoint(s, out_dir, step, save)
    s.close()
    return final


__all__ = [
    "NonFiniteLossError",
    "Session",
    "autocast_dtype",
    "check_resume",
    "due",
    "ema_update",
    "final_checkpoint",
    "finish_run",
    "new_ema",
    "optimizer_step",
    "resume_checkpoint",
    "set_lr",
    "start_session",
    "step_bar",
    "stop_if_nonfinite",
    "warmup_lr",
]
