"""The sandbox UnrealCV server, driven by the real ``unrealcv`` client from PyPI."""

from __future__ import annotations

import io
import math
import socket
import struct
import threading
import time
import warnings

import numpy as np
import pytest

import panda3d.core  # noqa: E402,F401  (a dependency: fail loudly if missing)
import unrealcv  # noqa: E402  (the real PyPI client, a test dependency)

from unreal_bridge import SandboxWorld  # noqa: E402
from unreal_bridge.unrealcv_server import (  # noqa: E402
    MAGIC,
    ServerConfig,
    UnrealCVServer,
    encode_frame,
    read_frame,
    serve,
)

W, H = 160, 96


@pytest.fixture(scope="module")
def server():
    with UnrealCVServer(ServerConfig(port=0, scene="indoor", seed=2, width=W, height=H)) as srv:
        yield srv


@pytest.fixture()
def client(server):
    c = unrealcv.Client(("127.0.0.1", server.port))
    assert c.connect(timeout=5)
    yield c
    c.disconnect()
    time.sleep(0.05)


def _raw_connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    greeting = read_frame(s, time.monotonic() + 5, 5)
    assert greeting.startswith(b"connected to ")
    return s


def _closed_by_server(s: socket.socket) -> bool:
    """The server closed the connection (cleanly, or with a reset when our bytes were left unread)."""
    try:
        return read_frame(s, time.monotonic() + 5, 5) is None
    except ConnectionResetError:
        return True


def _raw_request(s: socket.socket, rid: int, cmd: str) -> bytes:
    s.sendall(encode_frame(f"{rid}:{cmd}".encode()))
    return read_frame(s, time.monotonic() + 10, 10)


def test_handshake_status_and_command_list(server, client):
    assert server.port and server.config.host == "127.0.0.1"
    # the client asked for the command list at connect and accepted it: no "may not support" warnings now
    assert client._command_capabilities_available
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status = client.request("vget /unrealcv/status")
        assert client.request("vget /camera/0/location")
    assert "Is Listening" in status and f"Port: {server.port}" in status and f"Width: {W}" in status
    commands = client.request("vget /unrealcv/commands").splitlines()
    assert "vget /unrealcv/commands" in commands and "vset /action/keyboard [key] [seconds]" in commands
    assert client.request("vget /level/name") == "indoor_2"


def test_camera_pose_round_trip(client):
    assert client.request("vset /camera/0/location 123.4567 -89.01234 170.5") == "ok"
    assert client.request("vget /camera/0/location") == "123.457 -89.012 170.500"
    assert client.request("vset /camera/0/rotation -5.25 271.125 0.5") == "ok"
    assert client.request("vget /camera/0/rotation") == "-5.250 271.125 0.500"


def test_lit_png_bmp_npy_agree(server, client):
    assert client.request("vset /action/game/level indoor_2") == "ok"  # a fresh level: actors at their start
    client.request("vset /camera/0/location 600 0 170")
    client.request("vset /camera/0/rotation 0 30 0")
    import cv2

    png = client.request("vget /camera/0/lit png")
    bmp = client.request("vget /camera/0/lit bmp")
    npy = np.load(io.BytesIO(client.request("vget /camera/0/lit npy")), allow_pickle=False)
    assert isinstance(png, bytes) and png[:8] == b"\x89PNG\r\n\x1a\n" and bmp[:2] == b"BM"
    rgb_png = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    rgb_bmp = cv2.imdecode(np.frombuffer(bmp, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert npy.shape == (H, W, 3) and npy.dtype == np.uint8
    assert np.array_equal(rgb_png, npy) and np.array_equal(rgb_bmp, npy)
    # exactly what a sandbox of the same level renders from that pose (a world of this thread: Panda3D renders a
    # world only on the thread that made it)
    with SandboxWorld("indoor", width=W, height=H) as ref_world:
        ref_world.reset(2)
        ref = ref_world.render_view(np.array([600.0, 0.0, 170.0]), 0.0, 30.0)
    assert np.array_equal(ref, npy)


def test_depth_npy_is_plane_depth_in_cm(server, client):
    from unreal_bridge.sandbox.layout import static_shapes_of

    assert client.request("vset /action/game/level indoor_2") == "ok"
    world = server._session.world  # read-only numpy queries; rendering stays on the server's thread
    eye = world.agent_state.eye_cm
    # a direction where the first obstacle is a wall reaching above and below the eye (not furniture or people)
    tall = tuple(b for b in world.layout.boxes if b.collides and b.center_cm[2] - b.half_cm[2] < eye[2] - 30
                 and b.center_cm[2] + b.half_cm[2] > eye[2] + 30)
    yaws = np.arange(0.0, 360.0, 5.0)
    dirs = np.stack([np.cos(np.radians(yaws)), np.sin(np.radians(yaws))], axis=1)
    walls = static_shapes_of(tall, ()).raycast(eye[:2], dirs, 5000.0)
    first = np.minimum(world.probe_many(yaws, 5000.0, include_dynamic=True), walls)
    ok = (np.abs(first - walls) < 1e-6) & (walls > 150.0) & (walls < 2000.0)
    assert ok.any()
    yaw = float(yaws[np.argmax(ok)])
    client.request("vset /camera/0/location %.3f %.3f %.3f" % tuple(eye))
    client.request(f"vset /camera/0/rotation 0 {yaw} 0")
    depth = np.load(io.BytesIO(client.request("vget /camera/0/depth npy")), allow_pickle=False)
    assert depth.shape == (H, W) and depth.dtype == np.float32
    wall = float(walls[np.argmax(ok)])
    centre = float(np.median(depth[H // 2 - 2:H // 2 + 2, W // 2 - 2:W // 2 + 2]))
    assert abs(centre - wall) < 0.03 * wall + 5.0, (centre, wall)
    # the floor at the bottom row: eye height over the tangent of the ray's depression angle
    tan_half_v = math.tan(math.radians(45.0)) * H / W
    row = H - 1
    slope = (row + 0.5 - H / 2) / (H / 2) * tan_half_v
    floor = float(np.median(depth[row, W // 2 - 3:W // 2 + 3]))
    assert abs(floor - eye[2] / slope) < 0.03 * floor + 3.0, (floor, eye[2] / slope)


def test_size_and_fov(server, client):
    assert client.request("vget /camera/0/fov") == "90.000"
    try:
        assert client.request("vset /camera/0/size 80 48") == "ok"
        assert client.request("vget /camera/0/size") == "80 48"
        assert np.load(io.BytesIO(client.request("vget /camera/0/lit npy"))).shape == (48, 80, 3)
        assert client.request("vset /camera/0/fov 60") == "ok"
        assert client.request("vget /camera/0/fov") == "60.000"
        assert client.request("vset /action/game/level city_1") == "ok"  # size and fov carry over to a new level
        assert client.request("vget /camera/0/size") == "80 48" and client.request("vget /camera/0/fov") == "60.000"
        assert client.request("vset /camera/0/size 7 7").startswith("error")
    finally:
        client.request(f"vset /camera/0/size {W} {H}")
        client.request("vset /camera/0/fov 90")
        client.request("vset /action/game/level indoor_2")


def test_keyboard_moves_the_agent(server, client):
    world = server._session.world
    yaws = np.arange(0.0, 360.0, 10.0)
    yaw = float(yaws[np.argmax(world.probe_many(yaws, 5000.0))])
    start = world.agent_state.eye_cm.copy()
    client.request("vset /camera/0/location %.3f %.3f %.3f" % tuple(start))
    client.request(f"vset /camera/0/rotation 0 {yaw} 0")
    assert client.request("vset /action/keyboard W 0.4") == "ok"  # 10 frames at 25 fps, 300 cm/s
    loc = np.array([float(v) for v in client.request("vget /camera/0/location").split()])
    moved = loc[:2] - start[:2]
    assert np.isclose(np.hypot(*moved), 120.0, atol=0.01)
    assert np.isclose(math.degrees(math.atan2(moved[1], moved[0])) % 360.0, yaw % 360.0, atol=0.01)
    assert client.request("vset /action/keyboard LeftShift 0.1") == "ok"
    assert client.request("vset /action/keyboard Q 0.1").startswith("error unknown key")
    assert client.request("vset /action/keyboard W -1").startswith("error")


def test_objects_and_levels(server, client):
    names = client.request("vget /objects").split()
    assert names and len(set(names)) == len(names)
    loc = client.request(f"vget /object/{names[0]}/location").split()
    assert len(loc) == 3 and all(math.isfinite(float(v)) for v in loc)
    assert client.request("vget /object/Nope_1/location").startswith("error")
    try:
        assert client.request("vset /action/game/level park_3") == "ok"
        assert client.request("vget /level/name") == "park_3"
        assert client.request("vget /objects").split() != names
        assert client.request("vset /action/game/level moon_1").startswith("error unknown level")
    finally:
        assert client.request("vset /action/game/level indoor_2") == "ok"
    assert client.request("vget /objects").split() == names


def test_vbatch_and_request_batch(client):
    assert client.request("vbatch 3") == "ok"
    replies = client.request(["vset /camera/0/location 500 0 170", "vget /camera/0/location", "vget /level/name"])
    assert replies == ["ok", "500.000 0.000 170.000", "indoor_2"]
    replies = client.request(["vget /camera/0/location", "vget /camera/0/rotation"])  # pipelined without vbatch
    assert replies[0] == "500.000 0.000 170.000" and len(replies[1].split()) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "vbatch" alone does not match the listed template "vbatch [n]"
        assert client.request("vbatch 0").startswith("error")
        assert client.request("vbatch").startswith("error")


def test_errors_for_unknown_or_malformed_commands(client):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real client warns about commands the server does not list
        for cmd in ("vget /nothing", "hello", "vset /camera/0/location 1 2", "vset /camera/0/location a b c",
                    "vget /camera/1/location", "vget /camera/0/lit", "vget /camera/0/lit jpg",
                    "vget /camera/0/depth png", "vset /camera/0/rotation 1 2 nan", "vset /action/game/level"):
            reply = client.request(cmd)
            assert isinstance(reply, str) and reply.startswith("error"), (cmd, reply)
    assert client.request("vget /level/name") == "indoor_2"  # still serving


def test_many_clients_at_once_with_world_access_serialised(server, client):
    """Clients connected together are all served; an idle one blocks nobody; a vbatch runs with nothing between."""
    others = [unrealcv.Client(("127.0.0.1", server.port)) for _ in range(6)]
    try:
        assert all(c.connect(timeout=5) for c in others)
        deadline = time.monotonic() + 10  # clients of earlier tests may take a moment to be noticed gone
        while server.clients != 7 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.clients == 7 and "Client Connected" in client.request("vget /unrealcv/status")
        results: dict[int, list] = {}

        def work(i: int, c: unrealcv.Client) -> None:
            out = []
            for k in range(15):  # each client sets camera 0 and reads it back inside one batch: never interleaved
                x = 1000 * i + k
                assert c.request("vbatch 2") == "ok"
                out.append(c.request([f"vset /camera/0/location {x} 0 170", "vget /camera/0/location"]))
            results[i] = out

        threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(others[1:])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # others[0] connected and stayed idle the whole time; it still gets an answer, and so does `client`
        assert others[0].request("vget /level/name") == "indoor_2"
        assert len(results) == 5
        for i, out in results.items():
            assert [r[0] for r in out] == ["ok"] * 15
            assert [r[1] for r in out] == ["%.3f 0.000 170.000" % (1000 * i + k) for k in range(15)]
    finally:
        for c in others:
            c.disconnect()


def test_connection_cap_and_oversized_requests_get_error_replies():
    cfg = ServerConfig(port=0, scene="indoor", seed=2, width=32, height=32, max_clients=2, max_request_bytes=256)
    with UnrealCVServer(cfg) as srv:
        a, b = _raw_connect(srv.port), _raw_connect(srv.port)
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        refusal = read_frame(s, time.monotonic() + 5, 5)
        assert refusal.startswith(b"error too many clients: 2 are connected (max_clients 2)")
        assert _closed_by_server(s)
        s.close()
        third = unrealcv.Client(("127.0.0.1", srv.port))
        assert third.connect(timeout=3) is False  # the real client sees no greeting and gives up
        # a request over the limit is read past without being held, answered with its id, and the line stays usable
        a.sendall(encode_frame(b"7:vget /level/name " + b"x" * 100_000))
        assert read_frame(a, time.monotonic() + 10, 10) == (
            b"7:error request of 100019 bytes exceeds the 256-byte limit (max_request_bytes)")
        assert _raw_request(a, 8, "vget /level/name") == b"8:indoor_2"
        # a frame that declares more than UnrealCV's 256 MiB is told and closed, before any byte is buffered
        b.sendall(struct.pack("<II", MAGIC, 0xFFFFFFFF))
        assert read_frame(b, time.monotonic() + 5, 5).startswith(b"error frame size 4294967295 is outside")
        assert _closed_by_server(b)
        b.close()
        deadline = time.monotonic() + 5
        while srv.clients > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        c = unrealcv.Client(("127.0.0.1", srv.port))  # a slot is free again
        assert c.connect(timeout=5) and c.request("vget /level/name") == "indoor_2"
        c.disconnect()
        a.close()


def test_survives_clients_that_break_off(server):
    # header promises 1000 bytes, 10 arrive, then the client vanishes
    s = _raw_connect(server.port)
    s.sendall(struct.pack("<II", MAGIC, 1000) + b"0:vget /le")
    s.close()
    # a request for a frame, closed before reading the reply
    s = _raw_connect(server.port)
    s.sendall(encode_frame(b"0:vget /camera/0/lit png"))
    s.close()
    # a batch cut short
    s = _raw_connect(server.port)
    assert _raw_request(s, 0, "vbatch 3") == b"0:ok"
    s.sendall(encode_frame(b"1:vget /level/name"))
    s.close()
    # bad magic: the server says so and drops the connection
    s = _raw_connect(server.port)
    s.sendall(struct.pack("<II", 0xDEADBEEF, 4) + b"0:hi")
    assert read_frame(s, time.monotonic() + 5, 5).startswith(b"error bad frame magic 0xDEADBEEF")
    assert _closed_by_server(s)
    s.close()
    # a request without "<id>:" gets an error; ids are echoed as sent
    s = _raw_connect(server.port)
    s.sendall(encode_frame(b"vget /level/name"))
    assert read_frame(s, time.monotonic() + 5, 5).startswith(b"error malformed request")
    assert _raw_request(s, 41, "vget /level/name") == b"41:indoor_2"
    s.close()
    c = unrealcv.Client(("127.0.0.1", server.port))
    assert c.connect(timeout=5)
    assert c.request("vget /level/name") == "indoor_2"
    c.disconnect()


def test_idle_clients_time_out_and_serve_stops_cleanly():
    ready: list[UnrealCVServer] = []
    stop = threading.Event()
    t = threading.Thread(target=serve, kwargs=dict(port=0, scene="indoor", seed=1, width=32, height=32,
                                                   idle_timeout_s=0.5, on_ready=ready.append, stop_event=stop),
                         daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not ready and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready, "serve() did not come up"
    srv = ready[0]
    assert srv._listener.getsockname()[0] == "127.0.0.1"
    s = _raw_connect(srv.port)
    assert read_frame(s, time.monotonic() + 5, 5) == b"error idle for 0.5 s (idle_timeout_s): connection closed"
    assert _closed_by_server(s)  # dropped after 0.5 s of silence
    s.close()
    c = unrealcv.Client(("127.0.0.1", srv.port))
    assert c.connect(timeout=5)
    assert c.request("vget /level/name") == "indoor_1"
    c.disconnect()
    stop.set()
    t.join(15)
    assert not t.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()


def test_config_is_checked():
    with pytest.raises(ValueError, match="scene"):
        UnrealCVServer(ServerConfig(scene="moon"))
    with pytest.raises(ValueError, match="port"):
        UnrealCVServer(ServerConfig(port=70000))
    with pytest.raises(ValueError, match=r"max_clients: 0 is not allowed; expected an integer in \[1, 4096\]"):
        UnrealCVServer(ServerConfig(max_clients=0))
