"""Who may open what: every URL, GET and POST (with and without a CSRF token), per persona.

The cases are built from ``urlpatterns`` themselves: a URL added without a row in TABLE
fails here, by name, until someone says who may use it. Every case runs on fresh rows
(its own test, its own transaction), so a POST that succeeds changes nothing for the
next one, and every answer that is not a success must leave the data as it was.

The admin's own pages are left out (see ADMIN_KEPT); tests/test_admin.py covers them.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.middleware.csrf import CSRF_SESSION_KEY
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone
from django.utils.crypto import get_random_string

from maintenance import roles
from maintenance.choices import ChangeKind, ChangeStatus
from maintenance.models import (
    ApiToken,
    Approval,
    AuditEvent,
    CalendarFeed,
    ChangeBatch,
    ChangeRequest,
    UserProfile,
)
from tests.factories import make_account, make_connection, pending

# ---------------------------------------------------------------------------------------
# The URLs, as urlpatterns has them
# ---------------------------------------------------------------------------------------

# The admin's own pages are left out, except these two: the model admins' pages, which
# admin_view guards as one (is_staff, then the model's permissions), are Django's code and
# tests/test_admin.py covers ours. A view of vpnctl's own under /admin/ still needs a row.
ADMIN_KEPT = {"admin:index", "admin:login"}


def _walk(patterns, namespace: str = "") -> list[tuple[str, str]]:
    """(full name, view's module) of every pattern; an unnamed one as "<unnamed route>"."""
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += _walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name or f'<unnamed {pattern.pattern}>'}"
            found.append((name, getattr(pattern.callback, "__module__", "") or ""))
    return found


def _admins_own(name: str, module: str) -> bool:
    return name.startswith("admin:") and module.startswith("django.") and name not in ADMIN_KEPT


PATTERNS = _walk(get_resolver().url_patterns)
ALL_PATTERNS = [name for name, _module in PATTERNS]
SKIPPED = {name for name, module in PATTERNS if _admins_own(name, module)}
CHECKED = sorted(set(ALL_PATTERNS) - SKIPPED)

# ---------------------------------------------------------------------------------------
# The expected answers
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class To:
    """A 302 to the page named `view`; with `keeps_next`, "?next=" is the URL asked for."""

    view: str
    keeps_next: bool = False

    def __repr__(self) -> str:
        return f"302 to {self.view}"


LOGIN = To("login", keeps_next=True)  # login_required sending an anonymous visitor away
OUT = To("login")  # logged out, at the login page
ADMIN_LOGIN = To("admin:login")
HOME = To("maintenance:home")
REQUEST = To("maintenance:request")
BATCH = To("maintenance:batch")
CALENDAR = To("maintenance:calendar")
PREFERENCES = To("maintenance:preferences")
SYNC_RUNS = To("maintenance:sync_runs")
CHAT = To("maintenance:chat_channels")
POLICY = To("maintenance:policy")
CHAT_FORM = {
    "name": "matrix",
    "kind": "slack",
    "url": "https://hooks.slack.com/services/T0/B0/matrix",
    "events": ["failed"],
    "enabled": "on",
}

PERSONAS = ("anonymous", "outsider", "requester", "approver", "admin", "auditor")
FIXTURES = {
    "outsider": "outsider",
    "requester": "requester",
    "approver": "approver",
    "admin": "admin_user",
    "auditor": "auditor",
}

# Rows in the order of PERSONAS:  anonymous, outsider, requester, approver, admin, auditor
VIEWERS = (LOGIN, 403, 200, 200, 200, 200)  # any role may look; no role, no page
POST_ONLY = (LOGIN, 405, 405, 405, 405, 405)
GET_ONLY = POST_ONLY
AUDITORS = (LOGIN, 403, 403, 403, 200, 200)  # view_audit: admin and auditor
REQUESTERS = (LOGIN, 403, 200, 403, 403, 403)  # request_change
ADMINS = (LOGIN, 403, 403, 403, 200, 403)  # chat channels
EVERYONE = (200, 200, 200, 200, 200, 200)
NO_TOKEN = (403, 403, 403, 403, 403, 403)  # CSRF refuses before any view runs
SIGNED_IN = (LOGIN, 200, 200, 200, 200, 200)
TOKEN_ONLY = (401,) * 6  # the API: no CSRF to pass, and a session is not a token


@dataclass
class Row:
    """One URL: how to build it, what its POST sends, and the answers per persona."""

    args: Callable[[World], list[Any]]
    get: tuple
    post: tuple
    data: Callable[[World], dict[str, Any]] = field(default=lambda w: {})
    post_no_token: tuple = NO_TOKEN


def no_args(world: World) -> list[Any]:
    return []


def one(world: World) -> list[Any]:
    return [1]  # refused before any object is looked up


# The API's operations by URL name (the view function's): the arguments of their path,
# and the methods their path answers (another is 405, before any token is looked at).
GET, POST, BOTH = ("GET",), ("POST",), ("GET", "POST")
API_OPERATIONS: dict[str, tuple[Callable[[World], list[Any]], tuple[str, ...]]] = {
    "list_connections": (no_args, GET),
    "get_connection": (one, GET),
    "list_tunnels": (no_args, GET),
    "get_tunnel": (one, GET),
    "list_sync_runs": (no_args, BOTH),
    "start_sync": (no_args, BOTH),
    "get_sync_run": (one, GET),
    "list_requests": (no_args, BOTH),
    "create_request": (no_args, BOTH),
    "get_request": (one, GET),
    "approve_request": (one, POST),
    "reject_request": (one, POST),
    "cancel_request": (one, POST),
    "reschedule_request": (one, POST),
    "list_batches": (no_args, GET),
    "get_batch": (one, GET),
    "approve_batch": (one, POST),
    "reject_batch": (one, POST),
    "list_executions": (no_args, GET),
    "get_execution": (one, GET),
    "list_audit_events": (no_args, GET),
    "export_audit_events": (no_args, GET),
    "receive_health_event": (no_args, POST),
}


def api_row(args: Callable[[World], list[Any]], methods: tuple[str, ...]) -> Row:
    get = TOKEN_ONLY if "GET" in methods else (405,) * 6
    post = TOKEN_ONLY if "POST" in methods else (405,) * 6
    return Row(args, get=get, post=post, post_no_token=post)


TABLE: dict[str, Row] = {
    # Inventory. Read-only pages answer a POST as they answer a GET (nothing written).
    "maintenance:home": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:connections": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:connection": Row(lambda w: [w.connection.pk], get=VIEWERS, post=VIEWERS),
    "maintenance:connection_history": Row(lambda w: [w.connection.pk], get=VIEWERS, post=VIEWERS),
    "maintenance:tunnel_history": Row(lambda w: [w.tunnel.pk], get=VIEWERS, post=VIEWERS),
    "maintenance:sync_runs": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:sync_run": Row(lambda w: [w.sync_run.pk], get=VIEWERS, post=VIEWERS),
    "maintenance:sync_now": Row(
        no_args, get=POST_ONLY, post=(LOGIN, 403, 403, 403, SYNC_RUNS, 403)
    ),
    "maintenance:preferences": Row(
        no_args,
        get=(LOGIN, 200, 200, 200, 200, 200),
        post=(LOGIN, *[PREFERENCES] * 5),
        data=lambda w: {"time_zone": "Asia/Tokyo"},
    ),
    # Personal API tokens, on the Preferences page: each user's own.
    "maintenance:api_token_create": Row(
        no_args,
        get=POST_ONLY,
        post=(LOGIN, *[PREFERENCES] * 5),
        data=lambda w: {"name": "matrix script", "lifetime": "30"},
    ),
    "maintenance:api_token_revoke": Row(
        lambda w: [w.api_token.pk], get=POST_ONLY, post=(LOGIN, *[PREFERENCES] * 5)
    ),
    # The change workflow: the request below is the requester's, waiting for approval.
    "maintenance:request_new": Row(
        lambda w: [w.tunnel.pk, ChangeKind.REPLACE],
        get=REQUESTERS,
        post=(LOGIN, 403, REQUEST, 403, 403, 403),
        data=lambda w: w.window(hours=2) | {"reason": "apply the pending maintenance"},
    ),
    "maintenance:requests": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:my_approvals": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:my_requests": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:request": Row(lambda w: [w.change.pk], get=VIEWERS, post=VIEWERS),
    "maintenance:request_timeline": Row(lambda w: [w.change.pk], get=VIEWERS, post=GET_ONLY),
    "maintenance:request_decide": Row(
        lambda w: [w.change.pk],
        get=POST_ONLY,
        post=(LOGIN, 403, 403, REQUEST, 403, 403),  # an approver, not the requester
        data=lambda w: {"decision": "approve", "comment": "fine"},
    ),
    "maintenance:request_cancel": Row(
        lambda w: [w.change.pk],
        get=POST_ONLY,
        post=(LOGIN, 403, REQUEST, 403, REQUEST, 403),  # its requester, or an admin
        data=lambda w: {"cancel_reason": "not needed after all"},
    ),
    "maintenance:request_refresh": Row(
        lambda w: [w.change.pk],
        get=POST_ONLY,
        post=(LOGIN, 403, 403, REQUEST, 403, 403),  # approvers: one read of the connection
    ),
    "maintenance:request_reschedule": Row(
        lambda w: [w.change.pk],
        get=POST_ONLY,
        post=(LOGIN, 403, REQUEST, 403, 403, 403),  # its requester only, not even an admin
        data=lambda w: w.window(hours=5),
    ),
    # Batches: the batch below is the requester's, waiting for approval.
    "maintenance:batches": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:batch_new": Row(
        no_args,
        get=REQUESTERS,
        post=(LOGIN, 403, BATCH, 403, 403, 403),
        data=lambda w: (
            w.window(hours=2)
            | {
                "tunnels": [w.lacking.pk],
                "reason": "lifecycle control before the next cycle",
                "skip_tunnel_replacement": "apply",
            }
        ),
    ),
    "maintenance:batch": Row(lambda w: [w.batch.pk], get=VIEWERS, post=VIEWERS),
    "maintenance:batch_decide": Row(
        lambda w: [w.batch.pk],
        get=POST_ONLY,
        post=(LOGIN, 403, 403, BATCH, 403, 403),
        data=lambda w: {"decision": "approve", "comment": ""},
    ),
    # The audit log and its exports: admins and auditors, GET only.
    "maintenance:audit": Row(no_args, get=AUDITORS, post=GET_ONLY),
    "maintenance:audit_export": Row(lambda w: ["csv"], get=AUDITORS, post=GET_ONLY),
    # Calendar. The feed needs no login: its token (here the persona's own; the
    # requester's for an anonymous visitor) is the credential, and a user without a
    # role gets the same 404 as a wrong token.
    "maintenance:calendar": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:calendar_create": Row(no_args, get=POST_ONLY, post=(LOGIN, 403, *[CALENDAR] * 4)),
    "maintenance:calendar_revoke": Row(no_args, get=POST_ONLY, post=(LOGIN, 403, *[CALENDAR] * 4)),
    "maintenance:calendar_feed": Row(
        lambda w: [w.feed_token], get=(200, 404, 200, 200, 200, 200), post=(405,) * 6
    ),
    "maintenance:timeline": Row(no_args, get=VIEWERS, post=VIEWERS),
    # Chat channels and their delivery log: admins only.
    "maintenance:chat_channels": Row(no_args, get=ADMINS, post=ADMINS),
    "maintenance:chat_deliveries": Row(no_args, get=ADMINS, post=ADMINS),
    "maintenance:chat_channel_new": Row(
        no_args, get=ADMINS, post=(LOGIN, 403, 403, 403, CHAT, 403), data=lambda w: CHAT_FORM
    ),
    "maintenance:chat_channel": Row(
        lambda w: [w.chat_channel.pk],
        get=ADMINS,
        post=(LOGIN, 403, 403, 403, CHAT, 403),
        data=lambda w: CHAT_FORM,
    ),
    "maintenance:chat_channel_delete": Row(
        lambda w: [w.chat_channel.pk], get=POST_ONLY, post=(LOGIN, 403, 403, 403, CHAT, 403)
    ),
    "maintenance:chat_channel_test": Row(
        lambda w: [w.chat_channel.pk], get=POST_ONLY, post=(LOGIN, 403, 403, 403, CHAT, 403)
    ),
    # Fleet automation: the plan, policies (approved or suspended by approvers; a
    # suspension by admins too) and the AWS Health events received.
    "maintenance:plan": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:policies": Row(no_args, get=VIEWERS, post=VIEWERS),
    "maintenance:policy": Row(lambda w: [w.policy.pk], get=VIEWERS, post=VIEWERS),
    "maintenance:policy_approve": Row(
        lambda w: [w.policy.pk], get=POST_ONLY, post=(LOGIN, 403, 403, POLICY, 403, 403)
    ),
    "maintenance:policy_suspend": Row(
        lambda w: [w.policy.pk], get=POST_ONLY, post=(LOGIN, 403, 403, POLICY, POLICY, 403)
    ),
    "maintenance:health_events": Row(no_args, get=VIEWERS, post=VIEWERS),
    # vpnctl/urls.py
    "login": Row(no_args, get=EVERYONE, post=EVERYONE),  # POST: the empty form, re-shown
    "logout": Row(no_args, get=(405,) * 6, post=(OUT,) * 6),
    # Single sign-on is off here (VPNCTL_OIDC_ISSUER unset): 404 (tests/test_sso.py has it on).
    "oidc_authentication_init": Row(no_args, get=(404,) * 6, post=(405,) * 6),
    "oidc_authentication_callback": Row(no_args, get=(404,) * 6, post=(405,) * 6),
    "admin:index": Row(
        no_args,
        get=(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, ADMIN_LOGIN),
        post=(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, ADMIN_LOGIN),
    ),
    "admin:login": Row(no_args, get=(200, 200, 200, 200, To("admin:index"), 200), post=EVERYONE),
    "healthz": Row(no_args, get=EVERYONE, post=EVERYONE),
    # No login asked; no worker runs here, so it answers "not heard of" to everyone.
    "healthz_worker": Row(no_args, get=(503,) * 6, post=(503,) * 6),
    "set_language": Row(
        no_args, get=(HOME,) * 6, post=(HOME,) * 6, data=lambda w: {"language": "en", "next": "/"}
    ),
    # The JSON API: its schema and docs page for people signed in; anything else wants a
    # token, which no browser session is (tests/test_api.py calls it with tokens).
    "api:openapi-json": Row(no_args, get=SIGNED_IN, post=SIGNED_IN),
    "api:openapi-view": Row(no_args, get=SIGNED_IN, post=SIGNED_IN),
    "api:api-root": Row(no_args, get=(404,) * 6, post=(404,) * 6),
    "api_not_found": Row(
        lambda w: ["nothing"], get=(404,) * 6, post=(404,) * 6, post_no_token=(404,) * 6
    ),
    **{f"api:{name}": api_row(*operation) for name, operation in API_OPERATIONS.items()},
}

METHODS = ("GET", "POST", "POST-no-token")

# ---------------------------------------------------------------------------------------
# The rows the cases use
# ---------------------------------------------------------------------------------------


class World:
    """The rows a URL is built from, each made when first asked for.

    The request and the batch belong to the requester and wait for approval; `tunnel`
    and `lacking` have nothing open, so a new request or batch on them is valid.
    """

    def __init__(self, requester: User, user: User | None) -> None:
        self.requester = requester
        self.user = user

    @staticmethod
    def _local(moment: datetime) -> str:
        zone = zoneinfo.ZoneInfo(settings.DISPLAY_TIME_ZONE)  # none of them has a profile
        return timezone.localtime(moment, zone).strftime("%Y-%m-%dT%H:%M")

    def window(self, hours: float) -> dict[str, str]:
        start = timezone.now() + timedelta(hours=hours)
        return {
            "window_start": self._local(start),
            "window_end": self._local(start + timedelta(hours=1)),
        }

    @cached_property
    def sync_run(self):
        from maintenance.models import SyncResult, SyncRun

        run = SyncRun.objects.create(finished_at=timezone.now())
        SyncResult.objects.create(run=run, account=self.connection.account, region="ap-northeast-1")
        return run

    @cached_property
    def connection(self):
        return make_connection(name="matrix-office", tunnels=[pending(days=10), {}])

    @cached_property
    def tunnel(self):
        return self.connection.tunnels.order_by("outside_ip")[0]

    @cached_property
    def change(self) -> ChangeRequest:
        connection = make_connection(name="matrix-branch", tunnels=[pending(days=10), {}])
        start = timezone.now() + timedelta(hours=2)
        return ChangeRequest.submit(
            user=self.requester,
            tunnel=connection.tunnels.order_by("outside_ip")[0],
            kind=ChangeKind.REPLACE,
            reason="quarterly patch",
            window_start=start,
            window_end=start + timedelta(hours=1),
        )

    @cached_property
    def batch(self) -> ChangeBatch:
        off = {"lifecycle_control": False}
        connection = make_connection(name="matrix-batch", tunnels=[off, off])
        start = timezone.now() + timedelta(hours=2)
        return ChangeBatch.submit(
            user=self.requester,
            tunnels=list(connection.tunnels.all()),
            reason="lifecycle control everywhere",
            window_start=start,
            window_end=start + timedelta(hours=1),
        )

    @cached_property
    def lacking(self):
        connection = make_connection(name="matrix-lacking", tunnels=[{"lifecycle_control": False}])
        return connection.tunnels.get()

    @cached_property
    def chat_channel(self):
        from maintenance.models import ChatChannel

        channel = ChatChannel(name="matrix-chat", kind="slack", events=["failed"])
        channel.set_url("https://hooks.slack.com/services/T0/B0/stored")
        channel.save()
        return channel

    @cached_property
    def policy(self):
        from maintenance.models import MaintenancePolicy

        now = timezone.now()
        return MaintenancePolicy.objects.create(
            name="matrix-policy",
            kinds=[ChangeKind.REPLACE],
            standard_from=now,
            standard_until=now + timedelta(days=30),
        )

    @cached_property
    def feed_token(self) -> str:
        return CalendarFeed.issue(self.user or self.requester)[0].token

    @cached_property
    def api_token(self) -> ApiToken:
        return ApiToken.issue(self.user or self.requester, name="matrix")[0]


def csrf_token(client: Client) -> str:
    """A valid token for the client, as a browser holds it after any page with a form."""
    secret = get_random_string(32)
    if settings.CSRF_USE_SESSIONS:
        session = client.session
        session[CSRF_SESSION_KEY] = secret
        session.save()
    else:
        client.cookies[settings.CSRF_COOKIE_NAME] = secret
    return secret


def state() -> dict[str, Any]:
    """What a refused request must leave as it was."""
    return {
        "requests": list(
            ChangeRequest.objects.order_by("pk").values_list(
                "pk", "status", "window_start", "window_end", "updated_at"
            )
        ),
        "approvals": Approval.objects.count(),
        "batches": ChangeBatch.objects.count(),
        "audit events": AuditEvent.objects.count(),
        "live calendar feeds": CalendarFeed.objects.filter(revoked_at__isnull=True).count(),
        "profiles": list(UserProfile.objects.values_list("user_id", "time_zone")),
    }


def check_answer(response, expected, url: str) -> None:
    if isinstance(expected, int):
        assert response.status_code == expected, f"{url}: {response.status_code}, not {expected}"
        return
    assert response.status_code == 302, f"{url}: {response.status_code}, not {expected!r}"
    target = urlsplit(response["Location"])
    assert resolve(target.path).view_name == expected.view, f"{url} -> {response['Location']}"
    if expected.keeps_next:
        assert parse_qs(target.query).get("next") == [url], response["Location"]


def _cases() -> list:
    return [
        pytest.param(name, method, persona, id=f"{name}-{method}-{persona}")
        for name in CHECKED
        for method in METHODS
        for persona in PERSONAS
    ]


# ---------------------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------------------


def test_every_url_has_a_row_and_every_row_a_url():
    unnamed = [n for n in CHECKED if "<unnamed" in n]
    assert not unnamed, f"URL patterns without a name cannot have a row: {unnamed}"
    twice = [n for n, k in Counter(ALL_PATTERNS).items() if k > 1 and n not in SKIPPED]
    assert not twice, f"URL names used by more than one pattern: {twice}"
    missing = sorted(set(CHECKED) - TABLE.keys())
    assert not missing, f"URLs with no row in the access table: {missing}"
    stale = sorted(TABLE.keys() - set(CHECKED))
    assert not stale, f"rows for URLs that urlpatterns no longer has: {stale}"


def test_only_the_admins_own_pages_are_left_out():
    assert ADMIN_KEPT <= set(CHECKED)
    left_out = {name: module for name, module in PATTERNS if name not in CHECKED}
    assert set(left_out) == SKIPPED
    not_django = {n: m for n, m in left_out.items() if not m.startswith("django.")}
    assert not not_django, f"vpnctl's own views left out of the table: {not_django}"
    assert all(name.startswith("admin:") for name in left_out)
    # The admin is where it was: its model pages are found, and left out.
    assert "admin:maintenance_awsaccount_changelist" in SKIPPED


@pytest.fixture(scope="module")
def browser() -> Client:
    """One client with CSRF checks on, as a browser has them, for the whole module: its
    middleware (WhiteNoise lists the static files) loads once, not 600 times."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def fresh(browser) -> Client:
    """The browser with no cookies: no session, no CSRF token."""
    browser.cookies = SimpleCookie()
    return browser


@pytest.mark.parametrize("name, method, persona", _cases())
def test_access(name, method, persona, request, requester, fresh):
    row = TABLE.get(name)
    if row is None:
        pytest.fail(f"{name} is in urlpatterns but has no row in the access table")
    user = request.getfixturevalue(FIXTURES[persona]) if persona in FIXTURES else None
    world = World(requester, user)
    url = reverse(name, args=row.args(world))
    client = fresh
    if user is not None:
        client.force_login(user)
    answers = {"GET": row.get, "POST": row.post, "POST-no-token": row.post_no_token}
    expected = answers[method][PERSONAS.index(persona)]

    data = row.data(world) if method != "GET" else {}
    if method == "POST":
        data["csrfmiddlewaretoken"] = csrf_token(client)
    before = state()
    response = client.get(url) if method == "GET" else client.post(url, data)

    check_answer(response, expected, url)
    if not isinstance(expected, To) or expected in (LOGIN, OUT, ADMIN_LOGIN):
        assert state() == before, "a refused or read-only request changed data"
    assert AuditEvent.verify_chain()[2] == ""


# ---------------------------------------------------------------------------------------
# Object-level checks: the right role, but not the right person or token
# ---------------------------------------------------------------------------------------


@pytest.fixture
def others_request(other_requester) -> ChangeRequest:
    return World(other_requester, None).change


@pytest.fixture
def post_as(fresh):
    """POST as `user`, with a valid CSRF token."""

    def post(user: User, url: str, data: dict[str, Any]):
        fresh.cookies = SimpleCookie()
        fresh.force_login(user)
        return fresh.post(url, {**data, "csrfmiddlewaretoken": csrf_token(fresh)})

    return post


def test_a_requester_cannot_cancel_someone_elses_request(requester, others_request, post_as):
    before = state()
    url = reverse("maintenance:request_cancel", args=[others_request.pk])
    response = post_as(requester, url, {"cancel_reason": "mine now"})
    assert response.status_code == 403
    assert "Only the requester or an admin may cancel a request." in response.content.decode()
    others_request.refresh_from_db()
    assert others_request.status == ChangeStatus.PENDING_APPROVAL
    assert state() == before


def test_a_requester_cannot_reschedule_someone_elses_request(requester, others_request, post_as):
    before = state()
    url = reverse("maintenance:request_reschedule", args=[others_request.pk])
    response = post_as(requester, url, World(requester, requester).window(hours=6))
    assert response.status_code == 403
    assert "Only the requester may change the window." in response.content.decode()
    assert state() == before


def test_an_approver_cannot_decide_their_own_request(approver, post_as):
    # Someone who both asks for and approves changes: the four-eyes rule still holds.
    approver.groups.add(Group.objects.get(name=roles.REQUESTER))
    change = World(User.objects.get(pk=approver.pk), None).change
    before = state()
    for decision, comment in (("approve", ""), ("reject", "no")):
        url = reverse("maintenance:request_decide", args=[change.pk])
        response = post_as(approver, url, {"decision": decision, "comment": comment})
        # Refused by the model's rule and shown on the page (the form is not offered).
        assert response.status_code == 200
        assert "You cannot approve or reject your own request." in response.content.decode()
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING_APPROVAL
    assert state() == before


def test_an_approver_cannot_decide_their_own_batch(approver, post_as):
    approver.groups.add(Group.objects.get(name=roles.REQUESTER))
    batch = World(User.objects.get(pk=approver.pk), None).batch
    before = state()
    url = reverse("maintenance:batch_decide", args=[batch.pk])
    response = post_as(approver, url, {"decision": "approve", "comment": ""})
    assert response.status_code == 400
    assert "You cannot approve or reject your own request." in response.content.decode()
    assert state() == before


@pytest.fixture
def restricted_world(requester, approver) -> World:
    """The request and batch of World, on an account whose named approvers leave out the
    `approver` persona: only members of "network-team" decide them."""
    team = Group.objects.create(name="network-team")
    account = make_account()
    account.approver_groups.add(team)
    return World(requester, approver)


@pytest.mark.parametrize(
    "name, thing, ok",
    [
        ("maintenance:request_decide", "change", REQUEST),
        ("maintenance:batch_decide", "batch", BATCH),
    ],
)
def test_an_approver_outside_the_accounts_named_approvers_is_refused(
    name, thing, ok, restricted_world, approver, second_approver, post_as
):
    target = getattr(restricted_world, thing)
    url = reverse(name, args=[target.pk])
    data = {"decision": "approve", "comment": "fine"}
    before = state()
    response = post_as(approver, url, data)
    assert response.status_code == 403
    assert (
        "Only the approvers named for account default may decide its requests: "
        "groups network-team; users —." in response.content.decode()
    )
    assert state() == before
    # A member of the named group passes where the approver role alone does not.
    second_approver.groups.add(Group.objects.get(name="network-team"))
    check_answer(post_as(User.objects.get(pk=second_approver.pk), url, data), ok, url)


def test_the_calendar_feed_with_a_revoked_or_wrong_token_is_404(client, requester):
    old = CalendarFeed.issue(requester)[0].token
    new = CalendarFeed.issue(requester)[0].token  # revokes the old one
    assert client.get(reverse("maintenance:calendar_feed", args=[new])).status_code == 200
    assert client.get(reverse("maintenance:calendar_feed", args=[old])).status_code == 404
    wrong = new[:-1] + ("A" if new[-1] != "A" else "B")
    assert client.get(reverse("maintenance:calendar_feed", args=[wrong])).status_code == 404
    CalendarFeed.revoke_all(requester)
    assert client.get(reverse("maintenance:calendar_feed", args=[new])).status_code == 404


@pytest.mark.parametrize(
    "name, args",
    [
        ("maintenance:request", [10**6]),
        ("maintenance:request_timeline", [10**6]),
        ("maintenance:batch", [10**6]),
        ("maintenance:connection", [10**6]),
        ("maintenance:connection_history", [10**6]),
        ("maintenance:tunnel_history", [10**6]),
        ("maintenance:audit_export", ["xml"]),
    ],
)
def test_what_does_not_exist_is_404_for_those_who_may_look(client, admin_user, name, args):
    client.force_login(admin_user)
    assert client.get(reverse(name, args=args)).status_code == 404


def test_a_change_to_an_unknown_tunnel_or_of_an_unknown_kind_is_404(client, requester):
    client.force_login(requester)
    tunnel = World(requester, requester).tunnel
    for args in ([10**6, ChangeKind.REPLACE], [tunnel.pk, "delete_everything"]):
        assert client.get(reverse("maintenance:request_new", args=args)).status_code == 404
        assert client.post(reverse("maintenance:request_new", args=args)).status_code == 404
