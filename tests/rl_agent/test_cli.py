"""`playmill rl train` / `playmill rl eval` through playmill.cli.main: token budgets (a few seconds each).

Training runs in the box world (``--world tests.rl_agent.fakeworlds:...``, in-process ``--vec-env dummy``) so that
the tests stay fast; evaluation runs in the sandbox, as it always does."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from playmill.cli import main
from playmill.cli_rl import UNBOUNDED_TIMESTEPS
from rl_agent.checkpoint import read_checkpoint_meta
from rl_agent.run import tensorboard_installed

from . import fakeworlds

BOX = "tests.rl_agent.fakeworlds:make_box_world"
SETS = ["env.scenes=[indoor]", "env.max_frames=40", "env.obs_width=36", "env.obs_height=36", "env.render_width=36",
        "env.render_height=36", "env.rays=4", "env.train_seed_pool=2", "ppo.n_steps=32", "ppo.batch_size=32",
        "ppo.n_epochs=1", "ppo.cnn_features=16", "ppo.net_arch=[16]"]
TINY = ["--envs", "1", "--vec-env", "dummy", "--no-progress"] + [a for s in SETS for a in ("--set", "rl." + s)]


def run_cli(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("rlcli") / "run"
    rc, out, err = run_cli("rl", "train", "--out", run, "--timesteps", 64, "--checkpoint-every", 32, "--world", BOX, *TINY)
    assert rc == 0, err
    assert "64 decisions now (64 in all)" in out and f"next:   playmill rl eval {run / 'policy.zip'}" in out
    assert out.splitlines()[0].split()[:2] == ["stage", "status"] and out.splitlines()[1].split()[:2] == ["rl", "done"]
    return run


def copy_run(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def test_train_writes_a_run_folder(trained):
    run = trained
    assert (run / "policy.zip").is_file()
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt_*.zip")) == ["ckpt_000000000032.zip", "ckpt_000000000064.zip"]
    res = json.loads((run / "train_result.json").read_text())
    assert res["num_timesteps"] == 64 and res["trained_timesteps"] == 64 and res["stopped_by"] == "timesteps"
    assert res["resumed_from"] is None and Path(res["learning_curves_png"]).stat().st_size > 1000
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["ppo"]["n_envs"] == 1 and cfg["env"]["scenes"] == ["indoor"] and cfg["ppo"]["net_arch"] == [16]
    assert ("tensorboard" in cfg["ppo"]["log_formats"]) == tensorboard_installed()
    meta = read_checkpoint_meta(run / "policy.zip")
    assert meta["num_timesteps"] == 64 and meta["observation_space"]["image"] == [3, 36, 36]


def test_rerun_needs_resume_and_resume_continues(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    rc, out, err = run_cli("rl", "train", "--out", run, "--timesteps", 96, "--world", BOX, *TINY)
    assert rc == 2 and "holds checkpoints of a previous run" in err and "--resume" in err and "--fresh" in err
    rc, out, err = run_cli("rl", "train", "--out", run, "--resume", "--timesteps", 96, "--world", BOX, *TINY)
    assert rc == 0, err
    res = json.loads((run / "train_result.json").read_text())
    assert res["resumed_from"].endswith("ckpt_000000000064.zip") and res["num_timesteps"] == 96 and res["trained_timesteps"] == 32
    assert "resumed from ckpt_000000000064.zip" in out
    rc, out, _ = run_cli("rl", "train", "--out", run, "--resume", "--timesteps", 96, "--world", BOX, *TINY)
    assert rc == 0 and "rl     skipped" in out and "already trained to 96 decisions: raise --timesteps" in out
    rc, out, err = run_cli("rl", "train", "--out", run, "--fresh", "--timesteps", 32, "--world", BOX, *TINY)
    assert rc == 0, err
    assert sorted(p.name for p in (run / "checkpoints").glob("*.zip")) == ["ckpt_000000000032.zip"]
    assert json.loads((run / "train_result.json").read_text())["resumed_from"] is None


def test_eval_side_by_side_writes_csv_json_and_curves(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    (run / "learning_curves.png").unlink()
    rc, out, err = run_cli("rl", "eval", run, "--seeds", 1, "--steps", 30, "--workers", 1, "--policies", "ppo,random,wander",
                           "--shield", "--plot", "--no-progress")
    assert rc == 0, err
    assert "coverage %" in out and "ppo / random: coverage" in out
    with open(run / "policy.eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["policy"] for r in rows] == ["ppo", "ppo+shield", "random", "wander"]
    for r in rows:
        assert int(r["episodes"]) == 1 and int(r["frames"]) == 30  # the checkpoint's one scene x 1 seed
        assert 0 < float(r["coverage_pct"]) <= 100 and float(r["collisions_per_1k"]) >= 0
        assert 0 <= float(r["stuck_pct"]) <= 100 and float(r["action_entropy_bits"]) >= 0
    doc = json.loads((run / "policy.eval.json").read_text())
    assert doc["checkpoint"] == str(run / "policy.zip") and doc["num_timesteps"] == 64 and doc["scene_seeds"] == [2**30]
    assert {"coverage_vs_random", "collisions_vs_random"} <= set(doc) and len(doc["episodes"]) == 4
    assert (run / "learning_curves.png").stat().st_size > 1000


def test_checkpoint_of_another_action_space_exits_1(trained, tmp_path):
    """A checkpoint that does not fit the settings, or that cannot be read, is unusable data: exit 1 with the reason,
    nothing written (capture.errors.InputError). A checkpoint path that does not exist is a usage error: exit 2."""
    run = copy_run(trained, tmp_path)
    rc, out, err = run_cli("rl", "eval", run / "policy.zip", "--set", "rl.env.yaw_bins_deg=[-4,0,4]", "--steps", 10,
                           "--out-dir", tmp_path / "ev")
    assert rc == 1 and "action_space.nvec: checkpoint has [3, 3, 2, 2, 7, 3]" in err and "its own settings" in err
    assert not (tmp_path / "ev").exists()
    before = (run / "config.json").read_text()
    rc, out, err = run_cli("rl", "train", "--out", run, "--resume", "--timesteps", 128, "--world", BOX, *TINY,
                           "--set", "rl.env.yaw_bins_deg=[-4,0,4]")
    assert rc == 1 and "checkpoint does not match the configured environment" in out  # the stage failed, its reason
    assert (run / "config.json").read_text() == before and not (run / "checkpoints" / "ckpt_000000000128.zip").exists()
    # metadata that lies about the weights
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(run / "policy.zip") as src, zipfile.ZipFile(forged, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "playmill_rl.json":
                meta = json.loads(data)
                meta["config"]["env"]["yaw_bins_deg"] = [-4.0, 0.0, 4.0]
                meta["action_space"].update(nvec=[3, 3, 2, 2, 3, 3], yaw_bins_deg=[-4.0, 0.0, 4.0])
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    rc, _, err = run_cli("rl", "eval", forged, "--steps", 10)
    assert rc == 1 and "weights do not fit" in err
    rc, _, err = run_cli("rl", "eval", run / "config.json", "--steps", 10)
    assert rc == 1 and "not a zip file" in err
    rc, _, err = run_cli("rl", "eval", tmp_path / "missing.zip")
    assert rc == 2 and "no such checkpoint" in err and "Nothing was run" in err
    rc, _, err = run_cli("rl", "eval", tmp_path, "--steps", 10)
    assert rc == 1 and "without policy.zip" in err


def test_bad_config_exits_2_naming_the_key(tmp_path):
    out = tmp_path / "run"
    rc, _, err = run_cli("rl", "train", "--out", out, "--set", "rl.ppo.n_env=3", "--set", "rl.env.scenes=[mars]")
    assert rc == 2 and "rl.ppo.n_env: unknown key; did you mean n_envs?" in err
    assert "rl.env.scenes[0]: 'mars' is not allowed" in err
    rc, _, err = run_cli("rl", "train", "--out", out, "--set", "n_envs=3")
    assert rc == 2 and "did you mean rl.ppo.n_envs?" in err
    bad = tmp_path / "pipeline.yaml"
    bad.write_text("rl:\n  ppo: {batch_size: 4096, n_steps: 64}\n")
    rc, _, err = run_cli("rl", "train", bad, "--out", out, "--envs", 2)
    assert rc == 2 and "rl.ppo.batch_size: 4096 is not allowed; expected at most a rollout, n_steps * n_envs = 128" in err
    bad.write_text("rl:\n  ppo: {n_envs: 2}\n  envv: {}\n")
    rc, _, err = run_cli("rl", "train", bad, "--out", out)
    assert rc == 2 and "rl.envv: unknown key; did you mean env?" in err
    rc, _, err = run_cli("rl", "train", "--out", out, "--world", "no_such_module:factory")
    assert rc == 2 and "cannot import no_such_module:factory" in err
    rc, _, err = run_cli("rl", "train", "--out", out, "--minutes", "-1")
    assert rc == 2 and "--minutes -1.0: expected a positive number of minutes" in err
    assert not (out / "checkpoints").exists()  # nothing was run


def test_config_precedence_and_budget_flags(tmp_path):
    import argparse

    from playmill.cli import load

    pipe = tmp_path / "pipeline.yaml"
    pipe.write_text("rl:\n  preset: smoke\n  ppo: {n_envs: 3, seed: 7}\n")

    def cfg_of(*flags):
        ns = argparse.Namespace(config=pipe, overrides=[], sugar={"sugar_envs": ("rl.ppo.n_envs", "--envs", False)},
                                sugar_envs=None)
        for f in flags:
            if f.startswith("--envs="):
                ns.sugar_envs = f.partition("=")[2]
            else:
                ns.overrides.append(f)
        return load(ns).rl

    cfg = cfg_of("rl.ppo.seed=9", "rl.ppo.learning_rate=1e-4")
    assert cfg.env.scenes == ("indoor",) and cfg.env.max_frames == 256  # the preset named in the file
    assert cfg.ppo.n_envs == 3 and cfg.ppo.seed == 9 and cfg.ppo.learning_rate == 1e-4  # file < --set
    assert cfg_of("--envs=4").ppo.n_envs == 4 and cfg_of("--envs=4", "rl.ppo.n_envs=5").ppo.n_envs == 5
    pipe.write_text("rl:\n  env: {scenes: [park]}\n  ppo: {n_envs: 3}\n")  # no preset: the default one
    cfg = cfg_of()
    assert cfg.env.scenes == ("park",) and cfg.ppo.n_envs == 3 and cfg.ppo.total_timesteps == 200_000
    assert UNBOUNDED_TIMESTEPS == 10**9


def test_crashing_world_is_restarted_and_reported(tmp_path):
    fakeworlds.CRASHES["left"] = 1
    run = tmp_path / "run"
    rc, out, err = run_cli("rl", "train", "--out", run, "--timesteps", 32, "--world",
                           "tests.rl_agent.fakeworlds:crash_once_box_world", "--no-plot", *TINY)
    assert rc == 0, err
    assert fakeworlds.CRASHES["left"] == 0  # it did crash
    assert "1 world crash(es) mid-episode: each world was restarted and its episode truncated" in out
    assert json.loads((run / "train_result.json").read_text())["world_restarts"] == 1
    with open(run / "logs" / "episodes.csv", newline="") as f:
        assert [r["world_restarted"] for r in csv.DictReader(f)].count("1") == 1


def test_nan_observation_stops_training_with_exit_1(tmp_path):
    rc, out, err = run_cli("rl", "train", "--out", tmp_path / "run", "--timesteps", 32, "--world",
                           "tests.rl_agent.fakeworlds:nan_box_world", *TINY)
    assert rc == 1 and "ObservationError" in out and "observation field pos_cm is not finite" in out and "--resume" in out
