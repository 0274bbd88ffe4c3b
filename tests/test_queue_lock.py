"""The queue read lock a killed reader cannot keep (maintenance/queue_lock.py, django-q2 #23)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest
from django_q.cluster import Sentinel
from django_q.queues import Queue

from maintenance import queue_lock
from maintenance.queue_lock import ProcessLock

pytestmark = pytest.mark.skipif(not queue_lock.supported(), reason="needs fork and fcntl")

FORK = multiprocessing.get_context("fork")


def _read_one(queue: Queue, got: multiprocessing.Queue) -> None:
    got.put(queue.get())


def _hold(lock: ProcessLock, held: threading.Event) -> None:
    lock.acquire()
    held.set()
    time.sleep(60)


def killed_reader_then_another(lock_factory) -> object | None:
    """A reader blocks in get() holding the queue's read lock and is SIGKILLed; a second
    reader is started and an item put. Returns what the second reader got within 3 s."""
    queue = Queue()
    if lock_factory is not None:
        queue._rlock = lock_factory()
    got = FORK.Queue()
    first = FORK.Process(target=_read_one, args=(queue, got))
    first.start()
    time.sleep(0.3)  # inside read(), on the empty pipe
    os.kill(first.pid, signal.SIGKILL)
    first.join()
    second = FORK.Process(target=_read_one, args=(queue, got))
    second.start()
    queue.put("task")
    try:
        return got.get(timeout=3)
    except Exception:  # noqa: BLE001 - queue.Empty: nobody could read
        return None
    finally:
        second.kill()
        second.join()


def test_with_django_q2s_lock_a_killed_reader_blocks_every_later_one():
    """The bug itself, without a cluster: the semaphore stays taken by the dead process."""
    assert killed_reader_then_another(None) is None


def test_with_the_process_lock_the_next_reader_gets_the_task():
    assert killed_reader_then_another(ProcessLock) == "task"


def test_the_kernel_releases_the_lock_when_its_holder_dies():
    lock = ProcessLock()
    held = FORK.Event()
    holder = FORK.Process(target=_hold, args=(lock, held))
    holder.start()
    assert held.wait(10)

    assert lock.acquire(block=False) is False
    assert lock.acquire(True, 0.2) is False
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    assert lock.acquire(True, 2) is True
    lock.release()


def test_it_keeps_threads_of_one_process_to_one_at_a_time():
    lock = ProcessLock()
    order: list[str] = []
    with lock:
        thread = threading.Thread(target=lambda: (lock.acquire(), order.append("thread")))
        thread.start()
        time.sleep(0.1)
        order.append("main")
    thread.join(5)
    lock.release()
    assert order == ["main", "thread"]


def test_it_reaches_other_processes_by_fork_only():
    import pickle

    with pytest.raises(TypeError, match="by fork only"):
        pickle.dumps(ProcessLock())


def test_the_app_installs_it_on_django_q2s_sentinel(settings):
    assert settings.Q_ROBUST_LOCK is True
    assert getattr(Sentinel.start, "vpnctl_robust_lock", False)
    assert queue_lock.install() is True  # idempotent
    assert Sentinel.start.__wrapped__.__name__ == "start"
    assert not hasattr(Sentinel.start.__wrapped__, "vpnctl_robust_lock")
