"""Export a shards folder as a LeRobot v3.0 dataset (``LeRobotDataset(repo_id, root=OUT)`` loads it, no Hub call).

Layout (lerobot ``datasets/utils.py``, codebase v3.0)::

    OUT/meta/info.json                              fps, features, totals, paths, splits
    OUT/meta/stats.json                             min, max, mean, std, count, q01..q99 per feature
    OUT/meta/tasks.parquet                          index ``task`` (the scene), column ``task_index``
    OUT/meta/episodes/chunk-000/file-000.parquet    one row per episode: where its frames and video span are
    OUT/data/chunk-000/file-000.parquet             one row per frame
    OUT/videos/observation.images.rgb/chunk-000/file-000.mp4   every episode's frames, one after another

One LeRobot episode per clip (a clip is a run of consecutive curated frames; clips of one source episode can be
separated by dropped spans, so they are not glued together). Features:

* ``observation.images.rgb``: the video (H.264, yuv420p, a keyframe every ``g`` frames), re-encoded in-process
  with PyAV from the clip's frames;
* ``action`` float32 [K + 2]: the keys held (0/1, action-space order) then d_pitch, d_yaw in degrees;
* ``observation.state`` float64 [7]: x, y, z (cm, Unreal frame), qw, qx, qy, qz (lerobot returns it as float32);
* ``observation.speed`` float32 [1] (cm/s) and ``observation.collision`` bool [1];
* the default ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``.

``splits`` in info.json come from the held-out split of the shards (``{"train": "0:N", "val": "N:M", ...}``:
episodes are written split by split).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

CODEBASE_VERSION = "v3.0"
CHUNK = "chunk-{:03d}/file-{:03d}"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
VIDEO_KEY = "observation.images.rgb"
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
#: Video settings written to info.json (``video.*``); lerobot's defaults except the codec (h264: no AV1 needed).
VIDEO_G = 2
VIDEO_CRF = 23
VIDEO_PRESET = "veryfast"


@dataclass
class LeRobotExport:
    """What :func:`export_lerobot` wrote."""

    out_dir: Path
    episodes: int
    frames: int
    tasks: list[str]
    splits: dict[str, str]
    seconds: float


def _features(keys: list[str], h: int, w: int, fps: float) -> dict[str, dict[str, Any]]:
    return {
        VIDEO_KEY: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"], "info": {
            "video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False, "video.fps": int(round(fps)), "video.channels": 3, "has_audio": False,
            "video.g": VIDEO_G, "video.crf": VIDEO_CRF, "video.preset": VIDEO_PRESET, "video.fast_decode": 0,
            "video.video_backend": "pyav", "video.extra_options": {}, "is_depth_map": False}},
        "action": {"dtype": "float32", "shape": [len(keys) + 2],
                   "names": [f"key_{k}" for k in keys] + ["d_pitch", "d_yaw"]},
        "observation.state": {"dtype": "float64", "shape": [7], "names": ["x", "y", "z", "qw", "qx", "qy", "qz"]},
        "observation.speed": {"dtype": "float32", "shape": [1], "names": None},
        "observation.collision": {"dtype": "bool", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }


def _arrow_type(ft: dict[str, Any]):
    """The Arrow type lerobot's ``get_hf_features_from_features`` gives a feature: shape (1,) a scalar, (n,) a
    fixed-size list."""
    import pyarrow as pa

    t = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}[ft["dtype"]]
    return t if list(ft["shape"]) == [1] else pa.list_(t, int(ft["shape"][0]))


def _stats(x: np.ndarray) -> dict[str, Any]:
    """lerobot's per-feature statistics over axis 0 (min, max, mean, std, count, q01..q99)."""
    x = np.asarray(x, np.float64)
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(x, q, axis=0)
    return {k: np.atleast_1d(v).tolist() for k, v in out.items()}


class _ImageStats:
    """Per-channel statistics of uint8 frames scaled to [0, 1], shaped [3, 1, 1] as lerobot stores image stats
    (a histogram per channel gives the quantiles)."""

    def __init__(self) -> None:
        self.hist = np.zeros((3, 256), np.int64)

    def add(self, frames: np.ndarray) -> None:
        for c in range(3):
            self.hist[c] += np.bincount(frames[..., c].ravel(), minlength=256)

    def to_dict(self) -> dict[str, Any]:
        v = np.arange(256) / 255.0
        n = self.hist.sum(1)
        mean = (self.hist * v).sum(1) / n
        std = np.sqrt((self.hist * (v - mean[:, None]) ** 2).sum(1) / n)
        cdf = np.cumsum(self.hist, 1) / n[:, None]
        lo = np.array([v[np.argmax(self.hist[c] > 0)] for c in range(3)])
        hi = np.array([v[255 - np.argmax(self.hist[c, ::-1] > 0)] for c in range(3)])
        out = {"min": lo, "max": hi, "mean": mean, "std": std, "count": np.array([int(n[0])])}
        for q in QUANTILES:
            out[f"q{int(round(q * 100)):02d}"] = np.array([v[np.searchsorted(cdf[c], q)] for c in range(3)])
        return {k: (val.reshape(3, 1, 1).tolist() if k != "count" else val.tolist()) for k, val in out.items()}


def _clips_in_split_order(shards_dir: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(split, row)`` for every clip, split by split (train, val, test), rows in shard order."""
    import pyarrow.parquet as pq

    from curation.card import shard_splits
    from curation.shards import read_manifest

    m = read_manifest(shards_dir)
    for split, files in shard_splits(m).items():
        for f in files:
            pf = pq.ParquetFile(shards_dir / f)
            for g in range(pf.num_row_groups):
                for row in pf.read_row_group(g).to_pylist():
                    yield split, row


def export_lerobot(shards_dir: str | os.PathLike, out_dir: str | os.PathLike, *, overwrite: bool = False,
                   progress: bool = True) -> LeRobotExport:
    """Write the LeRobot v3.0 dataset of ``shards_dir`` into ``out_dir`` (module doc), atomically: built in a
    temporary folder beside it and renamed into place. ``out_dir`` must not exist unless ``overwrite``."""
    import time

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from capture.video import VideoWriter, probe_video
    from curation.reader import decode_clip
    from curation.shards import read_manifest

    t0 = time.perf_counter()
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    m = read_manifest(shards_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; choose a new folder or pass overwrite")
    keys = list(m["action_space"]["keys"])
    h, w, fps = int(m["height"]), int(m["width"]), float(m["fps"])
    if abs(fps - round(fps)) > 1e-6:
        raise ValueError(f"{shards_dir}: fps {fps:g} is not an integer; LeRobot's info.json stores fps as an int")
    features = _features(keys, h, w, fps)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (tmp / "data" / "chunk-000").mkdir(parents=True)
    vdir = tmp / "videos" / VIDEO_KEY / "chunk-000"
    vdir.mkdir(parents=True)
    video_path = vdir / "file-000.mp4"
    try:
        cols: dict[str, list] = {k: [] for k in features if k != VIDEO_KEY}
        episodes: list[dict[str, Any]] = []
        tasks: dict[str, int] = {}
        split_ranges: dict[str, list[int]] = {}
        img_stats = _ImageStats()
        n_total = 0
        writer = VideoWriter(video_path, w, h, fps, crf=VIDEO_CRF, preset=VIDEO_PRESET, threads=0, gop=VIDEO_G)
        bar = tqdm(total=int(m["totals"]["clips"]), desc="export lerobot", unit="clip", disable=not progress)
        with writer:
            for ep, (split, row) in enumerate(_clips_in_split_order(shards_dir)):
                media = row["video"] if m["frame_codec"] == "h264" else row["frames"]
                frames = decode_clip(media, m["frame_codec"], int(row["num_frames"]))
                n = len(frames)
                task = row["scene"] or row["source"]
                ti = tasks.setdefault(task, len(tasks))
                from_ts = n_total / fps  # this episode's span in the shared video file (frame k at k / fps)
                for f in frames:
                    writer.write(np.ascontiguousarray(f))
                img_stats.add(frames)
                kb = np.asarray(row["keyboard"], np.float32).reshape(n, len(keys))
                mouse = np.asarray(row["mouse"], np.float32).reshape(n, 2)
                action = np.concatenate([kb, mouse], 1)
                cols["action"] += list(action)
                cols["observation.state"] += list(np.asarray(row["pose"], np.float64).reshape(n, 7))
                cols["observation.speed"] += list(np.asarray(row["speed"], np.float32))
                cols["observation.collision"] += [bool(c) for c in row["collision"]]
                cols["timestamp"] += list((np.arange(n) / fps).astype(np.float32))
                cols["frame_index"] += list(range(n))
                cols["episode_index"] += [ep] * n
                cols["index"] += list(range(n_total, n_total + n))
                cols["task_index"] += [ti] * n
                rng = split_ranges.setdefault(split, [ep, ep])
                rng[1] = ep + 1
                episodes.append({
                    "episode_index": ep, "tasks": [task], "length": n,
                    "data/chunk_index": 0, "data/file_index": 0,
                    "dataset_from_index": n_total, "dataset_to_index": n_total + n,
                    f"videos/{VIDEO_KEY}/chunk_index": 0, f"videos/{VIDEO_KEY}/file_index": 0,
                    f"videos/{VIDEO_KEY}/from_timestamp": from_ts,
                    f"videos/{VIDEO_KEY}/to_timestamp": (n_total + n) / fps,
                    "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                    "playmill/clip_id": row["clip_id"], "playmill/episode_id": row["episode_id"],
                    "playmill/split": split,
                    **{f"stats/action/{k}": v for k, v in _stats(action).items()},
                })
                n_total += n
                bar.update(1)
        bar.close()
        if not episodes:
            raise ValueError(f"{shards_dir}: no clips to export")
        # the data file: one row per frame, Arrow types as lerobot's HF features make them
        schema = pa.schema([pa.field(k, _arrow_type(ft)) for k, ft in features.items() if k != VIDEO_KEY])
        arrays = []
        for f in schema:
            vals = cols[f.name]
            if pa.types.is_fixed_size_list(f.type):
                flat = np.stack(vals).astype(f.type.value_type.to_pandas_dtype()).ravel()
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, f.type.value_type), f.type.list_size))
            else:
                arrays.append(pa.array(np.asarray(vals).ravel() if f.name != "observation.collision" else vals, f.type))
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema), tmp / DATA_PATH.format(chunk_index=0, file_index=0))
        pq.write_table(pa.Table.from_pylist(episodes), tmp / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
        pd.DataFrame({"task_index": list(tasks.values())}, index=pd.Index(list(tasks), name="task")).to_parquet(
            tmp / "meta" / "tasks.parquet")
        stats = {k: _stats(np.stack(cols[k]) if np.ndim(cols[k][0]) else np.asarray(cols[k], np.float64)[:, None])
                 for k in features if k != VIDEO_KEY}
        stats[VIDEO_KEY] = img_stats.to_dict()
        (tmp / "meta" / "stats.json").write_text(json.dumps(stats, indent=2))
        vinfo = probe_video(video_path)
        if vinfo.frame_count != n_total:
            raise RuntimeError(f"{video_path}: {vinfo.frame_count} frames written, expected {n_total}")
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": "playmill", "total_episodes": len(episodes),
            "total_frames": n_total, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB, "fps": int(round(fps)),
            "splits": {s: f"{a}:{b}" for s, (a, b) in split_ranges.items()},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": features,
        }
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return LeRobotExport(out_dir, len(episodes), n_total, list(tasks), info["splits"], time.perf_counter() - t0)


__all__ = ["CODEBASE_VERSION", "LeRobotExport", "VIDEO_KEY", "export_lerobot"]
