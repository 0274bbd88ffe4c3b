"""What goes on a calendar: change windows, AWS's own deadlines and blackouts.

Used by the iCalendar feed (``build_ics``) and the timeline page; each reader asks for a
period and gets plain ``CalendarEvent`` rows, read in a fixed number of queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from icalendar import Calendar, Event

from .choices import ChangeStatus
from .models import BlackoutPeriod, ChangeRequest, Tunnel, VpnConnection, planned_before_deadline

# Statuses whose window is going to happen (or is happening): what a calendar shows.
SCHEDULED = ChangeStatus.SCHEDULED
# AWS applies the maintenance "soon after" its deadline, in its own cycle: an hour-long
# event marks the moment without pretending to know when AWS will act.
DEADLINE_LENGTH = timedelta(hours=1)
# The deadlines a day's feed event names; the rest it counts.
FEED_TUNNELS_LISTED = 10


class Kind:
    WINDOW = "window"
    WAITING = "waiting"  # a window still waiting for approval (timeline only)
    DEADLINE = "deadline"
    BLACKOUT = "blackout"


@dataclass
class CalendarEvent:
    uid: str
    kind: str
    start: datetime
    end: datetime
    summary: str
    description: str
    url: str
    connection: VpnConnection | None = None
    change: ChangeRequest | None = None
    tunnel: Tunnel | None = None
    blackout: BlackoutPeriod | None = None


def _host() -> str:
    return urlsplit(settings.SITE_URL).hostname or "vpnctl"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _connection_label(connection: VpnConnection) -> str:
    if connection.name:
        return f"{connection.vpn_connection_id} ({connection.name})"
    return connection.vpn_connection_id


def window_event(change: ChangeRequest) -> CalendarEvent:
    tunnel = change.tunnel
    connection = tunnel.connection
    link = settings.SITE_URL + reverse("maintenance:request", args=[change.pk])
    summary = _("#%(pk)s %(kind)s: %(connection)s tunnel %(ip)s") % {
        "pk": change.pk,
        "kind": change.get_kind_display(),
        "connection": _connection_label(connection),
        "ip": tunnel.outside_ip,
    }
    description = "\n".join(
        [
            _("Change window of request #%(pk)s (%(status)s).")
            % {"pk": change.pk, "status": change.get_status_display()},
            _("Account and region: %(account)s / %(region)s")
            % {"account": connection.account.name, "region": connection.region},
            _("Drafted by the maintenance policy %(policy)s.") % {"policy": change.policy.name}
            if change.policy_id
            else _("Requested by %(user)s.") % {"user": change.requester.get_username()},
            _("Details: %(link)s") % {"link": link},
        ]
    )
    return CalendarEvent(
        uid=f"change-{change.pk}@{_host()}",
        kind=Kind.WINDOW if change.status in SCHEDULED else Kind.WAITING,
        start=_utc(change.window_start),
        end=_utc(change.window_end),
        summary=summary,
        description=description,
        url=link,
        connection=connection,
        change=change,
        tunnel=tunnel,
    )


def deadline_event(tunnel: Tunnel) -> CalendarEvent:
    connection = tunnel.connection
    deadline = _utc(tunnel.maintenance_auto_applied_after)
    link = settings.SITE_URL + reverse("maintenance:connection", args=[connection.pk])
    summary = _("AWS deadline: %(connection)s tunnel %(ip)s") % {
        "connection": _connection_label(connection),
        "ip": tunnel.outside_ip,
    }
    # `planned` is annotated by deadlines(): models.planned_before_deadline, the one rule.
    planned = getattr(tunnel, "planned", None)
    description = "\n".join(
        [
            _(
                "After this moment AWS applies the pending maintenance to tunnel %(ip)s by "
                "itself, in its regular cycle. Request a change with a window before it."
            )
            % {"ip": tunnel.outside_ip},
            *(
                []
                if planned is None
                else [
                    _("An approved change applies it before then.")
                    if planned
                    else _("No approved change applies it before then yet.")
                ]
            ),
            _("Account and region: %(account)s / %(region)s")
            % {"account": connection.account.name, "region": connection.region},
            _("Details: %(link)s") % {"link": link},
        ]
    )
    return CalendarEvent(
        # A new deadline (AWS moved it) is a new event; the old one drops out of the feed.
        uid=f"deadline-{tunnel.pk}-{deadline:%Y%m%dT%H%M%SZ}@{_host()}",
        kind=Kind.DEADLINE,
        start=deadline,
        end=deadline + DEADLINE_LENGTH,
        summary=summary,
        description=description,
        url=link,
        connection=connection,
        tunnel=tunnel,
    )


def blackout_event(blackout: BlackoutPeriod) -> CalendarEvent:
    if blackout.account_id:
        scope = _("account %(account)s") % {"account": blackout.account.name}
    else:
        scope = _("every account")
    return CalendarEvent(
        uid=f"blackout-{blackout.pk}@{_host()}",
        kind=Kind.BLACKOUT,
        start=_utc(blackout.starts_at),
        end=_utc(blackout.ends_at),
        summary=_("Blackout: %(name)s (%(scope)s)") % {"name": blackout.name, "scope": scope},
        description=blackout.reason,
        url="",
        blackout=blackout,
    )


def window_changes(start: datetime, end: datetime, statuses: Any = SCHEDULED) -> QuerySet:
    """The changes whose window overlaps [start, end), in the given statuses."""
    return ChangeRequest.objects.filter(status__in=list(statuses)).overlapping(start, end)


def deadline_tunnels(start: datetime, end: datetime) -> QuerySet:
    """Live tunnels with pending maintenance whose deadline falls in [start, end)."""
    return (
        Tunnel.objects.live()
        .pending()
        .filter(maintenance_auto_applied_after__gte=start, maintenance_auto_applied_after__lt=end)
    )


def windows(
    start: datetime,
    end: datetime,
    statuses: Any = SCHEDULED,
    connections: list[int] | None = None,
) -> list[CalendarEvent]:
    """Change windows overlapping [start, end) (of some connections only), one query."""
    qs = window_changes(start, end, statuses)
    if connections is not None:
        qs = qs.filter(tunnel__connection__in=connections)
    qs = qs.select_related("tunnel__connection__account", "requester", "policy").order_by(
        "window_start", "pk"
    )
    return [window_event(change) for change in qs]


def deadlines(
    start: datetime, end: datetime, connections: list[int] | None = None
) -> list[CalendarEvent]:
    """Pending maintenance whose deadline falls in [start, end) (of some connections), one query."""
    qs = _deadline_tunnels(start, end)
    if connections is not None:
        qs = qs.filter(connection__in=connections)
    return [deadline_event(tunnel) for tunnel in qs]


def connections_with_events(start: datetime, end: datetime, statuses: Any = SCHEDULED) -> QuerySet:
    """The connections that have a window or a deadline in [start, end), by account and name.

    Exactly the connections whose events windows() and deadlines() return for the period.
    """
    # Two uncorrelated IN lists, each read once: a correlated EXISTS read the period's
    # windows again for every connection (2.6 s at 5,000 connections, bench/pages.py).
    return (
        VpnConnection.objects.filter(
            Q(pk__in=window_changes(start, end, statuses).values("tunnel__connection"))
            | Q(pk__in=deadline_tunnels(start, end).values("connection"))
        )
        .select_related("account")
        .order_by("account__name", "region", "vpn_connection_id")
    )


def blackouts(start: datetime, end: datetime, account_id: int | None = None) -> list[Any]:
    """Blackouts overlapping [start, end): all, or those that bind one account. One query."""
    qs = BlackoutPeriod.objects.overlapping(start, end).select_related("account")
    if account_id is not None:
        qs = qs.binding(account_id)
    return list(qs.order_by("starts_at", "pk"))


def _deadline_tunnels(start: datetime, end: datetime) -> QuerySet:
    """deadlines()'s rows: pending tunnels with their deadline in [start, end), planned or not."""
    return (
        deadline_tunnels(start, end)
        .annotate(planned=ExpressionWrapper(planned_before_deadline(), BooleanField()))
        .select_related("connection__account")
        .order_by("maintenance_auto_applied_after", "pk")
    )


def deadline_day_event(day: list[Tunnel]) -> CalendarEvent:
    """One UTC day's AWS deadlines as one event: a fleet has thousands of them.

    A day with one deadline is that tunnel's own event. Several make one event from the
    first deadline to an hour after the last, listing the first FEED_TUNNELS_LISTED.
    """
    if len(day) == 1:
        return deadline_event(day[0])
    first = _utc(day[0].maintenance_auto_applied_after)
    last = _utc(day[-1].maintenance_auto_applied_after)
    unplanned = sum(1 for tunnel in day if not tunnel.planned)
    link = settings.SITE_URL + reverse("maintenance:timeline")
    summary = ngettext(
        "AWS deadlines: %(count)d tunnel (%(unplanned)d without an approved change)",
        "AWS deadlines: %(count)d tunnels (%(unplanned)d without an approved change)",
        len(day),
    ) % {"count": len(day), "unplanned": unplanned}
    lines = [
        _(
            "After each moment AWS applies the pending maintenance to the tunnel by itself, "
            "in its regular cycle. Request a change with a window before it."
        )
    ]
    planned, not_planned = _("planned"), _("not planned")
    for tunnel in day[:FEED_TUNNELS_LISTED]:
        connection = tunnel.connection
        lines.append(
            _("%(time)s UTC: %(connection)s tunnel %(ip)s, %(account)s / %(region)s, %(plan)s")
            % {
                "time": f"{_utc(tunnel.maintenance_auto_applied_after):%H:%M}",
                "connection": _connection_label(connection),
                "ip": tunnel.outside_ip,
                "account": connection.account.name,
                "region": connection.region,
                "plan": planned if tunnel.planned else not_planned,
            }
        )
    if len(day) > FEED_TUNNELS_LISTED:
        lines.append(_("And %(count)d more.") % {"count": len(day) - FEED_TUNNELS_LISTED})
    lines.append(_("Details: %(link)s") % {"link": link})
    return CalendarEvent(
        # The day's event keeps its UID as its tunnels change.
        uid=f"deadlines-{first:%Y%m%d}@{_host()}",
        kind=Kind.DEADLINE,
        start=first,
        end=last + DEADLINE_LENGTH,
        summary=summary,
        description="\n".join(lines),
        url=link,
    )


def feed_events(now: datetime) -> list[CalendarEvent]:
    """Everything the iCalendar feed holds: recent and coming windows, coming deadlines
    (one event a UTC day, so that a fleet's thousands of deadlines stay a readable feed)."""
    start = now - timedelta(days=30)
    far = now + timedelta(days=3650)
    by_day: dict[str, list[Tunnel]] = {}
    for tunnel in _deadline_tunnels(now - timedelta(days=1), far):  # in deadline order
        day = f"{_utc(tunnel.maintenance_auto_applied_after):%Y%m%d}"
        by_day.setdefault(day, []).append(tunnel)
    return windows(start, far) + [deadline_day_event(day) for day in by_day.values()]


def build_ics(events: list[CalendarEvent], now: datetime) -> bytes:
    """The events as an iCalendar document, every time in UTC."""
    calendar = Calendar()
    calendar.add("prodid", "-//vpnctl//VPN maintenance//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", _("vpnctl: VPN maintenance"))
    stamp = _utc(now)
    for item in events:
        event = Event()
        event.add("uid", item.uid)
        event.add("dtstamp", stamp)
        event.add("dtstart", item.start)
        event.add("dtend", item.end)
        event.add("summary", item.summary)
        event.add("description", item.description)
        if item.url:
            event.add("url", item.url)
        if item.kind == Kind.DEADLINE:
            event.add("categories", ["deadline"])
            event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    return calendar.to_ical()


def upcoming_blackouts(account_id: int, now: datetime, limit: int = 10) -> list[BlackoutPeriod]:
    """Blackouts not over yet that bind this account (its own and the global ones)."""
    return list(
        BlackoutPeriod.objects.filter(ends_at__gt=now)
        .binding(account_id)
        .select_related("account")
        .order_by("starts_at", "pk")[:limit]
    )
