"""Run by tests/model/test_distributed.py under torchrun (gloo, CPU): the jobs of a JSON file, in order, in one
process group (so the processes start once). Each job calls the library entry point every rank calls in a real
run; rank 0 writes the run folders the test reads. Jobs: ``train``, ``ode_pairs``, ``init``, ``dmd`` (configs and
folders as the library takes them), ``wrap`` (FSDP shard sizes per rank) and ``rank_zero`` (rank 0 prepares,
the others wait; an error on rank 0 reaches every rank).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/model/dist_worker.py jobs.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402


def run_job(job: dict, d) -> None:
    kind = job["kind"]
    if kind == "train":
        from model.train import get_train_config, train

        train(get_train_config("tiny", **job["config"]), job["shards"], job["out"], progress=False)
    elif kind == "ode_pairs":
        from model.distill import get_ode_pairs_config, make_ode_pairs

        make_ode_pairs(get_ode_pairs_config("tiny", **job["config"]), job["teacher"], job["shards"], job["out"],
                       progress=False)
    elif kind == "init":
        from model.distill import distill_init, get_distill_init_config

        distill_init(get_distill_init_config("tiny", **job["config"]), job["pairs"], job["out"], progress=False)
    elif kind == "dmd":
        from model.distill import distill_dmd, get_distill_dmd_config

        distill_dmd(get_distill_dmd_config("tiny", **job["config"]), job["teacher"], job["student_init"], job["out"],
                    progress=False)
    elif kind == "wrap":
        from model.configs import get_config
        from model.dit import WorldModelDiT
        from model.parallel import wrap

        dit = WorldModelDiT(get_config("tiny", "universal").dit)
        total = sum(p.numel() for p in dit.parameters())
        wrap(dit, d, "fsdp")
        local = sum(p.to_local().numel() for p in dit.parameters())
        Path(job["out"], f"wrap-rank{d.rank}.json").write_text(json.dumps({"local": local, "total": total}))
    elif kind == "rank_zero":
        from model.parallel import run_on_rank_zero

        marker = Path(job["out"]) / "prepared.txt"

        def prepare() -> str:
            time.sleep(1.0)  # the others must wait for this, not race past it
            marker.write_text(str(d.rank))
            return "done"

        got = run_on_rank_zero(prepare, "preparing the marker")
        seen = marker.read_text() if marker.is_file() else None
        try:
            run_on_rank_zero(lambda: (_ for _ in ()).throw(ValueError("no episodes in /nowhere")), "curating shards")
            failure = None
        except (RuntimeError, ValueError) as e:
            failure = f"{type(e).__name__}: {e}"
        Path(job["out"], f"rank_zero-rank{d.rank}.json").write_text(
            json.dumps({"returned": got, "seen": seen, "failure": failure}))
    else:
        raise ValueError(f"unknown job kind {kind!r}")


def main() -> None:
    from model.parallel import setup_distributed, shutdown_distributed

    torch.set_num_threads(1)
    d = setup_distributed()
    for job in json.loads(Path(sys.argv[1]).read_text()):
        run_job(job, d)
    shutdown_distributed()


if __name__ == "__main__":
    main()
