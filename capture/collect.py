"""The collection loop: controller -> world -> episode writer, over streams run by a local pool or Ray.

A collection run is a list of :class:`EpisodeTask` (one per episode, with a deterministic id and seed) and
two factories: ``make_world(scene, params)`` builds a :class:`~capture.world.World` and
``make_controller(world)`` a :class:`~capture.world.Controller`. Both factories must be picklable (module-level
functions or ``functools.partial`` of them) because each worker process builds its own worlds.

Streams: a run records at most one episode at a time per stream. By default there are ``workers`` streams
of ``make_world``; ``streams`` gives one world factory per stream instead (UnrealCV: each endpoint, as many
times as it has concurrent streams). Engines: ``local`` (this process, or a spawn pool whose workers die with
this process) or ``ray`` (one Ray actor per stream, one actor task per episode, on any node; an episode whose
worker or node dies is run again, up to ``max_attempts``).

Resumability and no duplicates: an episode id depends only on (source, scene, seed, index), an episode
becomes visible only when complete (the writer renames a temp folder into place, never over an existing
episode), and :func:`collect` skips ids that already exist and removes temp folders left by dead writers. So
rerunning a killed collection, or rerunning the episode of a dead worker, finishes the missing episodes and
never duplicates or half-writes one: an attempt that finds its episode already written reports ``exists``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import queue
import threading
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from capture.actions import FrameAction
from capture.episode import EpisodeWriter, cleanup_stale_temp, episode_id
from capture.world import Controller, World

log = logging.getLogger(__name__)

WorldFactory = Callable[[str, Mapping[str, Any]], World]
ControllerFactory = Callable[[World], Controller]


@dataclass(frozen=True)
class EpisodeTask:
    """One episode to record: ``params`` are per-episode world parameters (weather, densities, ...)."""

    episode_id: str
    source: str
    scene: str
    seed: int
    index: int
    num_frames: int
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass
class CollectResult:
    """What a collection run did: episode folders written, ids skipped because they existed, and failures
    as ``(episode_id, reason)``; ``removed_temp`` lists temp folders of dead writers that were cleaned;
    ``rerun`` the episodes run again because their worker died."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    removed_temp: list[Path] = field(default_factory=list)
    rerun: list[tuple[str, str]] = field(default_factory=list)  # (episode_id, why): its worker died, run again

    @property
    def frames_written(self) -> int:
        return sum(_frame_count(p) for p in self.written)


def _frame_count(path: Path) -> int:
    import json

    return int(json.loads((path / "meta.json").read_text())["frame_count"])


def derive_seed(base_seed: int, scene: str, index: int) -> int:
    """A stable 31-bit seed for episode ``index`` of ``scene`` (sha256, independent of Python's hash salt)."""
    digest = hashlib.sha256(f"{int(base_seed)}/{scene}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def plan_episodes(
    source: str,
    scenes: Sequence[str],
    episodes_per_scene: int,
    num_frames: int,
    base_seed: int = 0,
    params_for: Callable[[str, int], Mapping[str, Any]] | None = None,
) -> list[EpisodeTask]:
    """The deterministic task list: ``episodes_per_scene`` episodes of each scene, interleaved by index so that
    a partial run covers every scene. ``params_for(scene, seed)`` draws the per-episode world parameters."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    tasks = []
    for index in range(episodes_per_scene):
        for scene in scenes:
            seed = derive_seed(base_seed, scene, index)
            params = dict(params_for(scene, seed)) if params_for else {}
            tasks.append(EpisodeTask(episode_id(source, scene, seed, index), source, scene, seed, index,
                                     num_frames, tuple(sorted(params.items()))))
    return tasks


def record_episode(world: World, controller: Controller, episodes_dir: Path, task: EpisodeTask,
                   on_frame: Callable[[int], None] | None = None,
                   encoder: Mapping[str, Any] | None = None) -> Path:
    """Record one episode: reset world and controller with the task's seed, then ``num_frames - 1`` steps.

    Row 0 is frame 0 with the idle action; row ``i`` is the action that produced frame ``i``. The episode is
    written atomically; on any exception nothing is left behind. ``encoder``: H.264 options of the writer
    (``crf``, ``preset``).
    """
    obs = world.reset(task.seed)
    controller.reset(task.seed, obs)
    with EpisodeWriter(
        episodes_dir, task.episode_id, source=world.source, scene=world.scene, seed=task.seed, fps=world.fps,
        width=world.width, height=world.height, action_space=world.action_space,
        source_frame=world.source_frame, config=dict(world.config), extras=sorted(obs.extras),
        **dict(encoder or {}),
    ) as writer:
        writer.append(obs, FrameAction.idle())
        for _ in range(1, task.num_frames):
            action = controller.act(obs)
            obs = world.step(action)
            writer.append(obs, action)
            if on_frame is not None:
                on_frame(1)
        if on_frame is not None:
            on_frame(1)
        return writer.commit()


# --- in a worker ----------------------------------------------------------------------------------------

#: Per-process state of a worker: its world cache (one live world) and the progress queue.
_worker_state: dict[str, Any] = {"worlds": {}, "progress_q": None}

Outcome = tuple[str, "str | None", "str | None"]  # (episode_id, episode folder or None, error or None)


def _pool_init(progress_q: Any) -> None:
    _worker_state["progress_q"] = progress_q


def _world_for(make_world: WorldFactory, scene: str, params: tuple) -> World:
    """The world of ``(make_world, scene, params)``, reusing this process's live one when it matches."""
    worlds: dict = _worker_state["worlds"]
    try:  # factories that pickle alike build alike worlds (each stream's factory is a fresh copy in a worker)
        fkey: Any = pickle.dumps(make_world)
    except Exception:  # an in-process factory need not pickle
        fkey = id(make_world)
    key = (fkey, scene, params)
    if key not in worlds:
        close_worlds()  # one live renderer per process keeps memory flat
        worlds[key] = make_world(scene, dict(params))
    return worlds[key]


def close_worlds() -> None:
    """Close this process's cached worlds (a world that failed mid-episode may be in a bad state)."""
    worlds: dict = _worker_state["worlds"]
    for w in worlds.values():
        try:
            w.close()
        except Exception:
            pass
    worlds.clear()


def record_task(task: EpisodeTask, episodes_dir: str, make_world: WorldFactory, make_controller: ControllerFactory,
                encoder: Mapping[str, Any] | None = None) -> Outcome:
    """Record ``task`` in this process; never raises. Returns ``(episode_id, path, None)`` when written or
    already there (another attempt or run finished it first: episodes are never replaced), else
    ``(episode_id, None, reason)``."""
    q = _worker_state.get("progress_q")
    pending = [0]
    target = Path(episodes_dir) / task.episode_id

    def on_frame(n: int) -> None:
        pending[0] += n
        if q is not None and pending[0] >= 25:
            q.put(pending[0])
            pending[0] = 0

    try:
        if (target / "meta.json").is_file():
            return task.episode_id, str(target), None
        world = _world_for(make_world, task.scene, task.params)
        path = record_episode(world, make_controller(world), Path(episodes_dir), task, on_frame, encoder)
        return task.episode_id, str(path), None
    except FileExistsError:
        if (target / "meta.json").is_file():  # a concurrent attempt committed it first
            return task.episode_id, str(target), None
        return task.episode_id, None, f"FileExistsError: {target} exists but is not a complete episode"
    except Exception as exc:  # the run goes on; the reason is reported
        close_worlds()
        if (target / "meta.json").is_file():  # another attempt finished it meanwhile (and removed our temp folder)
            return task.episode_id, str(target), None
        return task.episode_id, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    finally:
        if q is not None and pending[0]:
            q.put(pending[0])


# --- the driver ---------------------------------------------------------------------------------------

ENGINES = ("local", "ray")


def collect(
    tasks: Sequence[EpisodeTask],
    make_world: WorldFactory,
    make_controller: ControllerFactory,
    episodes_dir: str | os.PathLike,
    *,
    workers: int = 1,
    progress: bool = True,
    encoder: Mapping[str, Any] | None = None,
    engine: str = "local",
    streams: Sequence[WorldFactory] | None = None,
    ray_address: str = "local",
    max_attempts: int = 3,
) -> CollectResult:
    """Record every task whose episode does not exist yet. ``encoder``: H.264 options of the episode writer
    (``crf``, ``preset``).

    ``workers`` streams of ``make_world`` record at once, or one stream per factory of ``streams``. ``engine``:
    ``local`` (1 stream: in this process; more: a spawn pool whose workers die with this process) or ``ray``
    (episodes as Ray tasks on the cluster ``ray_address``, see :func:`capture.ray_engine.ray_session`;
    ``episodes_dir`` must then be on a file system every node mounts at the same path). An episode whose Ray
    worker or node dies is run again (up to ``max_attempts`` times, listed in :attr:`CollectResult.rerun`).

    Shows a frame progress bar when ``progress``. Failures (a world that crashes, a bad frame) are reported in
    :attr:`CollectResult.failed` with their reason and the run continues with the other episodes. Ctrl-C /
    SIGTERM stop the workers, discard the unfinished episodes and raise :class:`capture.lifecycle.Interrupted`
    saying what was kept.
    """
    from tqdm.auto import tqdm

    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    episodes_dir = Path(episodes_dir)
    episodes_dir.mkdir(parents=True, exist_ok=True)
    result = CollectResult(removed_temp=cleanup_stale_temp(episodes_dir))
    todo = []
    for task in tasks:
        if (episodes_dir / task.episode_id / "meta.json").is_file():
            result.skipped.append(task.episode_id)
        else:
            todo.append(task)
    factories = list(streams) if streams else [make_world] * max(1, int(workers))
    bar = tqdm(total=sum(t.num_frames for t in todo), unit="frame", desc="collect", disable=not progress or not todo,
               smoothing=0.1)

    def record(outcome: Outcome) -> None:
        eid, path, err = outcome
        if path is not None:
            result.written.append(Path(path))
        else:
            log.error("episode %s failed: %s", eid, err)
            result.failed.append((eid, err or "unknown error"))

    try:
        if engine == "ray":
            from capture.ray_engine import collect_on_ray

            collect_on_ray(todo, factories, make_controller, episodes_dir, encoder, result, record, bar,
                           ray_address, max_attempts)
        elif len(factories) <= 1 or len(todo) <= 1:
            _worker_state["progress_q"] = _BarQueue(bar)
            try:
                for task in todo:
                    record(record_task(task, str(episodes_dir), factories[0], make_controller, encoder))
            finally:
                _worker_state["progress_q"] = None
                close_worlds()
        else:
            _collect_pool(todo, factories, make_controller, episodes_dir, encoder, record, bar)
    except KeyboardInterrupt as exc:
        from capture.lifecycle import interrupted

        result.removed_temp += cleanup_stale_temp(episodes_dir)
        raise interrupted(exc, f"collect interrupted: {len(result.written)} episode(s) recorded in this run and "
                               f"{len(result.skipped)} from earlier runs are kept in {episodes_dir}; unfinished "
                               "episodes were discarded. Rerun the same command to record the rest.") from None
    finally:
        bar.close()
    result.removed_temp += cleanup_stale_temp(episodes_dir)  # writers that died during the run
    result.written.sort()
    return result


def run_streams(todo: Sequence[EpisodeTask], n_streams: int, submit: Callable[[EpisodeTask, int], Future],
                record: Callable[[Outcome], None], *, worker_died: Callable[[BaseException], bool] = lambda e: False,
                max_attempts: int = 1, on_rerun: Callable[[str, str], None] | None = None) -> None:
    """Keep one episode in flight on each of ``n_streams`` streams (``submit(task, stream) -> Future``) until
    ``todo`` is done, handing each outcome to ``record``. A future that fails because its worker died
    (``worker_died(exc)``) is submitted again (reported to ``on_rerun``) until it has run ``max_attempts``
    times; any other failure is recorded as the episode's failure. Left by an exception (Ctrl-C included),
    the futures not started are cancelled (the caller stops the workers)."""
    pending, attempts = deque(todo), {t.episode_id: 0 for t in todo}
    free, inflight = list(range(n_streams)), {}
    try:
        _run_streams(pending, attempts, free, inflight, submit, record, worker_died, max_attempts, on_rerun)
    except BaseException:
        for fut in inflight:
            fut.cancel()
        raise


def _run_streams(pending, attempts, free, inflight, submit, record, worker_died, max_attempts, on_rerun) -> None:
    while pending or inflight:
        while pending and free:
            stream, task = free.pop(0), pending.popleft()
            attempts[task.episode_id] += 1
            inflight[submit(task, stream)] = (task, stream)
        done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
        for fut in done:
            task, stream = inflight.pop(fut)
            free.append(stream)
            try:
                record(fut.result())
            except Exception as exc:
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if worker_died(exc) and attempts[task.episode_id] < max_attempts:
                    log.warning("episode %s: its worker died (%s); running it again", task.episode_id, why)
                    if on_rerun is not None:
                        on_rerun(task.episode_id, why)
                    pending.appendleft(task)
                else:
                    record((task.episode_id, None, f"worker process failed: {why}"))


def _collect_pool(todo, factories, make_controller, episodes_dir: Path, encoder, record, bar) -> None:
    """Local engine, several streams: a spawn pool (workers die with this process), one stream per worker."""
    import multiprocessing as mp
    from multiprocessing.managers import SyncManager

    from capture.lifecycle import child_of_this_process, running_pool

    manager = SyncManager(ctx=mp.get_context("spawn"))  # a queue proxy: a killed worker cannot jam it
    manager.start(child_of_this_process())
    stop = threading.Event()
    try:
        progress_q = manager.Queue()
        pump = threading.Thread(target=_pump_progress, args=(progress_q, bar, stop), daemon=True)
        pump.start()
        try:
            with running_pool(len(factories), _pool_init, (progress_q,)) as pool:
                def submit(task: EpisodeTask, stream: int) -> Future:
                    try:
                        return pool.submit(record_task, task, str(episodes_dir), factories[stream], make_controller,
                                           encoder)
                    except RuntimeError as exc:  # BrokenProcessPool: a worker died, the pool is gone
                        fut: Future = Future()
                        fut.set_exception(exc)
                        return fut

                run_streams(todo, len(factories), submit, record)
        finally:
            stop.set()
            pump.join(timeout=5)
    finally:
        manager.shutdown()


class _BarQueue:
    """Queue-like adapter so the in-process path reports progress the same way as workers."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def put(self, n: int) -> None:
        self.bar.update(n)


def _pump_progress(q: Any, bar: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            bar.update(q.get(timeout=0.2))
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
    while True:  # drain what is left
        try:
            bar.update(q.get_nowait())
        except Exception:
            return
