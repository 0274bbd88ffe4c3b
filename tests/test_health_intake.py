"""The AWS Health intake: EventBridge's deliveries stored once, linked, audited, and a read
of just the named connections queued; every bad body refused with nothing stored."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from maintenance.choices import AuditAction, HealthMeaning
from maintenance.enqueue import REFRESH_CONNECTION
from maintenance.management.commands.health_intake_token import SERVICE_USERNAME, service_user
from maintenance.models import ApiToken, AuditEvent, HealthEvent
from simulator.health import health_event_body
from tests.factories import make_connection
from tests.queue_helpers import queue_held

pytestmark = pytest.mark.django_db

URL = "/api/v1/aws-health/events"
KNOWN = "AWS_VPN_REDUNDANCY_LOSS"


@pytest.fixture
def token(db) -> str:
    _row, clear = ApiToken.issue(service_user(), name="EventBridge")
    return clear


def deliver(client, token, body, **extra):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        URL,
        data=data,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        **extra,
    )


@pytest.mark.parametrize("entities_in", ["resources", "affectedEntities", "both"])
def test_an_event_is_stored_linked_audited_and_reads_its_connections(
    client, token, entities_in, django_capture_on_commit_callbacks
):
    named = make_connection()
    other = make_connection()
    body = health_event_body(
        [named.vpn_connection_id, "vpn-0ffffffffffffffff"], code=KNOWN, entities_in=entities_in
    )

    with queue_held() as queue:
        with django_capture_on_commit_callbacks(execute=True):
            answer = deliver(client, token, body)
        refreshes = queue.of(REFRESH_CONNECTION)

    assert answer.status_code == 200, answer.content
    assert answer.json()["stored"] is True
    assert answer.json()["unknown_connections"] == ["vpn-0ffffffffffffffff"]
    event = HealthEvent.objects.get()
    assert event.type_code == KNOWN and event.meaning == HealthMeaning.REDUNDANCY_LOSS
    assert list(event.connections.all()) == [named]
    assert event.unknown_connection_ids == ["vpn-0ffffffffffffffff"]
    assert event.account == named.account
    audit = AuditEvent.objects.get(action=AuditAction.HEALTH_EVENT_RECEIVED)
    assert audit.actor_name == SERVICE_USERNAME
    assert audit.details["unknown_connections"] == ["vpn-0ffffffffffffffff"]
    assert refreshes == [(named.pk,)]
    named.refresh_from_db()
    other.refresh_from_db()
    assert named.refresh_waiting and not other.refresh_waiting


def test_a_second_delivery_changes_nothing(client, token, django_capture_on_commit_callbacks):
    connection = make_connection()
    body = health_event_body([connection.vpn_connection_id], code=KNOWN)
    deliver(client, token, body)
    audit_count = AuditEvent.objects.count()

    with queue_held() as queue:
        with django_capture_on_commit_callbacks(execute=True):
            # EventBridge delivers at least once, and once per region.
            again = deliver(client, token, {**body, "id": "another", "region": "us-east-1"})
        refreshes = queue.of(REFRESH_CONNECTION)

    assert again.status_code == 200
    assert again.json()["stored"] is False
    assert HealthEvent.objects.count() == 1
    assert AuditEvent.objects.count() == audit_count
    assert refreshes == []


def test_a_new_communication_of_the_same_event_is_stored(client, token):
    connection = make_connection()
    body = health_event_body([connection.vpn_connection_id], code=KNOWN, event_id="e1")
    deliver(client, token, body)
    update = health_event_body(
        [connection.vpn_connection_id], code=KNOWN, event_id="e1", communication_id="e1-2"
    )
    assert deliver(client, token, update).json()["stored"] is True
    assert HealthEvent.objects.count() == 2


def test_an_unknown_code_is_stored_and_shown_never_acted_upon(
    client, token, admin_user, django_capture_on_commit_callbacks
):
    connection = make_connection()
    body = health_event_body([connection.vpn_connection_id], code="AWS_VPN_SOMETHING_NEW")

    with queue_held() as queue:
        with django_capture_on_commit_callbacks(execute=True):
            answer = deliver(client, token, body)
        refreshes = queue.of(REFRESH_CONNECTION)

    assert answer.json()["acted_upon"] is False
    assert refreshes == []
    connection.refresh_from_db()
    assert not connection.refresh_waiting
    client.force_login(admin_user)
    page = client.get("/health-events/").content.decode()
    assert "AWS_VPN_SOMETHING_NEW" in page
    assert "Not known to vpnctl: stored and shown, not acted upon" in page


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "The body is not JSON"),
        ({"source": "aws.ec2", "detail-type": "AWS Health Event"}, "source must be “aws.health”"),
        (
            health_event_body(["vpn-0123456789abcdef0"]) | {"detail-type": "EC2 Spot"},
            "detail-type must be “AWS Health Event”",
        ),
        (b"{" + b" " * (256 * 1024) + b"}", "larger than 256 KB"),
    ],
)
def test_a_bad_body_is_refused_with_a_message_and_nothing_stored(client, token, body, message):
    answer = deliver(client, token, body)

    assert answer.status_code == 400
    assert message in answer.json()["detail"]
    assert HealthEvent.objects.count() == 0
    assert not AuditEvent.objects.filter(action=AuditAction.HEALTH_EVENT_RECEIVED).exists()


def test_without_the_intake_token_nothing_is_stored(client, requester):
    body = health_event_body(["vpn-0123456789abcdef0"], code=KNOWN)
    assert deliver(client, "vpnctl_wrong", body).status_code == 401
    _row, requester_token = ApiToken.issue(requester, name="mine")
    refused = deliver(client, requester_token, body)
    assert refused.status_code == 403
    assert HealthEvent.objects.count() == 0


def test_the_intake_user_can_do_nothing_else(client, token):
    answer = client.get("/api/v1/connections", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 403
    assert client.get("/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 302


def test_the_command_prints_a_token_once_and_keeps_only_its_digest(capsys):
    call_command("health_intake_token", "--name", "EventBridge prod")
    clear = capsys.readouterr().out.strip().splitlines()[-1]
    row = ApiToken.objects.get(name="EventBridge prod")
    assert row.user.username == SERVICE_USERNAME
    assert clear.startswith(row.prefix) and row.digest != clear
    assert not row.user.has_usable_password()
    assert list(row.user.get_all_permissions()) == ["maintenance.receive_health_events"]
