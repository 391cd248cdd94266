"""LeRobot v3.0 export: the layout, every info.json field, the data/episodes/tasks parquet files and the video,
checked against the format as lerobot 0.6 defines it (src/lerobot/datasets/utils.py: paths, DEFAULT_FEATURES,
create_empty_dataset_info, get_hf_features_from_features; lerobot is not installable on this Python)."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from capture.video import probe_video, read_video
from curation.lerobot import VIDEO_KEY, export_lerobot
from curation.reader import ShardDataset
from curation.runner import curate
from curation.shards import read_manifest
from tests.curation.helpers import small_config

# lerobot/datasets/utils.py (v0.6.1): what create_empty_dataset_info writes, and DEFAULT_FEATURES
INFO_FIELDS = {"codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
               "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path",
               "features"}
DEFAULT_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                    "task_index": "int64"}
VIDEO_INFO = {"video.height", "video.width", "video.codec", "video.pix_fmt", "video.fps", "video.channels",
              "has_audio", "video.g", "video.crf", "video.preset", "video.fast_decode", "video.video_backend",
              "video.extra_options", "is_depth_map"}
STAT_KEYS = {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}


@pytest.fixture(scope="module")
def exported(fake_episodes, tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot")
    shards = root / "shards"
    curate(fake_episodes, shards, small_config(), workers=1, progress=False)
    res = export_lerobot(shards, root / "out", progress=False)
    return shards, res


def test_layout_and_every_info_field(exported):
    shards, res = exported
    out = res.out_dir
    m = read_manifest(shards)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/info.json",
                     "meta/stats.json", "meta/tasks.parquet", f"videos/{VIDEO_KEY}/chunk-000/file-000.mp4"]
    info = json.loads((out / "meta/info.json").read_text())
    assert set(info) == INFO_FIELDS
    assert info["codebase_version"] == "v3.0" and isinstance(info["fps"], int) and info["fps"] == round(m["fps"])
    assert info["total_episodes"] == m["totals"]["clips"] == res.episodes
    assert info["total_frames"] == m["totals"]["frames"] == res.frames
    assert info["total_tasks"] == len(res.tasks) == 2  # the scenes: fake, other
    assert info["chunks_size"] == 1000 and info["data_files_size_in_mb"] == 100
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["splits"] == {"train": f"0:{res.episodes}"}
    feats = info["features"]
    for name, ft in feats.items():
        assert "/" not in name and set(ft) >= {"dtype", "shape", "names"}
    for name, dtype in DEFAULT_FEATURES.items():
        assert feats[name]["dtype"] == dtype and feats[name]["shape"] == [1]
    v = feats[VIDEO_KEY]
    assert v["dtype"] == "video" and v["shape"] == [m["height"], m["width"], 3]
    assert v["names"] == ["height", "width", "channels"] and set(v["info"]) >= VIDEO_INFO
    assert v["info"]["video.codec"] == probe_video(out / f"videos/{VIDEO_KEY}/chunk-000/file-000.mp4").codec
    k = len(m["action_space"]["keys"])
    assert feats["action"]["shape"] == [k + 2] and len(feats["action"]["names"]) == k + 2
    assert feats["observation.state"]["names"] == ["x", "y", "z", "qw", "qx", "qy", "qz"]


def test_data_episodes_tasks_stats_and_video_match_the_shards(exported):
    shards, res = exported
    out = res.out_dir
    info = json.loads((out / "meta/info.json").read_text())
    feats = info["features"]
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    # the Arrow types lerobot's get_hf_features_from_features gives: (1,) scalar, (n,) fixed-size list
    for f in data.schema:
        ft = feats[f.name]
        if ft["shape"] == [1]:
            assert not pa.types.is_list(f.type) and not pa.types.is_fixed_size_list(f.type), f
        else:
            assert pa.types.is_fixed_size_list(f.type) and f.type.list_size == ft["shape"][0], f
            assert str(f.type.value_type) == {"float32": "float", "float64": "double"}[ft["dtype"]]
    assert set(data.column_names) == set(feats) - {VIDEO_KEY}
    df = data.to_pandas()
    assert df["index"].tolist() == list(range(info["total_frames"]))
    eps = pd.read_parquet(out / "meta/episodes/chunk-000/file-000.parquet")
    for col in ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index", f"videos/{VIDEO_KEY}/chunk_index", f"videos/{VIDEO_KEY}/file_index",
                f"videos/{VIDEO_KEY}/from_timestamp", f"videos/{VIDEO_KEY}/to_timestamp",
                "meta/episodes/chunk_index", "meta/episodes/file_index"):
        assert col in eps.columns, col
    tasks = pd.read_parquet(out / "meta/tasks.parquet")
    assert tasks.index.name == "task" and tasks["task_index"].tolist() == list(range(len(tasks)))
    stats = json.loads((out / "meta/stats.json").read_text())
    for name in feats:
        assert set(stats[name]) == STAT_KEYS, name
    assert np.asarray(stats[VIDEO_KEY]["mean"]).shape == (3, 1, 1)
    assert 0 <= np.min(stats[VIDEO_KEY]["min"]) <= np.max(stats[VIDEO_KEY]["max"]) <= 1
    # episode e = clip e: its frames, actions and poses, and its span of the video by timestamp
    ds = ShardDataset(shards)
    video, pts = read_video(out / f"videos/{VIDEO_KEY}/chunk-000/file-000.mp4")
    assert len(video) == info["total_frames"]
    fps = info["fps"]
    for e in (0, len(eps) - 1):
        ep = eps.iloc[e]
        clip = ds[e]
        rows = df.iloc[ep["dataset_from_index"]:ep["dataset_to_index"]]
        assert len(rows) == ep["length"] == clip["frames"].shape[0]
        assert (rows["episode_index"] == e).all() and rows["frame_index"].tolist() == list(range(len(rows)))
        np.testing.assert_allclose(rows["timestamp"], np.arange(len(rows)) / fps, atol=1e-6)
        act = np.stack(rows["action"])
        np.testing.assert_array_equal(act[:, :-2], clip["keyboard"].numpy())
        np.testing.assert_allclose(act[:, -2:], clip["mouse"].numpy())
        np.testing.assert_array_equal(np.stack(rows["observation.state"]), clip["pose"].numpy())
        in_video = (pts >= ep[f"videos/{VIDEO_KEY}/from_timestamp"] - 1e-4) & (pts < ep[f"videos/{VIDEO_KEY}/to_timestamp"] - 1e-4)
        assert in_video.sum() == len(rows)
        got = video[in_video].astype(np.int16)
        want = clip["frames"].permute(0, 2, 3, 1).numpy().astype(np.int16)
        assert np.abs(got - want).mean() < 6  # re-encoded: lossy, close
        assert ep["tasks"].tolist() == [clip["scene"]]


def test_refuses_an_existing_folder(exported, tmp_path):
    shards, _ = exported
    (tmp_path / "x").mkdir()
    with pytest.raises(FileExistsError, match="exists"):
        export_lerobot(shards, tmp_path / "x", progress=False)


def test_hugging_face_datasets_reads_the_data_with_lerobots_features(exported, tmp_path, monkeypatch):
    """lerobot reads data/*.parquet with datasets.Dataset.from_parquet(path, features=get_hf_features_from_features(
    info["features"])): (1,) -> Value, (n,) -> Sequence(length=n), videos skipped. The same call here."""
    import datasets
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    _, res = exported
    info = json.loads((res.out_dir / "meta/info.json").read_text())
    hf = {}
    for key, ft in info["features"].items():
        if ft["dtype"] == "video":
            continue
        hf[key] = (datasets.Value(ft["dtype"]) if ft["shape"] == [1]
                   else datasets.Sequence(length=ft["shape"][0], feature=datasets.Value(ft["dtype"])))
    ds = datasets.Dataset.from_parquet(str(res.out_dir / "data/chunk-000/file-000.parquet"),
                                       features=datasets.Features(hf), cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == info["total_frames"]
    row = ds.with_format("numpy")[3]
    assert row["action"].shape == (info["features"]["action"]["shape"][0],) and row["index"] == 3
    eps = datasets.Dataset.from_parquet(str(res.out_dir / "meta/episodes/chunk-000/file-000.parquet"),
                                        cache_dir=str(tmp_path / "cache"))
    assert eps.num_rows == info["total_episodes"]
