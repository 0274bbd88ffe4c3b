"""Make the API token EventBridge sends with AWS Health events (the README's intake).

The token belongs to a service user that holds one permission, to post Health events, and
no role: it cannot sign in (no usable password, and single sign-on never names it), read a
page, or decide anything. The token is printed once; only its digest is kept.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from maintenance.models import ApiToken

SERVICE_USERNAME = "aws-health-intake"


class Command(BaseCommand):
    help = "Create an API token for the AWS Health intake (EventBridge API destination)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", default="EventBridge", help="what the token is for")
        parser.add_argument(
            "--days", type=int, default=None, help="expire after this many days (default: never)"
        )

    def handle(self, *args, **options) -> None:
        if options["days"] is not None and options["days"] < 1:
            raise CommandError("--days must be 1 or more.")
        with transaction.atomic():
            user = service_user()
            expires = timezone.now() + timedelta(days=options["days"]) if options["days"] else None
            token, clear = ApiToken.issue(user, name=options["name"], expires_at=expires)
        self.stdout.write(
            f"Token {token.prefix}… for {SERVICE_USERNAME} created; it is shown this once.\n"
            "Put it in the EventBridge connection's API key as: Authorization: Bearer <token>\n"
        )
        self.stdout.write(clear)


def service_user():
    """The intake's user: one permission, no role, no password."""
    user, created = get_user_model().objects.get_or_create(
        username=SERVICE_USERNAME, defaults={"first_name": "AWS Health"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.clear()
    user.user_permissions.set(
        [
            Permission.objects.get(
                content_type__app_label="maintenance", codename="receive_health_events"
            )
        ]
    )
    return user
