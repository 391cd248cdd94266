"""Side-by-side evaluation of collection policies on held-out scene seeds.

:func:`evaluate` runs each policy for ``steps`` frames in each (scene, held-out seed), on the same worlds (same
render size, weather and time of day per seed), and reports per policy:

* ``coverage_pct``: navigable coverage cells visited / navigable cells (the training reward's grid), in %;
* ``collisions_per_1k``: frames in which the agent was blocked, per 1,000 frames;
* ``mean_speed_cm_s``: mean horizontal speed (cm/s);
* ``action_entropy_bits``: entropy (bits) of the episode's actions snapped to the policy's action space
  (:meth:`rl_agent.actions.ActionCodec.encode`; log2(756) = 9.56 bits is the most with the default bins);
* ``stuck_pct``: frames in which a move key was held but the agent moved less than a quarter of the commanded
  distance, in %.

Policies (:class:`PolicySpec`): ``random`` (uniform actions, :class:`rl_agent.controller.RandomController`),
``wander`` (:class:`unreal_bridge.sandbox.WanderController`), ``navmesh``
(``unreal_bridge.navmesh_controller.make_navmesh_controller``, when that module exists) and ``ppo`` (a
checkpoint, without the shield unless ``shield=True``: the policy must avoid collisions by itself).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rl_agent.actions import ActionCodec, move_speed_cm_s
from rl_agent.config import EnvConfig
from rl_agent.coverage import CoverageGrid
from rl_agent.rewards import entropy_bits
from rl_agent.shield import agent_constants

POLICY_KINDS: tuple[str, ...] = ("ppo", "random", "wander", "navmesh")
METRICS: tuple[str, ...] = ("coverage_pct", "collisions_per_1k", "mean_speed_cm_s", "action_entropy_bits", "stuck_pct")
STUCK_FRACTION = 0.25


@dataclass(frozen=True)
class PolicySpec:
    """A policy to evaluate: ``kind`` one of ``ppo``, ``random``, ``wander``, ``navmesh``; ``checkpoint`` for
    ``ppo``; ``shield`` filters the PPO policy's moves with the collision shield; ``deterministic`` takes the
    PPO policy's most likely action."""

    kind: str
    checkpoint: str | None = None
    shield: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"PolicySpec: kind={self.kind!r} is not allowed; expected one of {', '.join(POLICY_KINDS)}")
        if self.kind == "ppo" and not self.checkpoint:
            raise ValueError("PolicySpec: kind 'ppo' needs a checkpoint path")

    @classmethod
    def parse(cls, value: "PolicySpec | str | os.PathLike") -> "PolicySpec":
        """``random``, ``wander``, ``navmesh``, ``ppo:PATH``, ``ppo+shield:PATH`` or a checkpoint path."""
        if isinstance(value, PolicySpec):
            return value
        s = str(value)
        if s in ("random", "wander", "navmesh"):
            return cls(s)
        if s.startswith("ppo+shield:"):
            return cls("ppo", s.split(":", 1)[1], shield=True)
        if s.startswith("ppo:"):
            return cls("ppo", s.split(":", 1)[1])
        if s.endswith(".zip") or Path(s).is_file():
            return cls("ppo", s)
        raise ValueError(f"policy {s!r} is not allowed; expected random, wander, navmesh, ppo:PATH, ppo+shield:PATH "
                         "or a checkpoint .zip")


@dataclass
class EvalRow:
    """One policy's metrics (means over its episodes; see the module docstring)."""

    policy: str
    episodes: int
    frames: int
    coverage_pct: float
    collisions_per_1k: float
    mean_speed_cm_s: float
    action_entropy_bits: float
    stuck_pct: float


@dataclass
class EvalTable:
    """Evaluation results: ``rows`` one per policy (in the order given), ``episodes`` one dict per
    (policy, scene, seed) run, and what was run (``scenes``, ``scene_seeds``, ``steps``)."""

    rows: list[EvalRow]
    episodes: list[dict[str, Any]]
    scenes: list[str]
    scene_seeds: list[int]
    steps: int
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def row(self, policy: str) -> EvalRow:
        for r in self.rows:
            if r.policy == policy:
                return r
        raise KeyError(f"no policy {policy!r} in the table; have {[r.policy for r in self.rows]}")

    def ratio(self, metric: str, policy: str, baseline: str) -> float:
        """``metric`` of ``policy`` / ``metric`` of ``baseline`` (inf when the baseline is 0 and policy > 0)."""
        a, b = getattr(self.row(policy), metric), getattr(self.row(baseline), metric)
        if b == 0:
            return 0.0 if a == 0 else math.inf
        return float(a / b)

    def format(self) -> str:
        """A readable text table."""
        head = (f"{'policy':<16} {'episodes':>8} {'coverage %':>10} {'coll/1k':>8} {'speed cm/s':>10} "
                f"{'entropy bits':>12} {'stuck %':>8}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.policy:<16} {r.episodes:>8d} {r.coverage_pct:>10.2f} {r.collisions_per_1k:>8.1f} "
                         f"{r.mean_speed_cm_s:>10.1f} {r.action_entropy_bits:>12.2f} {r.stuck_pct:>8.1f}")
        lines.append(f"scenes {self.scenes}, held-out seeds {self.scene_seeds}, {self.steps} frames per episode")
        lines.extend(self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], "episodes": self.episodes, "scenes": self.scenes,
                "scene_seeds": self.scene_seeds, "steps": self.steps, "wall_s": self.wall_s, "notes": self.notes}


def navmesh_controller_available() -> bool:
    """Whether ``unreal_bridge.navmesh_controller.make_navmesh_controller`` can be imported."""
    try:
        from unreal_bridge.navmesh_controller import make_navmesh_controller  # noqa: F401
    except Exception:
        return False
    return True


def evaluate(policies: Mapping[str, PolicySpec | str] | Sequence[str], scene_seeds: Sequence[int], steps: int, *,
             scenes: Sequence[str] = ("city", "indoor", "park"), env: EnvConfig | None = None, workers: int = 1,
             progress: bool = False, weather: str | None = "clear", time_of_day: float | None = 12.0) -> EvalTable:
    """Evaluate ``policies`` (``{name: spec}`` or a list of specs, see :class:`PolicySpec`) for ``steps`` frames on
    every (scene, seed) of ``scenes`` x ``scene_seeds``; returns an :class:`EvalTable`.

    ``env``: the world and action-space settings (default: the first PPO checkpoint's, else ``EnvConfig()``);
    ``workers``: processes (spawn) running episodes in parallel; ``weather``/``time_of_day``: the sandbox
    atmosphere of every evaluation world (None draws it from the seed, the same for every policy)."""
    import time

    if isinstance(policies, Mapping):
        specs = {str(k): PolicySpec.parse(v) for k, v in policies.items()}
    else:
        specs = {}
        for v in policies:
            sp = PolicySpec.parse(v)
            name = sp.kind if sp.kind != "ppo" else ("ppo+shield" if sp.shield else "ppo")
            specs[name] = sp
    if not specs:
        raise ValueError("evaluate: no policies given")
    if int(steps) < 1:
        raise ValueError(f"evaluate: steps={steps} must be >= 1")
    if not scene_seeds:
        raise ValueError("evaluate: no scene seeds given")
    for name, sp in specs.items():
        if sp.kind == "navmesh" and not navmesh_controller_available():
            raise ValueError(f"evaluate: policy {name!r}: unreal_bridge.navmesh_controller.make_navmesh_controller is not available")
    if env is None:
        env = EnvConfig()
        for sp in specs.values():
            if sp.kind == "ppo":
                from rl_agent.checkpoint import config_of, read_checkpoint_meta

                env = config_of(read_checkpoint_meta(sp.checkpoint), sp.checkpoint).env
                break
    jobs = [(name, sp, scene, int(seed), int(steps), env, weather, time_of_day)
            for name, sp in specs.items() for scene in scenes for seed in scene_seeds]
    t0 = time.monotonic()
    from tqdm.auto import tqdm

    results: list[dict[str, Any]] = []
    with tqdm(total=len(jobs), desc="rl eval", unit="episode", disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                results.append(run_episode(*job))
                bar.update(1)
        else:
            from capture.lifecycle import running_pool

            with running_pool(workers) as pool:  # workers die with this process
                for res in pool.map(_run_job, jobs):
                    results.append(res)
                    bar.update(1)
    rows = []
    for name in specs:
        eps = [r for r in results if r["policy"] == name]
        rows.append(EvalRow(name, len(eps), int(sum(e["frames"] for e in eps)),
                            *[float(np.nanmean([e[m] for e in eps])) if eps else float("nan") for m in METRICS]))
    return EvalTable(rows, results, list(scenes), [int(s) for s in scene_seeds], int(steps), time.monotonic() - t0)


def _run_job(job: tuple) -> dict[str, Any]:
    return run_episode(*job)


def run_episode(name: str, spec: PolicySpec, scene: str, seed: int, steps: int, env: EnvConfig,
                weather: str | None = "clear", time_of_day: float | None = 12.0) -> dict[str, Any]:
    """One evaluation episode of ``steps`` frames; returns its metrics (see the module docstring)."""
    from rl_agent.env import make_sandbox_world

    params: dict[str, Any] = {}
    rng = np.random.default_rng([int(seed), 0xE7A1])
    params["weather"] = weather if weather is not None else env.weathers[int(rng.integers(len(env.weathers)))]
    params["time_of_day"] = float(time_of_day) if time_of_day is not None else round(float(rng.uniform(*env.time_of_day)), 2)
    world = make_sandbox_world(scene, params, width=env.render_width, height=env.render_height, fps=env.fps,
                               fov_deg=env.fov_deg, npc_density=env.npc_density, vehicle_density=env.vehicle_density)
    try:
        controller = _make_controller(spec, world, env)
        return run_controller(world, controller, seed, steps, env, name=name, scene=scene)
    finally:
        world.close()


def run_controller(world: Any, controller: Any, seed: int, steps: int, env: EnvConfig, *, name: str = "policy",
                   scene: str | None = None) -> dict[str, Any]:
    """Run ``controller`` on ``world`` for ``steps`` frames from ``reset(seed)`` and measure it."""
    codec = ActionCodec(env.yaw_bins_deg, env.pitch_bins_deg)
    walk, sprint, _ = agent_constants(world, env.walk_cm_s, env.sprint_cm_s, env.agent_radius_cm)
    crouch = getattr(getattr(world, "agent_params", None), "crouch_cm_s", None)
    dt = 1.0 / float(world.fps)
    obs = world.reset(seed)
    controller.reset(seed, obs)
    coverage = CoverageGrid.for_world(world, env.coverage_cell_cm)
    coverage.visit(float(obs.pos_cm[0]), float(obs.pos_cm[1]))
    counts: dict[int, int] = {}
    collisions = stuck = 0
    speed_sum = 0.0
    for _ in range(int(steps)):
        action = controller.act(obs)
        prev = obs
        obs = world.step(action)
        coverage.visit(float(obs.pos_cm[0]), float(obs.pos_cm[1]))
        j = codec.joint_index(codec.encode(action))
        counts[j] = counts.get(j, 0) + 1
        collisions += int(obs.collision)
        speed_sum += float(math.hypot(obs.vel_cm_s[0], obs.vel_cm_s[1]))
        commanded = move_speed_cm_s(frozenset(action.keys), walk, sprint, crouch) * dt
        if commanded > 0:
            moved = math.hypot(obs.pos_cm[0] - prev.pos_cm[0], obs.pos_cm[1] - prev.pos_cm[1])
            stuck += int(moved < STUCK_FRACTION * commanded)
    n = max(1, int(steps))
    return {"policy": name, "scene": scene or getattr(world, "scene", None), "seed": int(seed), "frames": int(steps),
            "coverage_pct": 100.0 * coverage.fraction, "coverage_cells": coverage.n_covered,
            "collisions": collisions, "collisions_per_1k": 1000.0 * collisions / n, "mean_speed_cm_s": speed_sum / n,
            "action_entropy_bits": entropy_bits(counts), "stuck_pct": 100.0 * stuck / n,
            "shield_interventions": int(getattr(controller, "interventions", 0))}


def _make_controller(spec: PolicySpec, world: Any, env: EnvConfig) -> Any:
    if spec.kind == "random":
        from rl_agent.controller import RandomController

        return RandomController(world, env)
    if spec.kind == "wander":
        from unreal_bridge.sandbox import WanderController

        return WanderController(world)
    if spec.kind == "navmesh":
        from unreal_bridge.navmesh_controller import make_navmesh_controller

        return make_navmesh_controller(world)
    from rl_agent.controller import PPOController

    return PPOController(world, spec.checkpoint, deterministic=spec.deterministic, shield=spec.shield)
