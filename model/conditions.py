"""From a dataset's actions to the model's conditions: keyboard mapping, mouse units, clip length.

A shards dataset (DESIGN.md section 4) stores per frame a multi-hot ``keyboard`` over its own action space (by
default ``w, s, a, d, space, shift, ctrl, lmb, rmb``) and ``mouse`` = (d_pitch, d_yaw) in degrees. A
Matrix-Game 2.0 model takes, per raw video frame,

- ``keyboard`` [T, K_model]: universal [W, S, A, D]; gta_drive [forward, back]; templerun 7 one-hot keys;
- ``mouse`` [T, 2] = (pitch, yaw) in the model's units, where a typical held turn is about ``0.1``
  (Matrix-Game's ``CAM_VALUE``); templerun has no mouse.

:class:`ConditionSpec` holds the mapping and converts batches:

    keyboard_model[..., j] = keyboard_dataset[..., index(source_j)]      (source "@none": 1 when no other
                                                                           mapped key is held)
    mouse_model            = mouse_scale * (d_pitch_deg, d_yaw_deg)

The mouse scale is chosen so that the dataset's typical per-frame turn maps to 0.1:

    typical = max(|q_0.05(d_yaw)|, |q_0.95(d_yaw)|)     (degrees per frame)
    mouse_scale = 0.1 / typical

computed from a shard manifest's statistics (:func:`mouse_scale_from_manifest`) or from a sample of clips
(:func:`mouse_scale_from_clips`); both use the same quantile statistic. If fewer than 5 % of frames turn, the
1 % / 99 % quantiles are used, then the largest turn.

Clips: the DiT needs ``num_frames = 1 + 4k`` raw frames (57 -> 15 latent frames). Longer clips are trimmed to
their first ``num_frames`` frames; shorter clips, a different resolution or a missing key are errors
(:class:`ConditionError`) that say what to change.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from capture.errors import InputError

from .configs import ACTION_MODES

#: The mouse value of a typical held turn in Matrix-Game 2.0 (its inference scripts' CAM_VALUE).
MG2_CAM_VALUE = 0.1

#: A mapping source meaning "1 when none of the other mapped dataset keys is held" (templerun's ``nomove``).
NO_KEY = "@none"

#: Default model-key -> dataset-key maps per action mode (dataset keys of the default action space).
DEFAULT_KEYBOARD_MAPS: dict[str, dict[str, str]] = {
    "universal": {"w": "w", "s": "s", "a": "a", "d": "d"},
    "gta_drive": {"forward": "w", "back": "s"},
    "templerun": {
        "nomove": NO_KEY, "jump": "jump", "slide": "slide", "turnleft": "turnleft", "turnright": "turnright",
        "leftside": "leftside", "rightside": "rightside",
    },
}


class ConditionError(InputError):
    """A dataset (or an action file) that does not fit the model's conditions; the message says what to change.
    Data, not usage: exit code 1 at the command line (:mod:`capture.errors`)."""


class ActionsFileError(ConditionError):
    """An actions table (a CSV file) that cannot drive the model: the message names the file, row and column."""


def check_num_frames(num_frames: int, temporal_compression: int = 4) -> int:
    """``num_frames`` if it is ``1 + r k`` (k >= 1), else :class:`ConditionError` naming the nearest valid values."""
    r = temporal_compression
    if num_frames < 1 + r or (num_frames - 1) % r:
        lo = max(1 + r, 1 + r * ((num_frames - 1) // r))
        raise ConditionError(f"num_frames must be 1 + {r}k (e.g. {lo} or {lo + r}), got {num_frames}")
    return num_frames


def resolve_keyboard_map(
    mode: str, dataset_keys: Sequence[str], keyboard_map: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """The (model key, dataset key) pairs for ``mode``, in the model's channel order.

    Args:
        mode: an action mode (``ACTION_MODES``).
        dataset_keys: the dataset's action space keys.
        keyboard_map: overrides {model key: dataset key or "@none"}; keys not given use the mode's default.

    Raises:
        ConditionError: an unknown model key, or a dataset key the action space lacks (the message lists the
            dataset's keys and how to set ``keyboard_map``).
    """
    if mode not in ACTION_MODES:
        raise ConditionError(f"unknown action mode {mode!r}; allowed: {', '.join(sorted(ACTION_MODES))}")
    model_keys = ACTION_MODES[mode].keys
    merged = dict(DEFAULT_KEYBOARD_MAPS.get(mode, {}))
    for k, v in (keyboard_map or {}).items():
        if k not in model_keys:
            raise ConditionError(f"keyboard_map: {k!r} is not a key of mode {mode!r}; its keys are {list(model_keys)}")
        merged[k] = str(v)
    ds = list(dataset_keys)
    pairs, missing = [], []
    for k in model_keys:
        src = merged.get(k, k)
        if src != NO_KEY and src not in ds:
            missing.append(f"{k} <- {src}")
        pairs.append((k, src))
    if missing:
        raise ConditionError(
            f"the dataset's action space {ds} lacks keys that mode {mode!r} needs: {', '.join(missing)} "
            f"(model key <- dataset key). Map them with train.keyboard_map, e.g. "
            f"{{{', '.join(f'{k!r}: <one of {ds}>' for k, _ in (m.split(' <- ') for m in missing[:2]))}}}"
        )
    return tuple(pairs)


def typical_turn_deg(d_yaw: np.ndarray | None = None, quantiles: Mapping[str, float] | None = None,
                     max_abs: float | None = None) -> float:
    """A dataset's typical per-frame turn in degrees: max(|q_0.05|, |q_0.95|) of d_yaw, else the 1 %/99 %
    quantiles, else the largest |d_yaw|. Give raw values ``d_yaw`` or precomputed ``quantiles`` ({"0.05": ...})."""
    if d_yaw is not None:
        v = np.asarray(d_yaw, np.float64).ravel()
        v = v[np.isfinite(v)]
        if not len(v):
            raise ConditionError("no finite mouse values to estimate the mouse scale from")
        quantiles = {str(q): float(x) for q, x in zip((0.01, 0.05, 0.95, 0.99), np.quantile(v, (0.01, 0.05, 0.95, 0.99)))}
        max_abs = float(np.abs(v).max())
    if not quantiles:
        raise ConditionError("no d_yaw quantiles to estimate the mouse scale from")
    for lo, hi in (("0.05", "0.95"), ("0.01", "0.99")):
        if lo in quantiles and hi in quantiles:
            t = max(abs(float(quantiles[lo])), abs(float(quantiles[hi])))
            if t > 1e-9:
                return t
    if max_abs is not None and max_abs > 1e-9:
        return float(max_abs)
    raise ConditionError("the dataset never turns (d_yaw is 0 everywhere): set train.mouse_scale explicitly")


def mouse_scale_from_manifest(manifest: Mapping[str, Any] | str | os.PathLike[str], target: float = MG2_CAM_VALUE) -> float:
    """``target / typical_turn`` from a shard manifest's ``stats.mouse.d_yaw`` (a dict or a shards folder/manifest path)."""
    if not isinstance(manifest, Mapping):
        p = Path(manifest)
        p = p / "manifest.json" if p.is_dir() else p
        manifest = json.loads(p.read_text(encoding="utf-8"))
    yaw = manifest.get("stats", {}).get("mouse", {}).get("d_yaw", {})
    if not yaw.get("count"):
        raise ConditionError("the manifest has no stats.mouse.d_yaw: estimate the scale from clips "
                             "(mouse_scale_from_clips) or set train.mouse_scale")
    return target / typical_turn_deg(quantiles=yaw.get("quantiles"), max_abs=max(abs(yaw.get("min", 0.0)), abs(yaw.get("max", 0.0))))


def mouse_scale_from_clips(mouse: Iterable[np.ndarray | torch.Tensor], target: float = MG2_CAM_VALUE) -> float:
    """``target / typical_turn`` from a sample of clips' mouse arrays, each [T, 2] = (d_pitch, d_yaw) degrees."""
    yaw = [np.asarray(m, np.float64).reshape(-1, 2)[:, 1] for m in mouse]
    if not yaw:
        raise ConditionError("no clips to estimate the mouse scale from")
    return target / typical_turn_deg(np.concatenate(yaw))


@dataclass(frozen=True)
class ConditionSpec:
    """How a dataset's actions become the DiT's inputs (stored in every training checkpoint).

    mode: the model's action mode. dataset_keys: the dataset's action space. keyboard_map: (model key,
    dataset key or "@none") per model keyboard channel, in channel order. mouse_scale: model units per degree
    (0 or unused when the mode has no mouse). num_frames, height, width: the clip geometry the model trains on.
    """

    mode: str
    dataset_keys: tuple[str, ...]
    keyboard_map: tuple[tuple[str, str], ...]
    mouse_scale: float
    num_frames: int
    height: int
    width: int

    @property
    def uses_mouse(self) -> bool:
        return ACTION_MODES[self.mode].mouse_dim > 0

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "dataset_keys": list(self.dataset_keys), "keyboard_map": dict(self.keyboard_map),
                "mouse_scale": self.mouse_scale, "num_frames": self.num_frames, "height": self.height,
                "width": self.width}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConditionSpec":
        return cls(str(d["mode"]), tuple(d["dataset_keys"]), tuple((str(k), str(v)) for k, v in d["keyboard_map"].items()),
                   float(d["mouse_scale"]), int(d["num_frames"]), int(d["height"]), int(d["width"]))

    def keyboard(self, keyboard: torch.Tensor) -> torch.Tensor:
        """Dataset keyboard [..., T, K_dataset] (any dtype) -> model keyboard [..., T, K_model] float32."""
        if keyboard.shape[-1] != len(self.dataset_keys):
            raise ConditionError(f"keyboard has {keyboard.shape[-1]} columns; the dataset's action space has "
                                 f"{len(self.dataset_keys)} keys {list(self.dataset_keys)}")
        kb = keyboard.float()
        mapped = [self.dataset_keys.index(src) for _, src in self.keyboard_map if src != NO_KEY]
        any_held = kb[..., mapped].amax(dim=-1) if mapped else torch.zeros_like(kb[..., 0])
        cols = [(1.0 - any_held) if src == NO_KEY else kb[..., self.dataset_keys.index(src)] for _, src in self.keyboard_map]
        return torch.stack(cols, dim=-1)

    def mouse(self, mouse: torch.Tensor) -> torch.Tensor | None:
        """Dataset mouse [..., T, 2] (d_pitch, d_yaw degrees) -> model mouse [..., T, 2] float32, or None (no mouse)."""
        if not self.uses_mouse:
            return None
        if mouse.shape[-1] != 2:
            raise ConditionError(f"mouse must have 2 columns (d_pitch, d_yaw), got {mouse.shape[-1]}")
        return mouse.float() * self.mouse_scale

    def check_dataset(self, height: int, width: int, clip_frames: int, where: str = "dataset") -> None:
        """Raise :class:`ConditionError` when a dataset's resolution or clip length does not fit this spec."""
        if (height, width) != (self.height, self.width):
            raise ConditionError(
                f"{where}: clips are {width}x{height} (WxH); the model trains at {self.width}x{self.height}. "
                f"Re-curate with width: {self.width}, height: {self.height}, or set train.width/train.height "
                f"to {width}/{height} (multiples of 16)")
        if clip_frames < self.num_frames:
            raise ConditionError(
                f"{where}: clips have {clip_frames} frames; the model needs {self.num_frames}. Re-curate with "
                f"clip_frames: {self.num_frames} or set train.num_frames <= {clip_frames} (1 + 4k)")


def build_condition_spec(
    mode: str,
    dataset_keys: Sequence[str],
    *,
    num_frames: int,
    height: int,
    width: int,
    keyboard_map: Mapping[str, str] | None = None,
    mouse_scale: float | None = None,
    manifest: Mapping[str, Any] | None = None,
    mouse_sample: Iterable[np.ndarray] | None = None,
    dataset_geometry: tuple[int, int, int] | None = None,
    where: str = "dataset",
    spatial_multiple: int = 16,
) -> ConditionSpec:
    """Check a dataset against a model and build the :class:`ConditionSpec`.

    Checks, in order: frames and resolution of the model, the keyboard mapping against ``dataset_keys``, the
    dataset's (height, width, clip_frames) when ``dataset_geometry`` is given (``where`` names it in errors),
    then the mouse scale: ``mouse_scale``, else from ``manifest`` stats, else from ``mouse_sample``.
    ``spatial_multiple``: H and W must be multiples of it (VAE 8x times patch 2 = 16).
    """
    check_num_frames(num_frames)
    if height % spatial_multiple or width % spatial_multiple:
        raise ConditionError(f"height and width must be multiples of {spatial_multiple}, got {width}x{height}")
    pairs = resolve_keyboard_map(mode, dataset_keys, keyboard_map)
    probe = ConditionSpec(mode, tuple(dataset_keys), pairs, 0.0, num_frames, height, width)
    if dataset_geometry is not None:
        probe.check_dataset(*dataset_geometry, where=where)
    if ACTION_MODES[mode].mouse_dim == 0:
        scale = 0.0
    elif mouse_scale is not None:
        scale = float(mouse_scale)
    elif manifest is not None and manifest.get("stats", {}).get("mouse", {}).get("d_yaw", {}).get("count"):
        scale = mouse_scale_from_manifest(manifest)
    elif mouse_sample is not None:
        scale = mouse_scale_from_clips(mouse_sample)
    else:
        raise ConditionError("cannot choose the mouse scale: no manifest stats and no clips; set train.mouse_scale")
    if not np.isfinite(scale) or scale < 0:
        raise ConditionError(f"mouse_scale must be a finite number >= 0, got {scale} (non-finite mouse statistics? "
                             "set train.mouse_scale)")
    return ConditionSpec(mode, tuple(dataset_keys), pairs, scale, num_frames, height, width)


def trim_clip(x: torch.Tensor, num_frames: int, dim: int = 1) -> torch.Tensor:
    """The first ``num_frames`` entries of ``x`` along ``dim`` (``ConditionError`` if it has fewer)."""
    n = x.shape[dim]
    if n < num_frames:
        raise ConditionError(f"clip has {n} frames, {num_frames} needed")
    return x.narrow(dim, 0, num_frames)


def actions_from_table(table: Any, spec: ConditionSpec) -> tuple[np.ndarray, np.ndarray]:
    """Dataset-space actions from a pandas DataFrame, a CSV path or a mapping of columns.

    Key columns are ``key_<k>`` (actions.csv) or ``<k>``, for the dataset keys the mapping uses (others are
    ignored; absent unmapped keys count as not held). Mouse columns ``d_pitch`` and ``d_yaw`` (degrees; absent
    means 0 when the mode has no mouse). Returns keyboard float32 [T, K_dataset] and mouse float32 [T, 2].
    """
    import pandas as pd

    where = "actions"
    if isinstance(table, (str, os.PathLike)):
        where = os.fspath(table)
        try:
            df = pd.read_csv(table, encoding="utf-8-sig")  # a byte-order mark (spreadsheet exports) is fine
        except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
            raise ActionsFileError(f"{where}: unreadable CSV: {e}") from None
    elif isinstance(table, pd.DataFrame):
        df = table
    else:
        df = pd.DataFrame(dict(table))
    n = len(df)
    if n == 0:
        raise ActionsFileError(f"{where}: no rows (one row per video frame is needed)")

    def numbers(col: str) -> np.ndarray:
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            r = int(bad[0])
            cell = df[col].iloc[r]
            cell = cell.item() if hasattr(cell, "item") else cell  # numpy scalar -> plain value for the message
            raise ActionsFileError(f"{where}: row {r} column {col!r}: {cell!r} is not a finite number "
                                   f"({bad.size} such row(s); rows are 0-based data rows, row i = frame i)")
        return v
    needed = {src for _, src in spec.keyboard_map if src != NO_KEY}
    kb = np.zeros((n, len(spec.dataset_keys)), np.float32)
    missing = []
    for i, k in enumerate(spec.dataset_keys):
        col = f"key_{k}" if f"key_{k}" in df.columns else (k if k in df.columns else None)
        if col is None:
            if k in needed:
                missing.append(f"key_{k}")
            continue
        kb[:, i] = numbers(col)
    mouse = np.zeros((n, 2), np.float32)
    for j, c in enumerate(("d_pitch", "d_yaw")):
        if c in df.columns:
            mouse[:, j] = numbers(c)
        elif spec.uses_mouse:
            missing.append(c)
    if missing:
        raise ActionsFileError(f"{where}: the actions lack columns {missing} (have {list(df.columns)}); the model maps "
                               f"{dict(spec.keyboard_map)} from the dataset keys {list(spec.dataset_keys)}")
    if not (np.isfinite(kb).all() and np.isfinite(mouse).all()):  # finite float64 beyond float32's range
        raise ActionsFileError(f"{where}: actions overflow float32 (values beyond +-3.4e38)")
    return kb, mouse
