"""Is the worker cluster running tasks? Seen from outside it, through the database.

django-q2's own status comes from its sentinel process, which goes on reporting "idle"
while every worker is stuck (django-q2 issue 23, ``maintenance/queue_lock.py``). So the
proof is work done: each sweeper run (a schedule, every minute) starts with ``beat()``,
and the worker is *not heard of* once the last beat is older than
``VPNCTL_WORKER_STALE_SECONDS``. The age of the oldest task waiting in django-q2's queue
says how far behind it is: a table of the database with the ORM broker, a list in Redis with
``VPNCTL_Q_REDIS_URL`` (a Redis that cannot be reached is reported, not raised: no task runs
then). ``/healthz/``, ``manage.py check_worker`` and the pages' banner all read ``state()``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.signing import BadSignature
from django.db.models import Count, Min
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from .models import WorkerHeartbeat


@dataclass(frozen=True)
class WorkerState:
    """What is known of the worker at ``now``; ages in whole seconds."""

    now: datetime
    stale_after: int
    heartbeat_at: datetime | None
    heartbeat_age: int | None
    worker: str
    queued: int | None  # tasks waiting in the queue (None: not asked, or unknown)
    oldest_queued_age: int | None
    queue_error: str = ""  # the Redis broker could not be read: no worker gets a task

    @property
    def heard_of(self) -> bool:
        return self.heartbeat_age is not None and self.heartbeat_age <= self.stale_after

    @property
    def ok(self) -> bool:
        return self.heard_of and not self.queue_error

    @property
    def reason(self) -> str:
        """The state in a sentence, for an operator (logs, monitors, the command's line)."""
        if self.heartbeat_age is None:
            said = "no sweeper run recorded yet: is `manage.py qcluster` running?"
        elif self.heard_of:
            said = f"the sweeper last ran {self.heartbeat_age} s ago"
        else:
            said = (
                f"no sweeper run for {self.heartbeat_age} s (more than {self.stale_after} s): "
                "the worker is stopped or stuck"
            )
        if self.queue_error:
            said += f"; the task queue (Redis) cannot be read: {self.queue_error}"
        elif self.oldest_queued_age is not None:
            said += f"; {self.queued} task(s) waiting, the oldest for {self.oldest_queued_age} s"
        elif self.queued == 0:
            said += "; no task waiting"
        return said

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "heartbeat_at": self.heartbeat_at.isoformat() if self.heartbeat_at else None,
            "heartbeat_age_seconds": self.heartbeat_age,
            "stale_after_seconds": self.stale_after,
            "worker": self.worker,
            "queued_tasks": self.queued,
            "oldest_queued_task_age_seconds": self.oldest_queued_age,
            "queue": "redis" if Conf.REDIS and not Conf.ORM else "database",
            "queue_error": self.queue_error or None,
        }


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(now: datetime) -> None:
    """Record that this worker process is running tasks (the sweeper calls it)."""
    WorkerHeartbeat.beat(now, worker_name())


def _age(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else max(0, int((now - then).total_seconds()))


def state(now: datetime | None = None, *, queue: bool = True) -> WorkerState:
    """The worker's state: one query for the heartbeat, one for the queue (``queue=True``).

    A task is waiting when its ``lock`` has passed: the ORM broker sets it to the time of
    enqueueing, and to now + ``retry`` when a cluster takes the task (it comes back after
    that if nobody acknowledged it). Its age is counted from that moment.
    """
    now = now or timezone.now()
    heartbeat = WorkerHeartbeat.last()
    queued = oldest = None
    queue_error = ""
    if queue and Conf.ORM:
        waiting = OrmQ.objects.using(Conf.ORM).filter(key=Conf.CLUSTER_NAME, lock__lte=now)
        figures = waiting.aggregate(queued=Count("pk"), oldest=Min("lock"))
        queued, oldest = figures["queued"], figures["oldest"]
    elif queue:
        try:
            queued, oldest = _redis_queue()
        except Exception as exc:  # noqa: BLE001 - whatever stops the read: said, not raised
            queue_error = f"{type(exc).__name__}: {exc}"
    return WorkerState(
        now=now,
        stale_after=settings.WORKER_STALE_SECONDS,
        heartbeat_at=heartbeat.beat_at if heartbeat else None,
        heartbeat_age=_age(now, heartbeat.beat_at) if heartbeat else None,
        worker=heartbeat.worker if heartbeat else "",
        queued=queued,
        oldest_queued_age=_age(now, oldest),
        queue_error=queue_error,
    )


def _redis_queue() -> tuple[int, datetime | None]:
    """Tasks waiting in the Redis list, and when the first of them was queued.

    The Redis broker takes a task off the list when a cluster takes it, so every task on the
    list is waiting. Its head is the oldest; django-q2 signs each task with the SECRET_KEY
    and stamps it when queued (``started``): a head that does not verify has no age.
    """
    broker = get_broker()
    try:
        queued = broker.queue_size()
        head = broker.connection.lindex(broker.list_key, 0)
    finally:
        broker.connection.close()
    if not head:
        return queued, None
    try:
        return queued, SignedPackage.loads(head).get("started")
    except (BadSignature, ValueError, TypeError):
        return queued, None


def silent_worker(now: datetime | None = None) -> WorkerState | None:
    """For the pages' banner: the state when the worker is not heard of, else None (1 query)."""
    current = state(now, queue=False)
    return None if current.ok else current
