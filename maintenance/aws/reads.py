"""The read calls (SDK retries on), and parsing their answers without trusting their shape.

DescribeVpnConnections, GetVpnTunnelReplacementStatus and GetActiveVpnTunnelStatus become
plain dataclasses (``results``); an answer that lacks a field or has one of the wrong type is
an :class:`AwsMalformedAnswer`, or for one connection of a listing an :class:`ItemError`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .clients import _client, _request_id, _snake
from .errors import AwsError, AwsMalformedAnswer, _from_exception
from .limiter import READ
from .results import ActiveTunnelStatus, ConnectionInfo, ItemError, ReplacementStatus, TunnelInfo


def _read(account: Any, region: str, action: str, **params: Any) -> dict[str, Any]:
    """Make a read call (SDK retries on); return its answer or raise an AwsError."""
    method = _snake(action)
    try:
        client = _client(account, region, READ)
        return getattr(client, method)(**params)
    except AwsError:
        raise
    except (ClientError, BotoCoreError) as exc:
        raise _from_exception(exc, action, mutating=False) from None


# --------------------------------------------------------------------------------------
# Parsing answers (never trusting their shape)
# --------------------------------------------------------------------------------------


class _Malformed(Exception):
    """An item of an answer lacks a field or has one of the wrong type."""


def _get_str(item: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = item.get(key)
    if value is None or value == "":
        if required:
            raise _Malformed(f"{key} is missing")
        return ""
    if not isinstance(value, str):
        raise _Malformed(f"{key} is not a string")
    return value


def _get_bool(item: dict[str, Any], key: str) -> bool:
    value = item.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _Malformed(f"{key} is not a boolean")
    return value


def _get_int(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"{key} is not a non-negative integer")
    return value


def _get_datetime(item: dict[str, Any], key: str) -> datetime | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise _Malformed(f"{key} is not a timestamp")
    # botocore parses timestamps into aware datetimes; store everything in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _get_dict(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{key} is not an object")
    return value


def _get_list(item: dict[str, Any], key: str) -> list[Any]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"{key} is not a list")
    return value


def _outside_ip(entry: Any, where: str) -> str:
    if not isinstance(entry, dict):
        raise _Malformed(f"an entry of {where} is not an object")
    ip = _get_str(entry, "OutsideIpAddress")
    if not ip:
        raise _Malformed(f"an entry of {where} has no OutsideIpAddress")
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise _Malformed(f"{where} names {ip!r}, which is not an IPv4 address") from None
    return ip


def _by_outside_ip(entries: Iterable[Any], where: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        ip = _outside_ip(entry, where)
        if ip in found:
            raise _Malformed(f"{where} names {ip} twice")
        found[ip] = entry
    return found


def _parse_connection(raw: dict[str, Any]) -> ConnectionInfo:
    """One VpnConnections entry → ConnectionInfo; tunnels matched by outside IP.

    TunnelOptions and VgwTelemetry are two lists that need not come in the same order, so
    each telemetry entry is joined to the options entry with the same OutsideIpAddress.
    """
    connection_id = _get_str(raw, "VpnConnectionId", required=True)
    options = _get_dict(raw, "Options")
    tunnel_options = _by_outside_ip(_get_list(options, "TunnelOptions"), "TunnelOptions")
    telemetry = _by_outside_ip(_get_list(raw, "VgwTelemetry"), "VgwTelemetry")
    strays = sorted(set(telemetry) - set(tunnel_options))
    if strays:
        raise _Malformed(f"VgwTelemetry names {', '.join(strays)}, absent from TunnelOptions")

    tunnels = []
    for ip, option in tunnel_options.items():
        seen = telemetry.get(ip, {})
        tunnels.append(
            TunnelInfo(
                outside_ip=ip,
                lifecycle_control=_get_bool(option, "EnableTunnelLifecycleControl"),
                status=_get_str(seen, "Status"),
                status_message=_get_str(seen, "StatusMessage"),
                last_status_change=_get_datetime(seen, "LastStatusChange"),
                accepted_route_count=_get_int(seen, "AcceptedRouteCount"),
            )
        )

    tags: dict[str, str] = {}
    for tag in _get_list(raw, "Tags"):
        if not isinstance(tag, dict):
            raise _Malformed("a tag is not an object")
        tags[_get_str(tag, "Key", required=True)] = _get_str(tag, "Value")

    return ConnectionInfo(
        vpn_connection_id=connection_id,
        state=_get_str(raw, "State", required=True),
        type=_get_str(raw, "Type"),
        category=_get_str(raw, "Category"),
        customer_gateway_id=_get_str(raw, "CustomerGatewayId"),
        vpn_gateway_id=_get_str(raw, "VpnGatewayId"),
        transit_gateway_id=_get_str(raw, "TransitGatewayId"),
        tags=tags,
        name=tags.get("Name", ""),
        static_routes_only=_get_bool(options, "StaticRoutesOnly"),
        tunnels=tuple(sorted(tunnels, key=lambda t: ipaddress.IPv4Address(t.outside_ip))),
    )


def _item_name(raw: Any, index: int) -> str:
    connection_id = raw.get("VpnConnectionId") if isinstance(raw, dict) else None
    if isinstance(connection_id, str) and connection_id:
        return connection_id
    return f"VpnConnections[{index}]"


# --------------------------------------------------------------------------------------
# The calls
# --------------------------------------------------------------------------------------


def list_connections(
    account: Any, region: str, connection_ids: list[str] | None = None
) -> tuple[list[ConnectionInfo], list[ItemError]]:
    """Every VPN connection of an account and region (or those named), with their tunnels.

    DescribeVpnConnections has no paginator in botocore today (it returns everything in one
    answer); should botocore ever gain one, it is used. A malformed entry is skipped and
    reported as an ItemError, never raised.
    """
    action = "DescribeVpnConnections"
    params: dict[str, Any] = {}
    if connection_ids is not None:
        params["VpnConnectionIds"] = list(connection_ids)
    try:
        client = _client(account, region, READ)
        if client.can_paginate("describe_vpn_connections"):
            pages: list[dict[str, Any]] = list(
                client.get_paginator("describe_vpn_connections").paginate(**params)
            )
        else:
            pages = [client.describe_vpn_connections(**params)]
    except (ClientError, BotoCoreError) as exc:
        raise _from_exception(exc, action, mutating=False) from None

    connections: list[ConnectionInfo] = []
    errors: list[ItemError] = []
    seen: set[str] = set()
    index = 0
    for page in pages:
        raw_items = page.get("VpnConnections") if isinstance(page, dict) else None
        if not isinstance(raw_items, list):
            raise AwsMalformedAnswer(action, "The answer has no VpnConnections list.")
        for raw in raw_items:
            name = _item_name(raw, index)
            index += 1
            try:
                if not isinstance(raw, dict):
                    raise _Malformed("the entry is not an object")
                connection = _parse_connection(raw)
                if connection.vpn_connection_id in seen:
                    raise _Malformed("the connection is listed twice")
            except _Malformed as exc:
                errors.append(ItemError(item=name, message=str(exc)))
                continue
            seen.add(connection.vpn_connection_id)
            connections.append(connection)
    return connections, errors


def get_replacement_status(
    account: Any, region: str, connection_id: str, outside_ip: str
) -> ReplacementStatus:
    """GetVpnTunnelReplacementStatus: pending maintenance of one tunnel.

    Raises AwsMalformedAnswer if the answer lacks MaintenanceDetails.PendingMaintenance or
    names another tunnel than the one asked about.
    """
    action = "GetVpnTunnelReplacementStatus"
    answer = _read(
        account,
        region,
        action,
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=outside_ip,
    )
    try:
        for key, asked in (
            ("VpnConnectionId", connection_id),
            ("VpnTunnelOutsideIpAddress", outside_ip),
        ):
            answered = _get_str(answer, key)
            if answered and answered != asked:
                raise _Malformed(f"{key} is {answered!r}, not the {asked!r} asked about")
        if answer.get("MaintenanceDetails") is None:
            raise _Malformed("MaintenanceDetails is missing")
        details = _get_dict(answer, "MaintenanceDetails")
        pending = _get_str(details, "PendingMaintenance", required=True)
        if pending not in ("Available", "None"):
            raise _Malformed(f"PendingMaintenance is {pending!r}")
        return ReplacementStatus(
            vpn_connection_id=connection_id,
            outside_ip=outside_ip,
            pending_maintenance=pending,
            auto_applied_after=_get_datetime(details, "MaintenanceAutoAppliedAfter"),
            last_applied=_get_datetime(details, "LastMaintenanceApplied"),
        )
    except _Malformed as exc:
        raise AwsMalformedAnswer(action, str(exc), _request_id(answer)) from None


def get_active_tunnel_status(
    account: Any, region: str, connection_id: str, outside_ip: str
) -> ActiveTunnelStatus:
    """GetActiveVpnTunnelStatus: what the tunnel negotiated, as evidence for an execution."""
    action = "GetActiveVpnTunnelStatus"
    answer = _read(
        account,
        region,
        action,
        VpnConnectionId=connection_id,
        VpnTunnelOutsideIpAddress=outside_ip,
    )
    try:
        status = _get_dict(answer, "ActiveVpnTunnelStatus")
        return ActiveTunnelStatus(
            provisioning_status=_get_str(status, "ProvisioningStatus"),
            provisioning_status_reason=_get_str(status, "ProvisioningStatusReason"),
            ike_version=_get_str(status, "IkeVersion"),
            phase1_encryption=_get_str(status, "Phase1EncryptionAlgorithm"),
            phase2_encryption=_get_str(status, "Phase2EncryptionAlgorithm"),
            phase1_integrity=_get_str(status, "Phase1IntegrityAlgorithm"),
            phase2_integrity=_get_str(status, "Phase2IntegrityAlgorithm"),
            phase1_dh_group=_get_int(status, "Phase1DHGroup"),
            phase2_dh_group=_get_int(status, "Phase2DHGroup"),
        )
    except _Malformed as exc:
        raise AwsMalformedAnswer(action, str(exc), _request_id(answer)) from None
