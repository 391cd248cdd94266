"""ODE pairs: the teacher's (base model's) sampling trajectories, the regression targets of student initialisation.

For pair i (clip c(i) of the shards: its first frame and actions, real data):

    x_1 ~ N(0, I)                                          noise [16, F, h, w], seeded by (seed, i)
    x_{s_{j+1}} = x_{s_j} + (s_{j+1} - s_j) DiT(x_{s_j}, 1000 s_j, c, y, kb, m)    N Euler steps, s_0 = 1 > ... > s_N = 0
    keep x at the student's noise levels sigma_1 > ... > sigma_K (and the endpoint x_0)

The teacher's schedule (:func:`teacher_schedule`) is the base model's shifted schedule
s = shift u / (1 + (shift - 1) u) on a u-grid that passes *exactly* through the student's few-step noise levels:
u_k = sigma_k / (shift - (shift - 1) sigma_k) (the inverse shift), and each interval [u_{k+1}, u_k] gets
max(1, round(N (u_k - u_{k+1}))) uniform steps in u. So the kept states are exact ODE states at the levels the
student denoises from (Matrix-Game 2.0 keeps fixed indices [0, 12, 24, 36, -1] of a 48-step shift-8 schedule and
regresses them at its own step list, an approximation; here the levels match by construction).

Storage ("playmill.ode_pairs/1"): ``out_dir/part-NNNNN.parquet`` with ``pairs_per_part`` rows, FastVideo-style
tensor columns ``<name>_bytes / _shape / _dtype`` (see :mod:`model.latents`):

    ode_latents         [K + 1, 16, F, h, w]   states at sigma_1..sigma_K, then the clean endpoint (sigma = 0)
    first_frame_latent  [16, F, h, w]          VAE.encode([frame0, 0, ..., 0]) (the i2v condition)
    clip_feature        [Lc, D]                image-encoder tokens of frame 0
    keyboard            [T, K_model] float32   model-space actions (the teacher's ConditionSpec applied)
    mouse               [T, 2] float32         model units (absent for modes without a mouse)

plus ``pair_id``, ``clip_id`` and ``seed``. ``manifest.json`` (written last) holds the sigmas, the teacher's
schedule, the teacher (path, sha256 of its weights), its run description (model config, conditions), the config
and the part list. Parts are written atomically and a rerun skips finished parts (pair i's clip and noise are a
pure function of (seed, i)); a folder made with another teacher or config is refused. Under torchrun the parts
still to make are dealt to the ranks (part j of them to rank j mod world), each rank holding the teacher; rank 0
writes the manifest once all are done. A part is the same bytes whichever rank (or how many) made it.

Library entry point: :func:`make_ode_pairs` (CLI ``playmill distill ode-pairs``); :class:`OdePairs` reads them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
from pydantic import AfterValidator
from torch.utils.data import Dataset

from capture.settings import Field, Frames1p4k, Invalid, from_preset, settings

from ..bundle import Bundle, load_bundle, resolve_weights, to_jsonable, write_json_atomic
from ..conditions import ConditionError, ConditionSpec
from ..dit import i2v_condition
from ..latents import array_columns, decode_cell, encode_condition
from ..schedule import inverse_shift, shift_sigma

PAIRS_SCHEMA = "playmill.ode_pairs/1"

def _sigmas(value: tuple[float, ...]) -> tuple[float, ...]:
    try:
        return check_sigmas(value, "sigmas")
    except ValueError:
        raise Invalid("", list(value), "noise levels strictly descending in (0, 1], e.g. [1.0, 0.9, 0.75, 0.5]") from None


@settings
class OdePairsConfig:
    """How many teacher trajectories to make and how. ``sigmas``: the noise levels kept, the student's schedule
    (null: ``CausalConfig.for_model(teacher model, mode).sigmas``; give the ``sigmas`` of the student's causal
    config when it is not the preset); 0 (the endpoint) is always kept. Clips are reused with new noise when
    there are fewer than ``num_pairs``."""

    name: str = Field("tiny", min_length=1, description="the run's name")
    num_pairs: int = Field(32, ge=1, description="teacher trajectories to make")
    teacher_steps: int = Field(24, ge=1, description="Euler steps of the teacher (each interval between kept levels gets >= 1)")
    shift: float | None = Field(None, gt=0, description="the teacher's timestep shift (null: its training shift)")
    sigmas: Annotated[tuple[float, ...], AfterValidator(_sigmas)] | None = Field(
        None, description="noise levels kept, descending in (0, 1] (null: the student preset's)")
    num_frames: Frames1p4k | None = Field(None, description="raw frames per pair, 1 + 4k (null: the teacher's clips)")
    batch_size: int = Field(8, ge=1, description="trajectories per teacher batch")
    pairs_per_part: int = Field(64, ge=1, description="rows per Parquet part (the unit of resume)")
    dtype: Literal["float16", "float32"] = Field("float32", description="storage dtype")
    use_ema: bool = Field(True, description="sample the teacher's EMA weights")
    seed: int = Field(0, ge=0, description="seed of the noise and the clip order")


ODE_PAIRS_PRESETS: dict[str, OdePairsConfig] = {
    "tiny": OdePairsConfig(),
    # Matrix-Game 2.0 / Self-Forcing: 40k pairs from a 48-step teacher with shift 8, fp16 storage.
    "mg2": OdePairsConfig(name="mg2", num_pairs=40_000, teacher_steps=48, shift=8.0, batch_size=4,
                          pairs_per_part=256, dtype="float16"),
}


def get_ode_pairs_config(name: str = "tiny", **overrides: Any) -> OdePairsConfig:
    """A preset ("tiny", "mg2") with overrides; :class:`capture.settings.ConfigError` naming any bad key."""
    return from_preset(OdePairsConfig, ODE_PAIRS_PRESETS, name, overrides, "distill.ode_pairs")


def check_sigmas(sigmas: Sequence[float], where: str) -> tuple[float, ...]:
    """Noise levels strictly descending in (0, 1]; ValueError naming ``where`` otherwise."""
    s = tuple(float(x) for x in sigmas)
    if not s or any(not (0.0 < x <= 1.0) for x in s) or any(a <= b for a, b in zip(s, s[1:])):
        raise ValueError(f"{where} must be noise levels strictly descending in (0, 1], e.g. [1.0, 0.9, 0.75, 0.5]; "
                         f"got {list(s)}")
    return s


# ----------------------------------------------------------------------------------------------------------
# The teacher's schedule and trajectory


def teacher_schedule(keep_sigmas: Sequence[float], steps: int, shift: float) -> tuple[np.ndarray, tuple[int, ...]]:
    """The teacher's noise levels and the indices of the kept ones (module doc).

    Returns:
        (s float64 [N + 1] from 1 to 0, indices of ``keep_sigmas`` then of the final 0 in it). s[idx] equals
        the kept sigma exactly.
    """
    keep = list(check_sigmas(keep_sigmas, "sigmas"))
    knots = ([] if keep[0] == 1.0 else [1.0]) + keep + [0.0]
    u = [inverse_shift(s, shift) for s in knots]
    levels = [1.0]
    index = {knots[0]: 0}
    for (ua, ub), sb in zip(zip(u[:-1], u[1:]), knots[1:]):
        n = max(1, round(steps * (ua - ub)))
        for j in range(1, n + 1):
            uu = ua + (ub - ua) * j / n
            levels.append(shift_sigma(uu, shift))
        levels[-1] = sb  # exact
        index[sb] = len(levels) - 1
    return np.asarray(levels, np.float64), tuple(index[s] for s in keep + [0.0])


@torch.no_grad()
def teacher_trajectory(
    dit: torch.nn.Module,
    noise: torch.Tensor,
    image_tokens: torch.Tensor,
    cond: torch.Tensor,
    keyboard: torch.Tensor,
    mouse: torch.Tensor | None,
    sigmas: np.ndarray,
    keep: Sequence[int],
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Euler-integrate dx/ds = DiT(x, 1000 s) from ``noise`` along ``sigmas`` (descending to 0) and return the
    states at the indices ``keep``: [B, len(keep), 16, F, h, w] float32."""
    x = noise.float()
    out: dict[int, torch.Tensor] = {0: x} if 0 in keep else {}
    dev = x.device
    for i in range(len(sigmas) - 1):
        t = torch.full((x.shape[0],), float(sigmas[i]) * 1000.0, device=dev)
        with torch.autocast(dev.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            v = dit(x, t, image_tokens, cond, keyboard, mouse)
        x = x + float(sigmas[i + 1] - sigmas[i]) * v.float()
        if i + 1 in keep:
            out[i + 1] = x
    return torch.stack([out[k] for k in keep], dim=1)


# ----------------------------------------------------------------------------------------------------------
# Checks shared by the distillation stages


def check_model_actions(keyboard: torch.Tensor, mouse: torch.Tensor | None, keyboard_dim: int, mouse_dim: int,
                        where: str) -> None:
    """Model-space actions [..., T, K] / [..., T, 2]: the widths of the model and finite values; ConditionError
    naming ``where`` (a clip, a pair, the action distribution) otherwise."""
    if keyboard.shape[-1] != keyboard_dim:
        raise ConditionError(f"{where}: keyboard has {keyboard.shape[-1]} channels per frame; the model expects "
                             f"{keyboard_dim}")
    if mouse_dim == 0 and mouse is not None:
        raise ConditionError(f"{where}: this model has no mouse input, but a mouse stream was given")
    if mouse_dim > 0:
        if mouse is None:
            raise ConditionError(f"{where}: the model needs a mouse stream [T, {mouse_dim}]")
        if mouse.shape[-1] != mouse_dim or mouse.shape[:-1] != keyboard.shape[:-1]:
            raise ConditionError(f"{where}: mouse must be [..., T, {mouse_dim}] like the keyboard "
                                 f"{list(keyboard.shape[:-1])}, got {list(mouse.shape)}")
        if not bool(torch.isfinite(mouse).all()):
            raise ConditionError(f"{where}: mouse contains NaN or infinite values")
    if not bool(torch.isfinite(keyboard).all()):
        raise ConditionError(f"{where}: keyboard contains NaN or infinite values")


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def load_teacher(teacher: str | os.PathLike[str] | Bundle, device: torch.device, use_ema: bool = True) -> Bundle:
    """The base (bidirectional) model to distil; a student checkpoint is refused with a clear error."""
    b = teacher if isinstance(teacher, Bundle) else load_bundle(teacher, device, use_ema)
    if "causal" in b.run:
        raise ValueError(f"teacher {b.weights} is a causal student checkpoint (stage {b.run.get('stage')!r}); the "
                         "teacher must be a base model run (playmill train)")
    return b


# ----------------------------------------------------------------------------------------------------------
# Writing


@dataclass
class OdePairsResult:
    """What :func:`make_ode_pairs` produced: the folder, the number of pairs, the kept sigmas (with 0 last), the
    teacher's schedule length and how many pairs this call computed (0 when all parts existed)."""

    out_dir: Path
    num_pairs: int
    sigmas: tuple[float, ...]
    teacher_steps: int
    computed: int
    elapsed_s: float
    parts: list[str] = field(default_factory=list)


def pair_seed(seed: int, i: int) -> int:
    """The noise seed of pair ``i`` (a pure function of (seed, i))."""
    return int(np.random.SeedSequence([seed, i, 17]).generate_state(1, np.uint64)[0] >> 1)


def pair_clip(seed: int, i: int, num_clips: int) -> int:
    """The clip of pair ``i``: epoch e = i // n walks a seeded permutation of the n clips."""
    e, k = divmod(i, num_clips)
    return int(np.random.default_rng([seed, e, 5]).permutation(num_clips)[k])


def _check_shards(spec: ConditionSpec, shards_dir: Path, n_frames: int) -> Any:
    """The shards' index, once their resolution, clip length and action space fit the teacher."""
    from curation.reader import open_shards

    index = open_shards(shards_dir)
    ConditionSpec(spec.mode, spec.dataset_keys, spec.keyboard_map, spec.mouse_scale, n_frames, spec.height,
                  spec.width).check_dataset(index.height, index.width, index.clip_frames,
                                            where=str(shards_dir / "manifest.json"))
    if tuple(index.keys) != tuple(spec.dataset_keys):
        raise ConditionError(f"{shards_dir / 'manifest.json'}: action space {list(index.keys)}; the teacher was "
                             f"trained on {list(spec.dataset_keys)}. Use shards with the teacher's action space")
    return index


def _kept_levels(cfg: OdePairsConfig, mcfg: Any) -> tuple[float, ...]:
    """The noise levels to keep: ``cfg.sigmas``, else the student preset's for the teacher's model and mode."""
    if cfg.sigmas is not None:
        return tuple(cfg.sigmas)
    from ..causal import CausalConfig

    return CausalConfig.for_model(mcfg.name, mcfg.mode).sigmas


def _parts_todo(cfg: OdePairsConfig, out: Path, d: Any) -> tuple[list[str], dict[int, list[int]], list[int]]:
    """(part file names, the pair ids of each part, the parts still missing that this rank makes: part j of
    them on rank j mod world)."""
    from ..parallel import barrier

    names = [f"part-{p:05d}.parquet" for p in range(math.ceil(cfg.num_pairs / cfg.pairs_per_part))]
    todo = [p for p, f in enumerate(names) if not (out / f).is_file()]
    barrier(d)  # every rank has listed the missing parts before any is written
    part_ids = {p: list(range(p * cfg.pairs_per_part, min((p + 1) * cfg.pairs_per_part, cfg.num_pairs)))
                for p in range(len(names))}
    return names, part_ids, todo[d.rank :: d.world]


def _claim_folder(out: Path, key: Mapping[str, Any], d: Any) -> None:
    """Refuse a folder of pairs made from other inputs (``.key.json`` differs, or parts without one); then rank 0
    records ``key`` (every rank has checked before it is written)."""
    from ..parallel import barrier

    key_path = out / ".key.json"
    if key_path.is_file():
        old = json.loads(key_path.read_text(encoding="utf-8"))
        if old != key:
            diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
            raise ValueError(f"{out}: holds ODE pairs made with another teacher, data or config (differs in {diff}); "
                             "use another out_dir or delete this one")
    elif any(out.glob("part-*.parquet")):
        raise ValueError(f"{out}: holds parts of unknown origin (no .key.json); use another out_dir")
    barrier(d)
    if d.main:
        write_json_atomic(key_path, key)


_COLUMNS = ("pair_id", "clip_id", "seed", "ode_latents", "first_frame_latent", "clip_feature", "keyboard", "mouse")


@dataclass
class _PairMaker:
    """The teacher sampling pairs (module doc): its bundle and weights file, its schedule (``sigmas``, the ``keep``
    indices), the clips (``ds`` of ``shards_dir``) and where it computes."""

    cfg: OdePairsConfig
    bundle: Bundle
    weights: Path
    ds: Any
    shards_dir: Path
    n_frames: int
    sigmas: np.ndarray
    keep: tuple[int, ...]
    device: torch.device
    amp: torch.dtype | None

    def part(self, ids: Sequence[int], bar: Any) -> Any:
        """The Arrow table of pairs ``ids`` (one part), made ``batch_size`` trajectories at a time."""
        import pyarrow as pa

        rows: dict[str, list] = {k: [] for k in _COLUMNS}
        for b0 in range(0, len(ids), self.cfg.batch_size):
            self._batch(ids[b0 : b0 + self.cfg.batch_size], rows)
            bar.update(len(ids[b0 : b0 + self.cfg.batch_size]))
        cols: dict[str, Any] = {"pair_id": pa.array(rows["pair_id"], pa.int64()),
                                "clip_id": pa.array(rows["clip_id"], pa.string()),
                                "seed": pa.array(rows["seed"], pa.uint64())}
        for name in _COLUMNS[3:]:
            if rows[name]:
                cols.update(array_columns(name, rows[name]))
        return pa.table(cols)

    def _batch(self, batch_ids: Sequence[int], rows: dict[str, list]) -> None:
        """Sample the trajectories of pairs ``batch_ids`` and append their rows."""
        cfg, spec, mcfg, dev, n = self.cfg, self.bundle.spec, self.bundle.model_config, self.device, self.n_frames
        act = mcfg.dit.action
        items = [self.ds[pair_clip(cfg.seed, i, len(self.ds))] for i in batch_ids]
        kb = spec.keyboard(torch.stack([it["keyboard"][:n] for it in items]))
        ms = spec.mouse(torch.stack([it["mouse"][:n] for it in items]))
        for j, it in enumerate(items):
            check_model_actions(kb[j], None if ms is None else ms[j], act.keyboard_dim, act.mouse_dim,
                                f"{self.shards_dir}: clip {it['clip_id']}")
        frame0 = torch.stack([it["frames"][0] for it in items]).to(dev)
        cond_lat, tokens = encode_condition(self.bundle.vae, self.bundle.image_encoder, frame0, n, autocast_dtype=self.amp)
        seeds = [pair_seed(cfg.seed, i) for i in batch_ids]
        noise = torch.stack([torch.randn(cond_lat.shape[1:], generator=torch.Generator().manual_seed(s))
                             for s in seeds]).to(dev)
        traj = teacher_trajectory(self.bundle.dit, noise, tokens, i2v_condition(cond_lat, mcfg.vae.temporal_compression),
                                  kb.to(dev), None if ms is None else ms.to(dev), self.sigmas, self.keep, self.amp)
        if not bool(torch.isfinite(traj).all()):
            bad = [it["clip_id"] for j, it in enumerate(items) if not bool(torch.isfinite(traj[j]).all())]
            raise FloatingPointError(f"the teacher's trajectory is not finite for pairs {list(batch_ids)} (clips {bad}); "
                                     f"check the teacher checkpoint {self.weights}")
        np_dtype = np.dtype(cfg.dtype)
        for j, (i, it) in enumerate(zip(batch_ids, items)):
            rows["pair_id"].append(i)
            rows["clip_id"].append(it["clip_id"])
            rows["seed"].append(seeds[j])
            rows["ode_latents"].append(traj[j].cpu().numpy().astype(np_dtype))
            rows["first_frame_latent"].append(cond_lat[j].cpu().numpy().astype(np_dtype))
            rows["clip_feature"].append(tokens[j].cpu().numpy().astype(np_dtype))
            rows["keyboard"].append(kb[j].numpy().astype(np.float32))
            if ms is not None:
                rows["mouse"].append(ms[j].numpy().astype(np.float32))


def make_ode_pairs(
    config: OdePairsConfig,
    teacher: str | os.PathLike[str],
    shards_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> OdePairsResult:
    """Sample the teacher on real clips' first frames and actions and store the trajectories (module doc).

    Args:
        config: :class:`OdePairsConfig` (:func:`get_ode_pairs_config`).
        teacher: a base training run folder (its latest checkpoint), a checkpoint folder or a ``dit*.safetensors``.
        shards_dir: a "playmill.shards/1" folder with the teacher's action space and resolution.
        out_dir: the pairs folder (created; a rerun resumes, another teacher/config there is refused).
        device: default CUDA when available (bf16 autocast there), else CPU; under torchrun each rank's device.

    Returns:
        :class:`OdePairsResult`. Raises ConditionError for clips that do not fit the teacher (action width,
        NaN actions, resolution, length), ValueError for a student checkpoint as teacher.
    """
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from curation.reader import ShardDataset

    from ..parallel import all_mean, barrier
    from ..runloop import start_session

    cfg = config
    s = start_session("auto", device)  # bf16 autocast on CUDA
    d = s.d
    shards_dir, out = Path(shards_dir), Path(out_dir)
    weights = resolve_weights(teacher, cfg.use_ema)
    bundle = load_teacher(weights, s.device, cfg.use_ema)
    spec, mcfg = bundle.spec, bundle.model_config
    n_frames = cfg.num_frames or spec.num_frames
    _check_shards(spec, shards_dir, n_frames)

    # ---- the teacher's schedule through the kept levels; the folder's key ----
    shift = float(cfg.shift if cfg.shift is not None else bundle.timestep_shift)
    keep_sigmas = _kept_levels(cfg, mcfg)
    sig, keep = teacher_schedule(keep_sigmas, cfg.teacher_steps, shift)
    key = {"teacher_sha256": file_sha256(weights), "config": to_jsonable(cfg), "shift": shift,
           "source_manifest_sha256": hashlib.sha256((shards_dir / "manifest.json").read_bytes()).hexdigest(),
           "num_frames": n_frames, "sigmas": [float(x) for x in keep_sigmas], "teacher_steps": len(sig) - 1}
    out.mkdir(parents=True, exist_ok=True)
    _claim_folder(out, key, d)

    # ---- the parts still missing, dealt to the ranks; each written atomically ----
    ds = ShardDataset(shards_dir, split="train")
    if len(ds) == 0:
        raise ConditionError(f"{shards_dir}: no clips")
    names, part_ids, todo = _parts_todo(cfg, out, d)
    maker = _PairMaker(cfg, bundle, weights, ds, shards_dir, n_frames, sig, keep, s.device, s.amp)
    bar = tqdm(total=sum(len(part_ids[p]) for p in todo), unit="pair", disable=not (progress and d.main),
               desc="ode pairs" + (f" (rank 0 of {d.world})" if d.world > 1 else ""))
    for p in todo:
        tmp = out / f".{names[p]}.tmp"
        pq.write_table(maker.part(part_ids[p], bar), tmp, row_group_size=8)
        os.replace(tmp, out / names[p])
    bar.close()
    barrier(d)  # all parts written
    kept = tuple(float(sig[k]) for k in keep)
    computed = int(round(all_mean(d, sum(len(part_ids[p]) for p in todo)) * d.world))  # over all ranks
    if d.main:
        write_json_atomic(out / "manifest.json", {
            "schema": PAIRS_SCHEMA, "key": key, "num_pairs": cfg.num_pairs, "sigmas": list(kept),
            "teacher_sigmas": sig.tolist(), "teacher_keep_indices": list(keep), "shift": shift,
            "teacher": os.fspath(weights.resolve()), "teacher_run": bundle.run, "conditions": spec.to_dict(),
            "num_frames": n_frames, "latent_frames": 1 + (n_frames - 1) // mcfg.vae.temporal_compression,
            "source": os.fspath(shards_dir.resolve()), "clips": len(ds), "config": to_jsonable(cfg),
            "parts": [{"file": f, "rows": len(part_ids[i])} for i, f in enumerate(names)],
        })
    barrier(d)  # the manifest is written
    s.close()
    return OdePairsResult(out, cfg.num_pairs, kept, len(sig) - 1, computed, s.elapsed_s(), names)


# ----------------------------------------------------------------------------------------------------------
# Reading


class OdePairs(Dataset):
    """Map-style dataset over an ODE-pairs folder. Items: ``pair_id``, ``clip_id``, ``ode_latents`` float32
    [K + 1, 16, F, h, w] (states at ``sigmas``, then clean), ``cond_latents`` [16, F, h, w], ``image_tokens``
    [Lc, D], ``keyboard`` [T, K] and ``mouse`` [T, 2] (model space; mouse absent without a mouse).

    ``sigmas``: the K kept noise levels followed by 0. ``manifest``: the folder's manifest.
    """

    def __init__(self, pairs_dir: str | os.PathLike[str]) -> None:
        import pyarrow.parquet as pq

        self.dir = Path(pairs_dir)
        p = self.dir / "manifest.json"
        if not p.is_file():
            raise FileNotFoundError(f"{self.dir}: no manifest.json (not an ODE-pairs folder, or make_ode_pairs did "
                                    "not finish: rerun it to resume)")
        self.manifest = json.loads(p.read_text(encoding="utf-8"))
        if self.manifest.get("schema") != PAIRS_SCHEMA:
            raise ValueError(f"{p}: schema {self.manifest.get('schema')!r}, expected {PAIRS_SCHEMA!r}")
        self.sigmas: tuple[float, ...] = tuple(float(s) for s in self.manifest["sigmas"])
        self._groups: list[tuple[str, int, int]] = []  # (file, row group, first pair index)
        first = 0
        for part in self.manifest["parts"]:
            f = self.dir / part["file"]
            if not f.is_file():
                raise FileNotFoundError(f"{f}: listed in {p} but missing (rerun make_ode_pairs to resume)")
            md = pq.ParquetFile(f).metadata
            for g in range(md.num_row_groups):
                self._groups.append((part["file"], g, first))
                first += md.row_group(g).num_rows
        self._n = first
        self._starts = np.array([g[2] for g in self._groups] + [first], np.int64)
        self._key: tuple[str, int] | None = None
        self._table = None

    def __len__(self) -> int:
        return self._n

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_key"], d["_table"] = None, None
        return d

    def clip_ids(self) -> list[str]:
        """The source clip id of every pair, in order (reads only that column)."""
        import pyarrow.parquet as pq

        out: list[str] = []
        for part in self.manifest["parts"]:
            out.extend(pq.read_table(self.dir / part["file"], columns=["clip_id"]).column("clip_id").to_pylist())
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        import pyarrow.parquet as pq

        if not 0 <= i < len(self):
            raise IndexError(f"pair index {i} out of range [0, {len(self)})")
        gi = int(np.searchsorted(self._starts, i, side="right")) - 1
        file, g, first = self._groups[gi]
        if self._key != (file, g):
            self._table = pq.ParquetFile(self.dir / file).read_row_group(g)
            self._key = (file, g)
        row = self._table.slice(i - first, 1).to_pylist()[0]

        def arr(name: str) -> torch.Tensor:
            return torch.from_numpy(decode_cell(row, name).astype(np.float32))

        item = {"pair_id": row["pair_id"], "clip_id": row["clip_id"], "ode_latents": arr("ode_latents"),
                "cond_latents": arr("first_frame_latent"), "image_tokens": arr("clip_feature"),
                "keyboard": arr("keyboard")}
        if "mouse_bytes" in row:
            item["mouse"] = arr("mouse")
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]
