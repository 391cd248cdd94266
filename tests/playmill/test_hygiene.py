"""Process hygiene (issue 15): when the parent of collect, curate, train or rl dies (kill -9, SIGTERM, Ctrl-C),
its workers die with it; SIGTERM and Ctrl-C stop cleanly with a message saying what was kept; a rerun right
after succeeds."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from capture.episode import list_episodes
from capture.validate import validate_episode
from curation.shards import verify_shards
from tests.procs import descendants, reap_all, send, wait_for, wait_gone

ROOT = Path(__file__).resolve().parents[2]
GONE_S = 10.0  # a SIGKILLed parent's workers notice it (PR_SET_PDEATHSIG, parent check): allow for a loaded machine


def _start(args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "playmill", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _stop(proc: subprocess.Popen, how: str, expect_workers: int, gone_s: float = GONE_S) -> tuple[int, str]:
    """Signal ``proc`` (see tests.procs.send) once it has ``expect_workers`` children; check that every process
    it started is gone within ``gone_s``; returns its exit status and output."""
    wait_for(lambda: len([p for p in descendants(proc.pid)]) >= expect_workers, 120, "the workers", proc)
    tree = descendants(proc.pid)
    send(proc, how)
    try:
        proc.wait(timeout=60)
        left = wait_gone(tree, gone_s)
        assert not left, f"{len(left)} of {len(tree)} processes outlived their parent ({how})"
    finally:
        reap_all(tree)  # an orphan holds the output pipe open
    return proc.returncode, proc.stdout.read()


COLLECT = {"workdir": "run", "seed": 1, "stages": ["collect"],
           "collect": {"scenes": ["city", "park"], "episodes_per_scene": 1, "frames": 400, "width": 64, "height": 48,
                       "workers": 2, "controller": "wander"}}


@pytest.mark.parametrize("how", ["kill9", "term", "ctrl-c"])
def test_collect_workers_die_with_their_parent_and_a_rerun_completes(tmp_path, how):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(COLLECT))
    eps = tmp_path / "run" / "episodes"
    proc = _start(["collect", "p.yaml", "--no-progress"], tmp_path)
    wait_for(lambda: len(list(eps.glob(".tmp-*/video.mp4"))) >= 2, 120, "two workers recording", proc)
    rc, out = _stop(proc, how, 2)
    if how == "kill9":
        assert rc == -9
    else:
        assert rc == (143 if how == "term" else 130), out
        assert f"stopped by {'SIGTERM' if how == 'term' else 'SIGINT'}" in out and "collect interrupted:" in out
        assert "kept in" in out and "Traceback" not in out, out
        assert not list(eps.glob(".tmp-*")), "an interrupted run removes its unfinished episodes"
    done = len(list_episodes(eps))
    rerun = subprocess.run([sys.executable, "-m", "playmill", "collect", "p.yaml", "--no-progress"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{2 - done} episode(s), {done} already there, 0 failed" in rerun.stdout
    assert len(list_episodes(eps)) == 2 and not list(eps.glob(".tmp-*"))
    assert all(validate_episode(p) == [] for p in list_episodes(eps))


def test_curate_pool_workers_die_with_their_parent_and_a_rerun_completes(tmp_path):
    from tests.curation.helpers import make_fake_episodes

    make_fake_episodes(tmp_path / "run" / "episodes", n=2, frames=400, scenes=("fake", "other"))
    doc = {"workdir": "run", "stages": ["curate"],
           "curate": {"workers": 2, "clip": {"frames": 9, "stride": 9, "height": 32, "width": 64},
                      "consistency": {"enabled": False}}}  # synthetic videos: their labels are not checkable
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    work = tmp_path / "run" / "shards" / "default" / ".work"
    proc = _start(["curate", "p.yaml", "--no-progress"], tmp_path)
    wait_for(lambda: len(list(work.glob(".tmp-*"))) >= 2, 120, "two workers curating", proc)  # two episodes at once
    rc, out = _stop(proc, "term", 2)
    assert rc == 143 and "curate interrupted:" in out and "no manifest was written" in out, out
    rerun = subprocess.run([sys.executable, "-m", "playmill", "curate", "p.yaml", "--no-progress"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert verify_shards(tmp_path / "run" / "shards" / "default") == []
    # kill -9 this time: the pool workers go with the parent
    shutil.rmtree(tmp_path / "run" / "shards")
    proc = _start(["curate", "p.yaml", "--no-progress"], tmp_path)
    wait_for(lambda: len(list(work.glob(".tmp-*"))) >= 2, 120, "two workers curating", proc)  # two episodes at once
    assert _stop(proc, "kill9", 2)[0] == -9


@pytest.fixture(scope="module")
def tiny_training_inputs(tmp_path_factory):
    """Synthetic shards and an (untrained) tiny VAE, so that training starts without the VAE warm-up."""
    from model import WanVAE, get_config
    from model.bundle import save_module
    from tests.model.synthetic_world import make_clips, write_synthetic_shards

    d = tmp_path_factory.mktemp("train-inputs")
    clips = make_clips((0,), 1, ("idle", "right", "left", "forward"), num_frames=17, height=64, width=112)
    vae = WanVAE(get_config("tiny").vae)
    save_module(d / "vae.safetensors", vae, vae.cfg, {})
    return write_synthetic_shards(d / "synthetic", clips), d / "vae.safetensors"


def test_train_dataloader_workers_die_with_their_parent(tmp_path, tiny_training_inputs):
    shards, vae = tiny_training_inputs
    args = ["train", "--shards", str(shards), "--out", str(tmp_path / "base"), "--no-progress",
            "--set", "train.num_workers=2", "--set", f"train.vae_checkpoint={vae}", "--set", "train.max_steps=100000",
            "--set", "train.batch_size=2", "--set", "train.val_clips=1", "--set", "train.val_every=100000",
            "--set", "train.ckpt_every=1"]
    latest = tmp_path / "base" / "checkpoints" / "latest"
    proc = _start(args, tmp_path)
    wait_for(latest.is_file, 180, "a checkpoint (the DataLoader workers are running)", proc)
    rc, out = _stop(proc, "term", 2)
    assert rc == 143 and "train interrupted: the newest checkpoint" in out and "is kept" in out, out
    first = latest.read_text()
    proc = _start(args, tmp_path)  # resumes, then is killed
    wait_for(lambda: latest.read_text() != first, 180, "a checkpoint of the resumed run", proc)
    # torch's own watchdog stops orphaned DataLoader workers within 5 s; ours stops them at once
    assert _stop(proc, "kill9", 2, gone_s=3.0)[0] == -9


def test_rl_subproc_env_workers_die_with_their_parent(tmp_path):
    args = ["rl", "train", "--out", str(tmp_path / "rl"), "--envs", "2", "--vec-env", "subproc",
            "--timesteps", "1000000", "--checkpoint-every", "64", "--no-plot", "--no-progress"]
    ckpts = tmp_path / "rl" / "checkpoints"
    proc = _start(args, tmp_path)
    wait_for(lambda: any(ckpts.glob("ckpt_*.zip")), 180, "a checkpoint (the env workers are running)", proc)
    rc, out = _stop(proc, "term", 2)
    assert rc == 143 and "rl train interrupted: the newest checkpoint" in out and "--resume" in out, out
    proc = _start([*args, "--resume"], tmp_path)
    wait_for(lambda: (tmp_path / "rl" / "logs" / "sb3" / "run-2").is_dir(), 180, "the resumed run", proc)
    assert _stop(proc, "kill9", 2)[0] == -9
