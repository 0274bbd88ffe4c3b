"""Handing work to the django-q2 cluster: the one module that queues tasks.

A leaf: it knows django-q2 and the database transaction, nothing of vpnctl. Models,
views and tasks import it at the top; it names each task by its dotted path, so it never
imports the task code (that would pull boto3 into every page).

Every task is queued once the current transaction commits (at once outside one), and a
queue that cannot be reached is logged, never allowed to undo the change that asked
for the task: the sweeper starts an approved change whose task got lost. The broker is
the database's own queue table, or Redis (``VPNCTL_Q_REDIS_URL``); nothing here depends
on which. A look booked for later is a Schedule row, in the database whatever the broker,
and is written in the caller's transaction (``watch_execution``).

The dotted paths below are stored by django-q2 in queued tasks and in ``Schedule.func``;
renaming one needs a data migration that rewrites the stored rows.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Success
from django_q.tasks import async_task

EXECUTE_CHANGE = "maintenance.tasks.execute_change"
WATCH_EXECUTION = "maintenance.tasks.watch_execution"
SWEEP = "maintenance.tasks.sweep"
SCHEDULED_SYNC = "maintenance.sync.scheduled_sync"
MANUAL_SYNC = "maintenance.sync.manual_sync"
DEADLINE_REMINDERS = "maintenance.reminders.send_deadline_reminders"
REFRESH_CONNECTION = "maintenance.tasks.refresh_connection"
DELIVER_CHAT = "maintenance.chat.deliver"
# Every path django-q2 may hold (tests check each one still resolves).
STORED_TASK_PATHS = (
    EXECUTE_CHANGE,
    WATCH_EXECUTION,
    SWEEP,
    SCHEDULED_SYNC,
    MANUAL_SYNC,
    DEADLINE_REMINDERS,
    REFRESH_CONNECTION,
    DELIVER_CHAT,
)

EXECUTIONS_GROUP = "vpnctl-executions"


def task(func: str, *args: Any, name: str, group: str = "", **kwargs: Any) -> None:
    """Queue ``func(*args, **kwargs)`` by its dotted path once the transaction commits."""
    transaction.on_commit(
        lambda: async_task(func, *args, task_name=name, group=group or None, **kwargs),
        robust=True,
    )


def execute_change(request_pk: int) -> None:
    """Queue an execution attempt; safe to call more than once (the claim decides)."""
    name = f"execute-change-{request_pk}-{time.time_ns()}"
    task(EXECUTE_CHANGE, request_pk, name=name, group=EXECUTIONS_GROUP, queued_as=name)


def watch_execution(execution_pk: int, generation: int, delay: float = 0) -> None:
    """Book the next look at a running change, ``delay`` seconds from now.

    django-q2 has no delayed tasks; a one-off Schedule is its way to run one later (its
    scheduler looks every 30 s, which sets the finest watch interval). The Schedule is a
    row of the database, written in the caller's transaction: seen when that commits, gone
    if it rolls back, and on SQLite one wait for the write lock instead of two. Without a
    delay the look is a task, queued once the transaction commits. In django-q2's sync
    mode (tests), everything runs inline after the commit, the wait included.
    """
    name = f"vpnctl watch {execution_pk} #{generation}"
    if delay > 0 and not Conf.SYNC:
        Schedule.objects.create(
            name=name,
            func=WATCH_EXECUTION,
            args=f"{execution_pk},{generation}",
            schedule_type=Schedule.ONCE,
            repeats=-1,  # a ONCE schedule deletes itself after it ran
            next_run=timezone.now() + timedelta(seconds=delay),
        )
        return

    def book() -> None:
        if Conf.SYNC and delay > 0:
            time.sleep(delay)
        async_task(
            WATCH_EXECUTION, execution_pk, generation, task_name=name, group=EXECUTIONS_GROUP
        )

    transaction.on_commit(book, robust=True)


def refresh_connection(connection_pk: int) -> str:
    """Queue one read of a connection from AWS (a request page's "Refresh from AWS")."""
    name = f"refresh-connection-{connection_pk}-{time.time_ns()}"
    task(REFRESH_CONNECTION, connection_pk, name=name)
    return name


def deliver_chat(delivery_pk: int) -> None:
    """Queue one attempt at a chat message (the sweeper queues the retries)."""
    task(DELIVER_CHAT, delivery_pk, name=f"chat-{delivery_pk}-{time.time_ns()}")


def manual_sync(user: Any) -> str:
    """Queue a sync asked for by a person; returns the task's name."""
    name = f"sync-{uuid.uuid4().hex[:12]}"
    user_id = user.pk if user is not None and getattr(user, "is_authenticated", False) else None
    task(MANUAL_SYNC, user_id, name=name)
    return name


def prune_results(keep: int) -> int:
    """Keep the newest ``keep`` results of successful tasks (django-q2's admin lists them).

    The sweeper's, once a minute: django-q2's own pruning (``save_limit``) runs on every
    result, in a write transaction that reads every kept one, which on SQLite holds the
    one write lock for each finished task. Failures are all kept, as django-q2 does.
    Returns how many were deleted.
    """
    past_limit = Success.objects.order_by("-stopped").values_list("stopped", flat=True)
    first_past = list(past_limit[keep : keep + 1])
    if not first_past:
        return 0
    deleted, _ = Success.objects.filter(stopped__lte=first_past[0]).delete()
    return deleted
