"""Ray for playmill's engines: joining or starting a cluster (:func:`ray_session`) and collection on Ray
(:func:`collect_on_ray`; curation's Ray engine is in :mod:`curation.engines`).

``address`` (pipeline.yaml ``ray.address``):

- ``local`` (default): a private Ray on this machine with the run's number of CPUs, shut down at the end;
- ``auto``: the cluster this machine belongs to (started with ``ray start``; ``RAY_ADDRESS`` names it too);
- anything else: a cluster address, ``<head-ip>:6379`` (from a cluster node) or ``ray://<head-ip>:10001``
  (Ray Client, from outside the cluster).

A Ray that is already initialised in this process is used as it is (and left running). On a cluster, every
path a task reads or writes (the episodes folder, the shards folder) must be on a file system all nodes
mount at the same path. Token authentication (``RAY_AUTH_MODE=token``): see the README, "Ray cluster".
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

log = logging.getLogger(__name__)

LOCAL = "local"
#: Where ``collect`` and ``curate`` run: ``local`` (a process pool on this machine) or ``ray`` (on ``ray.address``).
ENGINES: tuple[str, ...] = ("local", "ray")


def import_ray() -> Any:
    """``import ray`` with an error that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("engine 'ray' needs Ray: pip install 'playmill[ray]'") from e
    return ray


def check_address(address: Any) -> str | None:
    """The problem with a ``ray.address`` value, or None when it is usable."""
    if not isinstance(address, str) or not address.strip():
        return "local, auto, <head-ip>:<port> or ray://<head-ip>:10001"
    return None


@contextmanager
def ray_session(address: str = LOCAL, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray for one run (see the module doc); yields the ``ray`` module. ``num_cpus``: the CPUs of a ``local``
    Ray (ignored when joining a cluster, whose nodes declare their own)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\..*")
    kw: dict[str, Any] = dict(log_to_driver=False, configure_logging=False)
    if address == LOCAL:
        kw.update(num_cpus=max(1, int(num_cpus or os.cpu_count() or 1)), include_dashboard=False)
        ray.init(address="local", **kw)  # a new Ray, even when RAY_ADDRESS names a cluster
    else:
        try:
            ray.init(address=address, **kw)
        except ConnectionError as e:
            raise RuntimeError(
                f"cannot join the Ray cluster at ray.address {address!r}: {e}. Check that the cluster is up (`ray "
                "status` on a node), that the address is its head, and, when the cluster uses RAY_AUTH_MODE=token, "
                "that this machine sets RAY_AUTH_MODE=token and has the cluster's token (~/.ray/auth_token, "
                "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH); see the README, \"Ray cluster\"") from None
        log.info("joined the Ray cluster at %s: %s", address, ray.cluster_resources())
    try:
        yield ray
    finally:
        ray.shutdown()


# --------------------------------------------------------------------------------------------------------
# collection


def _is_worker_death(exc: BaseException) -> bool:
    """True for Ray's system failures (the worker process or its node died, the object was lost), which a
    rerun elsewhere can cure; False for an exception raised by the task itself."""
    from ray.exceptions import RayError, RayTaskError

    return isinstance(exc, RayError) and not isinstance(exc, RayTaskError)


class _Stream:
    """One collection stream on Ray: an actor (one CPU) that keeps its world between episodes, like a pool
    worker; each episode is one actor task."""

    def __init__(self, make_world, make_controller, encoder) -> None:
        self.make_world, self.make_controller, self.encoder = make_world, make_controller, encoder

    def record(self, task, episodes_dir: str):
        from capture.collect import record_task

        return record_task(task, episodes_dir, self.make_world, self.make_controller, self.encoder)

    def close(self) -> None:
        from capture.collect import close_worlds

        close_worlds()


def collect_on_ray(todo, factories, make_controller, episodes_dir, encoder, result, record, bar, address: str,
                   max_attempts: int) -> None:
    """Record ``todo`` as Ray actor tasks, one stream actor per world factory (``factories[i]`` builds the
    worlds of stream ``i``: an UnrealCV endpoint, or the sandbox), at most one episode in flight per stream,
    writing into ``episodes_dir`` (shared by every node). An episode whose actor (its worker process) or node
    dies is submitted again (``result.rerun``) to the restarted actor; the episode writer never replaces an
    episode, so an attempt that died after committing leaves exactly one copy, and the rerun reports it as
    written. The actors are killed at the end: their worlds (and UnrealCV connections) go with them."""
    from capture.collect import run_streams

    with ray_session(address, num_cpus=len(factories)) as ray:
        actor = ray.remote(num_cpus=1, max_restarts=max(0, max_attempts - 1), max_task_retries=0)(_Stream)
        streams = [actor.remote(f, make_controller, encoder) for f in factories]
        frames = {t.episode_id: t.num_frames for t in todo}

        def submit(task, stream):
            return streams[stream].record.remote(task, str(episodes_dir)).future()

        def on_done(outcome) -> None:
            record(outcome)
            bar.update(frames.get(outcome[0], 0))

        try:
            run_streams(todo, len(factories), submit, on_done, worker_died=_is_worker_death,
                        max_attempts=max_attempts, on_rerun=lambda eid, why: result.rerun.append((eid, why)))
            try:
                ray.get([s.close.remote() for s in streams], timeout=60)
            except Exception:  # a stream that cannot close cleanly is killed below anyway
                pass
        finally:
            for s in streams:  # interrupted or done: stop every stream, on every node
                ray.kill(s)
