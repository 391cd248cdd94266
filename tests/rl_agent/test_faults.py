"""Bad input and faults: invalid actions, NaN observations, a world that crashes mid-episode."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest

from rl_agent import InvalidActionError, ObservationError, PlaymillEnv, RestartOnCrash, make_playmill_env

from .fakeworlds import BOX_ENV, BoxWorld


@pytest.mark.parametrize("action, match", [
    (np.array([3, 0, 0, 0, 0, 0]), r"component 0 \(move\) = 3, allowed 0..2"),
    (np.array([0, 0, 0, 0, 7, 0]), r"component 4 \(yaw\) = 7, allowed 0..6"),
    (np.array([0, 0, 0, -1, 0, 0]), r"component 3 \(jump\)"),
    (np.array([0, 0, 0]), r"shape \(3,\)"),
    (np.array([0.5, 0, 0, 0, 0, 0]), "must be integers"),
    ("forward", "shape"),
])
def test_invalid_actions_raise_a_clear_error(action, match):
    env = PlaymillEnv(BOX_ENV, make_world=BoxWorld)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=match):
        env.step(action)


def test_nan_observation_raises_naming_the_step():
    env = make_playmill_env(BOX_ENV, make_world=functools.partial(lambda s, p: BoxWorld(s, p, nan_at=3)))
    env.reset(seed=0)
    env.step(np.array([1, 0, 0, 0, 3, 1]))  # frames 1-2
    with pytest.raises(ObservationError, match=r"step 3: observation field pos_cm is not finite"):
        env.step(np.array([1, 0, 0, 0, 3, 1]))  # frame 3: the restart wrapper does not hide it


def test_world_crash_restarts_the_world_and_truncates(caplog):
    crashes = {"left": 1}
    made: list[BoxWorld] = []

    def factory(scene, params):
        made.append(BoxWorld(scene, params, crash_at=5, crashes=crashes))
        return made[-1]

    env = make_playmill_env(BOX_ENV, make_world=factory)
    assert isinstance(env, RestartOnCrash)
    env.reset(seed=0)
    with caplog.at_level(logging.WARNING):
        for i in range(10):
            obs, reward, terminated, truncated, info = env.step(np.array([1, 0, 0, 0, 3, 1]))
            if truncated:
                break
    assert info["world_restarted"] is True and "renderer died at frame 5" in info["world_error"]
    assert truncated and not terminated and reward == 0.0
    assert env.observation_space.contains(obs)
    assert "crashed" in caplog.text and "restarting" in caplog.text.lower()
    assert made[0].closed  # the crashed world was closed
    obs, _ = env.reset()
    assert len(made) == 2  # and a new one built
    _, _, _, truncated, info = env.step(np.array([1, 0, 0, 0, 3, 1]))
    assert not info["world_restarted"] and env.restarts == 1


def test_vectorised_env_restarts_a_crashed_world():
    from stable_baselines3.common.vec_env import DummyVecEnv

    crashes = {"left": 1}
    venv = DummyVecEnv([lambda: make_playmill_env(BOX_ENV, make_world=lambda s, p: BoxWorld(s, p, crash_at=3, crashes=crashes))])
    venv.reset()
    flags = []
    for _ in range(25):
        _, _, dones, infos = venv.step(np.array([[1, 0, 0, 0, 3, 1]]))
        flags.append((bool(dones[0]), bool(infos[0].get("world_restarted"))))
    assert (True, True) in flags  # the crash ended an episode, flagged
    assert flags.index((True, True)) < len(flags) - 1  # and the vec env went on stepping a new world


def test_repeated_crashes_give_up():
    env = make_playmill_env(BOX_ENV, make_world=lambda s, p: BoxWorld(s, p, crash_at=1, crashes={"left": 100}))
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="crashed 4 times in a row"):
        for _ in range(10):
            _, _, _, truncated, _ = env.step(np.array([1, 0, 0, 0, 3, 1]))
            if truncated:
                env.reset()


def test_training_in_worker_processes_restarts_a_crashed_world_and_says_so(tmp_path, caplog):
    """The real path: SubprocVecEnv (spawn) workers; the crashed world is rebuilt in its worker, training goes
    on, and the run reports it (warning, TrainResult, episodes.csv)."""
    import csv

    from rl_agent import RLConfig, train_ppo

    from .fakeworlds import crash_once_marker_world

    marker = tmp_path / "crash-once"
    marker.write_text("")
    cfg = RLConfig.from_dict({"env": {**BOX_ENV, "scenes": ["indoor"]},
                                 "ppo": {"n_envs": 1, "vec_env": "subproc", "total_timesteps": 32, "n_steps": 32,
                                         "batch_size": 32, "n_epochs": 1, "cnn_features": 16, "net_arch": [16]}})
    with caplog.at_level(logging.WARNING, logger="rl_agent.train"):
        res = train_ppo(cfg, tmp_path / "run", progress=False,
                        make_world=functools.partial(crash_once_marker_world, marker=str(marker)))
    assert not marker.exists()  # a world in the worker process did crash
    assert res.world_restarts == 1 and res.num_timesteps == 32
    assert "the world crashed and was restarted" in caplog.text and "renderer died at frame 7" in caplog.text
    with open(res.episodes_csv, newline="") as f:
        assert [r["world_restarted"] for r in csv.DictReader(f)].count("1") == 1


def _cartpole():
    import gymnasium as gym

    return gym.make("CartPole-v1")


def test_an_interrupt_between_two_step_replies_stops_the_env_workers_at_once():
    """Regression (CI hang): SIGTERM landed in SubprocVecEnv.step_wait after the first worker's reply was read;
    its close() then waits forever for a second reply from that worker. rl train kills the workers instead."""
    import time

    from stable_baselines3.common.vec_env import SubprocVecEnv

    from rl_agent.train import _kill_vec_env

    venv = SubprocVecEnv([_cartpole, _cartpole], start_method="spawn")
    venv.reset()
    venv.step_async(np.zeros(2, dtype=np.int64))
    venv.remotes[0].recv()  # the interrupt arrives here: worker 0 answered, worker 1 not read
    t0 = time.monotonic()
    _kill_vec_env(venv)
    venv.close()
    assert time.monotonic() - t0 < 10 and venv.closed
    assert not any(p.is_alive() for p in venv.processes)
