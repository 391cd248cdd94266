"""The GTA importer against simulated recordings with ground truth, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from capture.episode import read_episode
from capture.validate import validate_episode
from gta_bridge.importer import GtaImportConfig, GtaImportResult, import_gta
from playmill.cli import main
from gta_bridge.recording import RecordingError
from gta_bridge.scenario import ScenarioError
from gta_bridge.sim import SimConfig, score_import, simulate_recording
from gta_bridge.sync import AlignmentError

from .conftest import copy_recording

FPS = 25.0
HALF_FRAME_MS = 1000.0 / FPS / 2
CFG = GtaImportConfig(fps=FPS, min_episode_frames=10)


def run(recording: Path, out: Path, cfg: GtaImportConfig = CFG) -> GtaImportResult:
    return import_gta(recording, out / "episodes", cfg)


@pytest.fixture(scope="module")
def imported_vfr(sim_vfr, tmp_path_factory) -> GtaImportResult:
    return run(sim_vfr.directory, tmp_path_factory.mktemp("imp_vfr"))


def test_vfr_import_meets_the_accuracy_targets(sim_vfr, imported_vfr):
    r = imported_vfr
    assert r.alignment.method == "marker" and r.written and not r.rejects
    s = score_import(sim_vfr.truth, r.written)
    assert s.frames >= 0.95 * sim_vfr.config.duration_s * FPS
    assert s.key_accuracy >= 0.99, s.per_key
    assert np.percentile(s.align_err_ms, 99) <= HALF_FRAME_MS
    assert np.percentile(s.pos_err_cm, 99) < 40 and np.percentile(s.rot_err_deg, 99) < 1.5  # <= 1 tick of motion
    assert np.median(s.pos_err_cm) < 0.05  # float32 logging only
    assert r.stats["duplicates_reassigned"] > 0


def test_episodes_validate_and_carry_the_gta_columns(imported_vfr, sim_vfr):
    for ep_dir in imported_vfr.written:
        assert validate_episode(ep_dir) == []
        ep = read_episode(ep_dir, check_video=True)
        m = ep.meta
        assert m.source == "gta" and m.fps == FPS and (m.width, m.height) == (128, 72)
        assert m.config["weather"] == "clear" and m.config["vehicle_density"] == 1.0
        assert m.config["npc_density"] == 1.0 and m.config["alignment"]["method"] == "marker"
        assert m.source_frame.startswith("gta_v: right-handed")
        cols = set(ep.extra_columns)
        assert {"gta_steer", "gta_throttle", "gta_brake", "gta_gear", "gta_speed_mps", "gta_tick"} <= cols
        df = ep.actions
        assert np.all(np.diff(df["gta_tick"]) >= 0)
        # mouse deltas are the camera's yaw/pitch changes between frames
        assert df["d_yaw"].iloc[0] == 0.0 and df["d_yaw"].abs().max() > 0.1
        # speed is the signed forward speed in cm/s, the extra in m/s
        assert np.allclose(df["speed"] / 100.0, df["gta_speed_mps"], atol=1e-9)


def test_labelled_yaw_lines_up_with_the_pictures_at_lag_0(sim_vfr, imported_vfr):
    """Row i's d_yaw is the camera's turn between the ticks that frames i-1 and i really show (ground truth), not one
    row early or late: the action-label check reads any shift here as a fault of the import."""
    from gta_bridge.frames import ue_quat_to_pitch_yaw

    tr = sim_vfr.truth
    yaw = np.degrees(np.unwrap(np.radians(ue_quat_to_pitch_yaw(tr.cam_quat)[1])))
    for ep_dir in imported_vfr.written:
        df = read_episode(ep_dir).actions
        shown = tr.frame_tick[df["gta_video_frame"].to_numpy().astype(int)]
        truth, label = np.diff(yaw[shown]), df["d_yaw"].to_numpy()[1:]
        corr = {lag: np.corrcoef(label[max(0, -lag):len(label) - max(0, lag)],
                                 truth[max(0, lag):len(truth) - max(0, -lag)])[0, 1] for lag in range(-3, 4)}
        assert corr[0] > 0.99 and max(corr, key=corr.get) == 0, corr


def test_cfr_import_with_a_late_video_start(sim_cfr, tmp_path):
    r = run(sim_cfr.directory, tmp_path)
    s = score_import(sim_cfr.truth, r.written)
    assert s.key_accuracy >= 0.99 and np.percentile(s.align_err_ms, 99) <= HALF_FRAME_MS
    assert all(validate_episode(e) == [] for e in r.written)


def test_without_a_marker_alignment_comes_from_image_motion(sim_nomarker, tmp_path):
    r = run(sim_nomarker.directory, tmp_path)
    assert r.alignment.method == "xcorr" and r.alignment.score > 0.5
    assert any("no sync marker" in w for w in r.warnings)
    # the marker-less offset is only as precise as the image motion allows: the yaw rate changes over tenths of
    # a second, so the correlation peak is flat over a few ticks (bench/gta_sync.py reports the figures)
    true_offset = sim_nomarker.truth.offset_s + sim_nomarker.config.present_latency_ms / 1000.0
    assert abs(r.alignment.offset_s - true_offset) < 0.1
    s = score_import(sim_nomarker.truth, r.written)
    assert s.key_accuracy >= 0.85 and np.percentile(s.align_err_ms, 50) <= 100.0


def test_rerun_skips_finished_episodes(sim_vfr, imported_vfr):
    again = import_gta(sim_vfr.directory, imported_vfr.written[0].parent, CFG)
    assert again.written == [] and again.skipped == [p.name for p in imported_vfr.written] and again.frames == 0


# ---------------------------------------------------------------------------------------------------- bad input


def _lines(session: Path) -> list[str]:
    return (session / "behaviour.jsonl").read_text().splitlines(keepends=True)


def _write(session: Path, lines: list[str]) -> None:
    (session / "behaviour.jsonl").write_text("".join(lines))


def _drop_csv_rows(session: Path, ticks: set[int]) -> None:
    rows = (session / "ticks.csv").read_text().splitlines(keepends=True)
    (session / "ticks.csv").write_text("".join(r for i, r in enumerate(rows) if i == 0 or int(r.split(",")[0])
                                               not in ticks))


def _record_line(session: Path, at_fraction: float) -> int:
    """Index in the line list of a tick in the middle of the record phase."""
    lines = _lines(session)
    rec = [i for i, l in enumerate(lines) if '"phase":"record"' in l]
    return rec[int(len(rec) * at_fraction)]


def test_truncated_and_malformed_lines_are_quarantined_and_the_rest_imported(sim_vfr, tmp_path):
    s = copy_recording(sim_vfr.directory, tmp_path / "rec")
    lines = _lines(s)
    i = _record_line(s, 0.5)
    lost = set()
    for j in range(i, i + 12):  # a burst of lines cut in the middle (a disk hiccup)
        lost.add(json.loads(lines[j])["tick"])
        lines[j] = lines[j][: len(lines[j]) // 2] + "\n"
    lines = lines[:-1]  # no footer
    lines[-1] = lines[-1][:40]  # the session was cut off while writing its last line
    _write(s, lines)
    _drop_csv_rows(s, lost)  # ...and the collector lost those rows too
    r = run(s, tmp_path)
    kinds = {x.kind for x in r.rejects}
    assert {"bad_line", "quarantined_ticks"} <= kinds
    bad = [x for x in r.rejects if x.kind == "bad_line"]
    assert any(x.line == i + 1 and "malformed JSON" in x.reason and x.file.endswith("behaviour.jsonl") for x in bad)
    assert any("truncated last line" in x.reason for x in bad)
    assert any("no footer" in w for w in r.warnings)
    assert len(r.written) == 2  # split around the lost tick
    assert all(validate_episode(e) == [] for e in r.written)
    rej = [json.loads(l) for l in r.rejects_path.read_text().splitlines()]
    assert r.rejects_path.name == f"gta-{r.session_id}.jsonl" and r.rejects_path.parent.name == "rejects"
    assert {"kind", "reason", "file", "source"} <= set(rej[0]) and rej[0]["source"] == "gta"


def test_a_lost_json_line_is_recovered_from_the_csv(sim_vfr, tmp_path):
    s = copy_recording(sim_vfr.directory, tmp_path / "rec")
    lines = _lines(s)
    i = _record_line(s, 0.3)
    lines[i] = lines[i][:30] + "\n"
    _write(s, lines)
    r = run(s, tmp_path)
    assert any(x.kind == "bad_line" and x.line == i + 1 for x in r.rejects)
    assert any("recovered from ticks.csv" in w for w in r.warnings)
    assert len(r.written) == 1 and not any(x.kind == "quarantined_ticks" for x in r.rejects)


def test_ticks_out_of_order_are_quarantined_with_tick_and_line(sim_vfr, tmp_path):
    s = copy_recording(sim_vfr.directory, tmp_path / "rec")
    lines = _lines(s)
    i = _record_line(s, 0.6)
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    _write(s, lines)
    r = run(s, tmp_path)
    ooo = [x for x in r.rejects if x.kind == "out_of_order"]
    assert len(ooo) == 1 and ooo[0].line == i + 2 and ooo[0].tick == json.loads(lines[i + 1])["tick"]
    assert "comes after tick" in ooo[0].reason
    assert r.written and all(validate_episode(e) == [] for e in r.written)


def test_nan_dynamics_are_quarantined_naming_the_tick(sim_vfr, tmp_path):
    s = copy_recording(sim_vfr.directory, tmp_path / "rec")
    lines = _lines(s)
    i = _record_line(s, 0.4)
    d = json.loads(lines[i])
    d["vehicle"]["forward_speed_mps"] = None  # what the mod writes for a NaN
    lines[i] = json.dumps(d) + "\n"
    j = _record_line(s, 0.41)
    d2 = json.loads(lines[j])
    d2["vehicle"]["steering_deg"] = float("nan")  # a NaN token (not valid JSON, but Python and others write it)
    lines[j] = json.dumps(d2) + "\n"
    assert "NaN" in lines[j]
    _write(s, lines)
    r = run(s, tmp_path)
    nan = [x for x in r.rejects if x.kind == "nan_dynamics"]
    assert any(x.tick == d["tick"] and "vehicle.forward_speed_mps is not finite" in x.reason for x in nan)
    assert any(x.kind in ("nan_dynamics", "bad_tick") and x.line == j + 1 for x in r.rejects)
    assert any(x.kind == "quarantined_ticks" for x in r.rejects)
    assert r.written and all(validate_episode(e) == [] for e in r.written)


def test_video_shorter_than_the_log_is_reported_and_the_rest_imported(tmp_path):
    sim = simulate_recording(tmp_path / "rec", SimConfig(seed=21, duration_s=6.0, video_end_ms=5500.0))
    r = run(sim.directory, tmp_path)
    short = [x for x in r.rejects if x.kind == "video_short"]
    assert len(short) == 1 and short[0].file == "video.mp4" and short[0].tick is not None
    assert "ends at" in short[0].reason and "have no video" in short[0].reason
    assert any("ends at" in w for w in r.warnings)
    # ~100 frames: a single one-tick alignment slip at a key change costs 1 %
    assert r.written and score_import(sim.truth, r.written).key_accuracy >= 0.97


def test_no_marker_and_no_overlap_is_a_clear_error(sim_nomarker, tmp_path):
    other = simulate_recording(tmp_path / "other", SimConfig(seed=99, duration_s=6.0, marker_visible=False))
    s = copy_recording(sim_nomarker.directory, tmp_path / "rec")
    (s / "video.mp4").unlink()
    (s / "video.mp4").write_bytes(other.video_path.read_bytes())  # a video of another session
    with pytest.raises(AlignmentError, match=r"no sync marker in .*video.mp4 and no overlap with .*behaviour.jsonl"):
        run(s, tmp_path)


def test_scenario_out_of_range_is_rejected_with_the_range(sim_vfr, tmp_path):
    s = copy_recording(sim_vfr.directory, tmp_path / "rec")
    lines = _lines(s)
    head = json.loads(lines[0])
    head["scenario"]["ped_density"] = 1.7
    head["scenario"]["weather"] = "sunny"
    lines[0] = json.dumps(head) + "\n"
    _write(s, lines)
    with pytest.raises(ScenarioError) as ei:
        run(s, tmp_path)
    msg = str(ei.value)
    assert "behaviour.jsonl:1" in msg and "ped_density: 1.7 is outside the allowed range [0.2, 1.5]" in msg
    assert "'sunny' is not a GTA V weather" in msg


def test_missing_files_and_bad_options(tmp_path, sim_vfr):
    with pytest.raises(RecordingError, match="not a recording folder"):
        run(tmp_path / "nope", tmp_path)
    s = copy_recording(sim_vfr.directory, tmp_path / "rec")
    (s / "video.mp4").unlink()
    with pytest.raises(RecordingError, match="no video"):
        run(s, tmp_path)
    with pytest.raises(ValueError, match="sync: 'later' is not allowed; expected one of auto, marker, motion"):
        import_gta(s, tmp_path, GtaImportConfig(sync="later"))
    with pytest.raises(ValueError, match="width: 127 is not allowed; expected an even integer >= 2"):
        import_gta(s, tmp_path, GtaImportConfig(width=127))


def test_command_line(sim_vfr, tmp_path, capsys):
    rc = main(["import", "gta", str(sim_vfr.directory), "--out", str(tmp_path / "eps"), "--fps", "20",
               "--min-frames", "10", "--width", "64", "--height", "36"])
    out = capsys.readouterr().out
    assert rc == 0 and "episode(s)" in out and "aligned by marker" in out
    ep = read_episode(next((tmp_path / "eps").iterdir()))
    assert (ep.meta.width, ep.meta.height, ep.meta.fps) == (64, 36, 20.0)
    assert main(["import", "gta", str(tmp_path / "missing"), "--out", str(tmp_path / "eps")]) == 1


def test_a_paused_game_is_cut_out(tmp_path):
    sim = simulate_recording(tmp_path / "rec", SimConfig(seed=31, duration_s=6.0, pause_at_s=2.5, pause_ms=2000.0))
    r = run(sim.directory, tmp_path)
    paused = [x for x in r.rejects if x.kind == "game_paused"]
    assert len(paused) == 1 and "no game tick for more than 250 ms" in paused[0].reason
    assert 1.7 < paused[0].t_end_s - paused[0].t_start_s < 2.1
    assert len(r.written) == 2
    s = score_import(sim.truth, r.written)
    assert s.key_accuracy >= 0.97 and np.percentile(s.align_err_ms, 99) <= HALF_FRAME_MS
