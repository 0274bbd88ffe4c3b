"""The JSON API: tokens, every endpoint, every error with its message, and that a refused
call changes nothing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import (
    ApiToken,
    Approval,
    AuditEvent,
    ChangeBatch,
    ChangeRequest,
    Execution,
    ExecutionStep,
    SyncResult,
    SyncRun,
)
from tests.factories import make_account, make_connection, pending

API = "/api/v1"


class Caller:
    """A client that sends one user's token."""

    def __init__(self, client: Client, token: str, ip: str = "192.0.2.10") -> None:
        self.client, self.token, self.ip = client, token, ip

    def _headers(self, extra: dict) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}", "REMOTE_ADDR": self.ip, **extra}

    def get(self, path: str, params: dict | None = None, **extra):
        return self.client.get(API + path, params or {}, **self._headers(extra))

    def post(self, path: str, body: dict | None = None, **extra):
        return self.client.post(
            API + path,
            json.dumps(body or {}),
            content_type="application/json",
            **self._headers(extra),
        )


@pytest.fixture
def as_user(client):
    def make(user, ip: str = "192.0.2.10") -> Caller:
        return Caller(client, ApiToken.issue(user, name=f"{user.username}-script")[1], ip)

    return make


@pytest.fixture
def tunnel(db):
    connection = make_connection(name="api-office", tunnels=[pending(days=10), {}])
    return connection.tunnels.order_by("outside_ip")[0]


def _window(hours: float = 2, length: float = 1) -> dict:
    start = timezone.now() + timedelta(hours=hours)
    return {
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=length)).isoformat(),
    }


@pytest.fixture
def change(requester, tunnel) -> ChangeRequest:
    start = timezone.now() + timedelta(hours=2)
    return ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="quarterly patch",
        window_start=start,
        window_end=start + timedelta(hours=1),
    )


def state() -> dict:
    """What a refused call must leave as it was (a token's own events aside: making one
    and its first use from an address are audited, whatever the call)."""
    return {
        "requests": list(
            ChangeRequest.objects.order_by("pk").values_list(
                "pk", "status", "window_start", "window_end", "updated_at"
            )
        ),
        "approvals": list(Approval.objects.values_list("pk", "decision", "fingerprint")),
        "audit events": AuditEvent.objects.exclude(action__startswith="token.").count(),
    }


def error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "errors"}
    return body


# ---------------------------------------------------------------------------------------
# Tokens: made on the Preferences page, shown once, stored hashed, revoked, expired
# ---------------------------------------------------------------------------------------


def test_a_token_made_on_the_preferences_page_is_shown_once_and_stored_hashed(client, requester):
    client.force_login(requester)
    response = client.post(
        reverse("maintenance:api_token_create"), {"name": "deploy script", "lifetime": "30"}
    )
    assert response.status_code == 302
    page = client.get(reverse("maintenance:preferences")).content.decode()
    token = ApiToken.objects.get(user=requester)
    start = page.index('id="new-token"')
    clear = page[start:].split('value="', 1)[1].split('"', 1)[0]
    assert clear.startswith("vpnctl_") and len(clear) > 40
    assert "Copy it now: it is not shown again." in page
    # Shown once: out of the session, and the next page lists it by its prefix only.
    assert not any(clear in str(value) for value in client.session.values())
    again = client.get(reverse("maintenance:preferences")).content.decode()
    assert clear not in again and token.prefix in again and "deploy script" in again
    # Stored as its SHA-256 only: in no column of its row, nor in the audit log.
    assert token.digest == hashlib.sha256(clear.encode()).hexdigest()
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert not any(clear in str(value) for value in row.values())
    event = AuditEvent.objects.get(action=AuditAction.API_TOKEN_CREATED)
    assert clear not in event.message and clear not in json.dumps(event.details)
    assert event.actor == requester
    assert event.message == f"rei created the API token deploy script ({token.prefix}…)."
    assert 29 <= (token.expires_at - timezone.now()).days <= 30
    # And it works.
    answer = Caller(Client(), clear).get("/connections")
    assert answer.status_code == 200


def test_a_token_needs_a_name(client, requester):
    client.force_login(requester)
    response = client.post(reverse("maintenance:api_token_create"), {"name": "", "lifetime": ""})
    assert response.status_code == 400
    assert "Name the token, so that you can tell it apart later." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_a_revoked_token_is_refused_with_a_message(client, requester, as_user):
    caller = as_user(requester)
    token = ApiToken.objects.get(user=requester)
    client.force_login(requester)
    response = client.post(reverse("maintenance:api_token_revoke", args=[token.pk]))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REVOKED).count() == 1
    body = error(caller.get("/connections"), 401)
    assert body["detail"] == "This API token was revoked."


def test_nobody_revokes_another_users_token(client, requester, approver, as_user):
    as_user(requester)
    token = ApiToken.objects.get(user=requester)
    client.force_login(approver)
    response = client.post(reverse("maintenance:api_token_revoke", args=[token.pk]))
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_an_expired_token_is_refused_with_when_it_expired(client, requester):
    expires_at = timezone.now() + timedelta(days=1)
    token, clear = ApiToken.issue(requester, name="short", expires_at=expires_at)
    caller = Caller(client, clear)
    assert caller.get("/connections").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        body = error(caller.get("/connections"), 401)
    expired = token.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["detail"] == f"This API token expired on {expired}."


def test_a_wrong_or_missing_token_is_401_with_a_message(client, requester):
    as_requester = Caller(client, ApiToken.issue(requester, name="x")[1])
    wrong = Caller(client, as_requester.token[:-2] + "xx")
    body = error(wrong.get("/connections"), 401)
    assert body["detail"] == "This API token is not known: check that it was copied whole."
    response = client.get(f"{API}/connections")
    assert error(response, 401)["detail"] == (
        "Send a personal API token: Authorization: Bearer <token>."
    )
    assert response["WWW-Authenticate"].startswith("Bearer")
    # A browser session is not a token.
    client.force_login(requester)
    assert client.get(f"{API}/connections").status_code == 401


def test_an_inactive_users_token_is_refused(requester, as_user):
    caller = as_user(requester)
    requester.is_active = False
    requester.save()
    assert error(caller.get("/connections"), 401)["detail"] == (
        "The user of this API token is inactive."
    )


def test_over_the_rate_limit_is_429_until_the_minute_is_over(settings, requester, as_user):
    settings.API_RATE_PER_MINUTE = 3
    caller = as_user(requester)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        assert [caller.get("/connections").status_code for _ in range(3)] == [200] * 3
        response = caller.get("/connections")
        body = error(response, 429)
        assert body["detail"] == (
            "Too many calls with this token: at most 3 a minute. Try again in 60 s."
        )
        assert response["Retry-After"] == "60"
        traveller.shift(timedelta(seconds=61))
        assert caller.get("/connections").status_code == 200
    token = ApiToken.objects.get(user=requester)
    assert token.window_calls == 1


def test_a_use_from_a_new_address_is_audited_once(requester, as_user):
    caller = as_user(requester, ip="192.0.2.1")
    for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.1"):
        caller.ip = ip
        assert caller.get("/connections").status_code == 200
    events = AuditEvent.objects.filter(action=AuditAction.API_TOKEN_NEW_ADDRESS).order_by("seq")
    assert [e.details["ip"] for e in events] == ["192.0.2.1", "192.0.2.2"]
    assert caller.token not in json.dumps([e.details for e in events])
    token = ApiToken.objects.get(user=requester)
    assert (token.last_used_ip, token.last_used_at is not None) == ("192.0.2.1", True)


# ---------------------------------------------------------------------------------------
# Inventory
# ---------------------------------------------------------------------------------------


def test_connections_filtered_as_on_the_page(requester, as_user, tunnel):
    quiet = make_connection(name="api-quiet")
    caller = as_user(requester)
    body = caller.get("/connections").json()
    assert body["count"] == 2 and body["pages"] == 1
    pending_only = caller.get("/connections", {"pending": "true"}).json()
    assert [c["id"] for c in pending_only["results"]] == [tunnel.connection_id]
    assert caller.get("/connections", {"q": "api-quiet"}).json()["results"][0]["id"] == quiet.pk
    one = caller.get(f"/connections/{tunnel.connection_id}").json()
    assert [t["outside_ip"] for t in one["tunnels"]] == sorted(
        t.outside_ip for t in tunnel.connection.tunnels.all()
    )
    deadline = one["tunnels"][0]["maintenance_auto_applied_after"]
    assert deadline.endswith("Z")
    tunnels = caller.get("/tunnels", {"pending": "true"}).json()
    assert tunnels["count"] == 2
    assert caller.get(f"/tunnels/{tunnel.pk}").json()["vpn_connection_id"] == (
        tunnel.connection.vpn_connection_id
    )


def test_a_filter_that_does_not_parse_is_400_naming_it(requester, as_user, tunnel):
    caller = as_user(requester)
    body = error(caller.get("/connections", {"deadline_within": "5"}), 400)
    assert body["errors"] == {
        "deadline_within": ["Select a valid choice. 5 is not one of the available choices."]
    }
    body = error(caller.get("/connections", {"account": "abc"}), 400)
    assert list(body["errors"]) == ["account"]


def test_what_does_not_exist_is_404_and_no_role_is_403(requester, outsider, as_user):
    assert error(as_user(requester).get("/connections/999999"), 404)["detail"] == (
        "There is no such object."
    )
    stranger = as_user(outsider)
    for path in ("/connections", "/tunnels", "/requests", "/batches", "/sync-runs"):
        assert error(stranger.get(path), 403)["detail"] == "Your roles do not allow this."


def test_sync_runs_and_a_sync_queued_by_an_admin(requester, admin_user, as_user):
    run = SyncRun.objects.create(finished_at=timezone.now())
    SyncResult.objects.create(run=run, account=make_account(), region="ap-northeast-1")
    caller = as_user(requester)
    assert caller.get("/sync-runs").json()["results"][0]["id"] == run.pk
    assert caller.get(f"/sync-runs/{run.pk}").json()["results"][0]["account"] == "default"
    assert error(caller.post("/sync-runs"), 403)["detail"] == "Your roles do not allow this."
    response = as_user(admin_user).post("/sync-runs")
    assert response.status_code == 202
    assert response.json()["task"].startswith("sync-")


# ---------------------------------------------------------------------------------------
# Change requests: the same transitions, rules, audit and messages as the pages
# ---------------------------------------------------------------------------------------


def test_a_request_made_and_approved_with_two_tokens(requester, approver, as_user, tunnel):
    body = {"tunnel": tunnel.pk, "kind": "replace", "reason": "apply the patch", **_window()}
    response = as_user(requester).post("/requests", body)
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["status"] == "pending_approval" and made["requester"] == "rei"
    assert made["window_start"].endswith("Z")
    event = AuditEvent.objects.get(action=AuditAction.REQUEST_SUBMITTED)
    assert event.actor == requester and event.change_request_id == made["id"]
    approved = as_user(approver).post(f"/requests/{made['id']}/approve", {"comment": "ok"})
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    assert approved.json()["approvals"][0]["approver"] == "aiko"
    assert as_user(requester).get(f"/requests/{made['id']}").json()["status"] == "approved"


def test_a_request_that_does_not_parse_is_400_with_the_forms_messages(requester, as_user, tunnel):
    caller = as_user(requester)
    body = error(caller.post("/requests", {"tunnel": tunnel.pk, "kind": "replace"}), 400)
    assert set(body["errors"]) == {"reason", "window_end"}
    body = error(
        caller.post(
            "/requests", {"tunnel": tunnel.pk, "kind": "replace", "reason": " ", **_window()}
        ),
        400,
    )
    assert body["errors"] == {"reason": ["Say why this change is needed."]}
    body = error(
        caller.post(
            "/requests",
            {"tunnel": tunnel.pk, "kind": "replace", "reason": "x", "window_end": "tomorrow"},
        ),
        400,
    )
    assert "window_end" in body["errors"]
    body = error(caller.post("/requests", {"tunnel": tunnel.pk, "kind": "delete"}), 400)
    assert "kind" in body["errors"]
    assert not ChangeRequest.objects.exists()


def test_a_broken_rule_is_400_with_the_models_message(requester, as_user, tunnel):
    start = timezone.now() + timedelta(days=20)  # after AWS's deadline, 10 days away
    window = {
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=1)).isoformat(),
    }
    before = state()
    body = error(
        as_user(requester).post(
            "/requests", {"tunnel": tunnel.pk, "kind": "replace", "reason": "late", **window}
        ),
        400,
    )
    assert "AWS" in json.dumps(body)
    assert state() == before


def test_deciding_refusals_403_400_409_change_nothing(
    requester, approver, second_approver, as_user, change
):
    as_requester, as_approver = as_user(requester), as_user(approver)
    before = state()
    body = error(as_requester.post(f"/requests/{change.pk}/approve"), 403)
    assert body["detail"] == "You may not approve or reject changes."
    body = error(as_approver.post(f"/requests/{change.pk}/reject", {"comment": " "}), 400)
    assert body["errors"] == {"comment": ["Say why you reject it."]}
    assert state() == before
    as_approver.post(f"/requests/{change.pk}/reject", {"comment": "not now"})
    after_rejection = state()
    body = error(as_user(second_approver).post(f"/requests/{change.pk}/approve"), 409)
    assert body["detail"].startswith("aiko already rejected it, ")
    change.refresh_from_db()
    assert change.status == ChangeStatus.REJECTED
    assert state() == after_rejection


def test_an_approver_outside_the_accounts_named_approvers_is_403(approver, as_user, change):
    change.tunnel.connection.account.approver_groups.add(Group.objects.create(name="netops"))
    before = state()
    body = error(as_user(approver).post(f"/requests/{change.pk}/approve"), 403)
    assert body["detail"] == (
        "Only the approvers named for account default may decide its requests: "
        "groups netops; users —."
    )
    assert state() == before


def test_cancel_and_reschedule(requester, other_requester, admin_user, as_user, change):
    as_requester = as_user(requester)
    before = state()
    body = error(as_user(other_requester).post(f"/requests/{change.pk}/cancel"), 403)
    assert body["detail"] == "Only the requester or an admin may cancel a request."
    body = error(
        as_user(other_requester).post(f"/requests/{change.pk}/reschedule", _window(5)), 403
    )
    assert body["detail"] == "Only the requester may change the window."
    assert state() == before
    moved = as_requester.post(f"/requests/{change.pk}/reschedule", _window(5))
    assert moved.status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.REQUEST_RESCHEDULED).count() == 1
    cancelled = as_user(admin_user).post(f"/requests/{change.pk}/cancel", {"reason": "later"})
    assert cancelled.json()["status"] == "cancelled"
    done = state()
    body = error(as_requester.post(f"/requests/{change.pk}/cancel"), 409)
    assert body["detail"] == (
        "Only a request that has not started can be cancelled; this one is Cancelled."
    )
    body = error(as_requester.post(f"/requests/{change.pk}/reschedule", _window(6)), 409)
    assert body["detail"].startswith("Only a request waiting for approval can be rescheduled")
    assert state() == done


def test_requests_listed_and_filtered_as_on_the_page(requester, approver, as_user, change):
    caller = as_user(requester)
    assert caller.get("/requests").json()["count"] == 1
    assert caller.get("/requests", {"status": "approved"}).json()["count"] == 0
    assert caller.get("/requests", {"status": "open"}).json()["count"] == 1
    assert caller.get("/requests", {"mine": "true"}).json()["count"] == 1
    assert as_user(approver).get("/requests", {"waiting_for_me": "true"}).json()["count"] == 1
    body = error(caller.get("/requests", {"window_from": "2026-13-01"}), 400)
    assert list(body["errors"]) == ["window_from"]


def test_messages_in_the_callers_language(requester, as_user, change):
    body = error(
        as_user(requester).post(f"/requests/{change.pk}/approve", HTTP_ACCEPT_LANGUAGE="ja"), 403
    )
    assert body["detail"] != "You may not approve or reject changes."


def test_token_calls_need_no_csrf_token(requester, tunnel):
    caller = Caller(Client(enforce_csrf_checks=True), ApiToken.issue(requester, name="x")[1])
    body = {"tunnel": tunnel.pk, "kind": "replace", "reason": "no csrf", **_window()}
    assert caller.post("/requests", body).status_code == 201


# ---------------------------------------------------------------------------------------
# Batches, executions
# ---------------------------------------------------------------------------------------


def test_batches_listed_shown_and_approved(requester, approver, as_user):
    off = {"lifecycle_control": False}
    connection = make_connection(name="api-batch", tunnels=[off, off])
    start = timezone.now() + timedelta(hours=2)
    batch = ChangeBatch.submit(
        user=requester,
        tunnels=list(connection.tunnels.all()),
        reason="lifecycle control everywhere",
        window_start=start,
        window_end=start + timedelta(hours=1),
    )
    caller = as_user(approver)
    listed = caller.get("/batches").json()["results"][0]
    assert (listed["id"], listed["requests"], listed["waiting"]) == (batch.pk, 2, 2)
    assert len(caller.get(f"/batches/{batch.pk}").json()["members"]) == 2
    approved = caller.post(f"/batches/{batch.pk}/approve")
    assert approved.status_code == 200
    assert {m["status"] for m in approved.json()["members"]} == {"approved"}
    done = state()
    body = error(caller.post(f"/batches/{batch.pk}/approve"), 409)
    assert body["detail"] == "No request of this batch is waiting for a decision."
    assert state() == done


def test_an_execution_with_its_steps(requester, as_user, change):
    now = timezone.now()
    execution = Execution.objects.create(change_request=change, claimed_at=now, heartbeat_at=now)
    ExecutionStep.objects.create(execution=execution, message="Preflight checks passed.")
    caller = as_user(requester)
    assert caller.get("/executions").json()["results"][0]["id"] == execution.pk
    one = caller.get(f"/executions/{execution.pk}").json()
    assert one["request"] == change.pk
    assert [s["text"] for s in one["steps"]] == ["Preflight checks passed."]
    assert caller.get(f"/requests/{change.pk}").json()["execution"] == execution.pk


# ---------------------------------------------------------------------------------------
# The audit log
# ---------------------------------------------------------------------------------------


def test_audit_events_by_cursor_and_filters(auditor, requester, as_user, change):
    caller = as_user(auditor)
    for _ in range(55):
        ApiToken.issue(requester, name="many")
    first = caller.get("/audit-events").json()
    total = AuditEvent.objects.count()
    assert first["count"] == total and len(first["results"]) == 50
    assert first["newer"] is None and first["older"] == first["results"][-1]["seq"]
    second = caller.get("/audit-events", {"before": first["older"]}).json()
    assert [e["seq"] for e in second["results"]] == list(range(total - 50, 0, -1))
    assert second["older"] is None and second["newer"] == second["results"][0]["seq"]
    submitted = caller.get("/audit-events", {"action": "request.submitted"}).json()
    assert [e["request"] for e in submitted["results"]] == [change.pk]
    assert caller.get("/audit-events", {"request": change.pk}).json()["count"] == 1
    body = error(caller.get("/audit-events", {"tunnel": "not-an-ip"}), 400)
    assert list(body["errors"]) == ["tunnel"]
    assert error(as_user(requester).get("/audit-events"), 403)


def test_audit_export_streams_json_lines_as_stored(auditor, as_user, change):
    response = as_user(auditor).get("/audit-events/export.jsonl", {"request": change.pk})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    event = AuditEvent.objects.get(change_request=change)
    assert [(row["seq"], row["hash"]) for row in lines] == [(event.seq, event.hash)]


# ---------------------------------------------------------------------------------------
# The schema and its docs page
# ---------------------------------------------------------------------------------------


def test_the_docs_page_is_for_people_signed_in(client, requester):
    docs = f"{API}/docs"
    assert client.get(docs).status_code == 302
    assert client.get(f"{API}/openapi.json").status_code == 302
    client.force_login(requester)
    page = client.get(docs)
    assert page.status_code == 200
    # Swagger UI from vpnctl's own static files: the site's CSP allows no other origin.
    assert "/static/ninja/swagger-ui-bundle.js" in page.content.decode()
    assert "cdn" not in page.content.decode()
    schema = client.get(f"{API}/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/requests/{pk}/approve" in schema["paths"]


def test_the_schema_for_a_script_with_a_token(requester, as_user):
    assert as_user(requester).get("/openapi.json").status_code == 200
    assert error(Caller(Client(), "vpnctl_wrong").get("/openapi.json"), 401)


def test_times_with_any_offset_are_kept_in_utc(requester, auditor, as_user, tunnel):
    # ISO 8601 allows offsets PostgreSQL refuses (past ±15:59): vpnctl converts first.
    odd = as_user(auditor).get("/audit-events", {"time_from": "3001-03-26T18:04:12.7013-18:55"})
    assert odd.status_code == 200 and odd.json()["count"] == 0
    start = timezone.now().astimezone(timezone.get_fixed_timezone(-(18 * 60 + 55))) + timedelta(
        hours=2
    )
    window = {
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=1)).isoformat(),
    }
    made = as_user(requester).post(
        "/requests", {"tunnel": tunnel.pk, "kind": "replace", "reason": "odd zone", **window}
    )
    assert made.status_code == 201, made.content
    assert made.json()["window_start"] == start.astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = error(
        as_user(requester).post(
            f"/requests/{made.json()['id']}/reschedule", {"window_end": "9999-12-31T23:59:59-18:00"}
        ),
        400,
    )
    assert body["errors"] == {"window_end": ["Value error, This time is out of range."]}


def test_a_superuser_revokes_a_leaked_token_in_the_admin(client, requester, as_user):
    caller = as_user(requester)
    token = ApiToken.objects.get(user=requester)
    boss = type(requester).objects.create_superuser("boss", "boss@example.com", "pw-boss")
    client.force_login(boss)
    listing = client.get(reverse("admin:maintenance_apitoken_changelist"))
    assert listing.status_code == 200 and token.prefix in listing.content.decode()
    response = client.post(
        reverse("admin:maintenance_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action=AuditAction.API_TOKEN_REVOKED)
    assert event.actor == boss
    assert error(caller.get("/connections"), 401)["detail"] == "This API token was revoked."
