"""The audit log page and its streamed CSV / JSON Lines exports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from maintenance.choices import ActorKind, AuditAction
from maintenance.models import (
    GENESIS_HASH,
    AuditChainHead,
    AuditEvent,
    UserProfile,
    canonical_json,
)
from maintenance.views.audit import EXPORT_COLUMNS
from tests.factories import make_account, make_connection, pending

URL = reverse("maintenance:audit")
PAGE_QUERIES = 10


def csv_url(query: str = "") -> str:
    return reverse("maintenance:audit_export", args=["csv"]) + query


def jsonl_url(query: str = "") -> str:
    return reverse("maintenance:audit_export", args=["jsonl"]) + query


def bulk_events(n: int, start: datetime | None = None) -> None:
    """Append n valid, chained system events fast (record() writes one at a time)."""
    head, _ = AuditChainHead.objects.get_or_create(pk=1)
    prev, seq = head.last_hash or GENESIS_HASH, head.count
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for i in range(n):
        seq += 1
        event = AuditEvent(
            seq=seq,
            at=start + timedelta(seconds=i),
            actor_name="system",
            actor_kind=ActorKind.SYSTEM,
            action=AuditAction.SYNC_FAILED,
            message=f"bulk {seq}",
            details={"region": "ap-northeast-1"},
            prev_hash=prev,
        )
        event.hash = prev = event.compute_hash()
        events.append(event)
    AuditEvent.objects.bulk_create(events, batch_size=500)
    AuditChainHead.objects.filter(pk=1).update(last_hash=prev, count=seq)


@pytest.fixture
def history(requester, admin_user):
    """A small, realistic log: a sync discovery, a request with before/after, AWS's doing."""
    connection = make_connection(name="tokyo-office", tunnels=[pending(), pending()])
    tunnel = connection.tunnels.order_by("outside_ip")[0]
    AuditEvent.record(
        AuditAction.CONNECTION_DISCOVERED,
        connection=connection,
        message="found vpn in ap-northeast-1",
        at=datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
    )
    AuditEvent.record(
        AuditAction.REQUEST_RESCHEDULED,
        actor=requester,
        tunnel=tunnel,
        message="rei moved the window",
        details={
            "before": {"window_start": "2026-03-02T01:00", "status": "approved"},
            "after": {"window_start": "2026-03-03T01:00", "status": "approved"},
        },
        at=datetime(2026, 3, 1, 3, 0, tzinfo=UTC),
    )
    AuditEvent.record(
        AuditAction.MAINTENANCE_APPLIED_BY_AWS,
        actor_kind=ActorKind.AWS,
        tunnel=tunnel,
        message="AWS applied the maintenance itself",
        details={"previous": None, "applied": "2026-03-04T00:00:00+00:00"},
        at=datetime(2026, 3, 4, 0, 0, tzinfo=UTC),
    )
    return connection, tunnel


# ---------------------------------------------------------------------------------------
# Who may see it
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["auditor", "admin_user"])
def test_auditor_and_admin_see_the_log_and_the_nav_link(client, request, persona, history):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{URL}" aria-current="page">Audit log</a>' in html
    assert "3 events" in html


@pytest.mark.parametrize("persona", ["requester", "approver", "outsider"])
def test_others_get_403_and_no_link(client, request, persona):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(URL).status_code == 403
    assert client.get(csv_url()).status_code == 403
    assert client.get(jsonl_url()).status_code == 403
    assert "Audit log" not in client.get(reverse("maintenance:connections")).content.decode()


def test_anonymous_is_sent_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/login" in response["Location"]


# ---------------------------------------------------------------------------------------
# What an event reads like
# ---------------------------------------------------------------------------------------


def test_events_read_in_words_in_the_users_zone(client, auditor, history):
    connection, tunnel = history
    UserProfile.objects.create(user=auditor, time_zone="Asia/Tokyo")
    client.force_login(auditor)
    html = client.get(URL).content.decode()
    # Newest first; times in the user's zone, zone named.
    assert html.index("AWS applied the maintenance itself") < html.index("found vpn in ap-north")
    assert "2026-03-01 09:00:00 JST" in html
    assert "by AWS" in html and "by rei" in html and "by system" in html
    assert "found vpn in ap-northeast-1" in html
    assert reverse("maintenance:connection", args=[connection.pk]) in html
    assert connection.vpn_connection_id in html
    assert tunnel.outside_ip in html
    # Before and after side by side, the changed row marked.
    assert "<details>" in html
    assert "Before and after (changed rows highlighted)" in html
    assert "In your time zone, Asia/Tokyo." in html
    # Details with human labels, and their times in the reader's zone too.
    assert '<tr class="changed"><th scope="row">Window opens' in html
    assert "<td>2026-03-02 10:00:00 JST</td><td>2026-03-03 10:00:00 JST</td>" in html
    assert '<th scope="row">Applied</th><td>2026-03-04 09:00:00 JST</td>' in html


def test_request_events_link_to_the_request(client, auditor, requester, history):
    from tests.test_views_requests import submit

    _connection, tunnel = history
    change = submit(requester, tunnel, reason="apply the March patch before the audit")
    client.force_login(auditor)
    html = client.get(URL, {"request": change.pk}).content.decode()
    assert "1 event matches the filters" in html
    assert f'href="{reverse("maintenance:request", args=[change.pk])}">#{change.pk}' in html
    assert "change requested" in html


# ---------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "aws"}, ["AWS applied the maintenance itself"]),
        ({"actor": "system"}, ["found vpn in ap-northeast-1"]),
        ({"actor": "REI"}, ["rei moved the window"]),
        ({"action": AuditAction.CONNECTION_DISCOVERED}, ["found vpn in ap-northeast-1"]),
        ({"tunnel": "TUNNEL"}, ["rei moved the window", "AWS applied the maintenance itself"]),
        ({"connection": "CONNECTION", "actor": "aws"}, ["AWS applied the maintenance itself"]),
        # 10:00 in Tokyo is 01:00 UTC: only the 03:00 UTC event on the 1st is left that day.
        (
            {"time_from": "2026-03-01T10:00", "time_to": "2026-03-02T09:00"},
            ["rei moved the window"],
        ),
        # "To" typed to the minute includes that minute.
        ({"time_to": "2026-03-01T09:00"}, ["found vpn in ap-northeast-1"]),
    ],
)
def test_filters(client, auditor, history, params, expected):
    connection, tunnel = history
    UserProfile.objects.create(user=auditor, time_zone="Asia/Tokyo")
    params = {
        k: {"TUNNEL": tunnel.outside_ip, "CONNECTION": connection.vpn_connection_id}.get(v, v)
        for k, v in params.items()
    }
    client.force_login(auditor)
    html = client.get(URL, params).content.decode()
    shown = [
        m
        for m in (
            "found vpn in ap-northeast-1",
            "rei moved the window",
            "AWS applied the maintenance itself",
        )
        if m in html
    ]
    assert sorted(shown) == sorted(expected)
    # The exports carry the same filters.
    assert "Clear filters" in html
    rows = [json.loads(line) for line in _body(client.get(jsonl_url(), params)).splitlines()]
    assert sorted(r["message"] for r in rows) == sorted(expected)


def test_account_filter(client, auditor, history):
    other = make_connection(make_account("other", "210987654321"))
    AuditEvent.record(AuditAction.CONNECTION_GONE, connection=other, message="gone elsewhere")
    client.force_login(auditor)
    html = client.get(URL, {"account": other.account_id}).content.decode()
    assert "gone elsewhere" in html
    assert "found vpn in ap-northeast-1" not in html


def test_bad_filter_is_shown_and_ignored(client, auditor, history):
    client.force_login(auditor)
    html = client.get(
        URL, {"tunnel": "not-an-ip", "time_from": "2026-03-05T00:00", "time_to": "2026-03-01T00:00"}
    ).content.decode()
    assert "Enter a valid IPv4 address." in html
    assert "&quot;To&quot; is before &quot;From&quot;." in html


def _links(html: str) -> dict[str, str]:
    """The audit page's paging links by their words, as a reader finds them."""
    nav = html[html.index('aria-label="Audit log pages"') :]
    nav = nav[: nav.index("</nav>")]
    return {
        words: href.replace("&amp;", "&")
        for href, words in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav)
    }


def test_pages_walk_the_log_by_position_and_keep_filters(client, auditor, db):
    bulk_events(120)
    client.force_login(auditor)
    html = client.get(URL, {"actor": "system"}).content.decode()
    assert "120 events" in html
    assert html.count('class="audit-event"') == 50
    assert "Events #71 to #120, newest first" in html
    links = _links(html)
    assert set(links) == {"Older", "Oldest"}  # the newest page has nothing newer
    assert links["Older"] == "?actor=system&before=71"

    second = client.get(URL + links["Older"]).content.decode()
    assert "Events #21 to #70, newest first" in second
    assert set(_links(second)) == {"Newest", "Newer", "Older", "Oldest"}
    third = client.get(URL + _links(second)["Older"]).content.decode()
    assert third.count('class="audit-event"') == 20
    assert "bulk 1<" in third and "bulk 21<" not in third
    assert set(_links(third)) == {"Newest", "Newer"}  # the oldest page has nothing older

    # Walking back up from the oldest end gives the same pages.
    oldest = client.get(URL + _links(second)["Oldest"]).content.decode()
    assert "Events #1 to #50, newest first" in oldest
    back = client.get(URL + _links(oldest)["Newer"]).content.decode()
    assert "Events #51 to #100, newest first" in back
    assert _links(back)["Newer"] == "?actor=system&after=100"


def test_a_malformed_cursor_shows_the_newest_page(client, auditor, db):
    bulk_events(60)
    client.force_login(auditor)
    for bad in ("x", "-5", "9" * 40, ""):
        response = client.get(URL, {"before": bad})
        assert response.status_code == 200
        assert "Events #11 to #60, newest first" in response.content.decode()


# ---------------------------------------------------------------------------------------
# Chain verification
# ---------------------------------------------------------------------------------------


def test_intact_chain_is_said_so(client, auditor, history):
    client.force_login(auditor)
    html = client.get(URL).content.decode()
    assert "Intact: all 3 events were verified just now" in html
    assert "BROKEN" not in html
    empty_form = client.get(URL, {"actor": "", "action": ""}).content.decode()
    assert "Intact: all 3 events" in empty_form and "Clear filters" not in empty_form
    filtered = client.get(URL, {"actor": "aws"}).content.decode()
    assert "its verification is shown on the" in filtered


def test_broken_chain_names_the_event(client, auditor, history):
    # Tamper below the ORM, as an attacker with database access would.
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET message = %s WHERE seq = 2", ["nothing here"]
        )
    client.force_login(auditor)
    html = client.get(URL).content.decode()
    assert "BROKEN." in html
    assert "Event #2 fails: its content does not match its hash." in html
    assert 'role="alert"' in html


def test_big_log_is_not_verified_on_the_page(client, auditor, history, monkeypatch):
    monkeypatch.setattr("maintenance.views.audit.VERIFY_ON_PAGE_LIMIT", 2)
    calls = []
    monkeypatch.setattr(AuditEvent, "verify_chain", classmethod(lambda cls: calls.append(1)))
    client.force_login(auditor)
    html = client.get(URL).content.decode()
    assert "Not verified on this page: the log holds 3 events" in html
    assert "manage.py verify_audit" in html
    assert calls == []


# ---------------------------------------------------------------------------------------
# Query counts: constant at two sizes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 1000])
def test_page_queries_do_not_grow(client, auditor, history, size, django_assert_max_num_queries):
    connection, tunnel = history
    bulk_events(size)
    for i in range(3):
        AuditEvent.record(
            AuditAction.REQUEST_RESCHEDULED,
            tunnel=tunnel,
            message=f"moved {i}",
            details={"before": {"a": 1}, "after": {"a": 2}},
        )
    client.force_login(auditor)
    with django_assert_max_num_queries(PAGE_QUERIES):
        response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{size + 6} events" in html
    assert "Intact: all" in html
    filters = {
        "account": connection.account_id,
        "tunnel": tunnel.outside_ip,
        "actor": "system",
        "page": 1,
    }
    with django_assert_max_num_queries(PAGE_QUERIES):
        response = client.get(URL, filters)
    assert "3 events match the filters" in response.content.decode()


# ---------------------------------------------------------------------------------------
# Streamed exports
# ---------------------------------------------------------------------------------------


def _body(response) -> str:
    assert response.streaming is True
    return b"".join(response.streaming_content).decode()


def test_csv_export_of_a_filtered_set(client, auditor, history):
    connection, tunnel = history
    client.force_login(auditor)
    response = client.get(csv_url(f"?tunnel={tunnel.outside_ip}"))
    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="vpnctl-audit-')
    assert disposition.endswith('Z.csv"')
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert list(rows[0]) == EXPORT_COLUMNS
    assert [r["seq"] for r in rows] == ["2", "3"]  # oldest first, the filtered set only
    first = rows[0]
    assert first["at"] == "2026-03-01T03:00:00.000000+00:00"
    assert first["actor"] == "rei" and first["actor_kind"] == "user"
    assert first["action"] == "request.rescheduled"
    assert first["account"] == connection.account.name
    assert first["connection"] == connection.vpn_connection_id
    assert first["tunnel"] == tunnel.outside_ip
    assert first["request"] == ""
    assert json.loads(first["details"])["after"]["window_start"] == "2026-03-03T01:00"
    assert rows[1]["actor_kind"] == "aws"
    event = AuditEvent.objects.get(seq=2)
    assert (first["prev_hash"], first["hash"]) == (event.prev_hash, event.hash)


def test_jsonl_export_headers_and_offline_reverification(client, auditor, history):
    client.force_login(auditor)
    bulk_events(5, start=datetime(2026, 4, 1, tzinfo=UTC))
    response = client.get(jsonl_url())
    assert response.streaming is True
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].endswith('Z.jsonl"')
    lines = _body(response).splitlines()
    assert len(lines) == 8
    # An auditor re-verifies the chain from the file alone, as hashed_fields() defines it.
    prev = GENESIS_HASH
    for line in lines:
        row = json.loads(line)
        hashed = {
            "seq": row["seq"],
            "at": row["at"],
            "actor_name": row["actor"],
            "actor_kind": row["actor_kind"],
            "action": row["action"],
            "account": row["account_pk"],
            "connection": row["connection_pk"],
            "tunnel": row["tunnel_pk"],
            "change_request": row["request"],
            "message": row["message"],
            "details": row["details"],
            "prev_hash": row["prev_hash"],
        }
        assert row["prev_hash"] == prev
        assert hashlib.sha256(canonical_json(hashed).encode()).hexdigest() == row["hash"]
        prev = row["hash"]


def test_export_links_carry_the_filters(client, auditor, history):
    client.force_login(auditor)
    html = client.get(URL, {"actor": "aws", "page": "1"}).content.decode()
    assert f'href="{csv_url("?actor=aws")}"' in html
    assert f'href="{jsonl_url("?actor=aws")}"' in html


def test_unknown_export_format_is_404(client, auditor):
    client.force_login(auditor)
    assert client.get(reverse("maintenance:audit_export", args=["xml"])).status_code == 404
