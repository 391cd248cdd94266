"""Ray for playmill's engines: joining or starting a cluster (:func:`ray_session`).

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
        ray.init(**kw)
    else:
        ray.init(address=address, **kw)
        log.info("joined the Ray cluster at %s: %s", address, ray.cluster_resources())
    try:
        yield ray
    finally:
        ray.shutdown()
