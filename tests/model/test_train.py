"""Base training: the tiny model overfits the synthetic world, checkpoints resume exactly, failures are clear.

The session fixture ``trained_run`` (conftest.py) trains the tiny preset once (VAE warm-up, latent cache, DiT);
the other tests run a few steps with its VAE on small shard folders of their own.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from curation.reader import ShardDataset
from model.bundle import load_bundle, read_meta, read_tensors, save_safetensors
from model.checkpoint import CheckpointMismatchError
from model.conditions import ConditionError
from model.latents import LatentDataset, decode_array, encode_clips, encode_latents
from model.train import ClipBatches, NonFiniteLossError, TrainConfig, get_train_config, train
from tests.model.conftest import TRAIN_FRAMES, TRAIN_OVERRIDES
from tests.model.synthetic_world import DEFAULT_KEYS, make_clips, write_synthetic_shards


def _small_cfg(run, **kw) -> TrainConfig:
    """A few-step config reusing the fixture run's VAE (no warm-up)."""
    base = dict(vae_checkpoint=str(run.vae_checkpoint), batch_size=2, max_steps=6, ckpt_every=2, log_every=1,
                val_every=3, val_clips=2, warmup_steps=2)
    base.update(kw)
    return get_train_config("tiny", **base)


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory):
    clips = make_clips((5,), 1, ("idle", "right", "left", "forward"), num_frames=17, height=64, width=112)
    return write_synthetic_shards(tmp_path_factory.mktemp("small") / "shards", clips), clips


def test_tiny_model_overfits_the_clips(trained_run):
    r = trained_run
    assert r.steps == TRAIN_OVERRIDES["max_steps"]
    # the fixed-noise validation loss on the training clips falls by 10x
    assert r.val_loss_initial > 1.5  # a fresh model predicts 0: E|eps - x0|^2 = 1 + E|x0|^2 ~ 2
    assert r.val_loss_final < r.val_loss_initial / 10, (r.val_loss_initial, r.val_loss_final)
    losses = [h["loss"] for h in r.history if "loss" in h]
    assert np.mean(losses[-5:]) < np.mean(losses[:2]) / 3
    # the VAE warm-up produced a usable VAE (reconstructions explain most of the clips' variance)
    vae_meta = read_meta(r.vae_checkpoint)
    assert r.vae_psnr is not None and r.vae_psnr > 19.0 and vae_meta["r2"] >= 0.5, vae_meta


def test_run_folder_holds_everything_to_resume_and_sample(trained_run):
    out = trained_run.out_dir
    ck = trained_run.checkpoint
    assert (out / "train_config.json").is_file() and (out / "vae.safetensors").is_file()
    for name in ("dit.safetensors", "dit_ema.safetensors", "optimizer.safetensors", "state.json"):
        assert (ck / name).is_file(), name
    meta = read_meta(ck / "dit_ema.safetensors")
    assert meta["model"]["name"] == "tiny" and meta["conditions"]["mode"] == "universal"
    assert meta["conditions"]["keyboard_map"] == {"w": "w", "s": "s", "a": "a", "d": "d"}
    # the synthetic world turns 2 deg/frame -> 0.1 model units
    assert meta["conditions"]["mouse_scale"] == pytest.approx(0.05)
    assert meta["train"]["max_steps"] == trained_run.steps
    opt = read_tensors(ck / "optimizer.safetensors")
    assert any(k.endswith(".exp_avg") for k in opt)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and "val_loss" in rows[0] and rows[-1]["step"] == trained_run.steps
    vae_meta = read_meta(out / "vae.safetensors")
    assert len(vae_meta["config"]["latent_std"]) == 16 and vae_meta["trained_steps"] > 0


def test_latent_cache_side_shards(trained_run, synthetic_shards, synthetic_clips):
    lat = trained_run.out_dir / "latents"
    man = json.loads((lat / "manifest.json").read_text())
    assert man["schema"] == "playmill.latents/1" and man["latent_shape"] == [16, 3, 8, 14]  # 9 of 17 frames
    table = pq.read_table(lat / "part-00000.parquet")
    for name in ("vae_latent", "first_frame_latent", "clip_feature"):
        assert {f"{name}_bytes", f"{name}_shape", f"{name}_dtype"} <= set(table.column_names)
    row = table.slice(0, 1).to_pylist()[0]
    cached = decode_array(row["vae_latent_bytes"], row["vae_latent_shape"], row["vae_latent_dtype"])
    b = load_bundle(trained_run.checkpoint)
    reader = ShardDataset(synthetic_shards)
    item = next(reader[i] for i in range(len(reader)) if reader[i]["clip_id"] == row["clip_id"])
    frames = item["frames"][:TRAIN_FRAMES][None]  # the decoded JPEG frames the cache was made from
    lat_now, cond_now, tok_now = encode_clips(b.vae, b.image_encoder, frames)
    np.testing.assert_allclose(cached, lat_now[0].numpy(), atol=1e-4)
    ds = LatentDataset(lat)
    assert len(ds) == len(synthetic_clips) and ds[0]["image_tokens"].shape == tok_now[0].shape
    # a rerun with the same inputs skips the work (files untouched)
    mtime = (lat / "part-00000.parquet").stat().st_mtime_ns
    encode_latents(synthetic_shards, b.vae, lat, image_encoder=b.image_encoder, num_frames=TRAIN_FRAMES,
                   dtype="float32", progress=False)
    assert (lat / "part-00000.parquet").stat().st_mtime_ns == mtime


def test_resume_equals_uninterrupted_run(trained_run, small_shards, tmp_path):
    shards, _ = small_shards
    cfg = _small_cfg(trained_run)
    full = train(cfg, shards, tmp_path / "full", progress=False)

    class Killed(Exception):
        pass

    def kill_at_5(step: int, loss: float) -> None:
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, shards, tmp_path / "killed", progress=False, on_step=kill_at_5)
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text() == "step-000004"
    resumed = train(cfg, shards, tmp_path / "killed", progress=False)
    assert resumed.resumed_from == 4 and resumed.steps == 6
    for name in ("dit.safetensors", "dit_ema.safetensors", "optimizer.safetensors"):
        a, b = read_tensors(full.checkpoint / name), read_tensors(resumed.checkpoint / name)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{name}:{k}")
    # settings that change the run cannot be resumed; the global batch must stay (the message says how)
    with pytest.raises(ValueError, match=r"different settings.*seed"):
        train(_small_cfg(trained_run, seed=1, max_steps=8), shards, tmp_path / "killed", progress=False)
    with pytest.raises(ValueError, match=r"global batch .* was 2, now 1 x 1 x 1 = 1; .* train.batch_size=2 or "
                                         r"train.grad_accum=2"):
        train(_small_cfg(trained_run, batch_size=1, max_steps=8), shards, tmp_path / "killed", progress=False)


def test_nan_loss_stops_with_step_and_clip_ids(trained_run, tmp_path):
    clips = make_clips((6,), 1, ("idle", "right", "left", "forward"), num_frames=17, height=64, width=112)
    bad = clips[2]
    bad.mouse = bad.mouse.copy()
    bad.mouse[5, 1] = np.nan
    shards = write_synthetic_shards(tmp_path / "shards", clips)
    cfg = _small_cfg(trained_run, batch_size=1, max_steps=8, ckpt_every=1, mouse_scale=0.05, val_clips=1)
    order = ClipBatches([type("G", (), {"first": 0, "rows": 4})()], 1, cfg.seed, 0, 1).epoch_order(0)
    bad_step = order.index(2) + 1  # clips are in manifest order: index 2 is the bad one
    with pytest.raises(NonFiniteLossError) as e:
        train(cfg, shards, tmp_path / "run", progress=False)
    err = e.value
    assert err.step == bad_step and err.clip_ids == [bad.clip_id]
    assert f"step {bad_step}" in str(err) and bad.clip_id in str(err)
    report = json.loads((tmp_path / "run" / "nonfinite.json").read_text())
    assert report["clip_ids"] == [bad.clip_id] and report["step"] == bad_step
    if bad_step > 1:  # the last good checkpoint is kept and loads
        assert err.checkpoint is not None and err.checkpoint.name == f"step-{bad_step - 1:06d}"
        assert load_bundle(err.checkpoint).dit is not None
    assert not (tmp_path / "run" / "checkpoints" / f"step-{bad_step:06d}").exists()


def test_checkpoint_with_missing_and_unexpected_keys_lists_them(trained_run, tmp_path):
    src = trained_run.checkpoint / "dit_ema.safetensors"
    sd = read_tensors(src)
    meta = read_meta(src)
    sd.pop("blocks.0.self_attn.q.weight")
    sd["blocks.9.extra.weight"] = torch.zeros(1)
    bad = tmp_path / "dit_ema.safetensors"
    save_safetensors(bad, sd, meta)
    with pytest.raises(CheckpointMismatchError) as e:
        load_bundle(bad)
    assert "blocks.0.self_attn.q.weight" in str(e.value) and "blocks.9.extra.weight" in str(e.value)
    assert e.value.missing == ["blocks.0.self_attn.q.weight"] and e.value.unexpected == ["blocks.9.extra.weight"]


def test_shards_with_another_action_space_or_resolution_are_refused(trained_run, tmp_path):
    clips = make_clips((7,), 1, ("idle",), num_frames=17, height=64, width=112, keys=("up", "down", "left", "right"))
    other_keys = write_synthetic_shards(tmp_path / "keys", clips, keys=("up", "down", "left", "right"))
    with pytest.raises(ConditionError, match=r"lacks keys.*w <- w.*keyboard_map"):
        train(_small_cfg(trained_run), other_keys, tmp_path / "r1", progress=False)
    small = write_synthetic_shards(tmp_path / "res", make_clips((7,), 1, ("idle",), num_frames=17, height=48, width=80))
    with pytest.raises(ConditionError, match=r"clips are 80x48.*trains at 112x64"):
        train(_small_cfg(trained_run), small, tmp_path / "r2", progress=False)
    short = write_synthetic_shards(tmp_path / "short", make_clips((7,), 1, ("idle",), num_frames=9, height=64, width=112))
    with pytest.raises(ConditionError, match=r"clips have 9 frames; the model needs 17"):
        train(_small_cfg(trained_run), short, tmp_path / "r3", progress=False)
    # a keyboard_map makes the other action space usable (checked before any training)
    cfg = _small_cfg(trained_run, keyboard_map={"w": "up", "s": "down", "a": "left", "d": "right"}, max_steps=1,
                     mouse_scale=0.05, batch_size=1, val_clips=1)
    assert train(cfg, other_keys, tmp_path / "r4", progress=False).steps == 1


def test_batches_split_ranks_and_resume_deterministically():
    groups = [type("G", (), {"first": 10 * i, "rows": 10})() for i in range(6)]
    full = ClipBatches(groups, 4, seed=3, rank=0, world=1)
    seq = [b for _, b in zip(range(40), iter(full))]
    resumed = ClipBatches(groups, 4, seed=3, rank=0, world=1, start=17)
    assert [b for _, b in zip(range(23), iter(resumed))] == seq[17:]
    epoch = full.epoch_order(0)
    assert sorted(epoch) == list(range(60))
    # consecutive clips of the order come from one row group (the unit of Parquet I/O)
    assert all(len({i // 10 for i in epoch[k : k + 10]}) == 1 for k in range(0, 60, 10))
    # the global batch of a step does not depend on how it is split: 2 ranks x 2 clips x 1 micro-batch,
    # 1 rank x 2 clips x 2 micro-batches and 1 rank x 4 clips train the same clips at the same positions
    r0 = ClipBatches(groups, 2, seed=3, rank=0, world=2)
    r1 = ClipBatches(groups, 2, seed=3, rank=1, world=2)
    accum = ClipBatches(groups, 2, seed=3, rank=0, world=1, grad_accum=2)
    two = [a + b for _, a, b in zip(range(30), iter(r0), iter(r1))]
    it = iter(accum)
    acc = [next(it) + next(it) for _ in range(30)]
    assert two == seq[:30] == acc
    assert r0.per_epoch == full.per_epoch == 15  # 60 clips in global batches of 4
    assert list(r1.positions(0)) == [2, 3] and list(accum.positions(1)) == [2, 3]
    # a rank's share of a step is contiguous in the order: few row groups per rank and step
    with pytest.raises(ValueError, match="cannot fill one global batch of 64 = batch_size 16 x grad_accum 2 x 2"):
        ClipBatches(groups[:1], 16, seed=0, rank=0, world=2, grad_accum=2)


def test_per_sample_noise_does_not_depend_on_the_split():
    from model.train import batch_randn, sample_generators

    whole = batch_randn(sample_generators(5, 7, range(4)), (3, 2))
    halves = torch.cat([batch_randn(sample_generators(5, 7, range(0, 2)), (3, 2)),
                        batch_randn(sample_generators(5, 7, range(2, 4)), (3, 2))])
    assert torch.equal(whole, halves)
    assert not torch.equal(whole, batch_randn(sample_generators(5, 8, range(4)), (3, 2)))  # another step


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="preset: 'huge' is not allowed; expected one of tiny, mg2-1.3b"):
        get_train_config("huge")
    with pytest.raises(ValueError, match=r"lr_max: unknown key"):
        get_train_config("tiny", lr_max=1.0)
    with pytest.raises(ValueError, match="num_frames: 16 is not allowed; expected 1 \\+ 4k frames"):
        get_train_config("tiny", num_frames=16)
    with pytest.raises(ValueError, match="precision: 'fp8' is not allowed; expected one of auto, bf16, fp32"):
        get_train_config("tiny", precision="fp8")
    assert get_train_config("tiny", lr="1e-4").lr == 1e-4  # YAML 1.1 reads 1e-4 as a string
    with pytest.raises(ValueError, match="parallel: 'zero3' is not allowed; expected one of ddp, fsdp"):
        get_train_config("tiny", parallel="zero3")
    big = get_train_config("mg2-1.3b")
    assert (big.height, big.width, big.num_frames, big.model) == (352, 640, 57, "mg2-1.3b-base")
    assert big.gradient_checkpointing and big.vae_train_steps == 0
    assert DEFAULT_KEYS[:4] == ("w", "s", "a", "d")


def test_pixel_path_and_other_modes_train(trained_run, small_shards, tmp_path):
    shards, _ = small_shards
    # without the latent cache the VAE encodes every batch
    r = train(_small_cfg(trained_run, cache_latents=False, max_steps=2, val_clips=1), shards, tmp_path / "pix",
              progress=False)
    assert r.steps == 2 and np.isfinite(r.final_loss) and not (tmp_path / "pix" / "latents").exists()
    # gta_drive: forward/back <- w/s, mouse kept
    r = train(_small_cfg(trained_run, mode="gta_drive", max_steps=1, val_clips=1), shards, tmp_path / "gta",
              progress=False)
    assert read_meta(r.checkpoint / "dit.safetensors")["conditions"]["keyboard_map"] == {"forward": "w", "back": "s"}
    # templerun: 7 keys, no mouse, from a dataset with its key names
    tr_keys = ("jump", "slide", "turnleft", "turnright", "leftside", "rightside")
    tr = write_synthetic_shards(tmp_path / "tr", make_clips((8,), 2, ("idle",), num_frames=17, height=64,
                                                             width=112, keys=tr_keys), keys=tr_keys)
    r = train(_small_cfg(trained_run, mode="templerun", max_steps=1, batch_size=1, val_clips=1), tr, tmp_path / "t",
              progress=False)
    meta = read_meta(r.checkpoint / "dit.safetensors")
    assert meta["conditions"]["mouse_scale"] == 0.0 and meta["model"]["dit"]["action"]["keyboard_dim"] == 7


def test_tensorboard_shows_training_vae_warmup_and_samples(trained_run):
    """The default logger writes TensorBoard events beside log.jsonl: the losses, learning rate, throughput and
    validation of base training, the VAE warm-up, and sample images."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = trained_run.out_dir / "tensorboard"
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "train/val_loss", "vae/mse",
                "vae/psnr_db"):
        assert tag in tags["scalars"], (tag, tags["scalars"])
    rows = [json.loads(line) for line in (trained_run.out_dir / "log.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["loss"] for r in rows if r.get("loss") is not None}
    events = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert logged and all(events[s] == pytest.approx(v, rel=1e-6) for s, v in logged.items())
    assert {"train/samples", "vae/reconstruction"} <= set(tags["images"])
    img = acc.Images("train/samples")[-1]
    assert img.step == trained_run.steps and img.width > img.height > 0  # a strip: real above predicted
    assert (trained_run.out_dir / "vae_log.jsonl").is_file()
