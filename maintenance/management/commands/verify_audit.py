"""``manage.py verify_audit``: walk the audit chain and name the first event that fails."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from maintenance.models import AuditEvent


class Command(BaseCommand):
    help = "Check every audit event's hash and link; exit 1 naming the first broken event."

    def handle(self, *args, **options) -> None:
        checked, bad, why = AuditEvent.verify_chain()
        if why:
            if bad is not None:
                raise CommandError(
                    f"audit chain BROKEN at event #{bad.seq} (id {bad.pk}, {bad.action}, "
                    f"{bad.at:%Y-%m-%d %H:%M:%S} UTC): {why}. "
                    f"{checked} events before it are intact."
                )
            raise CommandError(f"audit chain BROKEN: {why}")
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {checked} events verified"))
