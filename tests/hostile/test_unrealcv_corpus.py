"""Corpus: hostile UnrealCV requests to the sandbox server (`playmill sandbox serve`).

Each request case sends one bad request on a raw connection and asserts the reply: ``<id>:error <why>`` naming
what was wrong (or ``error ...`` when the request has no usable id), on a connection that still answers the
next request. Each framing case breaks the wire format: the server says ``error ...`` and closes that
connection, and serves the next client as before.
"""

from __future__ import annotations

import re
import socket
import struct
import time

import pytest

from unreal_bridge.unrealcv_server import MAGIC, ServerConfig, UnrealCVServer, encode_frame, read_frame


@pytest.fixture(scope="module")
def server():
    with UnrealCVServer(ServerConfig(port=0, scene="indoor", seed=2, width=48, height=32, max_request_bytes=8192)) as s:
        yield s


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert read_frame(s, time.monotonic() + 10, 10).startswith(b"connected to ")
    return s


def _ask(s: socket.socket, payload: bytes) -> bytes:
    s.sendall(encode_frame(payload))
    return read_frame(s, time.monotonic() + 20, 20)


def _still_serving(s: socket.socket) -> None:
    assert _ask(s, b"99:vget /level/name") == b"99:indoor_2"


# (id, request payload, the reply must match)
REQUEST_CASES = [
    ("unknown-path", b"3:vget /nothing", rb"3:error unknown command 'vget /nothing'"),
    ("unknown-verb", b"3:hello world", rb"3:error unknown command 'hello world'"),
    ("empty-command", b"3:", rb"3:error empty command"),
    ("blank-command", b"3:   \t ", rb"3:error empty command"),
    ("too-few-numbers", b"3:vset /camera/0/location 1 2", rb"3:error vset /camera/0/location takes 3 numbers, got 2"),
    ("too-many-numbers", b"3:vset /camera/0/rotation 1 2 3 4", rb"3:error vset /camera/0/rotation takes 3 numbers, got 4"),
    ("not-numbers", b"3:vset /camera/0/location a b c", rb"3:error vset /camera/0/location: 'a b c' are not numbers"),
    ("nan", b"3:vset /camera/0/location nan 0 0", rb"3:error vset /camera/0/location: values must be finite"),
    ("overflow", b"3:vset /camera/0/rotation 1e400 0 0", rb"3:error vset /camera/0/rotation: values must be finite"),
    ("camera-1", b"3:vget /camera/1/location", rb"3:error camera 1 does not exist"),
    ("camera-huge", b"3:vget /camera/99999999999/location", rb"3:error unknown command"),
    ("lit-no-format", b"3:vget /camera/0/lit", rb"3:error vget /camera/0/lit takes one format: png, bmp or npy"),
    ("lit-jpg", b"3:vget /camera/0/lit jpg", rb"3:error vget /camera/0/lit takes one format"),
    ("lit-to-file", b"3:vget /camera/0/lit /tmp/escape.png", rb"3:error .*saving to a file is not supported"),
    ("depth-png", b"3:vget /camera/0/depth png", rb"3:error vget /camera/0/depth takes the format npy"),
    ("size-zero", b"3:vset /camera/0/size 0 0", rb"3:error .*width"),
    ("size-huge", b"3:vset /camera/0/size 100000 100000", rb"3:error .*width"),
    ("size-fraction", b"3:vset /camera/0/size 1.5 2", rb"3:error vset /camera/0/size: width and height must be integers"),
    ("fov-zero", b"3:vset /camera/0/fov 0", rb"3:error .*fov"),
    ("fov-huge", b"3:vset /camera/0/fov 400", rb"3:error .*fov"),
    ("key-negative", b"3:vset /action/keyboard W -1", rb"3:error key duration -1\.0 s must be in \[0, 60\.0\]"),
    ("key-too-long", b"3:vset /action/keyboard W 61", rb"3:error key duration 61\.0 s must be in \[0, 60\.0\]"),
    ("key-unknown", b"3:vset /action/keyboard Q 0.1", rb"3:error unknown key 'Q'"),
    ("key-no-duration", b"3:vset /action/keyboard W", rb"3:error vset /action/keyboard takes a key name and a duration"),
    ("level-traversal", b"3:vset /action/game/level ../../etc", rb"3:error unknown level '\.\./\.\./etc'"),
    ("level-seed-overflow", b"3:vset /action/game/level city_99999999999", rb"3:error unknown level 'city_99999999999'"),
    ("level-unknown", b"3:vset /action/game/level moon_1", rb"3:error unknown level 'moon_1'"),
    ("level-none", b"3:vset /action/game/level", rb"3:error unknown level ''"),
    ("object-traversal", b"3:vget /object/../../etc/passwd/location", rb"3:error unknown command"),
    ("object-unknown", b"3:vget /object/Nope_1/location", rb"3:error object 'Nope_1' does not exist"),
    ("vbatch-zero", b"3:vbatch 0", rb"3:error vbatch takes a count in 1\.\.1000, got '0'"),
    ("vbatch-text", b"3:vbatch many", rb"3:error vbatch takes a count in 1\.\.1000, got 'many'"),
    ("vbatch-huge", b"3:vbatch 100000", rb"3:error vbatch takes a count in 1\.\.1000, got '100000'"),
    ("vbatch-missing", b"3:vbatch", rb"3:error vbatch takes a count in 1\.\.1000, got None"),
    ("nul-byte", b"3:vget /level/name\x00../x", rb"3:error unknown command"),
    ("invalid-utf8", b"3:vget /\xff\xfe/location", rb"3:error unknown command"),
    ("long-command", b"3:vget /" + b"a" * 8000, rb"3:error unknown command"),
    ("no-id", b"vget /level/name", rb"^error malformed request: expected '<id>:<command>'"),
    ("id-not-number", b"abc:vget /level/name", rb"^error malformed request"),
    ("id-negative", b"-1:vget /level/name", rb"^error malformed request"),
    ("id-eleven-digits", b"12345678901:vget /level/name", rb"^error malformed request"),
    ("oversized", b"3:vget /level/name " + b"x" * 9000, rb"^3:error request of 9019 bytes exceeds the 8192-byte limit"),
    ("oversized-no-id", b"x" * 20000, rb"^error request of 20000 bytes exceeds the 8192-byte limit"),
]


@pytest.mark.parametrize("case", REQUEST_CASES, ids=[c[0] for c in REQUEST_CASES])
def test_bad_request(case, server):
    _, payload, expect = case
    s = _connect(server.port)
    try:
        reply = _ask(s, payload)
        assert re.search(expect, reply), reply[:200]
        _still_serving(s)
    finally:
        s.close()


# (id, raw bytes sent after the greeting, the error frame's start)
FRAMING_CASES = [
    ("bad-magic", struct.pack("<II", 0xDEADBEEF, 4) + b"0:hi", b"error bad frame magic 0xDEADBEEF"),
    ("size-zero", struct.pack("<II", MAGIC, 0), b"error frame size 0 is outside 1..268435456"),
    ("size-above-256-mib", struct.pack("<II", MAGIC, 300 * 1024 * 1024), b"error frame size 314572800 is outside"),
    ("http-request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"error bad frame magic"),
]


@pytest.mark.parametrize("case", FRAMING_CASES, ids=[c[0] for c in FRAMING_CASES])
def test_broken_framing(case, server):
    _, raw, expect = case
    s = _connect(server.port)
    s.sendall(raw)
    assert read_frame(s, time.monotonic() + 10, 10).startswith(expect)
    try:
        assert read_frame(s, time.monotonic() + 10, 10) is None  # then closed
    except ConnectionResetError:
        pass
    s.close()
    again = _connect(server.port)
    _still_serving(again)
    again.close()


BREAK_OFF_CASES = [
    ("mid-header", struct.pack("<I", MAGIC)),
    ("mid-payload", struct.pack("<II", MAGIC, 1000) + b"0:vget /le"),
    ("mid-batch", encode_frame(b"0:vbatch 3") + encode_frame(b"1:vget /level/name")),
    ("render-then-gone", encode_frame(b"0:vget /camera/0/lit png")),
]


@pytest.mark.parametrize("case", BREAK_OFF_CASES, ids=[c[0] for c in BREAK_OFF_CASES])
def test_clients_that_break_off(case, server):
    _, raw = case
    s = _connect(server.port)
    s.sendall(raw)
    s.close()
    again = _connect(server.port)
    _still_serving(again)
    again.close()
