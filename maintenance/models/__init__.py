"""vpnctl's models, by topic; every model is re-exported here, so ``maintenance.models.X``
(and the migrations and the admin that name it so) keep working.

- ``inventory``: the mirror of AWS (accounts, connections, tunnels) and the sync runs;
- ``audit``: the hash-chained, append-only audit log;
- ``rules``: what a change request must keep, checked at submission;
- ``changes``: change requests, with their transitions (their QuerySet in
  ``change_queries``, their submission in ``submission``, the standard change's
  transitions in ``standard``); ``approvals``: the decisions;
- ``executions``: the one execution of an approved change, and its steps;
- ``batches``: lifecycle control for many tunnels at once;
- ``operations``: preferences, blackouts, calendar feeds, reminders, the worker's heartbeat;
- ``access``: personal API tokens; ``chat``: chat channels and their deliveries;
- ``policies``: AWS Health events, maintenance policies, their windows and standard-change
  approvals; ``drafting``: the requests policies draft; ``plan``: the fleet's plan.

Imports run one way: inventory ← audit ← operations ← rules ← changes ← batches, with
approvals and executions beside changes (they name the request by its model's name).
Outside this package models use only leaves: choices, roles, times, texts, enqueue,
notifications, secrets (tests/test_layout.py checks it).
"""

from .access import ApiToken
from .approvals import Approval
from .audit import GENESIS_HASH, AuditChainHead, AuditEvent, AuditLogError, canonical_json
from .batches import ChangeBatch
from .changes import ChangeRequest, TransitionRefused, create_checked
from .chat import ChatChannel, ChatDelivery, ChatEvent, ChatKind, DeliveryStatus, announce
from .executions import Execution, ExecutionStep
from .inventory import (
    AwsAccount,
    SyncResult,
    SyncRun,
    Tunnel,
    VpnConnection,
    applied_by_aws_since,
    ip_order,
    planned_before_deadline,
)
from .operations import (
    BlackoutPeriod,
    CalendarFeed,
    ReminderSent,
    UserProfile,
    WorkerHeartbeat,
)
from .policies import HealthEvent, MaintenancePolicy, PolicyApproval
from .rules import check_rules, check_submitter, deadline_refusal, ends_after_deadline

__all__ = [
    "GENESIS_HASH",
    "ApiToken",
    "Approval",
    "AuditChainHead",
    "AuditEvent",
    "AuditLogError",
    "AwsAccount",
    "BlackoutPeriod",
    "CalendarFeed",
    "ChangeBatch",
    "ChangeRequest",
    "ChatChannel",
    "ChatDelivery",
    "ChatEvent",
    "ChatKind",
    "DeliveryStatus",
    "Execution",
    "ExecutionStep",
    "HealthEvent",
    "MaintenancePolicy",
    "PolicyApproval",
    "ReminderSent",
    "SyncResult",
    "SyncRun",
    "TransitionRefused",
    "Tunnel",
    "UserProfile",
    "VpnConnection",
    "WorkerHeartbeat",
    "announce",
    "applied_by_aws_since",
    "canonical_json",
    "check_rules",
    "check_submitter",
    "create_checked",
    "deadline_refusal",
    "ends_after_deadline",
    "ip_order",
    "planned_before_deadline",
]
