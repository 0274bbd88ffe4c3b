"""Create the demo's maintenance policy and the AWS Health intake's token.

"demo-staging" covers the connections tagged Environment=staging with a window all day,
every day, and no lead time: its drafts land at once. Its standard change has a period but
no approval yet: approve it on its page to see drafts approved by it. The intake token is
printed for ``emit_health_event``. Running it again resets the policy and makes a new token.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from maintenance.choices import ChangeKind
from maintenance.management.commands.health_intake_token import service_user
from maintenance.models import ApiToken, MaintenancePolicy

POLICY = "demo-staging"


class Command(BaseCommand):
    help = "Create or reset the demo maintenance policy and print an AWS Health intake token."

    def handle(self, *args, **options) -> None:
        if settings.MODE == "production":
            raise CommandError("demo_policy only runs with VPNCTL_MODE=demo.")
        now = timezone.now()
        with transaction.atomic():
            policy, _created = MaintenancePolicy.objects.update_or_create(
                name=POLICY,
                defaults={
                    "description": "The demo's staging connections, any time of day.",
                    "enabled": True,
                    "tags": {"Environment": "staging"},
                    "regions": [],
                    "windows": [[day, "00:00", "00:00"] for day in range(7)],
                    "time_zone": "Asia/Tokyo",
                    "lead_time_hours": 0,
                    "change_minutes": 30,
                    "kinds": [ChangeKind.REPLACE],
                    "standard_from": now - timedelta(days=1),
                    "standard_until": now + timedelta(days=30),
                    "suspended_at": None,
                },
            )
            policy.approvals.all().delete()
            _token, clear = ApiToken.issue(service_user(), name="demo intake")
        self.stdout.write(
            f"Policy {POLICY}: Environment=staging, all day, every day; approve it as a standard\n"
            f"change on its page (/policies/{policy.pk}/) to let it approve its own drafts.\n"
            f"AWS Health intake token (for emit_health_event): {clear}\n"
        )
