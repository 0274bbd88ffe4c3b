"""Operations around the changes: user preferences, blackouts, calendar feeds, reminders,
the worker's heartbeat."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..choices import AuditAction
from ..texts import N_, Text
from .audit import AuditEvent
from .inventory import AwsAccount


class UserProfile(models.Model):
    """Per-user preferences: the time zone pages show times in, the language of emails."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vpnctl_profile"
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")
    language = models.CharField(
        _("language"),
        max_length=8,
        blank=True,
        choices=settings.LANGUAGES,
        help_text=_("Emails are written in it. Empty: the site's default language."),
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone})"


class BlackoutQuerySet(models.QuerySet):
    def overlapping(self, start: datetime, end: datetime) -> BlackoutQuerySet:
        return self.filter(starts_at__lt=end, ends_at__gt=start)

    def binding(self, account_id: int) -> BlackoutQuerySet:
        """The blackouts that bind an account: its own and the global ones."""
        return self.filter(models.Q(account__isnull=True) | models.Q(account_id=account_id))


class BlackoutPeriod(models.Model):
    """A time when no change window may be open (for every account, or for one)."""

    name = models.CharField(_("name"), max_length=200)
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    account = models.ForeignKey(
        AwsAccount,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="blackouts",
        verbose_name=_("account"),
        help_text=_("Empty: the blackout applies to every account."),
    )
    reason = models.TextField(_("reason"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    objects = BlackoutQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at"]
        verbose_name = _("blackout period")
        verbose_name_plural = _("blackout periods")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="blackout_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name


class CalendarFeed(models.Model):
    """A user's secret iCalendar URL; revoking it makes the URL answer 404."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds"
    )
    token = models.CharField(_("token"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("calendar feed")
        verbose_name_plural = _("calendar feeds")

    def __str__(self) -> str:
        return f"calendar feed of {self.user_id}"

    @classmethod
    def issue(cls, user: Any) -> tuple[CalendarFeed, int]:
        """A new secret URL for the user; any older one stops working. Audited (no token)."""
        now = timezone.now()
        with transaction.atomic():
            revoked = cls.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)
            feed = cls.objects.create(user=user, token=secrets.token_urlsafe(32), created_at=now)
            AuditEvent.record(
                AuditAction.CALENDAR_FEED_ISSUED,
                actor=user,
                message=Text(N_("%(user)s created a calendar URL."), user=user.get_username()),
                details={"feed": feed.pk, "older_revoked": revoked},
                at=now,
            )
        return feed, revoked

    @classmethod
    def revoke_all(cls, user: Any) -> int:
        """Stop every calendar URL of the user. Audited when there was one."""
        now = timezone.now()
        with transaction.atomic():
            revoked = cls.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=now)
            if revoked:
                AuditEvent.record(
                    AuditAction.CALENDAR_FEED_REVOKED,
                    actor=user,
                    message=Text(
                        N_("%(user)s revoked their calendar URL."), user=user.get_username()
                    ),
                    details={"revoked": revoked},
                    at=now,
                )
        return revoked


class ReminderSent(models.Model):
    """The deadline reminder one person got on one day (at most one a day)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("day"))
    tunnels = models.JSONField(_("tunnels"), default=list)
    sent_at = models.DateTimeField(_("sent"), default=timezone.now)

    class Meta:
        ordering = ["-day"]
        verbose_name = _("reminder sent")
        verbose_name_plural = _("reminders sent")
        constraints = [
            models.UniqueConstraint(fields=["user", "day"], name="one_reminder_per_user_per_day")
        ]

    def __str__(self) -> str:
        return f"reminder to {self.user_id} on {self.day}"


class WorkerHeartbeat(models.Model):
    """The one row the worker cluster rewrites at every sweeper run: proof that it runs tasks.

    django-q2's own status lives in the sentinel process, which goes on reporting while
    every worker is stuck (django-q2 issue 23); a row only a finished task can write is what
    tells "the cluster runs tasks" from "the cluster is up" (``maintenance/liveness.py``).
    """

    ONLY = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=ONLY, editable=False)
    beat_at = models.DateTimeField(_("last heard of"))
    worker = models.CharField(_("worker"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="one_worker_heartbeat")
        ]

    def __str__(self) -> str:
        return f"worker heard of at {self.beat_at.isoformat()}"

    @classmethod
    def beat(cls, now: datetime, worker: str) -> None:
        """Record that a worker ran the sweeper at ``now`` (one UPDATE, or the first INSERT)."""
        if cls.objects.filter(pk=cls.ONLY).update(beat_at=now, worker=worker):
            return
        try:
            with transaction.atomic():
                cls.objects.create(pk=cls.ONLY, beat_at=now, worker=worker)
        except IntegrityError:
            # Another worker inserted it meanwhile: its beat is as good as ours.
            cls.objects.filter(pk=cls.ONLY).update(beat_at=now, worker=worker)

    @classmethod
    def last(cls) -> WorkerHeartbeat | None:
        return cls.objects.filter(pk=cls.ONLY).first()
