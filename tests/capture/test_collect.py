"""The collection loop: deterministic ids, resume after a kill, failures reported, workers and engines give equal
output, a dead Ray worker's episode is rerun, overlapping writers leave one copy."""

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

from capture.collect import collect, derive_seed, plan_episodes, record_episode, record_task
from capture.episode import cleanup_stale_temp, list_episodes, read_episode
from capture.rotations import quat_to_rotator
from capture.validate import validate_episode
from tests.capture.fakeworld import FakeWorld, make_fake_world, make_scripted_controller

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


class _RacedWorld(FakeWorld):
    """A world whose episode is finished by another writer while it records it (a rerun that overlaps)."""

    def __init__(self, episodes_dir, task):
        super().__init__("fake", {})
        self.episodes_dir, self.task = episodes_dir, task

    def step(self, action):
        if self.i == 5:
            record_episode(FakeWorld("fake", {}), make_scripted_controller(None), self.episodes_dir, self.task)
        return super().step(action)


def test_an_attempt_whose_episode_another_writer_finished_reports_it_written_once(tmp_path):
    task = plan_episodes("sandbox", ["fake"], 1, 20)[0]
    eid, path, err = record_task(task, str(tmp_path), lambda scene, params: _RacedWorld(tmp_path, task),
                                 make_scripted_controller)
    assert (eid, err) == (task.episode_id, None) and Path(path) == tmp_path / task.episode_id
    assert [p.name for p in tmp_path.iterdir()] == [task.episode_id]  # one copy, no temp folder left
    assert validate_episode(tmp_path / task.episode_id) == []
    # a temp folder of a writer that can never commit (its episode is complete) is stale whoever owns it
    stale = tmp_path / f".tmp-{task.episode_id}-{os.getpid()}-abcd1234"
    stale.mkdir()
    assert cleanup_stale_temp(tmp_path) == [stale]
    assert record_task(task, str(tmp_path), make_fake_world, make_scripted_controller)[1] == path  # already there


def test_a_killed_ray_worker_has_its_episode_rerun_and_nothing_is_duplicated(tmp_path, ray_local):
    """Kill -9 the Ray worker recording an episode: the episode is run again on another worker, every episode
    ends up exactly once, byte for byte what the local engine writes, and no temp folder is left."""
    import threading

    tasks = plan_episodes("sandbox", ["fake", "other"], 2, 150)
    slow = functools.partial(make_fake_world, step_sleep_s=0.01)  # ~1.5 s an episode
    out = tmp_path / "ray"
    killed: list[tuple[str, int]] = []

    def kill_one_writer() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for p in out.glob(".tmp-*") if out.is_dir() else []:
                eid, pid = p.name[len(".tmp-"):].rsplit("-", 2)[:2]
                if (p / "video.mp4").exists():  # the writer is recording (not just starting)
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append((eid, int(pid)))
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_writer, daemon=True)
    killer.start()
    res = collect(tasks, slow, make_scripted_controller, out, workers=2, engine="ray", progress=False)
    killer.join()
    assert killed, "no Ray worker was seen recording"
    eid = killed[0][0]
    assert [e for e, _ in res.rerun] == [eid] and not res.failed
    assert sorted(p.name for p in out.iterdir()) == sorted(t.episode_id for t in tasks)  # once each, no temp
    local = collect(tasks, make_fake_world, make_scripted_controller, tmp_path / "local", workers=1, progress=False)
    for p in local.written:
        for name in ("video.mp4", "actions.csv"):
            assert (p / name).read_bytes() == (out / p.name / name).read_bytes(), (p.name, name)
        assert validate_episode(out / p.name, check_video=True) == []
