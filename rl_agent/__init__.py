"""rl_agent: the RL collection agent (Matrix-Game 2.0 recipe): a gymnasium environment over any capture World,
reward terms (collision avoidance, exploration efficiency, trajectory diversity), a collision shield, PPO
training with stable-baselines3, evaluation against baselines, and a policy controller for collection.

Imports only :mod:`capture` and :mod:`unreal_bridge` of playmill's packages. torch and stable-baselines3 load
only where training, evaluation or a policy controller needs them. Importing this package registers the
gymnasium ids ``playmill/Sandbox-v0`` and ``playmill/World-v0``.
"""

from rl_agent.actions import COMPONENTS, ActionCodec, InvalidActionError
from rl_agent.config import (
    PRESETS,
    EnvConfig,
    PPOConfig,
    RewardConfig,
    RLEvalConfig,
    ShieldConfig,
    RLConfig,
    heldout_seeds,
    train_seed_pool,
)
from rl_agent.coverage import CoverageGrid, VisitHistory
from rl_agent.env import PlaymillEnv, RestartOnCrash, make_playmill_env, make_sandbox_world, register_envs
from rl_agent.observation import ObservationBuilder, ObservationError
from rl_agent.rewards import RewardFunction
from rl_agent.shield import CollisionShield

register_envs()


_LAZY = {
    "train_ppo": "rl_agent.train", "TrainResult": "rl_agent.train",
    "evaluate": "rl_agent.evaluation", "EvalTable": "rl_agent.evaluation", "EvalRow": "rl_agent.evaluation",
    "PolicySpec": "rl_agent.evaluation",
    "PPOController": "rl_agent.controller", "make_ppo_controller": "rl_agent.controller",
    "RandomController": "rl_agent.controller", "make_random_controller": "rl_agent.controller",
    "CheckpointMismatchError": "rl_agent.checkpoint", "CheckpointError": "rl_agent.checkpoint",
    "load_policy": "rl_agent.checkpoint", "read_checkpoint_meta": "rl_agent.checkpoint",
    "plot_learning_curves": "rl_agent.plots",
    "train_run": "rl_agent.run", "TrainRun": "rl_agent.run", "evaluate_checkpoint": "rl_agent.run",
    "EvalRun": "rl_agent.run",
}


def __getattr__(name: str):
    # heavy parts (torch, stable-baselines3, matplotlib) load on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rl_agent' has no attribute {name!r}")


__all__ = [
    "COMPONENTS", "ActionCodec", "InvalidActionError",
    "EnvConfig", "PPOConfig", "RewardConfig", "RLEvalConfig", "ShieldConfig", "RLConfig", "heldout_seeds",
    "train_seed_pool", "PRESETS",
    "CoverageGrid", "VisitHistory",
    "PlaymillEnv", "RestartOnCrash", "make_playmill_env", "make_sandbox_world", "register_envs",
    "ObservationBuilder", "ObservationError", "RewardFunction", "CollisionShield",
    "train_ppo", "TrainResult", "train_run", "TrainRun", "evaluate_checkpoint", "EvalRun", "evaluate", "EvalTable", "EvalRow", "PolicySpec", "plot_learning_curves",
    "PPOController", "make_ppo_controller", "RandomController", "make_random_controller",
    "CheckpointMismatchError", "CheckpointError", "load_policy", "read_checkpoint_meta",
]
