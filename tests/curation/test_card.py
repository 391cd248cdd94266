"""The dataset card: Hugging Face `datasets.load_dataset(shards_dir)` gives the clips with their splits, and the
rejects as a second config (the real `datasets` library reads the folder)."""

import json
import shutil

import pandas as pd
import pytest

from curation.card import CARD_FILE, shard_splits, write_dataset_card
from curation.runner import curate
from curation.shards import read_manifest
from tests.curation.helpers import small_config



@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def load(path, *args):
    from datasets import load_dataset

    return load_dataset(str(path), *args, cache_dir=str(path.parent / "hf-cache"))


@pytest.fixture(scope="module")
def shards(fake_episodes, tmp_path_factory):
    out = tmp_path_factory.mktemp("card") / "shards"
    curate(fake_episodes, out, small_config(output={"shard_max_rows": 10, "row_group_rows": 5}), workers=1,
           progress=False)
    return out


def test_load_dataset_gives_the_clips_and_the_rejects(shards, tmp_path):
    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    m = read_manifest(folder)
    assert (folder / CARD_FILE).is_file() and len(m["shards"]) >= 2
    ds = load(folder)
    assert list(ds) == list(shard_splits(m)) == ["train"]  # curated without a held-out split: all train
    train = ds["train"]
    want = pd.concat([pd.read_parquet(folder / s["file"]) for s in m["shards"]], ignore_index=True)
    assert train.num_rows == m["totals"]["clips"] == len(want)
    assert train["clip_id"] == want["clip_id"].tolist()
    row = train[0]
    assert row["video"] == want["video"][0] and len(row["keyboard"]) == row["num_frames"]
    assert len(row["keyboard"][0]) == len(m["action_space"]["keys"]) and len(row["pose"][0]) == 7
    rejects = load(folder, "rejects")["train"]
    assert rejects.num_rows == m["rejects"]["rows"] > 0
    assert set(rejects.column_names) >= {"episode_id", "kind", "stage", "reason"}
    text = (folder / CARD_FILE).read_text()
    for part in ("## Sources", "## Splits", "## Columns", "load_dataset", "playmill export lerobot",
                 ", ".join(m["action_space"]["keys"])):
        assert part in text


def test_held_out_splits_become_hugging_face_splits(shards, tmp_path):
    """Each shard holds one split (manifest ``shards[i].split``): the card maps them to HF splits."""
    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    m = read_manifest(folder)
    names = ["train", "val", "test"]
    for i, s in enumerate(m["shards"]):
        s["split"] = names[min(i, 2)]
    (folder / "manifest.json").write_text(json.dumps(m))
    write_dataset_card(folder)
    ds = load(folder)
    assert list(ds) == names[:len(m["shards"])]
    for i, s in enumerate(m["shards"]):
        ids = pd.read_parquet(folder / s["file"], columns=["clip_id"])["clip_id"].tolist()
        if i < 2:
            assert ds[names[i]]["clip_id"] == ids
    assert sum(d.num_rows for d in ds.values()) == m["totals"]["clips"]


def test_rerun_on_an_older_folder_writes_the_missing_card(fake_episodes, shards, tmp_path):
    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    (folder / CARD_FILE).unlink()
    res = curate(fake_episodes, folder, small_config(output={"shard_max_rows": 10, "row_group_rows": 5}),
                 workers=1, progress=False)
    assert res.up_to_date and (folder / CARD_FILE).is_file()
    assert load(folder)["train"].num_rows == res.clips
