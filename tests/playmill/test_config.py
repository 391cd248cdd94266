"""pipeline.yaml: one schema composed from the packages' sections; every problem at once, naming the key, the bad
value and what is allowed; --set overrides; the resolved config; the JSON Schema editors read."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from capture.settings import ConfigError
from playmill.config import (DensityRange, HoursRange, PipelineConfig, config_yaml, load_config, parse_config,
                             pipeline_schema, sample_param)

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_default_pipeline_is_valid_and_small():
    cfg = load_config(ROOT / "pipeline.yaml")
    assert cfg.stages[0] == "collect"
    cc = cfg.collect
    assert cc.source == "sandbox" and len(cc.scenes) >= 2
    assert (cc.width, cc.height) == (640, 352)
    assert cc.episodes_per_scene * len(cc.scenes) == 8 and cc.frames == 300 and cc.fps == 25
    assert cfg.workdir == (ROOT / "runs" / "default").resolve()  # relative to the config file
    assert cc.sandbox.weather == ("clear", "overcast", "fog")
    assert cc.sandbox.time_of_day == HoursRange(7.0, 19.0)


def problems_of(doc):
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "p.yaml")
    return info.value.problems


def test_every_problem_is_reported_with_key_value_and_allowed():
    probs = problems_of({
        "stages": ["collect", "teleport"],
        "colect": {},
        "collect": {"fps": -3, "width": 641, "scenes": ["city", "moon"], "workers": 0,
                    "sandbox": {"weather": "snow", "time_of_day": {"min": 20, "max": 8}, "npc_density": 5}},
    })
    text = "\n".join(probs)
    assert ("stages[1]: 'teleport' is not allowed; expected one of rl, collect, curate, train, distill, generate, eval"
            in text)
    assert "colect: unknown key; did you mean collect? (allowed here: workdir, seed, stages, collect, curate" in text
    assert "collect.fps: -3 is not allowed; expected a number in (0, 240] (frames per second of the video)" in text
    assert "collect.width: 641 is not allowed; expected an even integer in [16, 7680]" in text
    assert "collect.scenes[1]: 'moon' is not allowed; expected one of city, indoor, park" in text
    assert "collect.workers: 0 is not allowed; expected an integer in [1, 256]" in text
    assert "collect.sandbox.weather: 'snow' is not allowed; expected one of clear, overcast, fog" in text
    assert "collect.sandbox.time_of_day: {'min': 20.0, 'max': 8.0} is not allowed; expected min <= max" in text
    assert "collect.sandbox.npc_density: 5 is not allowed; expected a number in [0, 2]" in text
    assert len(probs) == 9


def test_curate_section_is_validated_with_the_others():
    probs = problems_of({"stages": ["collect", "curate"], "collect": {"fps": 0},
                         "curate": {"engine": "spark", "clip": {"frames": 56}}})
    text = "\n".join(probs)
    assert "collect.fps: 0 is not allowed" in text
    assert "curate.engine: 'spark' is not allowed; expected one of local, ray" in text
    assert "curate.clip.frames: 56 is not allowed; expected 1 + 4k frames" in text
    cfg = parse_config({"stages": ["curate", "collect"], "curate": {"dataset": "mine"}}, "p.yaml", Path("/x"))
    assert cfg.stages == ("collect", "curate")  # pipeline order whatever the file's order
    assert cfg.shards_dir == Path("/x/runs/default/shards/mine")


def test_types_are_checked():
    probs = problems_of({"seed": "abc", "collect": {"frames": 2.5, "fps": True, "scenes": 3}, "workdir": 7})
    text = "\n".join(probs)
    assert "seed: 'abc'" in text and "collect.frames: 2.5" in text and "collect.fps: True" in text
    assert "collect.scenes[0]: 3 is not allowed; expected a string" in text and "workdir: 7" in text


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("collect: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    evil = tmp_path / "evil.yaml"
    evil.write_text("seed: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):  # safe loader refuses arbitrary objects
        load_config(evil)


def test_sampling_is_deterministic_and_in_range():
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    draws = [sample_param(HoursRange(7.0, 19.0), rng_a) for _ in range(50)]
    assert draws == [sample_param(HoursRange(7.0, 19.0), rng_b) for _ in range(50)]
    assert all(7.0 <= d <= 19.0 for d in draws)
    assert all(0.5 <= sample_param(DensityRange(0.5, 1.5), rng_a) <= 1.5 for _ in range(20))
    assert {sample_param(("a", "b"), rng_a) for _ in range(50)} == {"a", "b"}
    assert sample_param(0.5, rng_a) == 0.5


def test_model_sections_are_validated_with_the_others():
    probs = problems_of({
        "stages": ["generate", "train", "collect"],
        "train": {"preset": "huge", "dataset": "a/b", "lr": "fast"},
        "generate": {"models": ["base", "teacher"], "frames": 18, "student_frames": 0, "steps": 0, "colour": 1},
        "rl": {"ppo": {"n_envs": 0}},
        "distill": {"dmd": {"min_sigma": 2}},
    })
    text = "\n".join(probs)
    assert "train.dataset: 'a/b' is not allowed" in text
    assert "train.preset: 'huge' is not allowed; expected one of tiny, mg2-1.3b" in text
    assert "train.lr: 'fast' is not allowed; expected a number > 0 (peak learning rate)" in text
    assert "generate.models[1]: 'teacher' is not allowed; expected one of base, student" in text
    assert "generate.frames: 18 is not allowed; expected 1 + 4k frames" in text
    assert "generate.student_frames: 0 is not allowed" in text
    assert "generate.steps: 0 is not allowed" in text
    assert "generate.colour: unknown key" in text
    assert "rl.ppo.n_envs: 0 is not allowed; expected an integer in [1, 1024]" in text
    assert "distill.dmd.min_sigma: 2 is not allowed; expected a number in [0, 1]" in text
    assert "train.max_stepz: unknown key; did you mean max_steps?" in "\n".join(problems_of({"train": {"max_stepz": 3}}))
    assert "train.height: 50 is not allowed; expected an integer >= 16, a multiple of 16" in "\n".join(
        problems_of({"train": {"height": 50}}))


def test_presets_fill_the_keys_the_file_does_not_set():
    cfg = parse_config({"train": {"preset": "mg2-1.3b", "max_steps": 7}, "distill": {"preset": "mg2",
                                                                                     "dmd": {"max_steps": 3}}})
    assert cfg.train.num_frames == 57 and cfg.train.model == "mg2-1.3b-base" and cfg.train.max_steps == 7
    assert cfg.distill.ode_pairs.num_pairs == 40_000 and cfg.distill.dmd.max_steps == 3
    assert cfg.distill.dmd.lr_gen == 2e-6 and cfg.distill.init.max_steps == 6000
    assert parse_config({"rl": {"preset": "smoke"}}).rl.ppo.total_timesteps == 512
    assert cfg.train.config.num_frames == 57 and "preset" not in {f.name for f in dataclasses.fields(cfg.train.config)}


def test_stages_run_in_pipeline_order_and_sections_parse():
    cfg = parse_config({"stages": ["generate", "train", "curate", "collect", "rl"],
                        "train": {"preset": "tiny", "max_steps": 5, "dataset": "mine"},
                        "generate": {"models": ["base"], "frames": 9, "episode": "e1"},
                        "collect": {"controller": "ppo", "ppo_checkpoint": "agent/policy.zip", "ppo_shield": True}},
                       "p.yaml", Path("/cfgdir"))
    assert cfg.stages == ("rl", "collect", "curate", "train", "generate")
    assert cfg.train.preset == "tiny" and cfg.train.max_steps == 5 and cfg.train.dataset == "mine"
    assert cfg.generate.models == ("base",) and cfg.generate.frames == 9 and cfg.generate.episode == "e1"
    assert cfg.collect.ppo_checkpoint == Path("/cfgdir/agent/policy.zip") and cfg.collect.ppo_shield
    assert cfg.models_dir == Path("/cfgdir/runs/default/models")
    assert "stages: ['collect', 'collect'] is not allowed; expected a list without repeats" in "\n".join(
        problems_of({"stages": ["collect", "collect"]}))


def test_overrides_are_typed_by_the_schema_and_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "pipeline.yaml"
    path.write_text("workdir: out\ntrain: {max_steps: 10}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path, ["train.max_steps=500", "collect.scenes=[indoor]", "train.lr=1e-4",
                             "curate.dedup={enabled: false}"])
    assert cfg.train.max_steps == 500 and cfg.collect.scenes == ("indoor",) and cfg.train.lr == 1e-4
    assert cfg.curate.dedup.enabled is False and cfg.workdir == tmp_path / "cfg" / "out"  # the file's: its folder
    assert load_config(path, ["workdir=elsewhere"]).workdir == tmp_path / "elsewhere"  # the command line's: cwd
    with pytest.raises(ConfigError) as info:
        load_config(path, ["train.lr=fast", "collect.fsp=3", "max_steps=3"])
    text = str(info.value)
    assert "--set train.lr=fast: train.lr: 'fast' is not allowed; expected a number > 0" in text
    assert "--set collect.fsp=3: collect.fsp: unknown key; did you mean fps?" in text
    assert "--set max_steps=3: max_steps: unknown key; did you mean train.max_steps?" in text


def test_resolved_config_has_every_key_and_loads_back_to_the_same(tmp_path):
    cfg = load_config(ROOT / "pipeline.yaml", ["train.preset=mg2-1.3b"])
    text = config_yaml(cfg)
    doc = yaml.safe_load(text)
    assert list(doc["train"])[:2] == ["preset", "dataset"] and doc["train"]["num_frames"] == 57
    assert doc["curate"]["output"]["row_group_rows"] == 8 and doc["rl"]["ppo"]["gamma"] == 0.99  # defaults too
    assert parse_config(doc, "resolved") == cfg
    (tmp_path / "resolved.yaml").write_text(text)
    assert load_config(tmp_path / "resolved.yaml") == cfg


def test_json_schema_file_is_current_and_validates_the_embedded_pipeline():
    import jsonschema

    committed = (ROOT / "playmill" / "pipeline.schema.json").read_text()
    assert committed == pipeline_schema(), "regenerate it: playmill config schema -o playmill/pipeline.schema.json"
    schema = json.loads(committed)
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
    jsonschema.validate(doc, schema)  # an editor (yaml-language-server) accepts the embedded default ...
    with pytest.raises(jsonschema.ValidationError, match="'fsp' was unexpected"):
        jsonschema.validate({**doc, "collect": {"fsp": 3}}, schema)  # ... and flags what playmill rejects
    assert (ROOT / "pipeline.yaml").read_text().startswith(
        "# yaml-language-server: $schema=playmill/pipeline.schema.json\n")
    props = schema["$defs"]["CollectConfig"]["properties"]
    assert props["fps"]["description"] == "frames per second of the video" and props["fps"]["exclusiveMinimum"] == 0


def test_every_key_is_declared_once_with_a_doc():
    """Each field of every config reachable from pipeline.yaml has a type, a default and a description."""
    from capture.settings import _all_keys, _fields

    missing = []

    def walk(cls, prefix=""):
        for name, info in _fields(cls).items():
            if not info.description:
                missing.append(prefix + name)
            from capture.settings import _unwrap
            import typing

            base, _ = _unwrap(info.annotation, ())
            for m in (typing.get_args(base) if typing.get_origin(base) in (typing.Union, __import__("types").UnionType)
                      else (base,)):
                mb, _ = _unwrap(m, ())
                if dataclasses.is_dataclass(mb) and hasattr(mb, "__pydantic_fields__"):
                    walk(mb, prefix + name + ".")

    walk(PipelineConfig)
    assert not missing, missing
    assert len(list(_all_keys(PipelineConfig))) > 300


def test_eval_split_and_consistency_sections_are_validated():
    probs = problems_of({"eval": {"loops": ["x"], "student_frames": 10, "episodes": 0, "models": ["teacher"],
                                  "lpips_weights": ["a", "b", "c"], "turn_deg": 0},
                         "curate": {"split": {"val": 0.5, "test": 0.5, "by": "room"},
                                    "consistency": {"on_episode": "drop", "fov_deg": 200}}})
    text = "\n".join(probs)
    assert "eval.loops[0]: 'x' is not allowed; expected an integer" in text
    assert "eval.student_frames: 10 is not allowed; expected 1 + 4k frames" in text
    assert "eval.episodes: 0 is not allowed; expected an integer in [1, 10000]" in text
    assert "eval.models[0]: 'teacher' is not allowed; expected one of base, student" in text
    assert "eval.lpips_weights: ['a', 'b', 'c'] is not allowed" in text and "eval.turn_deg: 0" in text
    assert "curate.split.by: 'room' is not allowed; expected one of episode, scene, seed" in text
    assert "curate.consistency.on_episode: 'drop' is not allowed; expected one of reject, flag" in text
    assert "curate.consistency.fov_deg: 200 is not allowed; expected a number in (1, 179)" in text
    probs = problems_of({"curate": {"split": {"val": 0.5, "test": 0.5}}})
    assert probs == ["curate.split.test: 0.5 is not allowed; expected val + test < 1 (val is 0.5): train must keep "
                     "episodes"]
    cfg = parse_config({"eval": {"loops": [8], "fvd_weights": "w/i3d.pt", "lpips_weights": "alex.pth"}}, "p.yaml",
                       Path("/x"))
    assert cfg.eval.loops == (8,) and cfg.eval.fvd_weights == Path("/x/w/i3d.pt")
    assert cfg.eval.lpips_weights == (Path("/x/alex.pth"),) and cfg.eval.config.loops == (8,)
