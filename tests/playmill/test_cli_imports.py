"""The import verbs of the CLI call the bridges' importers and report per recording."""

from capture.episode import list_episodes
from capture.validate import validate_episode
from gta_bridge.sim import SimConfig, simulate_recording
from playmill.cli import main


def test_import_gta_writes_valid_episodes_and_reports_a_bad_session(tmp_path, capsys):
    rec = tmp_path / "session"
    simulate_recording(rec, SimConfig(seed=3, duration_s=5.0, width=96, height=64))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "behaviour.jsonl").write_text('{"type": "header", "schema_version": 99}\n')
    out = tmp_path / "episodes"
    code = main(["import", "gta", str(rec), str(broken), "--episodes-dir", str(out), "--min-frames", "17"])
    captured = capsys.readouterr()
    assert code == 1  # one session failed, the other imported
    assert "broken" in captured.err
    eps = list_episodes(out)
    assert eps and all(validate_episode(e) == [] for e in eps)
    assert "aligned by marker" in captured.out
    assert main(["import", "gta", str(rec), "--episodes-dir", str(out), "--min-frames", "17"]) == 0
    assert "already there" in capsys.readouterr().out


def test_import_unreal_reports_a_missing_folder_clearly(tmp_path, capsys):
    code = main(["import", "unreal", str(tmp_path / "nowhere"), "--episodes-dir", str(tmp_path / "eps")])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err
