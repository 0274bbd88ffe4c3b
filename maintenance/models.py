"""vpnctl's models: the mirror of AWS, sync runs, the change workflow and the audit log."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .choices import (
    ActorKind,
    AuditAction,
    ChangeKind,
    ChangeStatus,
    ConnectionState,
    Decision,
    ExecutionOutcome,
    PendingMaintenance,
    StepLevel,
    SyncStatus,
    SyncTrigger,
    TunnelStatus,
)
from .regions import EC2_REGIONS

ROLE_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


class AwsAccount(models.Model):
    """An AWS account vpnctl reads, directly or through an assumed role."""

    name = models.SlugField(
        _("name"),
        max_length=64,
        unique=True,
        help_text=_('A short name. "default" uses the credentials of the server itself.'),
    )
    account_id = models.CharField(
        _("account id"),
        max_length=12,
        validators=[RegexValidator(r"^\d{12}$", _("An AWS account id is exactly 12 digits."))],
    )
    role_arn = models.CharField(
        _("role ARN"),
        max_length=600,
        blank=True,
        help_text=_("Assumed through STS to reach this account. Empty: the server's own."),
    )
    external_id = models.CharField(
        _("external id"),
        max_length=1224,
        blank=True,
        help_text=_("Sent with AssumeRole when the role's trust policy requires one."),
    )
    regions = models.JSONField(
        _("regions"), default=list, help_text=_("EC2 regions to sync, e.g. ap-northeast-1.")
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("AWS account")
        verbose_name_plural = _("AWS accounts")

    def __str__(self) -> str:
        return f"{self.name} ({self.account_id})"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.role_arn:
            match = ROLE_ARN_RE.match(self.role_arn)
            if not match:
                errors.setdefault("role_arn", []).append(
                    _(
                        "This is not an IAM role ARN. It looks like "
                        "arn:aws:iam::123456789012:role/vpnctl-reader."
                    )
                )
            elif self.account_id and match.group(2) != self.account_id:
                errors.setdefault("role_arn", []).append(
                    _("The role belongs to account %(role)s, not %(account)s.")
                    % {"role": match.group(2), "account": self.account_id}
                )
        if self.external_id and not self.role_arn:
            errors.setdefault("external_id", []).append(
                _("An external id is only used together with a role ARN.")
            )
        if self.external_id and not EXTERNAL_ID_RE.match(self.external_id):
            errors.setdefault("external_id", []).append(
                _("An external id is 2 to 1224 letters, digits or +=,.@:/-")
            )
        regions = self.regions
        if not isinstance(regions, list) or not regions:
            errors.setdefault("regions", []).append(_("Name at least one region."))
        else:
            unknown = [r for r in regions if r not in EC2_REGIONS]
            if unknown:
                errors.setdefault("regions", []).append(
                    _("Unknown AWS region: %(regions)s.") % {"regions": ", ".join(map(str, unknown))}
                )
            if len(set(regions)) != len(regions):
                errors.setdefault("regions", []).append(_("A region is listed twice."))
        if errors:
            raise ValidationError(errors)


class VpnConnection(models.Model):
    """A Site-to-Site VPN connection as last seen in AWS."""

    account = models.ForeignKey(
        AwsAccount, on_delete=models.PROTECT, related_name="connections", verbose_name=_("account")
    )
    region = models.CharField(_("region"), max_length=32)
    vpn_connection_id = models.CharField(_("connection id"), max_length=64)
    name = models.CharField(_("name"), max_length=256, blank=True)
    tags = models.JSONField(_("tags"), default=dict, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=ConnectionState.choices)
    type = models.CharField(_("type"), max_length=32, blank=True)
    category = models.CharField(_("category"), max_length=32, blank=True)
    customer_gateway_id = models.CharField(_("customer gateway"), max_length=64, blank=True)
    vpn_gateway_id = models.CharField(_("virtual private gateway"), max_length=64, blank=True)
    transit_gateway_id = models.CharField(_("transit gateway"), max_length=64, blank=True)
    first_seen = models.DateTimeField(_("first seen"))
    last_seen = models.DateTimeField(_("last seen"))
    gone_at = models.DateTimeField(_("gone from AWS"), null=True, blank=True)

    class Meta:
        ordering = ["account__name", "region", "vpn_connection_id"]
        verbose_name = _("VPN connection")
        verbose_name_plural = _("VPN connections")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "region", "vpn_connection_id"],
                name="uniq_connection_per_account_region",
            )
        ]
        indexes = [models.Index(fields=["vpn_connection_id"], name="connection_id_idx")]

    def __str__(self) -> str:
        return f"{self.vpn_connection_id} ({self.name})" if self.name else self.vpn_connection_id

    @property
    def gateway_id(self) -> str:
        return self.transit_gateway_id or self.vpn_gateway_id


class Tunnel(models.Model):
    """One of a connection's two tunnels, named by its outside IP address."""

    connection = models.ForeignKey(
        VpnConnection, on_delete=models.PROTECT, related_name="tunnels", verbose_name=_("connection")
    )
    outside_ip = models.GenericIPAddressField(_("outside IP address"), protocol="IPv4")
    lifecycle_control = models.BooleanField(_("lifecycle control"), default=False)
    status = models.CharField(
        _("status"), max_length=8, choices=TunnelStatus.choices, default=TunnelStatus.UNKNOWN
    )
    status_message = models.CharField(_("status message"), max_length=512, blank=True)
    last_status_change = models.DateTimeField(_("last status change"), null=True, blank=True)
    accepted_route_count = models.PositiveIntegerField(_("accepted routes"), null=True, blank=True)
    pending_maintenance = models.CharField(
        _("pending maintenance"),
        max_length=16,
        choices=PendingMaintenance.choices,
        default=PendingMaintenance.NONE,
    )
    maintenance_auto_applied_after = models.DateTimeField(
        _("AWS applies it itself after"), null=True, blank=True
    )
    last_maintenance_applied = models.DateTimeField(
        _("last maintenance applied"), null=True, blank=True
    )
    synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)

    class Meta:
        ordering = ["connection_id", "outside_ip"]
        verbose_name = _("tunnel")
        verbose_name_plural = _("tunnels")
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "outside_ip"], name="uniq_tunnel_per_connection"
            )
        ]

    def __str__(self) -> str:
        return f"{self.connection.vpn_connection_id} {self.outside_ip}"

    @property
    def has_pending_maintenance(self) -> bool:
        return self.pending_maintenance == PendingMaintenance.AVAILABLE

    @property
    def is_up(self) -> bool:
        return self.status == TunnelStatus.UP

    def sibling(self) -> Tunnel | None:
        """The connection's other tunnel (None if AWS reported only one)."""
        return (
            Tunnel.objects.filter(connection_id=self.connection_id)
            .exclude(pk=self.pk)
            .select_related("connection")
            .first()
        )


class SyncRun(models.Model):
    """One pass of the inventory sync over some accounts and regions."""

    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=SyncStatus.choices, default=SyncStatus.RUNNING
    )
    trigger = models.CharField(
        _("trigger"), max_length=16, choices=SyncTrigger.choices, default=SyncTrigger.SCHEDULE
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")

    def __str__(self) -> str:
        return f"sync #{self.pk} {self.started_at:%Y-%m-%d %H:%M}"


class SyncResult(models.Model):
    """What one sync run found in one account and region."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="results")
    account = models.ForeignKey(AwsAccount, on_delete=models.PROTECT, related_name="+")
    region = models.CharField(_("region"), max_length=32)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    connections = models.PositiveIntegerField(_("connections"), default=0)
    tunnels = models.PositiveIntegerField(_("tunnels"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    changed = models.PositiveIntegerField(_("changed"), default=0)
    gone = models.PositiveIntegerField(_("gone"), default=0)
    api_calls = models.PositiveIntegerField(_("AWS calls"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    failed = models.BooleanField(
        _("failed"), default=False, help_text=_("The account and region could not be read.")
    )

    class Meta:
        ordering = ["account__name", "region"]
        verbose_name = _("sync result")
        verbose_name_plural = _("sync results")
        constraints = [
            models.UniqueConstraint(
                fields=["run", "account", "region"], name="uniq_result_per_run_scope"
            )
        ]


class UserProfile(models.Model):
    """Per-user preferences: the time zone pages show times in."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vpnctl_profile"
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone})"


# --------------------------------------------------------------------------------------
# The audit log
# --------------------------------------------------------------------------------------


class AuditLogError(Exception):
    """Raised on any attempt to change or delete an audit event."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AuditLogError("The audit log is append-only: events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogError("The audit log is append-only: events cannot be deleted.")


class AuditChainHead(models.Model):
    """A single row that serialises writers of the audit chain.

    Writers lock it with select_for_update on PostgreSQL; on SQLite the IMMEDIATE
    transaction mode already lets one writer in at a time.
    """

    last_hash = models.CharField(max_length=64, default="")
    count = models.PositiveBigIntegerField(default=0)


GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class AuditEvent(models.Model):
    """One thing that happened, chained to the one before by SHA-256."""

    seq = models.PositiveBigIntegerField(_("sequence"), unique=True, editable=False)
    at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_name = models.CharField(_("actor name"), max_length=150)
    actor_kind = models.CharField(_("actor kind"), max_length=8, choices=ActorKind.choices)
    action = models.CharField(_("action"), max_length=48, choices=AuditAction.choices)
    account = models.ForeignKey(
        AwsAccount, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    connection = models.ForeignKey(
        VpnConnection, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    tunnel = models.ForeignKey(Tunnel, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    change_request = models.ForeignKey(
        "ChangeRequest", on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    message = models.TextField(_("message"), blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64, unique=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        constraints = [
            # A fork in the chain (two events naming the same predecessor) cannot be stored.
            models.UniqueConstraint(fields=["prev_hash"], name="audit_chain_is_linear"),
        ]
        indexes = [models.Index(fields=["action", "at"], name="audit_action_at_idx")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_name}"

    def hashed_fields(self) -> dict[str, Any]:
        """The canonical form the hash covers (ids, not names, for related objects)."""
        at = self.at
        if isinstance(at, datetime):
            at = at.astimezone(timezone.UTC).isoformat(timespec="microseconds")
        return {
            "seq": self.seq,
            "at": at,
            "actor_name": self.actor_name,
            "actor_kind": self.actor_kind,
            "action": self.action,
            "account": self.account_id,
            "connection": self.connection_id,
            "tunnel": self.tunnel_id,
            "change_request": self.change_request_id,
            "message": self.message,
            "details": json.loads(canonical_json(self.details)),
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.hashed_fields()).encode()).hexdigest()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogError("The audit log is append-only: events cannot be changed.")
        if not self.hash:
            raise AuditLogError("Write audit events with AuditEvent.record().")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogError("The audit log is append-only: events cannot be deleted.")

    @classmethod
    def record(
        cls,
        action: str,
        *,
        actor: Any = None,
        actor_kind: str | None = None,
        account: AwsAccount | None = None,
        connection: VpnConnection | None = None,
        tunnel: Tunnel | None = None,
        change_request: Any = None,
        message: str = "",
        details: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEvent:
        """Append one event to the chain; call inside the transaction of the change it records.

        Related objects fill in their parents: a tunnel names its connection, a connection
        its account.
        """
        if change_request is not None and tunnel is None:
            tunnel = change_request.tunnel
        if tunnel is not None and connection is None:
            connection = tunnel.connection
        if connection is not None and account is None:
            account = connection.account
        if actor is not None and getattr(actor, "is_authenticated", False):
            kind, name, user = ActorKind.USER, actor.get_username(), actor
        else:
            kind = actor_kind or ActorKind.SYSTEM
            name, user = str(kind), None
        at = at or timezone.now()
        with transaction.atomic():
            head = cls._lock_head()
            event = cls(
                seq=head.count + 1,
                at=at,
                actor=user,
                actor_name=name,
                actor_kind=kind,
                action=action,
                account=account,
                connection=connection,
                tunnel=tunnel,
                change_request=change_request,
                message=str(message),
                details=json.loads(canonical_json(details or {})),
                prev_hash=head.last_hash or GENESIS_HASH,
            )
            event.hash = event.compute_hash()
            super(AuditEvent, event).save(force_insert=True)
            AuditChainHead.objects.filter(pk=head.pk).update(
                last_hash=event.hash, count=event.seq
            )
        return event

    @staticmethod
    def _lock_head() -> AuditChainHead:
        # select_for_update serialises writers on PostgreSQL; SQLite ignores it, where the
        # IMMEDIATE transaction that wraps us already holds the database's write lock.
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            AuditChainHead.objects.get_or_create(pk=1)
            head = AuditChainHead.objects.select_for_update().get(pk=1)
        return head

    @classmethod
    def verify_chain(cls, batch_size: int = 2000) -> tuple[int, AuditEvent | None, str]:
        """Walk the chain in order. Returns (events checked, first bad event, why)."""
        expected_prev = GENESIS_HASH
        expected_seq = 1
        checked = 0
        for event in cls.objects.order_by("seq").iterator(chunk_size=batch_size):
            if event.seq != expected_seq:
                return checked, event, f"sequence jumps from {expected_seq - 1} to {event.seq}"
            if event.prev_hash != expected_prev:
                return checked, event, "its previous-hash does not match the event before it"
            if event.compute_hash() != event.hash:
                return checked, event, "its content does not match its hash"
            expected_prev = event.hash
            expected_seq += 1
            checked += 1
        head = AuditChainHead.objects.filter(pk=1).first()
        if head is not None and head.count != checked:
            return checked, None, f"the chain head counts {head.count} events, found {checked}"
        return checked, None, ""


# --------------------------------------------------------------------------------------
# The change workflow
# --------------------------------------------------------------------------------------


class ChangeRequest(models.Model):
    """A change to one tunnel, requested for a window, approved, then executed once."""

    kind = models.CharField(_("change"), max_length=32, choices=ChangeKind.choices)
    tunnel = models.ForeignKey(
        Tunnel, on_delete=models.PROTECT, related_name="change_requests", verbose_name=_("tunnel")
    )
    skip_tunnel_replacement = models.BooleanField(
        _("skip tunnel replacement"),
        default=False,
        help_text=_(
            "Only for turning lifecycle control on: leave pending maintenance pending "
            "instead of applying it at once."
        ),
    )
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="change_requests",
        verbose_name=_("requested by"),
    )
    reason = models.TextField(_("reason"))
    window_start = models.DateTimeField(_("window opens"))
    window_end = models.DateTimeField(_("window closes"))
    start_when_approved = models.BooleanField(
        _("as soon as approved"),
        default=False,
        help_text=_("The window opens when the last approval is given."),
    )
    required_approvals = models.PositiveSmallIntegerField(_("approvals needed"), default=1)
    status = models.CharField(
        _("status"),
        max_length=24,
        choices=ChangeStatus.choices,
        default=ChangeStatus.PENDING_APPROVAL,
        db_index=True,
    )
    status_reason = models.TextField(_("why"), blank=True)
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    created_at = models.DateTimeField(_("requested"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    approved_at = models.DateTimeField(_("approved"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("change request")
        verbose_name_plural = _("change requests")
        permissions = [
            ("request_change", _("Can request changes to tunnels")),
            ("approve_change", _("Can approve or reject change requests")),
            ("manage_changes", _("Can cancel any change request and run syncs")),
            ("view_audit", _("Can read and export the audit log")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(window_end__gt=models.F("window_start")),
                name="change_window_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["status", "window_start"], name="change_status_window_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} {self.tunnel}"


class Approval(models.Model):
    """One approver's decision on a request, bound to what the request said then."""

    change_request = models.ForeignKey(
        ChangeRequest, on_delete=models.PROTECT, related_name="approvals"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    decision = models.CharField(_("decision"), max_length=8, choices=Decision.choices)
    comment = models.TextField(_("comment"), blank=True)
    at = models.DateTimeField(_("time"), default=timezone.now)
    fingerprint = models.CharField(_("fingerprint approved"), max_length=64)

    class Meta:
        ordering = ["at"]
        verbose_name = _("decision")
        verbose_name_plural = _("decisions")
        constraints = [
            models.UniqueConstraint(
                fields=["change_request", "approver"], name="one_decision_per_approver"
            )
        ]


class Execution(models.Model):
    """The one execution of an approved request: what was checked, sent and seen."""

    change_request = models.OneToOneField(
        ChangeRequest, on_delete=models.PROTECT, related_name="execution"
    )
    task_id = models.CharField(_("task id"), max_length=64, blank=True)
    worker = models.CharField(_("worker"), max_length=128, blank=True)
    claimed_at = models.DateTimeField(_("claimed"))
    heartbeat_at = models.DateTimeField(_("last heard of"))
    calling_aws_at = models.DateTimeField(_("about to call AWS"), null=True, blank=True)
    aws_answered_at = models.DateTimeField(_("AWS answered"), null=True, blank=True)
    aws_request_id = models.CharField(_("AWS request id"), max_length=128, blank=True)
    aws_error_code = models.CharField(_("AWS error code"), max_length=128, blank=True)
    aws_error_message = models.TextField(_("AWS error message"), blank=True)
    before = models.JSONField(_("tunnel before"), default=dict, blank=True)
    after = models.JSONField(_("tunnel after"), default=dict, blank=True)
    watch_until = models.DateTimeField(_("watch until"), null=True, blank=True)
    down_seen_at = models.DateTimeField(_("tunnel seen DOWN"), null=True, blank=True)
    up_seen_at = models.DateTimeField(_("tunnel back UP"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=ExecutionOutcome.choices, blank=True
    )

    class Meta:
        verbose_name = _("execution")
        verbose_name_plural = _("executions")


class ExecutionStep(models.Model):
    """A timestamped sentence about an execution, for the request page's timeline."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps")
    at = models.DateTimeField(_("time"), default=timezone.now)
    level = models.CharField(
        _("level"), max_length=8, choices=StepLevel.choices, default=StepLevel.INFO
    )
    message = models.TextField(_("message"))
    data = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("execution step")
        verbose_name_plural = _("execution steps")
