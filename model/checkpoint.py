"""Reading and strictly loading weights (safetensors, or ``torch.load(weights_only=True)``; never pickle).

``load_state_dict_strict`` checks every key and shape before touching the module and raises
:class:`CheckpointMismatchError`, which lists the missing keys, the unexpected keys and the shape mismatches.
Modules built on the meta device (the full-size configs) are loaded with ``assign=True``, so the checkpoint's
tensors become the parameters without a second copy in memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from .parallel import is_sharded, shard_like

MG2_DISTILLED_PREFIX = "model."


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit a module; lists what is missing, unexpected and mis-shaped."""

    def __init__(
        self,
        missing: list[str],
        unexpected: list[str],
        shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        source: str = "state dict",
        limit: int = 50,
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatches = shape_mismatches
        self.source = source
        lines = [
            f"{source} does not match the model: {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(shape_mismatches)} shape mismatches"
        ]

        def section(title: str, items: list[str]) -> None:
            if items:
                lines.append(f"{title}:")
                lines.extend(f"  {s}" for s in items[:limit])
                if len(items) > limit:
                    lines.append(f"  ... and {len(items) - limit} more")

        section("missing keys", missing)
        section("unexpected keys", unexpected)
        section(
            "shape mismatches (checkpoint vs model)",
            [f"{k}: {list(a)} vs {list(b)}" for k, a, b in shape_mismatches],
        )
        super().__init__("\n".join(lines))


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a flat {name: tensor} dict from ``.safetensors`` or a torch file (``weights_only=True``).

    A torch file holding {"state_dict": {...}} is unwrapped.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(f"reading {p} needs the 'safetensors' package (pip install safetensors)") from e
        return dict(load_file(str(p), device="cpu"))
    obj = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{p} does not hold a flat state dict of tensors")
    return dict(obj)


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = MG2_DISTILLED_PREFIX) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key that has it (Matrix-Game 2.0's distilled safetensors use "model.")."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def compare_state_dict(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """(missing, unexpected, shape_mismatches) of ``state_dict`` against ``module.state_dict()`` (sorted)."""
    expected = module.state_dict()
    missing = sorted(k for k in expected if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in expected)
    mismatched = sorted(
        (k, tuple(state_dict[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    return missing, unexpected, mismatched


def load_state_dict_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Load exactly: every key present, none extra, every shape equal; else :class:`CheckpointMismatchError`.

    Tensors are cast to each parameter's dtype unless the module lives on the meta device, in which case the
    checkpoint tensors are assigned as they are. A module sharded with FSDP (DTensor parameters; shapes compared
    are the full ones) takes this rank's shard of each full tensor.
    """
    missing, unexpected, mismatched = compare_state_dict(module, state_dict)
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(missing, unexpected, mismatched, source)
    current = module.state_dict()
    if any(is_sharded(t) for t in current.values()):  # FSDP: every rank cuts its shard from the full tensors
        with torch.no_grad():
            for k, t in current.items():
                t.copy_(shard_like(state_dict[k], t))
        return
    on_meta = any(t.is_meta for t in current.values())
    module.load_state_dict(dict(state_dict), strict=True, assign=on_meta)


def load_checkpoint(module: nn.Module, path: str | os.PathLike[str], prefix: str | None = MG2_DISTILLED_PREFIX) -> None:
    """Read ``path`` and load it strictly into ``module``, first stripping ``prefix`` from keys that carry it.

    For the DiT: Matrix-Game 2.0's distilled ``*.safetensors`` (keys "model.*") and the base
    ``diffusion_pytorch_model.safetensors`` both load. For the VAE: ``Wan2.1_VAE.pth`` (pass ``prefix=None``).
    """
    sd = read_state_dict(path)
    if prefix:
        sd = strip_prefix(sd, prefix)
    load_state_dict_strict(module, sd, source=str(path))
