"""Configuration of the RL collection agent: the ``rl:`` section of pipeline.yaml.

Five groups, one per concern; :class:`RLConfig` holds them all and is what :func:`rl_agent.train_ppo` takes.
Every key is declared once below with its type, default, range and doc (:mod:`capture.settings`); every
default runs on the built-in sandbox on a 2-core machine. ``preset`` (:data:`PRESETS`) fills the keys the
section does not set.

* :class:`EnvConfig`: the world, the observation, the discretised action space, the episode length, and the
  scene seeds (a training pool, disjoint from the held-out evaluation seeds, see :func:`heldout_seeds`);
* :class:`RewardConfig`: the weights of the reward terms (:mod:`rl_agent.rewards`);
* :class:`ShieldConfig`: the collision shield (:mod:`rl_agent.shield`);
* :class:`PPOConfig`: stable-baselines3 PPO hyper-parameters, vectorisation, logging and checkpoints;
* :class:`RLEvalConfig`: ``playmill rl eval``, the comparison with baselines on held-out seeds.

``RLConfig.from_dict(d)`` checks a nested mapping and raises :class:`capture.settings.ConfigError` listing every
problem at once, each naming its dotted key and what is allowed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, model_validator
from pydantic_core import ArgsKwargs

from capture.settings import Field, Invalid, merge, settings

#: Scene families of the sandbox.
SANDBOX_SCENES: tuple[str, ...] = ("city", "indoor", "park")
#: Sandbox weathers the environment can draw.
SANDBOX_WEATHERS: tuple[str, ...] = ("clear", "overcast", "fog", "rain")
#: Training scene seeds are drawn below this value; held-out evaluation seeds at or above it (disjoint sets).
HELDOUT_SEED_BASE: int = 1 << 30
#: Log formats train_ppo can write.
LOG_FORMATS: tuple[str, ...] = ("csv", "tensorboard", "stdout")
#: What the shield puts in place of an unsafe move.
SHIELD_FALLBACKS: tuple[str, ...] = ("stop", "slide")
#: Vectorised environment kinds.
VEC_ENVS: tuple[str, ...] = ("subproc", "dummy")
#: Policies ``rl eval`` can compare.
EVAL_POLICIES: tuple[str, ...] = ("ppo", "ppo+shield", "random", "wander", "navmesh")

Scene = Literal[SANDBOX_SCENES]
Weather = Literal[SANDBOX_WEATHERS]


def _increasing_with_zero(bins: tuple[float, ...]) -> tuple[float, ...]:
    if sorted(bins) != list(bins) or len(set(bins)) != len(bins):
        raise Invalid("", list(bins), "strictly increasing values")
    if 0.0 not in bins:
        raise Invalid("", list(bins), "a list that includes 0 (no mouse movement)")
    return bins


def _hours_range(v: tuple[float, float]) -> tuple[float, float]:
    if not 0.0 <= v[0] <= v[1] <= 24.0:
        raise Invalid("", list(v), "[min, max] hours with 0 <= min <= max <= 24")
    return v


#: Mouse bins: degrees per frame, strictly increasing, with 0 (no movement).
YawBins = Annotated[tuple[Annotated[float, Field(ge=-45, le=45)], ...], AfterValidator(_increasing_with_zero)]
PitchBins = Annotated[tuple[Annotated[float, Field(ge=-20, le=20)], ...], AfterValidator(_increasing_with_zero)]


@settings
class EnvConfig:
    """The gymnasium environment (:class:`rl_agent.env.PlaymillEnv`): the world, the observation (the render
    resized with area averaging, channels first, plus a state vector of range rays, visited cells ahead and
    recent collisions), the discretised actions (:class:`rl_agent.actions.ActionCodec`), episodes and scene
    seeds, coverage, and the agent constants used when the world does not expose ``agent_params``."""

    scenes: tuple[Scene, ...] = Field(SANDBOX_SCENES, min_length=1, description="scene families drawn per episode")
    fps: float = Field(25.0, ge=1, le=240, description="frames per second of the world")
    render_width: int = Field(116, ge=16, le=4096, description="render width during training, px (keeps the 640x352 aspect)")
    render_height: int = Field(64, ge=16, le=4096, description="render height during training, px")
    fov_deg: float = Field(90.0, ge=20, le=150, description="horizontal field of view, degrees")
    weathers: tuple[Weather, ...] = Field(("clear", "overcast", "fog"), min_length=1, description="weathers drawn per episode")
    time_of_day: Annotated[tuple[float, float], AfterValidator(_hours_range)] = Field((7.0, 19.0), description="[min, max] hours drawn per episode, 0 <= min <= max <= 24")
    npc_density: float = Field(0.5, ge=0, le=2, description="NPC density multiplier")
    vehicle_density: float = Field(0.5, ge=0, le=2, description="vehicle density multiplier")
    obs_width: int = Field(64, ge=36, le=4096, description="the policy's image width, px (the CNN needs >= 36)")
    obs_height: int = Field(64, ge=36, le=4096, description="the policy's image height, px")
    rays: int = Field(12, ge=0, le=64, description="range-finder rays all round the agent (0: none)")
    ray_max_cm: float = Field(1000.0, ge=50, le=1e5, description="range of the rays, cm")
    ray_scale_cm: float = Field(100.0, ge=1, le=1e5, description="free distance read as 0.5 in the state, cm")
    visit_probe_cm: tuple[Annotated[float, Field(ge=1, le=1e5)], ...] = Field((200.0, 500.0), description="distances along each ray where visited cells are probed, cm")
    collision_window: int = Field(25, ge=1, le=10_000, description="frames of the recent-collision rate")
    yaw_bins_deg: YawBins = Field((-8.0, -4.0, -1.5, 0.0, 1.5, 4.0, 8.0), min_length=1,
                                            description="mouse yaw per frame, degrees, increasing, with 0 (turn right +)")
    pitch_bins_deg: PitchBins = Field((-1.5, 0.0, 1.5), min_length=1,
                                              description="mouse pitch per frame, degrees, increasing, with 0 (look up +)")
    action_repeat: int = Field(2, ge=1, le=32, description="frames each policy decision is held for")
    max_frames: int = Field(1000, ge=2, le=10_000_000, description="frames per episode, then truncated")
    train_seed_pool: int = Field(128, ge=1, le=HELDOUT_SEED_BASE, description="scene seeds the training episodes draw from")
    episodes_per_scene_seed: int = Field(1, ge=1, le=1_000_000, description="consecutive episodes in one scene seed")
    coverage_cell_cm: float = Field(200.0, ge=10, le=10_000, description="coverage grid cell, cm")
    heading_bins: int = Field(4, ge=1, le=360, description="heading bins of the position-heading novelty")
    walk_cm_s: float = Field(300.0, ge=1, le=1e5, description="walking speed when the world does not say, cm/s")
    sprint_cm_s: float = Field(600.0, ge=1, le=1e5, description="sprinting speed when the world does not say, cm/s")
    agent_radius_cm: float = Field(30.0, ge=0, le=1e4, description="agent radius when the world does not say, cm")


@settings
class RewardConfig:
    """Weights of the reward terms (see :mod:`rl_agent.rewards`); a weight of 0 switches a term off. ``novelty``
    rewards first entering a position-heading bin in an episode, scaled by ``1 / sqrt(1 + n)`` with ``n`` the
    agent's past episodes in the same scene seed that visited it; ``action_entropy`` rewards each decision with
    the normalised entropy (0..1) of the last ``entropy_window`` decisions."""

    collision: float = Field(1.0, ge=0, le=1e6, description="penalty per blocked frame (and shield intervention when penalised)")
    exploration: float = Field(1.0, ge=0, le=1e6, description="reward per newly covered coverage cell")
    novelty: float = Field(0.2, ge=0, le=1e6, description="reward on first entering a position-heading bin")
    action_entropy: float = Field(0.01, ge=0, le=1e6, description="reward per decision times the recent action entropy")
    entropy_window: int = Field(64, ge=1, le=100_000, description="decisions the action entropy is measured over")


@settings
class ShieldConfig:
    """The collision shield (see :mod:`rl_agent.shield`). Unguarded episodes (``episode_fraction`` < 1) let the
    policy meet real contact and learn to get out of it, which it meets when it collects without the shield;
    a policy trained only behind the shield never sees a collision and handles one badly."""

    enabled: bool = Field(True, description="filter moves during training")
    lookahead_frames: float = Field(3.0, ge=0, le=100, description="a move is checked this many frames ahead")
    margin_cm: float = Field(15.0, ge=0, le=1e4, description="extra clearance, cm")
    spread_deg: float = Field(40.0, ge=0, le=89, description="side rays at +-spread and +-spread/2 catch thin obstacles, degrees")
    include_dynamic: bool = Field(True, description="NPCs and vehicles count as obstacles")
    penalize: bool = Field(True, description="an intervention is penalised like a collision")
    fallback: Literal[SHIELD_FALLBACKS] = Field("stop", description="what replaces an unsafe move: stop, or slide along its safe component")
    episode_fraction: float = Field(0.5, ge=0, le=1, description="probability that the shield guards a training episode")


@settings
class PPOConfig:
    """stable-baselines3 PPO and the training run: the budget (decisions, each ``action_repeat`` frames, and wall
    clock), vectorisation, the hyper-parameters, the network (``cnn_features`` CNN features, ``net_arch`` MLP
    layers shared by policy and value), logging and checkpoints."""

    total_timesteps: int = Field(200_000, ge=1, le=10**12, description="policy decisions over all environments")
    max_wall_s: float = Field(0.0, ge=0, le=1e9, description="stop after this many seconds (0: no limit)")
    n_envs: int = Field(2, ge=1, le=1024, description="environments")
    vec_env: Literal[VEC_ENVS] = Field("subproc", description="subproc: one process per environment (spawn); dummy: in-process")
    n_steps: int = Field(256, ge=2, le=10**7, description="decisions per environment per rollout")
    batch_size: int = Field(256, ge=2, le=10**7, description="minibatch size, <= n_steps * n_envs")
    n_epochs: int = Field(4, ge=1, le=1000, description="passes over each rollout")
    learning_rate: float = Field(3e-4, gt=0, le=1, description="Adam learning rate")
    gamma: float = Field(0.99, ge=0, le=1, description="discount factor")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    clip_range: float = Field(0.2, gt=0, le=10, description="PPO clip range")
    ent_coef: float = Field(0.005, ge=0, le=10, description="entropy bonus coefficient")
    vf_coef: float = Field(0.5, ge=0, le=10, description="value loss coefficient")
    max_grad_norm: float = Field(0.5, gt=0, le=1e6, description="gradient clipping norm")
    cnn_features: int = Field(128, ge=8, le=4096, description="features of the image CNN")
    net_arch: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field((128, 128), min_length=1, description="MLP layer sizes shared by policy and value")
    torch_threads: int = Field(1, ge=0, le=1024, description="intra-op threads of the learner (0: torch's default)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the training seed pool and the policy's init")
    device: str = Field("cpu", pattern=r"^(cpu|cuda|auto|cuda:\d+)$", description="cpu, cuda, cuda:N or auto")
    log_formats: tuple[Literal[LOG_FORMATS], ...] = Field(("csv",), description="csv, tensorboard (needs the package), stdout")
    checkpoint_every: int = Field(10_000, ge=1, le=10**12, description="decisions between checkpoints")
    keep_checkpoints: int = Field(3, ge=1, le=10_000, description="newest checkpoints kept")

    @model_validator(mode="after")
    def _check(self) -> "PPOConfig":
        if self.batch_size > self.n_steps * self.n_envs:
            raise Invalid("batch_size", self.batch_size,
                          f"at most a rollout, n_steps * n_envs = {self.n_steps * self.n_envs}")
        return self


@settings
class RLEvalConfig:
    """``playmill rl eval``: every policy runs ``steps`` frames in the same worlds, ``seeds`` held-out scene
    seeds (never trained on) per scene, at one weather and time of day."""

    policies: tuple[Literal[EVAL_POLICIES], ...] | None = Field(
        None, min_length=1, description="policies to compare (null: ppo, random, wander and navmesh when available)")
    shield: bool = Field(False, description="also evaluate ppo+shield (the policy behind the collision shield)")
    seeds: int = Field(3, ge=1, le=10_000, description="held-out scene seeds per scene")
    seed_base: int = Field(0, ge=0, description="offset into the held-out seeds")
    scenes: tuple[Scene, ...] | None = Field(None, min_length=1, description="scene families (null: the checkpoint's)")
    steps: int = Field(1000, ge=1, description="frames per episode")
    workers: int = Field(2, ge=1, le=256, description="parallel worker processes")
    deterministic: bool = Field(False, description="PPO takes its most likely action instead of sampling")
    weather: Weather = Field("clear", description="weather of every world")
    time_of_day: float = Field(12.0, ge=0, le=24, description="hours")


#: Named starting points of a config (nested mappings in :class:`RLConfig` form): ``default`` the defaults
#: (200,000 decisions, all scene families, 2 environment processes; about 2 h on 2 busy cores); ``smoke`` a
#: token run of 512 decisions in one scene (a pipeline check in seconds, not a trained agent); ``bench`` what
#: ``bench/rl.py`` trains, a 30-minute wall-clock budget with settings that learn faster in it: each decision
#: held 4 frames, no pitch (jump and yaw stay), exploration reward x2, learning rate 5e-4 and 8 epochs per
#: rollout (the default settings left the policy near-uniform after 30 minutes).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "smoke": {"env": {"scenes": ["indoor"], "max_frames": 256},
              "ppo": {"total_timesteps": 512, "n_steps": 128, "batch_size": 128, "n_epochs": 2, "checkpoint_every": 256}},
    "bench": {"env": {"action_repeat": 4, "pitch_bins_deg": [0.0]}, "reward": {"exploration": 2.0},
              "ppo": {"total_timesteps": 10_000_000, "max_wall_s": 1800.0, "checkpoint_every": 20_000,
                      "learning_rate": 5e-4, "n_epochs": 8}},
}


@settings
class RLConfig:
    """Everything :func:`rl_agent.train_ppo` and ``rl eval`` need: the ``rl:`` section of pipeline.yaml."""

    preset: Literal[tuple(PRESETS)] = Field("default", description="starting point for the keys not set: default, smoke (seconds), bench (30 min)")
    env: EnvConfig = Field(default_factory=EnvConfig, description="the environment")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="reward weights")
    shield: ShieldConfig = Field(default_factory=ShieldConfig, description="the collision shield")
    ppo: PPOConfig = Field(default_factory=PPOConfig, description="PPO and the training run")
    eval: RLEvalConfig = Field(default_factory=RLEvalConfig, description="playmill rl eval")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """The preset's keys under the given ones (a given key wins)."""
        if isinstance(data, ArgsKwargs):
            kwargs = dict(data.kwargs or {})
            return ArgsKwargs(data.args, _with_preset(kwargs))
        return _with_preset(data) if isinstance(data, Mapping) else data


def _with_preset(data: Mapping[str, Any]) -> dict[str, Any]:
    name = data.get("preset", "default")
    return merge(PRESETS[name], data) if isinstance(name, str) and name in PRESETS else dict(data)


def heldout_seeds(n: int, base: int = 0) -> list[int]:
    """``n`` evaluation scene seeds, disjoint from every training seed (they are ``>= 2**30``)."""
    if n < 0:
        raise ValueError(f"heldout_seeds: n={n} must be >= 0")
    return [HELDOUT_SEED_BASE + int(base) + i for i in range(int(n))]


def train_seed_pool(size: int, seed: int = 0) -> list[int]:
    """The training scene seeds: ``size`` distinct seeds in ``[0, 2**30)`` derived from ``seed``."""
    import numpy as np

    rng = np.random.default_rng([int(seed), 0x5EED])
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < size:
        s = int(rng.integers(0, HELDOUT_SEED_BASE))
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
