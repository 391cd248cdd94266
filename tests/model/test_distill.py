"""Distillation: ODE pairs, student initialisation, DMD self-forcing, the designed action distribution.

Uses the session's tiny base model (conftest ``trained_run``, trained on 9-frame clips = 3 latent frames) as the
teacher: a few ODE pairs, ~100 init steps and a short DMD run (seconds on one CPU thread). Steering is measured on
decoded student rollouts with Farneback optical flow (tests/model/flow_metrics.py): in the synthetic world turning
right moves the content left (negative mean horizontal flow), turning left the opposite way.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from curation.reader import ShardDataset
from model.bundle import load_bundle, read_meta, read_tensors
from model.causal import CausalConfig, rollout
from model.conditions import ConditionError
from model.dit import i2v_condition
from model.distill import (
    ActionDistribution,
    OdePairs,
    distill_dmd,
    distill_init,
    get_distill_dmd_config,
    get_distill_init_config,
    get_ode_pairs_config,
    load_student,
    make_ode_pairs,
    sample_action_batch,
    sample_actions,
)
from model.distill.actions import combo_table, hold_durations, hold_lengths, ramp_profile
from model.distill.init import _Group
from model.distill.ode_pairs import check_model_actions, pair_seed, teacher_schedule, teacher_trajectory
from model.latents import decode_array, encode_condition
from model.train import ClipBatches, NonFiniteLossError, get_train_config, train
from tests.model.conftest import TRAIN_FRAMES
from tests.model.flow_metrics import mean_horizontal_flow
from tests.model.synthetic_world import action_rows, make_clips, write_synthetic_shards

PAIRS = 12


@pytest.fixture(scope="module")
def pairs(trained_run, synthetic_shards, tmp_path_factory):
    cfg = get_ode_pairs_config("tiny", num_pairs=PAIRS, teacher_steps=12, pairs_per_part=8, batch_size=4)
    return make_ode_pairs(cfg, trained_run.out_dir, synthetic_shards, tmp_path_factory.mktemp("pairs") / "p",
                          progress=False)


@pytest.fixture(scope="module")
def student(trained_run, pairs, tmp_path_factory):
    cfg = get_distill_init_config("tiny", max_steps=100, val_every=50, ckpt_every=50)
    return distill_init(cfg, pairs.out_dir, tmp_path_factory.mktemp("init") / "s", progress=False)


@pytest.fixture(scope="module")
def dmd(trained_run, student, tmp_path_factory):
    import warnings

    cfg = get_distill_dmd_config("tiny", max_steps=30, ckpt_every=20)
    with warnings.catch_warnings(record=True) as caught:  # the default run prints what DMD warns
        warnings.simplefilter("always")
        run = distill_dmd(cfg, trained_run.out_dir, student.out_dir, tmp_path_factory.mktemp("dmd") / "d",
                          progress=False)
    ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if "/model/" in w.filename]
    assert not ours, ours  # e.g. float() of a loss that requires grad (torch's UserWarning)
    return run


# ------------------------------------------------------------------------------------------------------------
# the designed action distribution


def test_designed_actions_have_the_configured_statistics():
    dist = ActionDistribution(hold_median_frames=12.0, hold_sigma=0.5, hold_min_frames=2, hold_max_frames=60,
                              p_turn=0.5, turn_speed_median=0.1, turn_speed_max=0.3, ramp_frames=3)
    rng = np.random.default_rng(0)
    kb, mouse = sample_action_batch(dist, "universal", 400, 121, rng)
    assert kb.shape == (400, 121, 4) and mouse.shape == (400, 121, 2) and kb.dtype == np.float32
    assert not kb[:, 0].any() and not mouse[:, 0].any()  # row 0 idle
    # hold durations: the lognormal's median, clipped to [min, max]
    d = hold_durations(np.random.default_rng(2), 100_000, 12.0, 0.5, 2, 60)
    assert sum(d) == 100_000 and 11 <= np.median(d) <= 13 and min(d) >= 1 and max(d) <= 60
    # with a key change at every hold (no combination drawn twice in a row) the key runs are the holds
    alt = ActionDistribution(hold_median_frames=12.0, hold_sigma=0.5, hold_min_frames=2, hold_max_frames=60,
                             combos=(("w", 1.0),))
    runs = hold_lengths(sample_actions(alt, "universal", 121, rng)[0])
    assert len(runs) == 1  # one combination: one run
    runs = np.concatenate([hold_lengths(k) for k in kb])
    assert np.median(runs) >= 12 and runs.min() >= 2  # holds that draw the same keys merge into longer runs
    # key combinations: the fraction of frames of each is its probability
    rows, probs, names = combo_table(dist, "universal")
    flat = kb[:, 1:].reshape(-1, 4)
    freq = np.array([(flat == r).all(axis=1).mean() for r in rows])
    assert np.abs(freq - probs).max() < 0.03, dict(zip(names, np.round(freq, 3)))
    assert freq[names.index("w")] == freq.max()  # forward is the most common
    # mouse: about half of the frames turn, left and right equally, typical speed 0.1, no jumps (eased)
    yaw = mouse[..., 1]
    turning = np.abs(yaw) > 0
    assert 0.3 < turning[:, 1:].mean() < 0.7
    assert abs((yaw > 0).mean() - (yaw < 0).mean()) < 0.05
    peak = np.abs(yaw).max(axis=1)
    assert 0.07 < np.median(peak[peak > 0]) < 0.2 and np.abs(yaw).max() <= 0.3 + 1e-6
    assert np.abs(np.diff(yaw, axis=1)).max() < 0.3 * 0.6  # ramps: never from 0 to full speed in one frame
    # a pure function of the generator
    a = sample_actions(dist, "universal", 57, np.random.default_rng(5))
    b = sample_actions(dist, "universal", 57, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_designed_actions_per_mode_and_bad_config():
    rng = np.random.default_rng(1)
    kb, mouse = sample_actions(ActionDistribution(), "templerun", 200, rng)
    assert kb.shape == (200, 7) and mouse is None and (kb.sum(axis=1) == 1).all()  # one-hot
    kb, mouse = sample_actions(ActionDistribution(), "gta_drive", 200, rng)
    assert kb.shape == (200, 2) and mouse.shape == (200, 2) and kb.sum(axis=1).max() <= 1
    w = ramp_profile(10, 3)
    assert w[0] < w[1] < w[2] < 1.0 == w[5] and np.allclose(w, w[::-1])
    with pytest.raises(ValueError, match=r"'w\+jump' has keys \['jump'\].*\['w', 's', 'a', 'd'\]"):
        ActionDistribution(combos=(("w+jump", 1.0),)).validate("universal")
    with pytest.raises(ValueError, match="templerun actions are one-hot"):
        ActionDistribution(combos=(("jump+slide", 1.0),)).validate("templerun")
    with pytest.raises(ValueError, match=r"hold: unknown key"):
        ActionDistribution.from_dict({"hold": 3})
    with pytest.raises(ValueError, match=r"p_turn: 1.5 is not allowed; expected a number in \[0, 1\]"):
        ActionDistribution.from_dict({"p_turn": 1.5})
    # model-space action checks: width and NaN, naming the source
    with pytest.raises(ConditionError, match="src: keyboard has 3 channels per frame; the model expects 4"):
        check_model_actions(torch.zeros(9, 3), torch.zeros(9, 2), 4, 2, "src")
    bad = torch.zeros(9, 2)
    bad[4, 1] = float("nan")
    with pytest.raises(ConditionError, match="src: mouse contains NaN"):
        check_model_actions(torch.zeros(9, 4), bad, 4, 2, "src")


# ------------------------------------------------------------------------------------------------------------
# ODE pairs


def test_teacher_schedule_passes_through_the_student_levels():
    keep = CausalConfig.preset("tiny").sigmas
    s, idx = teacher_schedule(keep, 24, 3.0)
    assert s[0] == 1.0 and s[-1] == 0.0 and (np.diff(s) < 0).all()
    assert tuple(s[list(idx[:-1])]) == keep and idx[-1] == len(s) - 1
    assert 23 <= len(s) - 1 <= 27
    s2, idx2 = teacher_schedule((0.8, 0.3), 10, 5.0)  # 1.0 not kept: the schedule still starts at noise
    assert s2[0] == 1.0 and s2[idx2[0]] == 0.8 and s2[idx2[1]] == 0.3
    with pytest.raises(ValueError, match="strictly descending"):
        teacher_schedule((0.5, 0.9), 10, 3.0)


def test_ode_pairs_are_the_teachers_trajectories(pairs, trained_run, synthetic_shards):
    man = json.loads((pairs.out_dir / "manifest.json").read_text())
    assert man["schema"] == "playmill.ode_pairs/1" and man["num_pairs"] == PAIRS
    assert pairs.sigmas[-1] == 0.0 and pairs.sigmas[:-1] == CausalConfig.preset("tiny").sigmas
    table = pq.read_table(pairs.out_dir / "part-00000.parquet")
    assert table.num_rows == 8 and len(man["parts"]) == 2
    for name in ("ode_latents", "first_frame_latent", "clip_feature", "keyboard", "mouse"):
        assert {f"{name}_bytes", f"{name}_shape", f"{name}_dtype"} <= set(table.column_names)
    row = table.slice(1, 1).to_pylist()[0]
    states = decode_array(row["ode_latents_bytes"], row["ode_latents_shape"], row["ode_latents_dtype"])
    assert states.shape == (4, 16, 3, 8, 14) and row["ode_latents_dtype"] == "float32"
    # recompute pair 1 independently: its noise from its seed, the teacher from the run, the clip's first frame
    b = load_bundle(trained_run.out_dir)
    reader = ShardDataset(synthetic_shards)
    clip = next(reader[i] for i in range(len(reader)) if reader[i]["clip_id"] == row["clip_id"])
    noise = torch.randn((16, 3, 8, 14), generator=torch.Generator().manual_seed(pair_seed(0, 1)))
    np.testing.assert_allclose(states[0], noise.numpy(), atol=1e-6)  # sigma = 1: the noise itself
    cond, tok = encode_condition(b.vae, b.image_encoder, clip["frames"][:1], TRAIN_FRAMES)  # the decoded JPEG
    kb = b.spec.keyboard(clip["keyboard"][:TRAIN_FRAMES])[None]
    ms = b.spec.mouse(clip["mouse"][:TRAIN_FRAMES])[None]
    sig, keep = teacher_schedule(pairs.sigmas[:-1], 12, b.timestep_shift)
    traj = teacher_trajectory(b.dit, noise[None], tok, i2v_condition(cond), kb, ms, sig, keep)
    np.testing.assert_allclose(states, traj[0].numpy(), atol=2e-4)
    ds = OdePairs(pairs.out_dir)
    assert len(ds) == PAIRS and ds[1]["clip_id"] == row["clip_id"] and ds[11]["ode_latents"].shape == (4, 16, 3, 8, 14)


def test_ode_pairs_resume_and_refuse_another_config(pairs, trained_run, synthetic_shards, tmp_path):
    cfg = get_ode_pairs_config("tiny", num_pairs=PAIRS, teacher_steps=12, pairs_per_part=8, batch_size=4)
    again = make_ode_pairs(cfg, trained_run.out_dir, synthetic_shards, pairs.out_dir, progress=False)
    assert again.computed == 0
    (pairs.out_dir / "part-00001.parquet").rename(tmp_path / "p1")  # a run killed before its second part
    mtime = (pairs.out_dir / "part-00000.parquet").stat().st_mtime_ns
    resumed = make_ode_pairs(cfg, trained_run.out_dir, synthetic_shards, pairs.out_dir, progress=False)
    assert resumed.computed == 4 and (pairs.out_dir / "part-00000.parquet").stat().st_mtime_ns == mtime
    assert pq.read_table(pairs.out_dir / "part-00001.parquet").equals(pq.read_table(tmp_path / "p1"))
    with pytest.raises(ValueError, match=r"another teacher, data or config.*teacher_steps"):
        make_ode_pairs(get_ode_pairs_config("tiny", num_pairs=PAIRS, teacher_steps=6, pairs_per_part=8),
                       trained_run.out_dir, synthetic_shards, pairs.out_dir, progress=False)


def test_ode_pairs_refuse_bad_actions(trained_run, tmp_path):
    clips = make_clips((3,), 1, ("idle", "right"), num_frames=17, height=64, width=112)
    clips[1].mouse = clips[1].mouse.copy()
    clips[1].mouse[3, 1] = np.nan
    nan_shards = write_synthetic_shards(tmp_path / "nan", clips)
    cfg = get_ode_pairs_config("tiny", num_pairs=2, teacher_steps=2, batch_size=1)
    with pytest.raises(ConditionError, match=r"clip tex3-s0-right: mouse contains NaN"):
        make_ode_pairs(cfg, trained_run.out_dir, nan_shards, tmp_path / "p1", progress=False)
    keys = ("w", "s", "a", "d", "space")
    narrow = write_synthetic_shards(tmp_path / "narrow", make_clips((3,), 1, ("idle",), num_frames=17, height=64,
                                                                    width=112, keys=keys), keys=keys)
    with pytest.raises(ConditionError, match=r"action space \['w', 's', 'a', 'd', 'space'\]; the teacher was trained on"):
        make_ode_pairs(cfg, trained_run.out_dir, narrow, tmp_path / "p2", progress=False)


# ------------------------------------------------------------------------------------------------------------
# student initialisation


def test_student_init_loss_falls_and_run_loads_as_student(student, trained_run):
    # measured: 0.17 -> 0.01 (the teacher's own weights, run block-causally, vs after 100 steps)
    assert student.val_loss_final < student.val_loss_initial / 3, (student.val_loss_initial, student.val_loss_final)
    b, causal = load_student(student.out_dir)
    assert causal == CausalConfig.preset("tiny") and b.run["stage"] == "init"
    assert b.run["format"] == "playmill.causal_student/1" and b.run["conditions"]["mode"] == "universal"
    assert (student.out_dir / "vae.safetensors").is_file()  # the tiny VAE travels with the student
    assert load_bundle(student.out_dir).run["causal"] == causal.to_dict()
    # the student starts from the teacher: same keys; the weights moved
    teacher_sd, student_sd = read_tensors(trained_run.checkpoint / "dit_ema.safetensors"), b.dit.state_dict()
    assert teacher_sd.keys() == student_sd.keys()
    assert any(not torch.equal(teacher_sd[k], student_sd[k]) for k in teacher_sd)


def test_student_init_resumes_exactly(pairs, tmp_path):
    cfg = get_distill_init_config("tiny", max_steps=4, ckpt_every=2, log_every=1, val_pairs=2)
    full = distill_init(cfg, pairs.out_dir, tmp_path / "full", progress=False)

    class Killed(Exception):
        pass

    def kill(step: int, loss: float) -> None:
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        distill_init(cfg, pairs.out_dir, tmp_path / "k", progress=False, on_step=kill)
    resumed = distill_init(cfg, pairs.out_dir, tmp_path / "k", progress=False)
    assert resumed.resumed_from == 2 and resumed.steps == 4
    for name in ("dit.safetensors", "dit_ema.safetensors", "optimizer.safetensors"):
        a, b = read_tensors(full.checkpoint / name), read_tensors(resumed.checkpoint / name)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{name}:{k}")


def test_student_init_stops_on_a_nan_pair(pairs, tmp_path):
    import shutil

    bad_dir = tmp_path / "pairs"
    shutil.copytree(pairs.out_dir, bad_dir)
    part = bad_dir / "part-00000.parquet"
    t = pq.read_table(part)
    col = t.column("ode_latents_bytes").to_pylist()
    arr = np.frombuffer(col[5], np.float32).copy()
    arr[arr.size - 100] = np.nan  # in the clean endpoint, which the loss of every draw uses
    col[5] = arr.tobytes()
    t = t.set_column(t.schema.get_field_index("ode_latents_bytes"), "ode_latents_bytes", pa.array(col, pa.binary()))
    pq.write_table(t, part)
    cfg = get_distill_init_config("tiny", max_steps=6, batch_size=4, ckpt_every=1, val_pairs=1)
    order = ClipBatches([_Group(0, PAIRS)], 4, cfg.seed, 0, 1).epoch_order(0)
    bad_step = order.index(5) // 4 + 1
    with pytest.raises(NonFiniteLossError) as e:
        distill_init(cfg, bad_dir, tmp_path / "s", progress=False)
    assert e.value.step == bad_step and any(n.startswith("pair 5 ") for n in e.value.clip_ids)
    assert json.loads((tmp_path / "s" / "nonfinite.json").read_text())["step"] == bad_step


# ------------------------------------------------------------------------------------------------------------
# DMD self-forcing


def test_dmd_step_changes_generator_and_critic(trained_run, student, tmp_path):
    cfg = get_distill_dmd_config("tiny", max_steps=2, critic_per_gen=1, weight_decay=0.0, log_every=1)
    r = distill_dmd(cfg, trained_run.out_dir, student.out_dir, tmp_path / "d", progress=False)
    assert r.steps == 2 and r.generator_updates == 2 and r.first_frames.startswith("pairs:")
    # the critic starts as the teacher: the first DMD gradient is exactly 0; after one critic update it is not
    assert r.history[0]["dmd_grad_norm"] == 0.0 and r.history[1]["dmd_grad_norm"] > 0
    init_sd = load_bundle(student.out_dir).dit.state_dict()  # DMD starts from the EMA weights (use_ema_init)
    gen_sd = read_tensors(r.checkpoint / "dit.safetensors")
    teacher_sd = read_tensors(trained_run.checkpoint / "dit_ema.safetensors")
    critic_sd = read_tensors(r.checkpoint / "critic.safetensors")
    gen_delta = max(float((gen_sd[k] - init_sd[k]).abs().max()) for k in init_sd)
    critic_delta = max(float((critic_sd[k] - teacher_sd[k]).abs().max()) for k in teacher_sd)
    assert gen_delta > 1e-6 and critic_delta > 1e-6, (gen_delta, critic_delta)
    meta = read_meta(r.checkpoint / "dit_ema.safetensors")
    assert meta["stage"] == "dmd" and meta["causal"] == CausalConfig.preset("tiny").to_dict()


def test_dmd_student_responds_to_actions(dmd, synthetic_clips):
    assert dmd.steps == 30 and dmd.critic_loss_last is not None and np.isfinite(dmd.critic_loss_last)
    b, causal = load_student(dmd.out_dir)
    assert b.run["stage"] == "dmd" and (dmd.out_dir / "checkpoints" / "step-000030" / "critic.safetensors").is_file()
    frame0 = torch.from_numpy(synthetic_clips[0].frames[0]).permute(2, 0, 1)[None]
    cond, tok = encode_condition(b.vae, b.image_encoder, frame0, TRAIN_FRAMES)
    flow = {}
    for action in ("right", "left"):
        kb, ms = action_rows(action, TRAIN_FRAMES)
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(cond.shape, generator=g)
        with torch.no_grad():
            x = rollout(b.dit, noise, tok, i2v_condition(cond), b.spec.keyboard(torch.from_numpy(kb))[None],
                        b.spec.mouse(torch.from_numpy(ms))[None], causal, generator=g)
            video = b.vae.decode(x, streaming=True)
        frames = ((video[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
        flow[action] = mean_horizontal_flow(frames)
    # measured: right about -0.8, left about +0.45 px/frame (the teacher: -0.8 / +0.4)
    assert flow["right"] < -0.15 and flow["left"] > 0.15, flow
    # the DMD run folder is what streaming generation loads (causal settings from its metadata)
    from model.stream import generate_student

    res = generate_student(dmd.out_dir, synthetic_clips[0].frames[0], action_rows("right", TRAIN_FRAMES), None,
                           keep_frames=True)
    assert res.frames.shape == (TRAIN_FRAMES, 64, 112, 3) and mean_horizontal_flow(res.frames) < -0.15


def test_dmd_refuses_checkpoints_of_another_kind_or_mode(trained_run, student, tmp_path):
    cfg = get_distill_dmd_config("tiny", max_steps=1)
    with pytest.raises(ValueError, match="is a base .*not a causal student.*distill init"):
        distill_dmd(cfg, trained_run.out_dir, trained_run.out_dir, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="is a causal student checkpoint.*must be a base model"):
        distill_dmd(cfg, student.out_dir, student.out_dir, tmp_path / "b", progress=False)
    clips = make_clips((4,), 1, ("idle", "right"), num_frames=17, height=64, width=112)
    shards = write_synthetic_shards(tmp_path / "shards", clips)
    gta = train(get_train_config("tiny", mode="gta_drive", vae_checkpoint=str(trained_run.vae_checkpoint),
                                 num_frames=TRAIN_FRAMES, batch_size=1, max_steps=1, val_clips=1),
                shards, tmp_path / "gta", progress=False)
    with pytest.raises(ValueError, match=r"'gta_drive'-mode model but student_init .* 'universal'-mode"):
        distill_dmd(cfg, gta.out_dir, student.out_dir, tmp_path / "c", progress=False)
    bad_actions = get_distill_dmd_config("tiny", max_steps=1, actions={"combos": {"forward": 1.0}})
    with pytest.raises(ValueError, match=r"'forward' has keys \['forward'\] that mode 'universal' lacks"):
        distill_dmd(bad_actions, trained_run.out_dir, student.out_dir, tmp_path / "d", progress=False)
    # real first frames from shards instead of the pairs'
    r = distill_dmd(get_distill_dmd_config("tiny", max_steps=1, first_frames=2), trained_run.out_dir,
                    student.out_dir, tmp_path / "e", shards_dir=shards, progress=False)
    assert r.first_frames.startswith("shards:") and r.steps == 1


def test_dmd_resumes_exactly(trained_run, student, tmp_path):
    cfg = get_distill_dmd_config("tiny", max_steps=4, ckpt_every=2, critic_per_gen=2, keep_last=1)
    full = distill_dmd(cfg, trained_run.out_dir, student.out_dir, tmp_path / "full", progress=False)

    class Killed(Exception):
        pass

    def kill(step: int, row: dict) -> None:
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        distill_dmd(cfg, trained_run.out_dir, student.out_dir, tmp_path / "k", progress=False, on_step=kill)
    resumed = distill_dmd(cfg, trained_run.out_dir, student.out_dir, tmp_path / "k", progress=False)
    assert resumed.resumed_from == 2 and resumed.steps == 4 and resumed.generator_updates == full.generator_updates == 2
    assert [p.name for p in (tmp_path / "k" / "checkpoints").glob("step-*")] == ["step-000004"]  # keep_last
    for name in ("dit.safetensors", "dit_ema.safetensors", "critic.safetensors", "critic_optimizer.safetensors"):
        a, b = read_tensors(full.checkpoint / name), read_tensors(resumed.checkpoint / name)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{name}:{k}")
    with pytest.raises(ValueError, match=r"different settings \(critic_per_gen\)"):
        distill_dmd(get_distill_dmd_config("tiny", max_steps=6, critic_per_gen=3), trained_run.out_dir,
                    student.out_dir, tmp_path / "k", progress=False)
