"""pipeline.yaml validation: every problem at once, each naming the key, the bad value and what is allowed."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from playmill.cli import main
from playmill.config import Choice, ConfigError, Range, load_config, parse_config, sample_param

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_default_pipeline_is_valid_and_small():
    cfg = load_config(ROOT / "pipeline.yaml")
    assert cfg.stages[0] == "collect"
    cc = cfg.collect
    assert cc.source == "sandbox" and len(cc.scenes) >= 2
    assert (cc.width, cc.height) == (640, 352)
    assert cc.episodes_per_scene * len(cc.scenes) == 8 and cc.frames == 300 and cc.fps == 25
    assert cfg.workdir == (ROOT / "runs" / "default").resolve()  # relative to the config file
    assert cc.sandbox.weather == Choice(("clear", "overcast", "fog"))
    assert cc.sandbox.time_of_day == Range(7.0, 19.0)


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
    assert ("stages[1]: 'teleport' is not allowed; expected one of rl, collect, curate, train, distill, generate"
            in text)
    assert ("colect: unknown key; allowed keys here: workdir, seed, stages, collect, curate, rl, train, distill, "
            "generate") in text
    assert "collect.fps: -3 is not allowed; expected a number in (0, 240]" in text
    assert "collect.width: 641 is not allowed; expected an even integer" in text
    assert "collect.scenes[1]: 'moon' is not allowed; expected one of city, indoor, park" in text
    assert "collect.workers: 0 is not allowed; expected an integer in [1, 256]" in text
    assert "collect.sandbox.weather: 'snow' is not allowed; expected one of clear, overcast, fog" in text
    assert "collect.sandbox.time_of_day: {'min': 20, 'max': 8} is not allowed; expected min <= max" in text
    assert "collect.sandbox.npc_density: 5 is not allowed; expected a number in [0.0, 2.0]" in text
    assert len(probs) == 9


def test_curate_section_is_validated_with_the_others():
    probs = problems_of({"stages": ["collect", "curate"], "collect": {"fps": 0},
                         "curate": {"engine": "spark", "clip": {"frames": 56}}})
    text = "\n".join(probs)
    assert "collect.fps: 0 is not allowed" in text
    assert "curate.engine: 'spark' is not allowed; expected one of local, ray" in text
    assert "curate.clip.frames" in text
    cfg = parse_config({"stages": ["curate", "collect"], "curate": {"dataset": "mine"}}, "p.yaml", Path("/x"))
    assert cfg.stages == ["collect", "curate"]  # pipeline order whatever the file's order
    assert cfg.shards_dir == Path("/x/runs/default/shards/mine")


def test_types_are_checked():
    probs = problems_of({"seed": "abc", "collect": {"frames": 2.5, "fps": True, "scenes": 3}, "workdir": 7})
    text = "\n".join(probs)
    assert "seed: 'abc'" in text and "collect.frames: 2.5" in text and "collect.fps: True" in text
    assert "collect.scenes: 3" in text and "workdir: 7" in text
    assert problems_of([1, 2]) == [
        "(top level): [1, 2] is not allowed; expected a mapping of workdir, seed, stages, collect, curate, rl, "
        "train, distill, generate"]


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
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
    draws = [sample_param(Range(7.0, 19.0), rng_a) for _ in range(50)]
    assert draws == [sample_param(Range(7.0, 19.0), rng_b) for _ in range(50)]
    assert all(7.0 <= d <= 19.0 for d in draws)
    assert {sample_param(Choice(("a", "b")), rng_a) for _ in range(50)} == {"a", "b"}
    assert sample_param(0.5, rng_a) == 0.5


def test_cli_reports_a_bad_config_and_runs_nothing(tmp_path, capsys):
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"workdir": "out", "collect": {"height": 0}}))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "collect.height: 0 is not allowed" in err and "Nothing was run" in err
    assert not (tmp_path / "out").exists()


def test_cli_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in ("run", "collect", "curate", "inspect", "import", "validate", "sandbox", "train", "encode-latents",
                 "generate"):
        assert verb in out
    for argv in (["run", "--help"], ["collect", "--help"], ["validate", "--help"], ["sandbox", "preview", "--help"],
                 ["sandbox", "serve", "--help"], ["curate", "--help"], ["inspect", "--help"],
                 ["import", "sekai", "--help"], ["import", "generic", "--help"], ["import", "gta", "--help"],
                 ["import", "unreal", "--help"], ["train", "--help"], ["encode-latents", "--help"],
                 ["generate", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        assert "usage: playmill" in capsys.readouterr().out


def test_model_sections_are_validated_with_the_others():
    probs = problems_of({
        "stages": ["generate", "train", "collect"],
        "train": {"preset": "huge", "dataset": "a/b"},
        "generate": {"models": ["base", "teacher"], "frames": 18, "student_frames": 0, "steps": 0, "colour": 1},
        "rl": {"ppo": {"n_envs": 0}},
    })
    text = "\n".join(probs)
    assert "train.dataset: 'a/b' is not allowed; expected auto or the name of a dataset folder" in text
    assert "train: unknown train config 'huge'; allowed: mg2-1.3b, tiny" in text
    assert "generate.models[1]: 'teacher' is not allowed; expected one of base, student" in text
    assert "generate.frames: 18 is not allowed; expected 1 + 4k frames" in text
    assert "generate.student_frames: 0 is not allowed" in text
    assert "generate.steps: 0 is not allowed" in text
    assert "generate.colour: unknown key" in text
    assert any(p.startswith("rl.") and "n_envs" in p for p in probs), probs
    # TrainConfig keys are checked by the model's own validation, named
    text = "\n".join(problems_of({"train": {"max_stepz": 3}}))
    assert "max_stepz" in text and "unknown train config keys" in text
    text = "\n".join(problems_of({"train": {"height": 50}}))
    assert "multiples of 16" in text


def test_stages_run_in_pipeline_order_and_sections_parse():
    cfg = parse_config({"stages": ["generate", "train", "curate", "collect", "rl"],
                        "train": {"preset": "tiny", "max_steps": 5, "dataset": "mine"},
                        "generate": {"models": ["base"], "frames": 9, "episode": "e1"},
                        "collect": {"controller": "ppo", "ppo_checkpoint": "agent/policy.zip", "ppo_shield": True}},
                       "p.yaml", Path("/cfgdir"))
    assert cfg.stages == ["rl", "collect", "curate", "train", "generate"]
    assert cfg.train.preset == "tiny" and cfg.train.settings == {"max_steps": 5} and cfg.train.dataset == "mine"
    assert cfg.generate.models == ["base"] and cfg.generate.frames == 9 and cfg.generate.episode == "e1"
    assert cfg.collect.ppo_checkpoint == Path("/cfgdir/agent/policy.zip") and cfg.collect.ppo_shield
    assert cfg.models_dir == Path("/cfgdir/runs/default/models")
