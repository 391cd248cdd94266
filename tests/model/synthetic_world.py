"""A synthetic action-driven world for the training tests and the training bench.

A camera looks at an infinite (periodic) textured plane:

- mouse yaw pans the view horizontally: ``d_yaw`` degrees move the camera ``PX_PER_DEG * d_yaw`` pixels right,
  so the image content moves left (turn right = negative horizontal optical flow);
- mouse pitch pans vertically (look up = content moves down);
- W zooms in by ``ZOOM_PER_FRAME`` per frame (forward = expanding flow field), S zooms out;
- A / D strafe left / right by ``STRAFE_PX`` per frame.

The texture is a sum of random low-frequency sinusoids per colour channel with integer periods over the texture,
so panning wraps seamlessly. Everything is seeded; the same arguments give byte-identical shards.

:func:`write_synthetic_shards` writes a "playmill.shards/1" dataset (JPEG frames) with the curation package's own
schema helpers, so the training code is exercised through the real shard reader.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

PX_PER_DEG = 1.5
ZOOM_PER_FRAME = 1.045
STRAFE_PX = 2.0
TURN_DEG = 2.0
DEFAULT_KEYS = ("w", "s", "a", "d", "space", "shift", "ctrl", "lmb", "rmb")
TEX_H, TEX_W = 256, 512

# name -> (held keys, d_pitch deg/frame, d_yaw deg/frame)
ACTIONS: dict[str, tuple[tuple[str, ...], float, float]] = {
    "idle": ((), 0.0, 0.0),
    "right": ((), 0.0, TURN_DEG),
    "left": ((), 0.0, -TURN_DEG),
    "forward": (("w",), 0.0, 0.0),
    "back": (("s",), 0.0, 0.0),
    "up": ((), TURN_DEG, 0.0),
    "down": ((), -TURN_DEG, 0.0),
}


def make_texture(seed: int, height: int = TEX_H, width: int = TEX_W) -> np.ndarray:
    """A periodic RGB texture, float32 [H, W, 3] in [25, 230]: band-limited random noise (wavelengths of about
    12-64 px, filtered in the Fourier domain so that it wraps seamlessly) as luminance, tinted by two broad
    colour waves. High luminance contrast at a scale an 8x-downsampling VAE can keep, so optical flow is easy
    to measure on reconstructions."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    band = ((f > 1 / 64) & (f < 1 / 12)) / np.maximum(f, 1e-6)
    lum = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((height, width))) * band))
    lum = (lum - lum.mean()) / lum.std()
    lum = np.clip(0.5 + 0.22 * lum, 0, 1)
    yy, xx = np.meshgrid(np.arange(height) / height, np.arange(width) / width, indexing="ij")
    tex = np.empty((height, width, 3))
    for c in range(3):
        kx, ky = rng.integers(1, 3), rng.integers(0, 2)
        tint = 0.75 + 0.25 * np.sin(2 * np.pi * (kx * xx + ky * yy) + rng.uniform(0, 2 * np.pi))
        tex[..., c] = lum * tint
    return (25 + 205 * tex).astype(np.float32)


@dataclass
class Camera:
    """Camera centre on the texture (pixels) and zoom factor."""

    cx: float
    cy: float
    zoom: float = 1.0


def render(texture: np.ndarray, cam: Camera, height: int, width: int) -> np.ndarray:
    """The view of ``cam``: RGB uint8 [height, width, 3] (bilinear, wrapping around the periodic texture)."""
    v, u = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    mx = (cam.cx + (u - width / 2) / cam.zoom) % texture.shape[1]
    my = (cam.cy + (v - height / 2) / cam.zoom) % texture.shape[0]
    out = cv2.remap(texture, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def action_rows(name: str, num_frames: int, keys: Sequence[str] = DEFAULT_KEYS) -> tuple[np.ndarray, np.ndarray]:
    """Constant per-frame actions for ``name``: keyboard uint8 [T, K] and mouse float32 [T, 2]; row 0 idle."""
    held, pitch, yaw = ACTIONS[name]
    kb = np.zeros((num_frames, len(keys)), np.uint8)
    mouse = np.zeros((num_frames, 2), np.float32)
    for k in held:
        kb[1:, list(keys).index(k)] = 1
    mouse[1:] = (pitch, yaw)
    return kb, mouse


def simulate(
    texture: np.ndarray, start: Camera, keyboard: np.ndarray, mouse: np.ndarray, height: int, width: int,
    keys: Sequence[str] = DEFAULT_KEYS,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the frames produced by per-frame actions (row i moves the camera before frame i is drawn).

    Returns frames uint8 [T, H, W, 3] and poses float64 [T, 7] (x = cx, y = cy, z = zoom, identity quaternion).
    """
    cam = Camera(start.cx, start.cy, start.zoom)
    idx = {k: i for i, k in enumerate(keys)}
    frames, poses = [], []
    for i in range(len(keyboard)):
        kb, (pitch, yaw) = keyboard[i], mouse[i]
        cam.cx += yaw * PX_PER_DEG
        cam.cy -= pitch * PX_PER_DEG
        if "w" in idx and kb[idx["w"]]:
            cam.zoom *= ZOOM_PER_FRAME
        if "s" in idx and kb[idx["s"]]:
            cam.zoom /= ZOOM_PER_FRAME
        if "d" in idx and kb[idx["d"]]:
            cam.cx += STRAFE_PX / cam.zoom
        if "a" in idx and kb[idx["a"]]:
            cam.cx -= STRAFE_PX / cam.zoom
        frames.append(render(texture, cam, height, width))
        poses.append((cam.cx, cam.cy, cam.zoom, 1.0, 0.0, 0.0, 0.0))
    return np.stack(frames), np.asarray(poses, np.float64)


@dataclass
class SyntheticClip:
    clip_id: str
    texture: int
    start: int
    action: str
    frames: np.ndarray  # uint8 [T, H, W, 3]
    keyboard: np.ndarray  # uint8 [T, K]
    mouse: np.ndarray  # float32 [T, 2]
    pose: np.ndarray  # float64 [T, 7]


def start_camera(texture: int, start: int) -> Camera:
    rng = np.random.default_rng([texture, start, 7])
    return Camera(float(rng.uniform(0, TEX_W)), float(rng.uniform(0, TEX_H)), 1.0)


def make_clips(
    textures: Sequence[int], starts: int, actions: Sequence[str], num_frames: int, height: int, width: int,
    keys: Sequence[str] = DEFAULT_KEYS,
) -> list[SyntheticClip]:
    """Every (texture seed, start position, action) combination as one clip."""
    clips = []
    for t in textures:
        tex = make_texture(t)
        for s in range(starts):
            cam = start_camera(t, s)
            for a in actions:
                kb, mouse = action_rows(a, num_frames, keys)
                frames, pose = simulate(tex, cam, kb, mouse, height, width, keys)
                clips.append(SyntheticClip(f"tex{t}-s{s}-{a}", t, s, a, frames, kb, mouse, pose))
    return clips


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_synthetic_shards(
    out_dir: str | Path,
    clips: Sequence[SyntheticClip],
    *,
    keys: Sequence[str] = DEFAULT_KEYS,
    fps: float = 25.0,
    rows_per_shard: int = 1000,
    row_group_rows: int = 8,
    jpeg_quality: int = 95,
) -> Path:
    """Write ``clips`` as a playmill.shards/1 dataset (JPEG frames) with a manifest (and its mouse stats)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curation.schema import REJECTS_SCHEMA, SHARDS_SCHEMA, clip_table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n, h, w = clips[0].frames.shape[:3]
    shards = []
    for si in range(0, len(clips), rows_per_shard):
        tables = []
        for c in clips[si : si + rows_per_shard]:
            jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])[1].tobytes()
                     for f in c.frames]
            tables.append(clip_table(
                clip_id=c.clip_id, episode_id=f"synthetic-tex{c.texture}", source="generic", scene=f"tex{c.texture}",
                start_frame=0, fps=fps, height=h, width=w, frame_codec="jpeg", media=jpegs, keyboard=c.keyboard,
                mouse=c.mouse, pose=c.pose, speed=np.zeros(n, np.float32), collision=np.zeros(n, bool),
            ))
        name = f"part-{len(shards):05d}.parquet"
        pq.write_table(pa.concat_tables(tables), out / name, row_group_size=row_group_rows)
        shards.append({"file": name, "rows": len(tables), "bytes": (out / name).stat().st_size,
                       "sha256": _sha256(out / name)})
    pq.write_table(REJECTS_SCHEMA.empty_table(), out / "rejects.parquet")
    mouse = np.concatenate([c.mouse for c in clips]).astype(np.float64)
    q = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

    def summary(v: np.ndarray) -> dict:
        return {"count": len(v), "min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()),
                "std": float(v.std()), "quantiles": {str(a): float(b) for a, b in zip(q, np.quantile(v, q))},
                "quantiles_exact": True}

    manifest = {
        "schema": SHARDS_SCHEMA, "clip_frames": n, "fps": fps, "height": h, "width": w, "frame_codec": "jpeg",
        "action_space": {"keys": list(keys)}, "shards": shards,
        "totals": {"clips": len(clips), "frames": n * len(clips)},
        "stats": {"frames": n * len(clips), "mouse": {"d_pitch": summary(mouse[:, 0]), "d_yaw": summary(mouse[:, 1])}},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out
