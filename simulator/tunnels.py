"""A simulated tunnel and how time moves it; no moto here.

How time works
--------------
Nothing runs in the background. Each tunnel keeps timestamps (an interruption ends at
``down_until``; AWS applies pending maintenance by itself at ``MaintenanceAutoAppliedAfter +
Timings.auto_apply_delay_seconds``), and every call or read first advances the state to
``datetime.now(timezone.utc)``, applying each event at the moment it was due. time_machine
therefore moves the simulation. Throttling refills on ``time.monotonic()`` instead, so that
travelling in time does not hand out tokens (simulator/calls.py).

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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.constants import AVAILABLE, DOWN, NEGOTIATED, NONE, UP


def utc_now() -> datetime:
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
class TunnelSpec:
    """One tunnel of a connection made with ``Simulator.create_connection``."""

    outside_ip: str | None = None  # auto-assigned if None
    status: str = UP  # telemetry UP / DOWN
    lifecycle_control: bool = True
    pending_maintenance: str = NONE  # "Available" / "None"
    auto_apply_after: datetime | None = None
    last_applied: datetime | None = None
    ike_version: str = "ikev2"


class UnknownConnection(LookupError):
    """No VPN connection with that id in any simulated account or region."""


class UnknownTunnel(LookupError):
    """The connection has no tunnel with that outside IP address."""


@dataclass
class TunnelState:
    """One tunnel as the simulated AWS keeps it."""

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

    @property
    def status_message(self) -> str:
        if self.status == DOWN:
            return "IPSEC IS DOWN"
        return f"{self.bgp_routes} BGP ROUTES" if self.bgp_routes else ""

    @property
    def accepted_route_count(self) -> int:
        return self.bgp_routes if self.status == UP else 0

    def advance(self, now: datetime, timings: Timings) -> None:
        """Apply the events due by ``now``, each at the moment it was due."""
        # In the order they happened: an interruption that ended before AWS's own
        # maintenance began must end first, or LastStatusChange is wrong.
        delay = timedelta(seconds=timings.auto_apply_delay_seconds)
        while True:
            due = None
            if (
                self.pending_maintenance == AVAILABLE
                and self.auto_apply_after is not None
                and not self.replacing
            ):
                due = self.auto_apply_after + delay
            end = self.down_until
            if end is not None and end <= now and (due is None or end <= due):
                self.end_interruption(end)
            elif due is not None and due <= now:
                self.start_replacement(due, timings)
            else:
                return

    def start_replacement(self, at: datetime, timings: Timings) -> None:
        self.pending_maintenance = NONE
        self.auto_apply_after = None
        self.replacing = True
        self.interrupt(at, at + timedelta(seconds=timings.replace_down_seconds))

    def interrupt(self, start: datetime, until: datetime) -> None:
        if self.down_until is None:
            if self.steady_status == UP:
                self.last_status_change = start
            self.down_until = until
        else:
            self.down_until = max(self.down_until, until)

    def end_interruption(self, at: datetime) -> None:
        self.down_until = None
        if self.replacing:
            self.replacing = False
            self.last_applied = at
        if self.steady_status == UP:
            self.last_status_change = at


@dataclass
class ConnectionState:
    """What the simulator adds to one of moto's VPN connections (its ``vpnctl_sim``)."""

    static_routes_only: bool
    tunnels: list[TunnelState]
    modifying_until: datetime | None = None


TUNNEL_FIELDS = frozenset(
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


def check_tunnel_fields(fields: dict[str, Any]) -> None:
    """Refuse unknown fields and impossible values for ``Simulator.set_tunnel``."""
    unknown = set(fields) - TUNNEL_FIELDS
    if unknown:
        raise TypeError(f"Unknown tunnel field(s): {', '.join(sorted(unknown))}")
    if "status" in fields and fields["status"] not in (UP, DOWN):
        raise ValueError(f"status must be UP or DOWN, not {fields['status']!r}")
    if "pending_maintenance" in fields and fields["pending_maintenance"] not in (AVAILABLE, NONE):
        raise ValueError("pending_maintenance must be 'Available' or 'None'")
    if "ike_version" in fields and fields["ike_version"] not in NEGOTIATED:
        raise ValueError("ike_version must be 'ikev1' or 'ikev2'")
    if "lifecycle_control" in fields and not isinstance(fields["lifecycle_control"], bool):
        raise ValueError("lifecycle_control must be a boolean")
    for name in ("auto_apply_after", "last_applied", "last_status_change"):
        value = fields.get(name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise ValueError(f"{name} must be an aware datetime or None")
    if "last_status_change" in fields and fields["last_status_change"] is None:
        raise ValueError("last_status_change cannot be None")
