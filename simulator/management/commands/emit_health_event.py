"""Post an AWS Health event about a simulated connection to vpnctl's intake, as
EventBridge would; with ``--pending-days`` the simulated AWS first makes a replacement
pending on the connection's tunnels, which the event announces."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from simulator.constants import CONTROL_PATH
from simulator.health import DEMO_MAINTENANCE_CODE, encoded, health_event_body

INTAKE_PATH = "/api/v1/aws-health/events"


class Command(BaseCommand):
    help = "Send an AWS Health event about a simulated VPN connection to vpnctl's intake."

    def add_arguments(self, parser) -> None:
        parser.add_argument("connection", help="the vpn-… id the event names")
        parser.add_argument("--code", default=DEMO_MAINTENANCE_CODE)
        parser.add_argument("--region", default="ap-northeast-1")
        parser.add_argument("--account-id", default=None)
        parser.add_argument(
            "--pending-days",
            type=float,
            default=None,
            help="first make maintenance pending on its tunnels, applied by AWS in N days",
        )
        parser.add_argument("--url", default=settings.SITE_URL, help="vpnctl's address")
        parser.add_argument(
            "--token",
            default=os.environ.get("VPNCTL_HEALTH_TOKEN", ""),
            help="the intake's token (default: $VPNCTL_HEALTH_TOKEN; see health_intake_token)",
        )

    def handle(self, *args, **options) -> None:
        if settings.MODE == "production":
            raise CommandError("emit_health_event only runs with VPNCTL_MODE=demo.")
        if not options["token"]:
            raise CommandError(
                "No token: run `manage.py health_intake_token` and pass it with --token "
                "or VPNCTL_HEALTH_TOKEN."
            )
        connection = options["connection"]
        if options["pending_days"] is not None:
            self._make_pending(connection, options["pending_days"])
        body = health_event_body(
            [connection],
            code=options["code"],
            region=options["region"],
            **({"account_id": options["account_id"]} if options["account_id"] else {}),
        )
        status, answer = post(
            options["url"].rstrip("/") + INTAKE_PATH, encoded(body), options["token"]
        )
        self.stdout.write(f"{status} {answer}")
        if status >= 400:
            raise CommandError(f"the intake refused the event: {status}")

    def _make_pending(self, connection: str, days: float) -> None:
        aws = settings.AWS_ENDPOINT_URL
        if not aws:
            raise CommandError("VPNCTL_AWS_ENDPOINT_URL must point at the simulated AWS.")
        ips = _get_json(f"{aws}{CONTROL_PATH}/tunnel-ips?connection_id={connection}")
        deadline = (datetime.now(UTC) + timedelta(days=days)).isoformat()
        tunnels = [
            {
                "connection_id": connection,
                "outside_ip": ip,
                "pending_maintenance": "Available",
                "auto_apply_after": deadline,
            }
            for ip in ips["outside_ips"]
        ]
        status, answer = post(
            f"{aws}{CONTROL_PATH}/set-tunnels", json.dumps({"tunnels": tunnels}).encode()
        )
        if status != 200:
            raise CommandError(f"the simulator refused: {status} {answer}")
        self.stdout.write(f"maintenance pending on {len(tunnels)} tunnel(s) until {deadline}")


def post(url: str, body: bytes, token: str = "") -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if not url.startswith(("http://", "https://")):
        raise CommandError(f"not an http(s) address: {url}")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise CommandError(f"the simulator answered {exc.code}: {exc.read().decode()}") from None
