"""pipeline.yaml: the schema of every key, its defaults, ``--set`` overrides, loading and the resolved form.

The schema is composed from each package's own section (declared once, with type, default, range and doc, in
:mod:`capture.settings` style): ``collect`` here, ``curate`` in :mod:`curation.config`, ``rl`` in
:mod:`rl_agent.config`, ``train`` and ``distill`` from :mod:`model` (with the presets' values filling the keys
a file does not set), ``generate`` here, ``eval`` here on :class:`model.evaluate.EvalConfig`, ``imports`` from the importers (:mod:`curation.importers`,
:mod:`gta_bridge.importer`, :mod:`unreal_bridge.ue_import`). Adding a key is one ``Field`` in one class.

The whole file is checked before any work starts. Every problem is reported at once, each naming the key
(dotted path), the bad value and what is allowed::

    pipeline.yaml: collect.fps: -3 is not allowed; expected a number in (0, 240] (frames per second of the video)

``workdir``, ``collect.ppo_checkpoint``, ``eval.lpips_weights`` and ``eval.fvd_weights`` are relative to the config file (to the working directory when set
with ``--set``); :func:`config_yaml` is the resolved config with every default, which loads back to the same.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence

import yaml
from pydantic import AfterValidator, ValidationInfo, field_validator, model_validator
from pydantic_core import ArgsKwargs

from capture.ray_engine import ENGINES, check_address
from capture.settings import (ConfigError, Field, Frames1p4k, Invalid, SafeName, apply_overrides, dump, json_schema,
                              load_yaml, merge, parse_set, settings, validate)
from capture.video import X264Preset
from curation.config import CurateSection
from curation.generic import GenericMapping
from curation.importers import SekaiImportConfig
from curation.vpt import VPTImportConfig
from gta_bridge.importer import GtaImportConfig
from model.distill.dmd import DMD_PRESETS, DistillDMDConfig
from model.run_log import LoggerName, logger_field
from model.distill.init import DISTILL_INIT_PRESETS, DistillInitConfig
from model.distill.ode_pairs import ODE_PAIRS_PRESETS, OdePairsConfig
from model.evaluate import EvalConfig
from model.train import TRAIN_PRESETS, TrainConfig
from rl_agent.config import RLConfig
from unreal_bridge.ue_import import UEImportConfig
from unreal_bridge.unrealcv_world import UnrealCVConfig

__all__ = ["STAGES", "CollectConfig", "ConfigError", "DistillSection", "Endpoint", "EvalSection", "GenerateConfig",
           "ImportsSection", "PipelineConfig", "RayConfig", "SandboxConfig", "TrainSection", "config_yaml", "load_config",
           "parse_config", "pipeline_schema", "sample_param", "write_resolved"]


STAGES = ("rl", "collect", "curate", "train", "distill", "generate", "eval")  # the order they run in
SOURCES = ("sandbox", "unrealcv")
SANDBOX_SCENES = ("city", "indoor", "park")
SANDBOX_WEATHER = ("clear", "overcast", "fog")
CONTROLLERS = ("navmesh", "wander", "ppo")
GENERATE_MODELS = ("base", "student")
#: The file, beside each stage's outputs, that holds the complete resolved config of the run that wrote them.
RESOLVED_NAME = "pipeline.resolved.yaml"

Weather = Literal[SANDBOX_WEATHER]
Hours = Annotated[float, Field(ge=0, le=24)]
Density = Annotated[float, Field(ge=0, le=2)]


def _span(cls: type) -> type:
    @model_validator(mode="after")
    def _ordered(self: Any) -> Any:
        if self.min > self.max:
            raise Invalid("", {"min": self.min, "max": self.max}, "min <= max")
        return self

    cls._ordered = _ordered
    return settings(cls)


@_span
class HoursRange:
    """A per-episode time of day drawn uniformly from [min, max] hours."""

    min: Hours = Field(description="earliest, hours")
    max: Hours = Field(description="latest, hours")


@_span
class DensityRange:
    """A per-episode density drawn uniformly from [min, max]."""

    min: Density = Field(description="lowest multiplier")
    max: Density = Field(description="highest multiplier")


@settings
class SandboxConfig:
    """Sandbox world parameters: each is a value, a list to choose from per episode, or {min, max} (drawn
    uniformly); every episode draws its own from its seed, so a rerun draws the same."""

    weather: Weather | tuple[Weather, ...] = Field(SANDBOX_WEATHER, description="clear, overcast or fog (or a list)")
    time_of_day: Hours | tuple[Hours, ...] | HoursRange = Field(
        default_factory=lambda: HoursRange(7.0, 19.0), description="hours, 0-24: sun and sky")
    npc_density: Density | tuple[Density, ...] | DensityRange = Field(0.5, description="multiplier of the NPC density")
    vehicle_density: Density | tuple[Density, ...] | DensityRange = Field(0.5, description="multiplier of the vehicle density")
    fov_deg: float = Field(90.0, ge=20, le=150, description="horizontal field of view, degrees")


@settings
class Endpoint:
    """An UnrealCV server of ``collect.endpoints`` and ``streams``, the episodes recorded on it at once (each its
    own connection; Matrix-Game 2.0 ran two per GPU)."""

    host: str = Field("127.0.0.1", min_length=1, description="UnrealCV server address")
    port: int = Field(9000, ge=1, le=65535, description="UnrealCV server port")
    streams: int = Field(1, ge=1, le=64, description="episodes recorded on it at once")


@settings
class CollectConfig:
    """The ``collect:`` section: episodes recorded into ``<workdir>/episodes`` (ids are deterministic, so a rerun
    skips finished episodes and completes the rest)."""

    source: Literal[SOURCES] = Field("sandbox", description="sandbox (built in) or unrealcv (a running UnrealCV server)")
    scenes: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        ("city", "park"), min_length=1, description="sandbox: city, indoor, park; unrealcv: level names")
    episodes_per_scene: int = Field(4, ge=1, description="episodes recorded per scene")
    frames: int = Field(300, ge=2, description="frames per episode")
    fps: float = Field(25.0, gt=0, le=240, description="frames per second of the video")
    width: int = Field(640, ge=16, le=7680, multiple_of=2, description="video width, px (H.264 yuv420p needs even sizes)")
    height: int = Field(352, ge=16, le=4320, multiple_of=2, description="video height, px")
    workers: int = Field(2, ge=1, le=256, description="parallel collection processes (engine ray: streams at once, without endpoints)")
    engine: Literal[ENGINES] = Field("local", description="local (a process pool of workers) or ray (stream actors on ray.address; README \"Ray cluster\")")
    endpoints: tuple[Endpoint, ...] = Field(
        (), description="source unrealcv: the servers to record on, each with its streams (empty: unrealcv.host:port, workers streams)")
    controller: Literal[CONTROLLERS] = Field("navmesh", description="navmesh: seeded tours like a player; wander: a free explorer; ppo: the rl stage's policy")
    preset: X264Preset = Field("ultrafast", description="x264 preset of the raw episodes (curation re-encodes the clips)")
    crf: int = Field(18, ge=0, le=51, description="x264 quality: lower is better, 18 is visually lossless")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="source sandbox: the world's parameters")
    unrealcv: UnrealCVConfig = Field(default_factory=UnrealCVConfig, description="source unrealcv: the endpoint and the level's navmesh")
    ppo_checkpoint: Path | None = Field(None, description="controller ppo: the policy .zip (null: <workdir>/models/rl/policy.zip)")
    ppo_deterministic: bool = Field(False, description="controller ppo: the policy's most likely action instead of a sample")
    ppo_shield: bool = Field(True, description="controller ppo: the collision shield filters the policy's moves")

    @field_validator("endpoints", mode="before")
    @classmethod
    def _unrealcv_endpoints(cls, endpoints: Any, info: ValidationInfo) -> Any:
        if endpoints and info.data.get("source", "sandbox") != "unrealcv":
            raise Invalid("", endpoints, "no endpoints: they are for collect.source unrealcv")
        return endpoints

    @field_validator("scenes")
    @classmethod
    def _sandbox_scenes(cls, scenes: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("source", "sandbox") == "sandbox":
            for i, s in enumerate(scenes):
                if s not in SANDBOX_SCENES:
                    raise Invalid(f"[{i}]", s, "one of " + ", ".join(SANDBOX_SCENES))
        return scenes

    @model_validator(mode="after")
    def _source(self) -> "CollectConfig":
        if self.source == "sandbox":
            return self
        if not self.unrealcv.navmesh:
            raise Invalid("unrealcv.navmesh", None, "the navmesh file of the level (.obj or walkable .json)")
        same = {}
        for key in ("width", "height", "fps"):  # collect's size and rate are the camera's
            mine, default = getattr(self.unrealcv, key), getattr(UnrealCVConfig(), key)
            if mine not in (default, getattr(self, key)):
                raise Invalid(f"unrealcv.{key}", mine, f"to be left out: collect.{key} ({getattr(self, key)}) sets it")
            same[key] = getattr(self, key)
        object.__setattr__(self, "unrealcv", dataclasses.replace(self.unrealcv, **same))
        return self


@settings
class RayConfig:
    """The ``ray:`` section: the Ray that ``collect.engine: ray`` and ``curate.engine: ray`` run on
    (:func:`capture.ray_engine.ray_session`; README "Ray cluster")."""

    address: str = Field("local", description="local (a private Ray on this machine), auto (the cluster this machine "
                                                "joined with `ray start`), <head-ip>:6379 or ray://<head-ip>:10001")

    @field_validator("address")
    @classmethod
    def _address(cls, address: str) -> str:
        problem = check_address(address)
        if problem:
            raise Invalid("", address, problem)
        return address.strip()


@settings
class GenerateConfig:
    """The ``generate:`` section: videos from the trained models, conditioned on the first frame and the
    recorded actions of an episode (by default the first held-out test episode of ``curate.split``, which the
    models never trained on) -> ``<workdir>/generate/{base,student}.mp4`` and ``comparison.png``."""

    models: tuple[Literal[GENERATE_MODELS], ...] | None = Field(
        None, min_length=1, description="base and/or student (null: every model trained in the workdir)")
    frames: Annotated[Frames1p4k, Field(le=4097)] | None = Field(
        None, description="video frames of the base sample, 1 + 4k (null: its training length)")
    student_frames: Annotated[Frames1p4k, Field(le=4097)] = Field(
        77, description="video frames of the streaming student, 1 + 4k (it continues past the training length)")
    steps: int = Field(30, ge=1, le=1000, description="Euler steps of the base model")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the initial noise")
    episode: str | None = Field(None, min_length=1, description="episode id to take the first frame and actions from (null: the first test episode of curate.split, else the last)")


@settings
class EvalSection(EvalConfig):
    """The ``eval:`` section (``playmill eval``, :mod:`playmill.evaluation`): the trained models on held-out test
    episodes (``curate.split``) -> ``<workdir>/reports/eval.json`` and ``eval.html``. What is measured:
    :class:`model.evaluate.EvalConfig` (its keys first); which episodes and models, and how they generate, below.
    LPIPS and FVD need weights the user supplies; without them they are reported as n/a."""

    episodes: int = Field(1, ge=1, le=10000, description="test episodes evaluated, at most")
    models: tuple[Literal[GENERATE_MODELS], ...] | None = Field(
        None, min_length=1, description="base and/or student (null: every model trained in the workdir)")
    steps: int = Field(30, ge=1, le=1000, description="Euler steps of the base model")
    student_frames: Annotated[Frames1p4k, Field(ge=5, le=4097)] | None = Field(
        None, description="video frames the student streams, 1 + 4k (null: generate.student_frames)")
    lpips_weights: tuple[Path, ...] = Field(
        (), max_length=2, description="LPIPS weights: one or two files holding the AlexNet features and the lpips "
                                      "linear heads (none: LPIPS is n/a)")
    fvd_weights: Path | None = Field(None, description="a TorchScript I3D, StyleGAN-V's i3d_torchscript.pt (null: FVD is n/a)")

    @property
    def config(self) -> EvalConfig:
        """The :class:`model.evaluate.EvalConfig` part."""
        return EvalConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(EvalConfig)})


def _preset_under(presets: Mapping[str, Any], name: Any, data: Mapping[str, Any]) -> dict:
    """``data`` with the values of preset ``name`` under it (an unknown name is left for the schema to report)."""
    base = presets.get(name) if isinstance(name, str) else None
    return merge(dump(base), data) if base is not None else dict(data)


def _before(fill):
    """A before-validator that applies ``fill(mapping) -> mapping`` to a section's raw keys."""

    @model_validator(mode="before")
    @classmethod
    def _fill(cls: Any, data: Any) -> Any:
        if isinstance(data, ArgsKwargs):
            return ArgsKwargs(data.args, fill(dict(data.kwargs or {})))
        return fill(data) if isinstance(data, Mapping) else data

    return _fill


@settings
class TrainSection(TrainConfig):
    """The ``train:`` section: :class:`model.train.TrainConfig` (model/TRAINING.md) whose keys the ``preset``
    fills when the file does not set them, and the shards to train on."""

    preset: Literal[tuple(TRAIN_PRESETS)] = Field("tiny", description="tiny: 17 frames at 64x112, trains on CPU in minutes; mg2-1.3b: the paper's")
    dataset: SafeName = Field("auto", description="a dataset under <workdir>/shards, or auto: the curated episodes at the "
                                                  "model's clip size")

    _fill = _before(lambda d: _preset_under(TRAIN_PRESETS, d.get("preset", "tiny"), d))

    @property
    def config(self) -> TrainConfig:
        """The :class:`model.train.TrainConfig` part."""
        return TrainConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)})


DISTILL_PRESETS = ("tiny", "mg2")


def _distill_fill(d: dict) -> dict:
    name = d.get("preset", "tiny")
    out = dict(d)
    for part, presets in (("ode_pairs", ODE_PAIRS_PRESETS), ("init", DISTILL_INIT_PRESETS), ("dmd", DMD_PRESETS)):
        given = d.get(part) or {}
        out[part] = _preset_under(presets, name, given) if isinstance(given, Mapping) else given
    return out


@settings
class DistillSection:
    """The ``distill:`` section (model/TRAINING.md, Distillation): the three steps of Self-Forcing, each a config
    whose keys the ``preset`` fills when the file does not set them."""

    preset: Literal[DISTILL_PRESETS] = Field("tiny", description="tiny: 32 ODE pairs, 200 init steps, 60 DMD steps; mg2: the paper's settings")
    logger: LoggerName = logger_field()
    ode_pairs: OdePairsConfig = Field(default_factory=OdePairsConfig, description="teacher ODE trajectories")
    init: DistillInitConfig = Field(default_factory=DistillInitConfig, description="student initialisation by ODE regression")
    dmd: DistillDMDConfig = Field(default_factory=DistillDMDConfig, description="DMD self-forcing")

    _fill = _before(_distill_fill)


@settings
class ImportsSection:
    """The ``imports:`` section: settings of ``playmill import sekai|generic|vpt|gta|unreal``."""

    sekai: SekaiImportConfig = Field(default_factory=SekaiImportConfig, description="Sekai videos + camera extrinsics")
    generic: GenericMapping = Field(default_factory=GenericMapping, description="the column mapping of a generic actions CSV (or --mapping FILE)")
    vpt: VPTImportConfig = Field(default_factory=VPTImportConfig, description="OpenAI VPT Minecraft contractor recordings (mp4 + jsonl)")
    gta: GtaImportConfig = Field(default_factory=GtaImportConfig, description="GTA V sessions of the recorder mod")
    unreal: UEImportConfig = Field(default_factory=UEImportConfig, description="in-engine Unreal MP4 + CSV recordings")


def _pipeline_order(stages: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(stages)) != len(stages):
        raise Invalid("", list(stages), "a list without repeats")
    return tuple(sorted(stages, key=STAGES.index))


@settings
class PipelineConfig:
    """pipeline.yaml: where the run writes, which stages run (in pipeline order whatever the file's order) and
    each stage's section."""

    workdir: Path = Field(Path("runs/default"), description="everything the run writes goes under here (relative: to this file)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="base seed; each episode's seed derives from it, the scene and the index")
    stages: Annotated[tuple[Literal[STAGES], ...], AfterValidator(_pipeline_order)] = Field(
        ("collect",), description="stages to run: " + ", ".join(STAGES))
    collect: CollectConfig = Field(default_factory=CollectConfig, description="record episodes")
    curate: CurateSection = Field(default_factory=CurateSection, description="episodes -> Parquet shards in <workdir>/shards/<dataset>")
    rl: RLConfig = Field(default_factory=RLConfig, description="the PPO collection agent -> <workdir>/models/rl (rl_agent/README.md)")
    train: TrainSection = Field(default_factory=TrainSection, description="the base world model -> <workdir>/models/base (model/TRAINING.md)")
    distill: DistillSection = Field(default_factory=DistillSection, description="Self-Forcing -> <workdir>/models/student")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="videos from the trained models -> <workdir>/generate")
    eval: EvalSection = Field(default_factory=EvalSection, description="the trained models on held-out test episodes -> <workdir>/reports/eval.json, eval.html")
    imports: ImportsSection = Field(default_factory=ImportsSection, description="settings of playmill import ...")
    verify_shards: bool = Field(True, description="shard readers (train, encode-latents, distill) check each shard's "
                                                  "size, rows and sha256 against manifest.json when they open a shards "
                                                  "folder; false (--no-verify): rows only, faster on huge datasets")
    ray: RayConfig = Field(default_factory=RayConfig, description="the Ray of collect.engine: ray and curate.engine: ray")

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

    @property
    def reports_dir(self) -> Path:
        return self.workdir / "reports"


# --------------------------------------------------------------------------------------------------------
# loading


def parse_config(data: Any, source: str = "<config>", base_dir: Path | None = None, *,
                 overrides: Mapping[str, Any] | None = None, override_items: Mapping[str, str] | None = None
                 ) -> PipelineConfig:
    """Check a parsed YAML document (with ``overrides``: dotted key -> value, from ``--set``) and build the
    :class:`PipelineConfig`; :class:`ConfigError` listing every problem. Relative paths of the file resolve
    against ``base_dir``, those of overrides against the working directory."""
    overrides = dict(overrides or {})
    doc = apply_overrides(data, overrides) if overrides else data
    items = override_items or {k: f"--set {k}={v}" for k, v in overrides.items()}
    cfg = validate(PipelineConfig, doc, source, overrides=items)
    return _resolve_paths(cfg, base_dir, set(overrides))


def load_config(path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> PipelineConfig:
    """The pipeline config of ``path`` with ``--set`` overrides (``["train.max_steps=500", ...]`` or a mapping
    of dotted keys). ``path`` None: ``./pipeline.yaml`` when it exists, else the built-in defaults.
    :class:`ConfigError` (exit 2 at the command line) for a missing or unreadable file or any bad key."""
    if isinstance(overrides, Mapping):
        values, items = dict(overrides), getattr(overrides, "origin", None)
    else:
        values = parse_set(overrides)
        items = {item.partition("=")[0].strip(): f"--set {item}" for item in overrides}
    if path is None and Path("pipeline.yaml").is_file():
        path = Path("pipeline.yaml")
    if path is None:
        return parse_config({}, "built-in defaults", Path.cwd(), overrides=values, override_items=items)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), ["no such file (give a pipeline.yaml, or leave it out for the built-in "
                                      "defaults; `playmill config show` prints them)"])
    return parse_config(load_yaml(path), str(path), path.resolve().parent, overrides=values, override_items=items)


def _resolve_paths(cfg: PipelineConfig, base_dir: Path | None, overridden: set[str]) -> PipelineConfig:
    def resolve(key: str, p: Path | None) -> Path | None:
        if p is None or p.is_absolute():
            return p
        base = Path.cwd() if key in overridden or base_dir is None else base_dir
        return (base / p).resolve()

    collect = dataclasses.replace(cfg.collect, ppo_checkpoint=resolve("collect.ppo_checkpoint", cfg.collect.ppo_checkpoint))
    ev = dataclasses.replace(cfg.eval, fvd_weights=resolve("eval.fvd_weights", cfg.eval.fvd_weights),
                             lpips_weights=tuple(resolve("eval.lpips_weights", p) for p in cfg.eval.lpips_weights))
    return dataclasses.replace(cfg, workdir=resolve("workdir", cfg.workdir), collect=collect, eval=ev)


# --------------------------------------------------------------------------------------------------------
# the resolved config, the schema, sampling


def config_yaml(cfg: PipelineConfig) -> str:
    """The resolved config as YAML with every key (what ``playmill config show`` prints); it loads back to
    the same config."""
    header = "# the resolved playmill pipeline config: every key, defaults included (`playmill config schema` documents them)\n"
    doc = dump(cfg)
    for name in ("rl", "train", "distill"):  # a section's preset first: it fills the keys below it
        first = {k: doc[name][k] for k in ("preset", "dataset") if k in doc[name]}
        doc[name] = {**first, **{k: v for k, v in doc[name].items() if k not in first}}
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=110)


class _Dumper(yaml.SafeDumper):
    """Block mappings, lists of plain values on one line (``scenes: [city, park]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> Any:
    flat = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def write_resolved(cfg: PipelineConfig, folder: Path) -> Path:
    """Write :func:`config_yaml` to ``<folder>/pipeline.resolved.yaml`` (atomically) beside a stage's outputs."""
    from capture.atomic import write_text_atomic

    return write_text_atomic(Path(folder) / RESOLVED_NAME, config_yaml(cfg))


@functools.lru_cache(maxsize=1)
def pipeline_schema() -> str:
    """The JSON Schema of pipeline.yaml (``playmill config schema``; committed as playmill/pipeline.schema.json
    so that editors validate and complete the file)."""
    schema = json_schema(PipelineConfig)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "playmill pipeline.yaml"}
    return json.dumps(schema, indent=1, sort_keys=False) + "\n"


def sample_param(value: Any, rng) -> Any:
    """Draw a per-episode value: scalars as they are, a list uniformly, a {min, max} range uniformly."""
    if isinstance(value, (list, tuple)):
        return value[int(rng.integers(len(value)))]
    if isinstance(value, (HoursRange, DensityRange)):
        return float(rng.uniform(value.min, value.max))
    return value
