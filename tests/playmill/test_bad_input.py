"""A corpus of bad configs and bad flags: each exits 2, runs nothing, prints no traceback, and names the key.

Also the regressions of issue 14: YAML's 1e-4 string, ``train --set lr=fast``, ``train: {lr: fast}``, a generic
mapping with ``mouse_scale: fast`` or ``keys: w``, a Sekai import config with ``workers: two``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from capture.settings import ConfigError
from playmill.cli import main

#: (id, pipeline.yaml document, text the message must contain: the key and what is allowed)
BAD_CONFIGS = [
    ("fps-negative", {"collect": {"fps": -3}}, "collect.fps: -3 is not allowed; expected a number in (0, 240]"),
    ("width-odd", {"collect": {"width": 641}}, "collect.width: 641 is not allowed"),
    ("scene-unknown", {"collect": {"scenes": ["city", "moon"]}}, "collect.scenes[1]: 'moon' is not allowed"),
    ("workers-zero", {"collect": {"workers": 0}}, "collect.workers: 0 is not allowed; expected an integer in [1, 256]"),
    ("controller", {"collect": {"controller": "teleport"}}, "collect.controller: 'teleport' is not allowed"),
    ("x264-preset", {"collect": {"preset": "superslow"}}, "collect.preset: 'superslow' is not allowed; expected one of ultrafast"),
    ("crf-range", {"collect": {"crf": 60}}, "collect.crf: 60 is not allowed; expected an integer in [0, 51]"),
    ("weather", {"collect": {"sandbox": {"weather": "snow"}}}, "collect.sandbox.weather: 'snow'"),
    ("time-range-reversed", {"collect": {"sandbox": {"time_of_day": {"min": 20, "max": 8}}}},
     "collect.sandbox.time_of_day: {'min': 20.0, 'max': 8.0} is not allowed; expected min <= max"),
    ("density-range", {"collect": {"sandbox": {"npc_density": 5}}}, "collect.sandbox.npc_density: 5 is not allowed"),
    ("unknown-key-typo", {"collect": {"fsp": 25}}, "collect.fsp: unknown key; did you mean fps?"),
    ("seed-negative", {"seed": -1}, "seed: -1 is not allowed; expected an integer in [0, 2147483647]"),
    ("stage-unknown", {"stages": ["collect", "teleport"]}, "stages[1]: 'teleport' is not allowed"),
    ("stage-repeated", {"stages": ["collect", "collect"]}, "stages: ['collect', 'collect'] is not allowed; expected a list without repeats"),
    ("workdir-type", {"workdir": 7}, "workdir: 7 is not allowed; expected a path"),
    ("section-type", {"collect": 3}, "collect: 3 is not allowed; expected a mapping with keys source, scenes"),
    ("top-level-list", [1, 2], "(top level): [1, 2] is not allowed; expected a mapping of workdir, seed"),
    ("unknown-section", {"colect": {}}, "colect: unknown key; did you mean collect?"),
    ("curate-engine", {"curate": {"engine": "spark"}}, "curate.engine: 'spark' is not allowed; expected one of local, ray"),
    ("clip-frames", {"curate": {"clip": {"frames": 56}}}, "curate.clip.frames: 56 is not allowed; expected 1 + 4k frames"),
    ("frame-codec", {"curate": {"output": {"frame_codec": "png"}}}, "curate.output.frame_codec: 'png'"),
    ("dedup-lo-above-hi", {"curate": {"dedup": {"lo": 9}}}, "curate.dedup.lo: 9.0 is not allowed; expected a number in [0, hi=5.0]"),
    ("dataset-escape", {"curate": {"dataset": "../escape"}}, "curate.dataset: '../escape' is not allowed"),
    ("rl-batch-vs-rollout", {"rl": {"ppo": {"batch_size": 4096, "n_steps": 64}}},
     "rl.ppo.batch_size: 4096 is not allowed; expected at most a rollout, n_steps * n_envs = 128"),
    ("rl-yaw-bins", {"rl": {"env": {"yaw_bins_deg": [1, 2]}}}, "rl.env.yaw_bins_deg: [1.0, 2.0] is not allowed; expected a list that includes 0"),
    ("rl-preset", {"rl": {"preset": "huge"}}, "rl.preset: 'huge' is not allowed; expected one of default, smoke, bench"),
    ("rl-shield-fallback", {"rl": {"shield": {"fallback": "teleport"}}}, "rl.shield.fallback: 'teleport'"),
    ("train-lr-word", {"train": {"lr": "fast"}}, "train.lr: 'fast' is not allowed; expected a number > 0"),
    ("train-preset", {"train": {"preset": "huge"}}, "train.preset: 'huge' is not allowed; expected one of tiny, mg2-1.3b"),
    ("train-frames", {"train": {"num_frames": 16}}, "train.num_frames: 16 is not allowed; expected 1 + 4k frames"),
    ("train-height", {"train": {"height": 50}}, "train.height: 50 is not allowed; expected an integer >= 16, a multiple of 16"),
    ("train-precision", {"train": {"precision": "fp8"}}, "train.precision: 'fp8' is not allowed; expected one of auto, bf16, fp32"),
    ("train-typo", {"train": {"max_stepz": 3}}, "train.max_stepz: unknown key; did you mean max_steps?"),
    ("train-bool-number", {"train": {"max_steps": True}}, "train.max_steps: True is not allowed; expected an integer >= 1"),
    ("distill-preset", {"distill": {"preset": "big"}}, "distill.preset: 'big' is not allowed; expected one of tiny, mg2"),
    ("dmd-sigma-order", {"distill": {"dmd": {"min_sigma": 0.99}}},
     "distill.dmd.min_sigma: 0.99 is not allowed; expected less than max_sigma (0.98)"),
    ("init-causal", {"distill": {"init": {"causal": "nope"}}}, "distill.init.causal: 'nope' is not allowed; expected null, a causal preset"),
    ("ode-sigmas", {"distill": {"ode_pairs": {"sigmas": [0.5, 0.9]}}}, "distill.ode_pairs.sigmas: [0.5, 0.9] is not allowed"),
    ("generate-frames", {"generate": {"frames": 18}}, "generate.frames: 18 is not allowed; expected 1 + 4k frames"),
    ("generate-models", {"generate": {"models": ["teacher"]}}, "generate.models[0]: 'teacher' is not allowed; expected one of base, student"),
    ("sekai-workers-word", {"imports": {"sekai": {"workers": "two"}}}, "imports.sekai.workers: 'two' is not allowed; expected an integer >= 1"),
    ("generic-scale-word", {"imports": {"generic": {"mouse_scale": "fast"}}}, "imports.generic.mouse_scale: 'fast' is not allowed; expected a number"),
    ("generic-keys-not-mapping", {"imports": {"generic": {"keys": "w"}}}, "imports.generic.keys: 'w' is not allowed; expected a mapping of a string to a string"),
    ("gta-sync", {"imports": {"gta": {"sync": "psychic"}}}, "imports.gta.sync: 'psychic' is not allowed; expected one of auto, marker, motion"),
    ("unreal-width", {"imports": {"unreal": {"width": 33, "height": 24}}}, "imports.unreal.width: 33 is not allowed"),
    ("unreal-width-without-height", {"imports": {"unreal": {"width": 32}}}, "imports.unreal.width: 32 is not allowed; expected width and height together"),
    ("unrealcv-needs-navmesh", {"collect": {"source": "unrealcv", "scenes": ["Map1"]}}, "collect.unrealcv.navmesh: None is not allowed"),
    ("unrealcv-size-conflict", {"collect": {"source": "unrealcv", "unrealcv": {"navmesh": "a.obj", "width": 320}}},
     "collect.unrealcv.width: 320 is not allowed; expected to be left out: collect.width (640) sets it"),
    ("unrealcv-port", {"collect": {"unrealcv": {"port": 70000}}}, "collect.unrealcv.port: 70000 is not allowed; expected an integer in [1, 65535]"),
]


@pytest.fixture()
def bare(tmp_path, monkeypatch):
    """A working directory without a pipeline.yaml (the verbs would otherwise read the repository's)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _assert_exit_2(argv, needle, capsys, bare):
    assert main([str(a) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert needle in err, err
    assert "Traceback" not in err + out and "Nothing was run" in err
    assert not (bare / "runs").exists()  # nothing was written


@pytest.mark.parametrize("doc,needle", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_file_exits_2_naming_the_key(doc, needle, capsys, bare):
    path = bare / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    _assert_exit_2(["run", path], needle, capsys, bare)


#: (id, argv, text the message must contain)
BAD_FLAGS = [
    ("collect-workers", ["collect", "--workers", "0"], "--workers 0: collect.workers: 0 is not allowed"),
    ("collect-scenes", ["collect", "--scenes", "city,moon"], "--scenes city,moon: collect.scenes[1]: 'moon' is not allowed"),
    ("collect-frames-word", ["collect", "--frames", "many"], "--frames many: collect.frames: 'many' is not allowed"),
    ("curate-engine", ["curate", "--engine", "spark"], "--engine spark: curate.engine: 'spark' is not allowed"),
    ("curate-workers-word", ["curate", "--workers", "two"], "--workers two: curate.workers: 'two' is not allowed"),
    ("train-set-lr-word", ["train", "--set", "train.lr=fast"], "--set train.lr=fast: train.lr: 'fast' is not allowed; expected a number > 0"),
    ("set-without-section", ["run", "--set", "max_steps=3"], "--set max_steps=3: max_steps: unknown key; did you mean train.max_steps?"),
    ("set-without-value", ["run", "--set", "train"], "--set: train: expected SECTION.KEY=VALUE"),
    ("set-bad-yaml", ["run", "--set", "collect.scenes=[a"], "collect.scenes=[a: the value is not valid YAML"),
    ("set-list-item", ["config", "show", "--set", "curate.clip={frames: 56}"], "--set curate.clip={frames: 56}: curate.clip.frames: 56 is not allowed"),
    ("set-unknown-nested", ["config", "show", "--set", "rl.ppo.n_env=3"], "rl.ppo.n_env: unknown key; did you mean n_envs?"),
    ("rl-envs", ["rl", "train", "--envs", "0"], "--envs 0: rl.ppo.n_envs: 0 is not allowed; expected an integer in [1, 1024]"),
    ("rl-minutes", ["rl", "train", "--minutes", "0"], "--minutes 0.0: expected a positive number of minutes"),
    ("rl-resume-and-fresh", ["rl", "train", "--resume", "--fresh"], "argument --fresh: not allowed with argument --resume"),
    ("rl-eval-seeds", ["rl", "eval", "x.zip", "--seeds", "0"], "--seeds 0: rl.eval.seeds: 0 is not allowed"),
    ("rl-eval-policies", ["rl", "eval", "x.zip", "--policies", "ppo,oracle"], "rl.eval.policies[1]: 'oracle' is not allowed"),
    ("distill-steps", ["distill", "dmd", "--set", "distill.dmd.max_steps=0"], "distill.dmd.max_steps: 0 is not allowed"),
    ("distill-preset", ["distill", "init", "--preset", "huge"], "--preset huge: distill.preset: 'huge' is not allowed"),
    ("run-stages", ["run", "--stages", "collect,teleport"], "--stages: teleport is not a stage"),
    ("sandbox-time", ["sandbox", "preview", "--time-of-day", "30"], "time_of_day: 30.0 is not allowed; expected a number in [0, 24]"),
    ("sandbox-scene", ["sandbox", "serve", "--scene", "moon"], "scene: 'moon' is not allowed; expected one of city, indoor, park"),
    ("import-sekai-workers-word", ["import", "sekai", ".", "--set", "imports.sekai.workers=two"],
     "imports.sekai.workers: 'two' is not allowed; expected an integer >= 1"),
    ("import-gta-min-frames", ["import", "gta", "rec", "--min-frames", "0"], "--min-frames 0: imports.gta.min_episode_frames: 0"),
    ("config-missing-file", ["run", "nowhere.yaml"], "nowhere.yaml: no such file"),
    ("encode-latents-batch", ["encode-latents", ".", "--vae", ".", "--batch-size", "0"], "argument --batch-size: 0: expected an integer >= 1"),
]


#: usage errors argparse itself reports (exit 2 with the usage line)
ARGPARSE = {"rl-resume-and-fresh", "encode-latents-batch"}


@pytest.mark.parametrize("case", BAD_FLAGS, ids=[c[0] for c in BAD_FLAGS])
def test_bad_flag_exits_2_naming_the_key(case, capsys, bare):
    name, argv, needle = case
    if name in ARGPARSE:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and "usage: playmill" in err
        return
    _assert_exit_2(argv, needle, capsys, bare)


def test_the_corpus_is_large():
    assert len(BAD_CONFIGS) + len(BAD_FLAGS) >= 40


def test_conflicting_generate_options_exit_2(capsys, bare):
    for name in ("ckpt.safetensors", "first.png", "a.csv"):
        (bare / name).write_text("x")
    base = ["generate", "--checkpoint", "ckpt.safetensors", "--image", "first.png", "-o", "o.mp4"]
    assert main(base + ["--model", "base", "--interactive"]) == 2
    assert "--interactive streams actions block by block: it needs --model student" in capsys.readouterr().err
    assert main(base + ["--model", "base", "--actions", "a.csv", "--mode", "universal"]) == 2
    assert "--mode: for Matrix-Game 2.0 distilled checkpoints" in capsys.readouterr().err
    assert main(base + ["--actions", "a.csv", "--interactive", "--model", "student"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(base + ["--actions", "a.csv", "--frames", "18"]) == 2
    assert "argument --frames: 18 frames: expected 1 + 4k frames" in capsys.readouterr().err


def test_yaml_reads_1e_4_as_a_string_and_the_schema_reads_it_as_a_number(bare):
    from playmill.config import load_config

    (bare / "pipeline.yaml").write_text("train: {lr: 1e-4, max_steps: 2e3}\nrl: {ppo: {learning_rate: 3e-4}}\n")
    assert yaml.safe_load((bare / "pipeline.yaml").read_text())["train"]["lr"] == "1e-4"  # what YAML 1.1 does
    cfg = load_config()
    assert cfg.train.lr == 1e-4 and cfg.train.max_steps == 2000 and cfg.rl.ppo.learning_rate == 3e-4


def test_import_settings_are_checked_by_the_libraries_too(bare):
    from curation.generic import GenericMapping
    from curation.importers import SekaiImportConfig, import_sekai

    with pytest.raises(ConfigError, match=r"workers: 'two' is not allowed; expected an integer >= 1"):
        import_sekai(bare, bare / "eps", {"workers": "two"})
    with pytest.raises(ConfigError) as info:
        GenericMapping.from_dict({"mouse_scale": "fast", "keys": "w"}, "map.yaml")
    assert "map.yaml: mouse_scale: 'fast' is not allowed; expected a number" in str(info.value)
    assert "map.yaml: keys: 'w' is not allowed; expected a mapping" in str(info.value)
    with pytest.raises(ConfigError, match=r"keys.jump: 'Space' is not allowed; expected a column for a key of"):
        GenericMapping.from_dict({"keys": {"jump": "Space"}})
    assert SekaiImportConfig.from_dict({"workers": "2"}).workers == 2


def test_import_generic_mapping_file_with_bad_values_exits_2(capsys, bare):
    for name in ("clip.mp4", "actions.csv"):
        (bare / name).write_text("x")
    (bare / "map.yaml").write_text("keys: w\nmouse_scale: fast\n")
    assert main(["import", "generic", "clip.mp4", "actions.csv", "--mapping", "map.yaml"]) == 2
    err = capsys.readouterr().err
    assert "map.yaml: mouse_scale: 'fast' is not allowed; expected a number" in err
    assert "map.yaml: keys: 'w' is not allowed; expected a mapping" in err and "Traceback" not in err


def test_verbs_do_not_crash_on_their_flags(capsys, bare):
    """Regression: `curate --workers 2` and `curate --engine ray` raised FrozenInstanceError. Now they are
    overrides like any other: with no episodes the stage fails with its reason (exit 1), never a traceback."""
    for argv in (["curate", "--workers", "2", "--no-progress"], ["curate", "--engine", "ray", "--no-progress"]):
        assert main(argv) in (0, 1)
        out, err = capsys.readouterr()
        assert "FrozenInstanceError" not in out + err and "Traceback" not in out + err
        assert out.splitlines()[0].split()[:2] == ["stage", "status"] and out.splitlines()[1].startswith("curate")


def test_config_show_prints_every_default_and_is_valid_input(capsys, bare):
    assert main(["config", "show", "--set", "train.preset=mg2-1.3b"]) == 0
    text = capsys.readouterr().out
    doc = yaml.safe_load(text)
    assert doc["train"]["preset"] == "mg2-1.3b" and doc["train"]["num_frames"] == 57
    assert doc["workdir"] == str(Path.cwd() / "runs" / "default")
    (bare / "resolved.yaml").write_text(text)
    assert main(["config", "show", "resolved.yaml"]) == 0 and capsys.readouterr().out == text
    assert main(["config", "schema"]) == 0 and '"title": "playmill pipeline.yaml"' in capsys.readouterr().out
