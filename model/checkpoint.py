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

from capture.errors import InputError

from .parallel import is_sharded, shard_like

MG2_DISTILLED_PREFIX = "model."
SAFETENSORS_EXPECTED = "a safetensors file (8-byte little-endian header size, a JSON header, the tensor bytes)"


class CheckpointError(InputError):
    """A weights file that cannot be read at all: the message names the file, what it looks like and what was
    expected."""


class CheckpointMismatchError(InputError, RuntimeError):
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


def _safetensors_diagnosis(p: Path) -> str:
    """What is wrong with a file that safetensors refused, in words (empty, truncated, not safetensors)."""
    import json
    import struct

    size = p.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(p, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"the file has {size} bytes, too few for a safetensors header"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return (f"its first 8 bytes announce a {n}-byte header but the file has {size} bytes (truncated, or not a "
                    "safetensors file)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError):
            return "its header is not valid JSON (corrupt, or not a safetensors file)"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)
            and len(v["data_offsets"]) == 2 and isinstance(v["data_offsets"][1], int)]
    if ends and max(ends) > size - 8 - n:
        return f"the header describes {max(ends)} bytes of tensors but {size - 8 - n} follow it (truncated)"
    return "its header does not describe valid tensors"


def _refused(p: Path, exc: BaseException, expected: str) -> CheckpointError:
    try:
        why = _safetensors_diagnosis(p)
    except OSError as e:
        why = f"unreadable: {e}"
    return CheckpointError(f"{p}: not a readable safetensors file: {why} [{type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}]; expected {expected}")


def read_safetensors(path: str | os.PathLike[str], *, expected: str = SAFETENSORS_EXPECTED
                     ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors on CPU, metadata)`` of a safetensors file; :class:`CheckpointError` naming the file, what is
    wrong with it (empty, truncated, not safetensors) and ``expected`` when it cannot be read."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:  # SafetensorError, OSError, ValueError: the file, not the code
        raise _refused(p, e, expected) from None


def safetensors_header(path: str | os.PathLike[str], *, expected: str = SAFETENSORS_EXPECTED
                       ) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """``(tensor shapes, metadata)`` of a safetensors file without reading the tensors; errors as
    :func:`read_safetensors`."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as e:
        raise _refused(p, e, expected) from None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a flat {name: tensor} dict from ``.safetensors`` or a torch file (``weights_only=True``: never
    pickle). A torch file holding {"state_dict": {...}} is unwrapped. An unreadable file raises
    :class:`CheckpointError` naming it and what was expected."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    if p.suffix == ".safetensors":
        return read_safetensors(p)[0]
    expected = "a .safetensors file, or a torch .pth/.pt file holding a state dict of tensors only"
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip), EOFError: say what, never suggest pickle
        import zipfile

        kind = "a zip archive" if zipfile.is_zipfile(p) else f"not a torch zip archive ({p.stat().st_size} bytes)"
        raise CheckpointError(f"{p}: cannot be read as torch weights without pickle (weights_only=True refused it: "
                              f"{type(e).__name__}); the file is {kind}; expected {expected}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{p}: holds a {type(obj).__name__}, not a flat state dict of tensors; expected "
                              f"{expected}")
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
