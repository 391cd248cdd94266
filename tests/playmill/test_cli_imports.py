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
    code = main(["import", "gta", str(rec), str(broken), "--out", str(out), "--min-frames", "17"])
    captured = capsys.readouterr()
    assert code == 1  # one session failed, the other imported
    assert f"FAILED {broken}" in captured.out
    eps = list_episodes(out)
    assert eps and all(validate_episode(e) == [] for e in eps)
    assert "aligned by marker" in captured.out
    assert main(["import", "gta", str(rec), "--out", str(out), "--set", "imports.gta.min_episode_frames=17"]) == 0
    assert f"0 episode(s) written, {len(eps)} already there" in capsys.readouterr().out
    assert main(["import", "gta", str(rec), "--out", str(out), "--min-frames", "0"]) == 2
    assert "--min-frames 0: imports.gta.min_episode_frames: 0 is not allowed" in capsys.readouterr().err


def test_import_unreal_reports_a_missing_folder_clearly(tmp_path, capsys):
    code = main(["import", "unreal", str(tmp_path / "nowhere"), "--out", str(tmp_path / "eps")])
    assert code == 2
    assert "nowhere: no such folder" in capsys.readouterr().err


def test_pipeline_collects_from_an_unrealcv_endpoint(tmp_path):
    """source: unrealcv in pipeline.yaml, against the sandbox served over the UnrealCV protocol."""
    import yaml

    from playmill.config import load_config
    from playmill.stages import run_collect
    from unreal_bridge import SandboxWorld
    from unreal_bridge.unrealcv_server import ServerConfig, UnrealCVServer

    with SandboxWorld("indoor", width=32, height=32) as w:
        w.reset(4)
        nav = w.export_walkable(tmp_path / "indoor_4.json")
    with UnrealCVServer(ServerConfig(port=0, scene="park", seed=1, width=96, height=64)) as srv:
        doc = {"workdir": "run", "stages": ["collect"],
               "collect": {"source": "unrealcv", "scenes": ["indoor_4"], "episodes_per_scene": 1, "frames": 12,
                           "width": 96, "height": 64, "workers": 1, "controller": "navmesh",
                           "unrealcv": {"port": srv.port, "navmesh": str(nav)}}}
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
        res = run_collect(load_config(tmp_path / "p.yaml"), progress=False)
    assert not res.failed, res.failed
    (ep,) = res.written
    assert validate_episode(ep) == []
    assert ep.name.startswith("unrealcv-indoor_4-")
    from capture.episode import read_episode

    meta = read_episode(ep).meta  # the scene names the level the server switched to, at collect's size
    assert meta.config["level"] == "indoor_4" and (meta.width, meta.height) == (96, 64)


def test_unrealcv_source_needs_a_navmesh(tmp_path):
    import pytest

    from playmill.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="collect.unrealcv.navmesh"):
        parse_config({"collect": {"source": "unrealcv", "scenes": ["Map1"], "unrealcv": {"port": 9000}}})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config({"collect": {"source": "unrealcv", "unrealcv": {"navmesh": "a.obj", "colour": 1}}})
    with pytest.raises(ConfigError, match=r"collect.unrealcv.width: 320 is not allowed; expected to be left out: "
                                          r"collect.width \(640\) sets it"):
        parse_config({"collect": {"source": "unrealcv", "unrealcv": {"navmesh": "a.obj", "width": 320}}})
    cfg = parse_config({"collect": {"source": "unrealcv", "scenes": ["Map1"], "width": 96, "height": 64, "fps": 30,
                                    "unrealcv": {"navmesh": "a.obj"}}})
    assert (cfg.collect.unrealcv.width, cfg.collect.unrealcv.height, cfg.collect.unrealcv.fps) == (96, 64, 30.0)
