"""Sekai import: a known camera path in, the right keys, mouse and poses out (generic, VPT and the round trips of
every footage format: test_footage.py)."""


import numpy as np
import pytest

from capture.episode import read_episode
from capture.rotations import matrix_to_quat, quat_to_matrix
from capture.validate import validate_episode
from capture.video import VideoWriter
from curation.importers import CV_TO_UE, SekaiImportConfig, import_sekai, sekai_actions
from tests.curation.helpers import pan_frames


def rot_y(deg):  # OpenCV world: about the down axis; positive turns the camera's forward (+z) towards +x (right)
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def rot_x(deg):  # about the camera's right axis; positive tilts forward (+z) towards -y (up)
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def camera_path():
    """A known c2w path (OpenCV axes) with its per-frame truth: walk forward, turn right while walking,
    strafe right, look up, step back. Returns (extrinsic (N,4,4) normalised, keys, yaw, pitch)."""
    segs = [("w", 0.0, 0.0, 20), ("w", 1.5, 0.0, 10), ("d", 0.0, 0.0, 10), ("", 0.0, 0.8, 10), ("s", 0.0, 0.0, 10)]
    yaw = pitch = 0.0
    t = np.zeros(3)
    mats, keys, yaws, pitches = [], [], [], []
    for i, (k, dyaw, dpitch, n) in enumerate(segs):
        for _ in range(n):
            first = not mats
            if not first:
                yaw += dyaw
                pitch += dpitch
                r_prev = mats[-1][:3, :3]
                step = {"w": [0, 0, 0.05], "s": [0, 0, -0.05], "d": [0.05, 0, 0], "": [0, 0, 0]}[k]
                t = t + r_prev @ np.array(step)
            r = rot_y(yaw) @ rot_x(pitch)
            m = np.eye(4)
            m[:3, :3], m[:3, 3] = r, t
            mats.append(m)
            keys.append(set() if first or not k else {k})
            yaws.append(yaw)
            pitches.append(pitch)
    e = np.stack(mats)
    e[:, :3, 3] /= np.abs(e[:, :3, 3]).max()  # Sekai's per-video normalisation
    return e, keys, np.array(yaws), np.array(pitches)


def test_matrix_to_quat_round_trips():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        np.testing.assert_allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-12)


def test_sekai_actions_recover_the_known_motion():
    e, keys, yaw, pitch = camera_path()
    a = sekai_actions(e, 30.0, SekaiImportConfig(scale_cm=1000.0))
    assert a.keys == keys
    np.testing.assert_allclose(np.cumsum(a.mouse[:, 1]), yaw, atol=1e-9)  # turn right +
    np.testing.assert_allclose(np.cumsum(a.mouse[:, 0]), pitch, atol=1e-9)  # look up +
    np.testing.assert_allclose(a.yaw, yaw, atol=1e-9)
    # the first 20 frames walk along the camera's forward = Unreal +X, at constant height
    d = np.diff(a.pos[:20], axis=0)
    assert (d[:, 0] > 0).all() and np.allclose(d[:, 1:], 0, atol=1e-9)
    assert (a.speed[1:30] > 0).all() and (a.speed[51:] < 0).all()  # backwards at the end
    # strafing right moves along the camera's right axis (Unreal +Y rotated by the yaw)
    right = np.array([-np.sin(np.radians(15.0)), np.cos(np.radians(15.0))])
    assert (np.diff(a.pos[30:40, :2], axis=0) @ right > 0).all()
    assert np.linalg.det(CV_TO_UE) == pytest.approx(-1.0)
    # auto scale: the median speed of moving frames is a walking pace
    auto = sekai_actions(e, 30.0, SekaiImportConfig())
    moving = np.linalg.norm(auto.vel, axis=1)
    assert np.median(moving[moving > 0]) == pytest.approx(140.0, rel=1e-6)


def write_sekai(src, name, e, n_video=None, fps=30.0):
    frames = pan_frames(n_video or len(e), seed=2)
    with VideoWriter(src / f"{name}.mp4", 64, 48, fps) as w:
        for f in frames:
            w.write(f)
    np.savez(src / f"{name}.npz", extrinsic=e)


def test_import_sekai_writes_valid_episodes_and_reports_bad_ones(tmp_path):
    src = tmp_path / "sekai"
    src.mkdir()
    e, keys, yaw, pitch = camera_path()
    write_sekai(src, "AbCdEf_00100_00160", e)
    write_sekai(src, "mismatch_0_9", e[:20], n_video=40)
    (src / "nocam_0_5.mp4").write_bytes((src / "AbCdEf_00100_00160.mp4").read_bytes())
    eps = tmp_path / "episodes"
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    res = import_sekai(src, eps, {"scale_cm": 500.0, "check": "off"})  # the check: tests/curation/test_footage.py
    assert len(res.written) == 1 and sorted(n for n, _ in res.failed) == ["mismatch_0_9.mp4", "nocam_0_5.mp4"]
    assert any("40 frames" in r and "20 extrinsics" in r for _, r in res.failed)
    assert any("no camera file" in r for _, r in res.failed)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # sources untouched
    ep_dir = res.written[0]
    assert ep_dir.name == "sekai-abcdef-s0000000100-i00160"
    assert validate_episode(ep_dir) == []
    ep = read_episode(ep_dir)
    assert ep.meta.source == "sekai" and ep.meta.fps == 30.0 and ep.meta.config["scale_cm"] == 500.0
    kb = ep.keyboard()
    space = ep.action_space
    assert [set(space.from_multihot(r)) for r in kb] == keys
    np.testing.assert_allclose(np.cumsum(ep.mouse()[:, 1]), yaw, atol=1e-9)
    again = import_sekai(src, eps, {"scale_cm": 500.0, "check": "off"})
    assert again.skipped == ["AbCdEf_00100_00160.mp4"] and not again.written
