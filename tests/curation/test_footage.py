"""Footage imports (issue 16): a sandbox episode converted into each source's format, in several conventions,
imports back to the same keys exactly and the same mouse within 1e-6 degrees; the label diagnosis flags each
deliberately wrong mapping and names the config change that fixes it; bad logs fail clearly, leaving nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from capture.episode import read_episode
from capture.frames import WorldFrame
from capture.settings import InputError
from capture.validate import validate_episode
from tests.curation.footage import (
    FOV, generic_table, key_sets, sandbox_episode, write_sekai, write_unreal, write_vpt,
)

MOUSE_TOL = 1e-6  # degrees


@pytest.fixture
def ep(tmp_path):
    return sandbox_episode(tmp_path)


def same_labels(back, ep, first=0, keys=None, moved_only=False):
    """``back`` (an imported episode) has ``ep``'s keys (only ``keys``; with ``moved_only`` only on the frames where
    the agent was not blocked) exactly and its mouse within :data:`MOUSE_TOL`."""
    n = len(back)
    want = key_sets(ep)[first:first + n]
    got = key_sets(back)
    if keys is not None:
        want, got = [s & keys for s in want], [s & keys for s in got]
    if moved_only:
        free = ep.actions["collision"].to_numpy()[first:first + n] == 0
        assert free.mean() > 0.9
        want, got = [w for w, f in zip(want, free) if f], [g for g, f in zip(got, free) if f]
    assert got == want
    assert np.abs(back.mouse() - ep.mouse()[first:first + n]).max() < MOUSE_TOL


def generic_files(ep, tmp_path, convention, name="clip"):
    df, mapping = generic_table(ep, convention)
    d = tmp_path / convention
    d.mkdir(exist_ok=True)
    df.to_csv(d / f"{name}.csv", index=False)
    shutil.copyfile(ep.video_path, d / f"{name}.mp4")
    return d / f"{name}.mp4", d / f"{name}.csv", mapping


# --------------------------------------------------------------------------------------------------------
# generic


@pytest.mark.parametrize("convention", ["degrees", "radians-left-down-offset", "absolute-json-ms", "counts-bitmask"])
def test_generic_round_trip(ep, tmp_path, convention):
    from curation.generic import import_generic

    video, csv, mapping = generic_files(ep, tmp_path, convention)
    res = import_generic(video, csv, tmp_path / "eps", {**mapping, "check": "off", "crf": 30, "preset": "ultrafast"})
    assert not res.failed and len(res.written) == 1
    (path,) = res.written
    assert path.name == "generic-clip-s0000000000-i00000" and validate_episode(path) == []
    back = read_episode(path)
    assert len(back) == len(ep) and back.meta.config["column_mapping"]["crf"] == 30
    same_labels(back, ep)


def test_generic_one_csv_many_episodes_and_a_glob_of_videos(ep, tmp_path):
    from curation.generic import import_generic

    df, mapping = generic_table(ep, "degrees")
    parts = []
    for name, sl in (("run_a", slice(0, 120)), ("run_b", slice(120, 240))):
        part = df.iloc[sl].copy()
        part.insert(0, "session", name)
        parts.append(part)
        shutil.copyfile(ep.video_path, tmp_path / f"{name}.mp4")
    orphan = df.iloc[:5].copy()
    orphan.insert(0, "session", "run_c")  # rows whose video is missing
    pd.concat(parts + [orphan]).to_csv(tmp_path / "log.csv", index=False)
    shutil.copyfile(ep.video_path, tmp_path / "run_d.mp4")  # a video without rows
    m = {**mapping, "episode": "session", "check": "off", "frame_tolerance": 120}
    res = import_generic(str(tmp_path / "run_*.mp4"), tmp_path / "log.csv", tmp_path / "eps", m)
    assert sorted(p.name for p in res.written) == ["generic-run_a-s0000000000-i00000", "generic-run_b-s0000000000-i00000"]
    assert sorted(n for n, _ in res.failed) == ["log.csv episode run_c", "run_d.mp4"]
    rejects = [json.loads(line) for line in res.rejects_path.read_text().splitlines()]
    assert res.rejects_path.parent.name == "rejects" and {r["item"] for r in rejects} == {n for n, _ in res.failed}
    back_b = read_episode(tmp_path / "eps" / "generic-run_b-s0000000000-i00000")
    assert len(back_b) == 120 and back_b.meta.scene == "run_b"
    assert key_sets(back_b) == key_sets(ep)[120:]  # each episode's rows are its own, from frame 0 of its video
    again = import_generic(str(tmp_path / "run_*.mp4"), tmp_path / "log.csv", tmp_path / "eps", m)
    assert not again.written and len(again.skipped) == 2


def test_generic_an_unreadable_log_is_quarantined_and_the_others_go_on(ep, tmp_path):
    from curation.generic import import_generic

    video, csv, mapping = generic_files(ep, tmp_path, "degrees", name="good")
    shutil.copyfile(video, video.with_name("bad.mp4"))
    csv.with_name("bad.csv").write_text("")
    res = import_generic(str(video.parent / "*.mp4"), str(video.parent / "*.csv"), tmp_path / "eps",
                         {**mapping, "check": "off", "preset": "ultrafast"})
    assert [p.name for p in res.written] == ["generic-good-s0000000000-i00000"]
    assert [n for n, _ in res.failed] == ["bad.mp4"] and "bad.csv: unreadable CSV" in res.failed[0][1]


def test_generic_key_columns_must_be_binary_and_failures_leave_nothing(ep, tmp_path):
    from curation.generic import GenericMapping, import_generic

    video, csv, mapping = generic_files(ep, tmp_path, "degrees")
    df = pd.read_csv(csv)
    df["trigger"] = np.linspace(0.0, 1.0, len(df))  # an analog trigger
    df.to_csv(csv, index=False)
    out = tmp_path / "out"
    res = import_generic(video, csv, out, {**mapping, "keys": {"w": "trigger"}, "check": "off"})
    assert res.failed and "column 'trigger' (key 'w') is not binary: 0.0041" in res.failed[0][1]
    assert "key_threshold" in res.failed[0][1] and not out.exists()  # no empty --out folder left behind
    res = import_generic(video, csv, out, {**mapping, "keys": {"w": "trigger"}, "key_threshold": 0.5, "check": "off"})
    assert read_episode(res.written[0]).actions["key_w"].sum() == (df["trigger"] > 0.5).sum()
    assert GenericMapping.from_dict({"keys": ["w", "a"]}).keys == {"w": "w", "a": "a"}  # a list: same-named columns
    pd.DataFrame({"pressed": ["w+jump"] * len(ep)}).to_csv(tmp_path / "names.csv", index=False)
    res = import_generic(video, tmp_path / "names.csv", tmp_path / "o2", {"keys_column": "pressed", "check": "off"})
    assert "key names ['jump'] are not keys of the action space" in res.failed[0][1] and "key_names" in res.failed[0][1]
    with pytest.raises(InputError, match="no video matches"):
        import_generic(str(tmp_path / "nothing*.mp4"), csv, out, mapping)


# --------------------------------------------------------------------------------------------------------
# the label diagnosis names the mapping fix


@pytest.mark.parametrize("wrong,code,fix", [
    ({}, None, None),
    ({"yaw_positive": "left"}, "yaw_sign", ["yaw_positive: right"]),
    ({"pitch_positive": "down"}, "pitch_sign", ["pitch_positive: up"]),
    ({"d_pitch": "dyaw", "d_yaw": "dpitch"}, "axes_swap", ["d_pitch: dpitch, d_yaw: dyaw"]),
    # swapped with the yaw sign flipped: the diagnosis sees a swap and a pitch sign (it flips the column after the
    # swap); the check finds that flipping yaw_positive, not pitch_positive, is what fits
    ({"d_pitch": "dyaw", "d_yaw": "dpitch", "yaw_positive": "left"}, "axes_swap",
     ["d_pitch: dpitch, d_yaw: dyaw", "yaw_positive: right"]),
    ({"mouse_units": "rad"}, "mouse_degrees_as_radians", ["mouse_units: deg"]),
    ({"row_offset": 2, "yaw_positive": "left"}, "shift", ["row_offset: 0", "yaw_positive: right"]),
    ({"keys": {"w": "s", "s": "w", "a": "a", "d": "d"}}, "ws_swap", ["keys: {w: w, s: s, a: a, d: d}"]),
    ({"mirror": True}, "mirrored", ["mirror: false"]),
])
def test_generic_check_flags_a_wrong_mapping_and_names_its_fix(ep, tmp_path, wrong, code, fix):
    from curation.generic import check_generic, mapping_fixes

    video, csv, mapping = generic_files(ep, tmp_path, "degrees")
    m = {**mapping, "fov_deg": FOV, **wrong}
    report = check_generic(video, csv, m)
    if code is None:
        assert report.ok, report.lines()
        assert {"rotation", "pitch", "scale", "W/S", "A/D"} <= set(report.diagnosis.checked)
        return
    assert code in report.diagnosis.codes, report.lines()
    # exactly the changes that fit, checked against the video
    assert [f.split("  #")[0] for f in report.fixes] == fix, report.fixes
    assert "checked: with" in report.fixes[-1] and "labels agree with the video" in report.fixes[-1]
    if len(fix) == 2 and code == "axes_swap":  # named from the faults alone, the fix would be wrong
        from curation.generic import GenericMapping

        unchecked = mapping_fixes(report.diagnosis, GenericMapping.from_dict(m), 20.0)
        assert "pitch_positive: down  # pitch sign is flipped" in " ".join(unchecked) and "not confirmed" in unchecked[-1]


def test_generic_import_warns_or_refuses_with_the_fix(ep, tmp_path):
    from curation.generic import import_generic

    video, csv, mapping = generic_files(ep, tmp_path, "degrees")
    wrong = {**mapping, "yaw_positive": "left", "fov_deg": FOV}
    res = import_generic(video, csv, tmp_path / "eps", wrong)  # check: warn (the default) imports and says why
    assert len(res.written) == 1 and "yaw_positive: right" in res.warnings[0]
    res = import_generic(video, csv, tmp_path / "eps2", {**wrong, "check": "refuse"})
    assert not res.written and "yaw sign is flipped" in res.failed[0][1] and "fix: yaw_positive: right" in res.failed[0][1]


# --------------------------------------------------------------------------------------------------------
# VPT


def test_vpt_round_trip_with_a_gui_span_and_extra_keys(ep, tmp_path):
    from curation.vpt import import_vpt

    write_vpt(ep, tmp_path / "vpt", "cheeky-cornflower-setter-02e4", gui=(100, 119), extra_key_frames=range(30, 40))
    res = import_vpt(tmp_path / "vpt", tmp_path / "eps", {"check": "off", "preset": "ultrafast"})
    assert not res.failed and [p.name for p in res.written] == [
        "vpt-cheeky_cornflower_setter_02e4-s0000000000-i00000", "vpt-cheeky_cornflower_setter_02e4-s0000000000-i00002"]
    first, second = (read_episode(p) for p in res.written)
    assert (len(first), len(second)) == (100, 120) and second.meta.config["first_video_frame"] == 120
    same_labels(first, ep)
    same_labels(second, ep, first=120)
    assert np.abs(second.poses()[:, :3] - ep.poses()[120:, :3]).max() < 1e-6  # Minecraft blocks -> Unreal cm
    assert np.abs(np.abs((second.poses()[:, 3:] * ep.poses()[120:, 3:]).sum(axis=1)) - 1).max() < 1e-9
    assert first.actions["vpt_key_e"].to_numpy().nonzero()[0].tolist() == list(range(30, 40))
    assert first.actions["vpt_tick"].iloc[0] == 1000 and first.meta.config["deg_per_count"] == 0.15
    assert np.allclose(first.actions["mouse_dx"], ep.mouse()[:100, 1] / 0.15)  # raw counts kept
    (gui,) = [json.loads(line) for line in res.rejects_path.read_text().splitlines()]
    assert gui["frames"] == [100, 119] and "inventory is open" in gui["reason"]
    assert validate_episode(res.written[1]) == []


def test_vpt_sensitivity_from_the_recorded_yaw_and_the_check(ep, tmp_path):
    from curation.vpt import check_vpt, deg_per_count, import_vpt, sensitivity_for

    assert deg_per_count(0.5) == pytest.approx(0.15) and sensitivity_for(deg_per_count(0.73)) == pytest.approx(0.73)
    write_vpt(ep, tmp_path / "vpt", "fast-mouse", scale_deg=deg_per_count(0.8))  # the player's sensitivity: 0.8
    res = import_vpt(tmp_path / "vpt", tmp_path / "eps", {"check": "off"})
    assert "sensitivity was 0.800" in res.warnings[0]
    report = check_vpt(tmp_path / "vpt")
    assert report.diagnosis.codes and any(f.startswith("sensitivity: 0.8") for f in report.fixes), report.lines()
    assert check_vpt(tmp_path / "vpt", {"sensitivity": 0.8}).ok
    late = check_vpt(tmp_path / "vpt", {"sensitivity": 0.8, "time_offset_s": 0.1})  # ticks 2 frames off
    assert late.diagnosis.codes == ["shift"] and late.fixes[0].startswith("time_offset_s: 0 ")


def test_vpt_unreadable_recordings_are_quarantined_whole(tmp_path):
    from curation.vpt import import_vpt, tick_table, VPTImportConfig

    src = tmp_path / "vpt"
    src.mkdir()
    (src / "broken.jsonl").write_text('{"mouse": {"dx": 0, "dy": 0}, "keyboard": {"keys": []}}\nnot json\n')
    (src / "broken.mp4").write_bytes(b"")
    (src / "lonely.mp4").write_bytes(b"")
    res = import_vpt(src, tmp_path / "eps", {"check": "off"})
    assert not res.written and not (tmp_path / "eps").exists()
    why = dict(res.failed)
    assert "no lonely.jsonl beside it" in why["lonely.mp4"] and "broken.jsonl:2: not a JSON object" in why["broken"]
    ticks = [{"mouse": {"dx": 0, "dy": 0, "buttons": [0], "newButtons": [0]}, "keyboard": {"keys": []}, "tick": 0},
             {"mouse": {"dx": 0, "dy": 0, "buttons": [0], "newButtons": []}, "keyboard": {"keys": []}, "tick": 1},
             {"mouse": {"dx": 0, "dy": 0, "buttons": [0], "newButtons": [0]}, "keyboard": {"keys": []}, "tick": 2}]
    tt = tick_table(ticks, VPTImportConfig(), 20.0, "x.jsonl")  # attack stuck from the start until pressed again
    assert tt.held["lmb"].tolist() == [False, False, True]


# --------------------------------------------------------------------------------------------------------
# Sekai and Unreal export


@pytest.mark.parametrize("frame", [WorldFrame(), WorldFrame(up="+z"), WorldFrame(up="+y", camera_axes="opengl"),
                                   WorldFrame(up="+z", handedness="left")],
                         ids=["sekai-y-down", "z-up", "opengl-y-up", "z-up-left-handed"])
def test_sekai_round_trip_in_several_world_frames(ep, tmp_path, frame):
    from curation.importers import import_sekai

    write_sekai(ep, tmp_path / "sk", "abcdef_0_240", frame)
    res = import_sekai(tmp_path / "sk", tmp_path / "eps", {"world": frame.to_dict(), "check": "off"})
    back = read_episode(res.written[0])
    # keys come from the camera's motion: W/A/S/D only (shift is not visible in a path), where the agent moved
    same_labels(back, ep, keys={"w", "s", "a", "d"}, moved_only=True)
    assert back.meta.config["world"] == frame.to_dict()


def test_sekai_refuses_a_world_frame_the_motion_contradicts(ep, tmp_path):
    from curation.importers import check_sekai, import_sekai

    write_sekai(ep, tmp_path / "sk", "abcdef_0_240", WorldFrame(up="+z"))  # a Z-up reconstruction
    cfg = {"fov_deg": FOV, "check_gap": 1}
    res = import_sekai(tmp_path / "sk", tmp_path / "eps", cfg)  # read as Sekai's Y-down world: refused
    assert not res.written and "pitch and yaw are swapped" in res.failed[0][1]
    assert "fix: world: {up: +z, handedness: right, camera_axes: opencv}" in res.failed[0][1]
    assert check_sekai(tmp_path / "sk", {**cfg, "world": {"up": "+z"}}).ok
    res = import_sekai(tmp_path / "sk", tmp_path / "eps", {**cfg, "world": {"up": "+z", "handedness": "left"}})
    assert "determinant +1.000 but a left-handed world needs -1" in res.failed[0][1]


def test_sekai_names_the_smallest_world_change_that_fits(ep, tmp_path):
    from curation.importers import check_sekai

    write_sekai(ep, tmp_path / "sk", "abcdef_0_240", WorldFrame(up="+z"))
    # two settings wrong (up and camera axes), the yaw origin right: the fix names both and keeps forward
    report = check_sekai(tmp_path / "sk", {"fov_deg": FOV, "check_gap": 1,
                                           "world": {"up": "-y", "camera_axes": "opengl", "forward": "+x"}})
    assert not report.ok and "axes_swap" in report.diagnosis.codes
    assert report.fixes and report.fixes[0].startswith(
        "world: {up: +z, handedness: right, camera_axes: opencv, forward: +x}  # labels follow the video"), report.fixes


@pytest.mark.parametrize("codes,refused", [(["ws_swap"], False), (["ws_swap", "yaw_sign"], True)])
def test_refuse_only_for_the_faults_given(monkeypatch, tmp_path, codes, refused):
    """``check: refuse`` with ``refuse_codes`` refuses an episode only for one of those faults; other faults stay
    warnings with their fix, and the fixes callback gets the analysed episode (no second decode)."""
    from capture.imports import ImportResult
    from curation import import_check
    from curation.consistency import Diagnosis, EpisodeConsistency, Fault

    diag = Diagnosis(ok=False, faults=[Fault(c, f"{c} found", f"fix {c}") for c in codes])
    ec = EpisodeConsistency("clip", "sekai", diag)
    monkeypatch.setattr(import_check, "check_items",
                        lambda items: import_check.CheckReport([ec], diag, motions=[None], indices=[0]))
    seen = []
    res = ImportResult()
    out = import_check.check_mode_outcome([], "refuse", lambda d, scope: seen.append(scope.episodes) or ["world: {}"],
                                          res, refuse_codes=("yaw_sign", "axes_swap"))
    assert seen == [[ec]]
    assert out == ({"clip"} if refused else set())
    msgs = [r for _, r in res.failed] if refused else res.warnings
    assert len(msgs) == 1 and "ws_swap found" in msgs[0] and "fix: world: {}" in msgs[0]


def test_unreal_export_round_trip(ep, tmp_path):
    from unreal_bridge.ue_import import import_unreal

    write_unreal(ep, tmp_path / "ue", "run_001")
    res = import_unreal(tmp_path / "ue", tmp_path / "eps", {})
    same_labels(read_episode(res.written[0]), ep)


# --------------------------------------------------------------------------------------------------------
# the command line


def test_cli_import_generic_check_and_vpt(ep, tmp_path, capsys):
    import yaml

    from playmill.cli import main

    video, csv, mapping = generic_files(ep, tmp_path, "degrees")
    (tmp_path / "map.yaml").write_text(yaml.safe_dump({**mapping, "fov_deg": FOV, "row_offset": 2}))
    code = main(["import", "generic", str(video), str(csv), "--mapping", str(tmp_path / "map.yaml"), "--check"])
    out = capsys.readouterr().out
    assert code == 1 and "actions are 2 frame(s) early" in out and "row_offset: 0" in out
    assert not (tmp_path / "runs").exists()  # --check writes nothing
    write_vpt(ep, tmp_path / "vpt", "rec", gui=(100, 119))
    code = main(["import", "vpt", str(tmp_path / "vpt"), "--out", str(tmp_path / "eps"), "--set",
                 "imports.vpt.check=off"])
    out = capsys.readouterr().out
    assert code == 0 and "2 episode(s) written" in out and "20 GUI frame(s) of 240 quarantined" in out
