"""End to end on the sandbox: `playmill run` writes valid episodes whose actions are exactly the inputs that
moved the camera (replayed in a fresh world with the same seed: same poses to 1e-9); validate; preview."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from capture.episode import list_episodes, read_episode
from capture.replay import replay_pose_error
from capture.validate import validate_episode
from playmill.cli import main
from playmill.config import load_config, parse_config
from playmill.stages import make_sandbox_world, run_pipeline

ROOT = Path(__file__).resolve().parents[2]

SMALL = {
    "workdir": "run",
    "seed": 4,
    "stages": ["collect", "curate"],
    "collect": {"scenes": ["city", "indoor", "park"], "episodes_per_scene": 1, "frames": 60, "fps": 25,
                "width": 160, "height": 96, "workers": 2,
                "sandbox": {"weather": ["clear", "fog"], "time_of_day": {"min": 8, "max": 18},
                            "npc_density": 1.0, "vehicle_density": 1.0}},
    "curate": {"workers": 2, "clip": {"frames": 17, "stride": 17, "height": 64, "width": 112},
               "split": {"val": 0.0, "test": 0.1, "salt": 1}},  # the park episode is held out for test
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    cfg_path = d / "pipeline.yaml"
    cfg_path.write_text(yaml.safe_dump(SMALL))
    cfg = load_config(cfg_path)
    run = run_pipeline(cfg, progress=False)
    assert run.exit_code == 0, run.table()
    return cfg, run.results["collect"], run.results["curate"]


def test_run_writes_valid_episodes_from_every_scene(small_run):
    cfg, res, _ = small_run
    assert not res.failed, res.failed
    eps = list_episodes(cfg.episodes_dir)
    assert len(eps) == 3
    scenes = set()
    for ep_dir in eps:
        assert validate_episode(ep_dir) == []
        ep = read_episode(ep_dir)
        scenes.add(ep.meta.scene)
        assert ep.meta.source == "sandbox" and ep.meta.frame_count == 60
        assert (ep.meta.width, ep.meta.height, ep.meta.fps) == (160, 96, 25.0)
        assert ep.meta.config["weather"] in ("clear", "fog") and 8 <= ep.meta.config["time_of_day"] <= 18
        assert ep.keyboard()[1:].any(), "the controller pressed no key at all"
    assert scenes == {"city", "indoor", "park"}
    report = json.loads((cfg.workdir / "reports" / "collect.json").read_text())
    assert report["planned"] == 3 and len(report["written"]) == 3
    # the complete resolved config is kept beside the outputs, and loads back to the run's config
    assert load_config(cfg.episodes_dir / "pipeline.resolved.yaml") == cfg
    assert parse_config(report["config"], "report") == cfg


def test_replaying_the_actions_reproduces_the_poses(small_run):
    cfg, _, _ = small_run
    for ep_dir in list_episodes(cfg.episodes_dir):
        ep = read_episode(ep_dir)
        params = {k: ep.meta.config[k] for k in ("weather", "time_of_day", "npc_density", "vehicle_density")}
        world = make_sandbox_world(ep.meta.scene, params, width=64, height=48, fps=ep.meta.fps, fov_deg=90.0)
        try:
            pos_err, quat_err = replay_pose_error(world, ep)
        finally:
            world.close()
        assert pos_err < 1e-9 and quat_err < 1e-9, (ep_dir.name, pos_err, quat_err)
        assert np.ptp(ep.poses()[:, :3], axis=0).max() > 50.0, "the agent barely moved"


def test_curate_stage_writes_verified_shards_that_pandas_and_duckdb_open(small_run, capsys):
    import duckdb
    import pandas as pd

    from curation import ShardIterableDataset, verify_shards

    cfg, _, cur = small_run
    assert cur.clips >= 3 and verify_shards(cfg.shards_dir) == []
    assert (cfg.shards_dir / "report.html").is_file()
    df = pd.read_parquet(cfg.shards_dir / "part-00000.parquet")
    assert set(df["source"]) == {"sandbox"} and (df["num_frames"] == 17).all()
    n = duckdb.sql(f"select count(*) from read_parquet('{cfg.shards_dir}/part-*.parquet')").fetchall()[0][0]
    assert n == cur.clips
    clip = next(iter(ShardIterableDataset(cfg.shards_dir, shuffle=False)))
    assert tuple(clip["frames"].shape) == (17, 3, 64, 112)
    assert main(["inspect", str(cfg.shards_dir), "--verify", "--no-report"]) == 0
    assert "verify: ok" in capsys.readouterr().out


def test_rerun_skips_everything_and_says_so_in_one_table(small_run):
    cfg, _, _ = small_run
    run = run_pipeline(cfg, progress=False)
    assert len(run.results["collect"].skipped) == 3 and not run.results["collect"].written
    assert run.results["curate"].up_to_date
    assert [s.status for s in run.stages] == ["skipped", "skipped"] and run.exit_code == 0
    table = run.table(cfg.workdir)
    lines = table.splitlines()
    assert lines[0].split() == ["stage", "status", "time", "wrote", "where"]
    assert lines[1].startswith("collect") and "0 episode(s), 3 already there, 0 failed" in lines[1]
    assert lines[1].rstrip().endswith("episodes") and lines[2].rstrip().endswith("shards/default")
    assert "open:" in table and table.rstrip().endswith("shards/default/report.html")


def test_cli_validate_reports_a_corrupted_episode(small_run, tmp_path, capsys):
    import shutil

    cfg, _, _ = small_run
    src = list_episodes(cfg.episodes_dir)[0]
    bad = tmp_path / src.name
    shutil.copytree(src, bad)
    lines = (bad / "actions.csv").read_text().splitlines()
    cells = lines[5].split(",")
    cells[lines[0].split(",").index("qw")] = "nan"
    lines[5] = ",".join(cells)
    (bad / "actions.csv").write_text("\n".join(lines) + "\n")
    assert main(["validate", str(src)]) == 0
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "qw" in out and "actions.csv" in out


def test_action_labels_are_checked_against_the_video(small_run, tmp_path, capsys):
    """validate --actions and the curation stage catch a flipped yaw sign and name the fix; clean episodes pass."""
    import shutil

    import pandas as pd

    from curation import curate

    cfg, _, _ = small_run
    eps = tmp_path / "episodes"
    src = list_episodes(cfg.episodes_dir)[0]  # city: the navmesh tour turns at corners
    shutil.copytree(src, eps / src.name)
    bad = eps / (src.name + "-flipped")
    shutil.copytree(src, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["episode_id"] = bad.name
    (bad / "meta.json").write_text(json.dumps(meta))
    df = pd.read_csv(bad / "actions.csv")
    df["d_yaw"] = -df["d_yaw"]
    df.to_csv(bad / "actions.csv", index=False, float_format="%.17g")
    assert main(["validate", "--no-video", "--actions", str(eps / src.name)]) == 0
    capsys.readouterr()
    assert main(["validate", "--no-video", "--actions", str(eps)]) == 1
    out = capsys.readouterr().out
    assert f"FAILED  {bad.name}" in out and "fix: negate d_yaw" in out and f"ok      {src.name}" in out
    res = curate(eps, tmp_path / "shards", {"clip": {"frames": 9, "stride": 9, "height": 32, "width": 64}},
                 progress=False)
    rej = pd.read_parquet(tmp_path / "shards" / "rejects.parquet")
    row = rej[(rej["stage"] == "consistency") & (rej["kind"] == "episode")]
    assert list(row["episode_id"]) == [bad.name] and "negate d_yaw" in row["reason"].iloc[0]
    assert res.rejected == 1 and res.clips > 0
    m = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert m["consistency"]["episodes"][src.name]["ok"] and not m["consistency"]["episodes"][bad.name]["ok"]
    rows = pd.read_parquet(tmp_path / "shards" / "part-00000.parquet")
    assert {"check_yaw_r", "check_flags", "split"} <= set(rows.columns) and (rows["episode_id"] == src.name).all()


def test_cli_sandbox_preview_writes_a_png(tmp_path):
    import cv2

    out = tmp_path / "city.png"
    assert main(["sandbox", "preview", "--scene", "city", "--seed", "3", "-o", str(out),
                 "--width", "160", "--height", "96"]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape == (96, 160, 3) and img.std() > 10


def test_console_script_runs_a_pipeline(tmp_path):
    cfg = dict(SMALL, collect=dict(SMALL["collect"], scenes=["park"], frames=20, workers=1))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    exe = Path(sys.executable).with_name("playmill")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "playmill"]
    proc = subprocess.run(cmd + ["run", str(tmp_path / "p.yaml"), "--no-progress"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()  # the summary comes last, in order: the table, then what to open
    assert lines[0].split()[:2] == ["stage", "status"] and "1 episode(s), 0 already there, 0 failed" in lines[1]
    assert lines[2].startswith("curate") and " done " in lines[2] and lines[-2] == "open:"
    assert lines[-1].strip().endswith("report.html")
    assert len(list_episodes(tmp_path / "run" / "episodes")) == 1


def test_train_and_generate_stages_on_the_sandbox_shards(small_run, capsys, monkeypatch):
    """train (dataset auto: the episodes curated again at the model's clip size; the train split only) -> generate
    (base model, first frame and recorded actions of the held-out test episode) -> mp4, comparison strip and
    reports; a rerun resumes; distill; eval on the test episode."""
    import cv2

    from capture.video import probe_video

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions on a busy 2-core machine: one thread is several times faster
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    cfg, _, _ = small_run
    train = dict(height=32, width=64, num_frames=9, batch_size=4, max_steps=30, vae_train_steps=5,
                 vae_clips=4, log_every=10, val_every=15, ckpt_every=15, val_clips=2)
    sets = [f"train.{k}={v}" for k, v in train.items()]
    cfg = load_config(cfg.workdir.parent / "pipeline.yaml", sets + ["generate={models: [base], frames: 9, steps: 3}"])
    run = run_pipeline(cfg, ["generate", "train"], progress=False)  # run in pipeline order: train first
    assert [s.stage for s in run.stages] == ["train", "generate"] and run.exit_code == 0, run.table()
    assert run.open == [cfg.workdir / "generate" / "comparison.png"]
    assert (cfg.models_dir / "base" / "pipeline.resolved.yaml").is_file()
    results = run.results
    derived = cfg.workdir / "shards" / "default-64x32x9"
    manifest = json.loads((derived / "manifest.json").read_text())
    assert (manifest["clip_frames"], manifest["height"], manifest["width"]) == (9, 32, 64)
    res = results["train"]
    assert res.steps == 30 and np.isfinite(res.final_loss) and res.checkpoint.is_dir()
    mp4 = results["generate"]["base"]
    info = probe_video(mp4)
    assert (info.width, info.height, info.frame_count) == (64, 32, 9)
    strip = cv2.imread(str(cfg.workdir / "generate" / "comparison.png"))
    assert strip is not None and strip.shape[0] == 2 * 32  # the recording above the generated video
    gen = json.loads((cfg.workdir / "reports" / "generate.json").read_text())
    test_ep = list_episodes(cfg.episodes_dir)[-1].name  # park: the held-out test episode (curate.split)
    assert gen["episode"] == test_ep and Path(gen["videos"]["base"]) == mp4
    from curation.reader import ShardDataset

    trained = {ShardDataset(derived, split="train", decode=False)[i]["episode_id"]
               for i in range(len(ShardDataset(derived, split="train", decode=False)))}
    assert trained and test_ep not in trained  # the models never see the test episode
    assert json.loads((derived / "manifest.json").read_text())["split"]["episodes"][test_ep] == "test"
    assert json.loads((cfg.workdir / "reports" / "train.json").read_text())["shards"] == str(derived)
    # the CLI verbs reach the same library calls: train resumes the finished run (nothing new), generate writes
    capsys.readouterr()
    pipeline = str(cfg.workdir.parent / "pipeline.yaml")
    assert main(["train", pipeline, "--shards", str(derived), "--preset", "tiny",
                 *[f"--set={x}" for x in sets], "--set", "train.max_steps=45", "--no-progress"]) == 0
    out = capsys.readouterr().out  # regression: resuming a finished run to more steps printed a TypeError
    assert "train  done" in out and "45 steps" in out and "validation" in out, out
    out = cfg.workdir / "cli.mp4"
    assert main(["generate", "--model", "base", "--checkpoint", str(cfg.models_dir / "base"), "--image",
                 gen["image"], "--actions", gen["actions"], "--frames", "5", "--steps", "2", "-o", str(out),
                 "--no-progress"]) == 0
    assert probe_video(out).frame_count == 5
    # bad input: a missing checkpoint -> exit 2 (a path that does not exist); actions too short for the requested
    # frames -> exit 1 (the data does not fit), each with the reason
    assert main(["generate", "--checkpoint", str(cfg.workdir / "nope"), "--image", gen["image"], "--actions",
                 gen["actions"], "-o", str(out), "--no-progress"]) == 2
    assert "nope: no such checkpoint" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(cfg.models_dir / "base"), "--image", gen["image"], "--actions",
                 gen["actions"], "--frames", "401", "-o", str(out), "--no-progress"]) == 1
    assert "only 60 rows" in capsys.readouterr().err

    # distill (ODE pairs -> student init -> DMD) on the same shards, then both models generate: the student
    # streams past the teacher's clip length
    distill = ["distill.ode_pairs={num_pairs: 4, teacher_steps: 6, batch_size: 4}",
               "distill.init={max_steps: 6, batch_size: 2, val_every: 3, val_pairs: 2, ckpt_every: 3}",
               "distill.dmd={max_steps: 2, batch_size: 1, log_every: 1, ckpt_every: 2}"]
    cfg = load_config(pipeline, sets + distill + ["generate={frames: 9, steps: 2, student_frames: 21}"])
    run = run_pipeline(cfg, ["distill", "generate"], progress=False)
    assert run.exit_code == 0, run.table()
    results = run.results
    d = results["distill"]
    assert d["ode_pairs"].out_dir == cfg.models_dir / "ode_pairs"
    assert (cfg.models_dir / "student" / "checkpoints" / "latest").is_file()
    assert set(results["generate"]) == {"base", "student"}
    assert probe_video(results["generate"]["student"]).frame_count == 21
    strip = cv2.imread(str(cfg.workdir / "generate" / "comparison.png"))
    assert strip.shape[0] == 3 * 32  # recording, base, student
    assert json.loads((cfg.workdir / "reports" / "distill.json").read_text())["stage"] == "distill"
    # the CLI step reaches the same run: DMD with the same settings resumes at its last step (nothing new)
    capsys.readouterr()
    assert main(["distill", "dmd", pipeline, "--shards", str(derived), "--preset", "tiny",
                 *[f"--set={x}" for x in sets + distill], "--no-progress"]) == 0
    assert "resumed_from 2" in capsys.readouterr().out
    out = cfg.workdir / "student-cli.mp4"
    assert main(["generate", "--model", "student", "--checkpoint", str(cfg.models_dir / "student"), "--image",
                 gen["image"], "--actions", gen["actions"], "--frames", "13", "-o", str(out), "--no-progress"]) == 0
    assert probe_video(out).frame_count == 13
    import pandas as pd

    bad = cfg.workdir / "no-mouse.csv"
    pd.read_csv(gen["actions"]).drop(columns=["d_yaw"]).to_csv(bad, index=False)
    capsys.readouterr()
    assert main(["generate", "--model", "student", "--checkpoint", str(cfg.models_dir / "student"), "--image",
                 gen["image"], "--actions", str(bad), "-o", str(out), "--no-progress"]) == 1  # an unusable input
    assert "no-mouse.csv: the actions lack columns ['d_yaw']" in capsys.readouterr().err

    # eval on the held-out test episode (the verb runs the eval stage): baselines and both models -> eval.json
    # (with the resolved config) and eval.html
    capsys.readouterr()
    assert main(["eval", pipeline, *[f"--set={x}" for x in sets + distill], "--set", "generate.student_frames=21",
                 "--set", "eval={steps: 2, loops: [8]}", "--episodes", "1", "--no-scripts", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:2] == ["eval", "done"] for line in out.splitlines()), out
    assert "1 test episode(s), mouse kappa base" in out and out.strip().endswith("eval.html"), out
    rep = json.loads((cfg.workdir / "reports" / "eval.json").read_text())
    assert rep["episodes"] == [test_ep] and rep["models"] == ["base", "student"]
    assert rep["config"]["eval"]["scripts"] is False and rep["split"]["test"] == 0.1
    r = rep["results"][0]
    assert r["baselines"]["recording"]["controllability"]["mouse_kappa"] > 0.6  # the recording follows its actions
    assert abs(r["baselines"]["recording_shuffled_actions"]["controllability"]["mouse_kappa"]) < 0.35  # chance
    assert r["models"]["student"]["frames"] == 21 and len(r["models"]["base"]["recorded"]["fidelity"]["psnr_curve"]) == 9
    assert {lp["kind"] for lp in r["models"]["student"]["loops"]} == {"turn", "walk"}
    assert rep["summary"]["recording"]["mouse_acc"] > 0.8
    assert "Summary" in (cfg.workdir / "reports" / "eval.html").read_text()
    monkeypatch.undo()
    torch.set_num_threads(threads)


def test_torchrun_trains_with_fsdp_from_the_cli(small_run, tmp_path):
    """`torchrun --standalone --nproc_per_node 2 -m playmill train --set train.parallel=fsdp` as written, on the CPU
    (gloo), with ./pipeline.yaml: dataset auto curates the episodes at the model's clip size on rank 0 while rank 1
    waits, both train the sharded model, rank 0 alone reports."""
    cfg, _, _ = small_run
    doc = dict(SMALL, workdir=str(cfg.workdir),
               train={"dataset": "auto", "height": 32, "width": 64, "num_frames": 5, "batch_size": 2, "max_steps": 4,
                      "vae_train_steps": 5, "vae_clips": 4, "log_every": 2, "val_every": 4, "ckpt_every": 4,
                      "val_clips": 2})
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(doc))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "playmill", "train", "--set", "train.parallel=fsdp", "--out", str(tmp_path / "run"), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("train ")]  # one summary: rank 0's
    assert len(rows) == 1 and rows[0].split()[1] == "done" and " 4 steps, loss " in rows[0], proc.stdout
    assert (tmp_path / "run" / "pipeline.resolved.yaml").is_file()  # rank 0 records the run
    assert yaml.safe_load((tmp_path / "run" / "pipeline.resolved.yaml").read_text())["train"]["parallel"] == "fsdp"
    derived = cfg.workdir / "shards" / "default-64x32x5"
    manifest = json.loads((derived / "manifest.json").read_text())
    assert (manifest["clip_frames"], manifest["height"], manifest["width"]) == (5, 32, 64)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-000004" / "state.json").read_text())
    assert state["world_size"] == 2 and state["run"]["train"]["parallel"] == "fsdp"
    assert state["run"]["dataset"]["shards"] == str(derived.resolve())


def test_rl_stage_then_collection_by_the_trained_policy(tmp_path):
    """stages [rl, collect] with controller ppo: the rl stage writes models/rl/policy.zip (and its curves), then
    collect records a valid episode by that policy; without a policy the collect stage says how to get one."""
    from playmill.stages import run_collect

    doc = {"workdir": "run", "seed": 1, "stages": ["collect", "rl"],
           "rl": {"env": {"scenes": ["indoor"], "max_frames": 64},
                  "ppo": {"total_timesteps": 64, "n_envs": 1, "vec_env": "dummy", "n_steps": 32, "batch_size": 32,
                          "n_epochs": 1, "checkpoint_every": 32}},
           "collect": {"scenes": ["indoor"], "episodes_per_scene": 1, "frames": 30, "width": 160, "height": 96,
                       "workers": 1, "controller": "ppo"}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_config(tmp_path / "p.yaml")
    with pytest.raises(FileNotFoundError, match="controller is ppo but there is no policy at .*playmill rl train"):
        run_collect(cfg, progress=False)
    run = run_pipeline(cfg, progress=False)  # rl runs first: collect needs its policy
    assert run.exit_code == 0, run.table()
    results = run.results
    assert results["rl"].checkpoint == cfg.models_dir / "rl" / "policy.zip" and results["rl"].checkpoint.is_file()
    assert json.loads((cfg.workdir / "reports" / "rl.json").read_text())["num_timesteps"] >= 64
    assert not results["collect"].failed, results["collect"].failed
    (ep_dir,) = list_episodes(cfg.episodes_dir)
    assert validate_episode(ep_dir) == []
    ep = read_episode(ep_dir)
    assert ep.meta.frame_count == 30 and ep.keyboard().any()
