"""What could go wrong with a change to a tunnel, computed from the data vpnctl holds now.

The request form shows these before anyone submits, and the request page shows them
again while the request is open. Execution re-checks the blocking ones on fresh AWS data
(tasks.preflight); this list is what people should know when they ask and decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from . import times
from .choices import ChangeKind, ConnectionState, TunnelStatus
from .models import Tunnel

BAD = "bad"  # the change will be refused or blocked, or would cut the connection
WARN = "warn"  # it can run, but someone should think about it first
INFO = "info"  # worth knowing

_ORDER = {BAD: 0, WARN: 1, INFO: 2}

# A deadline this close is called out as a warning rather than mentioned as a fact.
DEADLINE_CLOSE = timedelta(days=7)
# Data older than this is said to be old.
STALE_SYNC = timedelta(hours=24)

_NOT_GIVEN: Any = object()


@dataclass(frozen=True)
class Risk:
    level: str  # BAD, WARN or INFO
    code: str  # a stable name, for tests and for styling
    text: str

    @property
    def level_label(self) -> str:
        return {BAD: _("Blocker"), WARN: _("Warning"), INFO: _("Note")}[self.level]


def _when(value: datetime) -> str:
    return _("%(when)s, %(relative)s") % {
        "when": times.local(value),
        "relative": times.relative(value),
    }


def risks_for(
    tunnel: Tunnel,
    kind: str,
    *,
    sibling: Tunnel | None = _NOT_GIVEN,
    now: datetime | None = None,
) -> list[Risk]:
    """The risks of changing `tunnel` this way, most serious first.

    `sibling` may be passed when the caller already has it (None: AWS reported only one
    tunnel); otherwise it is read, one query.
    """
    now = now or timezone.now()
    connection = tunnel.connection
    if sibling is _NOT_GIVEN:
        sibling = tunnel.sibling()
    risks: list[Risk] = []

    def add(level: str, code: str, text: str) -> None:
        risks.append(Risk(level, code, text))

    # Things that make the request pointless or that execution will refuse.
    if connection.gone_at is not None:
        add(BAD, "gone", _("This connection is gone from AWS: there is nothing to change."))
    elif connection.state != ConnectionState.AVAILABLE:
        add(
            WARN,
            "connection_state",
            _(
                "The connection is %(state)s, not available. If it still is when the window "
                "opens, execution will be blocked."
            )
            % {"state": connection.get_state_display()},
        )

    if sibling is None:
        add(
            BAD,
            "no_sibling",
            _(
                "AWS reports only one tunnel for this connection. Taking it down would cut the "
                "connection completely; execution will be blocked."
            ),
        )
    elif sibling.status == TunnelStatus.DOWN:
        add(
            BAD,
            "sibling_down",
            _(
                "The other tunnel (%(ip)s) is DOWN. This change would be a full outage of the "
                "connection: as long as it stays DOWN, execution will be blocked."
            )
            % {"ip": sibling.outside_ip},
        )
    elif sibling.status != TunnelStatus.UP:
        add(
            WARN,
            "sibling_unknown",
            _(
                "The status of the other tunnel (%(ip)s) is unknown. Execution checks it again "
                "and is blocked unless it is UP."
            )
            % {"ip": sibling.outside_ip},
        )

    # The maintenance and AWS's own deadline.
    deadline = tunnel.maintenance_auto_applied_after
    if kind == ChangeKind.REPLACE and not tunnel.has_pending_maintenance:
        add(
            BAD,
            "no_pending",
            _(
                "The last sync found no pending maintenance on this tunnel: there is nothing to "
                "apply, and AWS would refuse the call."
            ),
        )
    if tunnel.has_pending_maintenance:
        if deadline is None:
            add(
                WARN,
                "no_deadline",
                _(
                    "AWS has not said when it will apply this maintenance by itself: it may do "
                    "so at any time."
                ),
            )
        elif deadline <= now:
            add(
                BAD,
                "deadline_passed",
                _(
                    "AWS's own deadline passed at %(when)s: AWS may apply the maintenance by "
                    "itself at any moment, before your window."
                )
                % {"when": _when(deadline)},
            )
        else:
            add(
                WARN if deadline - now <= DEADLINE_CLOSE else INFO,
                "deadline",
                _(
                    "AWS applies this maintenance by itself at %(when)s. Your window must "
                    "end before that."
                )
                % {"when": _when(deadline)},
            )
    if tunnel.synced_at is None:
        add(
            WARN,
            "never_synced",
            _(
                "This tunnel's maintenance status has never been read from AWS. Execution reads "
                "it fresh, but what you see here may be wrong."
            ),
        )
    elif now - tunnel.synced_at > STALE_SYNC:
        add(
            INFO,
            "stale",
            _("This tunnel was last read from AWS at %(when)s. Execution reads it fresh.")
            % {"when": _when(tunnel.synced_at)},
        )

    # Lifecycle control.
    if kind == ChangeKind.ENABLE_LIFECYCLE:
        if tunnel.lifecycle_control:
            add(BAD, "already_on", _("Lifecycle control is already on for this tunnel."))
        add(
            WARN,
            "modify_interrupts",
            _(
                "Switching lifecycle control on modifies the tunnel: AWS interrupts it for up "
                "to several minutes, even if nothing else changes."
            ),
        )
        if tunnel.has_pending_maintenance:
            add(
                WARN,
                "applies_pending",
                _(
                    "This tunnel has pending maintenance. Unless you choose to skip the "
                    "replacement, AWS applies it at once, together with the switch."
                ),
            )
    if sibling is not None and not sibling.lifecycle_control:
        if kind == ChangeKind.ENABLE_LIFECYCLE:
            text = _(
                "The other tunnel (%(ip)s) lacks lifecycle control too. AWS can still replace "
                "it whenever it chooses: request lifecycle control for it as well, in a "
                "window that does not overlap this one."
            )
        else:
            text = _(
                "The other tunnel (%(ip)s) lacks lifecycle control: AWS may replace it when it "
                "chooses, even during this window, which would take both tunnels down."
            )
        add(WARN, "sibling_no_lifecycle", text % {"ip": sibling.outside_ip})

    # Routing: without BGP, failover and recovery are slower.
    if tunnel.accepted_route_count in (None, 0):
        add(
            WARN,
            "no_bgp",
            _(
                "No BGP routes were learned on this tunnel (static routes only, or BGP is not "
                "up). Traffic may not move to the other tunnel by itself, and tunnels without "
                "BGP have been seen to stay DOWN for up to an hour."
            ),
        )
    if tunnel.status == TunnelStatus.DOWN:
        add(
            INFO,
            "tunnel_down",
            _(
                "This tunnel is DOWN already. After the change it comes back UP only once IKE "
                "is negotiated again."
            ),
        )

    risks.sort(key=lambda r: _ORDER[r.level])
    return risks


def blocking(risks: list[Risk]) -> bool:
    return any(r.level == BAD for r in risks)
