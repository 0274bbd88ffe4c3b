"""Small builders of database rows for tests that need no AWS."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from maintenance.choices import ConnectionState, PendingMaintenance, TunnelStatus
from maintenance.models import AwsAccount, Tunnel, VpnConnection

_ids = itertools.count(1)


def make_account(name: str = "default", account_id: str = "123456789012", **extra) -> AwsAccount:
    account, _ = AwsAccount.objects.get_or_create(
        name=name,
        defaults={"account_id": account_id, "regions": ["ap-northeast-1"], **extra},
    )
    return account


def make_connection(
    account: AwsAccount | None = None,
    *,
    region: str = "ap-northeast-1",
    name: str = "",
    state: str = ConnectionState.AVAILABLE,
    tunnels: list[dict] | None = None,
    tags: dict | None = None,
) -> VpnConnection:
    """A connection with two tunnels (override each tunnel's fields with `tunnels`)."""
    account = account or make_account()
    n = next(_ids)
    now = timezone.now()
    connection = VpnConnection.objects.create(
        account=account,
        region=region,
        vpn_connection_id=f"vpn-{n:017x}",
        name=name or f"office-{n}",
        tags=tags if tags is not None else {"Name": name or f"office-{n}"},
        state=state,
        type="ipsec.1",
        category="VPN",
        customer_gateway_id=f"cgw-{n:017x}",
        vpn_gateway_id=f"vgw-{n:017x}",
        first_seen=now,
        last_seen=now,
    )
    specs = tunnels or [{}, {}]
    for i, spec in enumerate(specs):
        fields = {
            "outside_ip": f"198.51.{n % 250}.{10 + i}",
            "lifecycle_control": True,
            "status": TunnelStatus.UP,
            "pending_maintenance": PendingMaintenance.NONE,
            "synced_at": now,
        }
        fields.update(spec)
        Tunnel.objects.create(connection=connection, **fields)
    return connection


def pending(days: float = 10) -> dict:
    """Tunnel fields for pending maintenance with a deadline `days` away."""
    return {
        "pending_maintenance": PendingMaintenance.AVAILABLE,
        "maintenance_auto_applied_after": timezone.now() + timedelta(days=days),
    }
