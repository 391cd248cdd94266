"""The gymnasium environment: both env checkers, registration, spaces, seeding and held-out seeds."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest

import rl_agent
from rl_agent import EnvConfig, PlaymillEnv, heldout_seeds, train_seed_pool
from capture.settings import ConfigError
from rl_agent.config import HELDOUT_SEED_BASE, RLConfig

from .fakeworlds import BOX_ENV, make_box_world

# a small sandbox: indoor renders fastest; clear weather (see the report on fog stacking across resets)
SANDBOX_ENV = {"scenes": ["indoor"], "max_frames": 24, "obs_width": 36, "obs_height": 36, "render_width": 64,
               "render_height": 36, "weathers": ["clear"], "train_seed_pool": 4}


@pytest.fixture(scope="module")
def sandbox_env():
    env = PlaymillEnv(SANDBOX_ENV)
    yield env
    env.close()


def test_gymnasium_check_env(sandbox_env):
    from gymnasium.utils.env_checker import check_env

    check_env(sandbox_env, skip_render_check=True)


def test_sb3_check_env(sandbox_env):
    from stable_baselines3.common.env_checker import check_env

    check_env(sandbox_env, warn=True)


def test_checkers_pass_on_any_world():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = gym.make("playmill/World-v0", make_world=make_box_world, config=BOX_ENV, disable_env_checker=True)
    check_env(env.unwrapped)
    sb3_check(env.unwrapped)
    env.close()


def test_registered_ids_and_spaces():
    assert "playmill/Sandbox-v0" in gym.registry and "playmill/World-v0" in gym.registry
    env = gym.make("playmill/World-v0", make_world=make_box_world, config=BOX_ENV)
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    assert env.action_space.nvec.tolist() == [3, 3, 2, 2, 7, 3]
    assert env.observation_space["image"].shape == (3, 36, 36)
    assert env.observation_space["state"].shape == (11 + 4 * 3,)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert set(info["reward_terms"]) == {"collision", "exploration", "novelty", "action_entropy"}
    assert reward == pytest.approx(sum(info["reward_terms"].values()))
    env.close()


def test_episode_truncates_at_max_frames_with_stats():
    env = PlaymillEnv(BOX_ENV, make_world=make_box_world)
    env.reset(seed=0)
    steps, truncated, total = 0, False, 0.0
    while not truncated:
        _, reward, terminated, truncated, info = env.step(np.array([1, 0, 0, 0, 3, 1]))
        assert not terminated
        steps += 1
        total += reward
    assert steps == BOX_ENV["max_frames"] // BOX_ENV["action_repeat"]
    st = info["episode_stats"]
    assert total == pytest.approx(sum(v for k, v in st.items() if k.startswith("reward/")))
    assert st["frames"] == BOX_ENV["max_frames"] and st["coverage_cells"] >= 2 and 0 < st["coverage"] <= 1
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.array([0, 0, 0, 0, 3, 1]))


def test_scene_seeds_come_from_np_random_and_heldout_seeds_are_disjoint():
    env = PlaymillEnv(BOX_ENV, make_world=make_box_world)
    pool = set(train_seed_pool(EnvConfig().train_seed_pool))
    assert env.scene_seeds and set(env.scene_seeds) == pool
    assert all(s < HELDOUT_SEED_BASE for s in pool)
    held = heldout_seeds(5)
    assert len(set(held)) == 5 and not set(held) & pool
    drawn = [env.reset(seed=s)[1]["scene_seed"] for s in (1, 2, 1)]
    assert drawn[0] == drawn[2] and all(d in pool for d in drawn)
    _, info = env.reset(options={"scene_seed": held[0]})
    assert info["scene_seed"] == held[0]
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(options={"level": 3})


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError) as e:
        RLConfig.from_dict({"env": {"scenes": ["moon"], "yaw_bins_deg": [1, 2]}, "ppo": {"n_envs": 0, "bogus": 1}})
    msg = str(e.value)
    assert "env.scenes[0]" in msg and "env.yaw_bins_deg" in msg and "ppo.n_envs" in msg and "ppo.bogus" in msg
    cfg = RLConfig.from_dict({"env": {"scenes": "park"}, "shield": {"enabled": False}})
    assert cfg.env.scenes == ("park",) and cfg.shield.enabled is False
    assert RLConfig.from_dict(cfg.to_dict()) == cfg


def test_world_without_probes_needs_rays_and_shield_off():
    class NoProbe:
        def __init__(self, scene, params):
            self.inner = make_box_world(scene, params)

        def __getattr__(self, name):
            if name in ("probe_many", "probe"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    env = PlaymillEnv(BOX_ENV, make_world=NoProbe)
    with pytest.raises(ValueError, match="probe"):
        env.reset(seed=0)
    env = PlaymillEnv({**BOX_ENV, "rays": 0}, shield={"enabled": False}, make_world=NoProbe)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (11,)
    env.step(env.action_space.sample())
