"""Chat notifications: the channels admins define and the log of every delivery.

A channel's webhook URL (and a generic webhook's signing secret) are secrets: they are
stored encrypted (``maintenance/secrets.py``), and only a hint of the URL is ever shown.
A delivery is queued data (the event and its parameters); the words are written when it
is sent, in the channel's language. ``announce`` (``announce_request`` for a request's
steps) is what the transitions, the sync and the reminders call, inside their own
transaction: it writes one delivery per channel that wants the event, and
``maintenance/chat.py`` sends it from the worker once that transaction commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import enqueue, secrets
from ..choices import AuditAction, ChangeKind, ExecutionOutcome
from ..roles import has_perm
from ..texts import N_, Text
from .audit import AuditEvent
from .inventory import AwsAccount, Tunnel


class ChatKind(models.TextChoices):
    SLACK = "slack", _("Slack incoming webhook")
    TEAMS = "teams", _("Microsoft Teams webhook or workflow")
    WEBHOOK = "webhook", _("JSON webhook signed with HMAC-SHA256")


class ChatEvent(models.TextChoices):
    NEEDS_APPROVAL = "needs_approval", _("a request needs approval")
    DECIDED = "decided", _("a request was approved or rejected")
    EXECUTION_STARTED = "execution_started", _("a change started")
    SUCCEEDED = "succeeded", _("a change succeeded")
    FAILED = "failed", _("a change failed")
    TIMED_OUT = "timed_out", _("a change timed out")
    BLOCKED = "blocked", _("a change was blocked by a safety check")
    DEADLINE_REMINDER = "deadline_reminder", _("AWS's deadline is near")
    APPLIED_BY_AWS = "applied_by_aws", _("AWS applied maintenance by itself")
    # Not for channels to choose: what "Send a test message" sends.
    TEST = "test", _("a test message")


CHOOSABLE_EVENTS = [(value, label) for value, label in ChatEvent.choices if value != ChatEvent.TEST]


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RETRYING = "retrying", _("failed, will retry")
    DELIVERED = "delivered", _("delivered")
    GAVE_UP = "gave_up", _("failed, gave up")


OUTSTANDING = (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING)

# How an execution ended, as the event a channel may want (superseded: no news).
OUTCOME_EVENTS = {
    ExecutionOutcome.SUCCEEDED: ChatEvent.SUCCEEDED,
    ExecutionOutcome.FAILED: ChatEvent.FAILED,
    ExecutionOutcome.TIMED_OUT: ChatEvent.TIMED_OUT,
    ExecutionOutcome.BLOCKED: ChatEvent.BLOCKED,
}


class ChatChannel(models.Model):
    """Where chat messages go: one webhook, for every account or for one."""

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=ChatKind.choices)
    account = models.ForeignKey(
        AwsAccount,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="chat_channels",
        verbose_name=_("account"),
        help_text=_("Empty: the channel hears about every account."),
    )
    url_encrypted = models.TextField(editable=False)
    # What may be shown of the URL once saved: its host and the last characters.
    url_hint = models.CharField(_("webhook URL"), max_length=120, editable=False)
    secret_encrypted = models.TextField(blank=True, editable=False)
    events = models.JSONField(_("events"), default=list, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True, choices=settings.LANGUAGES)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("chat channel")
        verbose_name_plural = _("chat channels")

    def __str__(self) -> str:
        return self.name

    def set_url(self, url: str) -> None:
        self.url_encrypted = secrets.encrypt(url)
        self.url_hint = secrets.url_hint(url)

    def url(self) -> str:
        """The webhook URL in clear (secrets.SecretUnreadable when the key changed)."""
        return secrets.decrypt(self.url_encrypted)

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = secrets.encrypt(secret)

    def secret(self) -> str:
        return secrets.decrypt(self.secret_encrypted)

    def save_by(self, user: Any, *, url: str = "", secret: str = "") -> None:
        """Save it, new or changed, with a new URL or secret if given, audited.

        The audit event names the URL by its hint only, and the secret as set or not.
        """
        perm = "maintenance.change_chatchannel" if self.pk else "maintenance.add_chatchannel"
        if not has_perm(user, perm):
            raise PermissionDenied
        now = timezone.now()
        before = None
        if self.pk:
            before = ChatChannel.objects.select_related("account").get(pk=self.pk).audit_snapshot()
        if url:
            self.set_url(url)
        if secret:
            self.set_secret(secret)
        self.updated_at = now
        with transaction.atomic():
            self.save()
            AuditEvent.record(
                AuditAction.CHAT_CHANNEL_CHANGED,
                actor=user,
                account=self.account,
                message=Text(
                    N_("Chat channel %(name)s changed.")
                    if before
                    else N_("Chat channel %(name)s added."),
                    name=self.name,
                ),
                details={"channel": self.pk, "before": before, "after": self.audit_snapshot()},
                at=now,
            )

    def delete_by(self, user: Any) -> None:
        """Delete it and its delivery log, audited."""
        if not has_perm(user, "maintenance.delete_chatchannel"):
            raise PermissionDenied
        with transaction.atomic():
            AuditEvent.record(
                AuditAction.CHAT_CHANNEL_DELETED,
                actor=user,
                account=self.account,
                message=Text(N_("Chat channel %(name)s deleted."), name=self.name),
                details={"channel": self.pk, "before": self.audit_snapshot()},
            )
            self.delete()

    @property
    def last_status_label(self) -> str:
        """How its last delivery went (annotated by the channel list as `last_status`)."""
        status = getattr(self, "last_status", None)
        return str(DeliveryStatus(status).label) if status else ""

    def event_labels(self) -> list[str]:
        labels = dict(ChatEvent.choices)
        return [str(labels[e]) for e in self.events if e in labels]

    def audit_snapshot(self) -> dict[str, Any]:
        """What an audit event records of it: never the URL or the secret, only the hint."""
        return {
            "name": self.name,
            "kind": self.kind,
            "account": self.account.name if self.account_id else None,
            "url_hint": self.url_hint,
            "secret_set": bool(self.secret_encrypted),
            "events": list(self.events),
            "language": self.language,
            "enabled": self.enabled,
        }


class ChatDelivery(models.Model):
    """One message to one channel: what it is about, and every attempt's outcome."""

    channel = models.ForeignKey(
        ChatChannel, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("channel")
    )
    event = models.CharField(_("event"), max_length=32, choices=ChatEvent.choices)
    change_request = models.ForeignKey(
        "ChangeRequest",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("change request"),
    )
    # The event's data (ids, names, codes, times in UTC); the words are rendered at sending.
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_status_code = models.PositiveSmallIntegerField(
        _("last HTTP status"), null=True, blank=True
    )
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    # Set for a message to be sent once only (a day's deadline reminder about a tunnel).
    once_key = models.CharField(max_length=100, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("chat delivery")
        verbose_name_plural = _("chat deliveries")
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="chat_due_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "once_key"],
                condition=~Q(once_key=""),
                name="chat_delivery_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel_id}"

    def claim(self, now: datetime) -> int | None:
        """Take the next attempt, for exactly one caller: its number, or None.

        A conditional UPDATE on the attempt count, so two workers handed the same task never
        send the same attempt twice. The next attempt is pushed past the send's timeout at
        once: the sweeper does not queue it again while this one is on its way.
        """
        attempt = self.attempts + 1
        lease = now + timedelta(seconds=settings.CHAT_TIMEOUT_SECONDS * 2 + 30)
        claimed = ChatDelivery.objects.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
            pk=self.pk,
            status__in=OUTSTANDING,
            attempts=self.attempts,
        ).update(attempts=F("attempts") + 1, next_attempt_at=lease)
        if not claimed:
            return None
        self.attempts, self.next_attempt_at = attempt, lease
        return attempt

    def record(self, *, now: datetime, status_code: int | None, error: str) -> str:
        """Write how the attempt ended: delivered, to be retried after a backoff, or given up."""
        fields: dict[str, Any] = {"last_status_code": status_code, "last_error": error[:500]}
        if not error:
            fields |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
            fields["next_attempt_at"] = None
        elif self.attempts >= settings.CHAT_MAX_ATTEMPTS:
            fields |= {"status": DeliveryStatus.GAVE_UP, "next_attempt_at": None}
        else:
            # 30 s, 2 min, 8 min, 32 min...: each wait four times the last.
            backoff = settings.CHAT_RETRY_SECONDS * 4 ** (self.attempts - 1)
            fields |= {
                "status": DeliveryStatus.RETRYING,
                "next_attempt_at": now + timedelta(seconds=backoff),
            }
        ChatDelivery.objects.filter(pk=self.pk, attempts=self.attempts).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)
        return self.status


def announce_request(event: str, request: Any, what: Text, *, code: str = "") -> None:
    """Tell the channels about a step of a change request: `what` happened to it."""
    channels = listening(event)
    if not channels:
        return  # one query, and none of the request's rows read
    tunnel = request.tunnel
    announce(
        event,
        Text(
            N_(
                "Request #%(pk)d (%(kind)s, %(connection)s tunnel %(ip)s, account %(account)s): "
                "%(what)s"
            ),
            pk=request.pk,
            kind=ChangeKind(request.kind).label,
            connection=tunnel.connection.vpn_connection_id,
            ip=tunnel.outside_ip,
            account=tunnel.connection.account.name,
            what=what,
        ),
        tunnel=tunnel,
        request=request,
        code=code,
        channels=channels,
    )


def listening(event: str) -> list[ChatChannel]:
    """The enabled channels that want `event`, whatever their account (one query)."""
    return [c for c in ChatChannel.objects.filter(enabled=True) if event in c.events]


def announce(
    event: str,
    text: Text,
    *,
    tunnel: Tunnel,
    request: Any = None,
    code: str = "",
    once_key: str = "",
    channels: list[ChatChannel] | None = None,
) -> list[ChatDelivery]:
    """Tell every enabled channel that wants `event` (the global ones and the account's).

    Cheap and inside the caller's transaction: it writes one ChatDelivery per channel and
    queues their sending once the transaction commits. Sending happens in the worker
    (maintenance/chat.py), so a chat service that fails or hangs never touches the change.
    """
    if channels is None:
        channels = listening(event)
    if not channels:
        return []
    connection = tunnel.connection
    account = connection.account
    channels = [c for c in channels if c.account_id in (None, account.pk)]
    if once_key:
        done = set(
            ChatDelivery.objects.filter(once_key=once_key).values_list("channel_id", flat=True)
        )
        channels = [channel for channel in channels if channel.pk not in done]
    if not channels:
        return []
    mentions = None
    if event == ChatEvent.NEEDS_APPROVAL:
        # "Chat mentions follow" the account's named approvers; none named: any approver.
        named = account.named_approvers()
        mentions = {
            "groups": [name for _pk, name in named.groups],
            "users": [name for _pk, name in named.users],
        }
    params = {
        "text": text.as_data(),
        "account": account.name,
        "account_id": account.account_id,
        "region": connection.region,
        "connection": connection.vpn_connection_id,
        "tunnel": tunnel.outside_ip,
        "request": request.pk if request is not None else None,
        "url": _link(request, connection),
        "code": code,
        "mentions": mentions,
    }
    now = timezone.now()
    deliveries = ChatDelivery.objects.bulk_create(
        ChatDelivery(
            channel=channel,
            event=event,
            change_request=request,
            params=params,
            created_at=now,
            next_attempt_at=now,
            once_key=once_key,
        )
        for channel in channels
    )
    for delivery in deliveries:
        enqueue.deliver_chat(delivery.pk)
    return deliveries


def _link(request: Any, connection: Any) -> str:
    if request is not None:
        return settings.SITE_URL + reverse("maintenance:request", args=[request.pk])
    return settings.SITE_URL + reverse("maintenance:connection", args=[connection.pk])
