"""The sandbox as an UnrealCV server: the built-in Panda3D level behind the UnrealCV wire protocol.

    serve(host="127.0.0.1", port=9000, scene="city", seed=0, width=640, height=480)   # blocks; playmill sandbox serve
    with UnrealCVServer(ServerConfig(port=0, scene="indoor")) as server: ...          # in a thread (tests)
    playmill sandbox serve --port 9000 --scene park --seed 3

Wire protocol (UnrealCV, as the real ``unrealcv`` client speaks it): every message is a frame ``uint32 magic
0x9E2B83C1``, ``uint32 payload size`` (little-endian), payload. On connect the server sends ``connected to
<project>``; each request ``<id>:<command>`` is answered, in order, by ``<id>:<body>`` where the body is ``ok``,
``error <why>``, text, or raw bytes (PNG / BMP / NPY). ``vbatch N`` is answered ``ok`` at once and the next N
requests are read first and then run together (no world time passes between them, and no other client's
request runs in between). A request without ``<id>:`` gets ``error ...``.

Many clients at once: each connection has its own thread, and one world thread runs every client's requests in
the order they arrive, one request (or one whole ``vbatch``) at a time, so world access is serialised and a slow
or idle client delays nobody. Limits, each answered with an ``error ...`` frame: more than ``max_clients``
connections (the extra client gets ``error too many clients ...`` instead of the greeting, so the real client's
``connect()`` returns False); a request above ``max_request_bytes`` (read past in small pieces and answered
``<id>:error request of N bytes exceeds ...``; the connection stays usable); a client idle for
``idle_timeout_s`` (told, then dropped); a wrong magic or a frame size outside 1..256 MiB (told, then dropped).
A client stalled mid-message for ``io_timeout_s`` or that disconnects mid-request or mid-batch is dropped
quietly. Memory is bounded per connection (see :class:`ServerConfig`). The server binds 127.0.0.1 unless told
otherwise.

Commands (``<id>`` is the camera id; only camera 0, the player camera, exists): see :data:`COMMANDS` and
``vget /unrealcv/commands``. Camera 0 has a float64 pose; ``vset .../location|rotation`` set it exactly (and the
agent follows it on the next keyboard action); ``vget .../lit png|bmp|npy`` renders the level from it (npy:
``uint8[H, W, 3]`` RGB), ``vget .../depth npy`` gives ``float32[H, W]`` plane depth in cm. ``vset
/action/keyboard <key> <seconds>`` steps the sandbox (agent, NPCs, vehicles) as if the key were held that long
(``round(seconds * fps)`` frames, at least one) and moves camera 0 to the agent's eye. The level's people and cars
move only then: between commands the world is paused. ``vset /action/game/level <scene>_<seed>`` loads another
level (e.g. ``city_3``); ``vget /level/name`` names the current one.
"""

from __future__ import annotations

import io
import logging
import math
import queue
import re
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import numpy as np

from capture.settings import Field, settings

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------ wire format

#: UnrealCV frame magic (``FSocketMessageHeader::DefaultMagic``).
MAGIC = 0x9E2B83C1
#: Largest payload either side accepts (UnrealCV's limit).
MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
_HEADER = struct.Struct("<II")
_REQUEST_RE = re.compile(rb"^(\d{1,10}):(.*)$", re.DOTALL)


class ProtocolError(ConnectionError):
    """The peer broke the framing (bad magic, empty or oversized payload) or closed the connection mid-message.
    ``reply``: the ``error ...`` line the server sends before closing (None: nothing to say, the peer is gone)."""

    def __init__(self, message: str, reply: str | None = None) -> None:
        super().__init__(message)
        self.reply = reply


def encode_frame(payload: bytes) -> bytes:
    """One wire frame: magic, little-endian payload size, payload."""
    if not payload:
        raise ValueError("UnrealCV frames cannot be empty")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    return _HEADER.pack(MAGIC, len(payload)) + payload


def recv_exact(sock: socket.socket, n: int, deadline: float | None, stop: threading.Event | None = None,
               idle: bool = False) -> bytes | None:
    """Read exactly ``n`` bytes. ``None`` when the peer closed cleanly before the first byte; :class:`ProtocolError`
    when it closed mid-way; ``TimeoutError`` when ``deadline`` (``time.monotonic()``) passes (its message starts
    with "idle" when ``idle`` and nothing was read) or ``stop`` is set. The socket must have a (short) timeout so
    the deadline and ``stop`` are checked."""
    buf = bytearray()
    while len(buf) < n:
        if stop is not None and stop.is_set():
            raise TimeoutError("server stopping")
        if deadline is not None and time.monotonic() > deadline:
            if idle and not buf:
                raise TimeoutError("idle: nothing received before the idle timeout")
            raise TimeoutError(f"timed out after reading {len(buf)} of {n} bytes")
        try:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
        except socket.timeout:
            continue
        if not chunk:
            if not buf:
                return None
            raise ProtocolError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket, idle_deadline: float | None, io_timeout_s: float,
               stop: threading.Event | None = None) -> bytes | None:
    """Read one frame's payload; ``None`` when the peer closed cleanly between frames. Waiting for the first byte
    is bounded by ``idle_deadline``, the rest of the frame by ``io_timeout_s`` from its first byte."""
    first = recv_exact(sock, 1, idle_deadline, stop)
    if first is None:
        return None
    deadline = time.monotonic() + io_timeout_s
    rest = recv_exact(sock, _HEADER.size - 1, deadline, stop)
    if rest is None:
        raise ProtocolError("connection closed inside a frame header")
    magic, size = _HEADER.unpack(first + rest)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic 0x{magic:08X} (expected 0x{MAGIC:08X})")
    if size == 0 or size > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload size {size} is outside 1..{MAX_PAYLOAD_BYTES}")
    payload = recv_exact(sock, size, deadline, stop)
    if payload is None:
        raise ProtocolError("connection closed before the payload")
    return payload


def send_frame(sock: socket.socket, payload: bytes) -> None:
    """Send one frame (the socket's timeout bounds the send)."""
    sock.sendall(encode_frame(payload))


class RequestError(ValueError):
    """A request payload that is not ``<id>:<command>``; the reply is ``error <message>`` (without an id)."""


def parse_request(payload: bytes) -> tuple[bytes, str]:
    """Split a request payload ``<id>:<command>`` into the id (1-10 ASCII digits, echoed in the reply) and the
    command (UTF-8, invalid bytes replaced, surrounding white space removed). :class:`RequestError` otherwise."""
    m = _REQUEST_RE.match(payload)
    if m is None:
        raise RequestError("malformed request: expected '<id>:<command>' with a numeric id")
    return m.group(1), m.group(2).decode("utf-8", "replace").strip()


def parse_vbatch(command: str) -> int | None:
    """The count of a ``vbatch N`` command (None when the command is not ``vbatch``); :class:`CommandError` when
    N is not an integer in 1..MAX_BATCH."""
    bm = re.match(r"^vbatch(?:\s+(\S+))?$", command)
    if bm is None:
        return None
    n = bm.group(1)
    if n is None or not n.isdigit() or not 1 <= int(n) <= MAX_BATCH:
        raise CommandError(f"vbatch takes a count in 1..{MAX_BATCH}, got {n!r}")
    return int(n)


# ------------------------------------------------------------------------------------------------ configuration

SCENE_LEVEL_RE = re.compile(r"^(city|indoor|park)(?:_(\d{1,10}))?$")
#: UnrealCV key names (case-insensitive) accepted by ``vset /action/keyboard`` and the sandbox key they press.
KEY_NAMES: dict[str, str] = {
    "w": "w", "s": "s", "a": "a", "d": "d", "up": "w", "down": "s", "left": "a", "right": "d",
    "space": "space", "spacebar": "space", "shift": "shift", "leftshift": "shift", "ctrl": "ctrl",
    "control": "ctrl", "leftcontrol": "ctrl",
}
MAX_KEY_SECONDS = 60.0
#: Most requests one ``vbatch`` may collect.
MAX_BATCH = 1000


@settings
class ServerConfig:
    """Options of the sandbox UnrealCV server (``playmill sandbox serve``; units in the names). The first level is
    ``<scene>_<seed>``; camera 0 defaults to UnrealCV's 640x480, 90 degrees. Memory is bounded: per connection at
    most ``MAX_BATCH * max_request_bytes`` of requests and ``max_batch_reply_bytes`` plus one reply of replies."""

    host: str = Field("127.0.0.1", min_length=1, description="address to listen on (127.0.0.1: this machine only)")
    port: int = Field(9000, ge=0, le=65535, description="TCP port (0: any free port)")
    scene: Literal["city", "indoor", "park"] = Field("city", description="scene family of the first level")
    seed: int = Field(0, ge=0, le=9_999_999_999, description="scene seed of the first level")
    width: int = Field(640, ge=2, multiple_of=2, description="camera width, px")
    height: int = Field(480, ge=2, multiple_of=2, description="camera height, px")
    fov_deg: float = Field(90.0, ge=1, le=170, description="horizontal field of view, degrees")
    fps: float = Field(25.0, gt=0, le=240, description="the step of vset /action/keyboard, frames per second")
    weather: Literal["clear", "overcast", "fog", "rain"] = Field("clear", description="the sandbox's weather")
    time_of_day: float = Field(12.0, ge=0, le=24, description="hours")
    npc_density: float = Field(0.5, ge=0, le=2, description="NPC density multiplier")
    vehicle_density: float = Field(0.5, ge=0, le=2, description="vehicle density multiplier")
    project_name: str = Field("playmill_sandbox", pattern=r"^[A-Za-z0-9_.-]+$", description="sent in the greeting")
    idle_timeout_s: float = Field(300.0, gt=0, description="a client that sends nothing for this long is told so and dropped, s")
    io_timeout_s: float = Field(30.0, gt=0, description="limit for finishing a frame once started, and for each send, s")
    start_timeout_s: float = Field(120.0, gt=0, description="limit for building the first level, s")
    max_clients: int = Field(64, ge=1, le=4096, description="connections served at once; one more is told 'error too many clients' and closed")
    max_request_bytes: int = Field(8192, ge=64, le=MAX_PAYLOAD_BYTES, description="the largest request; a longer one is read past in small pieces, never held, and answered with an error")
    max_batch_reply_bytes: int = Field(64 * 1024 * 1024, ge=1024, le=1 << 34, description="replies of one vbatch beyond this many bytes are error replies (split the batch)")


#: Command templates, as ``vget /unrealcv/commands`` lists them (``[x]`` = one argument).
COMMANDS: tuple[str, ...] = (
    "vget /unrealcv/status",
    "vget /unrealcv/commands",
    "vget /unrealcv/version",
    "vget /cameras",
    "vget /camera/[id]/location",
    "vset /camera/[id]/location [x] [y] [z]",
    "vget /camera/[id]/rotation",
    "vset /camera/[id]/rotation [pitch] [yaw] [roll]",
    "vget /camera/[id]/lit png",
    "vget /camera/[id]/lit bmp",
    "vget /camera/[id]/lit npy",
    "vget /camera/[id]/depth npy",
    "vget /camera/[id]/size",
    "vset /camera/[id]/size [width] [height]",
    "vget /camera/[id]/fov",
    "vset /camera/[id]/fov [fov]",
    "vget /objects",
    "vget /object/[name]/location",
    "vget /level/name",
    "vset /action/game/level [name]",
    "vset /action/keyboard [key] [seconds]",
    "vbatch [n]",
)
VERSION = "v1.1.0-playmill"


class CommandError(ValueError):
    """A command the server cannot run; the reply is ``error <message>``."""


@dataclass
class CameraPose:
    """Camera 0: position (cm) and rotator (deg), float64, set exactly by ``vset``."""

    loc_cm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    pitch_deg: float = 0.0
    yaw_deg: float = 0.0
    roll_deg: float = 0.0


def _floats(args: list[str], n: int, what: str) -> list[float]:
    if len(args) != n:
        raise CommandError(f"{what} takes {n} numbers, got {len(args)}")
    try:
        vals = [float(a) for a in args]
    except ValueError:
        raise CommandError(f"{what}: {' '.join(args)!r} are not numbers") from None
    if not all(math.isfinite(v) for v in vals):
        raise CommandError(f"{what}: values must be finite, got {' '.join(args)}")
    return vals


def _camera_id(text: str) -> int:
    cid = int(text)
    if cid != 0:
        raise CommandError(f"camera {cid} does not exist (this server has camera 0 only)")
    return cid


def encode_image(rgb: np.ndarray, fmt: str) -> bytes:
    """``uint8[H, W, 3]`` RGB as PNG / BMP bytes or as ``.npy`` bytes (RGB, no pickle)."""
    if fmt == "npy":
        return npy_bytes(np.ascontiguousarray(rgb))
    import cv2

    ok, buf = cv2.imencode(".png" if fmt == "png" else ".bmp", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise CommandError(f"could not encode the frame as {fmt}")
    return buf.tobytes()


def npy_bytes(array: np.ndarray) -> bytes:
    """The ``.npy`` file bytes of an array (``allow_pickle=False``)."""
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ the level


class SandboxSession:
    """The server's world: a :class:`~unreal_bridge.sandbox.SandboxWorld` and camera 0, answering commands.

    Not thread-safe: the server's worker thread owns it (Panda3D renders on the thread that made the world)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.world = None
        self.camera = CameraPose()
        self._agent_synced = True
        self.load_level(config.scene, int(config.seed))

    # -- level
    def load_level(self, scene: str, seed: int) -> None:
        """Build level ``scene`` from ``seed`` (a new world when the scene changes) and put camera 0 at the agent."""
        from .sandbox import SandboxWorld

        c = self.config
        if self.world is None or self.world.scene != scene:
            size = (c.width, c.height, c.fov_deg)
            if self.world is not None:  # camera size and fov set by the client carry over to the new level
                size = (self.world.width, self.world.height, self.world.fov_deg)
                self.world.close()
                self.world = None
            self.world = SandboxWorld(scene, width=size[0], height=size[1], fps=c.fps, weather=c.weather,
                                      time_of_day=c.time_of_day, npc_density=c.npc_density,
                                      vehicle_density=c.vehicle_density, fov_deg=size[2])
        self.world.reset(int(seed))
        self._camera_to_agent()

    @property
    def level_name(self) -> str:
        return f"{self.world.scene}_{self.world.seed}"

    def close(self) -> None:
        if self.world is not None:
            self.world.close()
            self.world = None

    def _camera_to_agent(self) -> None:
        a = self.world.agent_state
        self.camera = CameraPose(a.eye_cm.copy(), float(a.pitch_deg), float(a.yaw_deg), 0.0)
        self._agent_synced = True

    # -- dispatch
    def execute(self, command: str, status: Callable[[], str]) -> bytes:
        """Run one command; the reply body (``ok``, text or bytes). Raises :class:`CommandError`."""
        parts = command.split()
        if not parts:
            raise CommandError("empty command")
        verb, path, args = parts[0], parts[1] if len(parts) > 1 else "", parts[2:]
        if verb not in ("vget", "vset"):
            raise CommandError(f"unknown command {command!r}; see vget /unrealcv/commands")
        if verb == "vget" and path == "/unrealcv/status" and not args:
            return status().encode()
        if verb == "vget" and path == "/unrealcv/commands" and not args:
            return "\n".join(COMMANDS).encode()
        if verb == "vget" and path == "/unrealcv/version" and not args:
            return VERSION.encode()
        if verb == "vget" and path == "/cameras" and not args:
            return b"0"
        if verb == "vget" and path == "/objects" and not args:
            return " ".join(self.object_names()).encode()
        if verb == "vget" and path == "/level/name" and not args:
            return self.level_name.encode()
        if verb == "vset" and path == "/action/game/level":
            return self._set_level(args)
        if verb == "vset" and path == "/action/keyboard":
            return self._keyboard(args)
        m = re.match(r"^/camera/(\d{1,6})/(\w+)$", path)
        if m:
            _camera_id(m.group(1))
            return self._camera(verb, m.group(2), args)
        m = re.match(r"^/object/([^/\s]+)/location$", path)
        if m and verb == "vget" and not args:
            return self.object_location(m.group(1))
        raise CommandError(f"unknown command {command!r}; see vget /unrealcv/commands")

    def _camera(self, verb: str, what: str, args: list[str]) -> bytes:
        cam, w = self.camera, self.world
        if what == "location":
            if verb == "vget" and not args:
                return ("%.3f %.3f %.3f" % tuple(cam.loc_cm)).encode()
            if verb == "vset":
                cam.loc_cm = np.array(_floats(args, 3, "vset /camera/0/location"), dtype=np.float64)
                self._agent_synced = False
                return b"ok"
        elif what == "rotation":
            if verb == "vget" and not args:
                return ("%.3f %.3f %.3f" % (cam.pitch_deg, cam.yaw_deg, cam.roll_deg)).encode()
            if verb == "vset":
                cam.pitch_deg, cam.yaw_deg, cam.roll_deg = _floats(args, 3, "vset /camera/0/rotation")
                self._agent_synced = False
                return b"ok"
        elif what == "lit" and verb == "vget":
            if len(args) != 1 or args[0] not in ("png", "bmp", "npy"):
                raise CommandError("vget /camera/0/lit takes one format: png, bmp or npy (saving to a file is not "
                                   "supported)")
            return encode_image(w.render_view(cam.loc_cm, cam.pitch_deg, cam.yaw_deg, cam.roll_deg), args[0])
        elif what == "depth" and verb == "vget":
            if args != ["npy"]:
                raise CommandError("vget /camera/0/depth takes the format npy (float32 plane depth in cm)")
            return npy_bytes(w.render_depth(cam.loc_cm, cam.pitch_deg, cam.yaw_deg, cam.roll_deg))
        elif what == "size":
            if verb == "vget" and not args:
                return f"{w.width} {w.height}".encode()
            if verb == "vset":
                vals = _floats(args, 2, "vset /camera/0/size")
                if not all(v.is_integer() for v in vals):
                    raise CommandError(f"vset /camera/0/size: width and height must be integers, got {args}")
                try:
                    w.set_camera(width=int(vals[0]), height=int(vals[1]))
                except ValueError as e:
                    raise CommandError(str(e)) from None
                return b"ok"
        elif what == "fov":
            if verb == "vget" and not args:
                return ("%.3f" % w.fov_deg).encode()
            if verb == "vset":
                try:
                    w.set_camera(fov_deg=_floats(args, 1, "vset /camera/0/fov")[0])
                except ValueError as e:
                    raise CommandError(str(e)) from None
                return b"ok"
        raise CommandError(f"unknown camera command {verb} /camera/0/{what} {' '.join(args)}".rstrip())

    def _set_level(self, args: list[str]) -> bytes:
        m = SCENE_LEVEL_RE.match(args[0]) if len(args) == 1 else None
        if m is None:
            raise CommandError(f"unknown level {' '.join(args)!r}; levels are <scene>_<seed> with scene city, indoor "
                               "or park (e.g. city_3)")
        self.load_level(m.group(1), int(m.group(2) or 0))
        return b"ok"

    def _keyboard(self, args: list[str]) -> bytes:
        from capture.actions import FrameAction

        if len(args) != 2:
            raise CommandError("vset /action/keyboard takes a key name and a duration in seconds")
        key = KEY_NAMES.get(args[0].lower())
        if key is None:
            raise CommandError(f"unknown key {args[0]!r}; keys: {sorted(set(KEY_NAMES))}")
        seconds = _floats(args[1:], 1, "vset /action/keyboard")[0]
        if not 0.0 <= seconds <= MAX_KEY_SECONDS:
            raise CommandError(f"key duration {seconds} s must be in [0, {MAX_KEY_SECONDS}]")
        w, cam = self.world, self.camera
        if not self._agent_synced:
            w.place_agent(cam.loc_cm, cam.yaw_deg, cam.pitch_deg)
        frames = max(1, int(round(seconds * w.fps))) if seconds > 0 else 0
        for _ in range(frames):
            w.step(FrameAction(frozenset({key})))
        roll = cam.roll_deg
        self._camera_to_agent()
        self.camera.roll_deg = roll
        return b"ok"

    # -- objects
    def objects(self) -> dict[str, np.ndarray]:
        """Object name -> location (cm, float64 [3]): ``Box_<i>`` (solid boxes, centre), ``<Kind>_<i>`` (props,
        base), ``NPC_<i>`` and ``Vehicle_<i>`` (ground point)."""
        lay, w = self.world.layout, self.world
        out: dict[str, np.ndarray] = {}
        for i, b in enumerate(lay.boxes):
            out[f"Box_{i}"] = np.asarray(b.center_cm, dtype=np.float64)
        for i, p in enumerate(lay.props):
            out[f"{p.kind.capitalize()}_{i}"] = np.asarray(p.pos_cm, dtype=np.float64)
        for i, xy in enumerate(w.npcs.pos_cm):
            out[f"NPC_{i}"] = np.array([xy[0], xy[1], 0.0])
        for i, xy in enumerate(w.vehicles.pos_cm):
            out[f"Vehicle_{i}"] = np.array([xy[0], xy[1], 0.0])
        return out

    def object_names(self) -> list[str]:
        return list(self.objects())

    def object_location(self, name: str) -> bytes:
        loc = self.objects().get(name)
        if loc is None:
            raise CommandError(f"object {name!r} does not exist; see vget /objects")
        return ("%.3f %.3f %.3f" % tuple(loc)).encode()


# ------------------------------------------------------------------------------------------------ the server


class _Job:
    """Requests of one client that the world thread runs together (one request, or a whole ``vbatch``)."""

    __slots__ = ("requests", "replies", "done")

    def __init__(self, requests: list[tuple[bytes, str]]) -> None:
        self.requests = requests
        self.replies: list[bytes] = []
        self.done = threading.Event()


class UnrealCVServer:
    """A threaded UnrealCV-protocol server over the sandbox (see the module docstring).

    One thread per connection (at most ``max_clients``) reads requests and sends replies; one world thread owns
    the level and runs the requests of every client, one job at a time in arrival order, so world access is
    serialised and a ``vbatch`` runs with nothing in between. An idle or stalled client holds only its own
    connection. :meth:`start` binds, builds the first level on the world thread and returns once it is ready;
    :meth:`stop` closes everything and joins the threads. Also a context manager. :attr:`port` is the bound port."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.port: int | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._jobs: "queue.Queue[_Job]" = queue.Queue()
        self._lock = threading.Lock()
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._start_error: BaseException | None = None
        self._session: SandboxSession | None = None
        self.clients_served = 0
        self.clients_refused = 0

    # -- lifecycle
    def start(self) -> "UnrealCVServer":
        c = self.config
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            lst.bind((c.host, c.port))
        except OSError as e:
            lst.close()
            raise OSError(e.errno, f"UnrealCV server: cannot listen on {c.host}:{c.port}: {e.strerror}") from None
        lst.listen(socket.SOMAXCONN)  # a burst of connects waits in the queue rather than half-open
        lst.settimeout(0.2)
        self._listener = lst
        self.port = lst.getsockname()[1]
        worker = threading.Thread(target=self._work, name="unrealcv-world", daemon=True)
        acceptor = threading.Thread(target=self._accept, name="unrealcv-accept", daemon=True)
        self._threads = [worker, acceptor]
        worker.start()
        if not self._ready.wait(c.start_timeout_s) or self._start_error is not None:
            self.stop()
            err = self._start_error
            raise RuntimeError(f"UnrealCV server: the level {c.scene}_{c.seed} could not be built"
                               + (f": {type(err).__name__}: {err}" if err else f" in {c.start_timeout_s} s")) from err
        acceptor.start()
        log.info("UnrealCV sandbox server listening on %s:%d (level %s_%d)", c.host, self.port, c.scene, c.seed)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, drop every client, release the level. Idempotent."""
        self._stop.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
        with self._lock:
            conns = list(self._conns.items())
        for _, sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads + [t for t, _ in conns]:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout_s)

    def __enter__(self) -> "UnrealCVServer":
        return self.start() if self.port is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def level_name(self) -> str | None:
        return None if self._session is None or self._session.world is None else self._session.level_name

    @property
    def clients(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._conns)

    # -- threads
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                full = len(self._conns) >= self.config.max_clients
                if not full:
                    t = threading.Thread(target=self._serve_client, args=(sock, addr), daemon=True,
                                         name=f"unrealcv-client-{addr[1] if isinstance(addr, tuple) else addr}")
                    self._conns[t] = sock
            if full:
                self._refuse(sock, addr)
            else:
                t.start()

    def _refuse(self, sock: socket.socket, addr: Any) -> None:
        n = self.config.max_clients
        log.warning("UnrealCV server: refusing %s: %d clients connected (max_clients)", addr, n)
        self.clients_refused += 1
        try:
            sock.settimeout(1.0)
            send_frame(sock, f"error too many clients: {n} are connected (max_clients {n}); try again later"
                       .encode())
        except OSError:
            pass
        finally:
            sock.close()

    def _work(self) -> None:
        """The world thread: builds the level, then runs the clients' jobs one at a time."""
        try:
            self._session = SandboxSession(self.config)
        except BaseException as e:  # reported by start()
            self._start_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    job = self._jobs.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    job.replies = self._run_job(job.requests)
                finally:
                    job.done.set()
        finally:
            while True:  # release clients waiting on jobs that will not run
                try:
                    self._jobs.get_nowait().done.set()
                except queue.Empty:
                    break
            self._session.close()

    def _run_job(self, requests: list[tuple[bytes, str]]) -> list[bytes]:
        budget = self.config.max_batch_reply_bytes
        out, used = [], 0
        for rid, text in requests:
            if used > budget:
                out.append(rid + f":error the replies of this vbatch exceed {budget} bytes; split the batch".encode())
                continue
            reply = self._run(rid, text)
            used += len(reply)
            out.append(reply)
        return out

    def _submit(self, requests: list[tuple[bytes, str]]) -> list[bytes] | None:
        """Run ``requests`` on the world thread; their replies, or None when the server is stopping."""
        job = _Job(requests)
        self._jobs.put(job)
        while not job.done.wait(0.2):
            if self._stop.is_set():
                return None
        return job.replies if len(job.replies) == len(requests) else None

    def _serve_client(self, sock: socket.socket, addr: Any) -> None:
        c = self.config
        try:
            sock.settimeout(0.2)  # short: lets reads check the stop flag and their deadlines
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._send(sock, f"connected to {c.project_name}".encode())
            pending = 0  # requests still to collect for a vbatch
            batch: list[tuple[bytes, str]] = []
            while not self._stop.is_set():
                try:
                    payload = self._read_request(sock)
                except TimeoutError as e:
                    if self._stop.is_set():
                        return
                    if "idle" in str(e):
                        self._send(sock, f"error idle for {c.idle_timeout_s:g} s (idle_timeout_s): connection "
                                         "closed".encode())
                    log.info("UnrealCV server: dropping client %s: %s", addr, e)
                    return
                if payload is None:
                    return  # the client closed the connection
                if isinstance(payload, _Oversized):
                    self._send(sock, payload.reply(c.max_request_bytes))
                    continue
                try:
                    rid, text = parse_request(payload)
                except RequestError as e:
                    self._send(sock, f"error {e}".encode())
                    continue
                if pending:
                    batch.append((rid, text))
                    pending -= 1
                    if pending == 0:
                        replies = self._submit(batch)
                        batch = []
                        if replies is None:
                            return
                        for reply in replies:
                            self._send(sock, reply)
                    continue
                try:
                    n = parse_vbatch(text)
                except CommandError as e:
                    self._send(sock, rid + f":error {e}".encode())
                    continue
                if n is not None:
                    pending = n
                    self._send(sock, rid + b":ok")
                    continue
                replies = self._submit([(rid, text)])
                if replies is None:
                    return
                self._send(sock, replies[0])
        except (TimeoutError, ProtocolError, OSError) as e:
            if not self._stop.is_set():
                log.info("UnrealCV server: dropping client %s: %s", addr, e)
                if isinstance(e, ProtocolError) and e.reply:
                    try:
                        self._send(sock, e.reply.encode())
                        _drain_then_close(sock)
                    except OSError:
                        pass
        finally:
            sock.close()
            with self._lock:
                self._conns.pop(threading.current_thread(), None)
                self.clients_served += 1

    def _read_request(self, sock: socket.socket) -> "bytes | _Oversized | None":
        """One request payload; an oversized one is read past in 64 KiB pieces (never held) and returned as
        :class:`_Oversized` with its id. None when the client closed between requests."""
        c = self.config
        first = recv_exact(sock, 1, time.monotonic() + c.idle_timeout_s, self._stop, idle=True)
        if first is None:
            return None
        deadline = time.monotonic() + c.io_timeout_s
        rest = recv_exact(sock, _HEADER.size - 1, deadline, self._stop)
        if rest is None:
            raise ProtocolError("connection closed inside a frame header")
        magic, size = _HEADER.unpack(first + rest)
        if magic != MAGIC:
            raise ProtocolError(f"bad magic 0x{magic:08X} (expected 0x{MAGIC:08X})",
                                reply=f"error bad frame magic 0x{magic:08X} (expected 0x{MAGIC:08X}): connection closed")
        if size == 0 or size > MAX_PAYLOAD_BYTES:
            raise ProtocolError(f"payload size {size} is outside 1..{MAX_PAYLOAD_BYTES}",
                                reply=f"error frame size {size} is outside 1..{MAX_PAYLOAD_BYTES}: connection closed")
        if size <= c.max_request_bytes:
            payload = recv_exact(sock, size, deadline, self._stop)
            if payload is None:
                raise ProtocolError("connection closed before the payload")
            return payload
        head = recv_exact(sock, min(size, 16), deadline, self._stop) or b""
        left = size - len(head)
        while left > 0:
            chunk = recv_exact(sock, min(left, 1 << 16), deadline, self._stop)
            if chunk is None:
                raise ProtocolError("connection closed inside an oversized request")
            left -= len(chunk)
        m = re.match(rb"^(\d{1,10}):", head)
        return _Oversized(size, m.group(1) if m else None)

    def _run(self, rid: bytes, text: str) -> bytes:
        try:
            body = self._session.execute(text, self._status)
        except CommandError as e:
            body = f"error {e}".encode()
        except Exception as e:  # a bug or a renderer failure: report it, keep serving
            log.exception("UnrealCV server: command %r failed", text)
            body = f"error internal: {type(e).__name__}: {e}".encode()
        return rid + b":" + body

    def _send(self, sock: socket.socket, payload: bytes) -> None:
        sock.settimeout(self.config.io_timeout_s)
        try:
            send_frame(sock, payload)
        finally:
            sock.settimeout(0.2)

    def _status(self) -> str:
        c, w = self.config, self._session.world
        return "\n".join([
            "Is Listening", "Client Connected" if self.clients else "No Client Connected", str(self.port),
            "Configuration", "Config file: (playmill sandbox, no unrealcv.ini)", f"Port: {self.port}",
            f"Width: {w.width}", f"Height: {w.height}", f"FOV: {w.fov_deg:.6f}", "EnableInput: false",
            "EnableRightEye: false", f"Level: {self._session.level_name}",
        ])


def _drain_then_close(sock: socket.socket, limit_s: float = 1.0, limit_bytes: int = 1 << 20) -> None:
    """Half-close and read what the peer still sends (bounded), so that closing does not reset the connection
    and discard the error reply just sent before the peer reads it."""
    sock.shutdown(socket.SHUT_WR)
    end, got = time.monotonic() + limit_s, 0
    sock.settimeout(0.1)
    while time.monotonic() < end and got < limit_bytes:
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            continue
        if not chunk:
            return
        got += len(chunk)


@dataclass(frozen=True)
class _Oversized:
    """A request larger than ``max_request_bytes``: its declared size and its id (when it had one)."""

    size: int
    rid: bytes | None

    def reply(self, limit: int) -> bytes:
        msg = f"error request of {self.size} bytes exceeds the {limit}-byte limit (max_request_bytes)".encode()
        return msg if self.rid is None else self.rid + b":" + msg


def serve(config: ServerConfig | None = None, *, on_ready: Callable[[UnrealCVServer], None] | None = None,
          stop_event: threading.Event | None = None, **options: Any) -> None:
    """Serve the sandbox over the UnrealCV protocol until interrupted (Ctrl-C, SIGTERM) or ``stop_event`` is set.

    What ``playmill sandbox serve`` calls: ``config``, with ``options`` (fields of :class:`ServerConfig`,
    e.g. ``port=0, scene="park"``) replacing its values. Prints ``UnrealCV sandbox server listening on HOST:PORT
    (level L)`` once the level is built (``port=0`` picks a free port); ``on_ready(server)`` is called then."""
    cfg = replace(config, **options) if config is not None else ServerConfig(**options)
    host = cfg.host
    stop = stop_event or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = UnrealCVServer(cfg).start()
    try:
        print(f"UnrealCV sandbox server listening on {host}:{server.port} (level {server.level_name})", flush=True)
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
