"""curation.split and the per-split dataset: deterministic, stable when episodes are added, whole scenes with
by: scene, recorded in the manifest, one split per shard, and the reader's split filter."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from curation import curate
from curation.config import CurateConfig, SplitConfig
from curation.reader import ShardDataset
from curation.split import assign_split, episodes_in, split_counts, split_unit

from .helpers import make_fake_episodes, small_config


def test_assignment_is_deterministic_stable_and_follows_the_fractions():
    cfg = SplitConfig(val=0.2, test=0.1, salt=3)
    ids = [f"sandbox-city-s{i:010d}-i00000" for i in range(2000)]
    first = {e: assign_split(cfg, e) for e in ids}
    assert first == {e: assign_split(cfg, e) for e in reversed(ids)}  # order and company do not matter
    counts = split_counts(first)
    assert abs(counts["test"] / 2000 - 0.1) < 0.03 and abs(counts["val"] / 2000 - 0.2) < 0.03
    assert assign_split(SplitConfig(val=0.2, test=0.1, salt=4), ids[0]) in ("train", "val", "test")
    assert 0 <= split_unit("x", 0) < 1 and split_unit("x", 0) != split_unit("x", 1)


def test_by_scene_holds_whole_scenes_out():
    cfg = SplitConfig(by="scene", val=0.0, test=0.5, salt=0)
    for scene in ("city", "indoor", "park", "harbour"):
        got = {assign_split(cfg, f"e-{scene}-{i}", scene, i) for i in range(20)}
        assert len(got) == 1


def test_bad_split_config_is_reported():
    with pytest.raises(ValueError, match="split.val"):
        CurateConfig.from_dict({"split": {"val": 1.5}})
    with pytest.raises(ValueError, match="train must keep episodes"):
        CurateConfig.from_dict({"split": {"val": 0.5, "test": 0.5}})


def test_curation_records_the_split_and_never_mixes_splits_in_a_shard(tmp_path):
    eps = tmp_path / "episodes"
    make_fake_episodes(eps, n=3, frames=40, scenes=("a", "b"))
    cfg = small_config(split={"enabled": True, "val": 0.3, "test": 0.3, "salt": 2})
    out = tmp_path / "shards"
    curate(eps, out, cfg, progress=False)
    m = json.loads((out / "manifest.json").read_text())
    want = {p.name: assign_split(cfg.split, p.name) for p in eps.iterdir()}
    assert m["split"]["episodes"] == want and m["split"]["by"] == "episode"
    assert sum(m["split"]["clip_counts"].values()) == m["totals"]["clips"]
    for s in m["shards"]:
        rows = pd.read_parquet(out / s["file"], columns=["episode_id", "split"])
        assert set(rows["split"]) == {s["split"]} and all(want[e] == s["split"] for e in rows["episode_id"])
    for split in ("train", "val", "test"):
        ds = ShardDataset(out, split=split, decode=False)
        got = {ds[i]["episode_id"] for i in range(len(ds))}
        assert got == set(episodes_in(m, [split])) or (not got and m["split"]["clip_counts"][split] == 0)
    # adding episodes never moves one already assigned
    more = tmp_path / "more"
    make_fake_episodes(more, n=2, frames=40, scenes=("c",))
    for p in more.iterdir():
        shutil.copytree(p, eps / p.name)
    curate(eps, out, cfg, progress=False)
    m2 = json.loads((out / "manifest.json").read_text())
    assert all(m2["split"]["episodes"][e] == s for e, s in want.items())
