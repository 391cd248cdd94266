"""collect.engine: ray from pipeline.yaml: the same sandbox episodes as the local engine, byte for byte; UnrealCV
endpoints with their streams; ray.address and the engine keys are validated."""

import json

import pytest
import yaml

from capture.validate import validate_episode
from playmill.config import ConfigError, load_config, parse_config
from playmill.stages import run_collect


def _config(tmp_path, name, collect, **top):
    doc = {"workdir": name, "stages": ["collect"], "seed": 3, "collect": collect, **top}
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return load_config(tmp_path / f"{name}.yaml")


def _meta_without_time(ep):
    m = json.loads((ep / "meta.json").read_text())
    m.pop("created_utc")
    return m


def test_ray_engine_records_the_sandbox_episodes_of_the_local_engine_byte_for_byte(tmp_path, ray_local):
    import subprocess
    import sys

    from capture.episode import list_episodes

    sandbox = {"scenes": ["city", "park"], "episodes_per_scene": 1, "frames": 20, "width": 64, "height": 48,
               "sandbox": {"weather": ["clear", "fog"], "npc_density": 1.0}}
    # the local engine in a fresh process, like Ray's actors: the sandbox renderer's pixels depend on the worlds its
    # process rendered before (README, "Ray cluster"), and other tests render sandbox worlds in this one
    local = _config(tmp_path, "local", {**sandbox, "workers": 1})
    proc = subprocess.run([sys.executable, "-m", "playmill", "collect", str(tmp_path / "local.yaml"), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = _config(tmp_path, "ray", {**sandbox, "workers": 2, "engine": "ray"}, ray={"address": "local"})
    viaray = run_collect(cfg, progress=False)
    written = list_episodes(local.episodes_dir)
    assert not viaray.failed and len(viaray.written) == 2
    assert [p.name for p in written] == sorted(p.name for p in viaray.written)
    for a, b in zip(written, sorted(viaray.written)):
        for name in ("video.mp4", "actions.csv"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), (a.name, name)
        assert _meta_without_time(a) == _meta_without_time(b)
        assert validate_episode(b) == []
    report = json.loads((cfg.workdir / "reports" / "collect.json").read_text())
    assert report["engine"] == "ray" and len(report["written"]) == 2 and report["rerun"] == []


def test_unrealcv_endpoints_each_record_their_streams_on_ray(tmp_path, ray_local):
    from unreal_bridge import SandboxWorld
    from unreal_bridge.unrealcv_server import ServerConfig, UnrealCVServer

    with SandboxWorld("indoor", width=32, height=32) as w:
        w.reset(4)
        nav = w.export_walkable(tmp_path / "indoor_4.json")
    with UnrealCVServer(ServerConfig(port=0, scene="park", seed=1, width=64, height=48)) as a, \
            UnrealCVServer(ServerConfig(port=0, scene="park", seed=1, width=64, height=48)) as b:
        cfg = _config(tmp_path, "ucv", {
            "source": "unrealcv", "engine": "ray", "scenes": ["indoor_4"], "episodes_per_scene": 4, "frames": 10,
            "width": 64, "height": 48, "unrealcv": {"navmesh": str(nav)},
            "endpoints": [{"host": "127.0.0.1", "port": a.port, "streams": 1},
                          {"host": "127.0.0.1", "port": b.port}]})
        assert [(e.port, e.streams) for e in cfg.collect.endpoints] == [(a.port, 1), (b.port, 1)]
        res = run_collect(cfg, progress=False)
        served = (a.clients_served, b.clients_served)
    assert not res.failed, res.failed
    assert len(res.written) == 4 and all(validate_episode(p) == [] for p in res.written)
    ports = {json.loads((p / "meta.json").read_text())["config"]["port"] for p in res.written}
    assert ports == {a.port, b.port} and min(served) >= 1  # both endpoints recorded episodes


def test_engine_keys_are_validated():
    cfg = parse_config({"collect": {"engine": "ray"}, "ray": {"address": "ray://head:10001"},
                        "curate": {"engine": "ray"}})
    assert (cfg.collect.engine, cfg.ray.address, cfg.curate.engine) == ("ray", "ray://head:10001", "ray")
    assert parse_config({}).ray.address == "local" and parse_config({}).collect.engine == "local"
    with pytest.raises(ConfigError) as e:
        parse_config({"collect": {"engine": "spark", "endpoints": [{"port": 9000}]},
                      "ray": {"address": "", "token": "x"}})
    msg = str(e.value)
    for part in ("collect.engine: 'spark' is not allowed; expected one of local, ray",
                 "collect.endpoints: [{'port': 9000}] is not allowed; expected no endpoints: they are for "
                 "collect.source unrealcv", "ray.address: '' is not allowed", "ray.token: unknown key"):
        assert part in msg
    with pytest.raises(ConfigError) as e:
        parse_config({"collect": {"source": "unrealcv", "unrealcv": {"navmesh": "a.obj"},
                                  "endpoints": [{"port": 0}, {"port": 9001, "streams": 0}, "x"]}})
    msg = str(e.value)
    for part in ("collect.endpoints[0].port: 0 is not allowed; expected an integer in [1, 65535]",
                 "collect.endpoints[1].streams: 0 is not allowed", "collect.endpoints[2]: 'x' is not allowed"):
        assert part in msg


def test_a_cluster_that_refuses_us_gets_a_clear_error(monkeypatch):
    import ray

    from capture.ray_engine import ray_session

    def refuse(*a, **k):
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.9:6379")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(RuntimeError, match=r"cannot join the Ray cluster at ray.address '10.0.0.9:6379'.*"
                                           r"RAY_AUTH_MODE=token.*auth_token"):
        with ray_session("10.0.0.9:6379"):
            pass
