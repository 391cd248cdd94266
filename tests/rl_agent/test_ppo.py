"""PPO end to end: a very short training run writes a checkpoint, resumes from it, rejects a mismatched one,
evaluates, and drives a full-resolution collection episode that validates."""

from __future__ import annotations

import functools
import json
import pickle
import zipfile

import pytest

from capture.collect import plan_episodes, record_episode
from capture.validate import validate_episode
from rl_agent import RLConfig, heldout_seeds, train_ppo
from rl_agent.checkpoint import CheckpointError, CheckpointMismatchError, load_policy, read_checkpoint_meta
from rl_agent.controller import PPOController, make_ppo_controller
from rl_agent.evaluation import evaluate
from rl_agent.plots import plot_learning_curves

from .fakeworlds import BoxWorld

ENV = {"scenes": ["indoor"], "weathers": ["clear"], "max_frames": 48, "obs_width": 36, "obs_height": 36,
       "render_width": 64, "render_height": 36, "train_seed_pool": 4}
PPO = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1, "checkpoint_every": 128, "cnn_features": 32,
       "net_arch": [32]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 256-decision run over 2 spawned environment processes, then resumed to 320 in-process."""
    out = tmp_path_factory.mktemp("rl") / "run"
    first = train_ppo(RLConfig.from_dict({"env": ENV, "ppo": {**PPO, "total_timesteps": 256}}), out, progress=False)
    resumed = train_ppo(RLConfig.from_dict({"env": ENV, "ppo": {**PPO, "total_timesteps": 320, "vec_env": "dummy",
                                                                   "n_envs": 1}}), out, progress=False)
    return out, first, resumed


def test_training_writes_checkpoints_and_logs(run):
    out, first, _ = run
    assert first.resumed_from is None and first.num_timesteps == 256 and first.stopped_by == "timesteps"
    assert first.checkpoint == out / "policy.zip" and first.checkpoint.is_file()
    names = sorted(p.name for p in (out / "checkpoints").glob("ckpt_*.zip"))
    assert names[:2] == ["ckpt_000000000128.zip", "ckpt_000000000256.zip"]
    meta = read_checkpoint_meta(out / "checkpoints" / "ckpt_000000000256.zip")
    assert meta["num_timesteps"] == 256 and meta["action_space"]["nvec"] == [3, 3, 2, 2, 7, 3]
    assert meta["observation_space"]["image"] == [3, 36, 36] and len(meta["observation_space"]["state_names"]) == 11 + 12 * 3
    header = first.progress_csv.read_text().splitlines()[0].split(",")
    assert {"coverage_pct", "collisions_per_1k", "shield_per_1k", "reward_exploration", "reward_collision"} <= set(header)
    assert first.episodes >= 2 and len(first.episodes_csv.read_text().splitlines()) >= 3
    png = plot_learning_curves(first.progress_csv, out / "curves.png")
    assert png.stat().st_size > 1000


def test_training_resumes_from_the_last_checkpoint(run):
    out, first, resumed = run
    assert resumed.resumed_from == out / "checkpoints" / "ckpt_000000000256.zip"
    assert resumed.num_timesteps == 320 and resumed.trained_timesteps == 64
    assert read_checkpoint_meta(resumed.checkpoint)["num_timesteps"] == 320
    again = train_ppo(RLConfig.from_dict({"env": ENV, "ppo": {**PPO, "total_timesteps": 320}}), out, progress=False)
    assert again.stopped_by == "already_done" and again.trained_timesteps == 0


def test_checkpoint_from_another_space_is_rejected(run, tmp_path):
    out, first, _ = run
    other = {**ENV, "yaw_bins_deg": [-4.0, 0.0, 4.0]}
    with pytest.raises(CheckpointMismatchError, match=r"action_space.nvec: checkpoint has \[3, 3, 2, 2, 7, 3\]"):
        train_ppo(RLConfig.from_dict({"env": other, "ppo": {**PPO, "total_timesteps": 512}}), out, progress=False)
    with pytest.raises(CheckpointMismatchError, match="observation_space.image"):
        load_policy(first.checkpoint, expected_env=RLConfig.from_dict({"env": {**ENV, "obs_width": 48}}).env)
    # metadata that lies about the weights: the strict state-dict load names the problem
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(first.checkpoint) as src, zipfile.ZipFile(forged, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "playmill_rl.json":
                meta = json.loads(data)
                meta["config"]["env"]["yaw_bins_deg"] = [-4.0, 0.0, 4.0]
                meta["action_space"]["nvec"] = [3, 3, 2, 2, 3, 3]
                meta["action_space"]["yaw_bins_deg"] = [-4.0, 0.0, 4.0]
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    with pytest.raises(CheckpointMismatchError, match="weights do not fit"):
        load_policy(forged)
    with pytest.raises(CheckpointError, match="not a zip"):
        load_policy(first.progress_csv)
    # a world whose action space lacks keys the policy presses
    with pytest.raises(ValueError, match="lacks the key"):
        PPOController(BoxWorld(keys=("w", "a", "s", "d")), first.checkpoint)


def test_ppo_controller_records_a_valid_full_resolution_episode(run, tmp_path):
    from unreal_bridge.sandbox import SandboxWorld

    _, first, _ = run
    factory = functools.partial(make_ppo_controller, checkpoint=str(first.checkpoint))
    factory = pickle.loads(pickle.dumps(factory))  # what capture.collect sends to worker processes
    world = SandboxWorld(scene="indoor", width=128, height=72, weather="clear")  # "full" resolution for the test
    try:
        controller = factory(world)
        task = plan_episodes("sandbox", ["indoor"], 1, 30, base_seed=heldout_seeds(1)[0])[0]
        (tmp_path / "episodes").mkdir()
        path = record_episode(world, controller, tmp_path / "episodes", task)
    finally:
        world.close()
    assert validate_episode(path) == []
    meta = json.loads((path / "meta.json").read_text())
    assert meta["width"] == 128 and meta["height"] == 72 and meta["frame_count"] == 30
    assert controller.decisions == 15  # action_repeat 2


def test_evaluate_side_by_side(run):
    _, first, _ = run
    table = evaluate({"ppo": f"ppo:{first.checkpoint}", "random": "random"}, heldout_seeds(1), 40, scenes=["indoor"])
    assert [r.policy for r in table.rows] == ["ppo", "random"]
    for r in table.rows:
        assert r.episodes == 1 and r.frames == 40 and 0 < r.coverage_pct <= 100 and r.collisions_per_1k >= 0
        assert 0 <= r.stuck_pct <= 100 and r.action_entropy_bits >= 0
    assert "coverage %" in table.format() and table.ratio("coverage_pct", "ppo", "random") >= 0
