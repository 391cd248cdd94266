"""Process hygiene: worker processes die with their parent, and runs stop cleanly on SIGINT and SIGTERM.

Every pool playmill starts (collection, curation, imports, RL evaluation, SubprocVecEnv, DataLoader workers)
runs :func:`die_with_parent` first thing in the child: on Linux the kernel then sends the child SIGKILL the
moment its parent exits, however it exits (kill -9 included; ``prctl(PR_SET_PDEATHSIG)`` through ctypes),
and the child exits at once if the parent was already gone before that call; elsewhere a watchdog thread
polls the parent. The child also ignores SIGINT: Ctrl-C in a terminal reaches the whole process group, and
it is the parent's job to stop its workers (:func:`kill_pool`) and say what it kept (:class:`Interrupted`).

Note on PR_SET_PDEATHSIG: the signal fires when the *thread* that started the child ends, so pools are
started from the thread that owns them for their whole life (the main thread here).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM. ``kept`` says what was finished and kept (and how to
    resume); ``signal_name`` is ``SIGINT`` or ``SIGTERM``. A subclass of KeyboardInterrupt, so code that
    cleans up on Ctrl-C cleans up on SIGTERM too."""

    def __init__(self, kept: str = "", signal_name: str = "SIGINT") -> None:
        super().__init__(kept)
        self.kept, self.signal_name = kept, signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, the shell's convention (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + int(getattr(signal, self.signal_name, signal.SIGINT))


def signal_name(exc: BaseException) -> str:
    """``SIGTERM`` when ``exc`` came from SIGTERM (see :func:`sigterm_interrupts`), else ``SIGINT``."""
    return getattr(exc, "signal_name", "SIGINT")


def interrupted(exc: BaseException, kept: str) -> Interrupted:
    """The :class:`Interrupted` to raise after cleaning up from ``exc`` (a KeyboardInterrupt)."""
    return Interrupted(kept, signal_name(exc))


@contextmanager
def reports_interrupt(kept: Callable[[], str]) -> Iterator[None]:
    """Turn a KeyboardInterrupt (Ctrl-C, or SIGTERM under :func:`sigterm_interrupts`) raised in the block into
    :class:`Interrupted` whose message is ``kept()`` (called after the block's own clean-up ran); an
    :class:`Interrupted` that already says what was kept passes unchanged."""
    try:
        yield
    except Interrupted as exc:
        if exc.kept:
            raise
        raise Interrupted(kept(), exc.signal_name) from None
    except KeyboardInterrupt as exc:
        raise interrupted(exc, kept()) from None


def checkpoints_kept(run: str, latest: Any, folder: Any, resume: str) -> str:
    """What an interrupted training ``run`` kept: its newest checkpoint ``latest`` (None: none yet in ``folder``)
    and ``resume``, how to continue."""
    where = f"the newest checkpoint, {latest}, is kept" if latest is not None else f"no checkpoint was written yet in {folder}"
    return f"{run} interrupted: {where}. {resume}"


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted("", "SIGTERM")


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block (main thread only), SIGTERM raises :class:`Interrupted` like Ctrl-C raises
    KeyboardInterrupt, so a run stopped by ``kill`` cleans up (stops its workers, removes temp files) and says
    what it kept. The previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------------------
# children


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _watch_parent(parent_pid: int) -> None:
    import time

    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(0.5)


def die_with_parent(parent_pid: int, *, ignore_sigint: bool = True) -> None:
    """Make this (child) process exit when its parent ``parent_pid`` exits, whatever the cause.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, then a check that the parent is still ``parent_pid`` (it may
    have died before the call: the child was re-parented and would never get the signal). Elsewhere: a daemon
    thread that polls the parent id. ``ignore_sigint``: leave Ctrl-C to the parent, which stops its workers.
    """
    prctl = _libc_prctl()
    if prctl is None or prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()
    if os.getppid() != parent_pid:
        os._exit(1)
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call_in_child(parent_pid: int, fn: Callable[..., Any] | None, *args: Any, **kwargs: Any) -> Any:
    die_with_parent(parent_pid)
    return fn(*args, **kwargs) if fn is not None else None


def child_of_this_process(fn: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A picklable callable that runs :func:`die_with_parent` for this process and then ``fn(*args)``: use it as
    a pool initializer, a DataLoader ``worker_init_fn``, or to wrap the env factories of a SubprocVecEnv."""
    return functools.partial(_call_in_child, os.getpid(), fn)


def process_pool(workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """A ``spawn`` process pool of ``workers`` processes that die with this one (and ignore SIGINT); then
    ``initializer(*initargs)`` in each. Stop it with :func:`kill_pool` on an interrupt."""
    import multiprocessing as mp

    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=child_of_this_process(initializer), initargs=initargs)


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: cancel what has not started, SIGKILL its worker processes (their unfinished work is
    discarded: every writer of playmill writes to a temp name and renames when done) and reap them."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    kill_processes(procs)
    pool.shutdown(wait=False, cancel_futures=True)


def kill_processes(procs: list[Any]) -> None:
    """SIGKILL the ``multiprocessing.Process`` objects ``procs``, then reap them (5 s each at most). For pools
    whose graceful close would wait on a worker: an interrupt may land between two replies of a SubprocVecEnv's
    ``step_wait``, and its ``close()`` then waits for a reply that never comes."""
    for p in procs:
        try:
            p.kill()
        except (OSError, ValueError, AttributeError):
            pass
    for p in procs:
        try:
            p.join(timeout=5)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass


@contextmanager
def running_pool(workers: int, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> Iterator[ProcessPoolExecutor]:
    """:func:`process_pool` as a context: shut down normally at the end of the block, killed (workers and
    all) when the block is left by an exception, KeyboardInterrupt and :class:`Interrupted` included."""
    pool = process_pool(workers, initializer, initargs)
    try:
        yield pool
    except BaseException:
        kill_pool(pool)
        raise
    pool.shutdown(wait=True)
