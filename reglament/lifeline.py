"""No process outlives its parent: a child asks the kernel for a signal when its parent dies.

On Linux, prctl(PR_SET_PDEATHSIG) makes the kernel send the child a signal the moment the
thread that forked it ends, whatever ended it (SIGKILL and the OOM killer included). The
signal is SIGTERM, so a redis-server flushes its append-only file and a worker stops as
on a normal stop. Elsewhere these calls do nothing; `reglament run` still stops its
children itself, and a stale redis-server is stopped at the next start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1

# Loaded here, not in the child: a forked child should do as little as it can.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True) if sys.platform == "linux" else None


def die_with(parent: int, signum: int = signal.SIGTERM) -> None:
    """In a child of `parent` (a preexec_fn or an after-fork hook): receive `signum` when
    the parent dies; if it already has, go now."""
    if _libc is None:
        return
    _libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request was in place
        os.kill(os.getpid(), signum)


def preexec(signum: int = signal.SIGTERM):
    """A preexec_fn for subprocess.Popen tying the child to this process."""
    parent = os.getpid()
    return lambda: die_with(parent, signum)


def tie_forks() -> None:
    """Every process forked from now on by this one (RQ's scheduler child of a worker)
    dies with the process that forked it."""
    forking = []
    os.register_at_fork(before=lambda: forking.append(os.getpid()),
                        after_in_parent=forking.clear,
                        after_in_child=lambda: die_with(forking.pop()) if forking else None)
