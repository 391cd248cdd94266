"""Valid materials for the bad-input corpus, built once per session (cases copy them and break the copy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from capture.video import VideoWriter
from tests.curation.helpers import make_fake_episodes, pan_frames, small_config

W, H, FPS, N = 64, 48, 25.0, 20


@pytest.fixture(scope="session")
def mats(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("materials")


@pytest.fixture(scope="session")
def episodes_src(mats) -> Path:
    """Two valid FakeWorld episodes of 30 frames (scenes fake and other)."""
    d = mats / "episodes"
    make_fake_episodes(d, n=1, frames=30, scenes=("fake", "other"))
    return d


@pytest.fixture(scope="session")
def video_src(mats) -> Path:
    """A valid H.264 video: 20 frames, 64x48, 25 fps."""
    p = mats / "clip.mp4"
    with VideoWriter(p, W, H, FPS) as vw:
        for f in pan_frames(N, seed=5):
            vw.write(f)
    return p


@pytest.fixture(scope="session")
def sekai_src(mats, video_src) -> Path:
    """A Sekai folder with one valid clip: good_0_19.mp4 + good_0_19.npz (walking forward, turning)."""
    d = mats / "sekai"
    d.mkdir()
    (d / "good_0_19.mp4").write_bytes(video_src.read_bytes())
    np.savez(d / "good_0_19.npz", extrinsic=sekai_extrinsics(N))
    return d


def sekai_extrinsics(n: int) -> np.ndarray:
    """c2w matrices (OpenCV axes, normalised translation): forward along +z while turning slowly right."""
    e = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        a = np.radians(0.5 * i)
        e[i, :3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        e[i, 2, 3] = i / n
    return e


UE_HEADER = "frame,time_s,keys,x_cm,y_cm,z_cm,pitch_deg,yaw_deg,roll_deg,mouse_dx,mouse_dy"


def ue_rows(n: int = N) -> list[str]:
    """A valid export CSV: walking forward along X with W held, turning right."""
    rows = [UE_HEADER]
    for i in range(n):
        rows.append(f"{i},{i / FPS:.6f},{'W' if i else ''},{6.0 * i:.3f},0,170,0,{0.4 * i:.3f},0,{i % 3},")
    return rows


@pytest.fixture(scope="session")
def unreal_src(mats, video_src) -> Path:
    """An Unreal export folder with one valid recording good.mp4 + good.csv (20 frames)."""
    d = mats / "unreal"
    d.mkdir()
    (d / "good.mp4").write_bytes(video_src.read_bytes())
    (d / "good.csv").write_text("\n".join(ue_rows()) + "\n")
    return d


@pytest.fixture(scope="session")
def gta_src(mats) -> Path:
    """A simulated GTA V recording session of 4 s (96x64 video with the sync marker)."""
    from gta_bridge.sim import SimConfig, simulate_recording

    d = mats / "gta" / "session"
    simulate_recording(d, SimConfig(seed=3, duration_s=4.0, width=96, height=64))
    return d


@pytest.fixture(scope="session")
def shards_src(mats, episodes_src) -> Path:
    """Shards curated from ``episodes_src`` (9-frame clips at 32x64)."""
    from curation import curate

    out = mats / "shards"
    res = curate(episodes_src, out, small_config(), workers=1, progress=False)
    assert res.clips > 0
    return out


@pytest.fixture(scope="session")
def weights_src(mats) -> Path:
    """A valid safetensors file with playmill metadata (the layout of a checkpoint's weights)."""
    import torch

    from model.bundle import save_safetensors

    p = mats / "dit_ema.safetensors"
    g = torch.Generator().manual_seed(0)
    save_safetensors(p, {"blocks.0.weight": torch.randn(16, 16, generator=g), "head.bias": torch.zeros(16)},
                     {"model": {"name": "tiny"}, "conditions": {}, "step": 1})
    return p


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path
