"""The chat channel pages (admins): adding, editing, deleting, the test message and the
delivery log; the webhook URL never shown back, never audited."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from maintenance.choices import AuditAction
from maintenance.models import (
    AuditEvent,
    ChatChannel,
    ChatDelivery,
    ChatEvent,
    ChatKind,
    DeliveryStatus,
)
from tests.factories import make_account

URL = "https://hooks.slack.com/services/T0001/B0002/VerySecretToken9z"


def _form(**extra) -> dict:
    return {
        "name": "ops",
        "kind": ChatKind.SLACK,
        "url": URL,
        "account": "",
        "events": [ChatEvent.NEEDS_APPROVAL, ChatEvent.FAILED],
        "language": "",
        "enabled": "on",
    } | extra


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _audit_text(action) -> str:
    return json.dumps(
        [(e.message, e.details) for e in AuditEvent.objects.filter(action=action).order_by("seq")],
        default=str,
    )


def test_adding_a_channel_keeps_the_url_secret_everywhere(admin_client, admin_user):
    response = admin_client.post(reverse("maintenance:chat_channel_new"), _form())

    assert response.status_code == 302
    channel = ChatChannel.objects.get()
    assert channel.url() == URL
    assert channel.url_hint == "https://hooks.slack.com/…/en9z"
    assert channel.events == [ChatEvent.NEEDS_APPROVAL, ChatEvent.FAILED]
    row = json.dumps(ChatChannel.objects.filter(pk=channel.pk).values().get(), default=str)
    assert "VerySecretToken" not in row
    for page in (
        reverse("maintenance:chat_channels"),
        reverse("maintenance:chat_channel", args=[channel.pk]),
    ):
        html = admin_client.get(page).content.decode()
        assert "VerySecretToken" not in html
        assert "https://hooks.slack.com/…/en9z" in html
    audited = _audit_text(AuditAction.CHAT_CHANNEL_CHANGED)
    assert "VerySecretToken" not in audited
    assert "en9z" in audited
    event = AuditEvent.objects.get(action=AuditAction.CHAT_CHANNEL_CHANGED)
    assert event.actor == admin_user
    assert event.details["after"]["events"] == ["needs_approval", "failed"]


def test_a_blank_url_keeps_the_stored_one_and_a_new_one_replaces_it(admin_client):
    admin_client.post(reverse("maintenance:chat_channel_new"), _form())
    channel = ChatChannel.objects.get()
    edit = reverse("maintenance:chat_channel", args=[channel.pk])

    admin_client.post(edit, _form(url="", name="ops-renamed"))
    channel.refresh_from_db()
    assert (channel.name, channel.url()) == ("ops-renamed", URL)

    admin_client.post(edit, _form(url="https://hooks.slack.com/services/T/B/NewOne42"))
    channel.refresh_from_db()
    assert channel.url() == "https://hooks.slack.com/services/T/B/NewOne42"
    assert channel.url_hint.endswith("/…/ne42")
    changes = AuditEvent.objects.filter(action=AuditAction.CHAT_CHANNEL_CHANGED)
    changed = changes.order_by("-seq").first()
    assert changed.details["before"]["url_hint"].endswith("en9z")
    assert "NewOne42" not in json.dumps(changed.details, default=str)


def test_a_url_that_is_not_https_is_refused_and_nothing_saved(admin_client, settings):
    settings.MODE = "production"

    response = admin_client.post(
        reverse("maintenance:chat_channel_new"), _form(url="http://hooks.example.com/x")
    )

    assert response.status_code == 200
    assert "The webhook URL must start with https:// and name a host." in response.content.decode()
    assert ChatChannel.objects.count() == 0
    assert not AuditEvent.objects.filter(action=AuditAction.CHAT_CHANNEL_CHANGED).exists()


def test_a_new_channel_needs_a_url(admin_client):
    response = admin_client.post(reverse("maintenance:chat_channel_new"), _form(url=""))

    assert "Enter the webhook URL." in response.content.decode()
    assert ChatChannel.objects.count() == 0


def test_a_webhooks_signing_secret_is_made_and_shown_once(admin_client):
    response = admin_client.post(
        reverse("maintenance:chat_channel_new"), _form(kind=ChatKind.WEBHOOK)
    )

    assert response.status_code == 200
    channel = ChatChannel.objects.get()
    secret = channel.secret()
    assert len(secret) >= 32
    assert secret in response.content.decode()
    assert secret not in channel.secret_encrypted
    html = admin_client.get(reverse("maintenance:chat_channel", args=[channel.pk])).content
    assert secret not in html.decode()
    assert secret not in _audit_text(AuditAction.CHAT_CHANNEL_CHANGED)


def test_deleting_a_channel_is_audited(admin_client):
    admin_client.post(reverse("maintenance:chat_channel_new"), _form(account=make_account().pk))
    channel = ChatChannel.objects.get()

    response = admin_client.post(reverse("maintenance:chat_channel_delete", args=[channel.pk]))

    assert response.status_code == 302
    assert ChatChannel.objects.count() == 0
    event = AuditEvent.objects.get(action=AuditAction.CHAT_CHANNEL_DELETED)
    assert event.details["before"]["name"] == "ops"
    assert event.account is not None
    assert "VerySecretToken" not in _audit_text(AuditAction.CHAT_CHANNEL_DELETED)


def test_a_test_message_is_queued_and_shows_in_the_delivery_log(admin_client):
    admin_client.post(reverse("maintenance:chat_channel_new"), _form())
    channel = ChatChannel.objects.get()

    admin_client.post(reverse("maintenance:chat_channel_test", args=[channel.pk]))

    delivery = ChatDelivery.objects.get()
    assert delivery.params["test"] is True
    html = admin_client.get(reverse("maintenance:chat_deliveries")).content.decode()
    assert "1 delivery" in html
    assert "ops" in html


def test_the_delivery_log_filters_by_channel_and_status(admin_client):
    for name in ("alpha", "beta"):
        admin_client.post(reverse("maintenance:chat_channel_new"), _form(name=name))
    alpha, beta = ChatChannel.objects.order_by("name")
    ChatDelivery.objects.create(channel=alpha, event=ChatEvent.FAILED, last_error="HTTP 500 x")
    ChatDelivery.objects.create(
        channel=beta, event=ChatEvent.SUCCEEDED, status=DeliveryStatus.DELIVERED
    )
    log = reverse("maintenance:chat_deliveries")

    assert "2 deliveries" in admin_client.get(log).content.decode()
    by_channel = admin_client.get(log, {"channel": alpha.pk}).content.decode()
    assert "1 delivery" in by_channel and "HTTP 500 x" in by_channel
    by_status = admin_client.get(log, {"status": DeliveryStatus.DELIVERED}).content.decode()
    assert "1 delivery" in by_status and "a change succeeded" in by_status


@pytest.mark.parametrize("name", ["chat_channels", "chat_channel_new", "chat_deliveries"])
def test_only_admins_see_the_chat_pages(client, approver, name):
    client.force_login(approver)
    assert client.get(reverse(f"maintenance:{name}")).status_code == 403


def test_admins_find_the_chat_pages_in_the_navigation(admin_client, client, approver):
    assert reverse("maintenance:chat_channels") in admin_client.get("/").content.decode()
    client.force_login(approver)
    assert reverse("maintenance:chat_channels") not in client.get("/").content.decode()


def _queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # the first request fills per-process caches
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("name", ["chat_channels", "chat_deliveries"])
def test_the_chat_lists_read_the_same_few_queries_whatever_their_size(admin_client, name):
    counts = []
    for size in (2, 8):
        for i in range(size):
            channel = ChatChannel(
                name=f"c{size}-{i}", kind=ChatKind.SLACK, account=make_account(f"a{i}", f"{i:012}")
            )
            channel.set_url(URL)
            channel.save()
            ChatDelivery.objects.create(channel=channel, event=ChatEvent.FAILED)
        counts.append(_queries(admin_client, reverse(f"maintenance:{name}")))
    assert counts[0] == counts[1] <= 10


def test_a_new_channel_starts_with_every_event_ticked_and_no_test_event(admin_client):
    html = admin_client.get(reverse("maintenance:chat_channel_new")).content.decode()

    assert html.count('name="events"') == html.count('name="events" value=') == 9
    assert html.count("checked") == 9 + 1  # the events, and "enabled"
    assert 'value="test"' not in html
