"""Training on several processes: 2 processes under torchrun (gloo, CPU) train what 1 process trains.

One torchrun launch (tests/model/dist_worker.py, 2 processes) runs every multi-process job of this module; the
1-process references run here, first. With the same global batch (1 process x 4 clips = 2 processes x 2), the
data and every random draw are the same (model.train.ClipBatches / sample_generators), so the runs differ only
by the order of float32 sums (gradients all-reduced or reduce-scattered instead of summed in one batch).

Tolerances (measured: losses agree to ~1e-7 relative, weights to ~1e-6 absolute after 6 AdamW steps):
losses, validation losses and gradient norms rtol 1e-5; weights, EMA and AdamW moments atol 1e-5.
bf16 FSDP with activation checkpointing is compared with fp32 at rtol 1e-2 (measured 2e-4).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.bundle import load_bundle, read_meta, read_tensors
from model.distill import (
    distill_dmd,
    distill_init,
    get_distill_dmd_config,
    get_distill_init_config,
    get_ode_pairs_config,
    make_ode_pairs,
)
from model.train import get_train_config, train
from tests.model.conftest import TRAIN_FRAMES
from tests.model.synthetic_world import make_clips, write_synthetic_shards

ROOT = Path(__file__).resolve().parents[2]
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
BF16_RTOL = 1e-2

INIT = dict(max_steps=4, ckpt_every=2, log_every=1, val_every=2, val_pairs=2, keep_last=10)
DMD = dict(max_steps=4, critic_per_gen=2, log_every=1, ckpt_every=2, keep_last=10)
PAIRS = dict(num_pairs=6, teacher_steps=6, pairs_per_part=2, batch_size=2)


def _train_cfg(run, **kw) -> dict:
    base = dict(vae_checkpoint=str(run.vae_checkpoint), num_frames=TRAIN_FRAMES, max_steps=6, ckpt_every=3,
                log_every=1, val_every=3, val_clips=2, warmup_steps=2, keep_last=10)
    return {**base, **kw}


def _cut_at(run_dir: Path, dst: Path, step: int) -> Path:
    """A copy of a run folder as if it had been stopped after checkpoint ``step``."""
    shutil.copytree(run_dir, dst)
    for ck in (dst / "checkpoints").glob("step-*"):
        if int(ck.name.split("-")[1]) > step:
            shutil.rmtree(ck)
    (dst / "checkpoints" / "latest").write_text(f"step-{step:06d}")
    return dst


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def _assert_same_log(got: list[dict], ref: list[dict], keys: tuple[str, ...], rtol: float = LOSS_RTOL) -> None:
    assert [r["step"] for r in got] == [r["step"] for r in ref]
    for g, r in zip(got, ref):
        for k in keys:
            if r.get(k) is not None:
                np.testing.assert_allclose(g[k], r[k], rtol=rtol, err_msg=f"step {r['step']} {k}")


def _assert_same_tensors(a_file: Path, b_file: Path, atol: float = WEIGHT_ATOL) -> None:
    a, b = read_tensors(a_file), read_tensors(b_file)
    assert a.keys() == b.keys(), a_file.name
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=f"{b_file}: {k}")


@pytest.fixture(scope="module")
def runs(trained_run, tmp_path_factory):
    """1-process references here, then one torchrun launch of 2 processes for the rest."""
    root = tmp_path_factory.mktemp("dist")
    clips = make_clips((5,), 1, ("idle", "right", "left", "forward"), num_frames=17, height=64, width=112)
    shards = write_synthetic_shards(root / "shards", clips)
    teacher = trained_run.out_dir
    ref = train(get_train_config("tiny", **_train_cfg(trained_run, batch_size=4)), shards, root / "ref",
                progress=False)
    cut = _cut_at(root / "ref", root / "ref-cut", 3)
    make_ode_pairs(get_ode_pairs_config("tiny", **PAIRS), teacher, shards, root / "pairs-1", progress=False)
    distill_init(get_distill_init_config("tiny", batch_size=2, **INIT), root / "pairs-1", root / "init-1",
                 progress=False)
    distill_dmd(get_distill_dmd_config("tiny", batch_size=2, **DMD), teacher, root / "init-1", root / "dmd-1",
                progress=False)

    two = dict(batch_size=2)
    jobs = [
        {"kind": "rank_zero", "out": str(root)},
        {"kind": "wrap", "out": str(root)},
        {"kind": "train", "config": _train_cfg(trained_run, **two), "shards": str(shards), "out": str(root / "ddp")},
        {"kind": "train", "config": _train_cfg(trained_run, parallel="fsdp", **two), "shards": str(shards),
         "out": str(root / "fsdp")},
        {"kind": "train", "config": _train_cfg(trained_run, parallel="fsdp", precision="bf16",
                                               gradient_checkpointing=True, **two),
         "shards": str(shards), "out": str(root / "fsdp-bf16")},
        # resume the 1-process run's step-3 checkpoint on 2 processes, sharded
        {"kind": "train", "config": _train_cfg(trained_run, parallel="fsdp", **two), "shards": str(shards),
         "out": str(cut)},
        {"kind": "ode_pairs", "config": PAIRS, "teacher": str(teacher), "shards": str(shards),
         "out": str(root / "pairs-2")},
    ]
    for p in ("ddp", "fsdp"):
        jobs.append({"kind": "init", "config": dict(INIT, batch_size=1, parallel=p), "pairs": str(root / "pairs-1"),
                     "out": str(root / f"init-{p}")})
        jobs.append({"kind": "dmd", "config": dict(DMD, batch_size=1, parallel=p), "teacher": str(teacher),
                     "student_init": str(root / "init-1"), "out": str(root / f"dmd-{p}")})
    (root / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "tests" / "model" / "dist_worker.py"), str(root / "jobs.json")],
                          capture_output=True, text=True, timeout=420, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return root, ref


def test_ddp_and_fsdp_train_what_one_process_trains(runs):
    root, ref = runs
    ref_log = _log(root / "ref")
    for mode in ("ddp", "fsdp"):
        _assert_same_log(_log(root / mode), ref_log, ("loss", "val_loss", "grad_norm"))
        for name in ("dit.safetensors", "dit_ema.safetensors", "optimizer.safetensors"):
            _assert_same_tensors(ref.checkpoint / name, root / mode / "checkpoints" / "step-000006" / name)
        # the files are the usual full-weight safetensors: sampling loads them, the metadata says how they were made
        meta = read_meta(root / mode / "checkpoints" / "step-000006" / "dit.safetensors")
        assert meta["train"]["parallel"] == mode
        state = json.loads((root / mode / "checkpoints" / "step-000006" / "state.json").read_text())
        assert state["global_batch"] == 4 and state["world_size"] == 2
        assert load_bundle(root / mode).dit is not None
    # bf16 (weights gathered in bf16, gradients reduced in fp32, autocast) with activation checkpointing: the
    # same run up to bf16 rounding
    bf16 = _log(root / "fsdp-bf16")
    _assert_same_log(bf16, ref_log, ("loss", "val_loss"), rtol=BF16_RTOL)
    assert bf16[-1]["loss"] != ref_log[-1]["loss"]  # it did compute in bf16


def test_fsdp_shards_parameters_over_the_ranks(runs):
    root, _ = runs
    reports = [json.loads((root / f"wrap-rank{r}.json").read_text()) for r in (0, 1)]
    total = reports[0]["total"]
    assert sum(r["local"] for r in reports) == total  # every element once, on one rank
    assert all(r["local"] < 0.55 * total for r in reports)


def test_resume_on_another_number_of_processes(runs, trained_run, tmp_path):
    root, ref = runs
    # 1 process -> 2 processes (FSDP): the resumed run ends where the uninterrupted one did
    cut = root / "ref-cut"
    assert json.loads((cut / "checkpoints" / "step-000006" / "state.json").read_text())["world_size"] == 2
    for name in ("dit.safetensors", "dit_ema.safetensors", "optimizer.safetensors"):
        _assert_same_tensors(ref.checkpoint / name, cut / "checkpoints" / "step-000006" / name)
    # 2 processes (FSDP) -> 1 process, the same global batch
    two = _cut_at(root / "fsdp", tmp_path / "two", 3)
    shards = root / "shards"
    res = train(get_train_config("tiny", **_train_cfg(trained_run, batch_size=4)), shards, two, progress=False)
    assert res.resumed_from == 3 and res.steps == 6
    for name in ("dit.safetensors", "dit_ema.safetensors", "optimizer.safetensors"):
        _assert_same_tensors(ref.checkpoint / name, res.checkpoint / name)
    _assert_same_log(_log(two)[-3:], _log(root / "ref")[-3:], ("loss", "val_loss"))
    # another global batch is refused, with the settings that would keep it
    again = _cut_at(root / "fsdp", tmp_path / "again", 3)
    with pytest.raises(ValueError, match=r"global batch .* was 4, now 2 x 1 x 1 = 2; on 1 process\(es\) set "
                                         r"train.batch_size=4 or train.grad_accum=2"):
        train(get_train_config("tiny", **_train_cfg(trained_run, batch_size=2)), shards, again, progress=False)
    # ... and grad_accum=2 keeps it: the same run again
    res = train(get_train_config("tiny", **_train_cfg(trained_run, batch_size=2, grad_accum=2)), shards, again,
                progress=False)
    _assert_same_tensors(ref.checkpoint / "dit.safetensors", res.checkpoint / "dit.safetensors")


def test_ode_pairs_split_over_ranks_are_the_same_bytes(runs):
    root, _ = runs
    one, two = root / "pairs-1", root / "pairs-2"
    parts = sorted(p.name for p in one.glob("part-*.parquet"))
    assert len(parts) == 3 and parts == sorted(p.name for p in two.glob("part-*.parquet"))
    for name in parts:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    m1, m2 = (json.loads((d / "manifest.json").read_text()) for d in (one, two))
    assert m1["parts"] == m2["parts"] and m1["key"] == m2["key"]


def test_student_init_and_dmd_under_ddp_and_fsdp(runs):
    root, _ = runs
    init_ref, dmd_ref = _log(root / "init-1"), _log(root / "dmd-1")
    last = "step-000004"
    for mode in ("ddp", "fsdp"):
        _assert_same_log(_log(root / f"init-{mode}"), init_ref, ("loss", "val_loss", "grad_norm"))
        _assert_same_log(_log(root / f"dmd-{mode}"), dmd_ref,
                         ("critic_loss", "gen_loss", "score_gap", "dmd_grad_norm", "gen_grad_norm"))
        for stage, files in (("init", ("dit.safetensors", "dit_ema.safetensors", "optimizer.safetensors")),
                             ("dmd", ("dit.safetensors", "optimizer.safetensors", "critic.safetensors",
                                      "critic_optimizer.safetensors"))):
            for name in files:
                _assert_same_tensors(root / f"{stage}-1" / "checkpoints" / last / name,
                                     root / f"{stage}-{mode}" / "checkpoints" / last / name)
        assert load_bundle(root / f"dmd-{mode}").run["stage"] == "dmd"


def test_rank_zero_prepares_while_the_others_wait(runs):
    root, _ = runs
    r0, r1 = (json.loads((root / f"rank_zero-rank{r}.json").read_text()) for r in (0, 1))
    assert r0["returned"] == "done" and r1["returned"] is None
    assert r0["seen"] == r1["seen"] == "0"  # rank 1 went on only once rank 0 had written the marker
    assert r0["failure"] == "ValueError: no episodes in /nowhere"
    assert r1["failure"] == "RuntimeError: rank 0 failed while curating shards: ValueError: no episodes in /nowhere"


def test_slurm_script_launches_torchrun_with_a_rendezvous(tmp_path):
    """scripts/train.sbatch (also quoted in model/TRAINING.md) under stub scontrol / srun: it starts one torchrun
    per node whose arguments torchrun's own parser accepts, with the job's nodes and a c10d rendezvous on the
    first node, running `playmill train` sharded."""
    from torch.distributed.run import get_args_parser

    script = (ROOT / "scripts" / "train.sbatch").read_text()
    assert script in (ROOT / "model" / "TRAINING.md").read_text()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\nprintf 'gpu-a17\\ngpu-a18\\n'\n")
    (bin_dir / "srun").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "$SRUN_ARGS"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-a[17-18]",
           "SLURM_NNODES": "2", "SLURM_JOB_ID": "4242", "SRUN_ARGS": str(tmp_path / "args")}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "train.sbatch"), "--set", "train.max_steps=10"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "args").read_text().splitlines()
    assert argv[0] == "--kill-on-bad-exit=1" and argv[1].endswith("torchrun")
    args = get_args_parser().parse_args(argv[2:])
    assert (args.nnodes, args.nproc_per_node, args.rdzv_backend) == ("2", "8", "c10d")
    assert args.rdzv_endpoint == "gpu-a17:29500" and args.rdzv_id == "4242" and args.module
    assert [args.training_script, *args.training_script_args] == [
        "playmill", "train", "pipeline.yaml", "--set", "train.parallel=fsdp", "--set", "train.max_steps=10"]
    from playmill.cli import build_parser

    parsed = build_parser().parse_args(args.training_script_args)
    assert parsed.verb == "train" and parsed.config == Path("pipeline.yaml")
    assert parsed.overrides == ["train.parallel=fsdp", "train.max_steps=10"]
