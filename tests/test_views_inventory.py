"""The inventory pages: connection list and detail, sync runs, sync now, preferences."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from maintenance.choices import (
    ConnectionState,
    SyncStatus,
    SyncTrigger,
    TunnelStatus,
)
from maintenance.models import SyncResult, SyncRun, UserProfile, VpnConnection
from tests.factories import make_account, make_connection, pending

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIST_URL = reverse("maintenance:connections")

# Session, user, profile (time zone middleware), the user's permissions (2), the region and
# account choices of the filters, the count, the page, its tunnels. More is a query per row.
LIST_MAX_QUERIES = 10
SYNC_RUNS_MAX_QUERIES = 9


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def rei(client, requester):
    client.force_login(requester)
    return client


@pytest.fixture
def admin_client_(admin_user):
    client = Client()  # not the `client` fixture: a test may use both personas
    client.force_login(admin_user)
    return client


def ids_on(response) -> list[str]:
    """The connection ids the list shows, in order."""
    return re.findall(
        r'href="/connections/\d+/"[^>]*>(vpn-[0-9a-f]+)</a>', response.content.decode()
    )


def text_of(response) -> str:
    """The page as a user reads it: tags stripped, whitespace collapsed."""
    html = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html)


# --- access ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        LIST_URL,
        reverse("maintenance:connection", args=[1]),
        reverse("maintenance:sync_runs"),
        reverse("maintenance:preferences"),
        reverse("maintenance:home"),
    ],
)
def test_pages_need_a_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_someone_without_a_role_cannot_see_the_inventory(client, outsider):
    connection = make_connection()
    client.force_login(outsider)
    assert client.get(LIST_URL).status_code == 403
    assert client.get(reverse("maintenance:connection", args=[connection.pk])).status_code == 403
    assert client.get(reverse("maintenance:sync_runs")).status_code == 403


def test_home_is_the_dashboard(rei):
    # The dashboard itself is tested in tests/test_dashboard.py.
    response = rei.get(reverse("maintenance:home"))
    assert response.status_code == 200
    assert "<h1>Dashboard</h1>" in response.content.decode()


def test_the_login_page_has_a_labelled_form(client, db):
    html = client.get(reverse("login")).content.decode()
    assert '<label for="id_username">Username</label>' in html
    assert '<label for="id_password">Password</label>' in html


def test_base_page_shows_user_zone_nav_and_a_post_logout(rei, admin_user, client):
    html = rei.get(LIST_URL).content.decode()
    assert "<main" in html
    assert 'aria-current="page">Connections</a>' in html
    assert ">Sync runs</a>" in html
    assert ">rei<" in html and ">UTC</a>" in html
    assert re.search(r'<form method="post" action="/logout/"', html)
    assert ">Admin</a>" not in html  # requesters are not staff

    client.force_login(admin_user)
    assert ">Admin</a>" in client.get(LIST_URL).content.decode()


# --- the list: filters, search, pagination ---------------------------------------------


@pytest.fixture
def inventory(db):
    """A small inventory with one connection for each filter to find."""
    tokyo = make_account("default", "123456789012")
    second = make_account("second", "210987654321")
    return {
        "plain": make_connection(tokyo, name="plain"),
        "pending": make_connection(tokyo, name="patch-me", tunnels=[pending(days=5), {}]),
        "half": make_connection(tokyo, name="half", tunnels=[{"lifecycle_control": False}, {}]),
        "down": make_connection(tokyo, name="down", tunnels=[{"status": TunnelStatus.DOWN}, {}]),
        "virginia": make_connection(second, region="us-east-1", name="virginia"),
        "modifying": make_connection(tokyo, name="busy", state=ConnectionState.MODIFYING),
        "gone": _gone(make_connection(second, name="gone")),
    }


def _gone(connection: VpnConnection) -> VpnConnection:
    connection.gone_at = timezone.now()
    connection.save(update_fields=["gone_at"])
    return connection


def _ids(*connections: VpnConnection) -> set[str]:
    return {c.vpn_connection_id for c in connections}


def test_list_shows_every_present_connection_with_its_tunnels(rei, inventory):
    response = rei.get(LIST_URL)
    assert response.status_code == 200
    shown = set(ids_on(response))
    assert shown == _ids(*inventory.values()) - _ids(inventory["gone"])
    text = text_of(response)
    assert "6 connections" in text
    half = inventory["half"]
    row = re.search(rf"{half.vpn_connection_id}.*?</tr>", response.content.decode(), re.S).group(0)
    assert row.count('badge-ok" data-status="UP"') == 2
    assert 'data-status="off">off<' in row and 'data-status="on">on<' in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("account={second}", ["virginia"]),
        ("region=us-east-1", ["virginia"]),
        ("state=modifying", ["modifying"]),
        ("pending=yes", ["pending"]),
        ("lifecycle_off=on", ["half"]),
        ("tunnel_down=on", ["down"]),
        ("include_gone=on&account={second}", ["virginia", "gone"]),
        ("pending=yes&region=us-east-1", []),
    ],
)
def test_filters(rei, inventory, query, expected):
    second = inventory["virginia"].account_id
    response = rei.get(f"{LIST_URL}?{query.format(second=second)}")
    assert set(ids_on(response)) == _ids(*(inventory[k] for k in expected))
    if not expected:
        assert "No connection matches these filters." in text_of(response)


def test_pending_no_leaves_out_the_pending_one(rei, inventory):
    shown = set(ids_on(rei.get(f"{LIST_URL}?pending=no")))
    assert inventory["pending"].vpn_connection_id not in shown
    assert inventory["plain"].vpn_connection_id in shown


def test_the_list_shows_the_nearest_deadline_in_the_users_zone(rei, requester, frozen):
    UserProfile.objects.create(user=requester, time_zone="Asia/Tokyo")
    make_connection(tunnels=[pending(days=9), pending(days=5)])
    text = text_of(rei.get(LIST_URL))
    assert "on both tunnels" in text
    assert "AWS applies it itself after 2026-11-30 21:00 JST (in 5 days)" in text


def test_a_bad_filter_value_is_ignored_not_an_error(rei, inventory):
    response = rei.get(f"{LIST_URL}?account=999999&state=nonsense")
    assert response.status_code == 200
    assert len(ids_on(response)) == 6


@pytest.mark.parametrize(
    ("search", "finds"),
    [
        ("payments", True),  # a tag value, any case
        ("PAY", True),
        ("東京", True),  # non-ASCII tag value (SQLite stores it as \uXXXX)
        ('say "hi"', True),  # quotes are escaped inside the stored JSON
        ("ledger-eu", True),  # the Name
        ("nothing-like-it", False),
    ],
)
def test_search_finds_tag_values_on_this_database(rei, db, search, finds):
    target = make_connection(
        name="ledger-eu",
        tags={"Name": "ledger-eu", "Team": "Payments", "Site": "東京 DC", "Note": 'say "hi"'},
    )
    make_connection(name="other", tags={"Team": "Identity"})
    shown = ids_on(rei.get(LIST_URL, {"q": search}))
    assert shown == ([target.vpn_connection_id] if finds else [])


def test_search_finds_a_connection_by_its_id(rei, db):
    target = make_connection()
    make_connection()
    assert ids_on(rei.get(LIST_URL, {"q": target.vpn_connection_id[-6:]})) == [
        target.vpn_connection_id
    ]


def test_pages_of_50_keep_the_filters(rei, db):
    account = make_account()
    for i in range(60):
        make_connection(account, region="eu-west-1", name=f"eu-{i}")
    for i in range(3):
        make_connection(account, region="us-east-1", name=f"us-{i}")

    first = rei.get(LIST_URL, {"region": "eu-west-1"})
    assert len(ids_on(first)) == 50
    assert "Page 1 of 2" in text_of(first)
    next_link = re.search(r'<a href="([^"]+)" rel="next">Next</a>', first.content.decode())
    assert next_link, "no Next link"
    href = next_link.group(1).replace("&amp;", "&")
    assert "region=eu-west-1" in href and "page=2" in href

    second = rei.get(LIST_URL + href)
    assert len(ids_on(second)) == 10
    assert not set(ids_on(second)) & set(ids_on(first))
    assert all(
        VpnConnection.objects.get(vpn_connection_id=i).region == "eu-west-1" for i in ids_on(second)
    )
    prev = re.search(r'<a href="([^"]+)" rel="prev">', second.content.decode()).group(1)
    assert "region=eu-west-1" in prev.replace("&amp;", "&")


def test_list_query_count_does_not_grow_with_the_data(rei, db, django_assert_max_num_queries):
    account = make_account()
    for _ in range(10):
        make_connection(account, tunnels=[pending(3), {"lifecycle_control": False}])
    with django_assert_max_num_queries(LIST_MAX_QUERIES) as small:
        assert len(ids_on(rei.get(LIST_URL, {"q": "office", "pending": "yes"}))) == 10
    for _ in range(190):
        make_connection(account, tunnels=[pending(3), {"lifecycle_control": False}])
    with django_assert_max_num_queries(LIST_MAX_QUERIES) as large:
        assert len(ids_on(rei.get(LIST_URL, {"q": "office", "pending": "yes"}))) == 50
    assert len(small.captured_queries) == len(large.captured_queries)


# --- the detail page --------------------------------------------------------------------


def detail(client, connection):
    return client.get(reverse("maintenance:connection", args=[connection.pk]))


def test_detail_of_an_unknown_connection_is_404(rei, db):
    assert rei.get(reverse("maintenance:connection", args=[4242])).status_code == 404


def test_detail_shows_both_tunnels_in_ip_order_with_the_deadline(rei, requester, frozen):
    UserProfile.objects.create(user=requester, time_zone="Asia/Tokyo")
    connection = make_connection(
        name="osaka-dc",
        tags={"Name": "osaka-dc", "Team": "Payments"},
        tunnels=[
            # Stored first, but .10 sorts after .9: it is Tunnel 2.
            {"outside_ip": "203.0.113.10", **pending(days=5)},
            {
                "outside_ip": "203.0.113.9",
                "status": TunnelStatus.DOWN,
                "status_message": "IPSEC IS DOWN",
            },
        ],
    )
    response = detail(rei, connection)
    html = response.content.decode()
    text = text_of(response)

    headings = re.findall(r"<h3 id=\"tunnel-\d+-heading\">([^<]+)</h3>", html)
    assert headings == ["Tunnel 1 — 203.0.113.9", "Tunnel 2 — 203.0.113.10"]
    for tunnel in connection.tunnels.all():
        assert f'id="tunnel-{tunnel.pk}"' in html
    assert "IPSEC IS DOWN" in text
    assert "AWS applies it itself after 2026-11-30 21:00 JST (in 5 days)" in text
    assert "Team = Payments" in text
    assert "osaka-dc" in text and connection.account.name in text
    assert connection.vpn_gateway_id in text
    assert "Lifecycle control is on for only one" not in text


def test_detail_warns_when_only_one_tunnel_has_lifecycle_control(rei, db):
    connection = make_connection(tunnels=[{"lifecycle_control": False}, {}])
    text = text_of(detail(rei, connection))
    assert "Lifecycle control is on for only one of the two tunnels." in text
    assert "People forget the second tunnel" in text
    assert "Off on this tunnel only" in text


def test_detail_warns_when_lifecycle_control_is_off_on_both(rei, db):
    connection = make_connection(
        tunnels=[{"lifecycle_control": False}, {"lifecycle_control": False}]
    )
    text = text_of(detail(rei, connection))
    assert "Lifecycle control is off on both tunnels." in text
    assert "only one of the two" not in text


def test_detail_says_when_a_connection_is_gone_from_aws(rei, db):
    connection = _gone(make_connection())
    assert "Gone from AWS." in text_of(detail(rei, connection))


def test_last_confirmed_is_the_latest_sync_that_did_not_fail(rei, db, frozen):
    connection = make_connection(region="ap-northeast-1")
    ok_run = SyncRun.objects.create(status=SyncStatus.OK)
    SyncResult.objects.create(
        run=ok_run,
        account=connection.account,
        region="ap-northeast-1",
        finished_at=NOW - timedelta(hours=2),
    )
    failed_run = SyncRun.objects.create(status=SyncStatus.FAILED)
    SyncResult.objects.create(
        run=failed_run,
        account=connection.account,
        region="ap-northeast-1",
        finished_at=NOW - timedelta(minutes=5),
        failed=True,
    )
    other_region = SyncRun.objects.create(status=SyncStatus.OK)
    SyncResult.objects.create(
        run=other_region,
        account=connection.account,
        region="us-east-1",
        finished_at=NOW - timedelta(minutes=1),
    )
    assert "Last confirmed 2026-11-25 10:00 UTC (2 hours ago)" in text_of(detail(rei, connection))


def test_detail_has_a_constant_number_of_queries(rei, db, django_assert_max_num_queries):
    connection = make_connection(tunnels=[pending(3), {}])
    # Session, user, profile, permissions (2), the connection, its tunnels, last confirmed.
    with django_assert_max_num_queries(8):
        assert detail(rei, connection).status_code == 200


# --- time zone preference ---------------------------------------------------------------


def test_picking_a_time_zone_shows_every_time_in_it(rei, requester, frozen):
    connection = make_connection(tunnels=[pending(days=5), {}])
    assert "2026-11-30 12:00 UTC" in text_of(detail(rei, connection))

    page = rei.get(reverse("maintenance:preferences"))
    assert '<option value="Asia/Tokyo">Asia/Tokyo</option>' in page.content.decode()
    response = rei.post(
        reverse("maintenance:preferences"), {"time_zone": "Asia/Tokyo"}, follow=True
    )
    assert "Preferences saved." in text_of(response)
    assert UserProfile.objects.get(user=requester).time_zone == "Asia/Tokyo"

    text = text_of(detail(rei, connection))
    assert "2026-11-30 21:00 JST (in 5 days)" in text
    assert "UTC" not in text.replace("Asia/Tokyo", "")


def test_emails_can_be_asked_for_in_japanese(rei, requester):
    page = rei.get(reverse("maintenance:preferences")).content.decode()
    assert "Language of emails" in page and '<option value="ja">Japanese</option>' in page
    rei.post(reverse("maintenance:preferences"), {"time_zone": "UTC", "language": "ja"})
    assert UserProfile.objects.get(user=requester).language == "ja"
    refused = rei.post(reverse("maintenance:preferences"), {"time_zone": "UTC", "language": "xx"})
    assert "Select a valid choice" in text_of(refused)
    assert UserProfile.objects.get(user=requester).language == "ja"


def test_an_unknown_time_zone_is_refused(rei, requester):
    response = rei.post(reverse("maintenance:preferences"), {"time_zone": "Mars/Olympus"})
    assert response.status_code == 200
    assert "Select a valid choice" in text_of(response)
    assert not UserProfile.objects.filter(user=requester).exists()


# --- sync runs and sync now -------------------------------------------------------------


def _run(n_results: int = 2, **fields) -> SyncRun:
    run = SyncRun.objects.create(finished_at=timezone.now(), status=SyncStatus.OK, **fields)
    account = make_account()
    for i in range(n_results):
        SyncResult.objects.create(
            run=run,
            account=account,
            region=f"region-{i}",
            connections=3,
            tunnels=6,
            created=1,
            changed=2,
            gone=0,
            api_calls=7,
        )
    return run


def test_sync_runs_show_what_each_account_and_region_found(rei, admin_user, db):
    account = make_account("second", "210987654321")
    run = SyncRun.objects.create(
        status=SyncStatus.PARTIAL, trigger=SyncTrigger.MANUAL, requested_by=admin_user
    )
    SyncResult.objects.create(
        run=run,
        account=account,
        region="eu-west-1",
        connections=12,
        tunnels=24,
        created=3,
        changed=5,
        gone=1,
        api_calls=31,
        errors=[{"item": "vpn-0abc", "message": "no tunnel options"}],
    )
    SyncResult.objects.create(
        run=run,
        account=account,
        region="ap-northeast-1",
        failed=True,
        errors=["AuthFailure: AssumeRole was refused"],
    )
    text = text_of(rei.get(reverse("maintenance:sync_runs")))
    assert f"Sync #{run.pk} finished with errors" in text
    assert "by sync now button, requested by admin" in text
    assert "second eu-west-1 12 24 3 5 1 31 vpn-0abc — no tunnel options" in text
    assert "second ap-northeast-1 0 0 0 0 0 0 failed AuthFailure: AssumeRole was refused" in text


def test_sync_runs_list_the_troubled_scopes_and_each_run_page_lists_all(rei, db):
    account = make_account()
    run = SyncRun.objects.create(status=SyncStatus.PARTIAL, finished_at=timezone.now())
    for i, region in enumerate(["ap-northeast-1", "eu-west-1", "us-east-1"]):
        SyncResult.objects.create(
            run=run,
            account=account,
            region=region,
            connections=10 + i,
            tunnels=20 + 2 * i,
            api_calls=30,
            errors=["vpn-0bad: no tunnel options"] if region == "eu-west-1" else [],
        )
    text = text_of(rei.get(reverse("maintenance:sync_runs")))
    assert (
        "3 accounts and regions read: 33 connections, 66 tunnels; 0 created, 0 changed, 0 gone;"
        " 90 AWS calls." in text
    )
    assert "eu-west-1" in text and "vpn-0bad: no tunnel options" in text
    assert "ap-northeast-1" not in text and "us-east-1" not in text  # read cleanly
    detail = rei.get(reverse("maintenance:sync_run", args=[run.pk]))
    assert detail.status_code == 200
    every = text_of(detail)
    assert f"Sync #{run.pk}" in every
    for region in ("ap-northeast-1", "eu-west-1", "us-east-1"):
        assert f"default {region}" in every
    assert rei.get(reverse("maintenance:sync_run", args=[run.pk + 99])).status_code == 404


def test_sync_runs_query_count_does_not_grow(rei, db, django_assert_max_num_queries):
    for _ in range(2):
        _run()
    with django_assert_max_num_queries(SYNC_RUNS_MAX_QUERIES) as small:
        rei.get(reverse("maintenance:sync_runs"))
    for _ in range(25):
        _run(n_results=4)
    with django_assert_max_num_queries(SYNC_RUNS_MAX_QUERIES) as large:
        response = rei.get(reverse("maintenance:sync_runs"))
    assert len(small.captured_queries) == len(large.captured_queries)
    assert "Page 1 of 2" in text_of(response)


def test_only_admins_see_sync_now(rei, admin_client_, db):
    assert "Sync now" not in text_of(rei.get(reverse("maintenance:sync_runs")))
    assert "Sync now" in text_of(admin_client_.get(reverse("maintenance:sync_runs")))


def test_requesters_cannot_sync_now(rei, db):
    assert rei.post(reverse("maintenance:sync_now")).status_code == 403
    assert OrmQ.objects.count() == 0


def test_sync_now_needs_a_post(admin_client_):
    assert admin_client_.get(reverse("maintenance:sync_now")).status_code == 405


def test_sync_now_queues_a_sync_after_commit(admin_client_, db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client_.post(reverse("maintenance:sync_now"))
        # Queued once the transaction commits, never run inside the request.
        assert OrmQ.objects.count() == 0
    assert len(callbacks) == 1
    assert response.status_code == 302
    assert response["Location"] == reverse("maintenance:sync_runs")
    queued = OrmQ.objects.get()
    assert queued.func().startswith("maintenance.sync.")
    assert SyncRun.objects.count() == 0

    page = admin_client_.get(response["Location"])
    assert "Sync queued." in text_of(page)
