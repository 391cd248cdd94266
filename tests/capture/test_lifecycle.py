"""capture.lifecycle: pool workers are set to die with their parent and leave Ctrl-C to it; SIGTERM interrupts
like Ctrl-C; interrupted runs say what they kept. (Killing real parents: tests/playmill/test_hygiene.py.)"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from capture.lifecycle import Interrupted, reports_interrupt, running_pool


def _worker_view(_=None) -> tuple[int, int, object]:
    """In a worker: its parent, its parent-death signal and its SIGINT handler."""
    import ctypes

    sig = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    return os.getppid(), sig.value, signal.getsignal(signal.SIGINT)


def test_pool_workers_get_sigkill_when_their_parent_dies_and_ignore_ctrl_c():
    with running_pool(2) as pool:
        views = list(pool.map(_worker_view, range(2)))
    for ppid, sig, sigint in views:
        assert ppid == os.getpid() and sig == signal.SIGKILL and sigint == signal.SIG_IGN


def test_a_killed_pool_leaves_no_worker_behind():
    import time

    from concurrent.futures import wait

    with pytest.raises(KeyboardInterrupt):
        with running_pool(2) as pool:
            futs = [pool.submit(time.sleep, 30) for _ in range(2)]
            pids = [p.pid for p in pool._processes.values()]
            raise KeyboardInterrupt  # as Ctrl-C would, while the workers are busy
    wait(futs, timeout=10)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_reports_interrupt_says_what_was_kept():
    with pytest.raises(Interrupted) as e:
        with reports_interrupt(lambda: "3 episodes kept"):
            raise KeyboardInterrupt
    assert (e.value.kept, e.value.signal_name, e.value.exit_code) == ("3 episodes kept", "SIGINT", 130)
    with pytest.raises(Interrupted) as e:  # an inner message that already says it wins
        with reports_interrupt(lambda: "outer"):
            raise Interrupted("inner", "SIGTERM")
    assert (e.value.kept, e.value.exit_code) == ("inner", 143)


def test_sigterm_raises_interrupted_inside_the_block_only():
    code = textwrap.dedent("""
        import os, signal, time
        from capture.lifecycle import Interrupted, sigterm_interrupts
        try:
            with sigterm_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        except Interrupted as e:
            print("caught", e.signal_name, e.exit_code)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "caught SIGTERM 143", out.stderr
