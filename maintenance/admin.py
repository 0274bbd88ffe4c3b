"""The admin: accounts are edited here; everything else is read-only.

Connections, tunnels and sync runs mirror AWS and are written by the sync; requests,
decisions and executions change only through their verb methods (which write the audit
log); the audit log is append-only. So the admin only shows them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .choices import AuditAction
from .forms.accounts import AwsAccountForm
from .forms.policies import MaintenancePolicyForm
from .models import (
    ApiToken,
    Approval,
    AuditEvent,
    AwsAccount,
    BlackoutPeriod,
    CalendarFeed,
    ChangeRequest,
    Execution,
    ExecutionStep,
    HealthEvent,
    MaintenancePolicy,
    SyncResult,
    SyncRun,
    Tunnel,
    UserProfile,
    VpnConnection,
)
from .texts import N_, Text

# The account fields an audit event records (external_id only as set / not set).
_ACCOUNT_AUDITED = ["name", "account_id", "role_arn", "regions", "enabled"]


# Who decides its requests: audited with the rest, under its own message when it changes.
_APPROVERS_AUDITED = ["approver_groups", "approver_users", "required_approvals"]


def _account_snapshot(account: AwsAccount) -> dict[str, Any]:
    snapshot = {field: getattr(account, field) for field in _ACCOUNT_AUDITED}
    snapshot["external_id_set"] = bool(account.external_id)
    named = account.named_approvers()
    snapshot["approver_groups"] = [name for _pk, name in named.groups]
    snapshot["approver_users"] = [name for _pk, name in named.users]
    snapshot["required_approvals"] = account.required_approvals
    return snapshot


def _blackout_snapshot(blackout: BlackoutPeriod) -> dict[str, Any]:
    return {
        "name": blackout.name,
        "starts_at": blackout.starts_at,
        "ends_at": blackout.ends_at,
        "account": blackout.account.name if blackout.account_id else None,
        "reason": blackout.reason,
    }


class ReadOnlyMixin:
    """View only, for everyone, superusers included: these rows have their own writers."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AwsAccount)
class AwsAccountAdmin(admin.ModelAdmin):
    form = AwsAccountForm
    list_display = ["name", "account_id", "role_arn", "regions_display", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "account_id", "role_arn"]
    filter_horizontal = ["approver_groups", "approver_users"]

    @admin.display(description=_("regions"))
    def regions_display(self, obj: AwsAccount) -> str:
        return ", ".join(obj.regions or [])

    def save_model(self, request: HttpRequest, obj: AwsAccount, form: Any, change: bool) -> None:
        """Save, keeping the account as it was for save_related's audit event."""
        old = AwsAccount.objects.filter(pk=obj.pk).first() if change else None
        # On the form, which lives for this one request (the ModelAdmin is shared).
        form.audit_before = _account_snapshot(old) if old else None
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Save the approvers and audit: who changed which account, before and after.

        The many-to-many fields are saved only here, after save_model; the admin's change
        view holds both in one transaction, so the account and its event commit together.
        """
        obj = form.instance
        before = getattr(form, "audit_before", None)
        with transaction.atomic():
            super().save_related(request, form, formsets, change)
            after = _account_snapshot(AwsAccount.objects.get(pk=obj.pk))
            if before == after:
                return
            if not change:
                message = N_("Account %(name)s added.")
            elif before and any(before[k] != after[k] for k in _APPROVERS_AUDITED):
                message = N_("Account %(name)s changed, with who decides its requests.")
            else:
                message = N_("Account %(name)s changed.")
            AuditEvent.record(
                AuditAction.ACCOUNT_CHANGED,
                actor=request.user,
                account=obj,
                message=Text(message, name=obj.name),
                details={"before": before, "after": after},
            )


class TunnelInline(ReadOnlyMixin, admin.TabularInline):
    model = Tunnel
    extra = 0
    fields = [
        "outside_ip",
        "status",
        "lifecycle_control",
        "pending_maintenance",
        "maintenance_auto_applied_after",
        "last_maintenance_applied",
        "synced_at",
    ]
    readonly_fields = fields
    show_change_link = True


@admin.register(VpnConnection)
class VpnConnectionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["vpn_connection_id", "name", "account", "region", "state", "gone_at"]
    list_filter = ["account", "region", "state"]
    search_fields = ["vpn_connection_id", "name"]
    list_select_related = ["account"]
    inlines = [TunnelInline]


@admin.register(Tunnel)
class TunnelAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "outside_ip",
        "connection",
        "status",
        "lifecycle_control",
        "pending_maintenance",
        "maintenance_auto_applied_after",
    ]
    list_filter = ["status", "lifecycle_control", "pending_maintenance"]
    search_fields = ["outside_ip", "connection__vpn_connection_id", "connection__name"]
    list_select_related = ["connection"]


class SyncResultInline(ReadOnlyMixin, admin.TabularInline):
    model = SyncResult
    extra = 0
    fields = [
        "account",
        "region",
        "connections",
        "tunnels",
        "created",
        "changed",
        "gone",
        "api_calls",
        "failed",
        "errors",
    ]
    readonly_fields = fields


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["pk", "started_at", "finished_at", "status", "trigger", "requested_by"]
    list_filter = ["status", "trigger"]
    list_select_related = ["requested_by"]
    inlines = [SyncResultInline]


class ApprovalInline(ReadOnlyMixin, admin.TabularInline):
    model = Approval
    extra = 0
    fields = ["approver", "decision", "comment", "at", "fingerprint"]
    readonly_fields = fields


@admin.register(ChangeRequest)
class ChangeRequestAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "pk",
        "status",
        "kind",
        "tunnel",
        "requester",
        "window_start",
        "window_end",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["tunnel__connection__vpn_connection_id", "tunnel__outside_ip", "reason"]
    list_select_related = ["tunnel__connection", "requester"]
    date_hierarchy = "window_start"
    inlines = [ApprovalInline]


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["change_request", "approver", "decision", "at"]
    list_filter = ["decision"]
    list_select_related = ["change_request__tunnel__connection", "approver"]


class ExecutionStepInline(ReadOnlyMixin, admin.TabularInline):
    model = ExecutionStep
    extra = 0
    fields = ["at", "level", "message", "data"]
    readonly_fields = fields


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "change_request",
        "outcome",
        "claimed_at",
        "calling_aws_at",
        "aws_answered_at",
        "aws_error_code",
        "finished_at",
    ]
    list_filter = ["outcome"]
    search_fields = ["aws_request_id", "change_request__tunnel__connection__vpn_connection_id"]
    list_select_related = ["change_request__tunnel__connection"]
    inlines = [ExecutionStepInline]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["seq", "at", "actor_name", "action", "message"]
    list_filter = ["action", "actor_kind"]
    search_fields = ["message", "actor_name"]
    ordering = ["-seq"]
    # No "delete selected": the log is append-only.
    actions = None


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "time_zone"]
    search_fields = ["user__username"]
    list_select_related = ["user"]


@admin.register(BlackoutPeriod)
class BlackoutPeriodAdmin(admin.ModelAdmin):
    """Times when no change window may be open; ChangeRequest.check_rules refuses overlaps."""

    list_display = ["name", "starts_at", "ends_at", "account", "created_by"]
    list_filter = ["account"]
    search_fields = ["name", "reason"]
    list_select_related = ["account", "created_by"]
    date_hierarchy = "starts_at"
    fields = ["name", "starts_at", "ends_at", "account", "reason"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        before = _blackout_snapshot(BlackoutPeriod.objects.get(pk=obj.pk)) if change else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            AuditEvent.record(
                AuditAction.BLACKOUT_CHANGED,
                actor=request.user,
                account=obj.account,
                message=Text(
                    N_("Blackout %(name)s changed.") if change else N_("Blackout %(name)s added."),
                    name=obj.name,
                ),
                details={"blackout": obj.pk, "before": before, "after": _blackout_snapshot(obj)},
            )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            AuditEvent.record(
                AuditAction.BLACKOUT_DELETED,
                actor=request.user,
                account=obj.account,
                message=Text(N_("Blackout %(name)s deleted."), name=obj.name),
                details={"blackout": obj.pk, "before": _blackout_snapshot(obj)},
            )
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(CalendarFeed)
class CalendarFeedAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Who has a calendar URL; the token itself is not shown (it is a credential)."""

    list_display = ["user", "created_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    fields = ["user", "created_at", "revoked_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Everyone's API tokens, by prefix (the token is never stored); an admin can revoke
    one that leaked, audited as theirs."""

    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at"]
    list_display += ["last_used_ip", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    list_select_related = ["user"]
    fields = [*list_display]
    actions = ["revoke"]

    @admin.action(description=_("Revoke the selected API tokens"))
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        revoked = sum(token.revoke(user=request.user) for token in queryset)
        self.message_user(request, _("%(n)d API token(s) revoked.") % {"n": revoked})


@admin.register(MaintenancePolicy)
class MaintenancePolicyAdmin(admin.ModelAdmin):
    """Policies are edited here; their standard-change approvals are given on their page.

    Saving records the edit; when what a standard change approves changed (selector,
    windows, kinds, period), the approval is void and approved drafts not yet run wait for
    a normal approval again (MaintenancePolicy.record_edit).
    """

    form = MaintenancePolicyForm
    list_display = ["name", "enabled", "time_zone", "suspended_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "description"]
    filter_horizontal = ["accounts", "approver_groups", "approver_users"]
    readonly_fields = ["suspended_at", "suspended_by"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        old = MaintenancePolicy.objects.filter(pk=obj.pk).first() if change else None
        form.fingerprint_before = old.fingerprint() if old else ""
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_related(request, form, formsets, change)
            policy = MaintenancePolicy.objects.get(pk=form.instance.pk)
            policy.record_edit(
                user=request.user,
                before=getattr(form, "fingerprint_before", ""),
                now=timezone.now(),
            )


@admin.register(HealthEvent)
class HealthEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["received_at", "type_code", "meaning", "aws_account_id", "region"]
    list_filter = ["meaning", "region"]
    search_fields = ["event_arn", "type_code", "unknown_connection_ids"]
