"""Fleet automation: AWS Health events received, maintenance policies and their windows,
and the approvals that make a policy a standard change.

- ``HealthEvent``: one AWS Health notice (its ARN and communication id are the key: the
  delivery is at least once, per region), with the connections it names.
- ``MaintenancePolicy``: which connections it covers (accounts, regions, tags), its
  preferred weekly windows in a named time zone, the lead time, how long a drafted
  window lasts, the kinds of change it may draft, and who approves.
- ``PolicyApproval``: an approver's approval of a policy as a standard change, for the
  policy as it stood (its fingerprint): editing the policy voids it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext_lazy as _

from .. import times
from ..choices import AuditAction, ChangeKind, ChangeStatus, HealthMeaning
from ..health_events import HealthNotice
from ..planning import WeeklyWindow
from ..roles import has_perm
from ..texts import N_, Text
from .audit import AuditEvent, canonical_json
from .inventory import AwsAccount, VpnConnection


class HealthEvent(models.Model):
    """An AWS Health notice about VPN connections, as an EventBridge rule delivered it."""

    event_arn = models.CharField(_("event ARN"), max_length=1600)
    communication_id = models.CharField(_("communication id"), max_length=256, blank=True)
    type_code = models.CharField(_("event type code"), max_length=100)
    category = models.CharField(_("category"), max_length=32, blank=True)
    status_code = models.CharField(_("status"), max_length=32, blank=True)
    meaning = models.CharField(_("meaning"), max_length=32, choices=HealthMeaning.choices)
    aws_account_id = models.CharField(_("AWS account id"), max_length=12, blank=True)
    region = models.CharField(_("region"), max_length=32, blank=True)
    account = models.ForeignKey(
        AwsAccount,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("account"),
    )
    started_at = models.DateTimeField(_("starts"), null=True, blank=True)
    description = models.TextField(_("description"), blank=True)
    connections = models.ManyToManyField(
        VpnConnection, blank=True, related_name="health_events", verbose_name=_("connections")
    )
    # Named by the event but not (yet) known to vpnctl: kept, and shown flagged.
    unknown_connection_ids = models.JSONField(_("unknown connections"), default=list, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now, db_index=True)
    body = models.JSONField(_("event as delivered"), default=dict)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("AWS Health event")
        verbose_name_plural = _("AWS Health events")
        permissions = [("receive_health_events", _("Can post AWS Health events to the intake"))]
        constraints = [
            models.UniqueConstraint(
                fields=["event_arn", "communication_id"], name="one_health_event_per_notice"
            )
        ]
        indexes = [
            models.Index(
                fields=["aws_account_id", "region", "-received_at"], name="health_scope_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type_code} {self.event_arn}"

    @property
    def acted_upon(self) -> bool:
        return self.meaning != HealthMeaning.UNKNOWN

    @classmethod
    def receive(
        cls, notice: HealthNotice, body: dict[str, Any], *, actor: Any, now: datetime
    ) -> tuple[HealthEvent, bool]:
        """Store one delivery of a notice, audited, and queue a read of the connections it
        names when its code is known. A second delivery (the same ARN and communication
        id) changes nothing. Returns the event and whether this delivery stored it."""
        key = {"event_arn": notice.event_arn, "communication_id": notice.communication_id}
        existing = cls.objects.filter(**key).first()
        if existing is not None:
            return existing, False
        try:
            with transaction.atomic():
                return cls._store(notice, body, actor=actor, now=now), True
        except IntegrityError:
            # The same notice, delivered in another region at the same moment, won.
            return cls.objects.get(**key), False

    @classmethod
    def _store(
        cls, notice: HealthNotice, body: dict[str, Any], *, actor: Any, now: datetime
    ) -> HealthEvent:
        accounts = AwsAccount.objects.filter(account_id=notice.aws_account_id)
        connections = list(
            VpnConnection.objects.select_related("account").filter(
                vpn_connection_id__in=notice.connection_ids,
                **({"account__in": accounts} if notice.aws_account_id else {}),
            )
        )
        known = {c.vpn_connection_id for c in connections}
        event = cls.objects.create(
            event_arn=notice.event_arn,
            communication_id=notice.communication_id,
            type_code=notice.type_code,
            category=notice.category,
            status_code=notice.status_code,
            meaning=notice.meaning,
            aws_account_id=notice.aws_account_id,
            region=notice.region,
            account=accounts.order_by("name").first(),
            started_at=notice.started_at,
            description=notice.description,
            unknown_connection_ids=[c for c in notice.connection_ids if c not in known],
            received_at=now,
            body=body,
        )
        event.connections.set(connections)
        names = ", ".join(notice.connection_ids) or "-"
        AuditEvent.record(
            AuditAction.HEALTH_EVENT_RECEIVED,
            actor=actor,
            account=event.account,
            connection=connections[0] if len(connections) == 1 else None,
            message=Text(
                N_("AWS Health reported %(code)s for %(connections)s."),
                code=notice.type_code,
                connections=names,
            ),
            details={
                "event_arn": notice.event_arn,
                "communication_id": notice.communication_id,
                "type_code": notice.type_code,
                "meaning": str(notice.meaning),
                "region": notice.region,
                "connections": sorted(known),
                "unknown_connections": event.unknown_connection_ids,
            },
            at=now,
        )
        if event.acted_upon:
            for connection in connections:
                connection.queue_refresh(now)
        return event


def _check_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            _("“%(zone)s” is not a time zone name such as Asia/Tokyo."), params={"zone": value}
        ) from None


class MaintenancePolicy(models.Model):
    """Which connections are maintained in which preferred windows, approved by whom."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    # What it covers: every selector that is set must match (none set: the whole fleet).
    accounts = models.ManyToManyField(
        AwsAccount,
        blank=True,
        related_name="policies",
        verbose_name=_("accounts"),
        help_text=_("None chosen: every account."),
    )
    regions = models.JSONField(
        _("regions"), default=list, blank=True, help_text=_("None listed: every region.")
    )
    tags = models.JSONField(
        _("tags"),
        default=dict,
        blank=True,
        help_text=_("Every tag listed must be on the connection with that value, e.g. env=prod."),
    )
    # When and how: [weekday (0 is Monday), "HH:MM", "HH:MM"] each, in the policy's zone.
    windows = models.JSONField(_("preferred windows"), default=list, blank=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="UTC", validators=[_check_zone]
    )
    lead_time_hours = models.PositiveIntegerField(
        _("lead time (hours)"),
        default=24,
        validators=[MaxValueValidator(24 * 60)],
        help_text=_("A draft's window starts at least this long after it is drafted."),
    )
    change_minutes = models.PositiveIntegerField(
        _("window length (minutes)"),
        default=60,
        validators=[MaxValueValidator(24 * 60)],
        help_text=_("How long each drafted window lasts, for one tunnel."),
    )
    kinds = models.JSONField(
        _("kinds of change"),
        default=list,
        help_text=_("What it may draft and run as a standard change."),
    )
    approver_groups = models.ManyToManyField(
        "auth.Group", blank=True, related_name="+", verbose_name=_("approver groups")
    )
    approver_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", verbose_name=_("approver users")
    )
    # The standard change: approved for a period, suspended at once by an approver or admin.
    standard_from = models.DateTimeField(_("standard change from"), null=True, blank=True)
    standard_until = models.DateTimeField(_("standard change until"), null=True, blank=True)
    required_approvals = models.PositiveSmallIntegerField(
        _("approvals needed"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("To make it a standard change. Empty: the global setting."),
    )
    suspended_at = models.DateTimeField(_("suspended"), null=True, blank=True)
    suspended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("suspended by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("maintenance policy")
        verbose_name_plural = _("maintenance policies")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("maintenance:policy", args=[self.pk])

    def clean(self) -> None:
        errors: dict[str, list[Any]] = {}
        if self.change_minutes < settings.MIN_WINDOW_MINUTES:
            errors.setdefault("change_minutes", []).append(
                _("A window must last at least %(minutes)d minutes.")
                % {"minutes": settings.MIN_WINDOW_MINUTES}
            )
        unknown = [k for k in self.kinds or [] if k not in ChangeKind.values]
        if unknown or not self.kinds:
            errors.setdefault("kinds", []).append(_("Choose at least one kind of change."))
        if self.standard_from and self.standard_until and self.standard_until <= self.standard_from:
            errors.setdefault("standard_until", []).append(
                _("The standard change must end after it starts.")
            )
        if not isinstance(self.tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in (self.tags or {}).items()
        ):
            errors.setdefault("tags", []).append(_("Tags are names with a value each."))
        if errors:
            raise ValidationError(errors)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def weekly_windows(self) -> list[WeeklyWindow]:
        zone = self.zone
        return [
            WeeklyWindow(
                weekday=day, start=time.fromisoformat(a), end=time.fromisoformat(b), zone=zone
            )
            for day, a, b in self.windows or []
        ]

    def window_labels(self) -> list[str]:
        """ "Sunday 02:00–04:00", in the reader's language."""
        return [f"{WEEKDAYS[day]} {a}–{b}" for day, a, b in sorted(self.windows or [])]

    @property
    def lead_time(self) -> timedelta:
        return timedelta(hours=self.lead_time_hours)

    @property
    def window_length(self) -> timedelta:
        return timedelta(minutes=self.change_minutes)

    def selects(self, connection: VpnConnection) -> bool:
        """Whether this policy covers the connection (its accounts must be prefetched)."""
        accounts = {a.pk for a in self.accounts.all()}
        if accounts and connection.account_id not in accounts:
            return False
        if self.regions and connection.region not in self.regions:
            return False
        tags = connection.tags or {}
        return all(tags.get(name) == value for name, value in (self.tags or {}).items())

    def fingerprint(self) -> str:
        """What a standard-change approval approves: selector, windows, kinds, validity."""
        covered = {
            "accounts": sorted(a.pk for a in self.accounts.all()),
            "regions": sorted(self.regions or []),
            "tags": dict(sorted((self.tags or {}).items())),
            "time_zone": self.time_zone,
            "windows": sorted(list(w) for w in self.windows or []),
            "lead_time_hours": self.lead_time_hours,
            "change_minutes": self.change_minutes,
            "kinds": sorted(self.kinds or []),
            "standard_from": self.standard_from.isoformat() if self.standard_from else None,
            "standard_until": self.standard_until.isoformat() if self.standard_until else None,
        }
        return hashlib.sha256(canonical_json(covered).encode()).hexdigest()

    def approvals_needed(self) -> int:
        return self.required_approvals or settings.REQUIRED_APPROVALS

    def counting_approvals(self) -> list[PolicyApproval]:
        """The approvals of the policy as it stands: on its current fingerprint, given
        after its last suspension. (``approvals`` must be prefetched or is read here.)"""
        current = self.fingerprint()
        return [
            a
            for a in self.approvals.all()
            if a.fingerprint == current
            and (self.suspended_at is None or a.approved_at > self.suspended_at)
        ]

    def is_standard_at(self, moment: datetime) -> bool:
        """Approved as a standard change, as it stands now, and valid at ``moment``."""
        if not self.enabled or self.standard_from is None or self.standard_until is None:
            return False
        if not self.standard_from <= moment < self.standard_until:
            return False
        approvers = {a.approver_id for a in self.counting_approvals()}
        return len(approvers) >= self.approvals_needed()

    def may_approve(self, user: Any) -> bool:
        """An approver, and one of the policy's named approvers if it names any."""
        if not has_perm(user, "maintenance.approve_change"):
            return False
        users = {u.pk for u in self.approver_users.all()}
        groups = {g.pk for g in self.approver_groups.all()}
        if not users and not groups:
            return True
        return user.pk in users or bool(groups & set(user.groups.values_list("pk", flat=True)))

    def may_suspend(self, user: Any) -> bool:
        """One who may approve it, or an admin (who manages changes)."""
        return self.may_approve(user) or has_perm(user, "maintenance.manage_changes")

    # -- transitions ------------------------------------------------------------------

    def record_edit(self, *, user: Any, before: str, now: datetime) -> int:
        """After an admin saved the policy: audit it, and if what a
        standard change approves has changed, void that approval for the drafts not yet
        run. Returns how many drafts went back to waiting for approval."""
        after = self.fingerprint()
        with transaction.atomic():
            AuditEvent.record(
                AuditAction.POLICY_CHANGED,
                actor=user,
                message=Text(
                    N_("%(user)s saved policy %(policy)s."),
                    user=user.get_username(),
                    policy=self.name,
                ),
                details={"policy": self.pk, "before": before, "after": after},
                at=now,
            )
            if before == after:
                return 0
            return self._void_drafts(
                Text(N_("policy %(policy)s was edited"), policy=self.name), now=now
            )

    def approve_standard(self, *, user: Any, comment: str, now: datetime) -> PolicyApproval:
        """One approver approves the policy, as it stands, as a standard change. The
        approval that completes the count approves its drafts waiting within the period."""
        if not self.may_approve(user):
            raise PermissionDenied(
                _("Only the approvers named for policy %(policy)s may approve it.")
                % {"policy": self.name}
            )
        if self.standard_from is None or self.standard_until is None:
            raise ValidationError(
                _("Set the period of the standard change (from, until) before approving it.")
            )
        if self.standard_until <= now:
            raise ValidationError(
                _("The standard change's period ended on %(until)s; set a new one first.")
                % {"until": times.local(self.standard_until)}
            )
        fingerprint = self.fingerprint()
        if any(a.approver_id == user.pk for a in self.counting_approvals()):
            raise ValidationError(_("You have already approved this policy as it stands."))
        with transaction.atomic():
            approval, _created = PolicyApproval.objects.update_or_create(
                policy=self,
                approver=user,
                fingerprint=fingerprint,
                defaults={"approved_at": now, "comment": comment.strip()},
            )
            AuditEvent.record(
                AuditAction.POLICY_APPROVED,
                actor=user,
                message=Text(
                    N_("%(user)s approved policy %(policy)s as a standard change until %(until)s."),
                    user=user.get_username(),
                    policy=self.name,
                    until=self.standard_until,
                ),
                details={"policy": self.pk, "fingerprint": fingerprint, "comment": comment.strip()},
                at=now,
            )
            self._prefetched_objects_cache = {}
            if self.is_standard_at(now):
                for request in self.requests.filter(
                    status=ChangeStatus.PENDING_APPROVAL,
                    kind__in=self.kinds,
                    window_start__gte=self.standard_from,
                    window_start__lt=self.standard_until,
                ):
                    request.approve_as_standard(self, now=now)
        return approval

    def suspend(self, *, user: Any, now: datetime) -> int:
        """Stop the standard change at once: approvals given before now no longer count,
        and the drafts it approved that have not run wait for a normal approval."""
        if not self.may_suspend(user):
            raise PermissionDenied(_("Only an approver or an admin may suspend a standard change."))
        with transaction.atomic():
            MaintenancePolicy.objects.filter(pk=self.pk).update(suspended_at=now, suspended_by=user)
            self.suspended_at, self.suspended_by = now, user
            AuditEvent.record(
                AuditAction.POLICY_SUSPENDED,
                actor=user,
                message=Text(
                    N_("%(user)s suspended the standard change of policy %(policy)s."),
                    user=user.get_username(),
                    policy=self.name,
                ),
                details={"policy": self.pk},
                at=now,
            )
            return self._void_drafts(
                Text(N_("its standard change was suspended by %(user)s"), user=user.get_username()),
                now=now,
            )

    def _void_drafts(self, why: Text, *, now: datetime) -> int:
        voided = 0
        for request in self.requests.filter(status=ChangeStatus.APPROVED).exclude(
            standard_fingerprint=""
        ):
            voided += request.void_standard(why, now=now)
        return voided


def policy_for(
    connection: VpnConnection, policies: list[MaintenancePolicy]
) -> MaintenancePolicy | None:
    """The policy of a connection: the first of `policies` (enabled, by name) that covers it."""
    return next((p for p in policies if p.selects(connection)), None)


class PolicyApproval(models.Model):
    """One approver's approval of a policy as a standard change, as it stood then."""

    policy = models.ForeignKey(
        MaintenancePolicy, on_delete=models.CASCADE, related_name="approvals"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    approved_at = models.DateTimeField(_("approved"), default=timezone.now)
    comment = models.TextField(_("comment"), blank=True)

    class Meta:
        ordering = ["approved_at"]
        verbose_name = _("standard change approval")
        verbose_name_plural = _("standard change approvals")
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "approver", "fingerprint"], name="one_policy_approval_each"
            )
        ]

    def __str__(self) -> str:
        return f"{self.policy} approved by {self.approver_id}"
