"""Holding django-q2's queue: tasks go into the real ORM broker and nothing runs them.

``queue_held()`` is for tests about the workflow, not about running it: an approval
queues its execution exactly as in production (after the commit, through
``maintenance.enqueue``), and the test sees what was queued instead of stubbing the
queueing code. What the block queued is taken out of the queue again when it ends, so
that no cluster started later by the same test picks it up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

from django_q.conf import Conf
from django_q.models import OrmQ, Schedule


@dataclass(frozen=True)
class Held:
    func: str
    args: tuple


class HeldQueue:
    def __init__(self) -> None:
        self._tasks_before = set(OrmQ.objects.values_list("pk", flat=True))
        self._schedules_before = set(Schedule.objects.values_list("pk", flat=True))

    def _new_tasks(self):
        return OrmQ.objects.exclude(pk__in=self._tasks_before).order_by("pk")

    def _new_schedules(self):
        return Schedule.objects.exclude(pk__in=self._schedules_before).order_by("pk")

    def held(self) -> list[Held]:
        """Everything queued so far: tasks, then one-off schedules (delayed tasks)."""
        items = [Held(t.task["func"], tuple(t.task["args"])) for t in self._new_tasks()]
        items += [
            Held(s.func, tuple(int(a) for a in s.args.split(","))) for s in self._new_schedules()
        ]
        return items

    def of(self, func: str) -> list[tuple]:
        """The arguments of every held call of `func`, in the order queued."""
        return [h.args for h in self.held() if h.func == func]

    def release(self) -> None:
        self._new_tasks().delete()
        self._new_schedules().delete()


@contextmanager
def queue_held() -> Iterator[HeldQueue]:
    """Queue into the ORM broker instead of running tasks inline; forget them at the end."""
    queue = HeldQueue()
    with mock.patch.object(Conf, "SYNC", False):
        try:
            yield queue
        finally:
            queue.release()
