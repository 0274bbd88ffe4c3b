"""Chat notifications: the channels admins define and the log of every delivery.

A channel's webhook URL (and a generic webhook's signing secret) are secrets: they are
stored encrypted (``maintenance/secrets.py``), and only a hint of the URL is ever shown.
A delivery is queued data (the event and its parameters); the words are written when it
is sent, in the channel's language.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .inventory import AwsAccount


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


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RETRYING = "retrying", _("failed, will retry")
    DELIVERED = "delivered", _("delivered")
    GAVE_UP = "gave_up", _("failed, gave up")


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
    language = models.CharField(
        _("language"), max_length=8, blank=True, choices=settings.LANGUAGES
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("chat channel")
        verbose_name_plural = _("chat channels")

    def __str__(self) -> str:
        return self.name


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
    last_status_code = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("chat delivery")
        verbose_name_plural = _("chat deliveries")
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="chat_due_idx")]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel_id}"
