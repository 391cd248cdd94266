"""UnrealCVWorld: a :class:`capture.world.World` over any UnrealCV endpoint (a packaged Unreal game with the UnrealCV
plugin, or the sandbox's own server, :mod:`unreal_bridge.unrealcv_server`).

The agent lives on this side, in float64: its yaw and pitch accumulate the frame actions' mouse deltas in a
:class:`~unreal_bridge.camera.CameraRig`, W/A/S/D (+ shift sprint, ctrl crouch, space jump) move its feet over the
level's navmesh with Detour's ``moveAlongSurface`` (walls block and slide; ``collision`` = the move was cut), and
each frame the exact camera pose is sent and the image fetched in one ``vbatch``::

    vbatch 3
    vset /camera/0/location X Y Z          (cm, eye = feet + eye height)
    vset /camera/0/rotation PITCH YAW 0    (deg)
    vget /camera/0/lit png                 (or npy)

So the recorded pose is the pose the engine rendered, with no engine physics in between, and NPCs move on the
engine's own clock.

Connection: every socket operation has a timeout. A dropped connection (or a timeout) is retried with exponential
backoff (``reconnect_attempts``, ``reconnect_backoff_s`` doubling up to ``reconnect_backoff_max_s``); after
reconnecting the level, size and fov are set again and the interrupted frame is requested again, so the episode
resumes exactly where it was (``on_disconnect="resume"``, the default; each frame's ``unrealcv_reconnects`` extra
counts the reconnects so far). With ``on_disconnect="discard"``, or when reconnecting fails, ``step`` raises
:class:`UnrealCVConnectionError`: the collection loop's episode writer aborts and removes the partial episode.
Replies that are not what was asked for (wrong id, an ``error`` reply, an undecodable or wrong-sized image) raise
:class:`UnrealCVProtocolError` / :class:`UnrealCVCommandError` naming the command.
"""

from __future__ import annotations

import io
import logging
import math
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence, TypeVar

import numpy as np

from capture.actions import ActionSpace, FrameAction
from capture.settings import Field, settings
from capture.world import Observation

from .camera import CameraRig
from .navmesh import NavMesh
from .unrealcv_server import ProtocolError, encode_frame, read_frame

log = logging.getLogger(__name__)

SOURCE = "unrealcv"
SOURCE_FRAME = "unreal: left-handed, Z up, X forward, Y right, cm; rotators (pitch, yaw, roll) in degrees (UnrealCV)"
_T = TypeVar("_T")


class UnrealCVError(RuntimeError):
    """Base class of the UnrealCV client errors; the message names the endpoint and the command."""


class UnrealCVConnectionError(UnrealCVError):
    """The endpoint cannot be reached, closed the connection or timed out."""


class UnrealCVProtocolError(UnrealCVError):
    """A reply that breaks the protocol or is not what the command returns (wrong id, bad image, bad numbers)."""


class UnrealCVCommandError(UnrealCVError):
    """The server answered ``error ...`` to a command."""


# ------------------------------------------------------------------------------------------------ the client


class UnrealCVClient:
    """A minimal UnrealCV client with timeouts on every operation (connect, send, each reply).

    ``request(cmd)`` returns the reply body as bytes (the ``<id>:`` prefix checked and removed);
    ``batch(cmds)`` sends ``vbatch N`` and the commands in one go and returns the N bodies (``use_vbatch=False``:
    the commands are just pipelined). Errors: :class:`UnrealCVConnectionError` (socket closed, timeout; the client
    is then disconnected), :class:`UnrealCVProtocolError`."""

    def __init__(self, host: str, port: int, timeout_s: float = 10.0, connect_timeout_s: float = 5.0,
                 use_vbatch: bool = True) -> None:
        self.host, self.port = host, int(port)
        self.timeout_s, self.connect_timeout_s = float(timeout_s), float(connect_timeout_s)
        self.use_vbatch = use_vbatch
        self.greeting = ""
        self._sock: socket.socket | None = None
        self._next_id = 0

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> str:
        """Open the connection and read the greeting (``connected to <project>``); returns the greeting."""
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except OSError as e:
            raise UnrealCVConnectionError(f"cannot connect to UnrealCV at {self.endpoint}: {e}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(0.5)
        self._sock = sock
        try:
            greeting = self._read(self.connect_timeout_s, "the greeting")
        except UnrealCVError:
            self.close()
            raise
        if not greeting.startswith(b"connected"):
            self.close()
            text = greeting[:200].decode("utf-8", "replace")
            raise UnrealCVConnectionError(f"UnrealCV at {self.endpoint} refused the connection: {text!r}")
        self.greeting = greeting.decode("utf-8", "replace")
        self._next_id = 0
        return self.greeting

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def request(self, command: str) -> bytes:
        return self.batch([command], vbatch=False)[0]

    def request_text(self, command: str) -> str:
        """The reply as text; :class:`UnrealCVCommandError` for an ``error`` reply."""
        return reply_text(command, self.request(command))

    def batch(self, commands: Sequence[str], vbatch: bool | None = None) -> list[bytes]:
        """Send ``commands`` (preceded by ``vbatch N`` unless disabled) and read their replies in order."""
        if self._sock is None:
            raise UnrealCVConnectionError(f"not connected to UnrealCV at {self.endpoint}")
        use = self.use_vbatch if vbatch is None else vbatch
        cmds = ([f"vbatch {len(commands)}"] if use and len(commands) > 1 else []) + list(commands)
        ids = []
        data = bytearray()
        for c in cmds:
            ids.append(self._next_id)
            data += encode_frame(f"{self._next_id}:{c}".encode())
            self._next_id += 1
        try:
            self._sock.settimeout(self.timeout_s)
            self._sock.sendall(bytes(data))
            self._sock.settimeout(0.5)
        except OSError as e:
            self.close()
            raise UnrealCVConnectionError(f"UnrealCV at {self.endpoint}: sending {cmds[0]!r} failed: {e}") from None
        out = []
        for rid, c in zip(ids, cmds):
            body = self._reply(rid, c)
            if c.startswith("vbatch "):
                if body != b"ok":
                    self.close()  # the batched replies that follow would be out of step
                    raise UnrealCVCommandError(f"UnrealCV at {self.endpoint}: {c!r} -> {body[:200]!r}")
                continue
            out.append(body)
        return out

    def _reply(self, rid: int, command: str) -> bytes:
        payload = self._read(self.timeout_s, f"the reply to {command!r}")
        m = re.match(rb"^(\d+):", payload)
        if m is None:
            self.close()  # replies are out of step: the connection cannot be trusted any more
            text = payload[:200].decode("utf-8", "replace")
            raise UnrealCVProtocolError(f"UnrealCV at {self.endpoint}: reply to {command!r} has no '<id>:' prefix: "
                                        f"{text!r}")
        if int(m.group(1)) != rid:
            self.close()  # replies are out of step: the connection cannot be trusted any more
            raise UnrealCVProtocolError(f"UnrealCV at {self.endpoint}: reply id {int(m.group(1))} to {command!r}, "
                                        f"expected {rid}")
        return payload[m.end():]

    def _read(self, timeout_s: float, what: str) -> bytes:
        try:
            payload = read_frame(self._sock, time.monotonic() + timeout_s, timeout_s)
        except TimeoutError:
            self.close()
            raise UnrealCVConnectionError(f"UnrealCV at {self.endpoint}: no {what} within {timeout_s} s") from None
        except ProtocolError as e:
            self.close()
            raise UnrealCVConnectionError(f"UnrealCV at {self.endpoint}: connection broken reading {what}: {e}") from None
        except OSError as e:
            self.close()
            raise UnrealCVConnectionError(f"UnrealCV at {self.endpoint}: reading {what} failed: {e}") from None
        if payload is None:
            self.close()
            raise UnrealCVConnectionError(f"UnrealCV at {self.endpoint} closed the connection before {what}")
        return payload


def reply_text(command: str, body: bytes) -> str:
    """A text reply; :class:`UnrealCVCommandError` for ``error ...``, :class:`UnrealCVProtocolError` for bytes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnrealCVProtocolError(f"{command!r}: expected a text reply, got {len(body)} bytes of binary data") from None
    if text.lower().startswith("error"):
        raise UnrealCVCommandError(f"{command!r} failed: {text}")
    return text


def expect_ok(command: str, body: bytes) -> None:
    text = reply_text(command, body)
    if text.strip().lower() != "ok":
        raise UnrealCVProtocolError(f"{command!r}: expected 'ok', got {text[:200]!r}")


def parse_floats(command: str, body: bytes, n: int) -> np.ndarray:
    """``n`` numbers from a text reply such as ``"100.000 -50.000 170.000"`` (float64)."""
    text = reply_text(command, body)
    parts = text.split()
    try:
        vals = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise UnrealCVProtocolError(f"{command!r}: expected {n} numbers, got {text[:200]!r}") from None
    if len(vals) != n or not np.all(np.isfinite(vals)):
        raise UnrealCVProtocolError(f"{command!r}: expected {n} finite numbers, got {text[:200]!r}")
    return vals


def decode_image(command: str, body: bytes, width: int, height: int) -> np.ndarray:
    """A ``lit`` reply (PNG, BMP or NPY bytes) as ``uint8[height, width, 3]`` RGB; clear errors otherwise."""
    if body[:5].lower() == b"error":
        raise UnrealCVCommandError(f"{command!r} failed: {body[:200].decode('utf-8', 'replace')}")
    if body[:6] == b"\x93NUMPY":
        try:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UnrealCVProtocolError(f"{command!r}: unreadable .npy reply: {e}") from None
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise UnrealCVProtocolError(f"{command!r}: expected a uint8 HxWx3/4 image, got {arr.dtype} {arr.shape}")
        rgb = arr[..., :3]
    else:
        import cv2

        img = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise UnrealCVProtocolError(f"{command!r}: the reply is not a PNG/BMP/NPY image (first bytes {body[:16]!r})")
        rgb = img[..., ::-1]
    if rgb.shape[:2] != (height, width):
        raise UnrealCVProtocolError(f"{command!r}: image is {rgb.shape[1]}x{rgb.shape[0]}, expected {width}x{height} "
                                    "(does the endpoint support vset /camera/<id>/size?)")
    return np.ascontiguousarray(rgb)


# ------------------------------------------------------------------------------------------------ the world


@settings
class UnrealCVConfig:
    """Options of :class:`UnrealCVWorld` (pipeline.yaml ``collect.unrealcv``; units in the names): the endpoint,
    the navmesh of the level, the camera, the agent (``agent_radius_cm`` is informational: the navmesh is already
    eroded by it) and reconnection (the backoff doubles each try up to ``reconnect_backoff_max_s``)."""

    host: str = Field("127.0.0.1", min_length=1, description="UnrealCV server address")
    port: int = Field(9000, ge=1, le=65535, description="UnrealCV server port")
    level: str | None = Field(None, pattern=r"^[\w./-]+$", description="map loaded with vset /action/game/level (also the scene name)")
    navmesh: str | None = Field(None, min_length=1, description="the level's navmesh: a Recast .obj export or a walkable .json (required)")
    scene: str | None = Field(None, min_length=1, description="the scene name written to meta.json (null: level)")
    camera_id: int = Field(0, ge=0, description="UnrealCV camera")
    width: int = Field(640, ge=2, multiple_of=2, description="image width, px")
    height: int = Field(352, ge=2, multiple_of=2, description="image height, px")
    fov_deg: float = Field(90.0, ge=1, le=170, description="horizontal field of view, degrees")
    fps: float = Field(25.0, gt=0, le=240, description="frames per second")
    image_format: Literal["png", "npy"] = Field("png", description="how frames are transferred")
    use_vbatch: bool = Field(True, description="batch the per-frame requests")
    walk_cm_s: float = Field(300.0, gt=0, description="walking speed, cm/s")
    sprint_cm_s: float = Field(600.0, gt=0, description="sprinting speed, cm/s")
    crouch_cm_s: float = Field(150.0, gt=0, description="crouching speed, cm/s")
    eye_height_cm: float = Field(170.0, gt=0, description="eye height, cm")
    crouch_eye_height_cm: float = Field(110.0, gt=0, description="eye height when crouching, cm")
    eye_height_rate_cm_s: float = Field(400.0, gt=0, description="speed of the eye height change, cm/s")
    jump_speed_cm_s: float = Field(420.0, gt=0, description="take-off speed of a jump, cm/s")
    gravity_cm_s2: float = Field(980.0, gt=0, description="gravity, cm/s^2")
    pitch_limit_deg: float = Field(85.0, gt=0, le=90, description="the camera pitch is clamped to +-this, degrees")
    agent_radius_cm: float = Field(30.0, ge=0, description="agent radius, cm")
    timeout_s: float = Field(10.0, gt=0, description="limit for each reply, s")
    connect_timeout_s: float = Field(5.0, gt=0, description="limit for connecting, s")
    reconnect_attempts: int = Field(5, ge=0, description="reconnections tried before an episode fails")
    reconnect_backoff_s: float = Field(0.5, gt=0, description="first wait before reconnecting, s")
    reconnect_backoff_max_s: float = Field(8.0, gt=0, description="longest wait before reconnecting, s")
    on_disconnect: Literal["resume", "discard"] = Field("resume", description="after a reconnection: resume the episode or discard it")


@dataclass
class _Agent:
    """The agent's feet on the navmesh (cm, float64), its polygon, vertical state and current eye height."""

    feet_cm: np.ndarray
    poly: int
    jump_z_cm: float = 0.0
    vz_cm_s: float = 0.0
    on_ground: bool = True
    eye_height_cm: float = 170.0


class UnrealCVWorld:
    """A :class:`capture.world.World` over an UnrealCV endpoint (see the module docstring).

    ``config``: :class:`UnrealCVConfig` (or its fields as keywords); ``navmesh``: a :class:`NavMesh` instead of
    ``config.navmesh``; ``action_space``: the recorded keys (keys the agent does not use are ignored)."""

    source = SOURCE
    source_frame = SOURCE_FRAME

    def __init__(self, config: UnrealCVConfig | None = None, *, navmesh: NavMesh | None = None,
                 action_space: ActionSpace | None = None, **overrides: Any) -> None:
        if config is None:
            config = UnrealCVConfig.from_dict(overrides)
        elif overrides:
            config = UnrealCVConfig.from_dict({**config.to_dict(), **overrides})
        self.cfg = config
        self.width, self.height, self.fps = config.width, config.height, float(config.fps)
        self.scene = config.scene or config.level or "unrealcv"
        self.action_space = action_space or ActionSpace()
        self.config: dict[str, Any] = {
            "host": config.host, "port": config.port, "level": config.level, "navmesh": config.navmesh,
            "width": config.width, "height": config.height, "fov_deg": config.fov_deg, "fps": self.fps,
            "image_format": config.image_format, "walk_cm_s": config.walk_cm_s, "sprint_cm_s": config.sprint_cm_s,
            "eye_height_cm": config.eye_height_cm, "agent_radius_cm": config.agent_radius_cm,
        }
        if navmesh is None and config.navmesh is None:
            raise ValueError("UnrealCVWorld: a navmesh is required (unrealcv.navmesh: a Recast .obj or walkable .json "
                             "file of the level)")
        self._navmesh = navmesh
        self.client = UnrealCVClient(config.host, config.port, config.timeout_s, config.connect_timeout_s,
                                     config.use_vbatch)
        self.reconnects = 0
        self._configured = False
        self._rig: CameraRig | None = None
        self._agent: _Agent | None = None
        self._frame_index = 0
        self._closed = False

    # ------------------------------------------------------------------ properties

    @property
    def navmesh(self) -> NavMesh:
        """The level's navmesh (loaded from ``config.navmesh`` on first use)."""
        if self._navmesh is None:
            from .navmesh_controller import load_navmesh

            self._navmesh = load_navmesh(self.cfg.navmesh)
        return self._navmesh

    @property
    def frame_index(self) -> int:
        return self._frame_index

    def remote_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The endpoint's own idea of the camera: ``(location cm [3], rotator deg [3])`` as ``vget`` reports them
        (UnrealCV prints 3 decimals), to check that what was set is what renders."""
        cid = self.cfg.camera_id
        cmds = [f"vget /camera/{cid}/location", f"vget /camera/{cid}/rotation"]
        loc, rot = self.client.batch(cmds, vbatch=False)
        return parse_floats(cmds[0], loc, 3), parse_floats(cmds[1], rot, 3)

    # ------------------------------------------------------------------ World protocol

    def reset(self, seed: int) -> Observation:
        """Connect if needed, set the level and camera, stand the agent on a seeded random navmesh point (largest
        island) with a seeded yaw, return frame 0."""
        self._check_open()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
            raise ValueError(f"UnrealCVWorld.reset: seed={seed!r} must be a non-negative integer")
        rng = np.random.default_rng([int(seed), 0x5543])
        mesh = self.navmesh
        pts, polys = mesh.random_points(1, rng, island=mesh.largest_island())
        yaw = float(rng.uniform(-180.0, 180.0))
        c = self.cfg
        self._agent = _Agent(pts[0].copy(), int(polys[0]), eye_height_cm=c.eye_height_cm)
        self._rig = CameraRig(pos_cm=self._eye(), yaw_deg=yaw, pitch_deg=0.0, pitch_limit_deg=c.pitch_limit_deg)
        self._frame_index = 0
        self.reconnects = 0
        frame = self._with_reconnect(self._capture, allow_resume=True)
        return self._observe(frame, self._rig.pos_cm, collision=False)

    def step(self, action: FrameAction) -> Observation:
        """Integrate one frame of ``action`` (mouse, then keys over the navmesh), render it remotely, observe."""
        self._check_open()
        if self._agent is None:
            raise RuntimeError("UnrealCVWorld.step called before reset(seed)")
        unknown = set(action.keys) - set(self.action_space.keys)
        if unknown:
            raise ValueError(f"UnrealCVWorld.step: keys {sorted(unknown)} are not in the action space "
                             f"{list(self.action_space.keys)}")
        prev_eye = self._rig.pos_cm.copy()
        collision = self._move(action)
        self._frame_index += 1
        frame = self._with_reconnect(self._capture, allow_resume=self.cfg.on_disconnect == "resume")
        return self._observe(frame, prev_eye, collision)

    def close(self) -> None:
        """Close the connection. Idempotent."""
        self.client.close()
        self._closed = True

    def __enter__(self) -> "UnrealCVWorld":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ motion

    def _move(self, action: FrameAction) -> bool:
        """Apply the mouse to the rig and the keys to the feet (navmesh slide, jump, crouch); True when blocked."""
        c, a, rig, dt = self.cfg, self._agent, self._rig, 1.0 / self.fps
        rig.look(action.d_pitch_deg, action.d_yaw_deg)
        keys = action.keys
        fwd = (1.0 if "w" in keys else 0.0) - (1.0 if "s" in keys else 0.0)
        right = (1.0 if "d" in keys else 0.0) - (1.0 if "a" in keys else 0.0)
        norm = math.hypot(fwd, right)
        collision = False
        if norm > 0.0:
            speed = c.crouch_cm_s if "ctrl" in keys else c.sprint_cm_s if "shift" in keys else c.walk_cm_s
            y = math.radians(rig.yaw_deg)
            f = np.array([math.cos(y), math.sin(y)])
            r = np.array([-f[1], f[0]])
            disp = (f * fwd + r * right) * (speed * dt / norm)
            target = a.feet_cm.copy()
            target[:2] += disp
            res = self.navmesh.move_along_surface(a.feet_cm, target, start_poly=a.poly)
            collision = bool(res.blocked)
            a.feet_cm, a.poly = np.asarray(res.pos_cm, dtype=np.float64), int(res.poly)
        if a.on_ground and "space" in keys:
            a.vz_cm_s, a.on_ground = c.jump_speed_cm_s, False
        if not a.on_ground:
            a.jump_z_cm += a.vz_cm_s * dt - 0.5 * c.gravity_cm_s2 * dt * dt
            a.vz_cm_s -= c.gravity_cm_s2 * dt
            if a.jump_z_cm <= 0.0:
                a.jump_z_cm, a.vz_cm_s, a.on_ground = 0.0, 0.0, True
        target_eye = c.crouch_eye_height_cm if "ctrl" in keys else c.eye_height_cm
        step = c.eye_height_rate_cm_s * dt
        a.eye_height_cm += min(step, max(-step, target_eye - a.eye_height_cm))
        rig.teleport(self._eye())
        return collision

    def _eye(self) -> np.ndarray:
        a = self._agent
        return a.feet_cm + np.array([0.0, 0.0, a.eye_height_cm + a.jump_z_cm])

    def _observe(self, frame: np.ndarray, prev_eye_cm: np.ndarray, collision: bool) -> Observation:
        rig = self._rig
        eye = rig.pos_cm.copy()
        vel = (eye - prev_eye_cm) * self.fps
        y = math.radians(rig.yaw_deg)
        speed = float(vel[0] * math.cos(y) + vel[1] * math.sin(y))
        return Observation(frame=frame, t_s=self._frame_index / self.fps, pos_cm=eye, quat_wxyz=rig.quat,
                           pitch_deg=float(rig.pitch_deg), yaw_deg=float(rig.yaw_deg), vel_cm_s=vel, speed_cm_s=speed,
                           collision=bool(collision), extras={"reconnects": float(self.reconnects)})

    # ------------------------------------------------------------------ remote side

    def _capture(self) -> np.ndarray:
        """Send the pose and fetch the frame (one vbatch)."""
        if not self._configured:
            self._configure()
        cid, rig = self.cfg.camera_id, self._rig
        x, y, z = rig.pos_cm.tolist()
        cmds = [f"vset /camera/{cid}/location {x:.4f} {y:.4f} {z:.4f}",
                f"vset /camera/{cid}/rotation {rig.pitch_deg:.6f} {rig.yaw_deg:.6f} 0.000000",
                f"vget /camera/{cid}/lit {self.cfg.image_format}"]
        replies = self.client.batch(cmds)
        expect_ok(cmds[0], replies[0])
        expect_ok(cmds[1], replies[1])
        return decode_image(cmds[2], replies[2], self.width, self.height)

    def _configure(self) -> None:
        """Connect, load the level (when configured) and set the camera size and fov."""
        c = self.cfg
        if not self.client.connected:
            self.client.connect()
        if c.level is not None:
            expect_ok(f"vset /action/game/level {c.level}", self.client.request(f"vset /action/game/level {c.level}"))
        cmds = [f"vset /camera/{c.camera_id}/size {c.width} {c.height}", f"vset /camera/{c.camera_id}/fov {c.fov_deg:.6f}"]
        for cmd, body in zip(cmds, self.client.batch(cmds, vbatch=False)):
            expect_ok(cmd, body)
        self._configured = True

    def _with_reconnect(self, fn: Callable[[], _T], allow_resume: bool) -> _T:
        """Run ``fn``; on a connection error reconnect with exponential backoff and run it again (when allowed)."""
        c = self.cfg
        try:
            return fn()
        except UnrealCVConnectionError as first:
            self._configured = False
            self.client.close()
            if not allow_resume or c.reconnect_attempts == 0:
                raise UnrealCVConnectionError(f"{first} (frame {self._frame_index}; the episode is discarded)") from None
            err: UnrealCVError = first
            delay = c.reconnect_backoff_s
            for attempt in range(1, c.reconnect_attempts + 1):
                log.warning("UnrealCV at %s: %s; reconnecting in %.2f s (attempt %d of %d)", self.client.endpoint, err,
                            delay, attempt, c.reconnect_attempts)
                time.sleep(delay)
                delay = min(2.0 * delay, c.reconnect_backoff_max_s)
                try:
                    out = fn()
                except UnrealCVConnectionError as e:
                    self._configured = False
                    self.client.close()
                    err = e
                    continue
                self.reconnects += 1
                return out
            raise UnrealCVConnectionError(f"UnrealCV at {self.client.endpoint}: gave up after {c.reconnect_attempts} "
                                          f"reconnect attempts at frame {self._frame_index}: {err}") from None

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("UnrealCVWorld is closed")


def make_unrealcv_world(scene: str | None = None, params: Mapping[str, Any] | None = None) -> UnrealCVWorld:
    """Factory for the collection loop (``make_world(scene, params)``): ``params`` are :class:`UnrealCVConfig`
    fields; ``scene`` names the level when ``params`` has no ``level``."""
    d = dict(params or {})
    if scene and not d.get("level"):
        d["level"] = scene
    return UnrealCVWorld(UnrealCVConfig.from_dict(d))
