"""The simulated AWS's own state and knobs, and the rules of the Site-to-Site VPN calls.

What is simulated
-----------------
- ``DescribeVpnConnections`` (moto's own, wrapped): every connection carries
  ``Options.TunnelOptions`` (``OutsideIpAddress``, ``EnableTunnelLifecycleControl``, ...) and
  ``VgwTelemetry`` (``Status``, ``StatusMessage``, ``LastStatusChange``,
  ``AcceptedRouteCount``). ``configure(telemetry_reversed=True)`` lists the telemetry in the
  opposite order of the options, as AWS is free to do.
- ``GetVpnTunnelReplacementStatus``, ``GetActiveVpnTunnelStatus``, ``ReplaceVpnTunnel``,
  ``ModifyVpnTunnelOptions`` (added by simulator/moto_additions.py): the rules of
  shared/DOMAIN.md, summed up in simulator/tunnels.py.

State lives on moto's ``VPNConnection`` objects (attribute ``vpnctl_sim``, a
``ConnectionState``), so resetting moto (the end of ``mock_aws``) clears it too.
In-process (tests), use the ``SIMULATOR`` object directly.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidVpnConnectionIdError,
)
from moto.ec2.models import ec2_backends
from moto.ec2.responses import EC2Response

from simulator.calls import CallGate, Throttling
from simulator.constants import (
    AVAILABLE,
    AWS_FIRST_OCTETS,
    CUSTOMER_FIRST_OCTETS,
    DEFAULT_ACCOUNT_ID,
    NEGOTIATED,
    NONE,
    UP,
)
from simulator.tunnels import (
    ConnectionState,
    Timings,
    TunnelSpec,
    TunnelState,
    UnknownConnection,
    UnknownTunnel,
    check_tunnel_fields,
    utc_now,
)


class Simulator(CallGate):
    """The simulated AWS's own state and knobs. One per process: ``SIMULATOR``."""

    def __init__(self) -> None:
        # Re-entrant: a call holds it while moto serialises the answer, and the handlers
        # it runs take it again. moto's server is threaded.
        self._lock = threading.RLock()
        super().__init__()
        self.timings = Timings()
        self.telemetry_reversed = False
        self._where: dict[str, tuple[str, str]] = {}  # connection id -> (account, region)
        self._used_ips: set[str] = set()
        self._rng = random.Random()

    # The public, in-process API ------------------------------------------------------

    def reset(self) -> None:
        """Default timings, no throttling, no faults, an empty call log.

        moto's resources are moto's to reset (``mock_aws`` does, on exit).
        """
        with self._lock:
            self.timings = Timings()
            self.telemetry_reversed = False
            self._reset_calls()
            self._where.clear()
            self._used_ips.clear()

    _UNCHANGED: Any = object()

    def configure(
        self,
        *,
        timings: Timings | None = None,
        throttling: Throttling | None = _UNCHANGED,
        telemetry_reversed: bool | None = None,
    ) -> None:
        """Change what is given. ``throttling=None`` turns throttling off."""
        with self._lock:
            now = utc_now()
            if timings is not None:
                # Events due under the old timings happen under them.
                self._advance_everything(now)
                self.timings = timings
            if throttling is not self._UNCHANGED:
                self._set_throttling(throttling)
            if telemetry_reversed is not None:
                self.telemetry_reversed = telemetry_reversed

    def create_connection(
        self,
        *,
        region: str,
        account_id: str = DEFAULT_ACCOUNT_ID,
        name: str = "",
        tags: dict[str, str] | None = None,
        transit_gateway: bool = False,
        static_routes_only: bool = False,
        tunnels: list[TunnelSpec] | None = None,
    ) -> str:
        """Create a VPN connection with its gateways, straight in moto; return its id."""
        specs = tunnels if tunnels is not None else [TunnelSpec(), TunnelSpec()]
        for spec in specs:
            check_tunnel_fields(
                {
                    "status": spec.status,
                    "lifecycle_control": spec.lifecycle_control,
                    "pending_maintenance": spec.pending_maintenance,
                    "auto_apply_after": spec.auto_apply_after,
                    "last_applied": spec.last_applied,
                    "ike_version": spec.ike_version,
                }
            )
        with self._lock:
            backend = ec2_backends[account_id][region]
            cgw = backend.create_customer_gateway(
                "ipsec.1", self._random_ip(CUSTOMER_FIRST_OCTETS, self._rng), "65000"
            )
            all_tags = dict(tags or {})
            if name:
                all_tags["Name"] = name
            if transit_gateway:
                tgw = backend.create_transit_gateway(description=name or None)
                connection = backend.create_vpn_connection(
                    "ipsec.1", cgw.id, transit_gateway_id=tgw.id, tags=all_tags
                )
                backend.create_transit_gateway_vpn_attachment(
                    vpn_id=connection.id, transit_gateway_id=tgw.id
                )
            else:
                vgw = backend.create_vpn_gateway("ipsec.1")
                connection = backend.create_vpn_connection(
                    "ipsec.1", cgw.id, vpn_gateway_id=vgw.id, tags=all_tags
                )
            self._attach(connection, static_routes_only, specs, utc_now())
            return connection.id

    def delete_connection(self, connection_id: str) -> None:
        """Delete as AWS does: the connection stays listed, in state 'deleted'."""
        with self._lock:
            connection = self._locate(connection_id)
            connection.ec2_backend.delete_vpn_connection(connection_id)

    def remove_connection(self, connection_id: str) -> None:
        """Make the connection vanish from DescribeVpnConnections entirely."""
        with self._lock:
            connection = self._locate(connection_id)
            del connection.ec2_backend.vpn_connections[connection_id]
            self._where.pop(connection_id, None)

    def set_tunnel(self, connection_id: str, outside_ip: str, **fields: Any) -> None:
        """Set what AWS has no API for: status, lifecycle control, pending maintenance.

        Fields: ``status`` (the tunnel's steady status), ``lifecycle_control``,
        ``pending_maintenance``, ``auto_apply_after``, ``last_applied``, ``ike_version``,
        ``last_status_change`` (defaults to now when the status changes).
        """
        check_tunnel_fields(fields)
        with self._lock:
            now = utc_now()
            connection = self._locate(connection_id)
            self._advance(connection, now)
            tunnel = self._tunnel(connection, outside_ip)
            if "status" in fields and fields["status"] != tunnel.steady_status:
                tunnel.steady_status = fields["status"]
                if tunnel.down_until is None:
                    tunnel.last_status_change = now
            for name in ("lifecycle_control", "pending_maintenance", "ike_version"):
                if name in fields:
                    setattr(tunnel, name, fields[name])
            if fields.get("pending_maintenance") == NONE and "auto_apply_after" not in fields:
                tunnel.auto_apply_after = None  # no maintenance, no deadline
            for name in ("auto_apply_after", "last_applied", "last_status_change"):
                if name in fields:
                    setattr(tunnel, name, fields[name])
            # Maintenance already overdue is applied on this very read.
            self._advance(connection, now)

    def tunnel_state(self, connection_id: str, outside_ip: str) -> dict[str, Any]:
        """The tunnel as AWS would report it now."""
        with self._lock:
            connection = self._locate(connection_id)
            self._advance(connection, utc_now())
            tunnel = self._tunnel(connection, outside_ip)
            return {
                "outside_ip": tunnel.outside_ip,
                "status": tunnel.status,
                "steady_status": tunnel.steady_status,
                "status_message": tunnel.status_message,
                "last_status_change": tunnel.last_status_change,
                "accepted_route_count": tunnel.accepted_route_count,
                "lifecycle_control": tunnel.lifecycle_control,
                "pending_maintenance": tunnel.pending_maintenance,
                "auto_apply_after": tunnel.auto_apply_after,
                "last_applied": tunnel.last_applied,
                "ike_version": tunnel.ike_version,
                "replacing": tunnel.replacing,
                "down_until": tunnel.down_until,
            }

    def tunnel_ips(self, connection_id: str) -> list[str]:
        """Outside IPs in TunnelOptions order."""
        with self._lock:
            connection = self._locate(connection_id)
            return [t.outside_ip for t in self._state(connection).tunnels]

    def connection_state(self, connection_id: str) -> str:
        with self._lock:
            connection = self._locate(connection_id)
            self._advance(connection, utc_now())
            return connection.state

    # Connections and tunnels ----------------------------------------------------------

    def _locate(self, connection_id: str) -> Any:
        hint = self._where.get(connection_id)
        if hint is not None:
            account_id, region = hint
            connection = ec2_backends[account_id][region].vpn_connections.get(connection_id)
            if connection is not None:
                return connection
        # Not indexed yet, or moto was reset since: look everywhere (without creating
        # backends for regions nobody used).
        for account_id, regions in list(ec2_backends.items()):
            for region, backend in list(regions.items()):
                connection = backend.vpn_connections.get(connection_id)
                if connection is not None:
                    self._where[connection_id] = (account_id, region)
                    return connection
        raise UnknownConnection(connection_id)

    def _tunnel(self, connection: Any, outside_ip: str) -> TunnelState:
        for tunnel in self._state(connection).tunnels:
            if tunnel.outside_ip == outside_ip:
                return tunnel
        raise UnknownTunnel(f"{connection.id} has no tunnel {outside_ip}")

    def _state(self, connection: Any) -> ConnectionState:
        state = getattr(connection, "vpnctl_sim", None)
        if state is None:
            # Made some other way (moto's backend directly): two plain tunnels, lifecycle
            # control off, as AWS creates them by default.
            specs = [TunnelSpec(lifecycle_control=False), TunnelSpec(lifecycle_control=False)]
            state = self._attach(connection, False, specs, utc_now())
        return state

    def _attach(
        self, connection: Any, static_routes_only: bool, specs: list[TunnelSpec], now: datetime
    ) -> ConnectionState:
        # Seeded by the connection id: the same id gets the same addresses.
        rng = random.Random(connection.id)
        tunnels = []
        inside_third = rng.randrange(0, 256)
        for index, spec in enumerate(specs):
            # A /30 per tunnel in 169.254.0.0/16; index * 4 keeps the two apart.
            inside_fourth = index * 4 + rng.randrange(0, 32) * 8
            ip = spec.outside_ip or self._random_ip(AWS_FIRST_OCTETS, rng)
            self._used_ips.add(ip)
            tunnels.append(
                TunnelState(
                    outside_ip=ip,
                    inside_cidr=f"169.254.{inside_third}.{inside_fourth}/30",
                    steady_status=spec.status,
                    lifecycle_control=spec.lifecycle_control,
                    pending_maintenance=spec.pending_maintenance,
                    auto_apply_after=spec.auto_apply_after,
                    last_applied=spec.last_applied,
                    ike_version=spec.ike_version,
                    last_status_change=now,
                    bgp_routes=0 if static_routes_only else rng.randint(1, 12),
                )
            )
        if len({t.outside_ip for t in tunnels}) != len(tunnels):
            raise ValueError("Two tunnels of one connection cannot share an outside IP")
        state = ConnectionState(static_routes_only=static_routes_only, tunnels=tunnels)
        connection.vpnctl_sim = state
        # Attributes moto's VPNConnection lacks and botocore's shape has.
        connection.category = "VPN"
        connection.gateway_association_state = "associated"
        backend = connection.ec2_backend
        self._where[connection.id] = (backend.account_id, backend.region_name)
        self._advance(connection, now)
        return state

    def _random_ip(self, first_octets: tuple[int, ...], rng: random.Random) -> str:
        while True:
            ip = (
                f"{rng.choice(first_octets)}.{rng.randrange(0, 256)}."
                f"{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
            )
            if ip not in self._used_ips:
                self._used_ips.add(ip)
                return ip

    # Time ----------------------------------------------------------------------------

    def _advance_everything(self, now: datetime) -> None:
        for regions in list(ec2_backends.values()):
            for backend in list(regions.values()):
                for connection in list(backend.vpn_connections.values()):
                    self._advance(connection, now)

    def _advance(self, connection: Any, now: datetime) -> ConnectionState:
        """Bring the connection up to ``now``, then render it for moto's serialiser."""
        state = self._state(connection)
        if connection.state != "deleted":
            for tunnel in state.tunnels:
                tunnel.advance(now, self.timings)
            if state.modifying_until is not None:
                if now >= state.modifying_until:
                    state.modifying_until = None
                    connection.state = "available"
                else:
                    connection.state = "modifying"
        self._render(connection, state)
        return state

    def _refresh_backend(self, backend: Any) -> None:
        with self._lock:
            now = utc_now()
            for connection in list(backend.vpn_connections.values()):
                self._advance(connection, now)

    # Rendering for moto's serialiser ---------------------------------------------------

    def _render(self, connection: Any, state: ConnectionState) -> None:
        # moto serialises any attribute named after a shape member; new objects each time
        # so that a serialiser in another thread never sees half an update.
        connection.options = {
            "EnableAcceleration": False,
            "StaticRoutesOnly": state.static_routes_only,
            "LocalIpv4NetworkCidr": "0.0.0.0/0",
            "RemoteIpv4NetworkCidr": "0.0.0.0/0",
            "OutsideIpAddressType": "PublicIpv4",
            "TunnelInsideIpVersion": "ipv4",
            "TunnelOptions": [
                {
                    "OutsideIpAddress": t.outside_ip,
                    "TunnelInsideCidr": t.inside_cidr,
                    "IkeVersions": [{"Value": t.ike_version}],
                    "StartupAction": "add",
                    "EnableTunnelLifecycleControl": t.lifecycle_control,
                }
                for t in state.tunnels
            ],
        }
        telemetry = [
            {
                "OutsideIpAddress": t.outside_ip,
                "Status": t.status,
                "StatusMessage": t.status_message,
                "LastStatusChange": t.last_status_change,
                "AcceptedRouteCount": t.accepted_route_count,
            }
            for t in state.tunnels
        ]
        if self.telemetry_reversed:
            telemetry.reverse()
        connection.vgw_telemetry = telemetry

    # The EC2 actions moto lacks (called by simulator/moto_additions.py) ---------------

    def _target(self, response: EC2Response, now: datetime) -> tuple[Any, TunnelState]:
        connection_id = response._get_param("VpnConnectionId")
        outside_ip = response._get_param("VpnTunnelOutsideIpAddress")
        connection = response.ec2_backend.vpn_connections.get(connection_id)
        if connection is None:
            raise InvalidVpnConnectionIdError(connection_id)
        self._advance(connection, now)
        if connection.state == "deleted":
            raise EC2ClientError(
                "IncorrectState", f"The VPN connection {connection_id} is deleted."
            )
        try:
            tunnel = self._tunnel(connection, outside_ip)
        except UnknownTunnel:
            raise InvalidParameterValue(
                f"The VPN tunnel outside IP address {outside_ip} does not belong to "
                f"VPN connection {connection_id}."
            ) from None
        return connection, tunnel

    @staticmethod
    def _check_available(connection: Any) -> None:
        if connection.state != "available":
            raise EC2ClientError(
                "IncorrectState",
                f"The VPN connection {connection.id} is {connection.state}; "
                "try again when it is available.",
            )

    def _replacement_status(self, response: EC2Response) -> ActionResult:
        with self._lock:
            connection, tunnel = self._target(response, utc_now())
            details: dict[str, Any] = {"PendingMaintenance": tunnel.pending_maintenance}
            if tunnel.pending_maintenance == AVAILABLE and tunnel.auto_apply_after:
                details["MaintenanceAutoAppliedAfter"] = tunnel.auto_apply_after
            if tunnel.last_applied:
                details["LastMaintenanceApplied"] = tunnel.last_applied
            result = {
                "VpnConnectionId": connection.id,
                "CustomerGatewayId": connection.customer_gateway_id,
                "VpnTunnelOutsideIpAddress": tunnel.outside_ip,
                "MaintenanceDetails": details,
            }
            if connection.transit_gateway_id:
                result["TransitGatewayId"] = connection.transit_gateway_id
            if connection.vpn_gateway_id:
                result["VpnGatewayId"] = connection.vpn_gateway_id
            return ActionResult(result)

    def _active_status(self, response: EC2Response) -> ActionResult:
        with self._lock:
            _, tunnel = self._target(response, utc_now())
            status: dict[str, Any] = {
                "IkeVersion": tunnel.ike_version,
                "ProvisioningStatus": "pending" if tunnel.replacing else "available",
            }
            if tunnel.replacing:
                status["ProvisioningStatusReason"] = "Tunnel endpoint replacement in progress"
            if tunnel.status == UP:
                # Negotiated algorithms exist only while IKE is up.
                status.update(NEGOTIATED[tunnel.ike_version])
            return ActionResult({"ActiveVpnTunnelStatus": status})

    def _replace(self, response: EC2Response) -> ActionResult:
        with self._lock:
            now = utc_now()
            connection, tunnel = self._target(response, now)
            self._check_available(connection)
            if tunnel.pending_maintenance != AVAILABLE:
                raise InvalidParameterValue(
                    f"There is no pending maintenance for VPN tunnel {tunnel.outside_ip} "
                    f"of VPN connection {connection.id}."
                )
            tunnel.start_replacement(now, self.timings)
            self._advance(connection, now)
            return ActionResult({"Return": True})

    def _modify(self, response: EC2Response) -> ActionResult:
        with self._lock:
            now = utc_now()
            connection, tunnel = self._target(response, now)
            self._check_available(connection)
            options = response._get_param("TunnelOptions") or {}
            enable = options.get("EnableTunnelLifecycleControl")  # None: flag not touched
            skip = bool(response._get_param("SkipTunnelReplacement", False))
            pending = tunnel.pending_maintenance == AVAILABLE
            if enable is False and pending and skip:
                raise InvalidParameterCombination(
                    "SkipTunnelReplacement cannot be used to turn off tunnel endpoint "
                    "lifecycle control while maintenance is pending: turning it off "
                    "applies the pending maintenance."
                )
            ike_versions = [v.get("Value") for v in options.get("IKEVersions") or []]
            if ike_versions and ike_versions[0] in NEGOTIATED:
                tunnel.ike_version = ike_versions[0]
            if enable is not None:
                tunnel.lifecycle_control = bool(enable)
            state = self._state(connection)
            modify_for = timedelta(seconds=self.timings.modify_seconds)
            # Any modification interrupts the tunnel while the connection is modifying.
            tunnel.interrupt(now, now + modify_for)
            # Switching lifecycle control starts pending maintenance at once, unless the
            # caller asked to skip it (SkipTunnelReplacement only matters for that flag).
            if enable is not None and pending and not skip:
                tunnel.start_replacement(now, self.timings)
            state.modifying_until = now + modify_for
            connection.state = "modifying"
            self._render(connection, state)
            return ActionResult({"VpnConnection": connection})


SIMULATOR = Simulator()
