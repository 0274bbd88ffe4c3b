"""Chat notifications delivered to a real HTTP receiver on loopback: what each kind of
channel receives, the signature, retries, giving up, and that a failing chat service
never touches the change it is about."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone

from maintenance import chat, enqueue, reminders, secrets, sync, tasks
from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import (
    AuditEvent,
    ChangeBatch,
    ChangeRequest,
    ChatChannel,
    ChatDelivery,
    ChatEvent,
    ChatKind,
    DeliveryStatus,
    Execution,
)
from maintenance.models.chat import CHOOSABLE_EVENTS
from simulator import TunnelSpec
from tests.factories import make_account, make_connection, pending
from tests.queue_helpers import queue_held

SECRET = "s3cret-for-signing"
EVERY_EVENT = [value for value, _label in CHOOSABLE_EVENTS]


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST, answers as told (200 by default,
    a status code, or "hang": no answer for `hang_seconds`)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.answers: list[int | str] = []
        self.hang_seconds = 3.0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if answer == "hang":
                    receiver.release.wait(receiver.hang_seconds)
                    answer = 200
                try:
                    self.send_response(answer)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hooks/T0123/B0456/XyZsecretpath") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def json(self, n: int = -1) -> dict:
        return json.loads(self.received[n]["body"])

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def make_channel(url: str, kind=ChatKind.SLACK, *, events=None, account=None, **extra):
    channel = ChatChannel(
        name=f"{kind} channel", kind=kind, account=account, events=events or EVERY_EVENT
    )
    channel.set_url(url)
    if kind == ChatKind.WEBHOOK:
        channel.set_secret(SECRET)
    for name, value in extra.items():
        setattr(channel, name, value)
    channel.save()
    return channel


def submit(requester, tunnel=None) -> ChangeRequest:
    tunnel = tunnel or make_connection(tunnels=[pending(), {}]).tunnels.order_by("pk").first()
    return ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="apply the patch",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=2),
    )


def deliveries(event=None) -> list[ChatDelivery]:
    qs = ChatDelivery.objects.select_related("channel").order_by("pk")
    return list(qs.filter(event=event) if event else qs)


def deliver_all() -> list[str]:
    return [chat.deliver(d.pk) for d in deliveries()]


# -- what each kind receives -------------------------------------------------------------


def test_slack_hears_a_request_needing_approval_with_its_link_and_who_may_decide(
    db, receiver, requester, approver, settings
):
    settings.SITE_URL = "https://vpnctl.example.com"
    channel = make_channel(receiver.url(), ChatKind.SLACK)
    connection = make_connection(make_account("prod"), tunnels=[pending(), {}])
    connection.account.approver_groups.add(Group.objects.get(name="approver"))
    request = submit(requester, connection.tunnels.order_by("pk").first())

    assert deliver_all() == [DeliveryStatus.DELIVERED]

    text = receiver.json()["text"]
    assert f"Request #{request.pk}" in text
    assert connection.vpn_connection_id in text
    assert "waits for approval; window" in text and "UTC" in text
    assert "Who may decide: @approver" in text
    assert f"<https://vpnctl.example.com/requests/{request.pk}/|Open in vpnctl>" in text
    assert receiver.received[0]["path"] == "/hooks/T0123/B0456/XyZsecretpath"
    delivery = ChatDelivery.objects.get()
    assert (delivery.channel, delivery.event, delivery.change_request) == (
        channel,
        ChatEvent.NEEDS_APPROVAL,
        request,
    )
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, "")
    assert delivery.delivered_at is not None


def test_teams_gets_an_adaptive_card_in_the_channels_language(db, receiver, requester):
    make_channel(receiver.url(), ChatKind.TEAMS, language="ja")
    request = submit(requester)

    deliver_all()

    message = receiver.json()
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert f"#{request.pk}" in card["body"][0]["text"]
    assert card["actions"][0]["type"] == "Action.OpenUrl"
    assert card["actions"][0]["url"].endswith(f"/requests/{request.pk}/")
    # Japanese where a translation exists; the times in UTC, named, either way.
    assert "UTC" in card["body"][0]["text"]


def test_webhook_is_signed_over_the_timestamp_and_body(db, receiver, requester):
    make_channel(receiver.url("/vpnctl"), ChatKind.WEBHOOK)
    request = submit(requester)

    deliver_all()

    (got,) = receiver.received
    timestamp = got["headers"]["X-Vpnctl-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + got["body"], hashlib.sha256
    ).hexdigest()
    assert got["headers"]["X-Vpnctl-Signature"] == f"sha256={expected}"
    assert abs(int(timestamp) - time.time()) < 60
    body = json.loads(got["body"])
    tunnel = request.tunnel
    assert body["event"] == "needs_approval"
    assert datetime.fromisoformat(body["occurred_at"]).utcoffset() == timedelta(0)
    assert body["request"]["id"] == request.pk
    assert body["request"]["url"].endswith(f"/requests/{request.pk}/")
    assert body["connection"] == tunnel.connection.vpn_connection_id
    assert body["tunnel"] == tunnel.outside_ip
    assert body["account"]["name"] == tunnel.connection.account.name
    assert body["approvers"] == {"groups": [], "users": []}
    assert "any approver" in body["text"]


# -- which channel hears what ------------------------------------------------------------


def test_channels_hear_only_their_events_and_accounts(db, receiver, requester):
    mine, other = make_account("mine", "111111111111"), make_account("other", "222222222222")
    decided_only = make_channel(receiver.url(), events=[ChatEvent.DECIDED])
    for_mine = make_channel(receiver.url(), account=mine, events=[ChatEvent.NEEDS_APPROVAL])
    make_channel(receiver.url(), account=other, events=[ChatEvent.NEEDS_APPROVAL])
    make_channel(receiver.url(), enabled=False)

    submit(requester, make_connection(mine, tunnels=[pending(), {}]).tunnels.first())

    assert [(d.channel, d.event) for d in deliveries()] == [(for_mine, ChatEvent.NEEDS_APPROVAL)]
    assert decided_only.deliveries.count() == 0


def test_decisions_and_each_end_of_an_execution_are_announced(db, receiver, requester, approver):
    make_channel(receiver.url(), ChatKind.WEBHOOK)
    request = submit(requester)
    request.approve(user=approver)
    request.refresh_from_db()
    execution = Execution.claim(request, worker="w1")
    execution.fail(
        "AWS refused", error_code="InvalidParameterValue", error_message="nothing pending"
    )
    rejected = submit(requester)
    rejected.reject(user=approver, comment="not this week")

    assert [d.event for d in deliveries()] == [
        ChatEvent.NEEDS_APPROVAL,
        ChatEvent.DECIDED,
        ChatEvent.EXECUTION_STARTED,
        ChatEvent.FAILED,
        ChatEvent.NEEDS_APPROVAL,
        ChatEvent.DECIDED,
    ]
    deliver_all()
    bodies = [json.loads(r["body"]) for r in receiver.received]
    assert "approved; it runs in its window" in bodies[1]["text"]
    assert "the change started" in bodies[2]["text"]
    assert bodies[3]["aws_error_code"] == "InvalidParameterValue"
    assert "AWS error code: InvalidParameterValue" in bodies[3]["text"]
    assert "rejected by aiko: not this week" in bodies[5]["text"]


def test_blocked_and_succeeded_are_announced(db, receiver, requester, approver):
    make_channel(receiver.url(), events=[ChatEvent.BLOCKED, ChatEvent.SUCCEEDED])
    first, second = submit(requester), submit(requester)
    for request in (first, second):
        request.approve(user=approver)
        request.refresh_from_db()
    Execution.claim(first).block("The other tunnel is DOWN.")
    Execution.claim(second).succeed({})

    assert [d.event for d in deliveries()] == [ChatEvent.BLOCKED, ChatEvent.SUCCEEDED]
    deliver_all()
    assert "Blocked: The other tunnel is DOWN." in receiver.json(0)["text"]


def test_a_deadline_reminder_is_announced_once_a_day(db, receiver):
    account = make_account("prod")
    channel = make_channel(receiver.url(), events=[ChatEvent.DEADLINE_REMINDER])
    make_channel(receiver.url(), account=make_account("other", "222222222222"))
    connection = make_connection(account, tunnels=[pending(days=3), {}])

    reminders.send_deadline_reminders()
    reminders.send_deadline_reminders()

    (delivery,) = deliveries()
    assert delivery.channel == channel
    assert delivery.event == ChatEvent.DEADLINE_REMINDER
    deliver_all()
    text = receiver.json()["text"]
    assert connection.vpn_connection_id in text
    assert "no change is planned" in text
    assert f"/connections/{connection.pk}/" in text


@pytest.mark.django_db(transaction=True)  # the sync writes from its own thread
def test_maintenance_applied_by_aws_is_announced(aws, accounts, receiver):
    connection_id = aws.create_connection(region="ap-northeast-1", tunnels=[TunnelSpec()] * 2)
    sync.run_sync(account_name="default", region="ap-northeast-1")
    make_channel(receiver.url(), events=[ChatEvent.APPLIED_BY_AWS])
    first, _second = aws.tunnel_ips(connection_id)
    # AWS's deadline passes: it replaces the tunnel itself, in a later second than the
    # first sync's (EC2 reports whole seconds).
    time.sleep(1.1)
    aws.set_tunnel(
        connection_id, first, pending_maintenance="Available", auto_apply_after=datetime.now(UTC)
    )
    time.sleep(aws.timings.replace_down_seconds + 0.1)

    sync.run_sync(account_name="default", region="ap-northeast-1")

    (delivery,) = deliveries()
    assert delivery.event == ChatEvent.APPLIED_BY_AWS
    deliver_all()
    assert f"AWS applied maintenance to {connection_id} {first}" in receiver.json()["text"]


# -- retries, timeouts, giving up ----------------------------------------------------------


def test_a_500_is_retried_after_a_backoff_and_then_delivered(
    db, receiver, requester, settings, django_capture_on_commit_callbacks
):
    settings.CHAT_RETRY_SECONDS = 30
    make_channel(receiver.url())
    receiver.answers = [500]
    submit(requester)
    (delivery,) = deliveries()

    with time_machine.travel(timezone.now(), tick=False) as traveller:
        assert chat.deliver(delivery.pk) == DeliveryStatus.RETRYING
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.last_status_code) == (1, 500)
        assert "HTTP 500" in delivery.last_error
        assert delivery.next_attempt_at == timezone.now() + timedelta(seconds=30)
        # Not due yet: a duplicate task sends nothing.
        assert chat.deliver(delivery.pk) == "not due, or sent by another worker"
        assert len(receiver.received) == 1
        with queue_held() as queue:
            with django_capture_on_commit_callbacks(execute=True):
                assert chat.queue_due(timezone.now()) == 0
                traveller.shift(timedelta(seconds=31))
                # The sweeper queues what is due (it outlives a restarted worker).
                assert tasks.sweep()["chat_queued"] == 1
            assert queue.of(enqueue.DELIVER_CHAT) == [(delivery.pk,)]
        assert chat.deliver(delivery.pk) == DeliveryStatus.DELIVERED

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.DELIVERED,
        2,
        200,
    )
    assert len(receiver.received) == 2


def test_a_receiver_that_hangs_times_out_is_retried_and_given_up(
    db, receiver, requester, settings, caplog
):
    settings.CHAT_TIMEOUT_SECONDS = 1
    settings.CHAT_MAX_ATTEMPTS = 2
    settings.CHAT_RETRY_SECONDS = 30
    url = receiver.url()
    make_channel(url)
    receiver.answers = ["hang", "hang"]
    submit(requester)
    (delivery,) = deliveries()

    with caplog.at_level(logging.DEBUG):
        with time_machine.travel(timezone.now(), tick=True) as traveller:
            started = time.monotonic()
            assert chat.deliver(delivery.pk) == DeliveryStatus.RETRYING
            assert time.monotonic() - started < 2.5
            delivery.refresh_from_db()
            assert delivery.last_error == "no answer within 1 s"
            assert delivery.last_status_code is None
            traveller.shift(timedelta(seconds=35))
            assert chat.deliver(delivery.pk) == DeliveryStatus.GAVE_UP

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (
        DeliveryStatus.GAVE_UP,
        2,
        None,
    )
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "gave up after 2 attempts" in warning.getMessage()
    assert all("secretpath" not in r.getMessage() for r in caplog.records)
    assert chat.deliver(delivery.pk) == "nothing to send"


def test_an_unreachable_url_is_logged_without_the_url(db, requester, caplog):
    make_channel("http://127.0.0.1:9/hooks/XyZsecretpath")  # the discard port: refused
    submit(requester)
    (delivery,) = deliveries()

    with caplog.at_level(logging.DEBUG):
        assert chat.deliver(delivery.pk) == DeliveryStatus.RETRYING

    delivery.refresh_from_db()
    assert delivery.last_error
    assert "secretpath" not in delivery.last_error
    assert all("secretpath" not in r.getMessage() for r in caplog.records)


def test_two_workers_never_send_the_same_attempt(db, receiver, requester):
    make_channel(receiver.url())
    submit(requester)
    first, second = (ChatDelivery.objects.get() for _ in range(2))
    now = timezone.now()

    assert first.claim(now) == 1
    assert second.claim(now) is None


# -- the change itself is untouched ----------------------------------------------------------


def test_a_hanging_receiver_neither_delays_nor_undoes_the_change(
    db, receiver, requester, django_capture_on_commit_callbacks
):
    make_channel(receiver.url())
    receiver.answers = ["hang"]

    with queue_held() as queue:
        with django_capture_on_commit_callbacks(execute=True):
            started = time.monotonic()
            request = submit(requester)
            elapsed = time.monotonic() - started
        (delivery,) = deliveries()
        assert queue.of(enqueue.DELIVER_CHAT) == [(delivery.pk,)]

    assert elapsed < 1.5
    assert receiver.received == []  # sent by the worker's task, never by the transition
    request.refresh_from_db()
    assert request.status == ChangeStatus.PENDING_APPROVAL
    assert AuditEvent.objects.filter(
        action=AuditAction.REQUEST_SUBMITTED, change_request=request
    ).exists()


# -- the URL is a secret -----------------------------------------------------------------------


def test_the_url_and_secret_are_stored_encrypted(db, receiver):
    url = receiver.url()
    channel = make_channel(url, ChatKind.WEBHOOK)

    row = ChatChannel.objects.filter(pk=channel.pk).values().get()
    assert url not in json.dumps(row, default=str)
    assert "XyZsecretpath" not in json.dumps(row, default=str)
    assert SECRET not in json.dumps(row, default=str)
    assert row["url_hint"] == "http://127.0.0.1/…/path"
    assert ChatChannel.objects.get(pk=channel.pk).url() == url


def test_a_changed_key_fails_the_delivery_with_a_clear_error(
    db, receiver, requester, settings, caplog
):
    make_channel(receiver.url())
    submit(requester)
    settings.SECRET_KEY = "another-secret-key-" * 4
    (delivery,) = deliveries()

    with caplog.at_level(logging.ERROR):
        assert chat.deliver(delivery.pk) == DeliveryStatus.RETRYING

    delivery.refresh_from_db()
    assert "enter the webhook URL again" in delivery.last_error
    assert any("enter the webhook URL again" in r.getMessage() for r in caplog.records)
    assert receiver.received == []
    with pytest.raises(secrets.SecretUnreadable):
        ChatChannel.objects.get().url()


def test_a_secrets_key_setting_takes_precedence(db, settings):
    from cryptography.fernet import Fernet

    settings.SECRETS_KEY = Fernet.generate_key().decode()
    token = secrets.encrypt("https://hooks.slack.com/services/T/B/abcd")
    settings.SECRET_KEY = "rotated-" * 8
    assert secrets.decrypt(token) == "https://hooks.slack.com/services/T/B/abcd"
    settings.SECRETS_KEY = Fernet.generate_key().decode()
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt(token)


def test_the_hint_shows_the_host_and_last_four_characters():
    assert secrets.url_hint("https://hooks.slack.com/services/T0/B0/AbCd") == (
        "https://hooks.slack.com/…/AbCd"
    )


def test_a_test_message_reaches_the_webhook(db, receiver):
    channel = make_channel(receiver.url(), ChatKind.WEBHOOK)

    delivery = chat.send_test(channel)

    assert chat.deliver(delivery.pk) == DeliveryStatus.DELIVERED
    body = receiver.json()
    assert body["event"] == "test"
    assert "a test message" in body["text"]


def test_the_readmes_verification_snippet_accepts_vpnctls_signature(db, receiver, requester):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Chat channels", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - our own README
    make_channel(receiver.url(), ChatKind.WEBHOOK)
    submit(requester)
    deliver_all()

    (got,) = receiver.received
    assert namespace["verify"](SECRET, got["headers"], got["body"])
    assert not namespace["verify"]("another secret", got["headers"], got["body"])
    assert not namespace["verify"](SECRET, got["headers"], got["body"] + b" ")


def test_a_batch_waiting_for_approval_is_one_message(db, receiver, requester):
    make_channel(receiver.url(), events=[ChatEvent.NEEDS_APPROVAL])
    off = {"lifecycle_control": False}
    connection = make_connection(tunnels=[off, off])
    start = timezone.now() + timedelta(hours=2)
    batch = ChangeBatch.submit(
        user=requester,
        tunnels=list(connection.tunnels.all()),
        reason="lifecycle control everywhere",
        window_start=start,
        window_end=start + timedelta(hours=1),
    )

    (delivery,) = deliveries()
    deliver_all()
    assert f"first of batch #{batch.pk}, 2 requests" in receiver.json()["text"]
    assert delivery.change_request.batch == batch
