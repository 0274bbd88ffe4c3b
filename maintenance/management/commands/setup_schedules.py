"""``manage.py setup_schedules``: create or update vpnctl's django-q2 schedules."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from maintenance.schedules import ensure_schedules


class Command(BaseCommand):
    help = "Create or update the schedules: inventory sync and the change sweeper."

    def handle(self, *args, **options) -> None:
        for schedule in ensure_schedules():
            self.stdout.write(f"{schedule.name}: {schedule.func} every {schedule.minutes} min")
