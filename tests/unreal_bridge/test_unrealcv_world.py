"""UnrealCVWorld over the sandbox's UnrealCV server: episodes, poses, navmesh collision, dropped connections,
timeouts and malformed replies."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import panda3d.core  # noqa: E402,F401  (a dependency: fail loudly if missing)

from capture import EpisodeTask, list_episodes, read_episode, record_episode  # noqa: E402
from capture.actions import FrameAction  # noqa: E402
from capture.rotations import rotator_to_quat  # noqa: E402
from unreal_bridge import SandboxWorld  # noqa: E402
from unreal_bridge.navmesh_controller import make_navmesh_controller  # noqa: E402
from unreal_bridge.unrealcv_server import ServerConfig, UnrealCVServer, encode_frame, read_frame  # noqa: E402
from unreal_bridge.unrealcv_world import (  # noqa: E402
    UnrealCVCommandError,
    UnrealCVConfig,
    UnrealCVConnectionError,
    UnrealCVProtocolError,
    UnrealCVWorld,
    make_unrealcv_world,
)

W, H = 160, 96
SCENE, SEED = "indoor", 4
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def navfile(tmp_path_factory):
    with SandboxWorld(SCENE, width=32, height=32) as w:
        w.reset(SEED)
        return str(w.export_walkable(tmp_path_factory.mktemp("nav") / f"{SCENE}_{SEED}.json"))


@pytest.fixture(scope="module")
def server():
    with UnrealCVServer(ServerConfig(port=0, scene="park", seed=1, width=W, height=H)) as srv:
        yield srv


def _world(port: int, navfile: str, **kw) -> UnrealCVWorld:
    return UnrealCVWorld(UnrealCVConfig(port=port, level=f"{SCENE}_{SEED}", navmesh=navfile, width=W, height=H, **kw))


def _task(seed: int, frames: int, index: int = 0) -> EpisodeTask:
    return EpisodeTask(f"unrealcv-{SCENE}_{SEED}-s{seed:010d}-i{index:05d}", "unrealcv", f"{SCENE}_{SEED}", seed, index, frames)


def test_records_a_valid_episode(server, navfile, tmp_path):
    with _world(server.port, navfile) as world:
        path = record_episode(world, make_navmesh_controller(world), tmp_path, _task(7, 60))
        mesh = world.navmesh
        loc, rot = world.remote_pose()  # the server renders exactly the pose that was set
        assert np.allclose(loc, world._rig.pos_cm, atol=1e-3)
        assert np.allclose([rot[0], (rot[1] - world._rig.yaw_deg + 180) % 360 - 180, rot[2]],
                           [world._rig.pitch_deg, 0.0, 0.0], atol=1e-3)
    ep = read_episode(path, check_video=True)
    assert ep.meta.source == "unrealcv" and ep.meta.scene == "indoor_4" and ep.meta.frame_count == 60
    a = ep.actions
    assert (a["collision"] == 0).all() and (a["unrealcv_reconnects"] == 0).all()
    assert np.allclose(a["z"], 170.0)
    feet = a[["x", "y", "z"]].to_numpy() - [0.0, 0.0, 170.0]
    assert mesh.contains_points(feet, tol_cm=0.01).all()
    assert np.hypot(*(feet[-1, :2] - feet[0, :2])) > 100.0  # it walked
    # the quaternions are the float64 rotators the rig accumulated from the recorded mouse deltas
    yaw0 = np.degrees(2 * np.arctan2(a.loc[0, "qz"], a.loc[0, "qw"]))
    yaw = yaw0 + np.cumsum(a["d_yaw"].to_numpy())
    pitch = np.clip(np.cumsum(a["d_pitch"].to_numpy()), -85, 85)
    q = np.array([rotator_to_quat(p, y) for p, y in zip(pitch, yaw)])
    got = a[["qw", "qx", "qy", "qz"]].to_numpy()
    assert np.allclose(np.abs(np.sum(q * got, axis=1)), 1.0, atol=1e-12)


def test_frames_are_the_level_seen_from_the_pose(server, navfile):
    def run(**kw):
        with _world(server.port, navfile, **kw) as world:
            obs = world.reset(3)
            for _ in range(6):
                obs = world.step(FrameAction(frozenset({"w"}), d_pitch_deg=0.5, d_yaw_deg=2.0))
            return obs

    npy = run(image_format="npy", use_vbatch=False)
    png = run()
    assert np.array_equal(npy.pos_cm, png.pos_cm) and np.array_equal(npy.frame, png.frame)
    with SandboxWorld(SCENE, width=W, height=H) as ref:
        ref.reset(SEED)
        expected = ref.render_view(png.pos_cm, png.pitch_deg, png.yaw_deg)
    assert png.frame.shape == (H, W, 3) and np.array_equal(png.frame, expected)


def test_walls_block_and_the_agent_slides_along_them(server, navfile):
    with _world(server.port, navfile) as world:
        obs = world.reset(11)
        mesh = world.navmesh
        feet = obs.pos_cm - [0, 0, 170.0]
        yaws = np.arange(0.0, 360.0, 10.0)
        dist = [mesh.raycast(feet, feet + [500 * np.cos(np.radians(y)), 500 * np.sin(np.radians(y)), 0]).distance_cm
                for y in yaws]
        turn = float(yaws[int(np.argmin(dist))]) - obs.yaw_deg + 20.0  # towards the nearest wall, a bit askew
        obs = world.step(FrameAction(d_yaw_deg=turn))
        hits = 0
        for _ in range(60):
            obs = world.step(FrameAction(frozenset({"w"})))
            hits += obs.collision
            assert mesh.contains_points((obs.pos_cm - [0, 0, 170.0])[None], tol_cm=0.01).all()
        assert hits > 10
        assert obs.collision and 0.0 < np.hypot(*obs.vel_cm_s[:2]) < 300.0  # sliding, slower than walking


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn_server(port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "playmill", "sandbox", "serve", "--port", str(port), "--scene",
                             "park", "--seed", "1", "--width", str(W), "--height", str(H)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(REPO))
    return proc


def _wait_listening(proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout_s)
    assert box and "listening on" in box[0], f"server did not start: {box}"


class _Hook:
    """Wraps a controller; calls ``fn`` just before the action of frame ``at``."""

    def __init__(self, inner, at: int, fn) -> None:
        self.inner, self.at, self.fn, self.n = inner, at, fn, 0

    def reset(self, seed, obs):
        self.inner.reset(seed, obs)

    def act(self, obs):
        self.n += 1
        if self.n == self.at:
            self.fn()
        return self.inner.act(obs)


def test_episode_resumes_after_the_server_is_killed_and_restarted(navfile, tmp_path):
    port = _free_port()
    procs = [_spawn_server(port)]
    try:
        _wait_listening(procs[0])

        def kill_and_restart() -> None:
            procs[0].kill()  # SIGKILL: no goodbye on the socket
            procs[0].wait(10)
            procs.append(_spawn_server(port))

        cfg = dict(reconnect_attempts=8, reconnect_backoff_s=0.25, reconnect_backoff_max_s=4.0)
        with _world(port, navfile, **cfg) as world:
            ctrl = _Hook(make_navmesh_controller(world), 15, kill_and_restart)
            resumed = read_episode(record_episode(world, ctrl, tmp_path, _task(5, 40, 0)), check_video=True)
        with _world(port, navfile) as world:  # the same episode without interruption, for reference
            reference = read_episode(record_episode(world, make_navmesh_controller(world), tmp_path, _task(5, 40, 1)))
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
    r = resumed.actions["unrealcv_reconnects"].to_numpy()
    assert r[0] == 0 and r[-1] == 1 and np.all(np.diff(r) >= 0)
    cols = [c for c in reference.actions.columns if c != "unrealcv_reconnects"]
    assert resumed.actions[cols].equals(reference.actions[cols])  # the same poses and actions, frame for frame
    assert resumed.meta.video_sha256 == reference.meta.video_sha256  # and the same pixels


def test_episode_is_discarded_when_told(navfile, tmp_path):
    srv = UnrealCVServer(ServerConfig(port=0, scene="indoor", seed=SEED, width=W, height=H)).start()
    try:
        with _world(srv.port, navfile, on_disconnect="discard") as world:
            ctrl = _Hook(make_navmesh_controller(world), 10, srv.stop)
            with pytest.raises(UnrealCVConnectionError, match="discarded"):
                record_episode(world, ctrl, tmp_path, _task(5, 30))
    finally:
        srv.stop()
    assert list_episodes(tmp_path) == [] and list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_gives_up_with_a_clear_error_when_nobody_listens(navfile):
    port = _free_port()
    t0 = time.monotonic()
    with _world(port, navfile, reconnect_attempts=2, reconnect_backoff_s=0.05) as world:
        with pytest.raises(UnrealCVConnectionError, match=rf"127\.0\.0\.1:{port}.*gave up after 2 reconnect attempts"):
            world.reset(0)
    assert time.monotonic() - t0 < 10.0


class _FakeEndpoint:
    """A scripted UnrealCV endpoint: ``reply(rid, command) -> bytes | None`` (None: never answer)."""

    def __init__(self, reply, greeting: bytes = b"connected to fake") -> None:
        self.reply, self.greeting = reply, greeting
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with c:
                c.settimeout(0.2)
                c.sendall(encode_frame(self.greeting))
                while not self.stop.is_set():
                    try:
                        msg = read_frame(c, time.monotonic() + 30, 5, self.stop)
                    except (OSError, TimeoutError):
                        break
                    if msg is None:
                        break
                    rid, cmd = msg.decode().split(":", 1)
                    out = self.reply(int(rid), cmd)
                    if out is not None:
                        c.sendall(encode_frame(out))

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _scripted(lit: bytes = b"", bad_id: bool = False, error_on: str = ""):
    import cv2

    png = cv2.imencode(".png", np.zeros((H, W, 3), np.uint8))[1].tobytes()

    def reply(rid: int, cmd: str):
        if error_on and cmd.startswith(error_on):
            return f"{rid}:error something is wrong".encode()
        if cmd.startswith("vget") and "/lit" in cmd:
            return f"{rid + (1 if bad_id else 0)}:".encode() + (lit or png)
        return f"{rid}:ok".encode()

    return reply


@pytest.mark.parametrize("script, error, match", [
    (dict(lit=b"this is no image"), UnrealCVProtocolError, r"vget /camera/0/lit png.*not a PNG/BMP/NPY image"),
    (dict(lit=b"\x89PNG\r\n\x1a\n broken"), UnrealCVProtocolError, r"not a PNG/BMP/NPY image"),
    (dict(bad_id=True), UnrealCVProtocolError, r"reply id 5 to 'vget /camera/0/lit png', expected 4"),
    (dict(error_on="vset /camera/0/rotation"), UnrealCVCommandError, r"vset /camera/0/rotation .* failed: error something"),
    (dict(error_on="vset /camera/0/size"), UnrealCVCommandError, r"vset /camera/0/size 160 96.*failed"),
])
def test_malformed_replies_give_clear_errors(navfile, script, error, match):
    fake = _FakeEndpoint(_scripted(**script))
    try:
        with UnrealCVWorld(UnrealCVConfig(port=fake.port, navmesh=navfile, width=W, height=H, use_vbatch=False,
                                          reconnect_attempts=0)) as world:
            with pytest.raises(error, match=match):
                world.reset(0)
    finally:
        fake.close()


def test_wrong_image_size_and_silence_and_refusal(navfile):
    import cv2

    small = cv2.imencode(".png", np.zeros((10, 20, 3), np.uint8))[1].tobytes()
    fake = _FakeEndpoint(_scripted(lit=small))
    try:
        with UnrealCVWorld(UnrealCVConfig(port=fake.port, navmesh=navfile, width=W, height=H, reconnect_attempts=0)) as w:
            with pytest.raises(UnrealCVProtocolError, match=r"image is 20x10, expected 160x96"):
                w.reset(0)
    finally:
        fake.close()
    fake = _FakeEndpoint(lambda rid, cmd: None)  # never answers
    try:
        with UnrealCVWorld(UnrealCVConfig(port=fake.port, navmesh=navfile, width=W, height=H, timeout_s=0.3,
                                          reconnect_attempts=0)) as w:
            t0 = time.monotonic()
            with pytest.raises(UnrealCVConnectionError, match=r"no the reply to 'vset /camera/0/size 160 96' within 0.3 s"):
                w.reset(0)
            assert time.monotonic() - t0 < 5.0
    finally:
        fake.close()
    fake = _FakeEndpoint(_scripted(), greeting=b"error: busy, another client is connected")
    try:
        with UnrealCVWorld(UnrealCVConfig(port=fake.port, navmesh=navfile, width=W, height=H, reconnect_attempts=0)) as w:
            with pytest.raises(UnrealCVConnectionError, match="refused the connection: 'error: busy"):
                w.reset(0)
    finally:
        fake.close()


def test_config_is_checked(navfile):
    with pytest.raises(ValueError, match=r"colour: unknown key"):
        UnrealCVConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="image_format"):
        UnrealCVConfig.from_dict({"image_format": "jpg"})
    with pytest.raises(ValueError, match="even"):
        UnrealCVConfig.from_dict({"width": 161})
    with pytest.raises(ValueError, match="on_disconnect"):
        UnrealCVConfig.from_dict({"on_disconnect": "retry"})
    with pytest.raises(ValueError, match="navmesh is required"):
        UnrealCVWorld(UnrealCVConfig())
    w = make_unrealcv_world("city_3", {"navmesh": navfile, "port": 9123})
    assert w.cfg.level == "city_3" and w.scene == "city_3" and w.source == "unrealcv" and w.cfg.port == 9123
    w.close()
