"""A read lock for django-q2's queues that a killed worker cannot keep (django-q2 issue 23).

The problem: ``multiprocessing.Queue.get`` reads its pipe while holding a semaphore
(``_rlock``), and an idle cluster always has one worker blocked inside that read. SIGKILL
that worker (the OOM killer, a container runtime, an operator) and the semaphore stays taken
for good: django-q2 starts a new worker, but it and every other one wait on the semaphore
(a futex) forever, no task runs, and SIGTERM no longer stops the cluster (its sentinel waits
for the workers). Reproduced here (tests/test_worker_stall.py) and reported upstream, still
open: https://github.com/django-q2/django-q2/issues/23.

The stand-in: a POSIX record lock (``fcntl.lockf``) on an unlinked temporary file. A record
lock belongs to the process that took it, is not inherited by fork, and the kernel drops it
when that process dies, however it dies. The sentinel creates the file with its queues,
before it forks the workers, the monitor and the pusher; each takes the lock for itself.
With a single such lock in a process, the kernel's deadlock detection cannot misfire.

These queues are the cluster's own, between its pusher, workers and monitor, whatever the
broker: with Redis (``VPNCTL_Q_REDIS_URL``) the pusher takes tasks from Redis instead of the
database and hands them on through the same ``task_queue``, so the stall and this lock are
the same (tests/test_worker_stall.py runs on the database's queue).

What it does not cover, and the sweeper's heartbeat does (``maintenance/liveness.py``): a
worker killed in the microseconds between reading a task's length and its body, or while it
holds one of django-q2's other locks (its timer, the queue's counter, the result queue's
writer: django-q2 issue 339). ``VPNCTL_Q_ROBUST_LOCK=false`` keeps django-q2's own lock.
"""

from __future__ import annotations

import errno
import functools
import multiprocessing
import tempfile
import threading
import time
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no record locks, django-q2's own lock stays
    fcntl = None  # type: ignore[assignment]

# Seconds between two tries when a caller gives a timeout (the kernel has no timed wait).
_POLL = 0.005


class ProcessLock:
    """A lock shared by forked processes, released by the kernel when its holder dies.

    It has the methods ``multiprocessing.Queue`` uses of its read lock: ``acquire(block,
    timeout)``, ``release()`` and the context manager.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="vpnctl-queue-lock-")
        # A record lock is the process's: two threads of one process both "get" it. This
        # keeps them to one at a time (django-q2 reads a queue from one thread per process).
        self._threads = threading.Lock()

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if not block:
            got = self._threads.acquire(False)
        elif timeout is None:
            got = self._threads.acquire()
        else:
            got = self._threads.acquire(True, max(timeout, 0.0))
        if not got:
            return False
        try:
            if block and timeout is None:
                fcntl.lockf(self._file, fcntl.LOCK_EX)
                return True
            deadline = time.monotonic() + (timeout or 0.0)
            while True:
                try:
                    fcntl.lockf(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if not block or time.monotonic() >= deadline:
                    self._threads.release()
                    return False
                time.sleep(_POLL)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        fcntl.lockf(self._file, fcntl.LOCK_UN)
        self._threads.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __reduce__(self) -> Any:
        # Only fork carries it (the file descriptor); django-q2 forks its processes.
        raise TypeError("a ProcessLock reaches other processes by fork only")


def supported() -> bool:
    return fcntl is not None and "fork" in multiprocessing.get_all_start_methods()


def install() -> bool:
    """Give every django-q2 sentinel started from now on the stand-in read locks.

    Patches ``Sentinel.start``, which runs in the sentinel process after it made its queues
    and before it forks anything. Idempotent; returns whether the lock is in use.
    """
    if not supported():
        return False
    # Imported here, not at the top: django_q.cluster needs the app registry ready, and
    # this module is imported by the app config (maintenance/apps.py).
    from django_q.cluster import Sentinel

    if getattr(Sentinel.start, "vpnctl_robust_lock", False):
        return True
    original = Sentinel.start

    @functools.wraps(original)
    def start(self: Sentinel) -> None:
        # The result queue has one reader (the monitor): a killed monitor would stall its
        # successor the same way.
        for queue in (self.task_queue, self.result_queue):
            queue._rlock = ProcessLock()
        original(self)

    start.vpnctl_robust_lock = True  # type: ignore[attr-defined]
    Sentinel.start = start
    return True
