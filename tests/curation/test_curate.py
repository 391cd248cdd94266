"""curate(): shards per the contract, stats, bad input into rejects, resume after SIGKILL, engines agree."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from capture.episode import read_episode
from curation.runner import curate
from curation.shards import inspect_shards, read_manifest, verify_shards
from curation.stages import resize_center_crop
from tests.curation.helpers import pan_frames, small_config, write_episode

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb"]


def expected_schema(k, media):
    return pa.schema([
        ("clip_id", pa.string()), ("episode_id", pa.string()), ("source", pa.string()), ("scene", pa.string()),
        ("start_frame", pa.int64()), ("num_frames", pa.int32()), ("fps", pa.float64()), ("height", pa.int32()),
        ("width", pa.int32()),
        ("video", pa.binary()) if media == "h264" else ("frames", pa.list_(pa.binary())),
        ("keyboard", pa.list_(pa.list_(pa.uint8(), k))), ("mouse", pa.list_(pa.list_(pa.float32(), 2))),
        ("pose", pa.list_(pa.list_(pa.float64(), 7))), ("speed", pa.list_(pa.float32())),
        ("collision", pa.list_(pa.bool_())),
    ])


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def tree_hashes(d):
    return {str(p.relative_to(d)): sha(p) for p in sorted(Path(d).rglob("*")) if p.is_file()}


def all_rows(out):
    return pd.concat([pd.read_parquet(out / s["file"]) for s in read_manifest(out)["shards"]], ignore_index=True)


def test_shards_follow_the_contract(fake_episodes, tmp_path):
    import duckdb

    before = tree_hashes(fake_episodes)
    out = tmp_path / "shards"
    res = curate(fake_episodes, out, small_config(), workers=1, progress=False)
    assert res.episodes == 4 and res.processed == 4 and res.rejected == 0
    assert res.clips == 4 * 6  # 60 frames -> 6 clips of 9 (25 fps in, 25 fps out, no duplicates)
    assert tree_hashes(fake_episodes) == before  # sources never modified
    m = read_manifest(out)
    for k in ("schema", "clip_frames", "fps", "height", "width", "frame_codec", "action_space", "sources", "shards",
              "totals", "config", "stats", "rejects"):
        assert k in m, k
    assert (m["schema"], m["clip_frames"], m["fps"], m["height"], m["width"], m["frame_codec"]) == \
        ("playmill.shards/1", 9, 25.0, 32, 64, "h264")
    assert m["action_space"]["keys"] == KEYS
    assert m["sources"]["sandbox"]["episodes"] == 4 and m["sources"]["sandbox"]["hours"] == pytest.approx(24 * 9 / 25 / 3600)
    for s in m["shards"]:
        p = out / s["file"]
        assert sha(p) == s["sha256"] and p.stat().st_size == s["bytes"] and pq.ParquetFile(p).metadata.num_rows == s["rows"]
        assert pq.read_schema(p).equals(expected_schema(9, "h264"))
    assert verify_shards(out) == []
    st = m["stats"]
    assert st["keyboard"]["press_rate"]["w"] > 0.95 and st["keyboard"]["press_rate"]["s"] == 0
    assert st["mouse"]["d_yaw"]["max"] == pytest.approx(0.5) and "quantiles" in st["speed"]
    assert sum(st["mouse"]["histograms"]["d_yaw"]["counts"]) == st["frames"] == 24 * 9
    # any Arrow reader opens a shard: pandas and DuckDB
    df = all_rows(out)
    assert len(df) == 24 and df["clip_id"].is_unique
    con = duckdb.connect()
    glob = str(out / "part-*.parquet")
    assert con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0] == 24
    kb_type = con.execute(f"SELECT typeof(keyboard), typeof(mouse), typeof(pose) FROM read_parquet('{glob}') LIMIT 1").fetchone()
    # Parquet has no fixed-size list: DuckDB sees nested lists (pyarrow restores the exact Arrow types)
    assert kb_type == ("UTINYINT[][]", "FLOAT[][]", "DOUBLE[][]")
    assert con.execute(f"SELECT min(len(keyboard[1])), max(len(pose[9])) FROM read_parquet('{glob}')").fetchone() == (9, 7)
    assert con.execute(f"SELECT sum(len(speed)) FROM read_parquet('{glob}')").fetchone()[0] == 24 * 9
    # a clip's actions are the episode's rows, its frames the cropped source frames
    row = df.iloc[1]
    ep = read_episode(fake_episodes / row["episode_id"])
    s = int(row["start_frame"])
    assert s == 9 and row["clip_id"] == f"{row['episode_id']}-f0000009"
    assert np.array_equal(np.stack(row["keyboard"]), ep.keyboard()[s:s + 9])
    np.testing.assert_array_equal(np.stack(row["mouse"]), ep.mouse()[s:s + 9].astype(np.float32))
    np.testing.assert_array_equal(np.stack(row["pose"]), ep.poses()[s:s + 9])
    from curation.reader import decode_clip

    got = decode_clip(row["video"], "h264", 9)
    want = np.stack([resize_center_crop(f, 32, 64) for f in list(ep.frames())[s:s + 9]])
    assert got.shape == (9, 32, 64, 3) and np.abs(got.astype(int) - want).mean() < 3
    rej = pd.read_parquet(out / "rejects.parquet")
    assert set(rej["stage"]) == {"clip"} and (rej["start_frame"] == 54).all() and (rej["end_frame"] == 59).all()
    text = inspect_shards(out)
    assert "24 clips" in text and "sandbox" in text


def test_jpeg_frames_and_shard_size_limits(fake_episodes, tmp_path):
    out = tmp_path / "shards"
    cfg = small_config(output={"frame_codec": "jpeg", "shard_max_rows": 5, "row_group_rows": 2})
    curate(fake_episodes, out, cfg, progress=False)
    m = read_manifest(out)
    assert [s["rows"] for s in m["shards"]] == [5, 5, 5, 5, 4]
    assert [s["file"] for s in m["shards"]] == [f"part-{i:05d}.parquet" for i in range(5)]
    assert pq.read_schema(out / "part-00000.parquet").equals(expected_schema(9, "jpeg"))
    assert pq.ParquetFile(out / "part-00000.parquet").num_row_groups == 3
    assert verify_shards(out) == []
    by_bytes = tmp_path / "by_bytes"
    curate(fake_episodes, by_bytes, small_config(output={"frame_codec": "jpeg", "shard_max_bytes": 60_000}), progress=False)
    mb = read_manifest(by_bytes)
    assert len(mb["shards"]) > 1 and sum(s["rows"] for s in mb["shards"]) == 24


def test_redundant_frames_and_resampling_inside_curation(tmp_path):
    """A 30 fps episode with a frozen stretch and duplicated frames -> 25 fps clips; no mouse motion lost."""
    frames = pan_frames(80, seed=3, speed_px=1.0)
    frames[20:26] = [frames[19]] * 6  # frozen game
    frames[50] = frames[49].copy()  # duplicated encoder frame
    n = len(frames)
    mouse = np.zeros((n, 2))
    mouse[1:, 1] = 0.25
    mouse[1::7, 0] = 0.5
    keys = [set() if i == 0 else ({"w", "space"} if i in (22, 50) else {"w"}) for i in range(n)]
    eps = tmp_path / "episodes"
    ep_dir = write_episode(eps, frames, fps=30.0, mouse=mouse, keys=keys)
    out = tmp_path / "shards"
    cfg = small_config(velocity={"enabled": False})
    curate(eps, out, cfg, progress=False)
    rej = pd.read_parquet(out / "rejects.parquet")
    dd = rej[rej["stage"] == "dedup"]
    assert [(a, b) for a, b in zip(dd["start_frame"], dd["end_frame"])] == [(20, 25), (50, 50)]
    assert (rej["stage"] == "resample").sum() == 1
    df = all_rows(out)
    assert (df["fps"] == 25.0).all() and (df["num_frames"] == 9).all()
    # honest counts: resampling removed the frames it skipped, not its whole segment; each reason counted apart
    from curation.stages import resample_select

    available = np.setdiff1d(np.arange(n), np.r_[20:26, 50]) / 30.0  # the frames dedup left
    rs = rej[rej["stage"] == "resample"].iloc[0]
    assert rs["frames"] == len(available) - resample_select(available, 1 / 25, 1 / 30).sum()
    assert rs["end_frame"] - rs["start_frame"] + 1 == n > rs["frames"] > 0
    by = read_manifest(out)["rejects"]["frames_by_stage"]
    assert by["dedup"] == 7 and by["resample"] == rs["frames"] and "dedup" in inspect_shards(out)
    tail = rej[rej["stage"] == "clip"]
    covered_end = int(tail["start_frame"].min()) - 1  # clips cover rows 0..covered_end, the tail is rejected
    src = read_episode(ep_dir)
    total = np.concatenate([np.stack(m) for m in df["mouse"]]).astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(total, src.mouse()[:covered_end + 1].sum(axis=0), atol=1e-4)
    space_rows = int(np.concatenate([np.stack(k) for k in df["keyboard"]])[:, 4].sum())
    assert space_rows == 2  # the space presses on a frozen frame and on a duplicate survive, folded


def corrupt(eps: Path):
    """Break three episodes in three ways and add a folder that is no episode; returns their ids."""
    names = sorted(p.name for p in eps.iterdir())
    trunc, badcsv, nanpose = names[0], names[1], names[2]
    v = eps / trunc / "video.mp4"
    v.write_bytes(v.read_bytes()[: v.stat().st_size // 2])
    csv = eps / badcsv / "actions.csv"
    lines = csv.read_text().splitlines()
    cells = lines[5].split(",")
    cells[-2] = "fast"  # speed column (the last but one): not a number
    lines[5] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    csv = eps / nanpose / "actions.csv"
    df = pd.read_csv(csv)
    lines = csv.read_text().splitlines()
    xcol = list(df.columns).index("x")
    for r in (21, 22):
        cells = lines[r + 1].split(",")
        cells[xcol] = "nan"
        lines[r + 1] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    (eps / "zz-not-an-episode").mkdir()
    return trunc, badcsv, nanpose, names[3]


def test_bad_input_is_rejected_with_reasons_and_the_run_goes_on(episodes_copy, tmp_path):
    trunc, badcsv, nanpose, good = corrupt(episodes_copy)
    before = tree_hashes(episodes_copy)
    out = tmp_path / "shards"
    res = curate(episodes_copy, out, small_config(), workers=2, progress=False)
    assert tree_hashes(episodes_copy) == before
    assert res.episodes == 5 and res.rejected == 3
    rej = pd.read_parquet(out / "rejects.parquet")
    ep_rows = rej[rej["kind"] == "episode"].set_index("episode_id")
    assert ep_rows.loc[trunc, "stage"] == "validate" and "video.mp4" in ep_rows.loc[trunc, "reason"]
    assert "truncated" in ep_rows.loc[trunc, "reason"] or "not a valid MP4" in ep_rows.loc[trunc, "reason"]
    assert ep_rows.loc[badcsv, "stage"] == "validate" and "row 4 column speed" in ep_rows.loc[badcsv, "reason"]
    assert "not a number: 'fast'" in ep_rows.loc[badcsv, "reason"]
    assert "meta.json" in ep_rows.loc["zz-not-an-episode", "reason"]
    pose = rej[rej["stage"] == "pose"]
    assert pose["episode_id"].tolist() == [nanpose] and pose["kind"].tolist() == ["clip"]
    assert (pose["start_frame"].iloc[0], pose["end_frame"].iloc[0]) == (18, 26)
    assert "[21, 22]" in pose["reason"].iloc[0]
    df = all_rows(out)
    assert sorted(set(df["episode_id"])) == sorted([nanpose, good])
    assert (df["episode_id"] == nanpose).sum() == 5 and (df["episode_id"] == good).sum() == 6
    assert verify_shards(out) == []
    # without the up-front video check the truncated file is caught by the decoder
    out2 = tmp_path / "nocheck"
    curate(episodes_copy, out2, small_config(check_video=False), progress=False)
    r2 = pd.read_parquet(out2 / "rejects.parquet")
    row = r2[(r2["episode_id"] == trunc) & (r2["kind"] == "episode")]
    assert row["stage"].tolist() == ["decode"] and "cannot decode video" in row["reason"].iloc[0]


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from curation.runner import curate
    from tests.curation.helpers import small_config
    curate(sys.argv[1], sys.argv[2], small_config(), workers=1, progress=False)
""")


def test_sigkill_mid_run_then_rerun_completes_without_duplicates(tmp_path):
    from tests.curation.helpers import make_fake_episodes

    eps = tmp_path / "episodes"
    make_fake_episodes(eps, n=4, frames=60, scenes=("fake", "other"))
    clean = tmp_path / "clean"
    curate(eps, clean, small_config(), progress=False)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(eps), str(out)], cwd=ROOT, env=env)
    work = out / ".work"
    deadline = time.time() + 60
    while time.time() < deadline:
        done = [p for p in work.iterdir() if not p.name.startswith(".")] if work.is_dir() else []
        if len(done) >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()  # killed before packing
    res = curate(eps, out, small_config(), progress=False)
    assert res.reused >= 3 and res.processed == 8 - res.reused
    assert verify_shards(out) == []
    m, mc = read_manifest(out), read_manifest(clean)
    assert [s["sha256"] for s in m["shards"]] == [s["sha256"] for s in mc["shards"]]  # byte-identical
    assert all_rows(out)["clip_id"].is_unique and len(all_rows(out)) == m["totals"]["clips"] == 48

    # a run killed while packing: stale temp shard, a stray extra part, no manifest
    (out / "manifest.json").unlink()
    (out / ".part-00000.parquet.tmp").write_bytes(b"partial")
    shutil.copy(out / "part-00000.parquet", out / "part-00007.parquet")
    res = curate(eps, out, small_config(), progress=False)
    assert res.processed == 0 and res.reused == 8
    assert verify_shards(out) == [] and not (out / "part-00007.parquet").exists()
    assert not list(out.glob(".*.tmp"))


def test_rerun_is_a_no_op_and_new_episodes_are_added(episodes_copy, tmp_path):
    out = tmp_path / "shards"
    cfg = small_config()
    curate(episodes_copy, out, cfg, progress=False)
    mtime = (out / "manifest.json").stat().st_mtime_ns
    again = curate(episodes_copy, out, cfg, progress=False)
    assert again.up_to_date and again.clips == 24 and (out / "manifest.json").stat().st_mtime_ns == mtime
    write_episode(episodes_copy, pan_frames(30, seed=9), index=5)
    more = curate(episodes_copy, out, cfg, progress=False)
    assert more.processed == 1 and more.reused == 4 and more.clips == 24 + 3
    changed = curate(episodes_copy, out, small_config(clip={"frames": 13, "stride": 13, "height": 32, "width": 64}),
                     progress=False)
    assert changed.processed == 5 and read_manifest(out)["clip_frames"] == 13  # a new config redoes the work
    assert verify_shards(out) == []


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_each_engine_runs_the_stage_objects_built_by_the_driver(fake_episodes, tmp_path, monkeypatch, engine, request):
    """Adding a stage is a class: a custom pipeline runs on both engines, each worker sets up a copy of the very
    objects the driver built (once per worker, not per episode), and the stage's records reach the shards."""
    from curation.stages import PIPELINE
    from tests.curation.stagelib import FrameCounter

    if engine == "ray":
        request.getfixturevalue("ray_local")
    record = tmp_path / "record"
    record.mkdir()
    monkeypatch.setenv("PLAYMILL_TEST_RECORD", str(record))
    out = tmp_path / engine
    res = curate(fake_episodes, out, small_config(), engine=engine, workers=2, progress=False,
                 pipeline=[FrameCounter, *PIPELINE])
    assert res.clips == 24 and verify_shards(out) == []
    setups = sorted(p.name for p in record.iterdir())
    tokens = {name.rsplit("-", 1)[1] for name in setups}
    assert len(tokens) == 1 and 1 <= len(setups) <= 2  # one object, set up once in each of <= 2 workers
    rej = pd.read_parquet(out / "rejects.parquet")
    counted = rej[rej["stage"] == "counter"]
    assert len(counted) == 4 and (counted["reason"] == f"60 frames seen by {tokens.pop()}").all()
    # another pipeline is another run: the work of the default one is not reused
    again = curate(fake_episodes, out, small_config(), engine=engine, workers=2, progress=False)
    assert again.processed == 4 and "counter" not in set(pd.read_parquet(out / "rejects.parquet")["stage"])


def test_report_has_plots_and_preview_strips(fake_episodes, tmp_path):
    from curation.report import write_report

    out = tmp_path / "shards"
    curate(fake_episodes, out, small_config(), progress=False)
    path = write_report(out)
    text = path.read_text()
    assert path.name == "report.html" and text.count("data:image/png;base64,") >= 5
    assert text.count("data:image/jpeg;base64,") == 6 and "24 clips" in text
    assert verify_shards(out) == []  # the report is not a shard


def test_motion_matched_resampling_of_sekai_footage(fake_episodes, tmp_path):
    from curation.importers import import_sekai
    from tests.curation.test_importers import write_sekai

    eps = tmp_path / "episodes"
    shutil.copytree(fake_episodes, eps)
    n = 120  # a steady walk at 30 fps
    e = np.tile(np.eye(4), (n, 1, 1))
    e[:, 2, 3] = np.linspace(0, 1, n)
    src = tmp_path / "sekai"
    src.mkdir()
    write_sekai(src, "walk_0_120", e)
    assert len(import_sekai(src, eps, {"check": "off"}).written) == 1
    out = tmp_path / "shards"
    cfg = small_config(resample={"motion_sources": ["sekai"]})
    curate(eps, out, cfg, progress=False)
    m = read_manifest(out)
    target = m["motion"]["target_cm_per_frame"]
    assert target == pytest.approx(12.0)  # FakeWorld walks 300 cm/s, at 25 fps
    df = all_rows(out)
    sk = df[df["source"] == "sekai"]
    assert len(sk) > 0 and (sk["fps"] == 25.0).all()
    disp = np.concatenate([np.linalg.norm(np.diff(np.stack(p)[:, :3], axis=0), axis=1) for p in sk["pose"]])
    assert disp.mean() == pytest.approx(target, rel=0.05)  # 140 cm/s at 30 fps = 4.67 cm/frame, stepped ~2.6x


def test_episodes_with_fewer_keys_are_remapped_and_foreign_keys_rejected(fake_episodes, tmp_path):
    from capture.actions import ActionSpace

    eps = tmp_path / "episodes"
    shutil.copytree(fake_episodes, eps)
    frames = pan_frames(20, seed=5)
    wsad = write_episode(eps, frames, scene="wsad", action_space=ActionSpace(("w", "s", "a", "d")),
                         keys=[{"d"}] * 20)
    jump = write_episode(eps, frames, scene="zjump", action_space=ActionSpace(("w", "jump")), keys=[{"jump"}] * 20)
    out = tmp_path / "shards"
    curate(eps, out, small_config(), progress=False)
    df = all_rows(out)
    kb = np.stack(df[df["episode_id"] == wsad.name]["keyboard"].iloc[0])
    assert kb.shape == (9, 9) and (kb[:, KEYS.index("d")] == 1).all() and kb.sum() == 9
    rej = pd.read_parquet(out / "rejects.parquet")
    row = rej[(rej["episode_id"] == jump.name) & (rej["kind"] == "episode")]
    assert row["stage"].tolist() == ["validate"] and "['jump'] are not in the dataset action space" in row["reason"].iloc[0]
