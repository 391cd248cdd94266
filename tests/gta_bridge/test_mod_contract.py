"""Cross-language contract: the C# recorder mod, compiled with Mono against the ScriptHookVDotNet v3 stub
assembly and run against its fake game, writes a recording that the schema accepts and the Python importer turns
into valid episodes. Needs mcs and mono (apt-get install -y mono-mcs mono-runtime); without them these tests fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from capture.validate import validate_episode
from capture.video import VideoWriter
from gta_bridge import frames as fr
from gta_bridge.importer import GtaImportConfig, import_gta
from gta_bridge.recording import read_recording
from gta_bridge.scenario import limits
from gta_bridge.sim import SceneRenderer
from gta_bridge.sync import render_rects

from .test_schema import assert_recording_matches_schema

MOD = Path(__file__).resolve().parents[2] / "gta_bridge" / "mod"
SETTINGS = {
    "output_dir": "ignored-by-the-fake-runner",
    "flush_every": 10,
    "scenario": {
        "name": "contract_drive", "seed": 5, "weather": "overcast", "time_of_day_h": 18.25, "freeze_time": True,
        "vehicle_density": 0.6, "ped_density": 1.2, "behaviour": "drive_waypoints", "vehicle_model": "asea",
        "speed_mps": 10.0, "waypoints_m": [[15.0, 30.0, 0.0], [-20.0, 55.0, 0.0]],
        "camera": {"view": "first_person", "offset_m": [0.0, 0.5, 0.6], "rotation_offset_deg": [-4.0, 0.0, 0.0],
                   "fov_deg": 60.0},
        "duration_s": 7.0, "sync": {"duration_ms": 1200, "at_end": True},
    },
}


def require_mono() -> None:
    missing = [exe for exe in ("mcs", "mono") if shutil.which(exe) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the GTA mod contract tests need Mono's C# compiler and "
                    "runtime; install them with `apt-get install -y mono-mcs mono-runtime`")


@pytest.fixture(scope="module")
def fake_session(tmp_path_factory) -> Path:
    """Build the mod (stubs, mod, fake runner) and record one session against the fake game."""
    require_mono()
    out = tmp_path_factory.mktemp("mod")
    settings = out / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    res = subprocess.run(["bash", str(MOD / "build.sh"), str(out), str(settings), "3"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, f"build.sh failed:\n{res.stdout}\n{res.stderr}"
    session = Path(res.stdout.strip().splitlines()[-1])
    assert session.is_dir() and session.parent == out
    return session


def test_the_mod_compiles_against_the_stubs_and_its_recording_matches_the_schema(fake_session):
    n = assert_recording_matches_schema(fake_session)
    rec = read_recording(fake_session)
    assert len(rec.ticks) == n and not rec.rejects and not rec.warnings
    assert rec.header.scenario.weather == "overcast" and rec.header.scenario.vehicle_density == 0.6
    phases = list(rec.ticks.phase)
    assert phases[0] == "marker" and phases[-1] == "end_marker" and "record" in phases
    # the start marker shows the tick index as its code; the end marker too (mod 4096)
    marked = rec.ticks.sync_code >= 0
    assert np.array_equal(rec.ticks.sync_code[marked], rec.ticks.tick[marked] % 4096)
    events = (fake_session / "behaviour.jsonl").read_text()
    assert '"type":"waypoint_reached","index":0' in events and '"type":"vehicle_spawned"' in events
    # the camera is the rig: vehicle position + R_vehicle * offset, pitched by the rotation offset
    t = rec.ticks
    r = fr.gta_euler_to_matrix(t.veh_rot)
    cam, _ = fr.rig_pose_gta(t.veh_pos, r, [0.0, 0.5, 0.6], [-4.0, 0.0, 0.0])
    assert np.abs(cam - t.cam_pos).max() < 1e-3 and np.allclose(t.cam_rot[:, 0], -4.0, atol=1e-4)


def test_mod_limits_equal_the_schema(fake_session):
    exe = fake_session.parent / "build" / "PlaymillFakeRun.exe"
    res = subprocess.run(["mono", str(exe), "--print-limits"], capture_output=True, text=True, timeout=60)
    got = json.loads(res.stdout)
    lim = limits()
    assert tuple(got["vehicle_density"]) == lim.vehicle_density
    assert tuple(got["ped_density"]) == lim.ped_density
    assert tuple(got["time_of_day_h"]) == lim.time_of_day_h
    assert tuple(got["fov_deg"]) == lim.fov_deg and tuple(got["speed_mps"]) == lim.speed_mps
    assert tuple(got["sync_duration_ms"]) == lim.sync_duration_ms and got["duration_s_max"] == lim.duration_s_max
    assert tuple(got["weather"]) == lim.weathers and tuple(got["behaviour"]) == lim.behaviours


def test_mod_rejects_out_of_range_scenarios_with_the_range(fake_session, tmp_path):
    exe = fake_session.parent / "build" / "PlaymillFakeRun.exe"
    bad = json.loads(json.dumps(SETTINGS))
    bad["scenario"].update(vehicle_density=2.5, ped_density=0.1, weather="sunny")
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    res = subprocess.run(["mono", str(exe), "--settings", str(f), "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 3
    assert "scenario.vehicle_density: 2.5 is outside the allowed range [0.1, 2]" in res.stderr
    assert "scenario.ped_density: 0.1 is outside the allowed range [0.2, 1.5]" in res.stderr
    assert "scenario.weather: 'sunny' is not a weather" in res.stderr
    assert not any(tmp_path.glob("*/behaviour.jsonl"))


def render_capture(session: Path, path: Path, fps: float = 30.0, start_ms: float = -300.0,
                   latency_ms: float = 3.0) -> None:
    """What OBS would have recorded: the rectangles the mod drew (the marker) or the world seen by the logged
    camera, sampled at a constant frame rate."""
    rec = read_recording(session)
    t = rec.ticks
    rects = {}
    for line in (session / "fake_frames.jsonl").read_text().splitlines():
        d = json.loads(line)
        rects[d["frame"]] = d["rects"]
    renderer = SceneRenderer(128, 72, 60.0, seed=0)
    with VideoWriter(path, 128, 72, fps) as vw:
        c = start_ms
        while c < t.wall_ms[-1] + 200:
            k = int(np.searchsorted(t.wall_ms, c - latency_ms, side="right")) - 1
            drawn = rects[int(t.frame[k])] if k >= 0 else []  # before the first tick: the game, no marker
            k = max(k, 0)
            if drawn:
                img = render_rects(np.zeros((72, 128, 3), np.uint8), drawn)
            else:
                img = renderer.render(t.cam_pos[k], fr.gta_euler_to_matrix(t.cam_rot[k]))
            vw.write(img)
            c += 1000.0 / fps


def test_fake_game_recording_imports_into_valid_episodes(fake_session, tmp_path):
    session = tmp_path / "session"
    shutil.copytree(fake_session, session)
    render_capture(session, session / "obs.mp4")
    r = import_gta(session, tmp_path / "episodes", GtaImportConfig(fps=25.0, min_episode_frames=25))
    assert r.alignment.method == "marker" and r.alignment.uncertainty_ms < 8.5
    assert r.written and not r.rejects
    frames = sum(int(json.loads((e / "meta.json").read_text())["frame_count"]) for e in r.written)
    assert abs(frames - 7.0 * 25) <= 3
    for e in r.written:
        assert validate_episode(e) == []
    assert r.stats["key_fraction"]["w"] > 0.2  # the fake driver accelerates to its waypoints


def _declared_members(stub: str) -> set[str]:
    names = set(re.findall(r"public (?:static |abstract |override |virtual |event )*(?!class |struct |enum )"
                           r"[\w<>\[\]]+ (\w+)\s*[({]", stub))
    names |= set(re.findall(r"^\s+(\w+) = [\w-]+,", stub, flags=re.M))  # enum members with values
    return names


def test_the_stub_declares_only_what_the_mod_uses():
    stub = (MOD / "stubs" / "ScriptHookVDotNet3Stubs.cs").read_text()
    mod = (MOD / "PlaymillRecorder.cs").read_text() + (MOD / "ShvdnWorld.cs").read_text()
    weather = stub[stub.index("public enum Weather"):stub.index("public enum DrivingStyle")]
    unused = sorted(n for n in _declared_members(stub.replace(weather, ""))
                    if not re.search(rf"\b{n}\b", mod) and n not in ("Exists", "Delete"))
    assert unused == [], f"declared in the stub but not used by the mod: {unused}"
    for typ in re.findall(r"public (?:sealed |abstract |static )*(?:class|struct|enum) (\w+)", stub):
        # types the mod reaches through members (Ped.Task, Game.Player, Function.Call arguments, Game.Version)
        implicit = ("PoolObject", "InputArgument", "GameVersion", "Quaternion", "TaskInvoker", "Player")
        assert re.search(rf"\b{typ}\b", mod) or typ in implicit, typ


MIXED = {"scenario": {
    "name": "contract_mixed", "seed": 8, "weather": "rain", "time_of_day_h": 21.0, "vehicle_density": 0.3,
    "ped_density": 1.5, "behaviour": "mixed", "speed_mps": 8.0,
    "camera": {"view": "third_person", "offset_m": [0.0, -5.0, 2.0], "rotation_offset_deg": [-10.0, 0.0, 0.0],
               "ped_offset_m": [0.0, -3.0, 1.2], "fov_deg": 70.0},
    "duration_s": 28.0, "sync": {"duration_ms": 1000, "at_end": False},
    "interact": {"radius_m": 100.0, "chat_ms": 1500, "drive_s": 5.0, "walk_s": 8.0},
}}


def test_mixed_behaviours_leave_walk_talk_and_reenter_and_import(fake_session, tmp_path):
    """Drive, leave the vehicle, walk up to an NPC and talk, walk back and get in: on-foot ticks use the ped
    rig and walking keys; the episode stays valid across the switches."""
    exe = fake_session.parent / "build" / "PlaymillFakeRun.exe"
    f = tmp_path / "mixed.json"
    f.write_text(json.dumps(MIXED))
    res = subprocess.run(["mono", str(exe), "--settings", str(f), "--out", str(tmp_path), "--seed", "4"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    session = Path(res.stdout.strip().splitlines()[-1])
    assert_recording_matches_schema(session)
    log = (session / "behaviour.jsonl").read_text()
    for event in ("leave_vehicle_done", "walk_to_ped", "chat_start", "chat_end", "enter_vehicle_done"):
        assert f'"type":"{event}"' in log, event
    rec = read_recording(session)
    assert set(rec.ticks.cam_rig) == {"vehicle", "ped"}
    render_capture(session, session / "obs.mp4")
    r = import_gta(session, tmp_path / "episodes", GtaImportConfig(fps=25.0, min_episode_frames=25))
    assert r.written and not r.rejects
    ep = r.written[0]
    assert validate_episode(ep) == []
    import pandas as pd

    df = pd.read_csv(ep / "actions.csv")
    assert set(df["gta_in_vehicle"]) == {0.0, 1.0}
    walking = df[df["gta_in_vehicle"] == 0.0]
    assert walking["key_w"].mean() > 0.3 and walking["gta_steer"].isna().all()


def test_non_finite_game_values_are_written_as_null_and_quarantined(fake_session, tmp_path):
    exe = fake_session.parent / "build" / "PlaymillFakeRun.exe"
    f = tmp_path / "s.json"
    f.write_text(json.dumps(SETTINGS))
    res = subprocess.run(["mono", str(exe), "--settings", str(f), "--out", str(tmp_path), "--nan-tick", "300"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    session = Path(res.stdout.strip().splitlines()[-1])
    assert_recording_matches_schema(session)  # null is allowed by the schema; NaN would not even be JSON
    line = (session / "behaviour.jsonl").read_text().splitlines()[301]
    assert '"tick":300,' in line and '"forward_speed_mps":null' in line
    row = (session / "ticks.csv").read_text().splitlines()[301].split(",")
    assert row[0] == "300" and row[14] == ""  # forward_speed_mps cell is empty
    rec = read_recording(session)
    bad = [r for r in rec.rejects if r.kind == "nan_dynamics"]
    assert len(bad) == 1 and bad[0].tick == 300 and bad[0].line == 302
    assert "vehicle.forward_speed_mps is not finite" in bad[0].reason
