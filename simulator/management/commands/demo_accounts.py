"""Create the demo's two AWS accounts, as the simulated AWS knows them.

"default" is read with the server's own (test) credentials; "second" through an assumed
role, as a real second account would be. Running it again puts both rows back as they are
described here and touches no other account.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from maintenance.models import AwsAccount
from simulator import DEFAULT_ACCOUNT_ID, SECOND_ACCOUNT_ID, SECOND_ACCOUNT_ROLE_ARN

DEMO_REGIONS = ["ap-northeast-1", "us-east-1", "eu-west-1"]


def demo_account_specs() -> list[dict[str, object]]:
    return [
        {"name": "default", "account_id": DEFAULT_ACCOUNT_ID, "role_arn": ""},
        {"name": "second", "account_id": SECOND_ACCOUNT_ID, "role_arn": SECOND_ACCOUNT_ROLE_ARN},
    ]


class Command(BaseCommand):
    help = 'Create or reset the demo AWS accounts "default" and "second".'

    def handle(self, *args, **options) -> None:
        if settings.MODE == "production":
            raise CommandError("demo_accounts only runs with VPNCTL_MODE=demo.")
        with transaction.atomic():
            for spec in demo_account_specs():
                account = AwsAccount.objects.filter(name=spec["name"]).first()
                created = account is None
                account = account or AwsAccount(name=spec["name"])
                account.account_id = spec["account_id"]
                account.role_arn = spec["role_arn"]
                account.external_id = ""
                account.regions = list(DEMO_REGIONS)
                account.enabled = True
                account.full_clean()
                account.save()
                self.stdout.write(
                    f"  {'created' if created else 'reset'} {account}"
                    f"{' via ' + account.role_arn if account.role_arn else ''}:"
                    f" {', '.join(account.regions)}"
                )
