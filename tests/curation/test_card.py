"""The dataset card: Hugging Face `datasets.load_dataset(shards_dir)` gives the clips with their splits, and the
rejects as a second config (the real `datasets` library reads the folder)."""

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


def test_held_out_splits_become_hugging_face_splits(fake_episodes, tmp_path):
    """A curation run with the held-out split (curation.split) writes one split per shard; the card maps them to
    Hugging Face splits, and `load_dataset` gives each split exactly the clips whose ``split`` column says so."""
    from capture.episode import list_episodes
    from curation.config import SplitConfig
    from curation.split import assign_split

    ids = [p.name for p in list_episodes(fake_episodes)]
    salt = next(s for s in range(500)  # a salt that puts the four episodes in all three splits
                if {assign_split(SplitConfig(val=0.3, test=0.3, salt=s), i) for i in ids} == {"train", "val", "test"})
    folder = tmp_path / "shards"
    curate(fake_episodes, folder, small_config(split={"enabled": True, "val": 0.3, "test": 0.3, "salt": salt},
                                               output={"shard_max_rows": 10, "row_group_rows": 5}),
           workers=1, progress=False)
    m = read_manifest(folder)
    clips = pd.concat([pd.read_parquet(folder / s["file"], columns=["clip_id", "split"]) for s in m["shards"]])
    ds = load(folder)
    assert list(ds) == ["train", "val", "test"] == list(shard_splits(m))
    for name, d in ds.items():
        assert sorted(d["clip_id"]) == sorted(clips.loc[clips["split"] == name, "clip_id"]) and d.num_rows > 0
        assert set(d["split"]) == {name}
    assert sum(d.num_rows for d in ds.values()) == m["totals"]["clips"] == len(clips)
    assert "## Splits" in (folder / CARD_FILE).read_text() and "so a held-out episode never has clips" in (
        folder / CARD_FILE).read_text()


def test_rerun_on_an_older_folder_writes_the_missing_card(fake_episodes, shards, tmp_path):
    folder = tmp_path / "shards"
    shutil.copytree(shards, folder)
    (folder / CARD_FILE).unlink()
    res = curate(fake_episodes, folder, small_config(output={"shard_max_rows": 10, "row_group_rows": 5}),
                 workers=1, progress=False)
    assert res.up_to_date and (folder / CARD_FILE).is_file()
    assert load(folder)["train"].num_rows == res.clips
