"""The collection loop: controller -> world -> episode writer, over worker processes.

A collection run is a list of :class:`EpisodeTask` (one per episode, with a deterministic id and seed) and
two factories: ``make_world(scene, params)`` builds a :class:`~capture.world.World` and
``make_controller(world)`` a :class:`~capture.world.Controller`. Both factories must be picklable (module-level
functions or ``functools.partial`` of them) because each worker process builds its own worlds.

Resumability: an episode id depends only on (source, scene, seed, index), an episode becomes visible only
when complete (the writer renames a temp folder into place), and :func:`collect` skips ids that already
exist and removes temp folders left by a killed run. So rerunning a killed collection finishes the missing
episodes and never duplicates or half-writes one.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import queue
import threading
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
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
    as ``(episode_id, reason)``; ``removed_temp`` lists temp folders of killed runs that were cleaned."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    removed_temp: list[Path] = field(default_factory=list)

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


# --- worker processes -------------------------------------------------------------------------------

_worker_state: dict[str, Any] = {}


def _worker_init(make_world: WorldFactory, make_controller: ControllerFactory, progress_q: Any,
                 encoder: Mapping[str, Any] | None = None) -> None:
    _worker_state.update(make_world=make_world, make_controller=make_controller, progress_q=progress_q,
                         worlds={}, encoder=dict(encoder or {}))


def _worker_world(scene: str, params: tuple) -> World:
    worlds: dict = _worker_state["worlds"]
    key = (scene, params)
    if key not in worlds:
        for w in worlds.values():  # one live renderer per process keeps memory flat
            w.close()
        worlds.clear()
        worlds[key] = _worker_state["make_world"](scene, dict(params))
    return worlds[key]


def _run_task(task: EpisodeTask, episodes_dir: str) -> tuple[str, str | None, str | None]:
    """Returns (episode_id, written path or None, error or None). Never raises: a failed episode is reported."""
    q = _worker_state.get("progress_q")
    pending = [0]

    def on_frame(n: int) -> None:
        pending[0] += n
        if q is not None and pending[0] >= 25:
            q.put(pending[0])
            pending[0] = 0

    try:
        world = _worker_world(task.scene, task.params)
        controller = _worker_state["make_controller"](world)
        path = record_episode(world, controller, Path(episodes_dir), task, on_frame, _worker_state.get("encoder"))
        return task.episode_id, str(path), None
    except Exception as exc:  # the run goes on; the reason is reported
        worlds = _worker_state.get("worlds", {})
        for w in worlds.values():  # a world that failed mid-episode may be in a bad state: rebuild it
            try:
                w.close()
            except Exception:
                pass
        worlds.clear()
        return task.episode_id, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    finally:
        if q is not None and pending[0]:
            q.put(pending[0])


def collect(
    tasks: Sequence[EpisodeTask],
    make_world: WorldFactory,
    make_controller: ControllerFactory,
    episodes_dir: str | os.PathLike,
    *,
    workers: int = 1,
    progress: bool = True,
    encoder: Mapping[str, Any] | None = None,
) -> CollectResult:
    """Record every task whose episode does not exist yet, with ``workers`` processes (1 = in-process).
    ``encoder``: H.264 options of the episode writer (``crf``, ``preset``).

    Shows a frame progress bar when ``progress``. Failures (a world that crashes, a bad frame) are reported in
    :attr:`CollectResult.failed` with their reason and the run continues with the other episodes.
    """
    from tqdm.auto import tqdm

    episodes_dir = Path(episodes_dir)
    episodes_dir.mkdir(parents=True, exist_ok=True)
    result = CollectResult(removed_temp=cleanup_stale_temp(episodes_dir))
    todo = []
    for task in tasks:
        if (episodes_dir / task.episode_id / "meta.json").is_file():
            result.skipped.append(task.episode_id)
        else:
            todo.append(task)
    total = sum(t.num_frames for t in todo)
    bar = tqdm(total=total, unit="frame", desc="collect", disable=not progress or not todo, smoothing=0.1)

    def record(outcome: tuple[str, str | None, str | None]) -> None:
        eid, path, err = outcome
        if path is not None:
            result.written.append(Path(path))
        else:
            log.error("episode %s failed: %s", eid, err)
            result.failed.append((eid, err or "unknown error"))

    try:
        if workers <= 1:
            _worker_init(make_world, make_controller, None, encoder)
            for task in todo:
                _worker_state["progress_q"] = _BarQueue(bar)
                record(_run_task(task, str(episodes_dir)))
            for w in _worker_state.get("worlds", {}).values():
                w.close()
            _worker_state.clear()
        else:
            ctx = mp.get_context("spawn")  # renderers are not fork-safe
            progress_q = ctx.Manager().Queue()
            stop = threading.Event()
            pump = threading.Thread(target=_pump_progress, args=(progress_q, bar, stop), daemon=True)
            pump.start()
            try:
                with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                         initargs=(make_world, make_controller, progress_q, encoder)) as pool:
                    futures = [pool.submit(_run_task, t, str(episodes_dir)) for t in todo]
                    for fut in as_completed(futures):
                        try:
                            record(fut.result())
                        except Exception as exc:  # a worker process died (killed, out of memory)
                            result.failed.append(("<worker>", f"{type(exc).__name__}: {exc}"))
            finally:
                stop.set()
                pump.join(timeout=5)
    finally:
        bar.close()
    result.written.sort()
    return result


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
