"""Create one demo user per role, with fresh random passwords, and print the logins.

Running it again resets the same users' passwords and roles; it never adds duplicates.
It refuses to run in production mode: the demo users would be real logins there.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from maintenance import roles


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    is_staff: bool = False


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("requester", roles.REQUESTER),
    DemoUser("approver", roles.APPROVER),
    # A second approver, for changes that need two approvals (VPNCTL_REQUIRED_APPROVALS=2).
    DemoUser("approver2", roles.APPROVER),
    # Staff so that the Django admin opens for it; never a superuser: the admin role's
    # permissions come from its group like everyone else's.
    DemoUser("admin", roles.ADMIN, is_staff=True),
    DemoUser("auditor", roles.AUDITOR),
)


def new_password() -> str:
    """A random password that is easy to copy from a terminal (letters and digits only)."""
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(14))


class Command(BaseCommand):
    help = "Create or reset the demo users, one per role, and print their passwords."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            help="Give every demo user this password instead of a random one per user.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the logins as JSON instead of a table."
        )

    def handle(self, *args, **options) -> None:
        if settings.MODE == "production":
            raise CommandError(
                "demo_users creates well-known logins and only runs with VPNCTL_MODE=demo."
            )
        logins = self.create_users(options["password"])
        if options["json"]:
            self.stdout.write(json.dumps(logins, indent=2))
            return
        width = max(len(login["username"]) for login in logins) + 2
        self.stdout.write(f"  {'user':<{width}}{'role':<11}password")
        for login in logins:
            self.stdout.write(
                f"  {login['username']:<{width}}{login['role']:<11}{login['password']}"
            )

    @transaction.atomic
    def create_users(self, password: str | None) -> list[dict[str, str]]:
        logins = []
        for demo in DEMO_USERS:
            group = Group.objects.filter(name=demo.role).first()
            if group is None:
                raise CommandError(
                    f'The group "{demo.role}" is missing: run "python manage.py migrate" first.'
                )
            user, _created = User.objects.get_or_create(username=demo.username)
            user.email = f"{demo.username}@example.com"
            user.is_active = True
            user.is_staff = demo.is_staff
            user.is_superuser = False
            secret = password or new_password()
            user.set_password(secret)
            user.save()
            user.groups.set([group])
            user.user_permissions.clear()
            logins.append({"username": demo.username, "role": demo.role, "password": secret})
        return logins
