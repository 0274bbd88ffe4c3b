"""Sending chat messages: the django-q2 task behind every ChatDelivery.

``models.chat.announce`` writes a delivery inside the transition's transaction and queues
``deliver`` once it commits; the sweeper queues the retries that are due, so a retry
outlives a restarted worker. ``deliver``:

1. claims the next attempt with a conditional UPDATE (one sender per attempt);
2. writes the message in the channel's language, times in UTC, as the channel's kind
   wants it (Slack, Microsoft Teams, or a JSON webhook signed with HMAC-SHA256);
3. posts it with a short timeout, and records the HTTP status or the error, the URL
   scrubbed from it: delivered, retried after a backoff, or given up after the last.

The webhook URL is a secret: it never reaches a log, an error column or a page.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext

from . import enqueue, times
from .models import ChatChannel, ChatDelivery, ChatEvent, ChatKind, DeliveryStatus
from .models.chat import OUTSTANDING
from .secrets import SecretUnreadable
from .texts import render

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Vpnctl-Signature"
TIMESTAMP_HEADER = "X-Vpnctl-Timestamp"


def deliver(delivery_pk: int) -> str:
    """Make the next attempt at one delivery; returns its status (or why nothing was sent).

    Safe to run twice: a second run finds the attempt claimed, or not yet due, and stops.
    """
    delivery = ChatDelivery.objects.select_related("channel").filter(pk=delivery_pk).first()
    if delivery is None or delivery.status not in OUTSTANDING:
        return "nothing to send"
    now = timezone.now()
    if delivery.claim(now) is None:
        return "not due, or sent by another worker"
    channel = delivery.channel
    try:
        url, secret = channel.url(), channel.secret()
    except SecretUnreadable as exc:
        log.error("chat channel %s (%s) cannot be used: %s", channel.pk, channel.name, exc)
        status_code, error = None, str(exc)
    else:
        body, headers = message(channel, delivery, secret)
        status_code, error = post(url, body, headers, hint=channel.url_hint)
    status = delivery.record(now=timezone.now(), status_code=status_code, error=error)
    if status == DeliveryStatus.GAVE_UP:
        log.warning(
            "chat delivery %s to channel %s (%s) gave up after %d attempts: %s",
            delivery.pk,
            channel.pk,
            channel.name,
            delivery.attempts,
            error,
        )
    return status


def queue_due(now: datetime) -> int:
    """The sweeper's: queue every delivery whose next attempt is due. Returns how many."""
    due = list(
        ChatDelivery.objects.filter(status__in=OUTSTANDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )
    for pk in due:
        enqueue.deliver_chat(pk)
    return len(due)


def send_test(channel: ChatChannel) -> ChatDelivery:
    """Queue a test message to one channel (its "Send a test message" button)."""
    now = timezone.now()
    delivery = ChatDelivery.objects.create(
        channel=channel,
        event=ChatEvent.TEST,
        params={"test": True, "url": settings.SITE_URL + "/"},
        created_at=now,
        next_attempt_at=now,
    )
    enqueue.deliver_chat(delivery.pk)
    return delivery


# -- the message --------------------------------------------------------------------


def sentences(delivery: ChatDelivery) -> tuple[str, list[str]]:
    """The headline and the lines below it, in the active language (times in UTC)."""
    params = delivery.params
    if params.get("test"):
        return gettext("vpnctl: a test message. This channel is set up."), []
    lines = []
    mentions = params.get("mentions")
    if mentions is not None:
        names = [*(f"@{g}" for g in mentions["groups"]), *(f"@{u}" for u in mentions["users"])]
        who = ", ".join(names) if names else gettext("any approver")
        lines.append(gettext("Who may decide: %(who)s") % {"who": who})
    if params.get("code"):
        lines.append(gettext("AWS error code: %(code)s") % {"code": params["code"]})
    return str(render(params.get("text"))), lines


def message(
    channel: ChatChannel, delivery: ChatDelivery, secret: str = ""
) -> tuple[bytes, dict[str, str]]:
    """The body and headers to post to the channel, written in its language."""
    with translation.override(channel.language or settings.LANGUAGE_CODE), times.utc():
        headline, lines = sentences(delivery)
        link = delivery.params.get("url") or ""
        label = gettext("Open in vpnctl")
        if channel.kind == ChatKind.SLACK:
            payload = slack_payload(headline, lines, link, label)
        elif channel.kind == ChatKind.TEAMS:
            payload = teams_payload(headline, lines, link, label)
        else:
            payload = webhook_payload(delivery, " ".join([headline, *lines]))
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "vpnctl"}
    if channel.kind == ChatKind.WEBHOOK:
        timestamp = str(int(timezone.now().timestamp()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = "sha256=" + signature(secret, timestamp, body)
    return body, headers


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256, in hex, of "<timestamp>.<body>" with the channel's secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(headline: str, lines: list[str], link: str, label: str) -> dict[str, Any]:
    text = "\n".join(_slack_escape(line) for line in [headline, *lines])
    if link:
        text += f"\n<{link}|{_slack_escape(label)}>"
    return {"text": text}


def teams_payload(headline: str, lines: list[str], link: str, label: str) -> dict[str, Any]:
    """An Adaptive Card: what Teams workflows and the older connectors both take."""
    body = [{"type": "TextBlock", "text": headline, "wrap": True, "weight": "Bolder"}]
    body += [{"type": "TextBlock", "text": line, "wrap": True} for line in lines]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": label, "url": link}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }


def webhook_payload(delivery: ChatDelivery, text: str) -> dict[str, Any]:
    params = delivery.params
    return {
        "event": "test" if params.get("test") else delivery.event,
        "occurred_at": delivery.created_at.astimezone(UTC).isoformat(),
        "request": {"id": params.get("request"), "url": params.get("url")},
        "account": {"name": params.get("account"), "id": params.get("account_id")},
        "region": params.get("region"),
        "connection": params.get("connection"),
        "tunnel": params.get("tunnel"),
        "aws_error_code": params.get("code") or None,
        "approvers": params.get("mentions"),
        "text": text,
    }


# -- posting ------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that answers with a redirect has failed: never follow it elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], *, hint: str) -> tuple[int | None, str]:
    """POST the body; (HTTP status or None, "" when delivered else why not, URL scrubbed)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - https is checked when saved
    timeout = settings.CHAT_TIMEOUT_SECONDS
    try:
        with _opener.open(request, timeout=timeout) as answer:
            answer.read(1024)
            return answer.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, _scrub(f"HTTP {exc.code} {exc.reason}", url, hint)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return None, gettext("no answer within %(n)d s") % {"n": timeout}
        return None, _scrub(f"{type(reason).__name__}: {reason}", url, hint)
    except TimeoutError:
        return None, gettext("no answer within %(n)d s") % {"n": timeout}
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return None, _scrub(f"{type(exc).__name__}: {exc}", url, hint)


def _scrub(text: str, url: str, hint: str) -> str:
    """An error text without the URL (urllib may put it, or its path, in one)."""
    path = url.split("://", 1)[-1].partition("/")[2]
    text = text.replace(url, hint)
    if path:
        text = text.replace(path, "…")
    return text
