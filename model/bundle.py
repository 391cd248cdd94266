"""Training checkpoints on disk and the trained-model bundle that sampling loads.

A training run's folder (``out_dir``)::

    train_config.json          the TrainConfig of the run (written at the start)
    log.jsonl                  one JSON object per logged step (loss, lr, grad_norm, samples/s, val_loss)
    vae.safetensors            the VAE (tiny runs train one; metadata "config" holds its VAEConfig)
    image_encoder.safetensors  the (frozen) image encoder when the run made it (tiny); metadata "config"
    latents/                   the latent cache (see :mod:`model.latents`)
    checkpoints/
      step-000400/
        dit.safetensors        DiT weights
        dit_ema.safetensors    EMA of the DiT weights (what sampling uses by default)
        optimizer.safetensors  AdamW state tensors; metadata "param_groups" (JSON)
        state.json             step, the resolved run description (below), losses
      latest                   the name of the newest complete checkpoint (written last, atomically)

Every safetensors file carries the run description as JSON in its metadata under "playmill": the model
config (:class:`~model.configs.ModelConfig`), the condition spec (:class:`~model.conditions.ConditionSpec`:
keyboard mapping, mouse scale, frames, resolution), the dataset fps and where the VAE and the image encoder
are. A checkpoint folder (or its ``dit_ema.safetensors``) is therefore enough to sample. Weights are only
ever read with safetensors (or ``torch.load(weights_only=True)`` for third-party ``.pth`` files): no pickle.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from capture.atomic import to_jsonable, write_json_atomic
from capture.names import name_problem

from .checkpoint import (CheckpointError, load_checkpoint, load_state_dict_strict, read_safetensors,
                         safetensors_header)
from .conditions import ConditionSpec
from .configs import ActionConfig, DiTConfig, ImageEncoderConfig, ModelConfig, VAEConfig
from .dit import WorldModelDiT
from .image_encoder import ImageEncoder, load_image_encoder_weights
from .parallel import full_state, is_sharded, shard_like
from .vae import WanVAE

CHECKPOINTS = "checkpoints"
LATEST = "latest"
META_KEY = "playmill"
PLAYMILL_WEIGHTS = ("a safetensors file written by playmill (train, distill: a checkpoint's dit_ema.safetensors, "
                    "vae.safetensors, ...)")


# ----------------------------------------------------------------------------------------------------------
# config <-> JSON


def _tuples(d: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """Convert list-valued fields of a dataclass dict back to tuples (configs are frozen with tuple fields)."""
    names = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for k, v in d.items():
        if k not in names:
            raise ValueError(f"unknown {cls.__name__} field {k!r}")
        out[k] = tuple(v) if isinstance(v, list) else v
    return out


def vae_config_from_dict(d: Mapping[str, Any]) -> VAEConfig:
    return VAEConfig(**_tuples(d, VAEConfig))


def image_encoder_config_from_dict(d: Mapping[str, Any]) -> ImageEncoderConfig:
    return ImageEncoderConfig(**_tuples(d, ImageEncoderConfig))


def model_config_from_dict(d: Mapping[str, Any]) -> ModelConfig:
    """Inverse of ``to_jsonable(ModelConfig)``."""
    dit = dict(d["dit"])
    action = dit.pop("action", None)
    dit_cfg = DiTConfig(**_tuples(dit, DiTConfig), action=None if action is None else ActionConfig(**_tuples(action, ActionConfig)))
    return ModelConfig(name=d["name"], mode=d["mode"], dit=dit_cfg, vae=vae_config_from_dict(d["vae"]),
                       image_encoder=image_encoder_config_from_dict(d["image_encoder"]))


# ----------------------------------------------------------------------------------------------------------
# atomic writes


def save_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None) -> None:
    """Write tensors (made contiguous, on CPU) with ``meta`` as JSON under metadata["playmill"], atomically."""
    from safetensors.torch import save_file

    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(data, str(tmp), metadata={META_KEY: json.dumps(to_jsonable(meta or {}), allow_nan=False)})
    os.replace(tmp, path)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The "playmill" JSON metadata of a safetensors file ({} when absent or not safetensors).
    :class:`~model.checkpoint.CheckpointError` naming the file when it cannot be read."""
    p = Path(path)
    if p.suffix != ".safetensors":
        return {}
    _, md = safetensors_header(p, expected=PLAYMILL_WEIGHTS)
    if META_KEY not in md:
        return {}
    try:
        meta = json.loads(md[META_KEY])
    except ValueError as e:
        raise CheckpointError(f"{p}: its metadata {META_KEY!r} is not valid JSON ({e}); expected the run "
                              "description that playmill writes") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{p}: its metadata {META_KEY!r} is a {type(meta).__name__}, expected a JSON object")
    return meta


def read_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file on CPU (:class:`~model.checkpoint.CheckpointError` naming the file when
    it cannot be read)."""
    return read_safetensors(path, expected=PLAYMILL_WEIGHTS)[0]


# ----------------------------------------------------------------------------------------------------------
# VAE / image encoder files


def save_module(path: Path, module: nn.Module, config: Any, extra: Mapping[str, Any] | None = None) -> None:
    """A module's state dict with its config (and ``extra``) in the metadata."""
    save_safetensors(path, module.state_dict(), {"config": config, **(extra or {})})


def load_vae(path: str | os.PathLike[str], cfg: VAEConfig | None = None, device: str | torch.device = "cpu") -> WanVAE:
    """A VAE from a playmill ``vae.safetensors`` (config in its metadata) or a Wan ``Wan2.1_VAE.pth`` (``cfg`` or
    the full-size default). Strict: missing/unexpected keys raise :class:`~model.checkpoint.CheckpointMismatchError`."""
    meta = read_meta(path)
    if "config" in meta:
        cfg = vae_config_from_dict(meta["config"])
    with torch.device("meta"):
        vae = WanVAE(cfg)
    load_checkpoint(vae, path, prefix=None)
    vae.reset_buffers()
    return vae.to(device).eval().requires_grad_(False)


def load_image_encoder(path: str | os.PathLike[str], cfg: ImageEncoderConfig | None = None,
                       device: str | torch.device = "cpu") -> ImageEncoder:
    """An image encoder from a playmill safetensors (config in metadata) or a CLIP checkpoint (``cfg``)."""
    meta = read_meta(path)
    if "config" in meta:
        cfg = image_encoder_config_from_dict(meta["config"])
    with torch.device("meta"):
        enc = ImageEncoder(cfg)
    load_image_encoder_weights(enc, path)
    enc.reset_buffers()
    return enc.to(device).eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------------------
# training checkpoints


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder of a run (``checkpoints/latest``), or None."""
    root = Path(out_dir) / CHECKPOINTS
    p = root / LATEST
    if not p.is_file():
        return None
    name = p.read_text(encoding="utf-8", errors="replace").strip()
    if name_problem(name) is not None:  # it names a folder of checkpoints/: never one elsewhere
        raise CheckpointError(f"{p}: names {name[:80]!r}, not a checkpoint folder of {root} ({name_problem(name)})")
    d = root / name
    return d if (d / "state.json").is_file() else None


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten ``opt.state_dict()``: tensors "state.<param index>.<name>", and JSON (param_groups, scalars)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = v
            else:
                scalars[f"{idx}.{name}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Inverse of :func:`optimizer_to_tensors` into ``opt`` (which must have the same parameter layout; the
    parameters may be FSDP shards: each rank keeps its shard of the moments)."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for key, v in meta.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    groups = [dict(g) for g in meta["param_groups"]]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    params = [p for g in opt.param_groups for p in g["params"]]
    for idx, st in state.items():  # moments of a sharded (FSDP) parameter: this rank's shard
        if idx < len(params) and is_sharded(params[idx]):
            for name, v in st.items():
                if isinstance(v, torch.Tensor) and tuple(v.shape) == tuple(params[idx].shape):
                    st[name] = shard_like(v, params[idx])
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_train_checkpoint(
    out_dir: Path,
    step: int,
    dit: nn.Module,
    ema: Mapping[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    run: Mapping[str, Any],
    state: Mapping[str, Any],
    keep_last: int = 0,
    *,
    write: bool = True,
    extra: Mapping[str, tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]] | None = None,
) -> Path | None:
    """Write ``checkpoints/step-NNNNNN/`` (weights, EMA, optimizer, state.json), then point ``latest`` at it.

    ``run``: the run description stored in every file's metadata. ``keep_last`` > 0 deletes older checkpoints
    beyond the newest ``keep_last`` (never the one just written). ``extra``: more files of the checkpoint,
    ``{file name: (tensors, metadata)}`` (written before ``latest`` moves).

    Sharded (FSDP) tensors are gathered to full ones first: under torchrun every rank calls this (the gathers are
    collectives) and only the rank with ``write`` writes; it returns the folder there, None elsewhere. The files
    are the same whatever the number of processes, so a run resumes on any number.
    """
    weights = full_state(dit.state_dict(), write)
    ema_full = full_state(ema, write)
    tensors, opt_meta = optimizer_to_tensors(opt)
    opt_full = full_state(tensors, write)
    more = {name: (full_state(t, write), m) for name, (t, m) in (extra or {}).items()}
    if not write:
        return None
    root = out_dir / CHECKPOINTS
    d = root / checkpoint_name(step)
    d.mkdir(parents=True, exist_ok=True)
    meta = {**run, "step": step}
    for name, (t, m) in more.items():
        save_safetensors(d / name, t, m)
    save_safetensors(d / "dit.safetensors", weights, meta)
    save_safetensors(d / "dit_ema.safetensors", ema_full, {**meta, "ema": True})
    save_safetensors(d / "optimizer.safetensors", opt_full, {**meta, **opt_meta})
    write_json_atomic(d / "state.json", {**state, "step": step, "run": run})
    tmp = root / f".{LATEST}.tmp"
    tmp.write_text(d.name, encoding="utf-8")
    os.replace(tmp, root / LATEST)
    if keep_last > 0:
        old = sorted(p for p in root.glob("step-*") if p.is_dir() and p != d)
        for p in old[: max(0, len(old) - (keep_last - 1))]:
            for f in p.iterdir():
                f.unlink()
            p.rmdir()
    return d


def load_train_checkpoint(
    ckpt: Path, dit: nn.Module, ema: dict[str, torch.Tensor], opt: torch.optim.Optimizer
) -> dict[str, Any]:
    """Load weights, EMA and optimizer state of a checkpoint folder (strict) and return its state.json.
    Into a sharded (FSDP) model, EMA and optimizer, every rank takes its shard of the full tensors."""
    load_state_dict_strict(dit, read_tensors(ckpt / "dit.safetensors"), source=str(ckpt / "dit.safetensors"))
    ema_sd = read_tensors(ckpt / "dit_ema.safetensors")
    if set(ema_sd) != set(ema):
        missing, unexpected = sorted(set(ema) - set(ema_sd)), sorted(set(ema_sd) - set(ema))
        raise ValueError(f"{ckpt / 'dit_ema.safetensors'}: EMA keys differ (missing {missing}, unexpected {unexpected})")
    for k, v in ema_sd.items():
        ema[k].copy_(shard_like(v, ema[k]))
    optimizer_from_tensors(opt, read_tensors(ckpt / "optimizer.safetensors"), read_meta(ckpt / "optimizer.safetensors"))
    return read_state_json(ckpt)


def read_state_json(ckpt: Path) -> dict[str, Any]:
    """A checkpoint folder's state.json (:class:`~model.checkpoint.CheckpointError` naming it when unreadable)."""
    p = ckpt / "state.json"
    try:
        state = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{p}: unreadable ({e}); expected the JSON state that playmill writes with each "
                              "checkpoint") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: holds a {type(state).__name__}, expected a JSON object")
    return state


# ----------------------------------------------------------------------------------------------------------
# the trained model, for sampling


@dataclass
class Bundle:
    """Everything sampling needs: the networks (eval mode, frozen), the conditions and the run description."""

    dit: WorldModelDiT
    vae: WanVAE
    image_encoder: ImageEncoder
    spec: ConditionSpec
    model_config: ModelConfig
    fps: float
    timestep_shift: float
    run: dict[str, Any]
    weights: Path


def _resolve(p: str, base: Path) -> Path:
    q = Path(p)
    return q if q.is_absolute() else (base / q)


def resolve_weights(checkpoint: str | os.PathLike[str], use_ema: bool = True) -> Path:
    """A checkpoint folder, a run folder (its latest checkpoint) or a DiT safetensors file -> the weights file.
    ``FileNotFoundError`` when ``checkpoint`` does not exist, :class:`~model.checkpoint.CheckpointError` for a folder
    without usable weights."""
    p = Path(checkpoint)
    if p.is_dir():
        if (p / CHECKPOINTS).is_dir():
            latest = latest_checkpoint(p)
            if latest is None:
                raise CheckpointError(f"{p}: a training run folder without a complete checkpoint (the run has not "
                                      "written one yet)")
            p = latest
        name = "dit_ema.safetensors" if use_ema else "dit.safetensors"
        if not (p / name).is_file():
            raise CheckpointError(f"{p}: no {name} (not a playmill checkpoint folder)")
        return p / name
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return p


def load_bundle(checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu", use_ema: bool = True,
                dtype: torch.dtype | None = None) -> Bundle:
    """Load a trained model for sampling (DiT weights strictly; see the module doc for the file layout).

    Raises :class:`~model.checkpoint.CheckpointMismatchError` listing missing/unexpected keys when the weights
    do not fit the stored config.
    """
    weights = resolve_weights(checkpoint, use_ema)
    run = read_meta(weights)
    if "model" not in run or "conditions" not in run:
        raise CheckpointError(f"{weights}: no playmill run description in its metadata (not written by model.train); "
                              f"expected {PLAYMILL_WEIGHTS}")
    base = weights.parent
    mcfg = model_config_from_dict(run["model"])
    with torch.device("meta"):
        dit = WorldModelDiT(mcfg.dit)
    load_state_dict_strict(dit, read_tensors(weights), source=str(weights))
    dit = dit.to(device=device, dtype=dtype).eval().requires_grad_(False)
    vae = load_vae(_resolve(run["vae"], base), mcfg.vae, device)
    enc = load_image_encoder(_resolve(run["image_encoder"], base), mcfg.image_encoder, device)
    return Bundle(dit, vae, enc, ConditionSpec.from_dict(run["conditions"]), mcfg, float(run.get("fps", 25.0)),
                  float(run.get("timestep_shift", 5.0)), run, weights)
