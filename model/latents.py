"""Latent caching: encode every clip of a shards folder once, so that training skips the VAE.

What a training sample needs besides the actions (``V`` = the clip's first ``num_frames`` frames in [-1, 1],
``I`` = its first frame):

    latents        = VAE.encode(V)                              [16, F, H/8, W/8]   F = 1 + (num_frames - 1) / 4
    cond_latents   = VAE.encode([I, 0, 0, ..., 0])              [16, F, H/8, W/8]   Wan I2V's "y" (0 = grey)
    image_tokens   = ImageEncoder(I)                            [Lc, D]             CLIP: [257, 1280]

(:func:`encode_clips` computes them for a batch.) :func:`encode_latents` stores them as *side shards* next to
the clips, one ``part-NNNNN.parquet`` per source shard, with FastVideo's column convention: each array is three
columns ``<name>_bytes`` (raw little-endian bytes), ``<name>_shape`` (list<int32>) and ``<name>_dtype``
(string), for ``vae_latent``, ``first_frame_latent`` and ``clip_feature``. The rows also carry ``clip_id``,
``episode_id``, ``keyboard`` and ``mouse`` (trimmed to ``num_frames``, dataset key space), so training reads
only these files. The source shards are never modified.

The cache's ``manifest.json`` (schema "playmill.latents/1", written last) records the source manifest's sha256,
a fingerprint of the VAE and image-encoder weights, ``num_frames`` and the dtype: a rerun with the same inputs
skips finished parts; different inputs re-encode. With torch.distributed initialised (or ``rank``/
``world_size`` given) part ``i`` is encoded by rank ``i % world_size``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .bundle import load_image_encoder, load_vae, to_jsonable, write_json_atomic
from .conditions import check_num_frames
from .image_encoder import ImageEncoder
from .vae import WanVAE

LATENTS_SCHEMA = "playmill.latents/1"
ARRAYS = ("vae_latent", "first_frame_latent", "clip_feature")


def frames_to_video(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames [B, T, 3, H, W] -> float video [B, 3, T, H, W] in [-1, 1]."""
    return frames.permute(0, 2, 1, 3, 4).float().div(127.5).sub(1.0)


@torch.no_grad()
def encode_clips(
    vae: WanVAE,
    image_encoder: ImageEncoder | None,
    frames: torch.Tensor,
    *,
    streaming: bool = True,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Encode a batch of clips for training.

    Args:
        frames: uint8 [B, T, 3, H, W], T = 1 + 4k, on the device of ``vae``.
        streaming: VAE chunked encode (bounded memory at full size) or one causal pass.
        autocast_dtype: e.g. torch.bfloat16 on CUDA; None = the modules' dtype.

    Returns:
        (latents [B, 16, F, h, w], cond_latents [B, 16, F, h, w], image_tokens [B, Lc, D] or None), float32.
    """
    video = frames_to_video(frames)
    with torch.autocast(video.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        latents = vae.encode(video, streaming=streaming).float()
    cond, tokens = encode_condition(vae, image_encoder, frames[:, 0], video.shape[2], streaming=streaming,
                                    autocast_dtype=autocast_dtype)
    return latents, cond, tokens


@torch.no_grad()
def encode_condition(
    vae: WanVAE,
    image_encoder: ImageEncoder | None,
    frame0: torch.Tensor,
    num_frames: int,
    *,
    streaming: bool = True,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first-frame conditions of a clip of ``num_frames`` frames (training and sampling share it).

    Args:
        frame0: uint8 [B, 3, H, W].

    Returns:
        (cond_latents = VAE.encode([frame0, 0, ..., 0]) [B, 16, F, h, w] (0 = grey in [-1, 1]),
        image_tokens [B, Lc, D] or None), float32.
    """
    first = frame0.float().div(127.5).sub(1.0)[:, :, None]  # [B, 3, 1, H, W]
    pad = first.new_zeros(first.shape[0], 3, num_frames - 1, *first.shape[3:])
    with torch.autocast(first.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        cond = vae.encode(torch.cat([first, pad], dim=2), streaming=streaming).float()
        tokens = None if image_encoder is None else image_encoder(first[:, :, 0]).float()
    return cond, tokens


def module_fingerprint(module: torch.nn.Module | None) -> str:
    """sha256 over a module's state dict (names, shapes, bytes): identifies the weights a cache was made with."""
    if module is None:
        return "none"
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def array_columns(name: str, arrays: Sequence[np.ndarray]) -> dict[str, Any]:
    """The three Arrow columns ``<name>_bytes / _shape / _dtype`` (FastVideo's convention) of ``arrays``."""
    import pyarrow as pa

    return {
        f"{name}_bytes": pa.array([a.tobytes() for a in arrays], pa.binary()),
        f"{name}_shape": pa.array([list(a.shape) for a in arrays], pa.list_(pa.int32())),
        f"{name}_dtype": pa.array([str(a.dtype) for a in arrays], pa.string()),
    }


def decode_array(raw: bytes, shape: Sequence[int], dtype: str) -> np.ndarray:
    """One ``<name>_bytes/_shape/_dtype`` cell back to an array."""
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape([int(s) for s in shape])


def decode_cell(row: Mapping[str, Any], name: str) -> np.ndarray:
    """The array ``name`` of a row (a dict with its ``<name>_bytes/_shape/_dtype`` cells)."""
    return decode_array(row[f"{name}_bytes"], row[f"{name}_shape"], row[f"{name}_dtype"])


def _dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _load_encoders(vae: WanVAE | str | os.PathLike[str], image_encoder: ImageEncoder | str | os.PathLike[str] | None,
                   dev: torch.device) -> tuple[WanVAE, ImageEncoder | None]:
    """The VAE and image encoder (modules, or loaded from weight files) on ``dev`` in eval mode."""
    if not isinstance(vae, WanVAE):
        vae = load_vae(vae, device=dev)
    if image_encoder is not None and not isinstance(image_encoder, ImageEncoder):
        image_encoder = load_image_encoder(image_encoder, device=dev)
    return vae.to(dev).eval(), None if image_encoder is None else image_encoder.to(dev).eval()


def _cache_is_current(out_dir: Path, key: Mapping[str, Any], r: int, world: int) -> bool:
    """True when ``out_dir`` holds a finished cache of ``key``. Otherwise rank 0 forgets a stale one (its manifest;
    the parts of other inputs are deleted, those of ``key`` kept) before every rank goes on to encode."""
    existing = out_dir / "manifest.json"
    if existing.is_file():  # every rank reads the same file before anyone changes it: they agree
        old = json.loads(existing.read_text(encoding="utf-8"))
        if old.get("schema") == LATENTS_SCHEMA and old.get("key") == key:
            return True
    _barrier_if_distributed(world)
    if r == 0:
        existing.unlink(missing_ok=True)
        done_key = out_dir / ".key.json"
        if not done_key.is_file() or json.loads(done_key.read_text(encoding="utf-8")) != key:
            for p in out_dir.glob("part-*.parquet"):
                p.unlink()
            write_json_atomic(done_key, key)
    _barrier_if_distributed(world)
    return False


def _latent_table(rows: Mapping[str, list], num_keys: int) -> Any:
    """One row group's Arrow table: ids, actions (dataset key space) and the encoded arrays (absent: skipped)."""
    import pyarrow as pa

    cols: dict[str, Any] = {
        "clip_id": pa.array(rows["clip_id"], pa.string()),
        "episode_id": pa.array(rows["episode_id"], pa.string()),
        "keyboard": pa.array([a.tolist() for a in rows["keyboard"]], pa.list_(pa.list_(pa.uint8(), num_keys))),
        "mouse": pa.array([a.tolist() for a in rows["mouse"]], pa.list_(pa.list_(pa.float32(), 2))),
    }
    for name in ARRAYS:
        arrs = rows[name]
        if arrs and arrs[0] is None:
            continue
        cols.update(array_columns(name, arrs))
    return pa.table(cols)


def _encode_shard(src: Any, groups: Sequence[Any], out_dir: Path, file: str, n: int,
                  encode: Callable[[list[dict[str, Any]]], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
                  batch_size: int, np_dtype: np.dtype, row_group_rows: int, bar: Any) -> None:
    """Encode the clips of one source shard (its row ``groups``) into ``out_dir/file``, a row group at a time,
    written atomically."""
    import pyarrow.parquet as pq

    tmp = out_dir / f".{file}.tmp"
    writer = None
    for g in groups:
        rows: dict[str, list] = {k: [] for k in ("clip_id", "episode_id", "keyboard", "mouse", *ARRAYS)}
        for start in range(0, g.rows, batch_size):
            items = [src[g.first + i] for i in range(start, min(g.rows, start + batch_size))]
            lat, cond, tok = encode(items)
            for j, it in enumerate(items):
                rows["clip_id"].append(it["clip_id"])
                rows["episode_id"].append(it["episode_id"])
                rows["keyboard"].append(it["keyboard"][:n].numpy().astype(np.uint8))
                rows["mouse"].append(it["mouse"][:n].numpy().astype(np.float32))
                rows["vae_latent"].append(lat[j].cpu().numpy().astype(np_dtype))
                rows["first_frame_latent"].append(cond[j].cpu().numpy().astype(np_dtype))
                rows["clip_feature"].append(None if tok is None else tok[j].cpu().numpy().astype(np_dtype))
            bar.update(len(items))
        table = _latent_table(rows, len(src.index.keys))
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=row_group_rows)
    if writer is not None:
        writer.close()
        os.replace(tmp, out_dir / file)


def _write_cache_manifest(out_dir: Path, shards_dir: str | os.PathLike[str], man: Mapping[str, Any],
                          files: Sequence[str], key: Mapping[str, Any], n: int, vae: WanVAE,
                          image_features: bool) -> None:
    """The cache's manifest.json (written last: the cache is complete)."""
    import pyarrow.parquet as pq

    split_of = {s["file"]: s.get("split", "train") for s in man["shards"]}
    parts = []
    for f in files:
        p = out_dir / f
        if not p.is_file():
            raise RuntimeError(f"{p}: not encoded (did every rank run encode_latents?)")
        parts.append({"file": f, "rows": pq.ParquetFile(p).metadata.num_rows, "split": split_of.get(f, "train")})
    latent_shape = None
    if parts and parts[0]["rows"]:
        t = pq.read_table(out_dir / parts[0]["file"], columns=["vae_latent_shape"]).slice(0, 1)
        latent_shape = t.column("vae_latent_shape")[0].as_py()
    write_json_atomic(out_dir / "manifest.json", {
        "schema": LATENTS_SCHEMA,
        "key": key,
        "source": os.fspath(Path(shards_dir).resolve()),
        "action_space": man["action_space"],
        "fps": man["fps"], "height": man["height"], "width": man["width"], "clip_frames": n,
        "latent_shape": latent_shape,
        "image_features": image_features,
        "vae_config": to_jsonable(vae.cfg),
        "shards": parts,
    })


def encode_latents(
    shards_dir: str | os.PathLike[str],
    vae: WanVAE | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    image_encoder: ImageEncoder | str | os.PathLike[str] | None = None,
    num_frames: int | None = None,
    batch_size: int = 4,
    dtype: str = "float16",
    device: str | torch.device | None = None,
    streaming: bool = True,
    row_group_rows: int = 16,
    progress: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
) -> Path:
    """Encode every clip of ``shards_dir`` (except its held-out ``test`` split) into latent side shards under ``out``
    (default ``<shards_dir>/latents``); each part records the split of its source shard.

    Args:
        vae / image_encoder: modules or weight files (playmill safetensors or Wan/CLIP checkpoints).
        num_frames: frames per clip to encode (the first ones; 1 + 4k); default the dataset's clip_frames
            rounded down to 1 + 4k.
        dtype: storage dtype of the arrays ("float16" or "float32").
        device: where to encode (default CUDA when available); bf16 autocast on CUDA.

    Returns:
        ``out``. Reruns skip parts that are already encoded with the same inputs.
    """
    from tqdm.auto import tqdm

    from curation.reader import ShardDataset

    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be float16 or float32, got {dtype!r}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    vae, image_encoder = _load_encoders(vae, image_encoder, dev)
    src = ShardDataset(shards_dir)
    man = src.index.manifest
    clip_frames = int(man["clip_frames"])
    n = num_frames if num_frames is not None else 1 + 4 * ((clip_frames - 1) // 4)
    check_num_frames(n)
    if n > clip_frames:
        raise ValueError(f"{shards_dir}: clips have {clip_frames} frames, cannot encode {n}")
    out_dir = Path(out) if out is not None else Path(shards_dir) / "latents"
    out_dir.mkdir(parents=True, exist_ok=True)

    # ---- the cache's key: a rerun with the same inputs keeps what is done ----
    src_sha = hashlib.sha256((Path(shards_dir) / "manifest.json").read_bytes()).hexdigest()
    key = {
        "source_manifest_sha256": src_sha,
        "vae": module_fingerprint(vae),
        "image_encoder": module_fingerprint(image_encoder),
        "num_frames": n,
        "dtype": dtype,
    }
    r, world = _dist_rank_world(rank, world_size)
    if _cache_is_current(out_dir, key, r, world):
        return out_dir

    # ---- this rank's source shards (part i on rank i % world), one side shard each ----
    ac = torch.bfloat16 if dev.type == "cuda" else None

    def encode(items: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        frames = torch.stack([it["frames"][:n] for it in items]).to(dev)
        return encode_clips(vae, image_encoder, frames, streaming=streaming, autocast_dtype=ac)

    groups_by_file: dict[str, list] = {}
    for g in src.index.row_groups:
        groups_by_file.setdefault(g.file, []).append(g)
    files = [s["file"] for s in man["shards"] if s.get("split", "train") != "test"]  # test clips stay unseen
    mine = [f for i, f in enumerate(files) if i % world == r]
    bar = tqdm(total=sum(g.rows for f in mine for g in groups_by_file.get(f, [])), desc="encode latents",
               unit="clip", disable=not progress or r != 0)
    for f in mine:
        if (out_dir / f).is_file():
            bar.update(sum(g.rows for g in groups_by_file.get(f, [])))
            continue
        _encode_shard(src, groups_by_file.get(f, []), out_dir, f, n, encode, batch_size, np.dtype(dtype),
                      row_group_rows, bar)
    bar.close()
    _barrier_if_distributed(world)
    if r == 0:
        _write_cache_manifest(out_dir, shards_dir, man, files, key, n, vae, image_encoder is not None)
    _barrier_if_distributed(world)
    return out_dir


def _barrier_if_distributed(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()


@dataclass(frozen=True)
class LatentRowGroup:
    file: str
    index: int
    rows: int
    first: int


class LatentDataset(Dataset):
    """Map-style dataset over a latent cache (manifest order). Items: ``clip_id``, ``episode_id``,
    ``latents`` / ``cond_latents`` float32 [16, F, h, w], ``image_tokens`` float32 [Lc, D] (when cached),
    ``keyboard`` uint8 [T, K] and ``mouse`` float32 [T, 2] in the dataset's key space.

    ``row_groups`` has the reader's layout, so the same row-group-aware sampler drives both datasets. ``split``:
    only the parts of this split (or these splits) of the source shards; None: all.
    """

    def __init__(self, latents_dir: str | os.PathLike[str], split: str | Sequence[str] | None = None) -> None:
        import pyarrow.parquet as pq

        self.dir = Path(latents_dir)
        p = self.dir / "manifest.json"
        if not p.is_file():
            raise FileNotFoundError(f"{self.dir}: no manifest.json (not a latent cache, or encoding did not finish)")
        self.manifest = json.loads(p.read_text(encoding="utf-8"))
        if self.manifest.get("schema") != LATENTS_SCHEMA:
            raise ValueError(f"{p}: schema {self.manifest.get('schema')!r}, expected {LATENTS_SCHEMA!r}")
        self.keys: tuple[str, ...] = tuple(self.manifest["action_space"]["keys"])
        self.row_groups: list[LatentRowGroup] = []
        first = 0
        want = None if split is None else ({split} if isinstance(split, str) else set(split))
        for s in self.manifest["shards"]:
            if want is not None and s.get("split", "train") not in want:
                continue
            md = pq.ParquetFile(self.dir / s["file"]).metadata
            for i in range(md.num_row_groups):
                rows = md.row_group(i).num_rows
                self.row_groups.append(LatentRowGroup(s["file"], i, rows, first))
                first += rows
        self.num_clips = first
        self._starts = np.array([g.first for g in self.row_groups], np.int64)
        self._key: tuple[str, int] | None = None
        self._table = None

    def __len__(self) -> int:
        return self.num_clips

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_key"], d["_table"] = None, None
        return d

    def _group(self, g: LatentRowGroup):
        import pyarrow.parquet as pq

        if self._key != (g.file, g.index):
            self._table = pq.ParquetFile(self.dir / g.file).read_row_group(g.index)
            self._key = (g.file, g.index)
        return self._table

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.num_clips:
            raise IndexError(f"clip index {i} out of range [0, {self.num_clips})")
        g = self.row_groups[int(np.searchsorted(self._starts, i, side="right")) - 1]
        row = self._group(g).slice(i - g.first, 1).to_pylist()[0]

        def arr(name: str) -> torch.Tensor:
            return torch.from_numpy(decode_cell(row, name).astype(np.float32))

        item = {
            "clip_id": row["clip_id"], "episode_id": row["episode_id"],
            "latents": arr("vae_latent"), "cond_latents": arr("first_frame_latent"),
            "keyboard": torch.tensor(row["keyboard"], dtype=torch.uint8),
            "mouse": torch.tensor(row["mouse"], dtype=torch.float32),
        }
        if "clip_feature_bytes" in row:
            item["image_tokens"] = arr("clip_feature")
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]
