"""Every status and kind vpnctl stores, as TextChoices with named groups."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class ConnectionState(models.TextChoices):
    PENDING = "pending", _("pending")
    AVAILABLE = "available", _("available")
    MODIFYING = "modifying", _("modifying")
    DELETING = "deleting", _("deleting")
    DELETED = "deleted", _("deleted")


class TunnelStatus(models.TextChoices):
    UP = "UP", _("UP")
    DOWN = "DOWN", _("DOWN")
    UNKNOWN = "UNKNOWN", _("unknown")


class PendingMaintenance(models.TextChoices):
    AVAILABLE = "Available", _("Available")
    NONE = "None", _("None")


class SyncStatus(models.TextChoices):
    RUNNING = "running", _("running")
    OK = "ok", _("succeeded")
    PARTIAL = "partial", _("finished with errors")
    FAILED = "failed", _("failed")


class SyncTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("schedule")
    MANUAL = "manual", _("sync now button")
    COMMAND = "command", _("command line")


class ChangeKind(models.TextChoices):
    REPLACE = "replace", _("Apply pending maintenance")
    ENABLE_LIFECYCLE = "enable_lifecycle", _("Turn on lifecycle control")


class ChangeStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", _("Waiting for approval")
    APPROVED = "approved", _("Approved, waiting for its window")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    TIMED_OUT = "timed_out", _("Timed out")
    BLOCKED = "blocked", _("Blocked by a safety check")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")
    SUPERSEDED = "superseded", _("Superseded (AWS already applied it)")


ChangeStatus.OPEN = frozenset(
    {ChangeStatus.PENDING_APPROVAL, ChangeStatus.APPROVED, ChangeStatus.RUNNING}
)
ChangeStatus.TERMINAL = frozenset(set(ChangeStatus) - ChangeStatus.OPEN)
ChangeStatus.CANCELLABLE = frozenset({ChangeStatus.PENDING_APPROVAL, ChangeStatus.APPROVED})
# Going to run, or running: what a calendar shows and what can plan a tunnel's maintenance.
ChangeStatus.SCHEDULED = frozenset({ChangeStatus.APPROVED, ChangeStatus.RUNNING})
# Ended without doing what was asked, by a check, AWS or the clock.
ChangeStatus.UNSUCCESSFUL = frozenset(
    {ChangeStatus.FAILED, ChangeStatus.BLOCKED, ChangeStatus.TIMED_OUT}
)


class Decision(models.TextChoices):
    # Labels name what was decided; the buttons have their own words ("Approve", "Reject").
    APPROVE = "approve", _("Approved")
    REJECT = "reject", _("Rejected")


class ExecutionOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    TIMED_OUT = "timed_out", _("Timed out")
    BLOCKED = "blocked", _("Blocked by a safety check")
    SUPERSEDED = "superseded", _("Superseded")


class ActorKind(models.TextChoices):
    USER = "user", _("user")
    SYSTEM = "system", _("system")
    AWS = "aws", _("AWS")


class AuditAction(models.TextChoices):
    # Inventory, written by sync.
    CONNECTION_DISCOVERED = "connection.discovered", _("connection discovered")
    CONNECTION_GONE = "connection.gone", _("connection gone from AWS")
    CONNECTION_RETURNED = "connection.returned", _("connection back in AWS")
    MAINTENANCE_APPLIED_BY_AWS = "maintenance.applied_by_aws", _("maintenance applied by AWS")
    SYNC_FAILED = "sync.failed", _("sync of an account and region failed")
    CONNECTION_REFRESH_REQUESTED = "connection.refresh_asked", _("fresh read from AWS asked for")
    # The change workflow.
    REQUEST_SUBMITTED = "request.submitted", _("change requested")
    REQUEST_RESCHEDULED = "request.rescheduled", _("change window changed")
    REQUEST_APPROVED_BY = "request.approval", _("approval given")
    REQUEST_REJECTED = "request.rejected", _("change rejected")
    REQUEST_APPROVED = "request.approved", _("change approved")
    REQUEST_CANCELLED = "request.cancelled", _("change cancelled")
    REQUEST_EXPIRED = "request.expired", _("change expired")
    REQUEST_DEADLINE_MOVED = "request.deadline_moved", _("AWS moved its deadline before the window")
    EXECUTION_CLAIMED = "execution.claimed", _("execution started")
    EXECUTION_BLOCKED = "execution.blocked", _("execution blocked by a safety check")
    EXECUTION_SUPERSEDED = "execution.superseded", _("change no longer needed")
    EXECUTION_CALLING_AWS = "execution.calling_aws", _("about to call AWS")
    EXECUTION_AWS_ANSWERED = "execution.aws_answered", _("AWS accepted the change")
    EXECUTION_AWS_ERROR = "execution.aws_error", _("AWS refused the change")
    EXECUTION_RECONCILED = "execution.reconciled", _("execution reconciled after a lost worker")
    EXECUTION_SUCCEEDED = "execution.succeeded", _("change succeeded")
    EXECUTION_FAILED = "execution.failed", _("change failed")
    EXECUTION_TIMED_OUT = "execution.timed_out", _("change timed out")
    # What the worker saw of the tunnel while watching.
    TUNNEL_SEEN_DOWN = "execution.tunnel_down", _("tunnel seen DOWN")
    TUNNEL_SEEN_UP = "execution.tunnel_up", _("tunnel seen UP again")
    MAINTENANCE_CLEARED = "execution.maintenance_cleared", _("pending maintenance cleared")
    # Signing in.
    LOGIN_FAILED = "auth.login_failed", _("sign-in failed")
    LOGIN_LOCKED_OUT = "auth.locked_out", _("sign-in locked out")
    LOGIN_SUCCEEDED = "auth.login", _("signed in")
    ROLES_FROM_IDP = "auth.roles_from_idp", _("roles set from the identity provider")
    SSO_REFUSED = "auth.sso_refused", _("single sign-on answer refused")
    # API tokens.
    API_TOKEN_CREATED = "token.created", _("API token created")
    API_TOKEN_NEW_ADDRESS = "token.new_address", _("API token used from a new address")
    API_TOKEN_REVOKED = "token.revoked", _("API token revoked")
    # Administration.
    ACCOUNT_CHANGED = "account.changed", _("account settings changed")
    BLACKOUT_CHANGED = "blackout.changed", _("blackout period changed")
    BLACKOUT_DELETED = "blackout.deleted", _("blackout period deleted")
    CALENDAR_FEED_ISSUED = "calendar.issued", _("calendar URL created")
    CALENDAR_FEED_REVOKED = "calendar.revoked", _("calendar URL revoked")
    # Fleet automation.
    HEALTH_EVENT_RECEIVED = "health.received", _("AWS Health event received")
    POLICY_CHANGED = "policy.changed", _("maintenance policy saved")
    POLICY_APPROVED = "policy.approved", _("policy approved as a standard change")
    POLICY_SUSPENDED = "policy.suspended", _("standard change suspended")
    REQUEST_STANDARD_VOIDED = "request.standard_voided", _("standard change approval voided")
    CHAT_CHANNEL_CHANGED = "chat.changed", _("chat channel changed")
    CHAT_CHANNEL_DELETED = "chat.deleted", _("chat channel deleted")


class HealthMeaning(models.TextChoices):
    """What an AWS Health event's type code means to vpnctl (health_events.MEANINGS)."""

    REDUNDANCY_LOSS = "redundancy_loss", _("a tunnel is down: the connection lost redundancy")
    SINGLE_TUNNEL = "single_tunnel", _("only one tunnel is configured or up")
    MAINTENANCE_SCHEDULED = "maintenance_scheduled", _("tunnel endpoint maintenance available")
    MAINTENANCE_COMPLETED = "maintenance_completed", _("tunnel endpoint maintenance completed")
    UNKNOWN = "unknown", _("not known to vpnctl: stored and shown, not acted upon")


class StepLevel(models.TextChoices):
    """How an execution step, or a line of a request's timeline, reads: its colour."""

    INFO = "info", _("info")
    WARNING = "warning", _("warning")
    ERROR = "error", _("error")


# The timeline's level of an audit event; any other action reads as INFO.
AUDIT_ACTION_LEVELS: dict[str, StepLevel] = {
    AuditAction.REQUEST_REJECTED: StepLevel.ERROR,
    AuditAction.EXECUTION_BLOCKED: StepLevel.ERROR,
    AuditAction.EXECUTION_FAILED: StepLevel.ERROR,
    AuditAction.EXECUTION_TIMED_OUT: StepLevel.ERROR,
}


class Preflight(models.TextChoices):
    """The verdict of the safety checks on fresh AWS data, just before the call."""

    OK = "ok", _("All checks passed")
    BLOCKED = "blocked", _("Blocked by a safety check")
    SUPERSEDED = "superseded", _("No longer needed")


class BatchTurn(models.TextChoices):
    """Whether a batch's request may start, given the batch's earlier ones on its connection."""

    GO = "go", _("may start")
    WAIT = "wait", _("waits for the other tunnel")
    STOP = "stop", _("stops: the other tunnel's change did not succeed")


class Notice(models.TextChoices):
    """The emails the change workflow sends (notifications.py)."""

    SUBMITTED = "request_submitted", _("a request needs a decision")
    DECIDED = "request_decided", _("a request was decided")
    FINISHED = "request_finished", _("a request ended")
    DEADLINE_MOVED = "request_deadline_moved", _("AWS moved its deadline before a window")
