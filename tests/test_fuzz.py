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
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import botocore.endpoint
import pytest
from django.db import transaction
from django.test import Client
from django.urls import resolve, reverse
from django.utils import timezone
from django_q.conf import Conf
from hypothesis import HealthCheck, Phase, currently_in_test_context, event, given
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
        database=None,  # no example database: a derandomized run has nothing to replay
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        # Shrinking a failure here can take Hypothesis's full five minutes (each example is
        # a request); the suite reports the example as found, and the edge cases below
        # name the known ones. Exploring shrinks.
        phases=list(Phase) if EXPLORE else [p for p in Phase if p is not Phase.shrink],
    )


# ---------------------------------------------------------------------------------------
# What a client can send
# ---------------------------------------------------------------------------------------

# Any code point UTF-8 can carry: everything but the surrogates. NUL included.
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
# Just past every max_length (4,000 for reasons and comments), in one to four bytes a char.
LONG = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["x", "é", "😀", "\x00", "<b>", "9"]),
    st.integers(4_001, 4_100),
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


@pytest.fixture(scope="module")
def browser() -> Client:
    """One client for the module: its middleware (WhiteNoise lists the static files) loads
    once, not once an example."""
    return Client()


class As:
    """The browser, logged in as `user`."""

    def __init__(self, browser: Client, user) -> None:
        browser.cookies = SimpleCookie()
        browser.force_login(user)
        self.client, self.user = browser, user


@pytest.fixture
def as_requester(browser, requester) -> As:
    return As(browser, requester)


@pytest.fixture
def as_approver(browser, approver) -> As:
    return As(browser, approver)


@pytest.fixture
def as_auditor(browser, auditor) -> As:
    return As(browser, auditor)


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
def example_of(who: As, zone: str) -> Iterator[Client]:
    """One example: the user's zone set, everything undone afterwards."""
    with transaction.atomic():
        UserProfile.objects.update_or_create(user=who.user, defaults={"time_zone": zone})
        yield who.client
        transaction.set_rollback(True)
    who.client.cookies.pop("messages", None)  # a message from a success that was undone


def answered(response) -> int:
    """The status, counted for --hypothesis-show-statistics (are successes reached too?)."""
    if currently_in_test_context():
        event(f"answered {response.status_code}")
    return response.status_code


def assert_chain_intact() -> None:
    checked, bad, why = AuditEvent.verify_chain()
    assert why == "", f"audit chain broken at {bad}: {why}"


def check_post(client: Client, url: str, body: str, success: str, *, audited: bool = True):
    """POST the body; an error answer must change nothing, a success go to `success`."""
    before = state()
    response = client.post(url, body, content_type="application/x-www-form-urlencoded")
    assert answered(response) in (200, 302, 400, 404), response.status_code
    if response.status_code == 302:
        assert resolve(urlsplit(response["Location"]).path).view_name == success
        if audited:
            assert state()["audit events"] > before["audit events"]
    else:
        assert state() == before, "refused input changed data"
    assert_chain_intact()


def check_get(client: Client, path: str, query: str, allowed=(200, 400)) -> None:
    """GET with the query string as sent: never a 500, nothing written."""
    before = state()
    response = client.get(path, QUERY_STRING=query)
    assert answered(response) in allowed, response.status_code
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
REASON = st.one_of(TEXT, LONG)
SKIP = st.sampled_from(["apply", "skip"])


def valid_window(zone: str) -> st.SearchStrategy[str]:
    """A window the rules accept, as the user's browser sends it: in 10 min to 5 days, for
    30 min to 5 h (the tunnels' AWS deadline is 10 days away)."""

    def encode(start: int, minutes: int) -> str:
        opens = timezone.localtime(timezone.now() + timedelta(minutes=start), ZoneInfo(zone))
        closes = opens + timedelta(minutes=minutes)
        return "&".join(
            f"{name}={quote(_format(moment, _FORMATS[0]))}"
            for name, moment in (("window_start", opens), ("window_end", closes))
        )

    return st.builds(encode, st.integers(10, 60 * 24 * 5), st.integers(30, 300))


def near_valid(valid: st.SearchStrategy[str], noise: st.SearchStrategy[str]):
    """A valid body, noise alone, or a valid body with noise after it: the last value of a
    repeated field is the one a form reads, so the noise changes a field or two."""
    return st.one_of(valid, noise, st.builds(lambda v, n: f"{v}&{n}", valid, noise))


@pytest.mark.parametrize("kind", [ChangeKind.REPLACE, ChangeKind.ENABLE_LIFECYCLE])
@fuzz(20)
@given(data=st.data(), zone=ZONES)
def test_request_form(as_requester, world, kind, data, zone):
    tunnel = world.tunnel if kind == ChangeKind.REPLACE else world.lacking
    valid = valid_window(zone).map(lambda w: f"reason=patch&skip_tunnel_replacement=apply&{w}")
    noise = form(reason=REASON, skip_tunnel_replacement=SKIP, **WINDOW)
    body = data.draw(near_valid(valid, noise), label="body")
    with example_of(as_requester, zone) as client:
        url = reverse("maintenance:request_new", args=[tunnel.pk, kind])
        check_post(client, url, body, success="maintenance:request")


@fuzz(20)
@given(data=st.data(), zone=ZONES)
def test_reschedule_form(as_requester, world, data, zone):
    body = data.draw(near_valid(valid_window(zone), form(**WINDOW)), label="body")
    with example_of(as_requester, zone) as client:
        url = reverse("maintenance:request_reschedule", args=[world.change.pk])
        check_post(client, url, body, success="maintenance:request")


DECISION = {"decision": st.sampled_from(["approve", "reject"]), "comment": REASON}


@fuzz(20)
@given(body=form(**DECISION), zone=ZONES)
def test_decision_form(as_approver, world, body, zone):
    with example_of(as_approver, zone) as client:
        url = reverse("maintenance:request_decide", args=[world.change.pk])
        check_post(client, url, body, success="maintenance:request")


@fuzz(15)
@given(body=form(cancel_reason=REASON), zone=ZONES)
def test_cancel_form(as_requester, world, body, zone):
    with example_of(as_requester, zone) as client:
        url = reverse("maintenance:request_cancel", args=[world.change.pk])
        check_post(client, url, body, success="maintenance:request")


def batch_scope(world: World) -> st.SearchStrategy[str]:
    """batch_new's own query: one connection, or the connection list's filters."""
    return form(
        connection=st.one_of(st.just(str(world.lacking.connection_id)), NUMBER, ODD),
        **dict.fromkeys(ConnectionFilterForm.base_fields, VALUE),
    )


@fuzz(20)
@given(data=st.data(), zone=ZONES)
def test_batch_form(as_requester, world, data, zone):
    pks = [str(world.lacking.pk), str(world.lacking.sibling().pk), str(world.tunnel.pk)]
    valid = valid_window(zone).map(
        lambda w: f"tunnels={pks[0]}&tunnels={pks[1]}&reason=r&skip_tunnel_replacement=skip&{w}"
    )
    tunnels = st.one_of(st.sampled_from(pks), NUMBER)
    noise = form(tunnels=tunnels, reason=REASON, skip_tunnel_replacement=SKIP, **WINDOW)
    body = data.draw(near_valid(valid, noise), label="body")
    query = data.draw(st.one_of(st.just(""), batch_scope(world)), label="query")
    with example_of(as_requester, zone) as client:
        url = reverse("maintenance:batch_new") + (f"?{query}" if query else "")
        check_post(client, url, body, success="maintenance:batch")


@fuzz(15)
@given(body=form(**DECISION), zone=ZONES)
def test_batch_decision_form(as_approver, world, body, zone):
    with example_of(as_approver, zone) as client:
        url = reverse("maintenance:batch_decide", args=[world.batch.pk])
        check_post(client, url, body, success="maintenance:batch")


TIME_ZONE_NAMES = st.sampled_from(
    ["UTC", "Asia/Tokyo", "Etc/GMT+12", "posix/UTC", "localtime", "../../etc/passwd"]
)


@fuzz(15)
@given(body=form(time_zone=TIME_ZONE_NAMES), zone=ZONES)
def test_preferences_form(as_requester, body, zone):
    with example_of(as_requester, zone) as client:
        url = reverse("maintenance:preferences")
        check_post(client, url, body, success="maintenance:preferences", audited=False)


# ---------------------------------------------------------------------------------------
# List pages and exports
# ---------------------------------------------------------------------------------------

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
@fuzz(12)
@given(data=st.data(), zone=ZONES)
def test_list_page_query(request, world, name, args, persona, params, data, zone):
    who = request.getfixturevalue(f"as_{persona}")
    query = data.draw(query_of(*params), label="query")
    with example_of(who, zone) as client:
        check_get(client, reverse(name, args=args(world) if args else []), query)


@fuzz(15)
@given(data=st.data(), zone=ZONES)
def test_batch_form_query(as_requester, world, data, zone):
    query = data.draw(batch_scope(world), label="query")
    with example_of(as_requester, zone) as client:
        check_get(client, reverse("maintenance:batch_new"), query, allowed=(200, 400, 404))


# ---------------------------------------------------------------------------------------
# The edges found so far, by name: each a request a browser or a script can send
# ---------------------------------------------------------------------------------------

EDGE_ZONES = ["UTC", "Asia/Tokyo", "America/Los_Angeles"]


@pytest.mark.parametrize(
    "query",
    [
        "time_to=9999-12-31T23:59",  # "to the minute" adds a minute past the last datetime
        "time_from=0001-01-01T00:00",  # before year 1 in UTC, seen from Tokyo
        "time_from=9999-12-31T23:59",  # after year 9999 in UTC, seen from Los Angeles
        "request=99999999999999999999",  # past a 64-bit integer
        "account=99999999999999999999",
    ],
)
@pytest.mark.parametrize("page", ["audit", "csv", "jsonl"])
def test_audit_filters_at_the_edges(as_auditor, world, query, page):
    args = [] if page == "audit" else [page]
    url = reverse("maintenance:audit" if page == "audit" else "maintenance:audit_export", args=args)
    for zone in EDGE_ZONES:
        with example_of(as_auditor, zone) as client:
            check_get(client, url, query)


@pytest.mark.parametrize(
    "query",
    [
        "window_to=9999-12-31",  # the day after the last day
        "window_from=0001-01-01",  # before year 1 in UTC, seen from Tokyo
        "window_from=9999-12-31",
        "account=99999999999999999999",
    ],
)
def test_request_filters_at_the_edges(as_auditor, world, query):
    for zone in EDGE_ZONES:
        with example_of(as_auditor, zone) as client:
            check_get(client, reverse("maintenance:requests"), query)


@pytest.mark.parametrize(
    "query",
    [
        "connection=%C2%B2",  # "²": a digit to str.isdigit(), not to int()
        "connection=99999999999999999999",
        "connection=-1",
        "account=99999999999999999999",
    ],
)
def test_batch_form_scope_at_the_edges(as_requester, world, query):
    with example_of(as_requester, "UTC") as client:
        check_get(client, reverse("maintenance:batch_new"), query, allowed=(200, 400, 404))


# Windows that fit in Python's datetimes as typed, in the user's zone, and not in UTC.
EDGE_WINDOWS = [
    pytest.param("Asia/Tokyo", "start_when_approved=on&window_end=0001-01-01T00:00", id="year-0"),
    pytest.param(
        "America/Los_Angeles",
        "window_start=9999-12-31T23:00&window_end=9999-12-31T23:59",
        id="year-10000",
    ),
]


def _edge_form_url(form: str, world: World) -> tuple[str, str, str]:
    """The form's URL, what else it needs, and the page a success lands on."""
    if form == "request_new":
        url = reverse("maintenance:request_new", args=[world.lacking.pk, "enable_lifecycle"])
        return url, "reason=edge&skip_tunnel_replacement=apply", "maintenance:request"
    if form == "reschedule":
        url = reverse("maintenance:request_reschedule", args=[world.change.pk])
        return url, "", "maintenance:request"
    fields = f"reason=edge&skip_tunnel_replacement=apply&tunnels={world.lacking.pk}"
    return reverse("maintenance:batch_new"), fields, "maintenance:batch"


@pytest.mark.parametrize("zone, window", EDGE_WINDOWS)
@pytest.mark.parametrize("form_name", ["request_new", "reschedule", "batch_new"])
def test_windows_at_the_edges(as_requester, world, form_name, zone, window):
    url, fields, success = _edge_form_url(form_name, world)
    with example_of(as_requester, zone) as client:
        check_post(client, url, f"{fields}&{window}", success=success)


@pytest.mark.parametrize(
    "body",
    [
        "tunnels=99999999999999999999&reason=x&start_when_approved=on&window_end=2099-01-01T00:00",
        "tunnels=-9223372036854775809&reason=x&start_when_approved=on&window_end=2099-01-01T00:00",
    ],
)
def test_batch_form_at_the_edges(as_requester, world, body):
    with example_of(as_requester, "UTC") as client:
        check_post(client, reverse("maintenance:batch_new"), body, success="maintenance:batch")
