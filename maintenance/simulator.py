"""The simulated AWS: moto, plus the Site-to-Site VPN behaviour vpnctl depends on.

moto 5.2.5 knows VPN connections, customer gateways, virtual private gateways and transit
gateways, but not the tunnel endpoint lifecycle calls, and its DescribeVpnConnections has no
``Options.TunnelOptions`` and no ``VgwTelemetry``. This module adds them, once, on top of
moto, for the test suite and for the demo that runs without an AWS account
(``manage.py run_simulator`` / ``seed_simulator``).

What is simulated
-----------------
- ``DescribeVpnConnections`` (moto's own, wrapped): every connection carries
  ``Options.TunnelOptions`` (``OutsideIpAddress``, ``EnableTunnelLifecycleControl``, ...) and
  ``VgwTelemetry`` (``Status``, ``StatusMessage``, ``LastStatusChange``,
  ``AcceptedRouteCount``). ``configure(telemetry_reversed=True)`` lists the telemetry in the
  opposite order of the options, as AWS is free to do.
- ``GetVpnTunnelReplacementStatus``, ``GetActiveVpnTunnelStatus``, ``ReplaceVpnTunnel``,
  ``ModifyVpnTunnelOptions`` (added): the rules of shared/DOMAIN.md.
- Throttling (EC2's token buckets per account and region, reads and writes apart), injected
  faults, ``DryRun`` and a call log, for those five actions. STS and the other EC2 calls go
  straight to moto.

The additions are methods named after the actions on ``moto.ec2.responses.EC2Response``, plus
a wrapper around its ``call_action`` for the five actions; moto then parses requests and
serialises answers with botocore's own shapes. State lives on moto's ``VPNConnection`` objects
(attribute ``vpnctl_sim``), so resetting moto (the end of ``mock_aws``) clears it too.

How time works
--------------
Nothing runs in the background. Each tunnel keeps timestamps (an interruption ends at
``down_until``; AWS applies pending maintenance by itself at ``MaintenanceAutoAppliedAfter +
Timings.auto_apply_delay_seconds``), and every call or read first advances the state to
``datetime.now(timezone.utc)``, applying each event at the moment it was due. time_machine
therefore moves the simulation. Throttling refills on ``time.monotonic()`` instead, so that
travelling in time does not hand out tokens.

- ``ReplaceVpnTunnel`` on a tunnel with pending maintenance: the maintenance is taken in hand
  at once (``PendingMaintenance`` becomes ``None``), the tunnel is ``DOWN`` for
  ``replace_down_seconds``, then back to its usual status, and ``LastMaintenanceApplied`` is
  the moment it came back. Without pending maintenance: ``InvalidParameterValue``.
- ``ModifyVpnTunnelOptions``: the connection is ``modifying`` for ``modify_seconds`` and the
  modified tunnel is interrupted as long (any modification interrupts the tunnel). Turning
  lifecycle control on or off while maintenance is pending starts the replacement at once,
  unless ``SkipTunnelReplacement`` is passed when turning it on; turning it off with
  ``SkipTunnelReplacement`` while maintenance is pending is ``InvalidParameterCombination``.
- Either call on a connection that is ``modifying`` answers ``IncorrectState``; an unknown
  connection ``InvalidVpnConnectionID.NotFound``; a tunnel address not of that connection
  ``InvalidParameterValue``.
- A tunnel has a steady status (``UP``, or ``DOWN`` when the customer side is broken); an
  interruption takes it ``DOWN`` and it settles back to its steady status afterwards.

Calls and their outcomes
------------------------
Each call of the five actions, in this order: throttled (``RequestLimitExceeded``, HTTP 503),
or answered by an injected fault, or ``DryRunOperation`` (HTTP 412) if ``DryRun``, or handled.
It is logged as a ``CallRecord`` whose outcome is ``"ok"`` only when AWS accepted it, so
``SIMULATOR.calls("ReplaceVpnTunnel", outcome="ok")`` counts the changes that reached AWS.
``inject_fault(..., applied=True)`` lets the call take effect and loses the answer (the
ambiguous failure). Every answer carries its own request id, in the body and in
``x-amzn-requestid``, as AWS's do.

The simulator-only control channel
----------------------------------
Lifecycle control flags, pending maintenance and telemetry have no "create" API in AWS. To seed
a *running* simulator from another process, ``install()`` adds JSON routes under moto's own
``/moto-api/`` prefix, which real AWS does not have (see ``CONTROL_PATH``):

- ``GET  /moto-api/vpnctl/ping``: ``{"simulator": "vpnctl", "protocol": 1}``; the seeder checks it
  so that it never creates resources in anything but the simulator.
- ``POST /moto-api/vpnctl/set-tunnels``: ``{"tunnels": [{"connection_id": ..., "outside_ip":
  ..., <set_tunnel fields>}]}``, datetimes as ISO 8601 strings.
- ``POST /moto-api/vpnctl/inject-fault``: the arguments of ``Simulator.inject_fault``.
- ``GET  /moto-api/vpnctl/calls``: ``{"calls": {action: {outcome: count}}}``.

In-process (tests), use the ``SIMULATOR`` object directly.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from moto import mock_aws
from moto.core.responses import ActionResult
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidVpnConnectionIdError,
)
from moto.ec2.models import ec2_backends
from moto.ec2.responses import EC2Response
from moto.ec2.responses.vpn_connections import VPNConnections
from moto.moto_api._internal import urls as moto_api_urls
from moto.server import ThreadedMotoServer

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account (plain test credentials)
SECOND_ACCOUNT_ID = "210987654321"  # reached through sts:AssumeRole
SECOND_ACCOUNT_ROLE_ARN = f"arn:aws:iam::{SECOND_ACCOUNT_ID}:role/vpnctl-reader"

READ_ACTIONS = frozenset(
    {"DescribeVpnConnections", "GetVpnTunnelReplacementStatus", "GetActiveVpnTunnelStatus"}
)
WRITE_ACTIONS = frozenset({"ReplaceVpnTunnel", "ModifyVpnTunnelOptions"})
# The actions that go through throttling, fault injection and the call log.
SIMULATED_ACTIONS = READ_ACTIONS | WRITE_ACTIONS
# The actions moto 5.2.5 lacks: install() adds them, and refuses to shadow moto's own.
ADDED_ACTIONS = {
    "GetVpnTunnelReplacementStatus": "get_vpn_tunnel_replacement_status",
    "GetActiveVpnTunnelStatus": "get_active_vpn_tunnel_status",
    "ReplaceVpnTunnel": "replace_vpn_tunnel",
    "ModifyVpnTunnelOptions": "modify_vpn_tunnel_options",
}

CONTROL_PATH = "/moto-api/vpnctl"
CONTROL_PROTOCOL = 1

UP, DOWN = "UP", "DOWN"
AVAILABLE, NONE = "Available", "None"

# First octets of address blocks AWS really uses for VPN endpoints: the addresses look
# public without being anyone's real tunnel (the last three octets are random).
_AWS_FIRST_OCTETS = (3, 13, 15, 18, 34, 35, 44, 52, 54, 99)
_CUSTOMER_FIRST_OCTETS = (49, 61, 81, 89, 109, 121, 150, 185, 193, 203, 212, 217)

# What GetActiveVpnTunnelStatus reports as negotiated, by IKE version.
_NEGOTIATED = {
    "ikev2": {
        "Phase1EncryptionAlgorithm": "AES256-GCM-16",
        "Phase2EncryptionAlgorithm": "AES256-GCM-16",
        "Phase1IntegrityAlgorithm": "SHA2-384",
        "Phase2IntegrityAlgorithm": "SHA2-384",
        "Phase1DHGroup": 20,
        "Phase2DHGroup": 20,
    },
    "ikev1": {
        "Phase1EncryptionAlgorithm": "AES128",
        "Phase2EncryptionAlgorithm": "AES128",
        "Phase1IntegrityAlgorithm": "SHA1",
        "Phase2IntegrityAlgorithm": "SHA1",
        "Phase1DHGroup": 2,
        "Phase2DHGroup": 2,
    },
}


def _now() -> datetime:
    # Not django.utils.timezone: the simulator does not need Django, and time_machine
    # moves datetime.now as well.
    return datetime.now(UTC)


@dataclass
class Timings:
    """How long simulated AWS operations take."""

    replace_down_seconds: float = 5.0  # a replaced tunnel stays DOWN this long, then UP
    modify_seconds: float = 3.0  # connection stays 'modifying' this long after a modification
    auto_apply_delay_seconds: float = 0.0  # AWS applies this long after MaintenanceAutoAppliedAfter


@dataclass
class Throttling:
    """EC2's token buckets, per account and region: capacity and refill per second."""

    read_capacity: float = 100
    read_refill: float = 20
    write_capacity: float = 50
    write_refill: float = 5

    def scaled(self, factor: float) -> Throttling:
        return Throttling(
            read_capacity=self.read_capacity * factor,
            read_refill=self.read_refill * factor,
            write_capacity=self.write_capacity * factor,
            write_refill=self.write_refill * factor,
        )


@dataclass
class TunnelSpec:
    """One tunnel of a connection made with ``Simulator.create_connection``."""

    outside_ip: str | None = None  # auto-assigned if None
    status: str = UP  # telemetry UP / DOWN
    lifecycle_control: bool = True
    pending_maintenance: str = NONE  # "Available" / "None"
    auto_apply_after: datetime | None = None
    last_applied: datetime | None = None
    ike_version: str = "ikev2"


@dataclass(frozen=True)
class CallRecord:
    """One call of a simulated action, as AWS saw it."""

    at: datetime
    action: str
    account_id: str
    region: str
    params: dict[str, Any]
    # "ok", "throttled", "fault" (refused by an injected fault), or the EC2 error code.
    outcome: str
    request_id: str = ""
    # The injected error code the caller saw instead of the real answer, if any. With
    # inject_fault(..., applied=True) the outcome is what AWS did ("ok") and this is set.
    fault: str | None = None


class UnknownConnection(LookupError):
    """No VPN connection with that id in any simulated account or region."""


class UnknownTunnel(LookupError):
    """The connection has no tunnel with that outside IP address."""


@dataclass
class _Fault:
    code: str
    message: str
    http_status: int
    remaining: int
    applied: bool


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class _Tunnel:
    outside_ip: str
    inside_cidr: str
    steady_status: str  # what the tunnel settles to when not interrupted
    lifecycle_control: bool
    pending_maintenance: str
    auto_apply_after: datetime | None
    last_applied: datetime | None
    ike_version: str
    last_status_change: datetime
    bgp_routes: int  # AcceptedRouteCount while UP (0 with static routes)
    down_until: datetime | None = None  # an interruption in progress ends then
    replacing: bool = False  # the interruption is an endpoint replacement

    @property
    def status(self) -> str:
        return DOWN if self.down_until is not None else self.steady_status


@dataclass
class _ConnectionSim:
    static_routes_only: bool
    tunnels: list[_Tunnel]
    modifying_until: datetime | None = None


_TUNNEL_FIELDS = frozenset(
    {
        "status",
        "lifecycle_control",
        "pending_maintenance",
        "auto_apply_after",
        "last_applied",
        "ike_version",
        "last_status_change",
    }
)


def _check_tunnel_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - _TUNNEL_FIELDS
    if unknown:
        raise TypeError(f"Unknown tunnel field(s): {', '.join(sorted(unknown))}")
    if "status" in fields and fields["status"] not in (UP, DOWN):
        raise ValueError(f"status must be UP or DOWN, not {fields['status']!r}")
    if "pending_maintenance" in fields and fields["pending_maintenance"] not in (AVAILABLE, NONE):
        raise ValueError("pending_maintenance must be 'Available' or 'None'")
    if "ike_version" in fields and fields["ike_version"] not in _NEGOTIATED:
        raise ValueError("ike_version must be 'ikev1' or 'ikev2'")
    if "lifecycle_control" in fields and not isinstance(fields["lifecycle_control"], bool):
        raise ValueError("lifecycle_control must be a boolean")
    for name in ("auto_apply_after", "last_applied", "last_status_change"):
        value = fields.get(name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise ValueError(f"{name} must be an aware datetime or None")
    if "last_status_change" in fields and fields["last_status_change"] is None:
        raise ValueError("last_status_change cannot be None")


class Simulator:
    """The simulated AWS's own state and knobs. One per process: ``SIMULATOR``."""

    def __init__(self) -> None:
        # Re-entrant: a call holds it while moto serialises the answer, and the handlers
        # it runs take it again. moto's server is threaded.
        self._lock = threading.RLock()
        self.timings = Timings()
        self.throttling: Throttling | None = None
        self.telemetry_reversed = False
        self.call_log: list[CallRecord] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._faults: dict[str, deque[_Fault]] = {}
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        self._where: dict[str, tuple[str, str]] = {}  # connection id -> (account, region)
        self._used_ips: set[str] = set()
        self._rng = random.Random()
        # Throttling's clock; tests may replace it to refill buckets deterministically.
        self._monotonic: Callable[[], float] = time.monotonic

    # The public, in-process API ------------------------------------------------------

    def reset(self) -> None:
        """Default timings, no throttling, no faults, an empty call log.

        moto's resources are moto's to reset (``mock_aws`` does, on exit).
        """
        with self._lock:
            self.timings = Timings()
            self.throttling = None
            self.telemetry_reversed = False
            self.call_log.clear()
            self._counts.clear()
            self._faults.clear()
            self._buckets.clear()
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
            now = _now()
            if timings is not None:
                # Events due under the old timings happen under them.
                self._advance_everything(now)
                self.timings = timings
            if throttling is not self._UNCHANGED:
                self.throttling = throttling
                self._buckets.clear()  # full buckets, as after a quiet while
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
            _check_tunnel_fields(
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
                "ipsec.1", self._random_ip(_CUSTOMER_FIRST_OCTETS, self._rng), "65000"
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
            self._attach(connection, static_routes_only, specs, _now())
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
        _check_tunnel_fields(fields)
        with self._lock:
            now = _now()
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
            self._advance(connection, _now())
            tunnel = self._tunnel(connection, outside_ip)
            return {
                "outside_ip": tunnel.outside_ip,
                "status": tunnel.status,
                "steady_status": tunnel.steady_status,
                "status_message": self._status_message(tunnel),
                "last_status_change": tunnel.last_status_change,
                "accepted_route_count": tunnel.bgp_routes if tunnel.status == UP else 0,
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
            self._advance(connection, _now())
            return connection.state

    def inject_fault(
        self,
        action: str,
        code: str,
        message: str = "Injected fault",
        count: int = 1,
        http_status: int = 400,
        *,
        applied: bool = False,
    ) -> None:
        """Answer the next ``count`` calls of ``action`` with this EC2 error.

        With ``applied=True`` AWS acts on the call first and the answer is lost on the way
        back: the ambiguous failure that a mutating call must survive.
        """
        if action not in SIMULATED_ACTIONS:
            raise ValueError(f"{action} is not simulated; one of {sorted(SIMULATED_ACTIONS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.setdefault(action, deque()).append(
                _Fault(code, message, int(http_status), int(count), applied)
            )

    def calls(self, action: str | None = None, *, outcome: str | None = None) -> int:
        """How many calls of ``action`` (any, if None) ended with ``outcome`` (any)."""
        with self._lock:
            return sum(
                n
                for (a, o), n in self._counts.items()
                if (action is None or a == action) and (outcome is None or o == outcome)
            )

    def call_counts(self) -> dict[str, dict[str, int]]:
        """{action: {outcome: count}}."""
        with self._lock:
            counts: dict[str, dict[str, int]] = {}
            for (action, outcome), n in sorted(self._counts.items()):
                counts.setdefault(action, {})[outcome] = n
            return counts

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

    def _tunnel(self, connection: Any, outside_ip: str) -> _Tunnel:
        for tunnel in self._state(connection).tunnels:
            if tunnel.outside_ip == outside_ip:
                return tunnel
        raise UnknownTunnel(f"{connection.id} has no tunnel {outside_ip}")

    def _state(self, connection: Any) -> _ConnectionSim:
        state = getattr(connection, "vpnctl_sim", None)
        if state is None:
            # Made some other way (moto's backend directly): two plain tunnels, lifecycle
            # control off, as AWS creates them by default.
            specs = [TunnelSpec(lifecycle_control=False), TunnelSpec(lifecycle_control=False)]
            state = self._attach(connection, False, specs, _now())
        return state

    def _attach(
        self, connection: Any, static_routes_only: bool, specs: list[TunnelSpec], now: datetime
    ) -> _ConnectionSim:
        # Seeded by the connection id: the same id gets the same addresses.
        rng = random.Random(connection.id)
        tunnels = []
        inside_third = rng.randrange(0, 256)
        for index, spec in enumerate(specs):
            # A /30 per tunnel in 169.254.0.0/16; index * 4 keeps the two apart.
            inside_fourth = index * 4 + rng.randrange(0, 32) * 8
            ip = spec.outside_ip or self._random_ip(_AWS_FIRST_OCTETS, rng)
            self._used_ips.add(ip)
            tunnels.append(
                _Tunnel(
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
        state = _ConnectionSim(static_routes_only=static_routes_only, tunnels=tunnels)
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

    def _advance(self, connection: Any, now: datetime) -> _ConnectionSim:
        """Bring the connection up to ``now``, then render it for moto's serialiser."""
        state = self._state(connection)
        if connection.state != "deleted":
            for tunnel in state.tunnels:
                self._advance_tunnel(tunnel, now)
            if state.modifying_until is not None:
                if now >= state.modifying_until:
                    state.modifying_until = None
                    connection.state = "available"
                else:
                    connection.state = "modifying"
        self._render(connection, state)
        return state

    def _advance_tunnel(self, tunnel: _Tunnel, now: datetime) -> None:
        # Apply the due events in the order they happened: an interruption that ended
        # before AWS's own maintenance began must end first, or LastStatusChange is wrong.
        delay = timedelta(seconds=self.timings.auto_apply_delay_seconds)
        while True:
            due = None
            if (
                tunnel.pending_maintenance == AVAILABLE
                and tunnel.auto_apply_after is not None
                and not tunnel.replacing
            ):
                due = tunnel.auto_apply_after + delay
            end = tunnel.down_until
            if end is not None and end <= now and (due is None or end <= due):
                self._end_interruption(tunnel, end)
            elif due is not None and due <= now:
                self._start_replacement(tunnel, due)
            else:
                return

    def _start_replacement(self, tunnel: _Tunnel, at: datetime) -> None:
        tunnel.pending_maintenance = NONE
        tunnel.auto_apply_after = None
        tunnel.replacing = True
        self._interrupt(tunnel, at, at + timedelta(seconds=self.timings.replace_down_seconds))

    @staticmethod
    def _interrupt(tunnel: _Tunnel, start: datetime, until: datetime) -> None:
        if tunnel.down_until is None:
            if tunnel.steady_status == UP:
                tunnel.last_status_change = start
            tunnel.down_until = until
        else:
            tunnel.down_until = max(tunnel.down_until, until)

    @staticmethod
    def _end_interruption(tunnel: _Tunnel, at: datetime) -> None:
        tunnel.down_until = None
        if tunnel.replacing:
            tunnel.replacing = False
            tunnel.last_applied = at
        if tunnel.steady_status == UP:
            tunnel.last_status_change = at

    # Rendering for moto's serialiser ---------------------------------------------------

    @staticmethod
    def _status_message(tunnel: _Tunnel) -> str:
        if tunnel.status == DOWN:
            return "IPSEC IS DOWN"
        return f"{tunnel.bgp_routes} BGP ROUTES" if tunnel.bgp_routes else ""

    def _render(self, connection: Any, state: _ConnectionSim) -> None:
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
                "StatusMessage": self._status_message(t),
                "LastStatusChange": t.last_status_change,
                "AcceptedRouteCount": t.bgp_routes if t.status == UP else 0,
            }
            for t in state.tunnels
        ]
        if self.telemetry_reversed:
            telemetry.reverse()
        connection.vgw_telemetry = telemetry

    # Calls: throttling, faults, DryRun, the log -----------------------------------------

    def _handle_call(self, response: EC2Response, action: str) -> tuple[int, dict, str]:
        """Answer one call of a simulated action, and log it."""
        request_id = str(uuid.uuid4())
        account_id, region = response.current_account, response.region
        params = _plain_params(response)
        with self._lock:
            outcome, answer, fault = self._answer(response, action, account_id, region, params)
            self._record(action, account_id, region, params, outcome, request_id, fault)
        return _with_request_id(*answer, request_id)

    def _answer(
        self,
        response: EC2Response,
        action: str,
        account_id: str,
        region: str,
        params: dict[str, Any],
    ) -> tuple[str, tuple[int, dict, str], str | None]:
        """Throttling, then injected faults, then DryRun, then moto and our handlers.

        Returns the outcome for the log, the HTTP answer, and the injected fault's code.
        """
        if not self._take_token(account_id, region, action):
            # EC2 answers throttling with HTTP 503.
            return "throttled", _error(response, "RequestLimitExceeded", _THROTTLED, 503), None
        fault = self._next_fault(action)
        if fault is not None and not fault.applied:
            return (
                "fault",
                _error(response, fault.code, fault.message, fault.http_status),
                fault.code,
            )
        if params.get("DryRun"):
            return "DryRunOperation", _error(response, "DryRunOperation", _DRY_RUN, 412), None
        status, headers, body = _MOTO["call_action"](response)
        outcome = "ok" if status < 400 else _error_code(body)
        if fault is not None:
            # AWS acted (or refused) and the answer was lost: the caller sees only the fault.
            return (
                outcome,
                _error(response, fault.code, fault.message, fault.http_status),
                fault.code,
            )
        return outcome, (status, headers, body), None

    def _take_token(self, account_id: str, region: str, action: str) -> bool:
        limits = self.throttling
        if limits is None:
            return True
        if action in WRITE_ACTIONS:
            kind, capacity, refill = "write", limits.write_capacity, limits.write_refill
        else:
            kind, capacity, refill = "read", limits.read_capacity, limits.read_refill
        now = self._monotonic()
        bucket = self._buckets.get((account_id, region, kind))
        if bucket is None:
            bucket = self._buckets[(account_id, region, kind)] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * refill)
            bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        return False  # a refused call takes no token, as in EC2

    def _next_fault(self, action: str) -> _Fault | None:
        queue = self._faults.get(action)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        return fault

    _LOG_LIMIT = 20_000  # a demo server runs for days; counts are kept apart, untrimmed

    def _record(
        self,
        action: str,
        account_id: str,
        region: str,
        params: dict[str, Any],
        outcome: str,
        request_id: str,
        fault: str | None,
    ) -> None:
        self._counts[(action, outcome)] += 1
        self.call_log.append(
            CallRecord(_now(), action, account_id, region, params, outcome, request_id, fault)
        )
        if len(self.call_log) > self._LOG_LIMIT:
            del self.call_log[: len(self.call_log) - self._LOG_LIMIT]

    # The EC2 actions --------------------------------------------------------------------

    def _target(self, response: EC2Response, now: datetime) -> tuple[Any, _Tunnel]:
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

    def _replacement_status(self, response: EC2Response) -> ActionResult:
        with self._lock:
            connection, tunnel = self._target(response, _now())
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
            _, tunnel = self._target(response, _now())
            status: dict[str, Any] = {
                "IkeVersion": tunnel.ike_version,
                "ProvisioningStatus": "pending" if tunnel.replacing else "available",
            }
            if tunnel.replacing:
                status["ProvisioningStatusReason"] = "Tunnel endpoint replacement in progress"
            if tunnel.status == UP:
                # Negotiated algorithms exist only while IKE is up.
                status.update(_NEGOTIATED[tunnel.ike_version])
            return ActionResult({"ActiveVpnTunnelStatus": status})

    def _replace(self, response: EC2Response) -> ActionResult:
        with self._lock:
            now = _now()
            connection, tunnel = self._target(response, now)
            if connection.state != "available":
                raise EC2ClientError(
                    "IncorrectState",
                    f"The VPN connection {connection.id} is {connection.state}; "
                    "try again when it is available.",
                )
            if tunnel.pending_maintenance != AVAILABLE:
                raise InvalidParameterValue(
                    f"There is no pending maintenance for VPN tunnel {tunnel.outside_ip} "
                    f"of VPN connection {connection.id}."
                )
            self._start_replacement(tunnel, now)
            self._advance(connection, now)
            return ActionResult({"Return": True})

    def _modify(self, response: EC2Response) -> ActionResult:
        with self._lock:
            now = _now()
            connection, tunnel = self._target(response, now)
            if connection.state != "available":
                raise EC2ClientError(
                    "IncorrectState",
                    f"The VPN connection {connection.id} is {connection.state}; "
                    "try again when it is available.",
                )
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
            if ike_versions and ike_versions[0] in _NEGOTIATED:
                tunnel.ike_version = ike_versions[0]
            if enable is not None:
                tunnel.lifecycle_control = bool(enable)
            state = self._state(connection)
            modify_for = timedelta(seconds=self.timings.modify_seconds)
            # Any modification interrupts the tunnel while the connection is modifying.
            self._interrupt(tunnel, now, now + modify_for)
            # Switching lifecycle control starts pending maintenance at once, unless the
            # caller asked to skip it (SkipTunnelReplacement only matters for that flag).
            if enable is not None and pending and not skip:
                self._start_replacement(tunnel, now)
            state.modifying_until = now + modify_for
            connection.state = "modifying"
            self._render(connection, state)
            return ActionResult({"VpnConnection": connection})

    def _refresh_backend(self, backend: Any) -> None:
        with self._lock:
            now = _now()
            for connection in list(backend.vpn_connections.values()):
                self._advance(connection, now)


SIMULATOR = Simulator()


# Glue to moto ---------------------------------------------------------------------------


def _plain_params(response: EC2Response) -> dict[str, Any]:
    params = getattr(response, "params", None) or {}
    original = getattr(params, "original_dict", None)
    if callable(original):
        params = original()
    # A plain, JSON-able copy: the log outlives the request.
    return json.loads(json.dumps(params, default=str))


def _error(response: EC2Response, code: str, message: str, status: int) -> tuple[int, dict, str]:
    """An EC2 error answer, serialised by moto like its own."""
    _, headers, body = response.serialized(ActionResult(EC2ClientError(code, message)))
    return status, dict(headers), body


_THROTTLED = "Request limit exceeded."
_DRY_RUN = "Request would have succeeded, but DryRun flag is set."
_ERROR_CODE_RE = re.compile(r"<Code>([^<]+)</Code>")
_REQUEST_ID_RE = re.compile(r"<(requestId|RequestID)>[^<]*</\1>")


def _error_code(body: str | bytes) -> str:
    text = body.decode() if isinstance(body, bytes) else body
    match = _ERROR_CODE_RE.search(text)
    return match.group(1) if match else "UnknownError"


def _with_request_id(
    status: int, headers: dict, body: str | bytes, request_id: str
) -> tuple[int, dict, str]:
    # moto's EC2 answers all say "request-id"; AWS gives each call its own, and vpnctl
    # records it.
    text = body.decode() if isinstance(body, bytes) else body
    text = _REQUEST_ID_RE.sub(lambda m: f"<{m.group(1)}>{request_id}</{m.group(1)}>", text)
    headers = {k: v for k, v in headers.items() if k.lower() not in ("x-amzn-requestid", "status")}
    headers["x-amzn-requestid"] = request_id
    return status, headers, text


# moto's originals, kept for the wrappers.
_MOTO: dict[str, Callable[..., Any]] = {}


def _call_action(self: EC2Response) -> Any:
    action = self._get_action()
    if action in SIMULATED_ACTIONS:
        return SIMULATOR._handle_call(self, action)
    return _MOTO["call_action"](self)


def _describe_vpn_connections(self: EC2Response) -> ActionResult:
    SIMULATOR._refresh_backend(self.ec2_backend)
    return _MOTO["describe_vpn_connections"](self)


def _create_vpn_connection(self: EC2Response) -> ActionResult:
    result = _MOTO["create_vpn_connection"](self)
    connection = result.result["VpnConnection"]  # type: ignore[index]
    options = self._get_param("Options") or {}
    tunnel_options = list(options.get("TunnelOptions") or [])
    tunnel_options += [{}] * (2 - len(tunnel_options))
    specs = [
        TunnelSpec(
            lifecycle_control=bool(o.get("EnableTunnelLifecycleControl", False)),
            ike_version=next(
                (
                    v.get("Value")
                    for v in o.get("IKEVersions") or []
                    if v.get("Value") in _NEGOTIATED
                ),
                "ikev2",
            ),
        )
        for o in tunnel_options[:2]
    ]
    with SIMULATOR._lock:
        SIMULATOR._attach(connection, bool(options.get("StaticRoutesOnly")), specs, _now())
    return result


def _get_vpn_tunnel_replacement_status(self: EC2Response) -> ActionResult:
    return SIMULATOR._replacement_status(self)


def _get_active_vpn_tunnel_status(self: EC2Response) -> ActionResult:
    return SIMULATOR._active_status(self)


def _replace_vpn_tunnel(self: EC2Response) -> ActionResult:
    return SIMULATOR._replace(self)


def _modify_vpn_tunnel_options(self: EC2Response) -> ActionResult:
    return SIMULATOR._modify(self)


# The control channel (simulator only) ---------------------------------------------------

_JSON = {"Content-Type": "application/json"}
_DATETIME_FIELDS = ("auto_apply_after", "last_applied", "last_status_change")


def _json_answer(status: int, payload: dict[str, Any]) -> tuple[int, dict, str]:
    return status, dict(_JSON), json.dumps(payload)


def _control_ping(request: Any, full_url: str, headers: Any) -> tuple[int, dict, str]:
    return _json_answer(200, {"simulator": "vpnctl", "protocol": CONTROL_PROTOCOL})


def _control_set_tunnels(request: Any, full_url: str, headers: Any) -> tuple[int, dict, str]:
    if request.method != "POST":
        return _json_answer(405, {"error": "POST a JSON body"})
    try:
        updates = json.loads(request.data or b"{}")["tunnels"]
        parsed = []
        for update in updates:
            fields = dict(update)
            connection_id = fields.pop("connection_id")
            outside_ip = fields.pop("outside_ip")
            for name in _DATETIME_FIELDS:
                if fields.get(name) is not None:
                    fields[name] = datetime.fromisoformat(fields[name])
            _check_tunnel_fields(fields)
            parsed.append((connection_id, outside_ip, fields))
        for connection_id, outside_ip, fields in parsed:
            SIMULATOR.set_tunnel(connection_id, outside_ip, **fields)
    except (UnknownConnection, UnknownTunnel) as exc:
        return _json_answer(404, {"error": f"not found: {exc}"})
    except KeyError as exc:
        return _json_answer(400, {"error": f"missing field {exc}"})
    except (TypeError, ValueError) as exc:
        return _json_answer(400, {"error": str(exc)})
    return _json_answer(200, {"updated": len(parsed)})


def _control_inject_fault(request: Any, full_url: str, headers: Any) -> tuple[int, dict, str]:
    if request.method != "POST":
        return _json_answer(405, {"error": "POST a JSON body"})
    try:
        spec = json.loads(request.data or b"{}")
        allowed = {"action", "code", "message", "count", "http_status", "applied"}
        SIMULATOR.inject_fault(**{k: v for k, v in spec.items() if k in allowed})
    except (TypeError, ValueError) as exc:
        return _json_answer(400, {"error": str(exc)})
    return _json_answer(200, {"injected": spec["action"]})


def _control_calls(request: Any, full_url: str, headers: Any) -> tuple[int, dict, str]:
    return _json_answer(200, {"calls": SIMULATOR.call_counts()})


_CONTROL_ROUTES = {
    "{0}" + CONTROL_PATH + "/ping": _control_ping,
    "{0}" + CONTROL_PATH + "/set-tunnels": _control_set_tunnels,
    "{0}" + CONTROL_PATH + "/inject-fault": _control_inject_fault,
    "{0}" + CONTROL_PATH + "/calls": _control_calls,
}


# Installing -----------------------------------------------------------------------------

_install_lock = threading.Lock()


def install() -> None:
    """Add the missing EC2 actions and the control channel to moto. Idempotent.

    Raises RuntimeError if moto has come to implement one of the actions itself: then this
    module would shadow moto's version, and must be reviewed (moto is pinned for this).
    """
    with _install_lock:
        if getattr(EC2Response.call_action, "vpnctl_simulator", False):
            return
        # moto loads thousands of default AMIs into every EC2 region it touches: half a
        # second per region and per reset, for images a VPN simulator never shows. moto's
        # own switch, unless someone set it on purpose.
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        for action, method in ADDED_ACTIONS.items():
            if hasattr(EC2Response, method):
                raise RuntimeError(
                    f"moto now implements {action} itself: review maintenance/simulator.py "
                    "before upgrading moto."
                )
        _MOTO["call_action"] = EC2Response.call_action
        _MOTO["describe_vpn_connections"] = VPNConnections.describe_vpn_connections
        _MOTO["create_vpn_connection"] = VPNConnections.create_vpn_connection
        additions: dict[str, Callable[..., Any]] = {
            "get_vpn_tunnel_replacement_status": _get_vpn_tunnel_replacement_status,
            "get_active_vpn_tunnel_status": _get_active_vpn_tunnel_status,
            "replace_vpn_tunnel": _replace_vpn_tunnel,
            "modify_vpn_tunnel_options": _modify_vpn_tunnel_options,
            "describe_vpn_connections": _describe_vpn_connections,
            "create_vpn_connection": _create_vpn_connection,
            "call_action": _call_action,
        }
        for name, function in additions.items():
            function.vpnctl_simulator = True  # type: ignore[attr-defined]
            setattr(EC2Response, name, function)
        moto_api_urls.url_paths.update(_CONTROL_ROUTES)


@contextmanager
def simulated_aws(
    *, timings: Timings | None = None, throttling: Throttling | None = None
) -> Iterator[Simulator]:
    """moto's ``mock_aws`` with the additions installed and the simulator reset."""
    install()
    with mock_aws():
        SIMULATOR.reset()
        SIMULATOR.configure(timings=timings or Timings(), throttling=throttling)
        try:
            yield SIMULATOR
        finally:
            SIMULATOR.reset()


def start_server(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Serve the simulated AWS on 127.0.0.1 (``port=0``: any free port); return it and its URL.

    Stop it with ``server.stop()``. It shares this process's state (and ``mock_aws``, if
    active), so tests can set it up through ``SIMULATOR``.
    """
    install()
    if port:
        # moto's server thread dies silently on a taken port and start() then waits for
        # ever: find out here instead.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    return server, f"http://{host}:{bound_port}"
