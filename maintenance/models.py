"""vpnctl's models: the mirror of AWS, sync runs, the change workflow and the audit log."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
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
                    _("Unknown AWS region: %(regions)s.")
                    % {"regions": ", ".join(map(str, unknown))}
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


def ip_order(ip: str) -> tuple[int, int]:
    """Sort key for outside IPs in numeric order ("203.0.113.9" before "203.0.113.10"):
    the order in which pages number a connection's tunnels 1 and 2."""
    try:
        return (0, int(ipaddress.ip_address(ip)))
    except ValueError:
        return (1, 0)


class Tunnel(models.Model):
    """One of a connection's two tunnels, named by its outside IP address."""

    connection = models.ForeignKey(
        VpnConnection,
        on_delete=models.PROTECT,
        related_name="tunnels",
        verbose_name=_("connection"),
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

    def __str__(self) -> str:
        return f"{self.account_id}/{self.region} in run {self.run_id}"


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

    def __str__(self) -> str:
        return f"audit chain head at #{self.count}"


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
    tunnel = models.ForeignKey(
        Tunnel, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    change_request = models.ForeignKey(
        "ChangeRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogError("The audit log is append-only: events cannot be changed.")
        if not self.hash:
            raise AuditLogError("Write audit events with AuditEvent.record().")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogError("The audit log is append-only: events cannot be deleted.")

    def hashed_fields(self) -> dict[str, Any]:
        """The canonical form the hash covers (ids, not names, for related objects)."""
        at = self.at
        if isinstance(at, datetime):
            at = at.astimezone(UTC).isoformat(timespec="microseconds")
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
            AuditChainHead.objects.filter(pk=head.pk).update(last_hash=event.hash, count=event.seq)
        return event

    @staticmethod
    def _lock_head() -> AuditChainHead:
        # select_for_update serialises writers on PostgreSQL; SQLite ignores it, where the
        # IMMEDIATE transaction that wraps us already holds the database's write lock.
        # Every lock in vpnctl is FOR NO KEY UPDATE: a plain FOR UPDATE would also block
        # the foreign-key checks other transactions make at COMMIT, and deadlock them.
        head = AuditChainHead.objects.select_for_update(no_key=True).filter(pk=1).first()
        if head is None:
            AuditChainHead.objects.get_or_create(pk=1)
            head = AuditChainHead.objects.select_for_update(no_key=True).get(pk=1)
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


def _has_perm(user: Any, perm: str) -> bool:
    return bool(
        user is not None and user.is_authenticated and user.is_active and user.has_perm(perm)
    )


class ChangeRequestQuerySet(models.QuerySet):
    def open(self) -> ChangeRequestQuerySet:
        return self.filter(status__in=ChangeStatus.OPEN)

    def overlapping(self, start: datetime, end: datetime) -> ChangeRequestQuerySet:
        return self.filter(window_start__lt=end, window_end__gt=start)

    def awaiting_decision_of(self, user: Any) -> ChangeRequestQuerySet:
        """Requests this approver can still decide on (their own excluded)."""
        return (
            self.filter(status=ChangeStatus.PENDING_APPROVAL)
            .exclude(requester=user)
            .exclude(
                approvals__approver=user,
                approvals__fingerprint=models.F("fingerprint"),
            )
        )


class ChangeRequest(models.Model):
    """A change to one tunnel, requested for a window, approved, then executed once.

    Every status change is a verb method below: it checks the current state, changes it
    with a conditional UPDATE (so two workers or two clicks cannot both win) and writes
    its audit event in the same transaction.
    """

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
    batch = models.ForeignKey(
        "ChangeBatch",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="requests",
        verbose_name=_("batch"),
    )

    objects = ChangeRequestQuerySet.as_manager()

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

    # -- what was asked ---------------------------------------------------------------

    def compute_fingerprint(self) -> str:
        """SHA-256 over what approvers approve: the change, its target and its window."""
        connection = self.tunnel.connection
        asked = {
            "kind": self.kind,
            "account": connection.account.account_id,
            "region": connection.region,
            "connection": connection.vpn_connection_id,
            "tunnel": self.tunnel.outside_ip,
            "skip_tunnel_replacement": self.skip_tunnel_replacement,
            "start_when_approved": self.start_when_approved,
            # "As soon as approved" moves the start at approval; only the end was asked for.
            "window_start": None
            if self.start_when_approved
            else self.window_start.astimezone(UTC).isoformat(),
            "window_end": self.window_end.astimezone(UTC).isoformat(),
        }
        return hashlib.sha256(canonical_json(asked).encode()).hexdigest()

    @property
    def is_open(self) -> bool:
        return self.status in ChangeStatus.OPEN

    @property
    def aws_call_name(self) -> str:
        """The AWS call this change makes, as an engineer would write it."""
        if self.kind == ChangeKind.REPLACE:
            return "ReplaceVpnTunnel(ApplyPendingMaintenance=True)"
        return (
            "ModifyVpnTunnelOptions(EnableTunnelLifecycleControl=True, "
            f"SkipTunnelReplacement={self.skip_tunnel_replacement})"
        )

    def valid_approvals(self) -> list[Approval]:
        """Approvals given to the request as it stands now (older ones no longer count)."""
        return [
            a
            for a in self.approvals.all()
            if a.decision == Decision.APPROVE and a.fingerprint == self.fingerprint
        ]

    def window_is_open(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.window_start <= now < self.window_end

    def can_cancel(self, user: Any) -> bool:
        return self.status in ChangeStatus.CANCELLABLE and (
            user == self.requester or _has_perm(user, "maintenance.manage_changes")
        )

    def can_decide(self, user: Any) -> bool:
        return (
            self.status == ChangeStatus.PENDING_APPROVAL
            and _has_perm(user, "maintenance.approve_change")
            and user != self.requester
            and not self.approvals.filter(approver=user, fingerprint=self.fingerprint).exists()
        )

    # -- rules ------------------------------------------------------------------------

    @staticmethod
    def check_rules(
        *,
        tunnel: Tunnel,
        kind: str,
        window_start: datetime,
        window_end: datetime,
        skip_tunnel_replacement: bool,
        now: datetime,
        exclude_pk: int | None = None,
        batch_id: int | None = None,
    ) -> None:
        """Raise ValidationError, naming the field, for any rule this request would break.

        `batch_id`: the request belongs to that batch, whose requests on the two tunnels of
        a connection may share a window (the batch runs them one after the other).
        """
        errors: dict[str, list[Any]] = {}

        def refuse(field: str, message: Any) -> None:
            errors.setdefault(field, []).append(message)

        connection = tunnel.connection
        if kind not in ChangeKind.values:
            refuse("kind", _("Choose what to change."))
        if connection.gone_at is not None:
            refuse("__all__", _("This connection is gone from AWS; there is nothing to change."))
        if kind == ChangeKind.REPLACE and not tunnel.has_pending_maintenance:
            refuse(
                "kind",
                _("This tunnel has no pending maintenance to apply (as of the last sync)."),
            )
        if kind == ChangeKind.ENABLE_LIFECYCLE and tunnel.lifecycle_control:
            refuse("kind", _("Lifecycle control is already on for this tunnel."))
        if skip_tunnel_replacement and kind != ChangeKind.ENABLE_LIFECYCLE:
            refuse(
                "skip_tunnel_replacement",
                _("Skipping the replacement only applies when turning lifecycle control on."),
            )

        # The window.
        slack = timedelta(minutes=1)  # the time it takes to fill in the form
        if window_start < now - slack:
            refuse("window_start", _("The window must start in the future."))
        if window_end <= window_start:
            refuse("window_end", _("The window must end after it starts."))
        minimum = timedelta(minutes=settings.MIN_WINDOW_MINUTES)
        if window_end - window_start < minimum:
            refuse(
                "window_end",
                _("The window must last at least %(minutes)d minutes.")
                % {"minutes": settings.MIN_WINDOW_MINUTES},
            )
        deadline = tunnel.maintenance_auto_applied_after
        if deadline is not None and tunnel.has_pending_maintenance and window_end > deadline:
            refuse(
                "window_end",
                _(
                    "The window must end before %(deadline)s, when AWS applies the "
                    "maintenance by itself."
                )
                # In the zone the user sees on the page (the middleware activates it).
                % {"deadline": timezone.localtime(deadline).strftime("%Y-%m-%d %H:%M %Z")},
            )

        # Blackouts: for every account, or for this connection's account.
        blackout = (
            BlackoutPeriod.objects.filter(starts_at__lt=window_end, ends_at__gt=window_start)
            .filter(models.Q(account__isnull=True) | models.Q(account_id=connection.account_id))
            .order_by("starts_at")
            .first()
        )
        if blackout is not None:
            refuse(
                "window_start",
                _(
                    "The window overlaps the blackout “%(name)s” (%(start)s – %(end)s): "
                    "no change may run then. Choose a window outside it."
                )
                # In the zone the user sees on the page (the middleware activates it).
                % {
                    "name": blackout.name,
                    "start": timezone.localtime(blackout.starts_at).strftime("%Y-%m-%d %H:%M %Z"),
                    "end": timezone.localtime(blackout.ends_at).strftime("%Y-%m-%d %H:%M %Z"),
                },
            )

        # Other requests on the same tunnel and on its sibling.
        others = ChangeRequest.objects.open().filter(tunnel__connection=connection)
        if exclude_pk is not None:
            others = others.exclude(pk=exclude_pk)
        same = [r for r in others if r.tunnel_id == tunnel.pk]
        if same:
            refuse(
                "__all__",
                _("Request #%(pk)s is already open for this tunnel (%(status)s).")
                % {"pk": same[0].pk, "status": same[0].get_status_display()},
            )
        clash = [
            r
            for r in others
            if r.tunnel_id != tunnel.pk
            and (batch_id is None or r.batch_id != batch_id)
            and r.window_start < window_end
            and r.window_end > window_start
        ]
        if clash:
            refuse(
                "window_start",
                _(
                    "Request #%(pk)s on the other tunnel of this connection has an overlapping "
                    "window; AWS updates one tunnel at a time and so does vpnctl."
                )
                % {"pk": clash[0].pk},
            )
        if errors:
            raise ValidationError(errors)

    # -- transitions ------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        *,
        user: Any,
        tunnel: Tunnel,
        kind: str,
        reason: str,
        window_start: datetime | None,
        window_end: datetime,
        start_when_approved: bool = False,
        skip_tunnel_replacement: bool = False,
    ) -> ChangeRequest:
        """Create a request in `pending_approval`, audited, and tell the approvers."""
        window_start, start_when_approved, now = cls._check_submitter(
            user, reason, window_start, start_when_approved
        )
        with transaction.atomic():
            request = cls._create_checked(
                user=user,
                tunnel=tunnel,
                kind=kind,
                reason=reason,
                window_start=window_start,
                window_end=window_end,
                start_when_approved=start_when_approved,
                skip_tunnel_replacement=skip_tunnel_replacement,
                now=now,
            )
            transaction.on_commit(lambda: _notify("request_submitted", request.pk), robust=True)
        return request

    @staticmethod
    def _check_submitter(
        user: Any, reason: str, window_start: datetime | None, start_when_approved: bool
    ) -> tuple[datetime, bool, datetime]:
        """What every submission checks first. Returns (window_start, start_when_approved, now)."""
        if not _has_perm(user, "maintenance.request_change"):
            raise PermissionDenied(_("You may not request changes."))
        if not (reason or "").strip():
            raise ValidationError({"reason": [_("Say why this change is needed.")]})
        now = timezone.now()
        if start_when_approved or window_start is None:
            start_when_approved, window_start = True, now
        return window_start, start_when_approved, now

    @classmethod
    def _create_checked(
        cls,
        *,
        user: Any,
        tunnel: Tunnel,
        kind: str,
        reason: str,
        window_start: datetime,
        window_end: datetime,
        start_when_approved: bool,
        skip_tunnel_replacement: bool,
        now: datetime,
        batch: ChangeBatch | None = None,
    ) -> ChangeRequest:
        """Check the rules, create the request and audit it; call inside a transaction."""
        # Lock the connection so that two requests on its tunnels are checked one after
        # the other (PostgreSQL; SQLite's IMMEDIATE transaction already serialises us).
        VpnConnection.objects.select_for_update(no_key=True).filter(pk=tunnel.connection_id).first()
        tunnel = Tunnel.objects.select_related("connection__account").get(pk=tunnel.pk)
        cls.check_rules(
            tunnel=tunnel,
            kind=kind,
            window_start=window_start,
            window_end=window_end,
            skip_tunnel_replacement=skip_tunnel_replacement,
            now=now,
            batch_id=batch.pk if batch is not None else None,
        )
        request = cls(
            kind=kind,
            tunnel=tunnel,
            skip_tunnel_replacement=skip_tunnel_replacement,
            requester=user,
            reason=reason.strip(),
            window_start=window_start,
            window_end=window_end,
            start_when_approved=start_when_approved,
            required_approvals=max(1, settings.REQUIRED_APPROVALS),
            created_at=now,
            updated_at=now,
            batch=batch,
        )
        request.fingerprint = request.compute_fingerprint()
        request.save()
        details = request.audit_snapshot()
        if batch is not None:
            details["batch"] = batch.pk
        AuditEvent.record(
            AuditAction.REQUEST_SUBMITTED,
            actor=user,
            change_request=request,
            message=_("%(user)s requested: %(kind)s on %(tunnel)s")
            % {
                "user": user.get_username(),
                "kind": request.get_kind_display(),
                "tunnel": tunnel,
            },
            details=details,
            at=now,
        )
        return request

    def audit_snapshot(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tunnel": self.tunnel.outside_ip,
            "connection": self.tunnel.connection.vpn_connection_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "start_when_approved": self.start_when_approved,
            "skip_tunnel_replacement": self.skip_tunnel_replacement,
            "required_approvals": self.required_approvals,
            "fingerprint": self.fingerprint,
        }

    def _locked(self) -> ChangeRequest:
        """Re-read this request inside the caller's transaction, locked on PostgreSQL."""
        return (
            ChangeRequest.objects.select_for_update(no_key=True, of=("self",))
            .select_related("tunnel__connection__account", "requester")
            .get(pk=self.pk)
        )

    def _move(self, from_statuses: Any, to_status: str, now: datetime, **fields: Any) -> bool:
        """The conditional UPDATE behind every transition: True if this caller won."""
        if isinstance(from_statuses, str):
            from_statuses = [from_statuses]
        changed = ChangeRequest.objects.filter(pk=self.pk, status__in=list(from_statuses)).update(
            status=to_status, updated_at=now, **fields
        )
        if changed:
            self.status, self.updated_at = to_status, now
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(changed)

    def reschedule(
        self, *, user: Any, window_start: datetime | None, window_end: datetime
    ) -> ChangeRequest:
        """Change the window of a request still waiting for approval.

        The fingerprint changes with it, so approvals given before no longer count.
        """
        now = timezone.now()
        with transaction.atomic():
            request = self._locked()
            if user != request.requester:
                raise PermissionDenied(_("Only the requester may change the window."))
            if request.status != ChangeStatus.PENDING_APPROVAL:
                raise ValidationError(
                    _("Only a request waiting for approval can be rescheduled; this one is %(s)s.")
                    % {"s": request.get_status_display()}
                )
            start_when_approved = window_start is None
            window_start = window_start or now
            ChangeRequest.check_rules(
                tunnel=request.tunnel,
                kind=request.kind,
                window_start=window_start,
                window_end=window_end,
                skip_tunnel_replacement=request.skip_tunnel_replacement,
                now=now,
                exclude_pk=request.pk,
                batch_id=request.batch_id,
            )
            before = request.audit_snapshot()
            request.window_start, request.window_end = window_start, window_end
            request.start_when_approved = start_when_approved
            request.fingerprint = request.compute_fingerprint()
            request.updated_at = now
            request.save(
                update_fields=[
                    "window_start",
                    "window_end",
                    "start_when_approved",
                    "fingerprint",
                    "updated_at",
                ]
            )
            voided = request.approvals.exclude(fingerprint=request.fingerprint).count()
            AuditEvent.record(
                AuditAction.REQUEST_RESCHEDULED,
                actor=user,
                change_request=request,
                message=_("Window changed; %(n)d earlier approval(s) no longer count.")
                % {"n": voided},
                details={"before": before, "after": request.audit_snapshot()},
                at=now,
            )
            transaction.on_commit(lambda: _notify("request_submitted", request.pk), robust=True)
        return request

    def approve(self, *, user: Any, comment: str = "") -> ChangeRequest:
        """Record an approval; the last one needed moves the request to `approved`."""
        return self._decide(user=user, decision=Decision.APPROVE, comment=comment)

    def reject(self, *, user: Any, comment: str = "") -> ChangeRequest:
        """Record a rejection, which ends the request."""
        return self._decide(user=user, decision=Decision.REJECT, comment=comment)

    def _decide(self, *, user: Any, decision: str, comment: str) -> ChangeRequest:
        if not _has_perm(user, "maintenance.approve_change"):
            raise PermissionDenied(_("You may not approve or reject changes."))
        now = timezone.now()
        with transaction.atomic():
            request = self._locked()
            if user == request.requester:
                raise ValidationError(_("You cannot approve or reject your own request."))
            if request.status != ChangeStatus.PENDING_APPROVAL:
                raise ValidationError(
                    _(
                        "Decisions are only taken while a request waits for approval; "
                        "this one is %(s)s."
                    )
                    % {"s": request.get_status_display()}
                )
            if decision == Decision.APPROVE and request.window_end <= now:
                raise ValidationError(_("The window has already closed; this request cannot run."))
            if decision == Decision.REJECT and not (comment or "").strip():
                raise ValidationError({"comment": [_("Say why you reject it.")]})
            previous = Approval.objects.filter(change_request=request, approver=user).first()
            if previous is not None and previous.fingerprint == request.fingerprint:
                raise ValidationError(_("You have already decided on this request."))
            if request.compute_fingerprint() != request.fingerprint:
                raise ValidationError(
                    _("This request was altered outside vpnctl; it cannot be approved.")
                )
            if previous is None:
                Approval.objects.create(
                    change_request=request,
                    approver=user,
                    decision=decision,
                    comment=comment.strip(),
                    at=now,
                    fingerprint=request.fingerprint,
                )
            else:
                # Their earlier decision was on a window that has since changed.
                Approval.objects.filter(pk=previous.pk).update(
                    decision=decision,
                    comment=comment.strip(),
                    at=now,
                    fingerprint=request.fingerprint,
                )
            AuditEvent.record(
                AuditAction.REQUEST_APPROVED_BY
                if decision == Decision.APPROVE
                else AuditAction.REQUEST_REJECTED,
                actor=user,
                change_request=request,
                message=(
                    _("%(user)s approved")
                    if decision == Decision.APPROVE
                    else _("%(user)s rejected")
                )
                % {"user": user.get_username()},
                details={"comment": comment.strip(), "fingerprint": request.fingerprint},
                at=now,
            )
            if decision == Decision.REJECT:
                request._move(
                    ChangeStatus.PENDING_APPROVAL,
                    ChangeStatus.REJECTED,
                    now,
                    finished_at=now,
                    status_reason=comment.strip(),
                )
                transaction.on_commit(lambda: _notify("request_decided", request.pk), robust=True)
                return request
            if len(request.valid_approvals()) >= request.required_approvals:
                fields: dict[str, Any] = {"approved_at": now}
                if request.start_when_approved:
                    fields["window_start"] = now
                request._move(ChangeStatus.PENDING_APPROVAL, ChangeStatus.APPROVED, now, **fields)
                AuditEvent.record(
                    AuditAction.REQUEST_APPROVED,
                    actor_kind=ActorKind.SYSTEM,
                    change_request=request,
                    message=_("Approved by %(n)d of %(needed)d; it runs in its window.")
                    % {"n": len(request.valid_approvals()), "needed": request.required_approvals},
                    details={
                        "window_start": request.window_start,
                        "window_end": request.window_end,
                    },
                    at=now,
                )
                transaction.on_commit(lambda: _notify("request_decided", request.pk), robust=True)
                if request.window_start <= now:
                    transaction.on_commit(lambda: _enqueue_execution(request.pk))
        return request

    def cancel(self, *, user: Any, reason: str = "") -> ChangeRequest:
        """Withdraw a request that has not started to run."""
        now = timezone.now()
        with transaction.atomic():
            request = self._locked()
            if user != request.requester and not _has_perm(user, "maintenance.manage_changes"):
                raise PermissionDenied(_("Only the requester or an admin may cancel a request."))
            if not request._move(
                ChangeStatus.CANCELLABLE,
                ChangeStatus.CANCELLED,
                now,
                finished_at=now,
                status_reason=reason.strip(),
            ):
                raise ValidationError(
                    _("Only a request that has not started can be cancelled; this one is %(s)s.")
                    % {"s": request.get_status_display()}
                )
            AuditEvent.record(
                AuditAction.REQUEST_CANCELLED,
                actor=user,
                change_request=request,
                message=_("%(user)s cancelled the request") % {"user": user.get_username()},
                details={"reason": reason.strip()},
                at=now,
            )
            transaction.on_commit(lambda: _notify("request_finished", request.pk), robust=True)
        return request

    def expire(self, now: datetime | None = None) -> bool:
        """End a request whose window closed before it could run. True if it expired now."""
        now = now or timezone.now()
        with transaction.atomic():
            if not ChangeRequest.objects.filter(pk=self.pk, window_end__lte=now).exists():
                return False
            if not self._move(
                ChangeStatus.CANCELLABLE,
                ChangeStatus.EXPIRED,
                now,
                finished_at=now,
                status_reason=str(_("The window closed before the change could run.")),
            ):
                return False
            AuditEvent.record(
                AuditAction.REQUEST_EXPIRED,
                actor_kind=ActorKind.SYSTEM,
                change_request=self,
                message=_("The window closed before the change ran."),
                at=now,
            )
            transaction.on_commit(lambda: _notify("request_finished", self.pk), robust=True)
        return True

    def claim(self, *, task_id: str = "", worker: str = "") -> Execution | None:
        """`approved` → `running` for exactly one caller; returns its Execution, else None."""
        now = timezone.now()
        with transaction.atomic():
            won = (
                ChangeRequest.objects.filter(
                    pk=self.pk,
                    status=ChangeStatus.APPROVED,
                    window_start__lte=now,
                    window_end__gt=now,
                ).update(status=ChangeStatus.RUNNING, updated_at=now)
                == 1
            )
            if not won:
                return None
            self.status, self.updated_at = ChangeStatus.RUNNING, now
            execution = Execution.objects.create(
                change_request=self,
                task_id=task_id,
                worker=worker,
                claimed_at=now,
                heartbeat_at=now,
            )
            execution.step(_("Execution started by worker %(w)s.") % {"w": worker or "?"}, at=now)
            AuditEvent.record(
                AuditAction.EXECUTION_CLAIMED,
                actor_kind=ActorKind.SYSTEM,
                change_request=self,
                message=_("The window is open; execution started."),
                details={"task_id": task_id, "worker": worker},
                at=now,
            )
        return execution


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

    def __str__(self) -> str:
        return f"{self.approver_id} {self.decision} #{self.change_request_id}"

    @property
    def still_counts(self) -> bool:
        return self.fingerprint == self.change_request.fingerprint


class Execution(models.Model):
    """The one execution of an approved request: what was checked, sent and seen.

    `calling_aws_at` is written and committed *before* the AWS call: it is the durable
    "about to call" mark. A conditional UPDATE sets it, so only one caller ever gets to
    make the call; whoever finds it set later may watch, never call again.
    """

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
    # Each watch task carries the generation it was queued with; a duplicate delivery of
    # an older one finds the number moved on and stops (django-q2 delivers at least once).
    watch_generation = models.PositiveIntegerField(default=0)
    down_seen_at = models.DateTimeField(_("tunnel seen DOWN"), null=True, blank=True)
    up_seen_at = models.DateTimeField(_("tunnel back UP"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=ExecutionOutcome.choices, blank=True
    )

    class Meta:
        verbose_name = _("execution")
        verbose_name_plural = _("executions")

    def __str__(self) -> str:
        return f"execution of #{self.change_request_id}"

    @property
    def request(self) -> ChangeRequest:
        return self.change_request

    def step(
        self, message: Any, *, level: str = StepLevel.INFO, data: dict | None = None, at=None
    ) -> ExecutionStep:
        return ExecutionStep.objects.create(
            execution=self,
            at=at or timezone.now(),
            level=level,
            message=str(message),
            data=json.loads(canonical_json(data or {})),
        )

    def heartbeat(self) -> bool:
        """Say this worker is alive; False if the execution has finished meanwhile."""
        now = timezone.now()
        alive = Execution.objects.filter(pk=self.pk, finished_at__isnull=True).update(
            heartbeat_at=now
        )
        self.heartbeat_at = now
        return bool(alive)

    def mark_calling_aws(self, before: dict[str, Any], watch_minutes: int) -> bool:
        """Durably record "about to call AWS". True for the one caller that may call."""
        now = timezone.now()
        watch_until = now + timedelta(minutes=watch_minutes)
        with transaction.atomic():
            won = Execution.objects.filter(
                pk=self.pk,
                calling_aws_at__isnull=True,
                finished_at__isnull=True,
                change_request__status=ChangeStatus.RUNNING,
            ).update(calling_aws_at=now, heartbeat_at=now, before=before, watch_until=watch_until)
            if not won:
                return False
            self.calling_aws_at, self.heartbeat_at = now, now
            self.before, self.watch_until = before, watch_until
            request = self.change_request
            self.step(_("Preflight checks passed. Calling AWS now."), at=now, data=before)
            AuditEvent.record(
                AuditAction.EXECUTION_CALLING_AWS,
                actor_kind=ActorKind.SYSTEM,
                change_request=request,
                message=_("About to call AWS: %(call)s") % {"call": request.aws_call_name},
                details={"before": before},
                at=now,
            )
        return True

    def record_aws_answer(self, request_id: str) -> None:
        now = timezone.now()
        with transaction.atomic():
            Execution.objects.filter(pk=self.pk).update(
                aws_answered_at=now, aws_request_id=request_id, heartbeat_at=now
            )
            self.aws_answered_at, self.aws_request_id = now, request_id
            self.step(
                _("AWS accepted the call (request id %(id)s). Watching the tunnel.")
                % {"id": request_id or "?"},
                at=now,
            )
            AuditEvent.record(
                AuditAction.EXECUTION_AWS_ANSWERED,
                actor_kind=ActorKind.AWS,
                change_request=self.change_request,
                message=_("AWS accepted %(call)s") % {"call": self.change_request.aws_call_name},
                details={"request_id": request_id},
                at=now,
            )

    def record_unclear_answer(self, code: str, message: str) -> None:
        """The call may or may not have reached AWS: keep AWS's words, decide later."""
        now = timezone.now()
        Execution.objects.filter(pk=self.pk).update(
            aws_error_code=code, aws_error_message=message, heartbeat_at=now
        )
        self.aws_error_code, self.aws_error_message = code, message
        self.step(
            _(
                "AWS did not answer clearly (%(code)s: %(message)s). vpnctl does not send the "
                "change again; it watches the tunnel to learn whether AWS acted."
            )
            % {"code": code, "message": message},
            level=StepLevel.WARNING,
            at=now,
        )

    def observe(self, tunnel: Tunnel, connection: VpnConnection) -> None:
        """Note what a watch poll saw: the first DOWN and the first UP after it."""
        now = timezone.now()
        fields: dict[str, Any] = {"heartbeat_at": now}
        if tunnel.status == TunnelStatus.DOWN and self.down_seen_at is None:
            fields["down_seen_at"] = now
            self.step(
                _("Tunnel %(ip)s is DOWN: AWS is working on it.") % {"ip": tunnel.outside_ip},
                level=StepLevel.WARNING,
                at=now,
                data={"status": tunnel.status, "message": tunnel.status_message},
            )
        elif (
            tunnel.status == TunnelStatus.UP
            and self.down_seen_at is not None
            and self.up_seen_at is None
        ):
            fields["up_seen_at"] = now
            self.step(_("Tunnel %(ip)s is UP again.") % {"ip": tunnel.outside_ip}, at=now)
        Execution.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)

    def _finish(
        self,
        *,
        outcome: str,
        status: str,
        action: str,
        message: Any,
        reason: str = "",
        level: str = StepLevel.INFO,
        error_code: str = "",
        error_message: str = "",
        after: dict[str, Any] | None = None,
        actor_kind: str = ActorKind.SYSTEM,
    ) -> bool:
        """End the execution and its request together. False if it had already ended."""
        now = timezone.now()
        request = self.change_request
        with transaction.atomic():
            ended = Execution.objects.filter(pk=self.pk, finished_at__isnull=True).update(
                finished_at=now,
                outcome=outcome,
                aws_error_code=error_code or models.F("aws_error_code"),
                aws_error_message=error_message or models.F("aws_error_message"),
                after=after if after is not None else models.F("after"),
            )
            if not ended or not request._move(
                ChangeStatus.RUNNING, status, now, finished_at=now, status_reason=str(reason)
            ):
                transaction.set_rollback(True)
                return False
            self.finished_at, self.outcome = now, outcome
            if error_code:
                self.aws_error_code, self.aws_error_message = error_code, error_message
            self.step(
                message, level=level, at=now, data={"reason": str(reason)} if reason else None
            )
            AuditEvent.record(
                action,
                actor_kind=actor_kind,
                change_request=request,
                message=message,
                details={
                    "outcome": outcome,
                    "reason": str(reason),
                    "aws_error_code": error_code,
                    "aws_error_message": error_message,
                    "after": after or {},
                },
                at=now,
            )
            transaction.on_commit(lambda: _notify("request_finished", request.pk), robust=True)
            if request.batch_id is not None:
                # The batch's next tunnel on this connection waited for this one: start it
                # now rather than at the sweeper's next minute (it runs only if this one
                # succeeded; otherwise it ends blocked, without calling AWS).
                transaction.on_commit(lambda: _enqueue_batch_followers(request))
        return True

    def block(self, reason: Any) -> bool:
        """A preflight check failed: nothing was sent to AWS."""
        return self._finish(
            outcome=ExecutionOutcome.BLOCKED,
            status=ChangeStatus.BLOCKED,
            action=AuditAction.EXECUTION_BLOCKED,
            message=_("Blocked: %(reason)s Nothing was sent to AWS.") % {"reason": reason},
            reason=str(reason),
            level=StepLevel.ERROR,
        )

    def supersede(self, reason: Any) -> bool:
        """AWS already did what was asked: nothing left to do, nothing sent."""
        return self._finish(
            outcome=ExecutionOutcome.SUPERSEDED,
            status=ChangeStatus.SUPERSEDED,
            action=AuditAction.EXECUTION_SUPERSEDED,
            message=_("No longer needed: %(reason)s Nothing was sent to AWS.") % {"reason": reason},
            reason=str(reason),
        )

    def fail(self, reason: Any, *, error_code: str = "", error_message: str = "") -> bool:
        """AWS refused the call, or the call was never made (see the reason)."""
        if error_code:
            message = _("Failed: AWS answered %(code)s: %(msg)s") % {
                "code": error_code,
                "msg": error_message,
            }
        else:
            message = _("Failed: %(reason)s") % {"reason": reason}
        return self._finish(
            outcome=ExecutionOutcome.FAILED,
            status=ChangeStatus.FAILED,
            action=AuditAction.EXECUTION_FAILED,
            message=message,
            reason=str(reason),
            level=StepLevel.ERROR,
            error_code=error_code,
            error_message=error_message,
        )

    def succeed(self, after: dict[str, Any]) -> bool:
        return self._finish(
            outcome=ExecutionOutcome.SUCCEEDED,
            status=ChangeStatus.SUCCEEDED,
            action=AuditAction.EXECUTION_SUCCEEDED,
            message=_("Succeeded: the tunnel is UP and the change is done."),
            after=after,
        )

    def time_out(self, reason: Any, after: dict[str, Any]) -> bool:
        return self._finish(
            outcome=ExecutionOutcome.TIMED_OUT,
            status=ChangeStatus.TIMED_OUT,
            action=AuditAction.EXECUTION_TIMED_OUT,
            message=_("Timed out: %(reason)s") % {"reason": reason},
            reason=str(reason),
            level=StepLevel.ERROR,
            after=after,
        )

    def next_watch(self, generation: int) -> int | None:
        """Hand the watch on to a new task: the new generation, or None if not ours to hand."""
        now = timezone.now()
        won = Execution.objects.filter(
            pk=self.pk, finished_at__isnull=True, watch_generation=generation
        ).update(watch_generation=generation + 1, heartbeat_at=now)
        if not won:
            return None
        self.watch_generation, self.heartbeat_at = generation + 1, now
        return generation + 1

    def take_over(self, stale_before: datetime) -> int | None:
        """Claim a running execution whose worker went silent (the sweeper's conditional UPDATE).

        Returns the new watch generation, or None if the worker spoke up meanwhile.
        """
        now = timezone.now()
        won = Execution.objects.filter(
            pk=self.pk,
            finished_at__isnull=True,
            heartbeat_at__lt=stale_before,
            watch_generation=self.watch_generation,
        ).update(heartbeat_at=now, watch_generation=models.F("watch_generation") + 1)
        if not won:
            return None
        self.heartbeat_at = now
        self.watch_generation += 1
        return self.watch_generation

    def reconcile_lost_worker(self, generation: int) -> None:
        """After take_over: say what vpnctl knows and what it will do about it."""
        if self.calling_aws_at is None:
            self.fail(
                _(
                    "The worker was lost before the call to AWS; nothing was sent. "
                    "Request the change again if it is still needed."
                )
            )
            return
        with transaction.atomic():
            self.step(
                _(
                    "The worker was lost after the AWS call was prepared. vpnctl never sends a "
                    "change twice: it goes on watching the tunnel to learn what happened."
                ),
                level=StepLevel.WARNING,
            )
            AuditEvent.record(
                AuditAction.EXECUTION_RECONCILED,
                actor_kind=ActorKind.SYSTEM,
                change_request=self.change_request,
                message=_("Worker lost after the call was prepared; watching, not calling again."),
                details={"calling_aws_at": self.calling_aws_at, "generation": generation},
            )


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

    def __str__(self) -> str:
        return self.message


def _notify(event: str, request_pk: int) -> None:
    from . import notifications

    notifications.send(event, request_pk)


def _enqueue_execution(request_pk: int) -> None:
    from . import tasks

    tasks.enqueue_execution(request_pk)


def _enqueue_batch_followers(request: ChangeRequest) -> None:
    """Queue the requests of the same batch and connection that wait for this one."""
    followers = ChangeRequest.objects.filter(
        batch_id=request.batch_id,
        tunnel__connection_id=request.tunnel.connection_id,
        status=ChangeStatus.APPROVED,
        pk__gt=request.pk,
    ).values_list("pk", flat=True)
    for pk in followers:
        _enqueue_execution(pk)


# --------------------------------------------------------------------------------------
# Operations: blackouts, calendar feeds, reminders, batches
# --------------------------------------------------------------------------------------


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
                message=_("%(user)s created a calendar URL.") % {"user": user.get_username()},
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
                    message=_("%(user)s revoked their calendar URL.")
                    % {"user": user.get_username()},
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


class ChangeBatch(models.Model):
    """Lifecycle control for many tunnels, requested and approved together.

    Its requests run one tunnel of a connection at a time: the second waits until the
    first has succeeded and its tunnel is UP, and does not start if the first failed.
    """

    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="change_batches"
    )
    reason = models.TextField(_("reason"))
    created_at = models.DateTimeField(_("requested"), default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("change batch")
        verbose_name_plural = _("change batches")

    def __str__(self) -> str:
        return f"batch #{self.pk}"

    # -- requesting -------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        *,
        user: Any,
        tunnels: list[Tunnel],
        reason: str,
        window_start: datetime | None,
        window_end: datetime,
        start_when_approved: bool = False,
        skip_tunnel_replacement: bool = False,
    ) -> ChangeBatch:
        """Ask for lifecycle control on every tunnel given, in one batch, or on none.

        Each request is checked and audited exactly as ChangeRequest.submit does it; if
        any tunnel breaks a rule, nothing is created and the error names the tunnels.
        """
        window_start, start_when_approved, now = ChangeRequest._check_submitter(
            user, reason, window_start, start_when_approved
        )
        unique = {t.pk: t for t in tunnels}
        if not unique:
            raise ValidationError(_("Choose at least one tunnel."))
        ordered = sorted(
            Tunnel.objects.filter(pk__in=unique).select_related("connection"),
            key=lambda t: (t.connection.vpn_connection_id, t.connection_id, ip_order(t.outside_ip)),
        )
        # (field, message) -> the tunnels that broke it, so a rule broken by every tunnel
        # (a window in the past, say) is said once, not once per tunnel.
        broken: dict[tuple[str, str], list[str]] = {}
        with transaction.atomic():
            batch = cls.objects.create(requester=user, reason=reason.strip(), created_at=now)
            requests = []
            for tunnel in ordered:
                try:
                    requests.append(
                        ChangeRequest._create_checked(
                            user=user,
                            tunnel=tunnel,
                            kind=ChangeKind.ENABLE_LIFECYCLE,
                            reason=reason,
                            window_start=window_start,
                            window_end=window_end,
                            start_when_approved=start_when_approved,
                            skip_tunnel_replacement=skip_tunnel_replacement,
                            now=now,
                            batch=batch,
                        )
                    )
                except ValidationError as exc:
                    for field, errors in exc.message_dict.items():
                        for message in errors:
                            broken.setdefault((field, message), []).append(str(tunnel))
            if broken:
                transaction.set_rollback(True)
                raise ValidationError(_batch_errors(broken, len(ordered)))
            first = requests[0]
            # One email for the batch: it names the first request, whose page links here.
            transaction.on_commit(lambda: _notify("request_submitted", first.pk), robust=True)
        return batch

    # -- deciding ---------------------------------------------------------------------

    def ordered_requests(self) -> list[ChangeRequest]:
        """The batch's requests by connection, then tunnel 1 before tunnel 2 (prefetch-aware)."""
        return sorted(self.requests.all(), key=lambda r: r.pk)

    def can_decide(self, user: Any) -> bool:
        """Whether `user` may approve or reject the batch now (uses prefetched approvals)."""
        if not _has_perm(user, "maintenance.approve_change") or user.pk == self.requester_id:
            return False
        return any(
            r.status == ChangeStatus.PENDING_APPROVAL
            and not any(
                a.approver_id == user.pk and a.fingerprint == r.fingerprint
                for a in r.approvals.all()
            )
            for r in self.requests.all()
        )

    def approve(self, *, user: Any, comment: str = "") -> list[ChangeRequest]:
        """Approve every request of the batch still waiting, together, or none of them."""
        return self._decide(user=user, decision=Decision.APPROVE, comment=comment)

    def reject(self, *, user: Any, comment: str = "") -> list[ChangeRequest]:
        """Reject every request of the batch still waiting, together."""
        return self._decide(user=user, decision=Decision.REJECT, comment=comment)

    def _decide(self, *, user: Any, decision: str, comment: str) -> list[ChangeRequest]:
        """Delegate to each request's own transition, all inside one transaction."""
        if not _has_perm(user, "maintenance.approve_change"):
            raise PermissionDenied(_("You may not approve or reject changes."))
        if user.pk == self.requester_id:
            raise ValidationError(_("You cannot approve or reject your own request."))
        if decision == Decision.REJECT and not (comment or "").strip():
            raise ValidationError({"comment": [_("Say why you reject it.")]})
        with transaction.atomic():
            waiting = list(
                ChangeRequest.objects.filter(batch=self, status=ChangeStatus.PENDING_APPROVAL)
                .select_related("tunnel__connection__account")
                .order_by("pk")
            )
            if not waiting:
                raise ValidationError(_("No request of this batch is waiting for a decision."))
            decided = set(
                Approval.objects.filter(
                    change_request__in=waiting,
                    approver=user,
                    fingerprint=models.F("change_request__fingerprint"),
                ).values_list("change_request_id", flat=True)
            )
            undecided = [r for r in waiting if r.pk not in decided]
            if not undecided:
                raise ValidationError(_("You have already decided on this batch."))
            for request in undecided:
                try:
                    request._decide(user=user, decision=decision, comment=comment)
                except ValidationError as exc:
                    raise ValidationError(
                        _("Request #%(pk)s: %(error)s")
                        % {"pk": request.pk, "error": " ".join(exc.messages)}
                    ) from exc
        return undecided


def _batch_errors(broken: dict[tuple[str, str], list[str]], total: int) -> dict[str, list[str]]:
    """The batch's refusal: each broken rule once, with the tunnels that broke it."""
    errors: dict[str, list[str]] = {}
    for (field, message), tunnels in broken.items():
        if len(tunnels) < total or total == 1:
            message = _("%(tunnels)s: %(error)s") % {
                "tunnels": ", ".join(tunnels),
                "error": message,
            }
        errors.setdefault(field, []).append(str(message))
    return errors
