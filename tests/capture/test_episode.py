"""The episode format: columns, ids, meta.json, the atomic writer, the reader, stale temp folders."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.actions import ActionSpace, FrameAction
from capture.episode import (
    POSE_COLUMNS, SCHEMA, TEMP_PREFIX, EpisodeError, EpisodeMeta, EpisodeWriter, actions_columns,
    cleanup_stale_temp, episode_id, list_episodes, read_episode,
)
from capture.rotations import rotator_to_quat
from capture.validate import validate_episode, validate_paths
from capture.world import Observation

REPO = Path(__file__).resolve().parents[2]
W, H, FPS = 32, 24, 20.0
SPACE = ActionSpace(("w", "s", "a", "d", "space"))


def make_obs(i: int, rng: np.random.Generator, *, fps: float = FPS, w: int = W, h: int = H,
             extras: dict | None = None) -> Observation:
    """A fake observation: random frame, random float64 pose with a unit quaternion."""
    pitch, yaw = rng.uniform(-80, 80), rng.uniform(-180, 180)
    return Observation(
        frame=rng.integers(0, 256, (h, w, 3), dtype=np.uint8), t_s=i / fps,
        pos_cm=rng.normal(0, 1e4, 3), quat_wxyz=rotator_to_quat(pitch, yaw), pitch_deg=pitch, yaw_deg=yaw,
        vel_cm_s=rng.normal(0, 300, 3), speed_cm_s=float(rng.normal(0, 300)), collision=bool(rng.random() < 0.3),
        extras=dict(extras or {}),
    )


def make_action(rng: np.random.Generator, *, raw_mouse: bool = True) -> FrameAction:
    keys = {k for k in SPACE.keys if rng.random() < 0.4}
    return FrameAction(keys=keys, d_pitch_deg=float(rng.normal(0, 2)), d_yaw_deg=float(rng.normal(0, 5)),
                       mouse_dx=float(rng.integers(-50, 50)) if raw_mouse else None,
                       mouse_dy=float(rng.integers(-50, 50)) if raw_mouse else None)


def writer(episodes_dir: Path, eid: str = "sandbox-city-s0000000001-i00000", **kw) -> EpisodeWriter:
    args = dict(source="sandbox", scene="city", seed=1, fps=FPS, width=W, height=H, action_space=SPACE,
                source_frame="unreal", config={"weather": "rain", "npc_density": 0.5}, extras=("npc_count",))
    args.update(kw)
    return EpisodeWriter(episodes_dir, eid, **args)


def write_episode(episodes_dir: Path, n: int = 16, seed: int = 0, eid: str = "sandbox-city-s0000000001-i00000",
                  **kw) -> tuple[Path, list[Observation], list[FrameAction]]:
    """Write a complete valid episode of ``n`` frames; returns (path, observations, actions)."""
    rng = np.random.default_rng(seed)
    observations, actions = [], []
    with writer(episodes_dir, eid, **kw) as wr:
        for i in range(n):
            obs = make_obs(i, rng, extras={"npc_count": float(i)} if i % 2 else {})
            act = FrameAction.idle() if i == 0 else make_action(rng, raw_mouse=i % 3 != 0)
            wr.append(obs, act)
            observations.append(obs)
            actions.append(act)
        path = wr.commit()
    return path, observations, actions


# --------------------------------------------------------------------------------------------------------


def test_actions_columns_order():
    cols = actions_columns(ActionSpace(("w", "a")), ["gta_vehicle_speed"])
    assert cols == ["frame", "t", "key_w", "key_a", "d_pitch", "d_yaw", "mouse_dx", "mouse_dy",
                    "x", "y", "z", "qw", "qx", "qy", "qz", "vx", "vy", "vz", "speed", "collision",
                    "gta_vehicle_speed"]
    assert POSE_COLUMNS == ("x", "y", "z", "qw", "qx", "qy", "qz")
    assert actions_columns(("w", "a")) == cols[:-1]


def test_episode_id_is_deterministic_readable_and_safe():
    assert episode_id("sandbox", "city", 42, 3) == "sandbox-city-s0000000042-i00003"
    assert episode_id("unrealcv", "Downtown LA/Block-3 (night)", 2**32 - 1, 12) == \
        "unrealcv-downtown_la_block_3_night-s4294967295-i00012"
    assert episode_id("sandbox", "park", 7, 0) == episode_id("sandbox", "park", 7, 0)
    assert sorted([episode_id("s", "a", 10, 0), episode_id("s", "a", 9, 0)])[0].endswith("s0000000009-i00000")
    with pytest.raises(ValueError, match="seed"):
        episode_id("sandbox", "city", -1, 0)
    with pytest.raises(ValueError, match="scene"):
        episode_id("sandbox", "///", 1, 0)


def test_meta_to_from_dict_round_trip_and_errors():
    meta = EpisodeMeta(episode_id="e", source="sandbox", scene="city", seed=3, fps=30.0, width=64, height=48,
                       frame_count=10, action_space=SPACE, source_frame="unreal", config={"a": 1},
                       created_utc="2025-01-01T00:00:00Z", producer="playmill 0.1.0", video_sha256="a" * 64)
    d = meta.to_dict()
    assert list(d) == ["schema", "episode_id", "source", "scene", "seed", "fps", "width", "height",
                       "frame_count", "action_space", "source_frame", "config", "created_utc", "producer",
                       "video_sha256"]
    assert d["schema"] == SCHEMA and d["action_space"] == {"keys": list(SPACE.keys)}
    assert EpisodeMeta.from_dict(json.loads(json.dumps(d))) == meta
    bad = dict(d, fps="30", width=63)
    del bad["scene"]
    with pytest.raises(ValueError) as e:
        EpisodeMeta.from_dict(bad)
    assert "scene: missing field" in str(e.value) and "fps: must be" in str(e.value) and "width: 63" in str(e.value)


def test_write_read_round_trip(tmp_path):
    path, observations, actions = write_episode(tmp_path, n=16)
    assert path == tmp_path / "sandbox-city-s0000000001-i00000"
    assert sorted(os.listdir(path)) == ["actions.csv", "meta.json", "video.mp4"]
    assert os.listdir(tmp_path) == [path.name]  # no temp folder left
    ep = read_episode(path, check_video=True)
    assert ep.meta.frame_count == len(ep) == 16 and ep.meta.fps == FPS and ep.meta.config["weather"] == "rain"
    assert ep.meta.producer.startswith("playmill ") and len(ep.meta.video_sha256) == 64
    assert ep.action_space == SPACE and ep.extra_columns == ["sandbox_npc_count"]
    a = ep.actions
    assert list(a.columns) == actions_columns(SPACE, ["sandbox_npc_count"])
    assert a["frame"].dtype == np.int64 and a["key_w"].dtype == np.uint8 and a["collision"].dtype == np.uint8
    assert all(a[c].dtype == np.float64 for c in POSE_COLUMNS + ("t", "d_pitch", "mouse_dx", "speed"))
    np.testing.assert_array_equal(a["frame"], np.arange(16))
    np.testing.assert_array_equal(ep.times(), [o.t_s for o in observations])
    np.testing.assert_array_equal(ep.poses(), [np.r_[o.pos_cm, o.quat_wxyz] for o in observations])
    np.testing.assert_array_equal(ep.mouse(), [[x.d_pitch_deg, x.d_yaw_deg] for x in actions])
    np.testing.assert_array_equal(ep.keyboard(), [SPACE.to_multihot(x.keys) for x in actions])
    np.testing.assert_array_equal(a["collision"], [o.collision for o in observations])
    np.testing.assert_array_equal(a[["vx", "vy", "vz"]].to_numpy(), [o.vel_cm_s for o in observations])
    assert np.isnan(a["mouse_dx"][0]) and a["mouse_dx"][1] == actions[1].mouse_dx  # empty when None
    assert np.isnan(a["sandbox_npc_count"][0]) and a["sandbox_npc_count"][1] == 1.0
    frames = list(ep.frames())
    assert len(frames) == 16 and frames[0].shape == (H, W, 3)
    assert validate_episode(path) == []
    assert list_episodes(tmp_path) == [path]


# hypothesis: any finite float64 survives actions.csv bit for bit
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
angle = st.floats(-1e6, 1e6, allow_nan=False, width=64)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(finite, finite, finite, angle, angle, angle, finite, finite, finite, finite, finite,
                          st.floats(1e-9, 1e3)), min_size=1, max_size=6))
def test_float64_values_round_trip_exactly(tmp_path_factory, rows):
    d = tmp_path_factory.mktemp("eps")
    frame = np.zeros((16, 16, 3), np.uint8)
    t, expected = 0.0, []
    with writer(d, width=16, height=16, extras=()) as wr:
        for i, (x, y, z, pitch, yaw, roll, vx, vy, speed, dp, dy, dt) in enumerate(rows):
            q = rotator_to_quat(pitch, yaw, roll)
            t = 0.0 if i == 0 else t + dt
            obs = Observation(frame=frame, t_s=t, pos_cm=np.array([x, y, z]), quat_wxyz=q, pitch_deg=pitch,
                              yaw_deg=yaw, vel_cm_s=np.array([vx, vy, 0.0]), speed_cm_s=speed, collision=False)
            wr.append(obs, FrameAction(d_pitch_deg=dp, d_yaw_deg=dy, mouse_dx=dp))
            expected.append([t, x, y, z, *q, vx, vy, speed, dp, dy, dp])
        path = wr.commit()
    a = read_episode(path).actions
    got = a[["t", "x", "y", "z", "qw", "qx", "qy", "qz", "vx", "vy", "speed", "d_pitch", "d_yaw", "mouse_dx"]]
    exp = np.array(expected, dtype=np.float64)
    assert np.array_equal(got.to_numpy().view(np.int64), exp.view(np.int64))  # bit-exact (incl. -0.0)


def test_exception_inside_block_leaves_nothing(tmp_path):
    rng = np.random.default_rng(1)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        with writer(tmp_path) as wr:
            for i in range(5):
                wr.append(make_obs(i, rng), FrameAction.idle())
            assert len([p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]) == 1
            raise RuntimeError("renderer crashed")
    assert os.listdir(tmp_path) == []


def test_leaving_without_commit_and_abort_discard(tmp_path):
    rng = np.random.default_rng(2)
    with pytest.raises(EpisodeError, match="without commit"):
        with writer(tmp_path) as wr:
            wr.append(make_obs(0, rng), FrameAction.idle())
    assert os.listdir(tmp_path) == []
    wr = writer(tmp_path)
    wr.append(make_obs(0, rng), FrameAction.idle())
    wr.abort()
    wr.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(EpisodeError, match="no frames"):
        with writer(tmp_path) as wr:
            wr.commit()
    assert os.listdir(tmp_path) == []


def test_existing_episode_is_never_overwritten(tmp_path):
    path, _, _ = write_episode(tmp_path, n=3)
    with pytest.raises(FileExistsError):
        writer(tmp_path)
    # a concurrent writer finishing first: commit refuses and cleans its temp folder
    rng = np.random.default_rng(3)
    eid = "sandbox-city-s0000000002-i00000"
    with pytest.raises(FileExistsError):
        with writer(tmp_path, eid) as wr:
            wr.append(make_obs(0, rng), FrameAction.idle())
            (tmp_path / eid).mkdir()
            (tmp_path / eid / "meta.json").write_text("{}")
            wr.commit()
    assert sorted(os.listdir(tmp_path)) == sorted([path.name, eid])


def test_append_rejects_bad_input_with_the_frame(tmp_path):
    rng = np.random.default_rng(4)
    with writer(tmp_path) as wr:
        with pytest.raises(ValueError, match="frame 0: t_s 0.5 must be 0"):
            wr.append(make_obs(10, rng, fps=20.0), FrameAction.idle())
        wr.append(make_obs(0, rng), FrameAction.idle())
        with pytest.raises(ValueError, match="frame 1: t_s 0.0"):
            wr.append(make_obs(0, rng), FrameAction.idle())
        with pytest.raises(ValueError, match=r"frame 1: keys \['q'\] are not in the action space"):
            wr.append(make_obs(1, rng), FrameAction(keys={"q"}))
        bad = make_obs(1, rng)
        bad.quat_wxyz = bad.quat_wxyz * 0.9
        with pytest.raises(ValueError, match="frame 1: quat_wxyz norm"):
            wr.append(bad, FrameAction.idle())
        with pytest.raises(ValueError, match=r"frame 1: extras \['speed_limit'\] were not declared"):
            wr.append(make_obs(1, rng, extras={"speed_limit": 1.0}), FrameAction.idle())
        bad = make_obs(1, rng)
        bad.pos_cm = np.array([0.0, np.nan, 0.0])
        with pytest.raises(ValueError, match="frame 1: pos_cm"):
            wr.append(bad, FrameAction.idle())
        with pytest.raises(ValueError, match=r"frame 1 must be uint8\[24, 32, 3\]"):
            wr.append(make_obs(1, rng, w=16), FrameAction.idle())
        wr.append(make_obs(1, rng), FrameAction.idle())  # the writer is still consistent
        path = wr.commit()
    assert read_episode(path, check_video=True).meta.frame_count == 2


def test_writer_rejects_bad_metadata(tmp_path):
    with pytest.raises(ValueError, match="source"):
        writer(tmp_path, source="quake")
    with pytest.raises(ValueError, match="width"):
        writer(tmp_path, width=33)
    with pytest.raises(ValueError, match="config is not JSON"):
        writer(tmp_path, config={"f": object()})
    with pytest.raises(ValueError, match="is not a safe name: contains a path separator"):
        writer(tmp_path, "../escape")
    assert os.listdir(tmp_path) == []


KILLED_WRITER = """
import os, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from tests.capture.test_episode import make_obs, writer
from capture.actions import FrameAction
from pathlib import Path
rng = np.random.default_rng(0)
wr = writer(Path(sys.argv[1]))
for i in range(5):
    wr.append(make_obs(i, rng), FrameAction.idle())
print(wr.temp_dir, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_writer_leaves_temp_that_cleanup_removes(tmp_path):
    res = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path), str(REPO)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == -signal.SIGKILL, res.stderr
    temp = Path(res.stdout.strip())
    assert temp.parent == tmp_path and temp.name.startswith(TEMP_PREFIX) and temp.is_dir()
    # a reader never sees the partial episode
    assert list_episodes(tmp_path) == []
    problems = validate_paths([tmp_path])
    assert list(problems) == [tmp_path] and "neither an episode folder" in problems[tmp_path][0].message
    # a live writer of this process is left alone; the dead one's folder is removed and reported
    rng = np.random.default_rng(5)
    with writer(tmp_path, "sandbox-city-s0000000003-i00000") as live:
        live.append(make_obs(0, rng), FrameAction.idle())
        removed = cleanup_stale_temp(tmp_path)
        assert removed == [temp] and not temp.exists()
        assert live.temp_dir.is_dir()
        assert list_episodes(tmp_path) == []
        path = live.commit()
    assert list_episodes(tmp_path) == [path]
    assert cleanup_stale_temp(tmp_path) == []


def test_cleanup_by_age_and_unowned_folders(tmp_path):
    old = tmp_path / f"{TEMP_PREFIX}sandbox-x-s0000000001-i00000-{2**22 + 12345}-abcd1234"
    old.mkdir()
    (old / "video.mp4").write_bytes(b"partial")
    other_host = tmp_path / f"{TEMP_PREFIX}sandbox-y-s0000000001-i00000-1-abcd1234"
    other_host.mkdir()
    (other_host / ".owner.json").write_text(json.dumps({"host": "some-other-machine", "pid": 1}))
    assert cleanup_stale_temp(tmp_path) == [old]  # pid not running here
    assert other_host.is_dir()  # may be alive on its own machine
    assert cleanup_stale_temp(tmp_path, max_age_s=3600) == []  # and it was active recently
    for f in (other_host / ".owner.json", other_host):
        os.utime(f, (0, 0))
    assert cleanup_stale_temp(tmp_path, max_age_s=3600) == [other_host]
    assert os.listdir(tmp_path) == []
