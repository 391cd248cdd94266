"""Tiny synthetic episodes for the curation tests (64x48 frames, written with capture's EpisodeWriter)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from capture.actions import ActionSpace, FrameAction
from capture.episode import EpisodeWriter, episode_id
from capture.rotations import rotator_to_quat
from capture.world import Observation
from curation.config import ClipConfig, CurateConfig

W, H = 64, 48


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour texture with hard-edged rectangles (so small shifts are visible)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for scale, amp in ((16, 120), (4, 60)):
        small = rng.random((max(2, h // scale), max(2, w // scale), 3)).astype(np.float32)
        img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amp
    for _ in range(h * w // 100):
        y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        img[y:y + int(rng.integers(2, 10)), x:x + int(rng.integers(2, 14))] = rng.random(3) * 255
    return np.clip(img, 0, 255).astype(np.uint8)


def pan_frames(n: int, seed: int = 0, speed_px: float | Sequence[float] = 2.0) -> list[np.ndarray]:
    """``n`` frames of a horizontal pan over a texture; ``speed_px`` pixels per frame (or one per frame)."""
    tex = texture(H, W * 8, seed)
    speeds = np.broadcast_to(np.asarray(speed_px, dtype=np.float64), (n,))
    x = np.concatenate([[0.0], np.cumsum(speeds[1:])])
    out = []
    for xi in x:
        i = int(xi) % (W * 7)
        f = xi - int(xi)
        a = tex[:, i:i + W + 1].astype(np.float32)
        out.append(((1 - f) * a[:, :-1] + f * a[:, 1:]).astype(np.uint8))
    return out


def write_episode(episodes_dir: Path, frames: Sequence[np.ndarray], *, index: int = 0, scene: str = "test",
                  seed: int = 1, fps: float = 25.0, source: str = "sandbox", keys: Sequence[set] | None = None,
                  mouse: np.ndarray | None = None, speed: np.ndarray | None = None,
                  pos: np.ndarray | None = None, action_space: ActionSpace = ActionSpace()) -> Path:
    """Write an episode whose row i has keys ``keys[i]``, mouse ``mouse[i]`` (d_pitch, d_yaw), speed
    ``speed[i]`` (cm/s) and position ``pos[i]``; the orientation integrates the mouse deltas."""
    n = len(frames)
    keys = keys if keys is not None else [set() if i == 0 else {"w"} for i in range(n)]
    mouse = np.zeros((n, 2)) if mouse is None else np.asarray(mouse, dtype=np.float64)
    speed = np.full(n, 150.0) if speed is None else np.asarray(speed, dtype=np.float64)
    if pos is None:
        pos = np.zeros((n, 3))
        pos[:, 0] = np.cumsum(speed / fps)
    pitch = np.cumsum(mouse[:, 0])
    yaw = np.cumsum(mouse[:, 1])
    eid = episode_id(source, scene, seed, index)
    Path(episodes_dir).mkdir(parents=True, exist_ok=True)
    with EpisodeWriter(episodes_dir, eid, source=source, scene=scene, seed=seed, fps=fps, width=frames[0].shape[1],
                       height=frames[0].shape[0], action_space=action_space, source_frame="unreal",
                       config={}) as w:
        for i in range(n):
            obs = Observation(frame=np.ascontiguousarray(frames[i]), t_s=i / fps, pos_cm=pos[i],
                              quat_wxyz=rotator_to_quat(pitch[i], yaw[i]), pitch_deg=float(pitch[i]),
                              yaw_deg=float(yaw[i]), vel_cm_s=np.array([speed[i], 0.0, 0.0]),
                              speed_cm_s=float(speed[i]), collision=False)
            w.append(obs, FrameAction(keys=frozenset(keys[i]), d_pitch_deg=float(mouse[i, 0]),
                                      d_yaw_deg=float(mouse[i, 1])))
        return w.commit()


def small_config(**overrides) -> CurateConfig:
    """9-frame clips at 32x64 (a test-sized dataset), without the held-out split (split tests turn it on) and
    without the action-label check (the synthetic videos here do not show the motion their labels describe; the
    check has its own tests on sandbox episodes): the shards have exactly DESIGN.md's columns, as the golden
    fixture (:mod:`tests.curation.golden`) requires."""
    d = {"clip": {"frames": 9, "stride": 9, "height": 32, "width": 64}, "split": {"enabled": False},
         "consistency": {"enabled": False}}
    for k, v in overrides.items():
        d.setdefault(k, {}).update(v) if isinstance(v, dict) else d.__setitem__(k, v)
    return CurateConfig.from_dict(d)


def make_fake_episodes(episodes_dir: Path, n: int = 2, frames: int = 60, scenes: Sequence[str] = ("fake",)) -> list[Path]:
    """FakeWorld episodes recorded by capture's collection loop (forward walk, slow right turn)."""
    from capture.collect import collect, plan_episodes
    from tests.capture.fakeworld import make_fake_world, make_scripted_controller

    res = collect(plan_episodes("sandbox", list(scenes), n, frames), make_fake_world, make_scripted_controller,
                  episodes_dir, workers=1, progress=False)
    assert not res.failed, res.failed
    return res.written


__all__ = ["W", "H", "texture", "pan_frames", "write_episode", "small_config", "make_fake_episodes", "ClipConfig"]
