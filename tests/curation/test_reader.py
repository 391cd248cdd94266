"""The training reader: items, expectations, and every clip exactly once across ranks and DataLoader workers."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

from curation.runner import curate
from curation.reader import ShardDataset, ShardIterableDataset, ShardsError
from tests.curation.helpers import small_config


@pytest.fixture(scope="module")
def shards(fake_episodes, tmp_path_factory):
    out = tmp_path_factory.mktemp("reader") / "shards"
    cfg = small_config(output={"shard_max_rows": 7, "row_group_rows": 2})  # 24 clips, 4 shards, 13 row groups
    curate(fake_episodes, out, cfg, progress=False)
    return out


def ids_of(loader):
    return [cid for batch in loader for cid in (batch["clip_id"] if isinstance(batch["clip_id"], list) else [batch["clip_id"]])]


def test_map_style_items_have_the_documented_shapes_and_types(shards):
    ds = ShardDataset(shards, expect_keys=["w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb"],
                      expect_height=32, expect_width=64, expect_clip_frames=9)
    assert len(ds) == 24
    it = ds[3]
    assert it["frames"].shape == (9, 3, 32, 64) and it["frames"].dtype == torch.uint8
    assert it["keyboard"].shape == (9, 9) and it["keyboard"].dtype == torch.uint8
    assert it["mouse"].shape == (9, 2) and it["mouse"].dtype == torch.float32
    assert it["pose"].shape == (9, 7) and it["pose"].dtype == torch.float64
    assert it["speed"].dtype == torch.float32 and it["collision"].dtype == torch.bool
    assert isinstance(it["clip_id"], str) and it["fps"] == 25.0 and it["start_frame"] % 9 == 0
    f = ShardDataset(shards, keyboard_dtype=torch.float32)[3]["keyboard"]
    assert f.dtype == torch.float32 and torch.equal(f, it["keyboard"].float())
    ids = [ds[i]["clip_id"] for i in range(len(ds))]
    assert len(set(ids)) == 24
    batch = next(iter(DataLoader(ds, batch_size=4, num_workers=2)))
    assert batch["frames"].shape == (4, 9, 3, 32, 64) and batch["clip_id"] == ids[:4]


def test_manifest_mismatches_give_clear_errors(shards, tmp_path):
    with pytest.raises(ShardsError, match=r"action space keys are \['w'.*expected \['w', 's', 'a', 'd'\]"):
        ShardIterableDataset(shards, expect_keys=["w", "s", "a", "d"])
    with pytest.raises(ShardsError, match="height is 32, expected 352"):
        ShardDataset(shards, expect_height=352)
    with pytest.raises(ShardsError, match="clip_frames is 9, expected 57"):
        ShardDataset(shards, expect_clip_frames=57)
    with pytest.raises(ShardsError, match="no manifest.json"):
        ShardDataset(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    m = json.loads((shards / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps({**m, "schema": "something/2"}))
    with pytest.raises(ShardsError, match="schema is 'something/2', expected 'playmill.shards/1'"):
        ShardDataset(bad)
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ShardsError, match="part-00000.parquet: listed in the manifest but missing"):
        ShardDataset(bad)


@pytest.mark.parametrize("world_size,num_workers", [(1, 0), (2, 2), (3, 1)])
def test_every_clip_exactly_once_across_ranks_and_workers(shards, world_size, num_workers):
    everything = []
    for rank in range(world_size):
        ds = ShardIterableDataset(shards, shuffle=True, seed=7, buffer_size=5, rank=rank, world_size=world_size,
                                  decode=(rank == 0))
        everything += ids_of(DataLoader(ds, batch_size=None, num_workers=num_workers))
    assert len(everything) == 24 and len(set(everything)) == 24


def test_shuffle_is_seeded_and_changes_with_the_epoch(shards):
    def order(seed, epoch):
        ds = ShardIterableDataset(shards, seed=seed, decode=False)
        ds.set_epoch(epoch)
        return [x["clip_id"] for x in ds]

    a = order(1, 0)
    assert a == order(1, 0) and a != order(1, 1) and a != order(2, 0) and sorted(a) == sorted(order(1, 1))
    plain = [x["clip_id"] for x in ShardIterableDataset(shards, shuffle=False, decode=False)]
    assert plain == [ShardDataset(shards, decode=False)[i]["clip_id"] for i in range(24)]


def test_drop_last_balances_ranks(shards):
    counts = []
    for rank in range(2):
        ds = ShardIterableDataset(shards, rank=rank, world_size=2, drop_last=True, decode=False)
        counts.append(len(list(ds)))
        assert ds.clips_per_slot()[rank] == counts[-1]
    assert counts[0] == counts[1] > 0
    with pytest.raises(ValueError, match="rank 2 is not in"):
        ShardIterableDataset(shards, rank=2, world_size=2)


def test_rank_and_world_size_come_from_torch_distributed(shards, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        ds = ShardIterableDataset(shards, decode=False)
        assert (ds.rank, ds.world_size) == (0, 1)
    finally:
        dist.destroy_process_group()
