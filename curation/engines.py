"""The curation engines: where the episodes of a run are processed. Both run the same stage objects.

:class:`EpisodeWorker` holds the stage list (built once by the driver from the config and pickled to each
worker), sets it up once per worker process and curates one episode at a time
(:func:`curation.process.process_episode`). The engines only decide where the workers live:

- ``local``: a spawn process pool of ``workers`` processes (1 = in this process); the workers die with the
  driver (:mod:`capture.lifecycle`) and are killed on Ctrl-C / SIGTERM.
- ``ray``: ``workers`` Ray actors (each asks for the largest :class:`~curation.stage.Resources` of its
  stages), fed episode paths through an actor pool; an actor that dies is restarted and its episode retried.

Each engine returns the outcome dicts of the episodes in ``todo`` (any order); the driver packs the shards.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

from curation.config import CurateConfig
from curation.process import process_episode
from curation.stage import DatasetParams, Stage, max_resources
from curation.stages import PIPELINE, build_stages

log = logging.getLogger(__name__)


class EpisodeWorker:
    """The stages of a run inside one worker process: :meth:`setup` once, then :meth:`run` per episode."""

    def __init__(self, stages: list[Stage], work_root: str, cfg: CurateConfig, params: DatasetParams) -> None:
        self.stages, self.work_root, self.cfg, self.params = stages, str(work_root), cfg, params

    @classmethod
    def for_run(cls, cfg: CurateConfig, params: DatasetParams, work_root: Path,
                pipeline: Sequence[type[Stage]] | None = None) -> "EpisodeWorker":
        """The worker of a run: the stages of ``pipeline`` (default :data:`~curation.stages.PIPELINE`) for ``cfg``."""
        return cls(build_stages(cfg, PIPELINE if pipeline is None else pipeline), str(work_root), cfg, params)

    def setup(self) -> None:
        for st in self.stages:
            st.setup()

    def teardown(self) -> None:
        for st in self.stages:
            st.teardown()

    def run(self, ep: str) -> dict:
        """Curate one episode; never raises: an internal failure is an outcome with status ``failed``."""
        try:
            return process_episode(ep, self.work_root, self.cfg, self.params, self.stages).to_dict()
        except Exception as e:  # a bug, not bad input: reported, the run decides
            import traceback

            log.error("episode %s failed: %s\n%s", ep, e, traceback.format_exc())
            return failed_outcome(ep, e)


def failed_outcome(ep: str | Path, e: BaseException) -> dict:
    return {"episode_id": Path(ep).name, "source": "", "scene": "", "status": "failed",
            "error": f"{type(e).__name__}: {e}"}


# -- local -------------------------------------------------------------------------------------------------

_worker: EpisodeWorker | None = None


def _init_pool_worker(worker: EpisodeWorker) -> None:
    global _worker
    _worker = worker
    worker.setup()


def _run_in_pool_worker(ep: str) -> dict:
    assert _worker is not None
    return _worker.run(ep)


def run_local(todo: Sequence[Path], worker: EpisodeWorker, workers: int, on_done: Callable[[dict], None]) -> None:
    """Curate ``todo`` with ``workers`` processes (1, or a single episode: in this process)."""
    if workers <= 1 or len(todo) <= 1:
        worker.setup()
        try:
            for ep in todo:
                on_done(worker.run(str(ep)))
        finally:
            worker.teardown()
        return
    from concurrent.futures import as_completed

    from capture.lifecycle import running_pool

    with running_pool(min(workers, len(todo)), _init_pool_worker, (worker,)) as pool:
        futs = {pool.submit(_run_in_pool_worker, str(ep)): ep for ep in todo}
        for fut in as_completed(futs):
            try:
                on_done(fut.result())
            except Exception as e:  # a worker process died (killed, out of memory)
                on_done(failed_outcome(futs[fut], e))


# -- ray ---------------------------------------------------------------------------------------------------


def run_ray(todo: Sequence[Path], worker: EpisodeWorker, workers: int, on_done: Callable[[dict], None],
            address: str = "local") -> None:
    """Curate ``todo`` on ``workers`` Ray actors (each set up once, like a pool process). On a cluster, the
    episodes and shards folders must be on a file system every node mounts at the same path."""
    from capture.ray_engine import ray_session

    with ray_session(address, num_cpus=workers) as ray:
        from ray.util import ActorPool

        res = max_resources(worker.stages)
        actor_cls = ray.remote(num_cpus=res.cpus, num_gpus=res.gpus, max_restarts=2, max_task_retries=2)(_RayWorker)
        actors = [actor_cls.remote(worker) for _ in range(max(1, min(workers, len(todo))))]
        try:
            pool = ActorPool(actors)
            paths = [str(p) for p in todo]
            for out in pool.map_unordered(lambda a, p: a.run.remote(p), paths):
                on_done(out)
        finally:
            for a in actors:
                ray.kill(a)


class _RayWorker:
    """A Ray actor around an :class:`EpisodeWorker`: set up when the actor starts (and restarts)."""

    def __init__(self, worker: EpisodeWorker) -> None:
        self.worker = worker
        worker.setup()

    def run(self, ep: str) -> dict:
        return self.worker.run(ep)

