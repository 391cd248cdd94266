"""Shared fixtures: simulated GTA V recordings with ground truth (small 128x72 videos, seconds long)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gta_bridge.sim import SimConfig, SimResult, simulate_recording


def _sim(tmp_path_factory: pytest.TempPathFactory, name: str, cfg: SimConfig) -> SimResult:
    return simulate_recording(tmp_path_factory.mktemp(name) / "session", cfg)


@pytest.fixture(scope="session")
def sim_vfr(tmp_path_factory) -> SimResult:
    """VFR capture with an offset, jitter, 2 % dropped and 2 % duplicated frames and game stalls; marker shown."""
    return _sim(tmp_path_factory, "vfr", SimConfig(seed=11, duration_s=8.0, vfr=True, drop_prob=0.02, dup_prob=0.02,
                                                  stall_prob=0.002, video_start_ms=-650.0))


@pytest.fixture(scope="session")
def sim_cfr(tmp_path_factory) -> SimResult:
    """CFR capture (OBS default) starting after the log, with drops and duplicates; marker shown."""
    return _sim(tmp_path_factory, "cfr", SimConfig(seed=12, duration_s=8.0, vfr=False, drop_prob=0.02,
                                                  dup_prob=0.02, video_start_ms=400.0, sync_duration_ms=1200.0))


@pytest.fixture(scope="session")
def sim_nomarker(tmp_path_factory) -> SimResult:
    """The capture does not show the sync marker: alignment must come from image motion."""
    return _sim(tmp_path_factory, "nomarker", SimConfig(seed=13, duration_s=12.0, vfr=True, marker_visible=False,
                                                       video_start_ms=-1800.0))


def copy_recording(src: Path, dst: Path) -> Path:
    """A writable copy of a recording folder (tests mutate copies, never the shared fixture)."""
    shutil.copytree(src, dst)
    return dst
