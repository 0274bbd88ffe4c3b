"""Fuzzed input: every form and every list page's query parameters, with what a client can
send. Never a 500; input that is refused changes nothing; the audit chain stays intact.

How each example runs:

1. inside a savepoint that is rolled back afterwards, so every example starts from the
   same rows (which is why hypothesis's function-scoped-fixture check is off: the
   fixtures' rows are never seen changed by the next example);
2. the persona's time zone is drawn too, since times are parsed in the user's zone;
3. the request is sent urlencoded, built by hand so that it may repeat a field, carry
   an invalid percent-escape or invalid UTF-8, or omit what the form needs;
4. an answer other than a redirect must leave the rows as they were.

No AWS: a success only writes rows, and the tasks it queues go through on_commit, which
the `db` fixture never runs; the guard below fails any call that reaches botocore.
Examples are derandomized for the normal suite; VPNCTL_FUZZ=explore runs many random ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import botocore.endpoint
import pytest
from django.db import transaction
from django.test import Client
from django.urls import resolve, reverse
from django.utils import timezone
from django_q.conf import Conf
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from maintenance.choices import ChangeKind
from maintenance.forms.audit import AuditFilterForm
from maintenance.forms.changes import RequestFilterForm
from maintenance.forms.inventory import ConnectionFilterForm
from maintenance.models import (
    Approval,
    AuditEvent,
    CalendarFeed,
    ChangeBatch,
    ChangeRequest,
    UserProfile,
)
from tests.factories import make_connection, pending

EXPLORE = os.environ.get("VPNCTL_FUZZ") == "explore"


def fuzz(examples: int) -> Any:
    return hypothesis_settings(
        max_examples=examples * 20 if EXPLORE else examples,
        deadline=None,
        derandomize=not EXPLORE,
        database=None,  # no .hypothesis/ directory in the checkout
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# ---------------------------------------------------------------------------------------
# What a client can send
# ---------------------------------------------------------------------------------------

# Any code point UTF-8 can carry: everything but the surrogates. NUL included.
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
LONG = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["x", "é", "😀", "\x00", "<b>", "9"]),
    st.integers(4_000, 12_000),
)
ODD = st.sampled_from(
    ["", " ", "\x00", "0", "-1", "-0", "+1", "1e308", "NaN", "inf", "null", "true", "[]",
     "{}", "%00", "' OR 1=1 --", "../../etc/passwd", "２", "²", "١٢", "0x10", "1_000"]
)  # fmt: skip
NUMBER = st.one_of(
    st.integers(),  # unbounded: hypothesis draws ones far past 64 bits too
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, -(10**400)]),
).map(str)
ODD_TIME = st.sampled_from(
    ["0001-01-01T00:00", "0001-01-01", "9999-12-31T23:59", "9999-12-31T23:59:59",
     "9999-12-31", "10000-01-01T00:00", "2024-02-30T10:00", "2024-13-01T00:00",
     "2024-01-01T24:00", "2024-01-01T10:60", "2024-01-01T10:00:60", "2024-1-1T1:1",
     "2024-01-01T10:00+09:00", "2024-01-01T10:00Z", "2024-01-01 10:00", "01/02/2024",
     "２０２４-０１-０１T１０:００", "2024-01-01\x00T10:00", "-2024-01-01T10:00", "now"]
)  # fmt: skip
_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def _format(moment: datetime, fmt: str) -> str:
    # strftime writes year 1 as "1"; the inputs want four digits.
    return moment.strftime(fmt.replace("%Y", f"{moment.year:04d}"))


ANY_TIME = st.builds(
    _format, st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
    st.sampled_from(_FORMATS),
)  # fmt: skip
# Near now, so that some windows are valid and the model's rules are reached too.
NEAR_TIME = st.builds(
    lambda minutes, fmt: _format(timezone.localtime() + timedelta(minutes=minutes), fmt),
    st.integers(-60 * 24 * 40, 60 * 24 * 40),
    st.sampled_from(_FORMATS[:3]),
)
TIME = st.one_of(NEAR_TIME, ANY_TIME, ODD_TIME)
VALUE = st.one_of(TEXT, ODD, NUMBER, TIME, LONG)
# Pieces of a query string that no encoder makes but a client may send.
JUNK = st.sampled_from(["", "%", "%F", "%FF", "%C3%28", "%ED%A0%80", "&", "=", "==", ";", "+",
                        "a=b=c", "%00=%00", "page", "page=", "=x"])  # fmt: skip
ZONES = st.sampled_from(
    ["UTC", "Asia/Tokyo", "America/Los_Angeles", "Pacific/Kiritimati", "Pacific/Pago_Pago"]
)


def _encode(parts: tuple) -> str:
    *fields, extra, junk = parts
    pairs = [pair for group in fields for pair in group] + extra
    return "&".join([f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs] + list(junk))


def form(**fields: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A urlencoded body or query: each field left out, given once or repeated, with its
    own kind of value or any value, plus unknown fields and malformed pieces."""

    def one(name: str, own: st.SearchStrategy[str]) -> st.SearchStrategy[list]:
        value = st.one_of(own, own, VALUE)  # mostly its own kind
        return st.lists(value, max_size=3).map(lambda values: [(name, v) for v in values])

    return st.tuples(
        *(one(name, own) for name, own in fields.items()),
        st.lists(st.tuples(TEXT, VALUE), max_size=2),
        st.lists(JUNK, max_size=2),
    ).map(_encode)


def query_of(*names: str) -> st.SearchStrategy[str]:
    """Random query strings for a page whose parameters are `names` (and ?page=)."""
    return form(page=st.one_of(NUMBER, st.sampled_from(["last", "1", "2", "-1"])),
                **dict.fromkeys(names, VALUE))  # fmt: skip


# ---------------------------------------------------------------------------------------
# Rows, personas, and the checks every example makes
# ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_aws(monkeypatch):
    """Fail any call that would leave for AWS; nothing here may run a task either."""
    assert Conf.SYNC is False

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a fuzzed request reached AWS")

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", refuse)


class World:
    """One of each thing the forms act on; the request and the batch wait for approval."""

    def __init__(self, requester) -> None:
        start = timezone.now() + timedelta(hours=2)
        window = {"window_start": start, "window_end": start + timedelta(hours=1)}
        off = {"lifecycle_control": False}
        self.tunnel = make_connection(tunnels=[pending(days=10), {}]).tunnels.first()
        self.lacking = make_connection(tunnels=[{**off, **pending(days=10)}, off]).tunnels.first()
        other = make_connection(tunnels=[pending(days=10), {}]).tunnels.first()
        self.change = ChangeRequest.submit(
            user=requester, tunnel=other, kind=ChangeKind.REPLACE, reason="patch", **window
        )
        batched = make_connection(tunnels=[off, off])
        self.batch = ChangeBatch.submit(
            user=requester, tunnels=list(batched.tunnels.all()), reason="batch", **window
        )
        CalendarFeed.issue(requester)


@pytest.fixture
def world(requester) -> World:
    return World(requester)


def state() -> dict[str, Any]:
    return {
        "change requests": ChangeRequest.objects.count(),
        "approvals": Approval.objects.count(),
        "batches": ChangeBatch.objects.count(),
        "audit events": AuditEvent.objects.count(),
        "request rows": list(
            ChangeRequest.objects.order_by("pk").values_list(
                "status", "window_start", "window_end", "updated_at"
            )
        ),
        "approval rows": list(Approval.objects.order_by("pk").values_list("decision", "at")),
    }


@contextmanager
def example_of(client: Client, user, zone: str) -> Iterator[None]:
    """One example: the user's zone set, everything undone afterwards."""
    with transaction.atomic():
        UserProfile.objects.update_or_create(user=user, defaults={"time_zone": zone})
        yield
        transaction.set_rollback(True)
    client.cookies.pop("messages", None)  # a message from a success that was undone


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_chain_intact() -> None:
    checked, bad, why = AuditEvent.verify_chain()
    assert why == "", f"audit chain broken at {bad}: {why}"


def check_post(client: Client, url: str, body: str, success: str, audited: bool = True):
    """POST the body; an error answer must change nothing, a success go to `success`."""
    before = state()
    response = client.post(url, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code in (200, 302, 400), response.status_code
    if response.status_code == 302:
        assert resolve(response["Location"].split("?")[0]).view_name == success
        if audited:
            assert state()["audit events"] > before["audit events"]
    else:
        assert state() == before, "refused input changed data"
    assert_chain_intact()
    return response


def check_get(client: Client, path: str, query: str, allowed=(200, 400)) -> None:
    """GET with the query string as sent: never a 500, nothing written."""
    before = state()
    response = client.get(path, QUERY_STRING=query)
    assert response.status_code in allowed, response.status_code
    if response.streaming:
        b"".join(response.streaming_content)  # an export fails while it streams, if at all
    assert state() == before
    assert_chain_intact()


# ---------------------------------------------------------------------------------------
# Forms
# ---------------------------------------------------------------------------------------

WINDOW = {
    "window_start": TIME,
    "window_end": TIME,
    "start_when_approved": st.sampled_from(["on", "", "off", "false", "0"]),
}


@pytest.mark.parametrize("kind", [ChangeKind.REPLACE, ChangeKind.ENABLE_LIFECYCLE])
@fuzz(30)
@given(
    body=form(reason=st.one_of(TEXT, LONG), skip_tunnel_replacement=st.sampled_from(
        ["apply", "skip"]), **WINDOW),
    zone=ZONES,
)  # fmt: skip
@example(body="reason=x&window_start=9999-12-31T23:59&window_end=9999-12-31T23:59", zone="UTC")
@example(body="reason=x&start_when_approved=on&window_end=0001-01-01T00:00", zone="Asia/Tokyo")
@example(
    body="reason=x&window_start=9999-12-31T23:00&window_end=9999-12-31T23:59"
    "&skip_tunnel_replacement=apply",
    zone="America/Los_Angeles",
)
def test_request_form(requester, world, kind, body, zone):
    tunnel = world.tunnel if kind == ChangeKind.REPLACE else world.lacking
    client = logged_in(requester)
    with example_of(client, requester, zone):
        url = reverse("maintenance:request_new", args=[tunnel.pk, kind])
        check_post(client, url, body, success="maintenance:request")


@fuzz(30)
@given(body=form(**WINDOW), zone=ZONES)
@example(body="window_start=9999-12-31T23:00&window_end=9999-12-31T23:59", zone="UTC")
def test_reschedule_form(requester, world, body, zone):
    client = logged_in(requester)
    with example_of(client, requester, zone):
        url = reverse("maintenance:request_reschedule", args=[world.change.pk])
        check_post(client, url, body, success="maintenance:request")


DECISION = {"decision": st.sampled_from(["approve", "reject"]), "comment": st.one_of(TEXT, LONG)}


@fuzz(30)
@given(body=form(**DECISION), zone=ZONES)
def test_decision_form(approver, world, body, zone):
    client = logged_in(approver)
    with example_of(client, approver, zone):
        url = reverse("maintenance:request_decide", args=[world.change.pk])
        check_post(client, url, body, success="maintenance:request")


@fuzz(25)
@given(body=form(cancel_reason=st.one_of(TEXT, LONG)), zone=ZONES)
def test_cancel_form(requester, world, body, zone):
    client = logged_in(requester)
    with example_of(client, requester, zone):
        url = reverse("maintenance:request_cancel", args=[world.change.pk])
        check_post(client, url, body, success="maintenance:request")


@fuzz(30)
@given(data=st.data(), zone=ZONES)
def test_batch_form(requester, world, data, zone):
    pks = [str(world.lacking.pk), str(world.lacking.sibling().pk), str(world.tunnel.pk)]
    body = data.draw(
        form(
            tunnels=st.one_of(st.sampled_from(pks), NUMBER),
            reason=st.one_of(TEXT, LONG),
            skip_tunnel_replacement=st.sampled_from(["apply", "skip"]),
            **WINDOW,
        ),
        label="body",
    )
    query = data.draw(st.one_of(st.just(""), batch_scope(world)), label="query")
    client = logged_in(requester)
    with example_of(client, requester, zone):
        before = state()
        response = client.post(
            reverse("maintenance:batch_new") + ("?" + query if query else ""),
            body,
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code in (200, 302, 404), response.status_code
        if response.status_code == 302:
            assert resolve(response["Location"]).view_name == "maintenance:batch"
        else:
            assert state() == before
        assert_chain_intact()


@fuzz(25)
@given(body=form(**DECISION), zone=ZONES)
def test_batch_decision_form(approver, world, body, zone):
    client = logged_in(approver)
    with example_of(client, approver, zone):
        url = reverse("maintenance:batch_decide", args=[world.batch.pk])
        check_post(client, url, body, success="maintenance:batch")


@fuzz(25)
@given(
    body=form(time_zone=st.sampled_from(
        ["UTC", "Asia/Tokyo", "Etc/GMT+12", "posix/UTC", "localtime", "../../etc/passwd"])),
    zone=ZONES,
)  # fmt: skip
def test_preferences_form(requester, body, zone):
    client = logged_in(requester)
    with example_of(client, requester, zone):
        url = reverse("maintenance:preferences")
        check_post(client, url, body, success="maintenance:preferences", audited=False)


# ---------------------------------------------------------------------------------------
# List pages and exports
# ---------------------------------------------------------------------------------------


def batch_scope(world: World) -> st.SearchStrategy[str]:
    """batch_new's own query: one connection, or the connection list's filters."""
    return form(
        connection=st.one_of(st.just(str(world.lacking.connection_id)), NUMBER, ODD),
        **dict.fromkeys(ConnectionFilterForm.base_fields, VALUE),
    )


CONNECTION_FILTERS = list(ConnectionFilterForm.base_fields)
REQUEST_FILTERS = list(RequestFilterForm.base_fields)
AUDIT_FILTERS = list(AuditFilterForm.base_fields)
NO_ARGS = None


def _page(name, args, persona, params, id=None):
    return pytest.param(name, args, persona, params, id=id or name)


# URL name, its args from the world, who looks, the parameters the page reads (and ?page=)
PAGES = [
    _page("maintenance:connections", NO_ARGS, "auditor", CONNECTION_FILTERS),
    _page("maintenance:requests", NO_ARGS, "auditor", REQUEST_FILTERS),
    _page("maintenance:my_approvals", NO_ARGS, "approver", []),
    _page("maintenance:my_requests", NO_ARGS, "requester", []),
    _page("maintenance:batches", NO_ARGS, "auditor", []),
    _page("maintenance:audit", NO_ARGS, "auditor", AUDIT_FILTERS),
    _page("maintenance:audit_export", lambda w: ["csv"], "auditor", AUDIT_FILTERS, id="csv"),
    _page("maintenance:audit_export", lambda w: ["jsonl"], "auditor", AUDIT_FILTERS, id="jsonl"),
    _page("maintenance:timeline", NO_ARGS, "auditor", []),
    _page("maintenance:connection_history", lambda w: [w.tunnel.connection_id], "auditor", []),
    _page("maintenance:tunnel_history", lambda w: [w.tunnel.pk], "auditor", []),
    _page("maintenance:sync_runs", NO_ARGS, "auditor", []),
]


@pytest.mark.parametrize("name, args, persona, params", PAGES)
@fuzz(20)
@given(data=st.data(), zone=ZONES)
def test_list_page_query(request, world, name, args, persona, params, data, zone):
    user = request.getfixturevalue(persona)
    query = data.draw(query_of(*params), label="query")
    client = logged_in(user)
    with example_of(client, user, zone):
        check_get(client, reverse(name, args=args(world) if args else []), query)


@pytest.mark.parametrize(
    "query",
    [
        "time_to=9999-12-31T23:59",
        "time_from=0001-01-01T00:00",
        "time_from=9999-12-31T23:59",
        "request=99999999999999999999",
        "account=99999999999999999999",
    ],
)
@pytest.mark.parametrize("fmt", [None, "csv", "jsonl"])
@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_audit_filters_at_the_edges(auditor, world, query, fmt, zone):
    client = logged_in(auditor)
    name, args = ("maintenance:audit", []) if fmt is None else ("maintenance:audit_export", [fmt])
    with example_of(client, auditor, zone):
        check_get(client, reverse(name, args=args), query)


@pytest.mark.parametrize(
    "query",
    [
        "window_to=9999-12-31",
        "window_from=0001-01-01",
        "window_from=9999-12-31",
        "account=99999999999999999999",
    ],
)
@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_request_filters_at_the_edges(auditor, world, query, zone):
    client = logged_in(auditor)
    with example_of(client, auditor, zone):
        check_get(client, reverse("maintenance:requests"), query)


@fuzz(25)
@given(data=st.data(), zone=ZONES)
def test_batch_form_query(requester, world, data, zone):
    query = data.draw(batch_scope(world), label="query")
    client = logged_in(requester)
    with example_of(client, requester, zone):
        check_get(client, reverse("maintenance:batch_new"), query, allowed=(200, 400, 404))


@pytest.mark.parametrize(
    "query",
    [
        "connection=%C2%B2",  # "²": a digit to str.isdigit(), not to int()
        "connection=99999999999999999999",
        "connection=-1",
        "account=99999999999999999999",
    ],
)
def test_batch_form_scope_at_the_edges(requester, world, query):
    client = logged_in(requester)
    with example_of(client, requester, "UTC"):
        check_get(client, reverse("maintenance:batch_new"), query, allowed=(200, 400, 404))
