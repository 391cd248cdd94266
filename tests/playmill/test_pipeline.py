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
from playmill.config import load_config
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
    "curate": {"workers": 2, "clip": {"frames": 17, "stride": 17, "height": 64, "width": 112}},
}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    cfg_path = d / "pipeline.yaml"
    cfg_path.write_text(yaml.safe_dump(SMALL))
    cfg = load_config(cfg_path)
    results = run_pipeline(cfg, progress=False)
    return cfg, results["collect"], results["curate"]


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


def test_rerun_skips_everything(small_run):
    cfg, _, _ = small_run
    results = run_pipeline(cfg, progress=False)
    assert len(results["collect"].skipped) == 3 and not results["collect"].written
    assert results["curate"].up_to_date


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
    assert "1 episode(s) written" in proc.stdout
    assert len(list_episodes(tmp_path / "run" / "episodes")) == 1
