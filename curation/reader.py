"""The training reader of a shards folder ("playmill.shards/1"): what the model package imports from curation.

Two torch datasets over the same index:

* :class:`ShardDataset` (map-style): ``ds[i]`` is clip ``i`` in manifest order (shards in order, rows in
  order). Use it with a ``DistributedSampler``/``RandomSampler`` for exact epochs.
* :class:`ShardIterableDataset` (streaming): reads row groups (the Parquet unit of I/O), split across
  distributed ranks and DataLoader workers so that every clip is read by exactly one (rank, worker) per
  epoch, shuffled with a seeded permutation of row groups plus a seeded shuffle buffer of clips.

Each item is a dict: ``frames`` uint8 ``[T, 3, H, W]`` (decoded in the DataLoader worker: H.264 in-process with
PyAV, JPEG with OpenCV), ``keyboard`` ``[T, K]`` (uint8 by default, or the ``keyboard_dtype`` you
ask for), ``mouse`` float32 ``[T, 2]`` (d_pitch, d_yaw in degrees), ``pose`` float64 ``[T, 7]`` (x, y, z cm,
qw, qx, qy, qz), ``speed`` float32 ``[T]`` (cm/s), ``collision`` bool ``[T]`` and the clip metadata
(``clip_id``, ``episode_id``, ``source``, ``scene``, ``start_frame``, ``fps``).

The manifest is checked when a dataset is built (schema, action space, resolution, clip length and each
shard's Arrow schema against what the caller expects), with errors that say what differs. Each shard's byte
size, row count and sha256 are checked against the manifest then too (``verify=False``, or a reader opened inside
:func:`curation.shards.shard_verification` ``(False)``: ``verify_shards: false`` / ``--no-verify``, skip the size
and sha256); an error names the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from curation.schema import SHARDS_SCHEMA, is_clip_schema, list_column
from curation.shards import ShardsError, read_manifest, shard_problems, shard_verification, verify_by_default

__all__ = ["ShardDataset", "ShardIterableDataset", "ShardIndex", "ShardsError", "decode_clip", "open_shards",
           "shard_verification", "verify_by_default"]


@dataclass(frozen=True)
class RowGroup:
    """One Parquet row group: ``rows`` clips starting at global clip index ``first``."""

    file: str
    index: int
    rows: int
    first: int


class ShardIndex:
    """The manifest of a shards folder and the row groups of its shards.

    ``expect_*``: what the caller needs; a mismatch raises :class:`ShardsError` naming both values.
    ``split``: only the shards of this split (``train``, ``val``, ``test``) or of these splits; None: all.
    Curation keeps each shard to one split (manifest ``shards[].split``); shards of datasets curated before
    splits existed count as ``train``.
    """

    def __init__(self, shards_dir: str | os.PathLike, *, expect_keys: Sequence[str] | None = None,
                 expect_height: int | None = None, expect_width: int | None = None,
                 expect_clip_frames: int | None = None, expect_fps: float | None = None,
                 split: str | Sequence[str] | None = None, verify: bool | None = None) -> None:
        import pyarrow.parquet as pq

        self.dir = Path(shards_dir)
        self.verify = verify_by_default() if verify is None else bool(verify)
        self.manifest = m = read_manifest(self.dir)
        self.keys: tuple[str, ...] = tuple(m["action_space"]["keys"])
        self.frame_codec: str = m["frame_codec"]
        self.height, self.width = int(m["height"]), int(m["width"])
        self.clip_frames, self.fps = int(m["clip_frames"]), float(m["fps"])
        where = f"{self.dir / 'manifest.json'}"
        if expect_keys is not None and tuple(expect_keys) != self.keys:
            raise ShardsError(f"{where}: action space keys are {list(self.keys)}, expected {list(expect_keys)}")
        for name, want, got in (("height", expect_height, self.height), ("width", expect_width, self.width),
                                ("clip_frames", expect_clip_frames, self.clip_frames)):
            if want is not None and int(want) != got:
                raise ShardsError(f"{where}: {name} is {got}, expected {want}")
        if expect_fps is not None and abs(float(expect_fps) - self.fps) > 1e-6:
            raise ShardsError(f"{where}: fps is {self.fps:g}, expected {expect_fps:g}")
        if self.frame_codec not in ("h264", "jpeg"):
            raise ShardsError(f"{where}: unknown frame_codec {self.frame_codec!r} (h264 or jpeg)")
        self.row_groups: list[RowGroup] = []
        self.splits = None if split is None else ({split} if isinstance(split, str) else set(split))
        first = 0
        for s in m["shards"]:
            if self.splits is not None and s.get("split", "train") not in self.splits:
                continue
            p = self.dir / s["file"]
            problems = shard_problems(self.dir, s, check_sha=self.verify)
            if problems:
                changed = any("sha256" in x or "bytes, the manifest says" in x for x in problems)
                hint = ("; re-curate the dataset (playmill curate), or pass --no-verify (verify_shards: false) to "
                        "read it anyway" if self.verify and changed else "")
                raise ShardsError("; ".join(problems) + hint)
            md = pq.ParquetFile(p)
            if not is_clip_schema(md.schema_arrow, len(self.keys), self.frame_codec):
                raise ShardsError(f"{p}: Arrow schema is not {SHARDS_SCHEMA} with {len(self.keys)} keys "
                                  f"({self.frame_codec}):\n{md.schema_arrow}")
            for rg in range(md.num_row_groups):
                n = md.metadata.row_group(rg).num_rows
                self.row_groups.append(RowGroup(s["file"], rg, n, first))
                first += n
        self.num_clips = first
        self._starts = np.array([g.first for g in self.row_groups], dtype=np.int64)

    def locate(self, i: int) -> tuple[RowGroup, int]:
        """The row group of global clip ``i`` and the row inside it."""
        if not 0 <= i < self.num_clips:
            raise IndexError(f"clip index {i} out of range [0, {self.num_clips})")
        g = self.row_groups[int(np.searchsorted(self._starts, i, side="right")) - 1]
        return g, i - g.first


def open_shards(shards_dir: str | os.PathLike, **expect: Any) -> ShardIndex:
    """Open and check a shards folder (see :class:`ShardIndex`)."""
    return ShardIndex(shards_dir, **expect)


# --------------------------------------------------------------------------------------------------------
# decoding


def _decoded_rgb(media: bytes | Sequence[bytes], frame_codec: str) -> Iterator[np.ndarray]:
    """RGB ``uint8[H, W, 3]`` frames of a clip's media cell: H.264 through capture.video's in-process decoder
    (the one decoder of curation, the importers and eval), JPEG through OpenCV."""
    if frame_codec == "jpeg":
        import cv2

        for b in media:
            img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError("undecodable JPEG frame")
            yield cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return
    from capture.video import VideoError, iter_frames

    try:
        for _, frame in iter_frames(bytes(media), threads=1, name="clip"):  # type: ignore[arg-type]
            yield frame
    except VideoError as e:
        raise ValueError(str(e)) from None


def decode_clip(media: bytes | Sequence[bytes], frame_codec: str, num_frames: int | None = None,
                channels_first: bool = False) -> np.ndarray:
    """Decode a clip's media cell to RGB ``uint8[T, H, W, 3]`` (or ``[T, 3, H, W]`` with ``channels_first``):
    an H.264 mp4 (in memory, one decoder thread) or a list of JPEGs. ``num_frames``: the expected count (checked)."""
    import cv2

    out: np.ndarray | None = None
    n = 0
    for img in _decoded_rgb(media, frame_codec):
        if out is None or n >= len(out):
            shape = (3,) + img.shape[:2] if channels_first else img.shape
            cap_n = num_frames if (num_frames and out is None) else max(2 * n, 1)
            grown = np.empty((cap_n,) + shape, np.uint8)
            if out is not None:
                grown[:n] = out[:n]
            out = grown
        if channels_first:  # one pass: RGB interleaved -> R, G, B planes (4x a numpy transpose copy)
            cv2.split(img, [out[n, 0], out[n, 1], out[n, 2]])
        else:
            out[n] = img
        n += 1
    if n == 0 or out is None:
        raise ValueError("clip has no decodable frames")
    if num_frames is not None and n != num_frames:
        raise ValueError(f"clip decoded to {n} frames, expected {num_frames}")
    return out[:n]


class _RowGroupCache:
    """The last row group read (per process): sequential reads of a row group decode its Parquet once."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.key: tuple[str, int] | None = None
        self.table = None
        self.files: dict[str, Any] = {}

    def get(self, g: RowGroup):
        import pyarrow.parquet as pq

        if self.key != (g.file, g.index):
            try:
                pf = self.files.get(g.file)
                if pf is None:
                    pf = self.files[g.file] = pq.ParquetFile(self.dir / g.file)
                self.table = pf.read_row_group(g.index)
            except Exception as e:  # changed or corrupt since the index was built
                raise ShardsError(f"{self.dir / g.file}: cannot read row group {g.index}: {e}") from None
            self.key = (g.file, g.index)
        return self.table


def _item(table, r: int, index: ShardIndex, keyboard_dtype: torch.dtype, decode: bool) -> dict[str, Any]:
    row = table.slice(r, 1)
    k = len(index.keys)
    n = int(row.column("num_frames")[0].as_py())
    media_col = "video" if index.frame_codec == "h264" else "frames"
    item: dict[str, Any] = {
        "clip_id": row.column("clip_id")[0].as_py(),
        "episode_id": row.column("episode_id")[0].as_py(),
        "source": row.column("source")[0].as_py(),
        "scene": row.column("scene")[0].as_py(),
        "start_frame": int(row.column("start_frame")[0].as_py()),
        "fps": float(row.column("fps")[0].as_py()),
        "keyboard": torch.from_numpy(list_column(row, "keyboard", k, np.uint8).copy()).to(keyboard_dtype),
        "mouse": torch.from_numpy(list_column(row, "mouse", 2, np.float32).copy()),
        "pose": torch.from_numpy(list_column(row, "pose", 7, np.float64).copy()),
        "speed": torch.from_numpy(list_column(row, "speed", None, np.float32).copy()),
        "collision": torch.from_numpy(list_column(row, "collision", None, bool).copy()),
    }
    if decode:
        media = row.column(media_col)[0].as_py()
        try:
            frames = decode_clip(media, index.frame_codec, n, channels_first=True)
        except ValueError as e:
            raise ShardsError(f"clip {item['clip_id']}: {e}") from None
        item["frames"] = torch.from_numpy(frames)
    return item


def _rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None or world_size is not None:
        if rank is None or world_size is None:
            raise ValueError("give both rank and world_size, or neither")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        return int(rank), int(world_size)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# --------------------------------------------------------------------------------------------------------
# datasets


class ShardDataset(Dataset):
    """Map-style dataset over all clips of a shards folder (manifest order). See the module doc for items.

    ``keyboard_dtype``: dtype of ``keyboard`` (torch.uint8 or a float dtype). ``decode``: False skips the
    frames (actions only). ``expect_*``: checks against the manifest (see :class:`ShardIndex`).
    """

    def __init__(self, shards_dir: str | os.PathLike, *, keyboard_dtype: torch.dtype = torch.uint8,
                 decode: bool = True, **expect: Any) -> None:
        self.index = ShardIndex(shards_dir, **expect)
        self.keyboard_dtype = keyboard_dtype
        self.decode = decode
        self._cache: _RowGroupCache | None = None

    def __len__(self) -> int:
        return self.index.num_clips

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i < 0:
            i += len(self)
        g, r = self.index.locate(int(i))
        if self._cache is None:
            self._cache = _RowGroupCache(self.index.dir)
        return _item(self._cache.get(g), r, self.index, self.keyboard_dtype, self.decode)

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_cache"] = None  # open files stay in their process
        return d


class ShardIterableDataset(IterableDataset):
    """Streaming dataset: row groups split across ranks and DataLoader workers, shuffled (seeded).

    Row group ``j`` of the epoch's order goes to slot ``j % (world_size * num_workers)``, slot
    ``rank * num_workers + worker_id``: every clip is yielded by exactly one (rank, worker) per epoch.
    ``shuffle``: permute row groups with ``seed + epoch`` and pass clips through a shuffle buffer of
    ``buffer_size`` clips. ``rank``/``world_size``: given, or from ``torch.distributed`` when initialised,
    else (0, 1). ``drop_last``: every slot yields the same number of clips (the smallest slot's count; the
    surplus clips are skipped this epoch) so that distributed ranks take the same number of steps.
    Call :meth:`set_epoch` each epoch for a new order (with ``persistent_workers=True`` the workers keep
    the epoch they were started with: recreate the DataLoader, or leave persistent_workers off).
    """

    def __init__(self, shards_dir: str | os.PathLike, *, shuffle: bool = True, seed: int = 0,
                 buffer_size: int = 64, rank: int | None = None, world_size: int | None = None,
                 drop_last: bool = False, keyboard_dtype: torch.dtype = torch.uint8, decode: bool = True,
                 **expect: Any) -> None:
        super().__init__()
        self.index = ShardIndex(shards_dir, **expect)
        self.shuffle, self.seed, self.buffer_size = shuffle, int(seed), max(1, int(buffer_size))
        self.rank, self.world_size = _rank_world(rank, world_size)
        self.drop_last = drop_last
        self.keyboard_dtype, self.decode = keyboard_dtype, decode
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _order(self) -> list[RowGroup]:
        groups = list(self.index.row_groups)
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(groups))
            groups = [groups[i] for i in perm]
        return groups

    def slot_groups(self, slot: int, slots: int) -> list[RowGroup]:
        """The row groups of ``slot`` out of ``slots`` this epoch."""
        return self._order()[slot::slots]

    def clips_per_slot(self, num_workers: int = 1) -> list[int]:
        """Clips each (rank, worker) slot yields this epoch, slot ``rank * num_workers + worker_id``."""
        slots = self.world_size * max(1, num_workers)
        counts = [sum(g.rows for g in self.slot_groups(s, slots)) for s in range(slots)]
        return [min(counts)] * slots if self.drop_last else counts

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        slots = self.world_size * nw
        slot = self.rank * nw + wid
        groups = self.slot_groups(slot, slots)
        limit = None
        if self.drop_last:
            limit = min(sum(g.rows for g in self.slot_groups(s, slots)) for s in range(slots))
        rng = np.random.default_rng([self.seed, self.epoch, slot, 1])
        cache = _RowGroupCache(self.index.dir)
        buf: list[tuple[Any, int]] = []
        yielded = 0

        def refs() -> Iterator[tuple[Any, int]]:
            for g in groups:
                table = cache.get(g)
                for r in range(table.num_rows):
                    yield table, r

        for ref in refs():
            if limit is not None and yielded >= limit:
                return
            if not self.shuffle:
                yield _item(ref[0], ref[1], self.index, self.keyboard_dtype, self.decode)
                yielded += 1
                continue
            buf.append(ref)
            if len(buf) >= self.buffer_size:
                j = int(rng.integers(len(buf)))
                buf[j], buf[-1] = buf[-1], buf[j]
                t, r = buf.pop()
                yield _item(t, r, self.index, self.keyboard_dtype, self.decode)
                yielded += 1
        while buf and (limit is None or yielded < limit):
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            t, r = buf.pop()
            yield _item(t, r, self.index, self.keyboard_dtype, self.decode)
            yielded += 1
