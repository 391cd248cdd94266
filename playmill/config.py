"""pipeline.yaml: its schema, defaults and validation.

The whole file is validated before any work starts. Every problem is reported at once, each naming the key
(dotted path), the bad value and what is allowed, e.g.::

    pipeline.yaml: collect.fps: -3 is not allowed; expected a number > 0 (frames per second of the video)

Relative paths (``workdir``) are resolved against the directory of the config file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

STAGES = ("rl", "collect", "curate", "train", "distill", "generate")  # the order they run in
SOURCES = ("sandbox", "unrealcv")
SANDBOX_SCENES = ("city", "indoor", "park")
SANDBOX_WEATHER = ("clear", "overcast", "fog")
CONTROLLERS = ("navmesh", "wander", "ppo")
GENERATE_MODELS = ("base", "student")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


class ConfigError(ValueError):
    """A config with problems; ``problems`` lists one message per bad key."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True)
class Choice:
    """A per-episode parameter drawn uniformly from ``values``."""

    values: tuple


@dataclass(frozen=True)
class Range:
    """A per-episode numeric parameter drawn uniformly from ``[min, max]``."""

    min: float
    max: float


Param = Any  # a scalar, a Choice or a Range


@dataclass
class SandboxConfig:
    """Sandbox world parameters; each may be a value, a list to choose from per episode, or {min, max}."""

    weather: Param = Choice(SANDBOX_WEATHER)
    time_of_day: Param = Range(7.0, 19.0)
    npc_density: Param = 0.5
    vehicle_density: Param = 0.5
    fov_deg: float = 90.0


@dataclass
class CollectConfig:
    source: str = "sandbox"
    scenes: list[str] = field(default_factory=lambda: ["city", "park"])
    episodes_per_scene: int = 4
    frames: int = 300
    fps: float = 25.0
    width: int = 640
    height: int = 352
    workers: int = 2
    controller: str = "navmesh"
    preset: str = "ultrafast"  # x264 preset of the raw episodes (curation re-encodes clips)
    crf: int = 18
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    unrealcv: dict = field(default_factory=dict)  # UnrealCVConfig fields (host, port, navmesh, ...); scenes = levels
    ppo_checkpoint: Path | None = None  # controller ppo: the policy .zip; None = <workdir>/models/rl/policy.zip
    ppo_deterministic: bool = False  # controller ppo: the policy's most likely action instead of a sample
    ppo_shield: bool = True  # controller ppo: the collision shield filters the policy's moves while recording


@dataclass
class RLSection:
    """The ``rl:`` section: :class:`rl_agent.TrainConfig` as a nested mapping (env, reward, shield, ppo)."""

    settings: dict = field(default_factory=dict)


@dataclass
class TrainSection:
    """The ``train:`` section: a preset of :func:`model.train.get_train_config` plus overrides of its keys.

    ``dataset``: the shards to train on; ``auto`` uses the curate stage's dataset when its clips have the
    model's size and frame count, else curates the episodes again at the model's size into
    ``shards/<curate.dataset>-<width>x<height>x<frames>``."""

    preset: str = "tiny"
    dataset: str = "auto"
    settings: dict = field(default_factory=dict)


@dataclass
class DistillSection:
    """The ``distill:`` section: the presets and overrides of the three distillation steps (model/distill)."""

    preset: str = "tiny"
    ode_pairs: dict = field(default_factory=dict)
    init: dict = field(default_factory=dict)
    dmd: dict = field(default_factory=dict)


@dataclass
class GenerateSection:
    """The ``generate:`` section: sample videos from the trained models, conditioned on the first frame and the
    recorded actions of an episode (one the models were trained on, unless more were recorded since).
    ``models``: which (default: every one trained in the workdir: base, student); ``frames``: video frames of the
    base sample (default: its training length) and of the streaming student (``student_frames``); ``steps``:
    Euler steps of the base model; ``episode``: the episode id to take the first frame and actions from
    (default: the last one)."""

    models: list[str] | None = None
    frames: int | None = None
    student_frames: int = 77
    steps: int = 30
    seed: int = 0
    episode: str | None = None


@dataclass
class PipelineConfig:
    workdir: Path = Path("runs/default")
    seed: int = 0
    stages: list[str] = field(default_factory=lambda: ["collect"])
    collect: CollectConfig = field(default_factory=CollectConfig)
    curate: Any = None  # curation.config.CurateSection (validated by curation's own parser)
    rl: RLSection = field(default_factory=RLSection)
    train: TrainSection = field(default_factory=TrainSection)
    distill: DistillSection = field(default_factory=DistillSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    source: str = "<defaults>"

    def __post_init__(self) -> None:
        if self.curate is None:
            from curation.config import CurateSection

            self.curate = CurateSection()

    @property
    def episodes_dir(self) -> Path:
        return self.workdir / "episodes"

    @property
    def shards_dir(self) -> Path:
        return self.workdir / "shards" / self.curate.dataset

    @property
    def models_dir(self) -> Path:
        """``<workdir>/models``: rl/ (PPO agent), base/ (base world model), ode_pairs/, student_init/ and student/
        (the distilled causal student)."""
        return self.workdir / "models"


# --- validation ----------------------------------------------------------------------------------------


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, key: str, value: Any, expected: str) -> None:
        self.problems.append(f"{key or '(top level)'}: {value!r} is not allowed; expected {expected}")

    def mapping(self, key: str, value: Any, allowed: tuple[str, ...]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.bad(key, value, "a mapping of " + ", ".join(allowed))
            return {}
        for k in value:
            if k not in allowed:
                where = f"{key}.{k}" if key else str(k)
                self.problems.append(f"{where}: unknown key; allowed keys here: {', '.join(allowed)}")
        return dict(value)

    def integer(self, key: str, value: Any, lo: int, hi: int | None, what: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            self.bad(key, value, f"an integer {rng} ({what})")
            return None
        return value

    def number(self, key: str, value: Any, lo: float, hi: float | None, what: str, *, open_lo: bool = False) -> float | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            ok = (value > lo if open_lo else value >= lo) and (hi is None or value <= hi)
        if not ok:
            rel = ">" if open_lo else ">="
            rng = f"a number {rel} {lo}" if hi is None else f"a number in {'(' if open_lo else '['}{lo}, {hi}]"
            self.bad(key, value, f"{rng} ({what})")
            return None
        return float(value)

    def choice(self, key: str, value: Any, allowed: tuple[str, ...]) -> str | None:
        if value not in allowed:
            self.bad(key, value, "one of " + ", ".join(allowed))
            return None
        return value

    def names(self, key: str, value: Any, allowed: tuple[str, ...]) -> list[str] | None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.bad(key, value, "a non-empty list of " + ", ".join(allowed))
            return None
        out = []
        for i, v in enumerate(value):
            if self.choice(f"{key}[{i}]", v, allowed) is not None:
                out.append(v)
        if len(set(out)) != len(out):
            self.bad(key, value, "a list without repeats")
        return out

    def param(self, key: str, value: Any, *, choices: tuple[str, ...] | None = None,
              lo: float = 0.0, hi: float | None = None, what: str = "") -> Param:
        """A scalar, a list of alternatives, or {min, max} for numbers."""
        if choices is not None:
            if isinstance(value, list):
                vals = self.names(key, value, choices)
                return Choice(tuple(vals)) if vals else None
            return self.choice(key, value, choices)
        if isinstance(value, Mapping):
            d = self.mapping(key, value, ("min", "max"))
            a = self.number(f"{key}.min", d.get("min"), lo, hi, what)
            b = self.number(f"{key}.max", d.get("max"), lo, hi, what)
            if a is not None and b is not None and a > b:
                self.bad(key, dict(value), "min <= max")
            return Range(a, b) if a is not None and b is not None else None
        if isinstance(value, list):
            if not value:
                self.bad(key, value, "a non-empty list")
                return None
            vals = [self.number(f"{key}[{i}]", v, lo, hi, what) for i, v in enumerate(value)]
            return Choice(tuple(vals)) if None not in vals else None
        return self.number(key, value, lo, hi, what)


def parse_config(data: Any, source: str = "<config>", base_dir: Path | None = None) -> PipelineConfig:
    """Validate a parsed YAML document and build the :class:`PipelineConfig`; raises :class:`ConfigError`."""
    c = _Checker()
    cfg = PipelineConfig(source=source)
    top = c.mapping("", data if data is not None else {},
                    ("workdir", "seed", "stages", "collect", "curate", "rl", "train", "distill", "generate"))
    if "workdir" in top:
        if isinstance(top["workdir"], str) and top["workdir"].strip():
            cfg.workdir = Path(top["workdir"])
        else:
            c.bad("workdir", top["workdir"], "a folder path")
    if "seed" in top:
        cfg.seed = c.integer("seed", top["seed"], 0, 2**31 - 1, "base seed of the run") or 0
    if "stages" in top:
        st = c.names("stages", top["stages"], STAGES)
        if st:
            cfg.stages = sorted(st, key=STAGES.index)
    if "collect" in top:
        cfg.collect = _parse_collect(c, top["collect"])
    if "curate" in top:
        from curation.config import parse_curate_section

        if top["curate"] is not None and not isinstance(top["curate"], Mapping):
            c.bad("curate", top["curate"], "a mapping (the curation settings)")
        else:
            try:
                cfg.curate = parse_curate_section(top["curate"])
            except ValueError as exc:
                c.problems.extend(str(exc).splitlines())
    if "rl" in top:
        cfg.rl = _parse_rl(c, top["rl"])
    if "train" in top:
        cfg.train = _parse_train(c, top["train"])
    if "distill" in top:
        cfg.distill = _parse_distill(c, top["distill"])
    if "generate" in top:
        cfg.generate = _parse_generate(c, top["generate"])
    if base_dir is not None and not cfg.workdir.is_absolute():
        cfg.workdir = (base_dir / cfg.workdir).resolve()
    ck = cfg.collect.ppo_checkpoint
    if base_dir is not None and ck is not None and not ck.is_absolute():
        cfg.collect.ppo_checkpoint = (base_dir / ck).resolve()
    if c.problems:
        raise ConfigError(source, c.problems)
    return cfg


def _parse_collect(c: _Checker, value: Any) -> CollectConfig:
    out = CollectConfig()
    d = c.mapping("collect", value, tuple(f.name for f in fields(CollectConfig)))
    if "source" in d:
        out.source = c.choice("collect.source", d["source"], SOURCES) or out.source
    if "scenes" in d:
        if out.source == "sandbox":
            out.scenes = c.names("collect.scenes", d["scenes"], SANDBOX_SCENES) or out.scenes
        elif isinstance(d["scenes"], list) and d["scenes"] and all(isinstance(x, str) and x for x in d["scenes"]):
            out.scenes = list(d["scenes"])
        else:
            c.bad("collect.scenes", d["scenes"], "a non-empty list of level names")
    if "unrealcv" in d:
        from unreal_bridge.unrealcv_world import UnrealCVConfig

        if not isinstance(d["unrealcv"], Mapping):
            c.bad("collect.unrealcv", d["unrealcv"], "a mapping of UnrealCV settings (host, port, navmesh, ...)")
        else:
            try:
                UnrealCVConfig.from_dict({"navmesh": "<checked at run time>", **d["unrealcv"]})
                out.unrealcv = dict(d["unrealcv"])
            except (TypeError, ValueError) as exc:
                c.problems.append(f"collect.unrealcv: {exc}")
    if out.source == "unrealcv" and not out.unrealcv.get("navmesh"):
        c.bad("collect.unrealcv.navmesh", out.unrealcv.get("navmesh"), "the navmesh file of the level (.obj or "
              "walkable .json)")
    ints = {"episodes_per_scene": (1, None, "episodes recorded per scene"),
            "frames": (2, None, "frames per episode"),
            "width": (16, 7680, "video width in pixels, even"),
            "height": (16, 4320, "video height in pixels, even"),
            "workers": (1, 256, "parallel collection processes")}
    for name, (lo, hi, what) in ints.items():
        if name in d:
            v = c.integer(f"collect.{name}", d[name], lo, hi, what)
            if v is not None and name in ("width", "height") and v % 2:
                c.bad(f"collect.{name}", v, f"an even integer ({what}; H.264 yuv420p needs even sizes)")
            elif v is not None:
                setattr(out, name, v)
    if "fps" in d:
        out.fps = c.number("collect.fps", d["fps"], 0, 240, "frames per second of the video", open_lo=True) or out.fps
    if "preset" in d:
        out.preset = c.choice("collect.preset", d["preset"], X264_PRESETS) or out.preset
    if "crf" in d:
        v = c.integer("collect.crf", d["crf"], 0, 51, "x264 quality: lower is better, 18 is visually lossless")
        out.crf = out.crf if v is None else v
    if "controller" in d:
        out.controller = c.choice("collect.controller", d["controller"], CONTROLLERS) or out.controller
    if "ppo_checkpoint" in d:
        if isinstance(d["ppo_checkpoint"], str) and d["ppo_checkpoint"].strip():
            out.ppo_checkpoint = Path(d["ppo_checkpoint"])
        else:
            c.bad("collect.ppo_checkpoint", d["ppo_checkpoint"], "the path of a PPO policy .zip (playmill rl train)")
    for name in ("ppo_deterministic", "ppo_shield"):
        if name in d:
            if isinstance(d[name], bool):
                setattr(out, name, d[name])
            else:
                c.bad(f"collect.{name}", d[name], "true or false")
    if "sandbox" in d:
        s = c.mapping("collect.sandbox", d["sandbox"], tuple(f.name for f in fields(SandboxConfig)))
        sb = out.sandbox
        if "weather" in s:
            sb.weather = c.param("collect.sandbox.weather", s["weather"], choices=SANDBOX_WEATHER)
        if "time_of_day" in s:
            sb.time_of_day = c.param("collect.sandbox.time_of_day", s["time_of_day"], lo=0.0, hi=24.0,
                                     what="hours")
        for name in ("npc_density", "vehicle_density"):
            if name in s:
                setattr(sb, name, c.param(f"collect.sandbox.{name}", s[name], lo=0.0, hi=2.0,
                                          what="multiplier of the default density"))
        if "fov_deg" in s:
            sb.fov_deg = c.number("collect.sandbox.fov_deg", s["fov_deg"], 20.0, 150.0,
                                  "horizontal field of view in degrees") or sb.fov_deg
    return out


def _parse_rl(c: _Checker, value: Any) -> RLSection:
    from rl_agent.config import RLConfigError, TrainConfig

    if value is None:
        return RLSection()
    if not isinstance(value, Mapping):
        c.bad("rl", value, "a mapping of env, reward, shield, ppo settings (rl_agent/README.md)")
        return RLSection()
    try:
        TrainConfig.from_dict(value).validate()
    except (RLConfigError, TypeError, ValueError) as exc:
        c.problems.extend(f"rl.{line}" for line in str(exc).splitlines())
    return RLSection(dict(value))


def _parse_train(c: _Checker, value: Any) -> TrainSection:
    out = TrainSection()
    if value is None:
        return out
    if not isinstance(value, Mapping):
        c.bad("train", value, "a mapping: preset, dataset and TrainConfig keys (model/TRAINING.md)")
        return out
    d = dict(value)
    out.preset = d.pop("preset", out.preset)
    dataset = d.pop("dataset", out.dataset)
    if not isinstance(dataset, str) or not dataset.strip() or "/" in dataset:
        c.bad("train.dataset", dataset, "auto or the name of a dataset folder under <workdir>/shards")
    else:
        out.dataset = dataset
    out.settings = d
    from model.train import get_train_config

    try:
        get_train_config(out.preset, **out.settings)
    except (TypeError, ValueError) as exc:
        c.problems.append(f"train: {exc}")
    return out


def _parse_distill(c: _Checker, value: Any) -> DistillSection:
    out = DistillSection()
    if value is None:
        return out
    d = c.mapping("distill", value, ("preset", "ode_pairs", "init", "dmd"))
    out.preset = d.get("preset", out.preset)
    for part in ("ode_pairs", "init", "dmd"):
        if part in d:
            if isinstance(d[part], Mapping):
                setattr(out, part, dict(d[part]))
            else:
                c.bad(f"distill.{part}", d[part], "a mapping of settings (model/TRAINING.md, Distillation)")
    try:
        distill_configs(out)
    except (TypeError, ValueError) as exc:
        c.problems.append(f"distill: {exc}")
    return out


def distill_configs(section: DistillSection):
    """``(OdePairsConfig, DistillInitConfig, DistillDMDConfig)`` of a ``distill:`` section: each step's preset with
    the section's overrides; raises ValueError naming a bad key or value."""
    from model.distill import get_distill_dmd_config, get_distill_init_config, get_ode_pairs_config

    return (get_ode_pairs_config(section.preset, **section.ode_pairs),
            get_distill_init_config(section.preset, **section.init),
            get_distill_dmd_config(section.preset, **section.dmd))


def _parse_generate(c: _Checker, value: Any) -> GenerateSection:
    out = GenerateSection()
    if value is None:
        return out
    d = c.mapping("generate", value, tuple(f.name for f in fields(GenerateSection)))
    if "models" in d:
        out.models = c.names("generate.models", d["models"], GENERATE_MODELS)
    if d.get("frames") is not None:
        v = c.integer("generate.frames", d["frames"], 1, 4097, "video frames of the base sample, 1 + 4k")
        if v is not None and (v - 1) % 4:
            c.bad("generate.frames", v, "1 + 4k frames (the VAE compresses time by 4)")
        else:
            out.frames = v
    if "student_frames" in d:
        v = c.integer("generate.student_frames", d["student_frames"], 1, 4097, "video frames of the student, 1 + 4k")
        if v is not None and (v - 1) % 4:
            c.bad("generate.student_frames", v, "1 + 4k frames (the VAE compresses time by 4)")
        elif v is not None:
            out.student_frames = v
    if "steps" in d:
        out.steps = c.integer("generate.steps", d["steps"], 1, 1000, "Euler steps of the base model") or out.steps
    if "seed" in d:
        v = c.integer("generate.seed", d["seed"], 0, 2**31 - 1, "seed of the initial noise")
        out.seed = out.seed if v is None else v
    if d.get("episode") is not None:
        if isinstance(d["episode"], str) and d["episode"].strip():
            out.episode = d["episode"]
        else:
            c.bad("generate.episode", d["episode"], "an episode id under <workdir>/episodes")
    return out


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline.yaml (safe loader)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_config(data, str(path), path.resolve().parent)


def sample_param(value: Param, rng) -> Any:
    """Draw a per-episode value: scalars as they are, a Choice uniformly, a Range uniformly in [min, max]."""
    if isinstance(value, Choice):
        return value.values[int(rng.integers(len(value.values)))]
    if isinstance(value, Range):
        return float(rng.uniform(value.min, value.max))
    return value
