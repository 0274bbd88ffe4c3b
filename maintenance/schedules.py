"""The django-q2 schedules vpnctl needs, created or updated by name."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

SYNC = "vpnctl: sync inventory"
SWEEP = "vpnctl: start, expire and reconcile changes"
REMINDERS = "vpnctl: deadline reminders"


def ensure_schedules() -> list[Schedule]:
    """Create or update every schedule, by name (``schedule()`` would fail on a duplicate)."""
    now = timezone.now()
    wanted = [
        (SYNC, "maintenance.sync.scheduled_sync", settings.SYNC_INTERVAL_MINUTES),
        (SWEEP, "maintenance.tasks.sweep", 1),
    ]
    schedules = []
    for name, func, minutes in wanted:
        schedule, created = Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
        if created or schedule.next_run is None:
            Schedule.objects.filter(pk=schedule.pk).update(next_run=now)
        schedules.append(schedule)
    # Once a day; the task itself sends at most one email per person per day.
    reminders, created = Schedule.objects.update_or_create(
        name=REMINDERS,
        defaults={
            "func": "maintenance.reminders.send_deadline_reminders",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
        },
    )
    if created or reminders.next_run is None:
        Schedule.objects.filter(pk=reminders.pk).update(next_run=now)
    schedules.append(reminders)
    return schedules
