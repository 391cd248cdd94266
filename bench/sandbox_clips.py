"""Sandbox sequences with exact float64 ground truth, for bench/motion.py and bench/label_check.py.

:func:`record` drives a :class:`SandboxWorld` with a natural controller (navmesh tours or the wander explorer)
and keeps the frames in memory with the per-frame actions and the exact camera poses; recordings are cached as
``.npz`` under ``cache_dir`` (a temp or bench-local folder, never committed) keyed by their parameters.
:func:`gt_motion` derives the true per-frame rotation (degrees) and body-frame translation (cm).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.rotations import quat_to_matrix, quat_to_rotator, wrap_deg  # noqa: E402

KEYS = ("w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb")


@dataclass
class Recording:
    """``frames`` uint8 [N, H, W, 3]; ``keyboard`` uint8 [N, 9] (:data:`KEYS`); ``mouse`` float64 [N, 2] (d_pitch,
    d_yaw deg); ``pos`` [N, 3] cm; ``quat`` [N, 4]; ``speed`` [N] cm/s; ``collision`` bool [N]; ``fov_deg``."""

    scene: str
    seed: int
    controller: str
    fov_deg: float
    frames: np.ndarray
    keyboard: np.ndarray
    mouse: np.ndarray
    pos: np.ndarray
    quat: np.ndarray
    speed: np.ndarray
    collision: np.ndarray


def record(scene: str, seed: int, frames: int, *, fov_deg: float = 90.0, controller: str = "navmesh",
           width: int = 320, height: int = 176, cache_dir: Path | None = None) -> Recording:
    """Record (or load from the cache) one sandbox sequence."""
    key = dict(scene=scene, seed=seed, frames=frames, fov=fov_deg, controller=controller, w=width, h=height, v=1)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"{scene}-{seed}-{controller}-{int(fov_deg)}-{name}.npz"
        if path.is_file():
            d = np.load(path)
            return Recording(scene, seed, controller, fov_deg, *(d[k] for k in (
                "frames", "keyboard", "mouse", "pos", "quat", "speed", "collision")))
    from capture.actions import ActionSpace
    from unreal_bridge.navmesh_controller import make_navmesh_controller
    from unreal_bridge.sandbox import SandboxWorld, WanderController

    world = SandboxWorld(scene=scene, width=width, height=height, fov_deg=fov_deg, action_space=ActionSpace(KEYS))
    try:
        obs = world.reset(seed)
        ctl = make_navmesh_controller(world) if controller == "navmesh" else WanderController(world)
        ctl.reset(seed, obs)
        fr, kb, ms, pos, quat, spd, col = [], [], [], [], [], [], []

        def keep(o, keys, dp, dy):
            fr.append(o.frame)
            kb.append([1 if k in keys else 0 for k in KEYS])
            ms.append((dp, dy))
            pos.append(o.pos_cm)
            quat.append(o.quat_wxyz)
            spd.append(o.speed_cm_s)
            col.append(o.collision)

        keep(obs, (), 0.0, 0.0)
        for _ in range(frames - 1):
            a = ctl.act(obs)
            obs = world.step(a)
            keep(obs, a.keys, a.d_pitch_deg, a.d_yaw_deg)
    finally:
        world.close()
    rec = Recording(scene, seed, controller, fov_deg, np.stack(fr), np.asarray(kb, np.uint8), np.asarray(ms),
                    np.asarray(pos), np.asarray(quat), np.asarray(spd), np.asarray(col, bool))
    if path is not None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, frames=rec.frames, keyboard=rec.keyboard, mouse=rec.mouse, pos=rec.pos, quat=rec.quat,
                 speed=rec.speed, collision=rec.collision)
        tmp.replace(path)
    return rec


def gt_motion(rec: Recording) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True per-frame ``(d_pitch_deg, d_yaw_deg, body_translation_cm [N, 3])`` from the exact poses (row 0: NaN /
    zeros); body axes x forward, y right, z up (Unreal)."""
    rot = np.array([quat_to_rotator(q) for q in rec.quat])
    n = len(rot)
    dp = np.r_[np.nan, np.diff(rot[:, 0])]
    dy = np.r_[np.nan, [wrap_deg(d) for d in np.diff(rot[:, 1])]]
    t = np.zeros((n, 3))
    for i in range(1, n):
        t[i] = quat_to_matrix(rec.quat[i - 1]).T @ (rec.pos[i] - rec.pos[i - 1])
    return dp, dy, t


def h264_roundtrip(frames: np.ndarray, fps: float = 25.0, crf: int = 23) -> np.ndarray:
    """The frames after an H.264 encode (x264 ``crf``, yuv420p) and decode, as a recording would store them."""
    import tempfile

    from capture.video import VideoWriter, read_video

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.mp4"
        with VideoWriter(p, frames.shape[2], frames.shape[1], fps, crf=crf, preset="veryfast") as w:
            for f in frames:
                w.write(f)
        out, _ = read_video(p)
    return out
