"""Training on several processes (torchrun): the process group, DDP or FSDP2, full-weight checkpoints, rank 0 first.

Every training entry point (:func:`model.train.train`, :func:`model.distill.make_ode_pairs`,
:func:`~model.distill.distill_init`, :func:`~model.distill.distill_dmd`) runs unchanged under torchrun: with
``WORLD_SIZE`` > 1 in the environment :func:`setup_distributed` initialises the default process group from it
(NCCL on CUDA, gloo on the CPU) and each process works on ``cuda:LOCAL_RANK`` (or the CPU).

The ``parallel`` key of the training configs picks how the trained networks are spread (:func:`wrap`):

    ddp    DistributedDataParallel: every rank holds the whole model and optimizer state; gradients are
           averaged over the ranks (all-reduce, overlapped with the backward pass).
    fsdp   FSDP2 (``torch.distributed.fsdp.fully_shard``): every DiT block, then the rest of the model, is sharded
           over the ranks. Parameters, gradients, AdamW moments and the EMA live as 1/world shards (DTensors);
           a block's weights are all-gathered just before its forward / backward and freed after.
           Memory per rank ~ (weights + grads + 2 moments + EMA) / world + one block's full weights.

With ``precision: bf16`` both modes compute under bf16 autocast; FSDP additionally all-gathers the weights in bf16
and reduce-scatters the gradients in fp32 (``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``); the
master weights and the optimizer state stay fp32. ``gradient_checkpointing`` recomputes each block in the
backward pass (non-reentrant ``torch.utils.checkpoint``, which FSDP2 re-gathers for).

What makes the number of processes irrelevant to the result:

- the data and the noise are world-invariant: a step's *global* batch (``batch_size x grad_accum x world``
  samples) is the same slice of one seeded stream of clips whatever the world size, each rank takes a contiguous
  part of it, and each sample's noise comes from its own generator keyed by (seed, step, position in the global
  batch) (:func:`model.train.sample_generators`). So N processes with batch B train exactly what one process with
  batch N x B trains (up to float summation order), and a run may resume on another number of processes;
- checkpoints hold full tensors: each (possibly sharded) tensor is gathered (:func:`full_tensor`) and rank 0 writes
  the usual safetensors files; loading cuts each full tensor to the local shard (:func:`shard_like`). Files are
  the same for 1 process, DDP and FSDP.

Work that must happen once before the others may start (curating ``train.dataset: auto``) runs through
:func:`run_on_rank_zero`: rank 0 does it while the others wait (no time limit), then they all go on, or all stop
with rank 0's error.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, TypeVar, get_args

import torch
from torch import nn

#: How the trained networks are spread over the processes under torchrun (the configs' ``parallel`` key).
ParallelMode = Literal["ddp", "fsdp"]
PARALLEL_MODES: tuple[str, ...] = get_args(ParallelMode)
T = TypeVar("T")


# ----------------------------------------------------------------------------------------------------------
# The process group


@dataclass
class Dist:
    """This process's place: ``rank`` of ``world`` processes, ``local_rank`` on its node, and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


_CREATED_HERE = False  # the default process group was initialised by setup_distributed


def setup_distributed() -> Dist:
    """This process's :class:`Dist`. Under torchrun (``WORLD_SIZE`` > 1) the default process group is initialised
    from the environment the first time (NCCL on CUDA, else gloo); a group that exists already is used as it is."""
    global _CREATED_HERE
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return Dist(device=torch.device("cuda" if cuda else "cpu"))
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        _CREATED_HERE = True
    return Dist(dist.get_rank(), dist.get_world_size(), local, torch.device(f"cuda:{local}" if cuda else "cpu"))


def shutdown_distributed() -> None:
    """Destroy the default process group if :func:`setup_distributed` created it (a caller's group is left)."""
    global _CREATED_HERE, _WAIT_GROUP
    if _CREATED_HERE:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        _CREATED_HERE, _WAIT_GROUP = False, None


def barrier(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _reduce(d: Dist, value: float, op: str) -> float:
    if d.world == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return float(t.item()) / (d.world if op == "mean" else 1)


def all_max(d: Dist, value: float) -> float:
    """The largest ``value`` over the ranks (every rank calls it)."""
    return _reduce(d, value, "max")


def all_mean(d: Dist, value: float) -> float:
    """The mean of ``value`` over the ranks (every rank calls it)."""
    return _reduce(d, value, "mean")


_WAIT_GROUP: Any = None


def run_on_rank_zero(fn: Callable[[], T], what: str) -> T | None:
    """Run ``fn`` on rank 0 while the other ranks wait, however long it takes (a gloo group without a practical
    timeout, so a long curation does not trip NCCL's watchdog); then every rank goes on. When ``fn`` raises on
    rank 0, the others raise RuntimeError naming ``what`` and rank 0's error. Returns ``fn()`` on rank 0 (and
    when not distributed), None elsewhere. Initialises the process group under torchrun."""
    global _WAIT_GROUP
    d = setup_distributed()
    if d.world == 1:
        return fn()
    import torch.distributed as dist

    if _WAIT_GROUP is None:
        _WAIT_GROUP = dist.new_group(backend="gloo", timeout=datetime.timedelta(days=7))
    result, error, exc = None, None, None
    if d.main:
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001 - told to the other ranks, then raised here
            error, exc = f"{type(e).__name__}: {e}", e
    status = [error]
    dist.broadcast_object_list(status, src=0, group=_WAIT_GROUP)
    if exc is not None:
        raise exc
    if status[0] is not None:
        raise RuntimeError(f"rank 0 failed while {what}: {status[0]}")
    return result


# ----------------------------------------------------------------------------------------------------------
# Wrapping a model


class DDP(torch.nn.parallel.DistributedDataParallel):
    """DistributedDataParallel whose attributes fall back to the wrapped module's (``model.blocks``,
    ``model.cfg``), so code written for the bare DiT (the causal rollout) calls the wrapper unchanged."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not wrapped yet (inside DistributedDataParallel.__init__)
                raise
            return getattr(self.module, name)


def wrap(module: nn.Module, d: Dist, parallel: str, *, bf16: bool = False, trainable: bool = True) -> nn.Module:
    """The module to call for training on ``d.world`` processes: the module itself on one process, a :class:`DDP`
    wrapper (``parallel="ddp"``), or the module sharded in place with FSDP2 (``"fsdp"``: each of
    ``module.blocks``, then the root; bf16 all-gathers with fp32 gradient reduction when ``bf16``).

    ``trainable`` False (a frozen teacher): DDP leaves it alone (nothing to synchronise); FSDP shards it too, to
    save its memory. Keep using the bare ``module`` for state dicts and the EMA; under FSDP it *is* the sharded
    module (its state dict holds DTensor shards)."""
    if parallel not in PARALLEL_MODES:
        raise ValueError(f"parallel must be one of {', '.join(PARALLEL_MODES)}, got {parallel!r}")
    if d.world == 1:
        return module
    if parallel == "ddp":
        if not trainable:
            return module
        return DDP(module, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None,
                              reduce_dtype=torch.float32 if bf16 else None, cast_forward_inputs=False)
    for block in getattr(module, "blocks", ()):
        fully_shard(block, mp_policy=mp)
    fully_shard(module, mp_policy=mp)
    return module


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Gradient accumulation: inside ``gradient_sync(model, False)`` a backward pass does not reduce gradients
    over the ranks (DDP ``no_sync``, FSDP ``set_requires_gradient_sync(False)``); the last micro-batch's
    backward (``enabled``) reduces the accumulated sum."""
    if enabled:
        yield
    elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def clip_grad_norm(params: Iterable[torch.Tensor], max_norm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_`` for plain or sharded (DTensor) parameters; the total norm as a float."""
    norm = torch.nn.utils.clip_grad_norm_(list(params), max_norm)
    return float(full_tensor(norm))


# ----------------------------------------------------------------------------------------------------------
# Full tensors <-> shards


def is_sharded(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor shard (an all-gather: every rank must call it, in the same order), or ``t``."""
    return t.full_tensor() if is_sharded(t) else t


def full_state(tensors: Mapping[str, torch.Tensor], keep: bool = True) -> dict[str, torch.Tensor]:
    """Full CPU copies of (possibly sharded) tensors, one tensor at a time; a collective when any is sharded.
    ``keep`` False (ranks that do not write) drops each gathered tensor at once and returns {}."""
    out: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        full = full_tensor(v).detach()
        if keep:
            out[k] = full.to("cpu")
    return out


def shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``full`` cut to the layout of ``like``: this rank's shard (a DTensor with ``like``'s mesh and placements,
    sliced locally, no communication) when ``like`` is sharded, else ``full`` on ``like``'s device and dtype."""
    full = full.to(device=like.device, dtype=like.dtype)
    if not is_sharded(like):
        return full
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full, like.device_mesh, like.placements, src_data_rank=None)


def check_global_batch(old: int, batch_size: int, grad_accum: int, world: int, where: str, section: str) -> None:
    """Resuming on another number of processes: the global batch (``batch_size x grad_accum x processes``) must
    stay ``old``, what the checkpoint ``where`` was trained with; ValueError saying which ``<section>`` settings
    give it on ``world`` processes otherwise."""
    new = batch_size * grad_accum * world
    if old == new:
        return
    hints = []
    if old % (world * grad_accum) == 0:
        hints.append(f"{section}.batch_size={old // (world * grad_accum)}")
    if section == "train" and old % (world * batch_size) == 0:
        hints.append(f"train.grad_accum={old // (world * batch_size)}")
    hint = f"; on {world} process(es) set {' or '.join(hints)}" if hints else ""
    raise ValueError(f"cannot resume {where}: its global batch (batch_size x grad_accum x processes) was {old}, now "
                     f"{batch_size} x {grad_accum} x {world} = {new}{hint}")


def main_first(d: Dist, fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 first, then (after a barrier) on the others: for work that writes files on its first
    call and finds them in place afterwards (copying a run's VAE into a student's folder)."""
    out = fn() if d.main else None
    barrier(d)
    return out if d.main else fn()  # type: ignore[return-value]


def process_device(d: Dist, device: str | torch.device | None) -> torch.device:
    """Where this process computes: ``device`` (default CUDA when available) on one process; under torchrun this
    rank's device (``cuda:LOCAL_RANK`` or the CPU), which ``device`` may not contradict."""
    if d.world == 1:
        return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device is not None and torch.device(device).type != d.device.type:
        raise ValueError(f"device {device!r} under torchrun: each process uses {d.device.type} ({d.device} here)")
    return d.device
