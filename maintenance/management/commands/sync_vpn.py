"""Sync the VPN inventory from AWS now, and print what each account and region gave.

    python manage.py sync_vpn [--account NAME] [--region REGION]

Exits with status 1 when an account or region could not be read (the table says which and
why), so that cron or CI notices.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from maintenance.choices import SyncTrigger
from maintenance.sync import SyncScopeError, run_sync


class Command(BaseCommand):
    help = "Read every VPN connection and tunnel of the enabled AWS accounts into vpnctl."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", metavar="NAME", help="Only this account (its name).")
        parser.add_argument("--region", metavar="REGION", help="Only this region.")

    def handle(self, *args, **options) -> None:
        try:
            run = run_sync(
                account_name=options["account"],
                region=options["region"],
                trigger=SyncTrigger.COMMAND,
            )
        except SyncScopeError as exc:
            raise CommandError(str(exc)) from None

        results = list(run.results.select_related("account").order_by("account__name", "region"))
        headers = [
            _("account"),
            _("region"),
            _("connections"),
            _("tunnels"),
            _("new"),
            _("changed"),
            _("gone"),
            _("AWS calls"),
            _("errors"),
            _("result"),
        ]
        rows = [
            [
                result.account.name,
                result.region,
                str(result.connections),
                str(result.tunnels),
                str(result.created),
                str(result.changed),
                str(result.gone),
                str(result.api_calls),
                str(len(result.errors)),
                _("FAILED") if result.failed else _("ok"),
            ]
            for result in results
        ]
        widths = [
            max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)
        ]
        for line in [headers, *rows]:
            self.stdout.write(
                "  ".join(
                    str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)
                ).rstrip()
            )

        for result in results:
            for error in result.errors[:5]:
                where = f"{result.account.name} {result.region}"
                item = f" {error['item']}" if error.get("item") else ""
                code = f"{error['code']}: " if error.get("code") else ""
                self.stderr.write(f"{where}{item}: {code}{error.get('message', '')}")
            if len(result.errors) > 5:
                self.stderr.write(
                    _("%(where)s: %(count)d more errors (see the sync run page).")
                    % {
                        "where": f"{result.account.name} {result.region}",
                        "count": len(result.errors) - 5,
                    }
                )

        self.stdout.write(
            _("Sync #%(pk)s: %(status)s.") % {"pk": run.pk, "status": run.get_status_display()}
        )
        failed = [r for r in results if r.failed]
        if failed:
            raise CommandError(
                _("%(count)d of %(total)d account/region scopes could not be read.")
                % {"count": len(failed), "total": len(results)},
                returncode=1,
            )
