"""The iCalendar feed, its page (create, revoke) and the 30-day timeline."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from icalendar import Calendar

from maintenance.choices import (
    ChangeKind,
    ChangeStatus,
    ConnectionState,
    PendingMaintenance,
    TunnelStatus,
)
from maintenance.models import (
    BlackoutPeriod,
    CalendarFeed,
    ChangeRequest,
    Tunnel,
    UserProfile,
    VpnConnection,
)
from maintenance.views.calendar import ROWS_PER_PAGE
from tests.factories import make_account, make_connection, pending

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def text(response) -> str:
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def approved(requester, approver):
    """An approved replace on tunnel 1 of tokyo-office, tomorrow 10:00-11:00 UTC."""
    connection = make_connection(name="tokyo-office", tunnels=[pending(days=10), {}])
    tunnel = connection.tunnels.order_by("outside_ip")[0]
    start = NOW + timedelta(days=1, hours=7)
    change = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="patch",
        window_start=start,
        window_end=start + timedelta(hours=1),
    )
    return change.approve(user=approver)


def feed_for(user) -> CalendarFeed:
    return CalendarFeed.objects.create(user=user, token=f"tok-{user.username}-0123456789")


def feed_url(feed: CalendarFeed) -> str:
    return reverse("maintenance:calendar_feed", args=[feed.token])


def parse(response) -> Calendar:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


# ---------------------------------------------------------------------------------------
# The feed
# ---------------------------------------------------------------------------------------


def test_feed_holds_windows_and_deadlines_in_utc(client, requester, approved, settings):
    settings.SITE_URL = "https://vpnctl.example.com"
    # A request still waiting for approval is not on the calendar.
    other = make_connection(name="osaka-dc", tunnels=[pending(days=20), {}])
    waiting = ChangeRequest.submit(
        user=requester,
        tunnel=other.tunnels.order_by("outside_ip")[0],
        kind=ChangeKind.REPLACE,
        reason="later",
        window_start=NOW + timedelta(days=3),
        window_end=NOW + timedelta(days=3, hours=1),
    )
    response = client.get(feed_url(feed_for(requester)))  # no login
    events = {str(e["UID"]): e for e in parse(response).walk("VEVENT")}

    window = events[f"change-{approved.pk}@vpnctl.example.com"]
    assert window.decoded("DTSTART") == approved.window_start
    assert window.decoded("DTSTART").tzinfo is not None
    assert window.decoded("DTSTART").utcoffset() == timedelta(0)
    assert window.decoded("DTEND") == approved.window_end
    assert "tokyo-office" in str(window["SUMMARY"])
    assert approved.tunnel.outside_ip in str(window["SUMMARY"])
    assert "Apply pending maintenance" in str(window["SUMMARY"])
    link = f"https://vpnctl.example.com/requests/{approved.pk}/"
    assert link in str(window["DESCRIPTION"])
    assert b"DTSTART:20261126T100000Z" in response.content

    deadlines = [e for uid, e in events.items() if uid.startswith("deadline-")]
    assert len(deadlines) == 2  # tokyo-office's and osaka-dc's pending tunnels
    tokyo = next(e for e in deadlines if "tokyo-office" in str(e["SUMMARY"]))
    assert tokyo.decoded("DTSTART") == approved.tunnel.maintenance_auto_applied_after
    assert tokyo.decoded("DTSTART").utcoffset() == timedelta(0)
    assert str(tokyo["UID"]) == (
        f"deadline-{approved.tunnel.pk}-20261205T030000Z@vpnctl.example.com"
    )
    assert not any(uid.startswith(f"change-{waiting.pk}@") for uid in events)


def test_uids_are_stable_between_fetches(client, requester, approved):
    url = feed_url(feed_for(requester))
    first = sorted(str(e["UID"]) for e in parse(client.get(url)).walk("VEVENT"))
    second = sorted(str(e["UID"]) for e in parse(client.get(url)).walk("VEVENT"))
    assert first == second and len(first) == 2


def test_unknown_and_revoked_tokens_get_404(client, requester, approved):
    feed = feed_for(requester)
    assert client.get(reverse("maintenance:calendar_feed", args=["nope"])).status_code == 404
    CalendarFeed.objects.filter(pk=feed.pk).update(revoked_at=NOW)
    assert client.get(feed_url(feed)).status_code == 404


def test_inactive_user_feed_gets_404(client, requester, approved):
    feed = feed_for(requester)
    requester.is_active = False
    requester.save()
    assert client.get(feed_url(feed)).status_code == 404


def test_another_users_token_shows_the_same_events(client, requester, approver, approved):
    mine = parse(client.get(feed_url(feed_for(requester))))
    theirs = parse(client.get(feed_url(feed_for(approver))))
    assert sorted(str(e["UID"]) for e in mine.walk("VEVENT")) == sorted(
        str(e["UID"]) for e in theirs.walk("VEVENT")
    )


def test_a_days_many_deadlines_are_one_event_that_counts_and_lists_them(
    client, requester, settings
):
    settings.SITE_URL = "https://vpnctl.example.com"
    account = make_account()
    connections = [
        make_connection(
            account=account,
            name=f"site-{i:02d}",
            tunnels=[
                {
                    **pending(days=10),
                    "outside_ip": f"198.51.100.{i + 1}",
                    "maintenance_auto_applied_after": NOW + timedelta(days=10, minutes=i),
                },
                {"outside_ip": f"203.0.113.{i + 1}"},
            ],
        )
        for i in range(12)
    ]
    events = [e for e in parse(client.get(feed_url(feed_for(requester)))).walk("VEVENT")]
    assert len(events) == 1  # twelve deadlines on 2026-12-05 (UTC): one event
    day = events[0]
    assert str(day["UID"]) == "deadlines-20261205@vpnctl.example.com"
    assert str(day["SUMMARY"]) == "AWS deadlines: 12 tunnels (12 without an approved change)"
    assert day.decoded("DTSTART") == NOW + timedelta(days=10)
    assert day.decoded("DTEND") == NOW + timedelta(days=10, minutes=11, hours=1)
    description = str(day["DESCRIPTION"])
    first = connections[0].vpn_connection_id
    assert (
        f"03:00 UTC: {first} (site-00) tunnel 198.51.100.1, default / ap-northeast-1, not planned"
        in description
    )
    assert "site-09" in description and "site-10" not in description  # ten listed
    assert "And 2 more." in description
    assert "https://vpnctl.example.com/timeline/" in description


def test_feed_query_count_is_constant(client, requester, django_assert_max_num_queries):
    feed = feed_for(requester)
    for size in (10, 300):
        bulk_connections(size, prefix=f"f{size}")
        with django_assert_max_num_queries(6):
            calendar = parse(client.get(feed_url(feed)))
        assert len(calendar.walk("VEVENT")) >= size


# ---------------------------------------------------------------------------------------
# The calendar page
# ---------------------------------------------------------------------------------------


def test_page_creates_shows_and_revokes_the_url(client, requester, settings):
    settings.SITE_URL = "https://vpnctl.example.com"
    client.force_login(requester)
    page = text(client.get(reverse("maintenance:calendar")))
    assert "You have no calendar URL yet" in page

    response = client.post(reverse("maintenance:calendar_create"), follow=True)
    feed = CalendarFeed.objects.get(user=requester)
    assert len(feed.token) >= 43  # secrets.token_urlsafe(32)
    page = text(response)
    assert "Calendar URL created" in page
    assert f"https://vpnctl.example.com/calendar/{feed.token}.ics" in response.content.decode()
    assert client.get(feed_url(feed)).status_code == 200

    # A new URL revokes the old one.
    response = client.post(reverse("maintenance:calendar_create"), follow=True)
    assert "The old URL no longer works" in text(response)
    feed.refresh_from_db()
    assert feed.revoked_at == NOW
    new = CalendarFeed.objects.get(user=requester, revoked_at__isnull=True)
    assert client.get(feed_url(feed)).status_code == 404
    assert client.get(feed_url(new)).status_code == 200

    response = client.post(reverse("maintenance:calendar_revoke"), follow=True)
    assert "Calendar URL revoked" in text(response)
    assert "You have no calendar URL yet" in text(response)
    assert client.get(feed_url(new)).status_code == 404
    assert not CalendarFeed.objects.filter(revoked_at__isnull=True).exists()


def test_page_never_shows_someone_elses_token(client, requester, approver):
    theirs = feed_for(approver)
    client.force_login(requester)
    response = client.get(reverse("maintenance:calendar"))
    assert theirs.token not in response.content.decode()
    assert "You have no calendar URL yet" in text(response)
    client.post(reverse("maintenance:calendar_create"))
    response = client.get(reverse("maintenance:calendar"))
    assert theirs.token not in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.revoked_at is None  # my new URL did not revoke theirs


def test_page_needs_login_and_changes_need_post(client, requester, outsider):
    url = reverse("maintenance:calendar")
    assert client.get(url).status_code == 302
    client.force_login(requester)
    assert client.get(reverse("maintenance:calendar_create")).status_code == 405
    assert client.get(reverse("maintenance:calendar_revoke")).status_code == 405
    client.force_login(outsider)
    assert client.get(url).status_code == 403
    assert client.post(reverse("maintenance:calendar_create")).status_code == 403


# ---------------------------------------------------------------------------------------
# The timeline
# ---------------------------------------------------------------------------------------


def bulk_connections(n: int, prefix: str = "c") -> list[VpnConnection]:
    """n connections, each with a pending tunnel (deadline within 30 days) and an approved
    window on its other tunnel."""
    account = make_account()
    connections = VpnConnection.objects.bulk_create(
        VpnConnection(
            account=account,
            region="ap-northeast-1",
            vpn_connection_id=f"vpn-{prefix}{i:08d}",
            name=f"{prefix}-site-{i}",
            state=ConnectionState.AVAILABLE,
            first_seen=NOW,
            last_seen=NOW,
        )
        for i in range(n)
    )
    tunnels = Tunnel.objects.bulk_create(
        Tunnel(
            connection=c,
            outside_ip=f"10.{i // 250 % 250}.{i % 250}.{j + 1}",
            status=TunnelStatus.UP,
            pending_maintenance=PendingMaintenance.AVAILABLE if j == 0 else "None",
            maintenance_auto_applied_after=NOW + timedelta(days=5 + i % 20) if j == 0 else None,
        )
        for i, c in enumerate(connections)
        for j in range(2)
    )
    from django.contrib.auth.models import User

    user = User.objects.get(username="rei")
    ChangeRequest.objects.bulk_create(
        ChangeRequest(
            kind=ChangeKind.REPLACE,
            tunnel=t,
            requester=user,
            reason="bulk",
            window_start=NOW + timedelta(days=2),
            window_end=NOW + timedelta(days=2, hours=2),
            status=ChangeStatus.APPROVED,
            fingerprint="x",
        )
        for t in tunnels[1::2]
    )
    return connections


def test_timeline_shows_windows_deadlines_and_blackouts(client, requester, approved):
    UserProfile.objects.create(user=requester, time_zone="Asia/Tokyo")
    make_connection(name="quiet-site")  # nothing pending, no request: no row
    BlackoutPeriod.objects.create(
        name="Year-end freeze",
        starts_at=NOW + timedelta(days=20),
        ends_at=NOW + timedelta(days=24),
    )
    client.force_login(requester)
    response = client.get(reverse("maintenance:timeline"))
    assert response.status_code == 200
    page = text(response)
    html = response.content.decode()
    assert "Timeline: the next 30 days" in page
    assert "tokyo-office" in page and "quiet-site" not in page
    assert f"Request #{approved.pk}, Apply pending maintenance on tunnel" in page
    # Times and day gridlines in the user's zone.
    assert "2026-11-26 19:00 JST – 2026-11-26 20:00 JST" in page
    assert f"AWS deadline for tunnel {approved.tunnel.outside_ip}: 2026-12-05 12:00 JST" in page
    assert "Asia/Tokyo" in page
    # Today starts at midnight in Tokyo (15:00 UTC the day before); the window opens at
    # 10:00 UTC tomorrow = 19:00 JST on day 1 of 30: (24 + 19) h / 720 h = 5.972 %.
    # timeline.js places it there (the Content-Security-Policy refuses style attributes).
    assert 'data-left="5.972" data-width="0.139"' in html
    assert "maintenance/timeline.js" in html and "style=" not in html
    assert "Year-end freeze" in page and "Blackouts" in page
    # A legend says what the shapes mean.
    for label in ("Approved or running change window", "AWS deadline", "Blackout", "Now"):
        assert label in page


def test_timeline_empty(client, requester):
    client.force_login(requester)
    page = text(client.get(reverse("maintenance:timeline")))
    assert "No change windows and no AWS deadlines in the next 30 days." in page


@pytest.mark.parametrize("size", [10, 1000])
def test_timeline_query_count_is_constant(client, requester, size, django_assert_max_num_queries):
    bulk_connections(size)
    client.force_login(requester)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("maintenance:timeline"))
    assert response.status_code == 200
    html = response.content.decode()
    shown = min(size, ROWS_PER_PAGE)  # a page of connections, each with its window and deadline
    assert html.count('class="tl-mark tl-deadline"') == shown
    assert html.count('class="tl-bar tl-window"') == shown
    assert f"in the period are shown: {size} connections." in text(response)


def test_timeline_pages_through_the_fleet(client, requester):
    bulk_connections(ROWS_PER_PAGE + 5)
    client.force_login(requester)
    first = client.get(reverse("maintenance:timeline")).content.decode()
    assert "Page 1 of 2" in first and 'href="?page=2" rel="next"' in first
    last = client.get(reverse("maintenance:timeline"), {"page": 2}).content.decode()
    assert last.count('class="tl-mark tl-deadline"') == 5
    # Every connection is on exactly one page.
    ids = re.findall(r'class="mono">(vpn-[0-9a-z]+)</a>', first + last)
    assert len(ids) == len(set(ids)) == ROWS_PER_PAGE + 5


def test_timeline_day_labels_follow_the_zone(client, requester):
    UserProfile.objects.create(user=requester, time_zone="America/Los_Angeles")
    client.force_login(requester)
    html = client.get(reverse("maintenance:timeline")).content.decode()
    # 03:00 UTC on the 25th is still the 24th in Los Angeles: the scale starts there.
    first_day = re.search(r'class="tl-day[^"]*"[^>]*>(.*?)</small>', html, re.S)
    assert first_day and "<b>Nov</b><span>24</span><small>Tue" in first_day.group(0)
    assert "2026-11-24 00:00 PST" in text(client.get(reverse("maintenance:timeline")))


def test_creating_and_revoking_a_calendar_url_is_audited_without_the_token(client, requester):
    from maintenance.choices import AuditAction
    from maintenance.models import AuditEvent, CalendarFeed

    client.force_login(requester)
    client.post(reverse("maintenance:calendar_create"))
    client.post(reverse("maintenance:calendar_create"))
    client.post(reverse("maintenance:calendar_revoke"))
    actions = list(AuditEvent.objects.values_list("action", "actor_name"))
    assert actions == [
        (AuditAction.CALENDAR_FEED_ISSUED, "rei"),
        (AuditAction.CALENDAR_FEED_ISSUED, "rei"),
        (AuditAction.CALENDAR_FEED_REVOKED, "rei"),
    ]
    tokens = list(CalendarFeed.objects.values_list("token", flat=True))
    for event in AuditEvent.objects.all():
        text = event.message + str(event.details)
        assert not any(token in text for token in tokens)
    assert AuditEvent.objects.order_by("seq")[1].details["older_revoked"] == 1
