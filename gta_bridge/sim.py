"""A GTA-like driving simulator with ground truth, for testing and benchmarking the GTA importer.

:func:`simulate_recording` drives a kinematic bicycle model from known key presses (the ground truth), logs
every game tick in exactly the mod's format (behaviour.jsonl + ticks.csv, via :mod:`gta_bridge.recording`),
renders what an OBS capture would show (a textured ground plane and a skyline seen from the camera rig, and
the sync marker while the mod draws it) and writes the video (MP4) with the capture's faults injected:
a clock offset between the video and the log, variable frame rate timestamps (or constant), capture jitter,
dropped frames (timestamp gaps), duplicated frames (OBS repeating the previous image) and game stalls.

Vehicle model (GTA frame: X east, Y north, Z up, metres; heading counter-clockwise from north)
    W: throttle 1 (6 m/s^2); S: brake 1 (8 m/s^2) while rolling forward faster than 0.5 m/s, otherwise reverse
    (throttle -1, 4 m/s^2 backwards, at most 8 m/s); space: handbrake (5 m/s^2, throttle and brake 0); drag
    0.1 + 0.0015 v^2. Steering (+ = left): a held A/D turns the wheels towards +-35 deg at 120 deg/s; released
    they return to centre at 240 deg/s. Yaw rate = v tan(steer) / (L (1 + (v / 8)^2)) (wheelbase L = 2.7 m,
    steady-state understeer). Body pitch follows the longitudinal acceleration and roll the lateral one.
    These are model choices for testing, not measured GTA V values.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.rotations import matrix_to_quat

from gta_bridge import frames as fr
from gta_bridge.recording import CSV_NAME, SCHEMA_NAME, f32, write_recording
from gta_bridge.sync import render_rects, marker_rects

KEYS: tuple[str, ...] = ("w", "s", "a", "d", "space")
WHEELBASE_M = 2.7
MAX_STEER_DEG = 35.0
STEER_IN_DPS = 120.0
STEER_OUT_DPS = 240.0
UNDERSTEER_SPEED_MPS = 8.0


@dataclass
class SimConfig:
    """Simulation and capture parameters (units in the names)."""

    seed: int = 0
    duration_s: float = 10.0
    game_fps: float = 60.0
    tick_jitter: float = 0.1             # relative spread of the tick interval (uniform +-jitter/2)
    stall_prob: float = 0.0              # per tick: the game hitches for stall_ms
    stall_ms: tuple[float, float] = (60.0, 150.0)
    pause_at_s: float | None = None      # one long stop of the game (pause menu) this far into the record phase
    pause_ms: float = 2000.0
    video_fps: float = 30.0
    vfr: bool = False                    # timestamps = capture times (VFR) instead of i / fps (CFR)
    capture_jitter_ms: float = 1.0       # spread of the capture instants (uniform +-jitter/2)
    present_latency_ms: float = 4.0      # a tick's frame reaches the screen this long after its wall time
    video_start_ms: float = -700.0       # wall time of the first video frame (negative: OBS started first)
    video_end_ms: float | None = None    # wall time where the video stops (None: 400 ms after the last tick)
    drop_prob: float = 0.0               # per frame: missing from the file (timestamp gap)
    dup_prob: float = 0.0                # per frame: OBS repeats the previous image
    marker_visible: bool = True          # False: the capture does not show the mod's sync marker
    sync_duration_ms: float = 1500.0
    marker_at_end: bool = True
    width: int = 128
    height: int = 72
    fov_deg: float = 60.0
    camera_view: str = "first_person"
    camera_offset_m: tuple[float, float, float] = (0.0, 0.5, 0.6)
    camera_rotation_offset_deg: tuple[float, float, float] = (-3.0, 0.0, 0.0)
    steer_noise_deg: float = 0.05
    speed_noise_mps: float = 0.01
    handbrake: bool = True
    crf: int = 18
    scenario_name: str = "sim_drive"
    weather: str = "clear"
    time_of_day_h: float = 12.0
    vehicle_density: float = 1.0
    ped_density: float = 1.0
    start_heading_deg: float = 20.0
    start_position_m: tuple[float, float] = (-1200.0, 850.0)


@dataclass
class GroundTruth:
    """What really happened, per tick and per video frame.

    Per tick: ``tick_wall_ms``, ``keys`` (bool[N, 5] in :data:`KEYS` order; all False outside the record
    phase), ``phase``, ``cam_pos_cm``/``cam_quat`` (the rig's camera pose in the Unreal frame, float64, before
    the float32 logging). Per video frame (as written, in file order): ``frame_pts_s``, ``frame_tick`` (index
    of the tick it shows, -1 before the first tick), ``frame_dup`` (a repeated image). ``offset_s``: video time
    of wall time 0 for a frame captured at the tick's wall time (``-video_start_ms``).
    """

    tick_wall_ms: np.ndarray
    keys: np.ndarray
    phase: np.ndarray
    cam_pos_cm: np.ndarray
    cam_quat: np.ndarray
    frame_pts_s: np.ndarray
    frame_tick: np.ndarray
    frame_dup: np.ndarray
    offset_s: float
    dropped: int
    duplicated: int

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, **{k: np.asarray(v) for k, v in self.__dict__.items()})


@dataclass
class SimResult:
    directory: Path
    video_path: Path
    truth: GroundTruth
    config: SimConfig


# --------------------------------------------------------------------------------------------------------
# driving


class _KeySchedule:
    """Random key presses: a longitudinal process (W / coast / S / handbrake) and an independent steering
    process (none / A / D), with durations drawn per segment; chosen online so speed stays sensible."""

    def __init__(self, rng: np.random.Generator, handbrake: bool) -> None:
        self.rng = rng
        self.handbrake = handbrake
        self.lon, self.lon_until = "w", 0.0
        self.lat, self.lat_until = "none", 0.0

    def step(self, t_s: float, v: float) -> set[str]:
        r = self.rng
        if t_s >= self.lon_until:
            if self.lon == "space":
                self.lon = "none"
            elif v < 4.0:
                self.lon = r.choice(["w", "w", "w", "s"]) if v > -0.5 else "w"
            elif v > 18.0:
                self.lon = r.choice(["none", "s", "space" if self.handbrake else "s"])
            else:
                choices = ["w", "w", "none", "s"] + (["space"] if self.handbrake and v > 6 else [])
                self.lon = r.choice(choices)
            dur = {"w": (0.8, 3.0), "none": (0.5, 2.0), "s": (0.3, 1.2), "space": (0.3, 0.7)}[self.lon]
            self.lon_until = t_s + r.uniform(*dur)
        if t_s >= self.lat_until:
            self.lat = r.choice(["none", "a", "d"], p=[0.4, 0.3, 0.3])
            self.lat_until = t_s + r.uniform(0.3, 1.6)
        keys = set()
        if self.lon != "none":
            keys.add(self.lon)
        if self.lat != "none":
            keys.add(self.lat)
        return keys


@dataclass
class _Car:
    x: float
    y: float
    heading: float
    v: float = 0.0
    steer: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    throttle: float = 0.0
    brake: float = 0.0

    def step(self, keys: set[str], dt: float) -> tuple[float, float]:
        """Advance by dt seconds under the held keys; returns (longitudinal acc, yaw rate deg/s)."""
        th, br, hb = 0.0, 0.0, False
        if "w" in keys:
            th = 1.0
        elif "s" in keys:
            if self.v > 0.5:
                br = 1.0
            else:
                th = -1.0
        elif "space" in keys:
            hb = True
        self.throttle, self.brake = th, br
        v = self.v
        sgn = 1.0 if v > 0 else -1.0 if v < 0 else 0.0
        acc = (6.0 * th if th >= 0 else 4.0 * th) - 8.0 * br * sgn - 5.0 * sgn * hb
        acc -= (0.1 + 0.0015 * v * v) * sgn
        nv = v + acc * dt
        if th == 0.0 and v != 0.0 and np.sign(nv) != np.sign(v):
            nv = 0.0  # braking and drag stop the car, they do not reverse it
        nv = float(np.clip(nv, -8.0, 32.0))
        acc = (nv - v) / dt
        self.v = nv
        target = MAX_STEER_DEG if "a" in keys else -MAX_STEER_DEG if "d" in keys else 0.0
        if target == 0.0:
            step = STEER_OUT_DPS * dt
        else:
            step = STEER_IN_DPS * dt
        self.steer += float(np.clip(target - self.steer, -step, step))
        yaw_rate = math.degrees(self.v * math.tan(math.radians(self.steer)) /
                                (WHEELBASE_M * (1.0 + (self.v / UNDERSTEER_SPEED_MPS) ** 2)))
        self.heading = (self.heading + yaw_rate * dt) % 360.0
        h = math.radians(self.heading)
        self.x += -self.v * math.sin(h) * dt
        self.y += self.v * math.cos(h) * dt
        a_lat = self.v * math.radians(yaw_rate)
        self.pitch += (0.25 * acc - self.pitch) * min(1.0, dt / 0.15)
        self.roll += (0.3 * a_lat - self.roll) * min(1.0, dt / 0.15)
        return acc, yaw_rate


# --------------------------------------------------------------------------------------------------------
# rendering


class SceneRenderer:
    """Renders the flat textured world and a skyline from a GTA-frame camera pose (OpenCV + numpy)."""

    def __init__(self, width: int, height: int, fov_deg: float, seed: int) -> None:
        self.w, self.h = width, height
        f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)  # vertical fov
        u = (np.arange(width) + 0.5 - width / 2) / f
        v = (np.arange(height) + 0.5 - height / 2) / f
        uu, vv = np.meshgrid(u, v)
        d = np.stack([uu, np.ones_like(uu), -vv], axis=-1)  # camera frame: x right, y forward, z up
        self.dirs = d / np.linalg.norm(d, axis=-1, keepdims=True)
        rng = np.random.default_rng(seed + 7)
        self.tile_m = 24.0
        tex = rng.normal(0.0, 1.0, (256, 256)).astype(np.float32)
        tex = cv2.GaussianBlur(np.tile(tex, (3, 3)), (0, 0), 3.0)[256:512, 256:512]  # periodic blur
        tex = (tex - tex.min()) / (tex.max() - tex.min())
        base = np.stack([70 + 90 * tex, 80 + 80 * tex, 60 + 60 * tex], axis=-1)
        base[::64, :] = (230, 230, 210)
        base[:, ::64] = (230, 230, 210)
        blobs = rng.integers(0, 256, (40, 2))
        for (bx, by), col in zip(blobs, rng.integers(30, 220, (40, 3))):
            cv2.circle(base, (int(bx), int(by)), int(rng.integers(4, 14)), tuple(int(c) for c in col), -1,
                       lineType=cv2.LINE_AA)
        self.tex = np.ascontiguousarray(base.astype(np.float32))
        k = np.arange(1, 9)
        amp = rng.uniform(0.01, 0.06, 8) / np.sqrt(k)
        phase = rng.uniform(0, 2 * np.pi, 8)
        az = np.linspace(-np.pi, np.pi, 4097)
        self.az_table = az
        self.ridge_table = 0.04 + (amp[None, :] * np.sin(k * az[:, None] + phase)).sum(-1)
        self.shade_table = 0.5 + 0.5 * np.sin(7 * az + 1.3)

    def render(self, cam_pos_m: np.ndarray, cam_matrix: np.ndarray) -> np.ndarray:
        """RGB ``uint8[H, W, 3]`` seen by a camera at ``cam_pos_m`` with GTA rotation matrix ``cam_matrix``."""
        d = self.dirs @ np.asarray(cam_matrix).T
        dz = d[..., 2]
        az = np.arctan2(-d[..., 0], d[..., 1])
        el = np.arcsin(np.clip(dz, -1, 1))
        sky_t = np.clip(el / 0.6, 0, 1)[..., None]
        img = (1 - sky_t) * np.array([190.0, 205.0, 225.0]) + sky_t * np.array([70.0, 120.0, 200.0])
        ridge = np.interp(az, self.az_table, self.ridge_table)
        hills = el < ridge
        shade = np.interp(az[hills], self.az_table, self.shade_table)
        img[hills] = np.array([60.0, 90.0, 70.0]) + 40 * shade[:, None]
        ground = dz < -1e-4
        t = np.where(ground, -cam_pos_m[2] / np.where(ground, dz, -1.0), 0.0)
        gx = cam_pos_m[0] + t * d[..., 0]
        gy = cam_pos_m[1] + t * d[..., 1]
        scale = self.tex.shape[1] / self.tile_m
        mx = np.mod(gx * scale, self.tex.shape[1]).astype(np.float32)
        my = np.mod(-gy * scale, self.tex.shape[0]).astype(np.float32)
        g = cv2.remap(self.tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        fog = np.exp(-t / 120.0)[..., None]
        gcol = fog * g + (1 - fog) * np.array([175.0, 185.0, 200.0])
        img[ground] = gcol[ground]
        return np.clip(img, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------
# video writing with explicit timestamps


def write_video_with_pts(path: str | Path, frames: list[np.ndarray], pts_s: np.ndarray, *, crf: int = 18) -> Path:
    """Encode RGB frames to H.264 MP4 with the given presentation timestamps (seconds, increasing; the first
    is 0), through ffmpeg's concat demuxer: a variable-frame-rate file like OBS's."""
    from capture.video import ffmpeg_exe

    path = Path(path)
    pts = np.asarray(pts_s, dtype=np.float64)
    if len(frames) != pts.size or pts.size == 0 or np.any(np.diff(pts) <= 0):
        raise ValueError("write_video_with_pts: need one increasing timestamp per frame")
    tmp = Path(tempfile.mkdtemp(prefix="gta-sim-"))
    try:
        durations = np.diff(pts)
        last = float(np.median(durations)) if durations.size else 1 / 30
        lines = ["ffconcat version 1.0"]
        for i, f in enumerate(frames):
            name = f"f{i:06d}.bmp"
            cv2.imwrite(str(tmp / name), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            lines.append(f"file '{name}'")
            lines.append("option framerate 90000")  # image2's time base: 1/90000 s, not 1/25 s
            lines.append(f"duration {durations[i] if i < durations.size else last:.6f}")
        lines.append(f"file 'f{len(frames) - 1:06d}.bmp'")  # the concat demuxer needs the last file twice
        lines.append("option framerate 90000")
        (tmp / "list.ffconcat").write_text("\n".join(lines) + "\n")
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "concat", "-safe", "0",
               "-i", str(tmp / "list.ffconcat"), "-fps_mode", "passthrough", "-frames:v", str(len(frames)),
               "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
               "-video_track_timescale", "90000", "-threads", "1", "file:" + str(path)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"ffmpeg failed writing {path}: {res.stderr[-800:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# --------------------------------------------------------------------------------------------------------
# the session


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def simulate_recording(directory: str | Path, config: SimConfig | None = None, *,
                       video_name: str = "video.mp4") -> SimResult:
    """Simulate one recording session into ``directory`` (behaviour.jsonl, ticks.csv, ``video_name``)."""
    cfg = config or SimConfig()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    sched = _KeySchedule(np.random.default_rng(cfg.seed + 1), cfg.handbrake)
    car = _Car(x=cfg.start_position_m[0], y=cfg.start_position_m[1], heading=cfg.start_heading_deg)
    offset = np.array(cfg.camera_offset_m, dtype=np.float64)
    rot_off = np.array(cfg.camera_rotation_offset_deg, dtype=np.float64)
    session_id = f"sim-{cfg.seed:08d}"
    started = datetime(2025, 3, 1, 10, 0, 0, tzinfo=timezone.utc)
    scenario = {
        "name": cfg.scenario_name, "seed": int(cfg.seed), "weather": cfg.weather,
        "time_of_day_h": cfg.time_of_day_h, "freeze_time": True, "vehicle_density": cfg.vehicle_density,
        "ped_density": cfg.ped_density, "behaviour": "drive_wander", "vehicle_model": "asea", "speed_mps": 12.0,
        "waypoints_m": [], "camera": {"view": cfg.camera_view, "offset_m": list(cfg.camera_offset_m),
                                      "rotation_offset_deg": list(cfg.camera_rotation_offset_deg),
                                      "ped_offset_m": [0.0, 0.15, 0.65], "fov_deg": cfg.fov_deg},
        "duration_s": cfg.duration_s, "sync": {"duration_ms": cfg.sync_duration_ms, "at_end": cfg.marker_at_end},
        "interact": {"radius_m": 15.0, "chat_ms": 4000, "drive_s": 60.0, "walk_s": 30.0},
    }
    header = {
        "record": "header", "schema": SCHEMA_NAME, "version": 1, "session_id": session_id,
        "mod_version": "sim", "game_build": "simulated", "shvdn_api": "3", "started_utc": _iso(started),
        "scenario": scenario,
        "sync_marker": {"kind": "binary_grid", "rows": 4, "cols": 8, "bits": 12,
                        "duration_ms": cfg.sync_duration_ms, "at_end": cfg.marker_at_end},
        "files": {"csv": CSV_NAME},
    }

    ticks: list[dict[str, Any]] = []
    wall, gtime, frame = 0.0, 812345, 40000
    keys_log, phase_log, wall_log, cam_pos_log, cam_mat_log = [], [], [], [], []
    dt_nom = 1000.0 / cfg.game_fps
    phase, phase_start = "marker", 0.0
    k = 0
    paused = False
    dt_s = dt_nom / 1000.0
    while True:
        if k > 0:
            dt = dt_nom * (1.0 + cfg.tick_jitter * (rng.random() - 0.5))
            if cfg.stall_prob > 0 and rng.random() < cfg.stall_prob:
                dt += rng.uniform(*cfg.stall_ms)
            pause = 0.0  # a pause menu: wall time passes, the game (physics, Game.GameTime) does not
            if (cfg.pause_at_s is not None and not paused and phase == "record"
                    and wall - phase_start >= cfg.pause_at_s * 1000.0):
                pause = cfg.pause_ms
                phase_start += cfg.pause_ms  # the record phase lasts duration_s of play
                paused = True
            wall += dt + pause
            gtime += int(round(dt))
            frame += 1
            dt_s = dt / 1000.0
        events: list[dict[str, Any]] = []
        if k == 0:
            events = [{"type": "session_start"}, {"type": "vehicle_spawned"}, {"type": "marker_start"}]
        # phase transitions (as RecorderSession: the tick that crosses the duration is the last of its phase)
        this_phase = phase
        keys: set[str] = set()
        if phase == "record":
            keys = sched.step((wall - phase_start) / 1000.0, car.v)
            car.step(keys, dt_s)
        else:
            car.throttle, car.brake = 0.0, 0.0
            if phase == "end_marker":
                car.step(set(), dt_s)
        code = (k % 4096) if phase in ("marker", "end_marker") else None
        if phase == "marker" and wall - phase_start >= cfg.sync_duration_ms:
            events.append({"type": "marker_end"})
            phase, phase_start = "record", wall
        elif phase == "record" and wall - phase_start >= cfg.duration_s * 1000.0:
            if cfg.marker_at_end:
                phase, phase_start = "end_marker", wall
            else:
                phase = "done"
        elif phase == "end_marker" and wall - phase_start >= cfg.sync_duration_ms:
            events.append({"type": "marker_end"})
            phase = "done"

        veh_rot = np.array([car.pitch, car.roll, fr.wrap180(car.heading) if car.heading != 180.0 else 180.0])
        r_body = fr.gta_euler_to_matrix(veh_rot)
        pos = np.array([car.x, car.y, 0.5])
        cam_pos, cam_mat = fr.rig_pose_gta(pos, r_body, offset, rot_off)
        cam_eul = fr.matrix_to_gta_euler(cam_mat)
        q = matrix_to_quat(r_body)  # GTA quaternion (same algebra): w, x, y, z
        fwd = r_body[:, 1]
        vel = fwd * car.v
        steer_logged = car.steer + rng.normal(0, cfg.steer_noise_deg) if cfg.steer_noise_deg > 0 else car.steer
        v_logged = car.v + rng.normal(0, cfg.speed_noise_mps) if cfg.speed_noise_mps > 0 else car.v
        gear = 0 if car.v < -0.1 else 1 + min(4, int(abs(car.v) / 8.0))
        vec = lambda a: [f32(x) for x in a]  # noqa: E731
        tick = {
            "record": "tick", "tick": k, "frame": frame, "game_time_ms": gtime, "wall_time_ms": round(wall, 4),
            "frame_time_ms": f32(dt_s * 1000.0), "phase": this_phase,
            "mode": "hold" if this_phase == "marker" else "drive",
            "vehicle": {
                "model": "ASEA", "position_m": vec(pos), "rotation_deg": vec(veh_rot),
                "quaternion_xyzw": vec([q[1], q[2], q[3], q[0]]), "velocity_mps": vec(vel),
                "speed_mps": f32(abs(v_logged)), "forward_speed_mps": f32(v_logged), "heading_deg": f32(car.heading),
                "steering_deg": f32(steer_logged), "throttle": f32(car.throttle), "brake": f32(car.brake),
                "gear": gear, "rpm": f32(min(1.0, 0.2 + 0.8 * ((abs(car.v) % 8.0) / 8.0))), "collided": False,
            },
            "player": {"position_m": vec(pos), "rotation_deg": vec(veh_rot), "heading_deg": f32(car.heading),
                       "velocity_mps": vec(vel), "speed_mps": f32(abs(car.v)), "in_vehicle": True},
            "camera": {"position_m": vec(cam_pos), "rotation_deg": vec(cam_eul), "fov_deg": f32(cfg.fov_deg),
                       "view_mode": "scripted_first_person" if cfg.camera_view == "first_person"
                       else "scripted_third_person", "rig": "vehicle"},
            "controls": {n: False for n in ("accelerate", "brake", "left", "right", "handbrake", "move_forward",
                                            "move_back", "move_left", "move_right", "sprint")},
            "env": {"weather": cfg.weather, "weather_game": cfg.weather.capitalize(),
                    "time_of_day_h": cfg.time_of_day_h, "vehicle_density": cfg.vehicle_density,
                    "ped_density": cfg.ped_density},
            "sync_code": code, "events": events,
        }
        ticks.append(tick)
        keys_log.append([kk in keys for kk in KEYS])
        phase_log.append(this_phase)
        wall_log.append(wall)
        cam_pos_log.append(cam_pos)
        cam_mat_log.append(cam_mat)
        k += 1
        if phase == "done":
            break
    footer = {"record": "footer", "ticks": len(ticks), "ended_utc": _iso(started + timedelta(milliseconds=wall)),
              "wall_time_ms": round(wall, 4), "reason": "duration"}
    write_recording(out, header, ticks, footer)

    tick_wall = np.array(wall_log)
    cam_pos_arr = np.array(cam_pos_log)
    cam_mat_arr = np.array(cam_mat_log)
    ue_pos, ue_q = fr.gta_pose_to_ue(cam_pos_arr, cam_mat_arr)

    # ---- the capture
    renderer = SceneRenderer(cfg.width, cfg.height, cfg.fov_deg, cfg.seed)
    period = 1000.0 / cfg.video_fps
    end = cfg.video_end_ms if cfg.video_end_ms is not None else tick_wall[-1] + 400.0
    n_cap = int(math.floor((end - cfg.video_start_ms) / period)) + 1
    cap_rng = np.random.default_rng(cfg.seed + 2)
    frames: list[np.ndarray] = []
    pts: list[float] = []
    ftick: list[int] = []
    fdup: list[bool] = []
    cache: dict[int, np.ndarray] = {}
    dropped = duplicated = 0
    last_img: np.ndarray | None = None
    last_tick = -1
    for i in range(n_cap):
        c = cfg.video_start_ms + i * period + cfg.capture_jitter_ms * (cap_rng.random() - 0.5)
        drop = cap_rng.random() < cfg.drop_prob
        dup = last_img is not None and cap_rng.random() < cfg.dup_prob
        if drop and i > 0:
            dropped += 1
            continue
        if dup:
            img, shown = last_img, last_tick
            duplicated += 1
        else:
            shown = int(np.searchsorted(tick_wall, c - cfg.present_latency_ms, side="right")) - 1
            if shown not in cache:
                t_i = max(shown, 0)
                code = ticks[t_i]["sync_code"] if shown >= 0 else None
                if code is not None and cfg.marker_visible:
                    img = render_rects(np.zeros((cfg.height, cfg.width, 3), np.uint8), marker_rects(code))
                else:
                    img = renderer.render(cam_pos_arr[t_i], cam_mat_arr[t_i])
                cache.clear()
                cache[shown] = img
            img = cache[shown]
        frames.append(img)
        p = (c - cfg.video_start_ms) / 1000.0 if cfg.vfr else i / cfg.video_fps
        pts.append(p)
        ftick.append(shown)
        fdup.append(bool(dup))
        last_img, last_tick = img, shown
    pts_arr = np.array(pts) - pts[0] if cfg.vfr else np.array(pts)
    video_path = out / video_name
    if not cfg.vfr and dropped == 0:
        from capture.video import VideoWriter

        with VideoWriter(video_path, cfg.width, cfg.height, cfg.video_fps, crf=cfg.crf) as vw:
            for f in frames:
                vw.write(f)
    else:
        write_video_with_pts(video_path, frames, pts_arr, crf=cfg.crf)
    # video time 0 is the first frame kept: its capture instant (VFR) or the nominal start (CFR)
    first_pts_wall = cfg.video_start_ms + (pts[0] * 1000.0 if cfg.vfr else 0.0)
    truth = GroundTruth(
        tick_wall_ms=tick_wall, keys=np.array(keys_log, dtype=bool), phase=np.array(phase_log),
        cam_pos_cm=ue_pos, cam_quat=ue_q, frame_pts_s=pts_arr, frame_tick=np.array(ftick),
        frame_dup=np.array(fdup), offset_s=-first_pts_wall / 1000.0, dropped=dropped, duplicated=duplicated,
    )
    return SimResult(out, video_path, truth, cfg)


# --------------------------------------------------------------------------------------------------------
# scoring an import against the ground truth


@dataclass
class ImportScore:
    """How an import of a simulated recording compares with the truth, over all its output frames.

    ``key_accuracy``: fraction of frames whose W/S/A/D/space are all right; ``per_key``: per-key accuracy;
    ``align_err_ms``: |wall time of the assigned tick - wall time of the tick the frame really shows| per
    frame; ``pos_err_cm``/``rot_err_deg``: camera pose error per frame against the float64 truth."""

    frames: int
    key_accuracy: float
    per_key: dict[str, float]
    align_err_ms: np.ndarray
    pos_err_cm: np.ndarray
    rot_err_deg: np.ndarray

    def summary(self, fps: float) -> dict[str, float]:
        a = self.align_err_ms
        return {
            "frames": self.frames, "key_accuracy": self.key_accuracy,
            "align_p50_ms": float(np.percentile(a, 50)), "align_p99_ms": float(np.percentile(a, 99)),
            "align_max_ms": float(a.max()), "align_p99_frames": float(np.percentile(a, 99) * fps / 1000.0),
            "pos_p99_cm": float(np.percentile(self.pos_err_cm, 99)),
            "rot_p99_deg": float(np.percentile(self.rot_err_deg, 99)),
        }


def score_import(truth: GroundTruth, episode_dirs: list[Path]) -> ImportScore:
    """Compare the episodes imported from a simulated recording with its ground truth."""
    from capture.episode import read_episode

    hits, total = 0, 0
    per_key_hits = np.zeros(len(KEYS))
    aerr, perr, rerr = [], [], []
    for d in episode_dirs:
        ep = read_episode(d)
        df = ep.actions
        vf = df["gta_video_frame"].to_numpy().astype(int)
        assigned = df["gta_tick"].to_numpy().astype(int)
        true_tick = truth.frame_tick[vf]
        inferred = ep.keyboard()[:, [ep.action_space.index(k) for k in KEYS]].astype(bool)
        gt = np.zeros_like(inferred)
        for j, kt in enumerate(true_tick):
            lo = true_tick[j - 1] + 1 if j > 0 and kt > true_tick[j - 1] else kt
            gt[j] = truth.keys[lo:kt + 1].any(axis=0)
        ok = (inferred == gt)
        hits += int(ok.all(axis=1).sum())
        per_key_hits += ok.sum(axis=0)
        total += len(df)
        aerr.append(np.abs(truth.tick_wall_ms[assigned] - truth.tick_wall_ms[true_tick]))
        pos = ep.poses()
        perr.append(np.linalg.norm(pos[:, :3] - truth.cam_pos_cm[true_tick], axis=1))
        dots = np.abs(np.einsum("ni,ni->n", pos[:, 3:], truth.cam_quat[true_tick]))
        rerr.append(np.degrees(2 * np.arccos(np.clip(dots, -1, 1))))
    if total == 0:
        raise ValueError("no imported frames to score")
    return ImportScore(total, hits / total, {k: float(per_key_hits[i] / total) for i, k in enumerate(KEYS)},
                       np.concatenate(aerr), np.concatenate(perr), np.concatenate(rerr))
