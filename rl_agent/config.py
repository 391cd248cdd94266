"""Configuration of the RL collection agent: plain dataclasses, JSON-able, validated with key-naming errors.

Four groups, one per concern; :class:`TrainConfig` holds them all and is what :func:`rl_agent.train_ppo`
takes. Every field has a default that runs on the built-in sandbox on a 2-core machine.

* :class:`EnvConfig`: the world, the observation, the discretised action space, the episode length, and the
  scene seeds (a training pool, disjoint from the held-out evaluation seeds, see :func:`heldout_seeds`);
* :class:`RewardConfig`: the weights of the reward terms (:mod:`rl_agent.rewards`);
* :class:`ShieldConfig`: the collision shield (:mod:`rl_agent.shield`);
* :class:`PPOConfig`: stable-baselines3 PPO hyper-parameters, vectorisation, logging and checkpoints.

``TrainConfig.from_dict(d)`` validates a nested mapping (e.g. the ``rl:`` section of pipeline.yaml) and
raises :class:`RLConfigError` listing every problem at once, each naming its dotted key and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, Mapping

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


class RLConfigError(ValueError):
    """A config with problems; ``problems`` lists one message per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("rl config: " + "; ".join(self.problems))


@dataclass(frozen=True)
class EnvConfig:
    """The gymnasium environment (:class:`rl_agent.env.PlaymillEnv`).

    World (sandbox): ``scenes`` scene families drawn per episode; ``fps`` frames per second of the world;
    ``render_width``/``render_height`` the size the world renders at during training (pixels; default keeps
    the 640x352 collection aspect so the policy sees the same geometry when collecting); ``fov_deg``
    horizontal field of view; ``weathers`` drawn per episode; ``time_of_day`` range in hours;
    ``npc_density``/``vehicle_density`` in [0, 2].

    Observation: ``obs_width``/``obs_height`` the policy's image (the render resized with area averaging,
    channels first); ``rays`` range-finder rays evenly spaced all round the agent (0: none; needs a world with
    ``probe_many``/``probe``), ``ray_max_cm`` their range, ``ray_scale_cm`` the free distance read as 0.5
    (the state holds ``f / (f + ray_scale_cm)``); ``visit_probe_cm`` the distances along each ray at
    which the state vector says whether the coverage cell there was visited this episode;
    ``collision_window`` frames over which the recent-collision rate is measured.

    Actions (:class:`rl_agent.actions.ActionCodec`): ``yaw_bins_deg``/``pitch_bins_deg`` mouse deltas per
    frame (degrees; turn right +, look up +); ``action_repeat`` frames each policy decision is held for.

    Episodes and seeds: ``max_frames`` frames per episode (then ``truncated``); ``train_seed_pool`` scene
    seeds the training episodes draw from (seeds in ``[0, 2**30)``; a finite pool lets trajectory novelty be
    measured against past episodes of the same scene); ``episodes_per_scene_seed`` consecutive episodes in
    one scene seed before drawing a new one (saves level builds). Coverage: ``coverage_cell_cm`` grid cell
    size; ``heading_bins`` for the position-heading novelty bins.

    Fallback agent constants (used when the world does not expose ``agent_params``): ``walk_cm_s``,
    ``sprint_cm_s``, ``agent_radius_cm``.
    """

    scenes: tuple[str, ...] = SANDBOX_SCENES
    fps: float = 25.0
    render_width: int = 116
    render_height: int = 64
    fov_deg: float = 90.0
    weathers: tuple[str, ...] = ("clear", "overcast", "fog")
    time_of_day: tuple[float, float] = (7.0, 19.0)
    npc_density: float = 0.5
    vehicle_density: float = 0.5
    obs_width: int = 64
    obs_height: int = 64
    rays: int = 12
    ray_max_cm: float = 1000.0
    ray_scale_cm: float = 100.0
    visit_probe_cm: tuple[float, ...] = (200.0, 500.0)
    collision_window: int = 25
    yaw_bins_deg: tuple[float, ...] = (-8.0, -4.0, -1.5, 0.0, 1.5, 4.0, 8.0)
    pitch_bins_deg: tuple[float, ...] = (-1.5, 0.0, 1.5)
    action_repeat: int = 2
    max_frames: int = 1000
    train_seed_pool: int = 128
    episodes_per_scene_seed: int = 1
    coverage_cell_cm: float = 200.0
    heading_bins: int = 4
    walk_cm_s: float = 300.0
    sprint_cm_s: float = 600.0
    agent_radius_cm: float = 30.0


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward terms (see :mod:`rl_agent.rewards`); a weight of 0 switches a term off.

    ``collision``: penalty per blocked frame (and per shield intervention when ``shield.penalize``);
    ``exploration``: reward per newly covered coverage cell; ``novelty``: reward on first entering a
    position-heading bin in an episode, scaled by ``1 / sqrt(1 + n)`` where ``n`` counts the agent's past
    episodes in the same scene seed that visited the bin; ``action_entropy``: reward per decision times the
    normalised entropy (0..1) of the last ``entropy_window`` decisions.
    """

    collision: float = 1.0
    exploration: float = 1.0
    novelty: float = 0.2
    action_entropy: float = 0.01
    entropy_window: int = 64


@dataclass(frozen=True)
class ShieldConfig:
    """The collision shield (see :mod:`rl_agent.shield`).

    ``enabled``: filter moves during training; ``lookahead_frames``: the move is checked this many frames
    ahead; ``margin_cm``: extra clearance (cm); ``spread_deg``: side rays at +-spread and +-spread/2 catch
    thin obstacles beside the path; ``include_dynamic``: NPCs and vehicles count as obstacles; ``penalize``:
    an intervention is penalised like a collision, so the policy learns to avoid the move itself;
    ``fallback``: what replaces an unsafe move: ``stop`` (no move; the default: pressing into a wall gains
    nothing, so the policy learns to turn away) or ``slide`` (its safe forward/back or strafe component);
    ``episode_fraction``: the probability that the shield guards a training episode (drawn per episode from
    the env's ``np_random``). Unguarded episodes let the policy meet real contact and learn to get out of it,
    which is the situation it meets when it collects without the shield; a policy trained only behind the
    shield never sees a collision and handles one badly.
    """

    enabled: bool = True
    lookahead_frames: float = 3.0
    margin_cm: float = 15.0
    spread_deg: float = 40.0
    include_dynamic: bool = True
    penalize: bool = True
    fallback: str = "stop"
    episode_fraction: float = 0.5


@dataclass(frozen=True)
class PPOConfig:
    """stable-baselines3 PPO and the training run.

    Budget: ``total_timesteps`` policy decisions over all environments (each is ``action_repeat`` frames);
    ``max_wall_s`` stops earlier after this many seconds (0: no limit). Vectorisation: ``n_envs``
    environments in ``vec_env`` (``subproc``: one process each, spawn start method; ``dummy``: in-process).
    PPO: ``n_steps`` per environment per rollout, ``batch_size``, ``n_epochs``, ``learning_rate``,
    ``gamma``, ``gae_lambda``, ``clip_range``, ``ent_coef``, ``vf_coef``, ``max_grad_norm``;
    ``cnn_features`` the image feature size and ``net_arch`` the hidden layers of the policy and value heads.
    Runtime: ``torch_threads`` for the learner (default 1: the environments have their own processes, and several
    intra-op threads on a busy CPU make small CNN forwards up to 50x slower; 0 leaves torch's default); ``seed``; ``device``.
    Output: ``log_formats`` any of ``csv``, ``tensorboard`` (needs the tensorboard package), ``stdout``;
    ``checkpoint_every`` decisions between checkpoints; ``keep_checkpoints`` how many to keep.
    """

    total_timesteps: int = 200_000
    max_wall_s: float = 0.0
    n_envs: int = 2
    vec_env: str = "subproc"
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.005
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    cnn_features: int = 128
    net_arch: tuple[int, ...] = (128, 128)
    torch_threads: int = 1
    seed: int = 0
    device: str = "cpu"
    log_formats: tuple[str, ...] = ("csv",)
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 3


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`rl_agent.train_ppo` needs."""

    env: EnvConfig = field(default_factory=EnvConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able nested dict (tuples become lists)."""
        return _jsonable(asdict(self))

    @classmethod
    def from_preset(cls, name: str, overrides: Mapping[str, Any] | None = None) -> "TrainConfig":
        """The named preset (:data:`PRESETS`) with ``overrides`` (a nested mapping) merged on top, validated.
        Unknown names raise :class:`RLConfigError` listing the presets."""
        return cls.from_dict(merge_config(preset_dict(name), overrides or {}))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "TrainConfig":
        """Validate a nested mapping (unknown keys and bad values raise :class:`RLConfigError`)."""
        problems: list[str] = []
        d = dict(d or {})
        parts: dict[str, Any] = {}
        for name, klass in (("env", EnvConfig), ("reward", RewardConfig), ("shield", ShieldConfig), ("ppo", PPOConfig)):
            parts[name] = parse_section(klass, d.pop(name, None), name, problems)
        for k in d:
            problems.append(f"{k}: unknown key; allowed keys here: env, reward, shield, ppo")
        cfg = cls(**parts)
        try:
            cfg.validate()
        except RLConfigError as exc:
            problems.extend(exc.problems)
        if problems:
            raise RLConfigError(problems)
        return cfg

    def validate(self) -> None:
        """Check value ranges; raises :class:`RLConfigError` naming every bad key."""
        p: list[str] = []
        e, r, s, o = self.env, self.reward, self.shield, self.ppo
        if not e.scenes:
            p.append("env.scenes: must list at least one scene")
        for i, sc in enumerate(e.scenes):
            if sc not in SANDBOX_SCENES:
                p.append(f"env.scenes[{i}]: {sc!r} is not allowed; expected one of {', '.join(SANDBOX_SCENES)}")
        for i, w in enumerate(e.weathers):
            if w not in SANDBOX_WEATHERS:
                p.append(f"env.weathers[{i}]: {w!r} is not allowed; expected one of {', '.join(SANDBOX_WEATHERS)}")
        if not e.weathers:
            p.append("env.weathers: must list at least one weather")
        _num(p, "env.fps", e.fps, 1.0, 240.0)
        for k in ("render_width", "render_height", "obs_width", "obs_height"):
            _int(p, f"env.{k}", getattr(e, k), 16, 4096)
        if e.obs_width < 36 or e.obs_height < 36:
            p.append(f"env.obs_width/obs_height: {e.obs_width}x{e.obs_height} is too small for the CNN; expected >= 36x36")
        _num(p, "env.fov_deg", e.fov_deg, 20.0, 150.0)
        if len(e.time_of_day) != 2 or not 0.0 <= e.time_of_day[0] <= e.time_of_day[1] <= 24.0:
            p.append(f"env.time_of_day: {list(e.time_of_day)!r} is not allowed; "
                     "expected [min, max] hours with 0 <= min <= max <= 24")
        _num(p, "env.npc_density", e.npc_density, 0.0, 2.0)
        _num(p, "env.vehicle_density", e.vehicle_density, 0.0, 2.0)
        _int(p, "env.rays", e.rays, 0, 64)
        _num(p, "env.ray_max_cm", e.ray_max_cm, 50.0, 1e5)
        _num(p, "env.ray_scale_cm", e.ray_scale_cm, 1.0, 1e5)
        for i, v in enumerate(e.visit_probe_cm):
            _num(p, f"env.visit_probe_cm[{i}]", v, 1.0, 1e5)
        _int(p, "env.collision_window", e.collision_window, 1, 10_000)
        _bins(p, "env.yaw_bins_deg", e.yaw_bins_deg, 45.0)
        _bins(p, "env.pitch_bins_deg", e.pitch_bins_deg, 20.0)
        _int(p, "env.action_repeat", e.action_repeat, 1, 32)
        _int(p, "env.max_frames", e.max_frames, 2, 10_000_000)
        _int(p, "env.train_seed_pool", e.train_seed_pool, 1, HELDOUT_SEED_BASE)
        _int(p, "env.episodes_per_scene_seed", e.episodes_per_scene_seed, 1, 1_000_000)
        _num(p, "env.coverage_cell_cm", e.coverage_cell_cm, 10.0, 10_000.0)
        _int(p, "env.heading_bins", e.heading_bins, 1, 360)
        _num(p, "env.walk_cm_s", e.walk_cm_s, 1.0, 1e5)
        _num(p, "env.sprint_cm_s", e.sprint_cm_s, 1.0, 1e5)
        _num(p, "env.agent_radius_cm", e.agent_radius_cm, 0.0, 1e4)
        for k in ("collision", "exploration", "novelty", "action_entropy"):
            _num(p, f"reward.{k}", getattr(r, k), 0.0, 1e6)
        _int(p, "reward.entropy_window", r.entropy_window, 1, 100_000)
        _num(p, "shield.lookahead_frames", s.lookahead_frames, 0.0, 100.0)
        _num(p, "shield.margin_cm", s.margin_cm, 0.0, 1e4)
        _num(p, "shield.spread_deg", s.spread_deg, 0.0, 89.0)
        _num(p, "shield.episode_fraction", s.episode_fraction, 0.0, 1.0)
        if s.fallback not in SHIELD_FALLBACKS:
            p.append(f"shield.fallback: {s.fallback!r} is not allowed; expected one of {', '.join(SHIELD_FALLBACKS)}")
        _int(p, "ppo.total_timesteps", o.total_timesteps, 1, 10**12)
        _num(p, "ppo.max_wall_s", o.max_wall_s, 0.0, 1e9)
        _int(p, "ppo.n_envs", o.n_envs, 1, 1024)
        if o.vec_env not in VEC_ENVS:
            p.append(f"ppo.vec_env: {o.vec_env!r} is not allowed; expected one of {', '.join(VEC_ENVS)}")
        _int(p, "ppo.n_steps", o.n_steps, 2, 10**7)
        _int(p, "ppo.batch_size", o.batch_size, 2, 10**7)
        if isinstance(o.n_steps, int) and isinstance(o.n_envs, int) and isinstance(o.batch_size, int) \
                and o.batch_size > o.n_steps * o.n_envs:
            p.append(f"ppo.batch_size: {o.batch_size} is larger than a rollout (n_steps * n_envs = {o.n_steps * o.n_envs})")
        _int(p, "ppo.n_epochs", o.n_epochs, 1, 1000)
        _num(p, "ppo.learning_rate", o.learning_rate, 0.0, 1.0, open_lo=True)
        _num(p, "ppo.gamma", o.gamma, 0.0, 1.0)
        _num(p, "ppo.gae_lambda", o.gae_lambda, 0.0, 1.0)
        _num(p, "ppo.clip_range", o.clip_range, 0.0, 10.0, open_lo=True)
        _num(p, "ppo.ent_coef", o.ent_coef, 0.0, 10.0)
        _num(p, "ppo.vf_coef", o.vf_coef, 0.0, 10.0)
        _num(p, "ppo.max_grad_norm", o.max_grad_norm, 0.0, 1e6, open_lo=True)
        _int(p, "ppo.cnn_features", o.cnn_features, 8, 4096)
        if not o.net_arch:
            p.append("ppo.net_arch: must list at least one layer size")
        for i, n in enumerate(o.net_arch):
            _int(p, f"ppo.net_arch[{i}]", n, 1, 65536)
        _int(p, "ppo.torch_threads", o.torch_threads, 0, 1024)
        _int(p, "ppo.seed", o.seed, 0, 2**31 - 1)
        if o.device not in ("cpu", "cuda", "auto") and not str(o.device).startswith("cuda:"):
            p.append(f"ppo.device: {o.device!r} is not allowed; expected cpu, cuda, cuda:N or auto")
        for i, f in enumerate(o.log_formats):
            if f not in LOG_FORMATS:
                p.append(f"ppo.log_formats[{i}]: {f!r} is not allowed; expected one of {', '.join(LOG_FORMATS)}")
        _int(p, "ppo.checkpoint_every", o.checkpoint_every, 1, 10**12)
        _int(p, "ppo.keep_checkpoints", o.keep_checkpoints, 1, 10_000)
        if p:
            raise RLConfigError(p)


#: Named starting points of a training config (nested mappings in :meth:`TrainConfig.from_dict` form).
#: ``default``: the defaults (200,000 decisions, all scene families, 2 environment processes; about 2 h on
#: 2 busy cores); ``smoke``: a token run of 512 decisions in one scene (a pipeline check in seconds, not a
#: trained agent); ``bench``: what ``bench/rl.py`` trains, a 30-minute wall-clock budget with settings that learn
#: faster in it: each decision held 4 frames, no pitch (jump and yaw stay), exploration reward x2, learning rate
#: 5e-4 and 8 epochs per rollout (the default settings left the policy near-uniform after 30 minutes).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "smoke": {"env": {"scenes": ["indoor"], "max_frames": 256},
              "ppo": {"total_timesteps": 512, "n_steps": 128, "batch_size": 128, "n_epochs": 2, "checkpoint_every": 256}},
    "bench": {"env": {"action_repeat": 4, "pitch_bins_deg": [0.0]}, "reward": {"exploration": 2.0},
              "ppo": {"total_timesteps": 10_000_000, "max_wall_s": 1800.0, "checkpoint_every": 20_000,
                      "learning_rate": 5e-4, "n_epochs": 8}},
}


def preset_dict(name: str) -> dict[str, Any]:
    """A copy of preset ``name``'s nested mapping; :class:`RLConfigError` naming the presets when unknown."""
    import copy

    if name not in PRESETS:
        raise RLConfigError([f"preset: {name!r} is not a preset; expected one of {', '.join(PRESETS)}"])
    return copy.deepcopy(PRESETS[name])


def merge_config(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in: nested mappings merge key by key, anything else in ``over`` replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_config(out[k], v)
        else:
            out[k] = v
    return out


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


# --- helpers ----------------------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def parse_section(klass: type, value: Any, prefix: str, problems: list[str]) -> Any:
    """Build the dataclass ``klass`` from a mapping (or return an instance as is), appending a message to
    ``problems`` for every unknown key or value of the wrong type (``prefix`` names the section)."""
    if value is None:
        return klass()
    if is_dataclass(value) and isinstance(value, klass):
        return value
    if not isinstance(value, Mapping):
        problems.append(f"{prefix}: {value!r} is not allowed; expected a mapping")
        return klass()
    known = {f.name: f for f in fields(klass)}
    kwargs: dict[str, Any] = {}
    for k, v in value.items():
        if k not in known:
            problems.append(f"{prefix}.{k}: unknown key; allowed keys here: {', '.join(known)}")
            continue
        default = None if known[k].default is MISSING else known[k].default
        if isinstance(default, tuple):
            if isinstance(v, (str, int, float)) and not isinstance(v, bool) and k in ("scenes", "weathers", "log_formats"):
                v = [v]
            if not isinstance(v, (list, tuple)):
                problems.append(f"{prefix}.{k}: {v!r} is not allowed; expected a list")
                continue
            v = tuple(v)
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                problems.append(f"{prefix}.{k}: {v!r} is not allowed; expected true or false")
                continue
        elif isinstance(default, int):
            if isinstance(v, bool) or not isinstance(v, int):
                if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
                    v = int(v)
                else:
                    problems.append(f"{prefix}.{k}: {v!r} is not allowed; expected an integer")
                    continue
        elif isinstance(default, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                problems.append(f"{prefix}.{k}: {v!r} is not allowed; expected a number")
                continue
            v = float(v)
        elif isinstance(default, str):
            if not isinstance(v, str):
                problems.append(f"{prefix}.{k}: {v!r} is not allowed; expected a string")
                continue
        kwargs[k] = v
    return klass(**kwargs)


def _num(p: list[str], key: str, v: Any, lo: float, hi: float, *, open_lo: bool = False) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok:
        ok = (v > lo if open_lo else v >= lo) and v <= hi
    if not ok:
        p.append(f"{key}: {v!r} is not allowed; expected a number in {'(' if open_lo else '['}{lo}, {hi}]")


def _int(p: list[str], key: str, v: Any, lo: int, hi: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        p.append(f"{key}: {v!r} is not allowed; expected an integer in [{lo}, {hi}]")


def _bins(p: list[str], key: str, bins: tuple[float, ...], limit: float) -> None:
    if len(bins) < 1:
        p.append(f"{key}: must list at least one value")
        return
    vals = []
    for i, b in enumerate(bins):
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or abs(b) > limit:
            p.append(f"{key}[{i}]: {b!r} is not allowed; expected a number in [-{limit}, {limit}] (degrees per frame)")
        else:
            vals.append(float(b))
    if len(vals) == len(bins) and (sorted(vals) != vals or len(set(vals)) != len(vals)):
        p.append(f"{key}: {list(bins)!r} must be strictly increasing")
    if len(vals) == len(bins) and 0.0 not in vals:
        p.append(f"{key}: {list(bins)!r} must include 0 (no mouse movement)")
