"""Process-tree helpers for the tests that kill a parent and check that its workers died with it (Linux /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time in clock ticks) of ``pid``, or None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """Every live descendant of ``pid``: ``{pid: start time}`` (the start time tells a reused pid apart)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None and st[1] != "Z":
                children.setdefault(st[0], []).append(int(d.name))
                starts[int(d.name)] = st[2]
    out, todo = {}, [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out[c] = starts[c]
                todo.append(c)
    return out


def still_alive(procs: dict[int, int]) -> list[int]:
    """The processes of ``procs`` (from :func:`descendants`) that are still running (zombies count as gone)."""
    alive = []
    for pid, start in procs.items():
        st = _stat(pid)
        if st is not None and st[1] != "Z" and st[2] == start:
            alive.append(pid)
    return alive


def wait_gone(procs: dict[int, int], timeout_s: float) -> list[int]:
    """Wait until every process of ``procs`` is gone; returns those still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = still_alive(procs)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def wait_for(cond, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll ``cond()`` until true; fail with ``what`` (and the process's output if it ended) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the process ended (status {proc.returncode}) before {what}:\n{out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def send(proc: subprocess.Popen, how: str) -> None:
    """``kill9`` / ``term``: that signal to ``proc``; ``ctrl-c``: SIGINT to its whole process group, as a
    terminal does (start ``proc`` with ``start_new_session=True``)."""
    if how == "kill9":
        proc.send_signal(signal.SIGKILL)
    elif how == "term":
        proc.send_signal(signal.SIGTERM)
    elif how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        raise ValueError(how)


def reap_all(procs: dict[int, int]) -> None:
    """Last resort after a failed check: SIGKILL what is left of ``procs`` (processes this test started)."""
    for pid in still_alive(procs):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
