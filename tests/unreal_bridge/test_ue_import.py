"""Importing in-engine Unreal recordings (MP4 + CSV): exact actions and poses, clear errors, quarantine."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from capture import read_episode
from capture.actions import ActionSpace
from capture.rotations import rotator_to_quat
from capture.video import VideoWriter
from playmill.cli import main
from unreal_bridge.ue_import import (
    REQUIRED_COLUMNS,
    RecordingError,
    UEImportConfig,
    find_recordings,
    frame_actions,
    import_unreal,
    read_export_csv,
    recording_episode_id,
)

FPS = 25.0
W, H = 64, 48
UE_NAMES = {"w": "W", "a": "A", "s": "S", "d": "D", "shift": "LeftShift", "space": "SpaceBar", "ctrl": "LeftControl"}
HEADER = "frame,time_s,keys,x_cm,y_cm,z_cm,pitch_deg,yaw_deg,roll_deg,mouse_dx,mouse_dy"


@pytest.fixture(scope="module")
def played():
    """40 frames of the sandbox driven by the navmesh controller: frames, observations and actions."""
    import panda3d.core  # noqa: F401
    from unreal_bridge import SandboxWorld
    from unreal_bridge.navmesh_controller import make_navmesh_controller

    with SandboxWorld("indoor", width=W, height=H, fps=FPS) as world:
        ctrl = make_navmesh_controller(world)
        obs = world.reset(12)
        ctrl.reset(12, obs)
        obs_list, acts = [obs], [None]
        for _ in range(39):
            a = ctrl.act(obs)
            obs = world.step(a)
            obs_list.append(obs)
            acts.append(a)
    return obs_list, acts


def _csv_rows(obs_list, acts, yaw_offset: float = 0.0) -> list[str]:
    rows = [HEADER]
    for i, (o, a) in enumerate(zip(obs_list, acts)):
        keys = "|".join(UE_NAMES[k] for k in sorted(a.keys)) if a else ""
        yaw = (o.yaw_deg + yaw_offset) % 360.0  # engines report yaw in [0, 360)
        mdx = "" if i == 0 else f"{i % 7 - 3}"
        rows.append(f"{100 + i}, {12.5 + o.t_s:.9f},{keys},{o.pos_cm[0]:.9f},{o.pos_cm[1]:.9f},{o.pos_cm[2]:.9f},"
                    f"{o.pitch_deg:.9f},{yaw:.9f},0,{mdx},")
    return rows


def _write(src: Path, name: str, obs_list, rows: list[str] | None, frames: int | None = None) -> None:
    n = len(obs_list) if frames is None else frames
    if obs_list is not None:
        with VideoWriter(src / f"{name}.mp4", W, H, FPS) as vw:
            for o in obs_list[:n]:
                vw.write(o.frame)
    if rows is not None:
        (src / f"{name}.csv").write_text("\n".join(rows) + "\n")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def imported(played, tmp_path_factory):
    """A folder of recordings, good and bad, imported once."""
    obs_list, acts = played
    root = tmp_path_factory.mktemp("ue")
    src = root / "recordings"
    (src / "day2").mkdir(parents=True)
    good = _csv_rows(obs_list, acts, yaw_offset=180.0)
    _write(src, "good", obs_list, good)
    _write(src / "day2", "good_too", obs_list, _csv_rows(obs_list, acts))
    (src / "day2" / "good_too.json").write_text(json.dumps({"level": "/Game/Maps/Office", "config": {"weather": "rain"}}))
    bad = {
        "missing_column": [",".join(c for c in r.split(",")[:8]) + "," + ",".join(r.split(",")[9:]) for r in good],
        "nan_cell": [r if i != 6 else r.replace(r.split(",")[5], "nan", 1) for i, r in enumerate(good)],
        "time_backwards": [r if i != 9 else r.replace(r.split(",")[1], "12.0", 1) for i, r in enumerate(good)],
        "unknown_key": [r if i != 4 else r.replace(r.split(",")[2] or ",,", ("Q" if r.split(",")[2] else ",Q,"), 1)
                        for i, r in enumerate(good)],
        "frame_gap": [r if i != 12 else "999" + r[r.index(","):] for i, r in enumerate(good)],
        "bad_pitch": [r if i != 3 else ",".join(r.split(",")[:6] + ["120"] + r.split(",")[7:]) for i, r in enumerate(good)],
    }
    for name, rows in bad.items():
        _write(src, name, obs_list, rows)
    _write(src, "short_csv", obs_list, good[:-3])  # 37 rows for 40 frames
    _write(src, "no_csv", obs_list, None)
    (src / "no_video.csv").write_text("\n".join(good) + "\n")
    _write(src, "truncated", obs_list, good)
    data = (src / "truncated.mp4").read_bytes()
    (src / "truncated.mp4").write_bytes(data[: len(data) // 2])
    before = _digest(src)
    result = import_unreal(src, root / "episodes", UEImportConfig(fps=FPS))
    return src, root, result, before


def test_good_recordings_become_exact_episodes(played, imported):
    obs_list, acts = played
    src, root, result, _ = imported
    assert sorted(p.name for p in result.written) == sorted([recording_episode_id("good"),
                                                              recording_episode_id("day2/good_too")])
    ep = read_episode(root / "episodes" / recording_episode_id("good"), check_video=True)
    assert ep.meta.source == "unreal_export" and ep.meta.fps == FPS and ep.meta.frame_count == 40
    assert (ep.meta.width, ep.meta.height) == (W, H) and ep.meta.scene == "good"
    a = ep.actions
    assert np.allclose(a["t"], [o.t_s for o in obs_list], atol=1e-9)
    # the mouse deltas are the inputs that produced the motion (yaw unwrapped across 0/360)
    assert np.allclose(a["d_yaw"][1:], [x.d_yaw_deg for x in acts[1:]], atol=1e-6)
    assert np.allclose(a["d_pitch"][1:], [x.d_pitch_deg for x in acts[1:]], atol=1e-6)
    assert a.loc[0, "d_yaw"] == 0.0 and a.loc[0, "d_pitch"] == 0.0
    for k in ("w", "a", "d", "shift"):
        assert a[f"key_{k}"].tolist() == [0] + [int(k in x.keys) for x in acts[1:]]
    assert np.allclose(a[["x", "y", "z"]], [o.pos_cm for o in obs_list], atol=1e-6)
    # orientation: the quaternion of the (offset) rotator, float64
    q = a[["qw", "qx", "qy", "qz"]].to_numpy()
    ref = np.array([rotator_to_quat(o.pitch_deg, o.yaw_deg + 180.0) for o in obs_list])
    assert np.allclose(np.abs(np.sum(q * ref, axis=1)), 1.0, atol=1e-9)
    # velocities from positions (row 0 takes row 1's); speed along the yaw (the offset yaw points backwards)
    assert np.allclose(a[["vx", "vy", "vz"]][1:], [o.vel_cm_s for o in obs_list[1:]], atol=1e-4)
    assert np.allclose(a["speed"][1:], [-o.speed_cm_s for o in obs_list[1:]], atol=1e-4)
    assert np.isnan(a.loc[0, "mouse_dx"]) and a.loc[1, "mouse_dx"] == -2.0 and a["mouse_dy"].isna().all()
    # frames: the recorded video re-encoded
    first = next(iter(ep.frames()))
    assert np.abs(first.astype(int) - obs_list[0].frame).mean() < 8.0
    other = read_episode(root / "episodes" / recording_episode_id("day2/good_too"))
    assert other.meta.scene == "/Game/Maps/Office" and other.meta.config["weather"] == "rain"


@pytest.mark.parametrize("name, where", [
    ("missing_column", r"missing_column\.csv:1 column 'roll_deg': missing column"),
    ("nan_cell", r"nan_cell\.csv:7 column 'z_cm': 'nan' is not finite"),
    ("time_backwards", r"time_backwards\.csv:10 column 'time_s': time must increase"),
    ("unknown_key", r"unknown_key\.csv:5 column 'keys': unknown key 'Q'"),
    ("frame_gap", r"frame_gap\.csv:13 column 'frame': frame numbers must increase by 1"),
    ("bad_pitch", r"bad_pitch\.csv:4 column 'pitch_deg': pitch 120\.0 deg is outside \[-90, 90\]"),
    ("short_csv", r"short_csv\.mp4: the video has 40 frames but short_csv\.csv has 37 rows"),
    ("no_csv", r"no_csv\.mp4: no matching CSV"),
    ("no_video", r"no_video\.csv: no matching MP4 video"),
    ("truncated", r"truncated\.mp4: cannot read video"),
])
def test_bad_recordings_are_quarantined_with_file_line_and_column(imported, name, where):
    import re

    src, root, result, _ = imported
    rejects = dict(result.failed)
    assert name in rejects, sorted(rejects)
    assert re.search(where, rejects[name]), rejects[name]
    lines = [json.loads(x) for x in result.rejects_path.read_text().splitlines()]
    assert result.rejects_path == root / "rejects" / "unreal_export-recordings.jsonl"
    entry = next(e for e in lines if e["recording"] == name)
    assert entry["source"] == "unreal_export" and re.search(where, entry["reason"]) and entry["problems"]


def test_nothing_else_is_rejected_sources_untouched_and_rerun_skips(imported):
    src, root, result, before = imported
    assert len(result.failed) == 10 and len(result.written) == 2 and result.frames == 80
    assert _digest(src) == before  # sources are never modified
    again = import_unreal(src, root / "episodes", UEImportConfig(fps=FPS))
    assert again.written == [] and len(again.skipped) == 2 and len(again.failed) == 10
    assert sorted(p.name for p in (root / "episodes").iterdir()) == sorted(p.name for p in result.written)


def test_every_problem_is_listed(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(HEADER + "\n0,0.0,W,0,0,0,0,0,0,,\n1,x,W,0,0,0,0,0,inf,,\n2,0.0,Jump,0,0,0,0,0,0,,\n3,0.1,W,0,0\n")
    with pytest.raises(RecordingError) as e:
        read_export_csv(f, ActionSpace())
    text = str(e.value)
    for part in ("r.csv:3 column 'time_s': 'x' is not a number", "r.csv:3 column 'roll_deg': 'inf' is not finite",
                 "r.csv:4 column 'keys': unknown key 'Jump'", "r.csv:5: has 5 cells, the header has 11"):
        assert part in text, text
    f.write_text("")
    with pytest.raises(RecordingError, match="r.csv:1: the CSV is empty"):
        read_export_csv(f, ActionSpace())
    f.write_text(HEADER + "\n")
    with pytest.raises(RecordingError, match="no rows"):
        read_export_csv(f, ActionSpace())


def test_yaw_is_unwrapped_and_keys_mapped(tmp_path):
    f = tmp_path / "r.csv"
    yaws = [358.0, 359.5, 1.0, 3.0, 359.0, -179.0, 179.0]
    rows = [HEADER] + [f"{i},{i * 0.04},{'W|LeftShift' if i % 2 else 'space+lmb'},0,0,170,{350.0 if i == 2 else 0.0},{y},0,,"
                       for i, y in enumerate(yaws)]
    f.write_text("\n".join(rows))
    table = read_export_csv(f, ActionSpace())
    assert np.allclose(table.yaw_deg, [358.0, 359.5, 361.0, 363.0, 359.0, 181.0, 179.0])
    assert np.allclose(table.pitch_deg, [0, 0, -10.0, 0, 0, 0, 0])  # 350 is -10
    acts = frame_actions(table, ActionSpace())
    assert [a.d_yaw_deg for a in acts] == pytest.approx([0.0, 1.5, 1.5, 2.0, -4.0, -178.0, -2.0])
    assert acts[1].keys == {"w", "shift"} and acts[2].keys == {"space", "lmb"}


def test_config_cli_and_sizes(played, tmp_path):
    obs_list, acts = played
    src = tmp_path / "rec"
    src.mkdir()
    _write(src, "one", obs_list, _csv_rows(obs_list, acts))
    with pytest.raises(ValueError, match="width"):
        import_unreal(src, tmp_path / "eps", UEImportConfig(width=33, height=24))
    res = import_unreal(src, tmp_path / "eps", UEImportConfig(width=32, height=24))
    ep = read_episode(res.written[0], check_video=True)
    assert (ep.meta.width, ep.meta.height, ep.meta.fps) == (32, 24, FPS) and res.rejects_path is None
    _write(src, "two", obs_list, _csv_rows(obs_list, acts)[:-1])
    assert main(["import", "unreal", str(src), "--out", str(tmp_path / "eps")]) == 1  # one rejected
    assert (tmp_path / "rejects" / "unreal_export-rec.jsonl").is_file()
    assert [r.name for r in find_recordings(src)] == ["one", "two"]
    assert set(REQUIRED_COLUMNS) <= set(HEADER.split(","))
