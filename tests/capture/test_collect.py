"""The collection loop: deterministic ids, resume after a kill, failures reported, workers give equal output."""

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from capture.collect import collect, derive_seed, plan_episodes
from capture.episode import list_episodes, read_episode
from capture.rotations import quat_to_rotator
from capture.validate import validate_episode
from tests.capture.fakeworld import make_fake_world, make_scripted_controller

ROOT = Path(__file__).resolve().parents[2]


def test_plan_is_deterministic_and_interleaves_scenes():
    a = plan_episodes("sandbox", ["city", "park"], 3, 20, base_seed=1)
    b = plan_episodes("sandbox", ["city", "park"], 3, 20, base_seed=1)
    assert a == b
    assert [t.scene for t in a] == ["city", "park"] * 3
    assert len({t.episode_id for t in a}) == 6 and len({t.seed for t in a}) == 6
    assert a[0].seed == derive_seed(1, "city", 0)
    assert plan_episodes("sandbox", ["city"], 1, 20, base_seed=2)[0].seed != a[0].seed


def test_collect_writes_valid_episodes_whose_rows_are_the_inputs(tmp_path):
    tasks = plan_episodes("sandbox", ["fake"], 2, 30)
    res = collect(tasks, make_fake_world, make_scripted_controller, tmp_path, workers=1, progress=False)
    assert not res.failed and len(res.written) == 2 and res.frames_written == 60
    for ep_dir in res.written:
        assert validate_episode(ep_dir) == []
        ep = read_episode(ep_dir)
        df = ep.actions
        assert len(df) == 30 and df["frame"].tolist() == list(range(30))
        assert df.loc[0, ["key_w", "d_yaw"]].tolist() == [0, 0.0]  # row 0 is idle
        assert (df["key_w"].iloc[1:] == 1).all()
        assert df["key_space"].tolist() == [1 if i % 10 == 0 and i else 0 for i in range(30)]
        np.testing.assert_allclose(df["d_yaw"].iloc[1:], 0.5)
        # the yaw of the camera is exactly the sum of the recorded mouse deltas
        rot = np.array([quat_to_rotator(q) for q in ep.poses()[:, 3:]])
        np.testing.assert_allclose(rot[:, 1], np.cumsum(df["d_yaw"]), atol=1e-9)
        np.testing.assert_allclose(rot[:, 0], np.cumsum(df["d_pitch"]), atol=1e-9)


def test_rerun_skips_finished_and_failures_do_not_stop_the_run(tmp_path):
    tasks = plan_episodes("sandbox", ["fake"], 3, 12)
    bad_seed = tasks[1].seed
    crashing = functools.partial(make_fake_world, crash_seeds=[bad_seed], crash_at=5)
    res = collect(tasks, crashing, make_scripted_controller, tmp_path, workers=1, progress=False)
    assert [e for e, _ in res.failed] == [tasks[1].episode_id]
    assert "fake renderer crashed at frame 5" in res.failed[0][1]
    assert len(res.written) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in res.written)  # nothing partial
    res2 = collect(tasks, make_fake_world, make_scripted_controller, tmp_path, workers=1, progress=False)
    assert sorted(res2.skipped) == sorted(p.name for p in res.written)
    assert [p.name for p in res2.written] == [tasks[1].episode_id]
    assert len(list_episodes(tmp_path)) == 3


def test_two_workers_write_the_same_episodes_as_one(tmp_path):
    tasks = plan_episodes("sandbox", ["fake", "other"], 2, 15)
    one = collect(tasks, make_fake_world, make_scripted_controller, tmp_path / "one", workers=1, progress=False)
    two = collect(tasks, make_fake_world, make_scripted_controller, tmp_path / "two", workers=2, progress=False)
    assert [p.name for p in one.written] == [p.name for p in two.written]
    for a, b in zip(one.written, two.written):
        assert (a / "actions.csv").read_bytes() == (b / "actions.csv").read_bytes()
        assert validate_episode(b) == []


KILL_SCRIPT = textwrap.dedent("""
    import functools, sys
    from capture.collect import collect, plan_episodes
    from tests.capture.fakeworld import make_fake_world, make_scripted_controller
    tasks = plan_episodes("sandbox", ["fake"], 4, 400)
    slow = functools.partial(make_fake_world, step_sleep_s=0.003)  # about 1.2 s an episode
    collect(tasks, slow, make_scripted_controller, sys.argv[1], workers=1, progress=False)
""")


def test_killed_run_leaves_nothing_partial_and_a_rerun_completes(tmp_path):
    out = tmp_path / "eps"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], env=env, cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline and len(list_episodes(out) if out.exists() else []) < 1:
        time.sleep(0.05)
    time.sleep(0.4)  # into the middle of the second episode
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list_episodes(out)
    assert 1 <= len(done) < 4
    for ep in done:  # every visible episode is complete
        assert validate_episode(ep, check_video=True) == []
    tasks = plan_episodes("sandbox", ["fake"], 4, 400)
    res = collect(tasks, make_fake_world, make_scripted_controller, out, workers=1, progress=False)
    assert len(res.skipped) == len(done)
    assert sorted(p.name for p in out.iterdir()) == sorted(t.episode_id for t in tasks)
    lengths = [len(pd.read_csv(p / "actions.csv")) for p in list_episodes(out)]
    assert lengths == [400] * 4
