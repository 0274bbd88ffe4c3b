"""Calendar pages: the secret iCalendar feed, its management page, and the 30-day timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .. import calendar
from ..choices import ChangeStatus
from ..models import CalendarFeed, VpnConnection
from .helpers import paginate, require_perm

TIMELINE_DAYS = 30
# Connections a timeline page shows: a screenful or two, never the whole fleet.
ROWS_PER_PAGE = 50
VIEW_PERM = "maintenance.view_changerequest"


def _active_feed(user) -> CalendarFeed | None:
    return CalendarFeed.objects.filter(user=user, revoked_at__isnull=True).first()


def _feed_url(feed: CalendarFeed) -> str:
    return settings.SITE_URL + reverse("maintenance:calendar_feed", args=[feed.token])


# ---------------------------------------------------------------------------------------
# The feed and its page
# ---------------------------------------------------------------------------------------


@login_required
def calendar_page(request: HttpRequest) -> HttpResponse:
    """The user's own feed URL, with buttons to create a new one or revoke it."""
    require_perm(request, VIEW_PERM)
    feed = _active_feed(request.user)
    return render(
        request,
        "maintenance/calendar.html",
        {"feed": feed, "feed_url": _feed_url(feed) if feed else ""},
    )


@login_required
@require_POST
def calendar_create(request: HttpRequest) -> HttpResponse:
    """A new secret URL; the old one stops working at once."""
    require_perm(request, VIEW_PERM)
    revoked = CalendarFeed.issue(request.user)[1]
    if revoked:
        messages.success(request, _("New calendar URL created. The old URL no longer works."))
    else:
        messages.success(request, _("Calendar URL created. Add it to your calendar app."))
    return redirect("maintenance:calendar")


@login_required
@require_POST
def calendar_revoke(request: HttpRequest) -> HttpResponse:
    require_perm(request, VIEW_PERM)
    revoked = CalendarFeed.revoke_all(request.user)
    if revoked:
        messages.success(request, _("Calendar URL revoked. Calendars using it get nothing now."))
    return redirect("maintenance:calendar")


@never_cache
@require_GET
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The iCalendar document. No login: the secret token in the URL is the credential."""
    feed = (
        CalendarFeed.objects.select_related("user")
        .filter(token=token, revoked_at__isnull=True)
        .first()
    )
    # The same 404 for an unknown token, a revoked one and a user who lost access.
    if feed is None or not feed.user.is_active or not feed.user.has_perm(VIEW_PERM):
        raise Http404
    now = timezone.now()
    body = calendar.build_ics(calendar.feed_events(now), now)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="vpnctl.ics"'
    return response


# ---------------------------------------------------------------------------------------
# The timeline
# ---------------------------------------------------------------------------------------


@dataclass
class Bar:
    event: calendar.CalendarEvent
    left: float
    width: float

    @property
    def wide(self) -> bool:
        """Room for a label inside the bar (about three characters on a laptop)."""
        return self.width >= 2.5


@dataclass
class Row:
    label: str
    connection: VpnConnection | None
    bars: list[Bar] = field(default_factory=list)


def _percent(value: float) -> float:
    return round(max(0.0, min(100.0, value)), 3)


@login_required
def timeline(request: HttpRequest) -> HttpResponse:
    """The next 30 days: windows and AWS deadlines, a row per connection that has any."""
    require_perm(request, VIEW_PERM)
    zone = timezone.get_current_timezone()
    now = timezone.now()
    today = timezone.localtime(now).date()
    # Aware datetimes in the same zone subtract as wall-clock times: compute in UTC.
    start = datetime.combine(today, time.min, tzinfo=zone).astimezone(UTC)
    end = datetime.combine(today + timedelta(days=TIMELINE_DAYS), time.min, tzinfo=zone)
    end = end.astimezone(UTC)
    total = (end - start).total_seconds()

    def bar(event: calendar.CalendarEvent) -> Bar:
        left = (max(event.start, start) - start).total_seconds() / total * 100
        right = (min(event.end, end) - start).total_seconds() / total * 100
        return Bar(event=event, left=_percent(left), width=_percent(right - left))

    # A page of connections (the ones with anything in the period), then their events only.
    statuses = (ChangeStatus.PENDING_APPROVAL, *calendar.SCHEDULED)
    page = paginate(request, calendar.connections_with_events(start, end, statuses), ROWS_PER_PAGE)
    rows = {c.pk: Row(label=str(c), connection=c) for c in page.object_list}
    events = calendar.windows(start, end, statuses, connections=list(rows)) + calendar.deadlines(
        start, end, connections=list(rows)
    )
    for event in events:
        rows[event.connection.pk].bars.append(bar(event))
    ordered = list(rows.values())
    blackout_bars = [bar(calendar.blackout_event(b)) for b in calendar.blackouts(start, end)]

    days = []
    for i in range(TIMELINE_DAYS):
        day = today + timedelta(days=i)
        midnight = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
        days.append(
            {
                "date": day,
                "left": _percent((midnight - start).total_seconds() / total * 100),
                "weekend": day.weekday() >= 5,
            }
        )
    return render(
        request,
        "maintenance/timeline.html",
        {
            "rows": ordered,
            "page_obj": page,
            "blackout_bars": blackout_bars,
            "days": days,
            "day_width": round(100 / TIMELINE_DAYS, 3),
            "now_left": _percent((now - start).total_seconds() / total * 100),
            "start": start,
            "end": end,
            "zone_name": timezone.get_current_timezone_name(),
            "kinds": calendar.Kind,
        },
    )
