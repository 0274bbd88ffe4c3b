"""The mirror of AWS: accounts, VPN connections, their tunnels, and the sync runs.

``TunnelQuerySet`` holds the questions pages, reminders and the calendar ask of tunnels
(pending maintenance due within N days, planned or not before AWS's deadline, applied by
AWS itself since a moment), each written once.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import connections, models, transaction
from django.db.models import CharField, Q, TextField, Value
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import enqueue
from ..choices import (
    AuditAction,
    ChangeStatus,
    ConnectionState,
    PendingMaintenance,
    SyncStatus,
    SyncTrigger,
    TunnelStatus,
)
from ..regions import EC2_REGIONS
from ..roles import has_perm
from ..texts import N_, Text

ROLE_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


@dataclass(frozen=True)
class NamedApprovers:
    """Who an account names as its approvers, (pk, name) by name; none: any approver."""

    groups: list[tuple[int, str]]
    users: list[tuple[int, str]]

    def __bool__(self) -> bool:
        return bool(self.groups or self.users)


class AwsAccountQuerySet(models.QuerySet):
    def closed_to(self, user: Any) -> AwsAccountQuerySet:
        """Accounts whose named approvers leave `user` out (AwsAccount.may_decide in SQL)."""
        restricted = self.filter(
            Q(approver_groups__isnull=False) | Q(approver_users__isnull=False)
        ).values("pk")
        named = AwsAccount.objects.filter(
            Q(approver_users=user) | Q(approver_groups__user=user)
        ).values("pk")
        return self.filter(pk__in=restricted).exclude(pk__in=named)


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
    approver_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        verbose_name=_("approver groups"),
        help_text=_(
            "Only members of these groups (or the users below) may decide this account's "
            "requests. None named: any approver."
        ),
    )
    approver_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        verbose_name=_("approver users"),
        help_text=_("They still need the approver role."),
    )
    required_approvals = models.PositiveSmallIntegerField(
        _("approvals needed"),
        null=True,
        blank=True,
        validators=[
            MinValueValidator(
                1, _("At least one approval is needed; leave it empty for the global setting.")
            )
        ],
        help_text=_("For requests submitted from now on. Empty: the global setting."),
    )

    objects = AwsAccountQuerySet.as_manager()

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

    # -- who decides its requests (AwsAccountQuerySet.closed_to is the same rule in SQL) --

    def approvals_needed(self) -> int:
        """The approvals a request on this account needs: its own number, else the global."""
        return self.required_approvals or max(1, settings.REQUIRED_APPROVALS)

    def named_approvers(self) -> NamedApprovers:
        """Who it names as approvers (read once per instance: read_named_approvers)."""
        if not hasattr(self, "_named_approvers"):
            AwsAccount.read_named_approvers([self])
        return self._named_approvers

    @classmethod
    def read_named_approvers(cls, accounts: Iterable[AwsAccount], user: Any = None) -> None:
        """Read the named approvers of these accounts, and the groups of `user` if given
        (for may_decide), in one query, whatever the number of accounts."""
        accounts = list(accounts)
        ids = {a.pk for a in accounts}
        kind = CharField()
        rows = cls.approver_groups.through.objects.filter(awsaccount_id__in=ids).values_list(
            "awsaccount_id", Value("group", output_field=kind), "group_id", "group__name"
        )
        users = cls.approver_users.through.objects.filter(awsaccount_id__in=ids).values_list(
            "awsaccount_id", Value("user", output_field=kind), "user_id", "user__username"
        )
        branches = [users]
        if user is not None and user.pk is not None:
            branches.append(
                user.groups.through.objects.filter(user_id=user.pk).values_list(
                    "user_id", Value("member", output_field=kind), "group_id", "group__name"
                )
            )
        named: dict[int, dict[str, list[tuple[int, str]]]] = {
            pk: {"group": [], "user": []} for pk in ids
        }
        member_of = set()
        for owner, what, pk, name in rows.union(*branches, all=True):
            if what == "member":
                member_of.add(pk)
            else:
                named[owner][what].append((pk, name))
        for account in accounts:
            found = named[account.pk]
            account._named_approvers = NamedApprovers(
                groups=sorted(found["group"], key=lambda g: g[1]),
                users=sorted(found["user"], key=lambda u: u[1]),
            )
        if user is not None and user.pk is not None:
            user._vpnctl_group_ids = member_of

    def may_decide(self, user: Any) -> bool:
        """The one spelling of the rule: an approver, and one of the named ones if any are."""
        if not has_perm(user, "maintenance.approve_change"):
            return False
        if not hasattr(self, "_named_approvers") or not hasattr(user, "_vpnctl_group_ids"):
            AwsAccount.read_named_approvers([self], user)
        named = self._named_approvers
        if not named:
            return True
        return any(pk == user.pk for pk, _name in named.users) or any(
            pk in user._vpnctl_group_ids for pk, _name in named.groups
        )

    def approvers_text(self) -> str:
        """Who may decide its requests, for the request page."""
        named = self.named_approvers()
        if not named:
            return str(_("Any approver"))
        return str(
            _("Approvers for account %(account)s: groups %(groups)s; users %(users)s")
            % self._named(named)
        )

    def refusal(self) -> str:
        """Why someone outside its named approvers may not decide."""
        return str(
            _(
                "Only the approvers named for account %(account)s may decide its requests: "
                "groups %(groups)s; users %(users)s."
            )
            % self._named(self.named_approvers())
        )

    def _named(self, named: NamedApprovers) -> dict[str, str]:
        return {
            "account": self.name,
            "groups": ", ".join(name for _pk, name in named.groups) or "—",
            "users": ", ".join(name for _pk, name in named.users) or "—",
        }


class VpnConnectionQuerySet(models.QuerySet):
    """Questions asked of connections; a tunnel condition is a TunnelQuerySet."""

    def live(self) -> VpnConnectionQuerySet:
        """Connections still in AWS."""
        return self.filter(gone_at__isnull=True)

    def regions(self) -> list[str]:
        """Every region these connections are in, in order (the filters' region choices)."""
        return list(self.order_by("region").values_list("region", flat=True).distinct())

    def with_tunnels(self, tunnels: models.QuerySet) -> VpnConnectionQuerySet:
        """Connections with at least one of these tunnels.

        An uncorrelated IN list, read once: the tunnel filters hold IN lists of their own,
        which SQLite re-reads for every row of a correlated EXISTS (3.7 s for "AWS applied
        it itself" over 5,000 connections; bench/pages.py).
        """
        return self.filter(pk__in=tunnels.values("connection_id"))

    def without_tunnels(self, tunnels: models.QuerySet) -> VpnConnectionQuerySet:
        return self.exclude(pk__in=tunnels.values("connection_id"))

    def both_down(self) -> VpnConnectionQuerySet:
        """Connections with a tunnel DOWN and none that is not."""
        tunnels = Tunnel.objects.all()
        return self.with_tunnels(tunnels.filter(status=TunnelStatus.DOWN)).without_tunnels(
            tunnels.exclude(status=TunnelStatus.DOWN)
        )

    def half_lifecycle(self) -> VpnConnectionQuerySet:
        """Connections with lifecycle control on one tunnel and off on another."""
        tunnels = Tunnel.objects.all()
        return self.with_tunnels(tunnels.filter(lifecycle_control=True)).with_tunnels(
            tunnels.filter(lifecycle_control=False)
        )

    def search(self, text: str) -> VpnConnectionQuerySet:
        """Connections whose id, Name or a tag (key or value) contains the text.

        Tags are matched in the JSON document as text, which works on SQLite and PostgreSQL
        alike. The term is JSON-escaped the way the database stores the document: SQLite
        holds Django's json.dumps output (non-ASCII as \\uXXXX), PostgreSQL's jsonb::text
        writes non-ASCII as is; both escape quotes and backslashes.
        """
        text = text.strip()
        if not text:
            return self
        ascii_only = connections[self.db].vendor != "postgresql"
        needle = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
        return self.annotate(tags_text=Cast("tags", TextField())).filter(
            Q(vpn_connection_id__icontains=text)
            | Q(name__icontains=text)
            | Q(tags_text__icontains=needle)
        )


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
    # "Refresh from AWS" on a request page: one read of this connection by the worker,
    # at most one per settings.REFRESH_MIN_SECONDS (ask_refresh), and how it ended.
    refresh_requested_at = models.DateTimeField(_("refresh asked at"), null=True, blank=True)
    refresh_waiting = models.BooleanField(_("refresh waiting for AWS"), default=False)
    refreshed_at = models.DateTimeField(_("refreshed from AWS at"), null=True, blank=True)
    refresh_failed_at = models.DateTimeField(_("refresh failed at"), null=True, blank=True)
    refresh_error = models.JSONField(
        _("refresh error"),
        default=dict,
        blank=True,
        help_text=_("What AWS answered to the last refresh that failed: action, code, message."),
    )

    objects = VpnConnectionQuerySet.as_manager()

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

    # "Refresh from AWS" ------------------------------------------------------------------

    @staticmethod
    def may_ask_refresh(user: Any, change_request: Any) -> bool:
        """Whether `user` may ask for a refresh from this request's page: an approver, while
        the request waits for a decision or for its window (the rate is checked apart)."""
        return (
            has_perm(user, "maintenance.approve_change")
            and change_request.status in ChangeStatus.CANCELLABLE
        )

    def next_refresh_at(self) -> datetime | None:
        """When the next refresh may be asked for (None: no refresh asked yet)."""
        if self.refresh_requested_at is None:
            return None
        return self.refresh_requested_at + timedelta(seconds=settings.REFRESH_MIN_SECONDS)

    def ask_refresh(self, user: Any, now: datetime, *, change_request: Any) -> bool:
        """Queue one read of this connection from AWS, asked for on `change_request`'s page.

        At most one per ``settings.REFRESH_MIN_SECONDS`` per connection, for every web
        process at once: the conditional UPDATE lets one of two simultaneous clicks through.
        True if a read was queued (and the ask audited); False if the last ask is too
        recent. Raises PermissionDenied for a user who may not approve, ValidationError
        for a request that is no longer open.
        """
        if not has_perm(user, "maintenance.approve_change"):
            raise PermissionDenied(_("Only approvers may ask AWS for fresh data."))
        if change_request.status not in ChangeStatus.CANCELLABLE:
            raise ValidationError(
                _(
                    "This request's status is %(status)s: fresh data from AWS is read only "
                    "for a request that waits for a decision or for its window."
                )
                % {"status": change_request.get_status_display()}
            )
        with transaction.atomic():
            if not self.queue_refresh(now):
                self.refresh_from_db(fields=["refresh_requested_at", "refresh_waiting"])
                return False
            # By name: the audit log's model imports this module, not the other way round.
            apps.get_model("maintenance", "AuditEvent").record(
                AuditAction.CONNECTION_REFRESH_REQUESTED,
                actor=user,
                connection=self,
                change_request=change_request,
                message=Text(
                    N_("Asked for connection %(connection)s to be read from AWS again."),
                    connection=self.vpn_connection_id,
                ),
                at=now,
            )
        return True

    def queue_refresh(self, now: datetime) -> bool:
        """Queue one read of this connection, at most one per REFRESH_MIN_SECONDS: the
        conditional UPDATE lets one of two simultaneous asks through. Used by a person's
        ask (``ask_refresh``) and by an AWS Health event naming the connection, each of
        which audits it. True if a read was queued."""
        cutoff = now - timedelta(seconds=settings.REFRESH_MIN_SECONDS)
        asked = (
            VpnConnection.objects.filter(pk=self.pk)
            .filter(Q(refresh_requested_at__isnull=True) | Q(refresh_requested_at__lte=cutoff))
            .update(refresh_requested_at=now, refresh_waiting=True)
        )
        if asked:
            self.refresh_requested_at, self.refresh_waiting = now, True
            enqueue.refresh_connection(self.pk)
        return bool(asked)

    def finish_refresh(self, asked_at: datetime | None, now: datetime) -> bool:
        """The worker read the connection for the ask made at `asked_at`: record it.

        A newer ask (made while this read ran) stays waiting for its own read. True if
        recorded.
        """
        done = VpnConnection.objects.filter(pk=self.pk, refresh_requested_at=asked_at).update(
            refresh_waiting=False, refreshed_at=now, refresh_failed_at=None, refresh_error={}
        )
        return bool(done)

    def fail_refresh(self, asked_at: datetime | None, error: dict[str, str], now: datetime) -> bool:
        """AWS refused or failed the read for the ask made at `asked_at`: keep its answer
        (action, code, message, request id) for the page. True if recorded."""
        done = VpnConnection.objects.filter(pk=self.pk, refresh_requested_at=asked_at).update(
            refresh_waiting=False, refresh_failed_at=now, refresh_error=dict(error)
        )
        return bool(done)


def ip_order(ip: str) -> tuple[int, int]:
    """Sort key for outside IPs in numeric order ("203.0.113.9" before "203.0.113.10"):
    the order in which pages number a connection's tunnels 1 and 2."""
    try:
        return (0, int(ipaddress.ip_address(ip)))
    except ValueError:
        return (1, 0)


class TunnelQuerySet(models.QuerySet):
    """Questions asked of tunnels, each answered in one (sub)query."""

    def live(self) -> TunnelQuerySet:
        """Tunnels of connections still in AWS."""
        return self.filter(connection__gone_at__isnull=True)

    def pending(self) -> TunnelQuerySet:
        return self.filter(pending_maintenance=PendingMaintenance.AVAILABLE)

    def due_within(self, days: int, now: datetime) -> TunnelQuerySet:
        """Pending maintenance that AWS applies by itself within `days` days (or overdue)."""
        return self.pending().filter(maintenance_auto_applied_after__lte=now + timedelta(days=days))

    def unplanned(self) -> TunnelQuerySet:
        """Pending maintenance with no change planned before AWS's deadline."""
        return self.pending().exclude(planned_before_deadline())

    def applied_by_aws_since(self, since: datetime) -> TunnelQuerySet:
        return self.filter(applied_by_aws_since(since))


def planned_before_deadline() -> Q:
    """Whether a tunnel has its pending maintenance planned (a filter on tunnels).

    The one definition of "planned before the deadline", shared by the dashboard, the
    connection filter, the reminders and the calendar: an approved or running change that
    applies the maintenance (a replacement, or lifecycle control turned on without
    SkipTunnelReplacement, which applies it at once) in a window that opens before AWS's
    deadline. Lifecycle control with SkipTunnelReplacement leaves the maintenance pending,
    so it plans nothing.

    An uncorrelated IN list: the database reads the planned changes once, where an EXISTS
    per tunnel read them again for each of 10,000 tunnels (bench/pages.py).
    """
    # By name: the change workflow's models import this module, not the other way round.
    change_request = apps.get_model("maintenance", "ChangeRequest")
    return Q(pk__in=change_request.objects.planned_before_deadline().values("tunnel_id"))


def applied_by_aws_since(since: datetime) -> Q:
    """AWS applied maintenance to the tunnel itself since then (a filter on tunnels)."""
    audit_event = apps.get_model("maintenance", "AuditEvent")
    return Q(
        pk__in=audit_event.objects.filter(
            action=AuditAction.MAINTENANCE_APPLIED_BY_AWS, at__gte=since, tunnel__isnull=False
        ).values("tunnel_id")
    )


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
    # Its policy found no slot before AWS's deadline (models/drafting.py), since then.
    no_slot_since = models.DateTimeField(_("no slot found since"), null=True, blank=True)

    objects = TunnelQuerySet.as_manager()

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
    # Indexed with region and id (Meta.indexes), which serves its plain lookups too.
    account = models.ForeignKey(
        AwsAccount, on_delete=models.PROTECT, related_name="+", db_index=False
    )
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
        indexes = [
            # The newest result of each account and region (the dashboard): MAX(id) per
            # group read from this index alone, 10 ms instead of 96 ms over 60,000 results.
            models.Index(fields=["account", "region", "id"], name="syncresult_scope_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "account", "region"], name="uniq_result_per_run_scope"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.region} in run {self.run_id}"

    @staticmethod
    def clean_read_times(account_id: Any, region: Any) -> models.QuerySet:
        """When syncs read this account and region without failing, newest first.

        Values (``.first()``) or a subquery (``Subquery(...[:1])`` with OuterRefs): the
        connection page's and the request page's "last confirmed by a sync".
        """
        return (
            SyncResult.objects.filter(
                account_id=account_id, region=region, failed=False, finished_at__isnull=False
            )
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
        )
