"""What comes out of the AWS calls: plain, frozen dataclasses, no botocore types."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class TunnelInfo:
    """One tunnel of a connection, from DescribeVpnConnections (options and telemetry)."""

    outside_ip: str
    lifecycle_control: bool
    status: str
    status_message: str
    last_status_change: datetime | None
    accepted_route_count: int | None


@dataclass(frozen=True)
class ConnectionInfo:
    """One Site-to-Site VPN connection as DescribeVpnConnections reports it."""

    vpn_connection_id: str
    state: str
    type: str
    category: str
    customer_gateway_id: str
    vpn_gateway_id: str
    transit_gateway_id: str
    tags: dict[str, str]
    name: str
    static_routes_only: bool
    tunnels: tuple[TunnelInfo, ...]


@dataclass(frozen=True)
class ItemError:
    """An item of an answer that was skipped because it made no sense.

    ``item`` is the connection id when the item had one (so that callers can tell which
    connection they know nothing new about), else the item's position in the answer.
    """

    item: str
    message: str


@dataclass(frozen=True)
class ReplacementStatus:
    """GetVpnTunnelReplacementStatus for one tunnel."""

    vpn_connection_id: str
    outside_ip: str
    pending_maintenance: str  # "Available" or "None", as AWS spells them
    auto_applied_after: datetime | None
    last_applied: datetime | None


@dataclass(frozen=True)
class ActiveTunnelStatus:
    """GetActiveVpnTunnelStatus for one tunnel: evidence before and after a change."""

    provisioning_status: str
    provisioning_status_reason: str
    ike_version: str
    phase1_encryption: str
    phase2_encryption: str
    phase1_integrity: str
    phase2_integrity: str
    phase1_dh_group: int | None
    phase2_dh_group: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CallResult:
    """A mutating call that AWS accepted."""

    request_id: str
