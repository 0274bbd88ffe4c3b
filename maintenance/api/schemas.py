"""What the API answers and accepts, as pydantic schemas (ninja's ``Schema``).

Times are ISO 8601 in UTC (``2026-12-02T06:00:00Z``) whatever zone a time was given in.
A sentence vpnctl stored for later (an audit event, a step, why a change ended) is given
both as written for the reader (``text``, in the call's language) and, for audit events,
as stored (``message``, English, and ``details``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from django.utils.translation import gettext
from ninja import Field, Schema
from pydantic import AfterValidator, AwareDatetime, PlainSerializer, WithJsonSchema

from ..choices import (
    ActorKind,
    AuditAction,
    ChangeKind,
    ChangeStatus,
    ConnectionState,
    Decision,
    ExecutionOutcome,
    StepLevel,
    SyncStatus,
    SyncTrigger,
)
from ..forms.changes import MAX_ID


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Utc = Annotated[
    datetime,
    PlainSerializer(_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _in_utc(value: datetime) -> datetime:
    # A time is kept in UTC from here on: PostgreSQL refuses offsets past ±15:59, which
    # ISO 8601 allows (and Hypothesis writes).
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(gettext("This time is out of range.")) from exc


# A time given to the API: ISO 8601 with an offset (``Z`` or ``+09:00``).
Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class Page(Schema):
    """One page of a list, 1-based; ``pages`` is at least 1."""

    count: int
    page: int
    pages: int


# -- inventory ----------------------------------------------------------------------------


class AccountOut(Schema):
    id: int
    name: str
    account_id: str


class TunnelOut(Schema):
    id: int
    connection: int
    vpn_connection_id: str
    outside_ip: str
    lifecycle_control: bool
    status: str
    status_message: str
    last_status_change: Utc | None
    accepted_route_count: int | None
    pending_maintenance: str
    maintenance_auto_applied_after: Utc | None
    last_maintenance_applied: Utc | None
    synced_at: Utc | None

    @staticmethod
    def resolve_connection(tunnel: Any) -> int:
        return tunnel.connection_id

    @staticmethod
    def resolve_vpn_connection_id(tunnel: Any) -> str:
        return tunnel.connection.vpn_connection_id


class ConnectionOut(Schema):
    id: int
    account: AccountOut
    region: str
    vpn_connection_id: str
    name: str
    tags: dict[str, Any]
    state: ConnectionState | str
    type: str
    category: str
    customer_gateway_id: str
    vpn_gateway_id: str
    transit_gateway_id: str
    first_seen: Utc | None
    last_seen: Utc | None
    gone_at: Utc | None
    tunnels: list[TunnelOut]

    @staticmethod
    def resolve_tunnels(connection: Any) -> list[Any]:
        return connection.ordered_tunnels


class ConnectionPage(Page):
    results: list[ConnectionOut]


class TunnelPage(Page):
    results: list[TunnelOut]


class SyncResultOut(Schema):
    account: str
    region: str
    started_at: Utc | None
    finished_at: Utc | None
    connections: int
    tunnels: int
    created: int
    changed: int
    gone: int
    api_calls: int
    failed: bool
    errors: list[Any]

    @staticmethod
    def resolve_account(result: Any) -> str:
        return result.account.name


class SyncRunOut(Schema):
    id: int
    started_at: Utc | None
    finished_at: Utc | None
    status: SyncStatus
    trigger: SyncTrigger
    requested_by: str | None

    @staticmethod
    def resolve_requested_by(run: Any) -> str | None:
        return run.requested_by.get_username() if run.requested_by else None


class SyncRunDetailOut(SyncRunOut):
    results: list[SyncResultOut]

    @staticmethod
    def resolve_results(run: Any) -> list[Any]:
        return run.ordered_results


class SyncRunPage(Page):
    results: list[SyncRunOut]


class SyncQueuedOut(Schema):
    detail: str
    task: str


# -- change requests ----------------------------------------------------------------------


class ApprovalOut(Schema):
    approver: str
    decision: Decision
    comment: str
    at: Utc
    counts: bool

    @staticmethod
    def resolve_approver(approval: Any) -> str:
        return approval.approver.get_username()


class RequestOut(Schema):
    id: int
    kind: ChangeKind
    status: ChangeStatus
    why: str
    tunnel: int
    outside_ip: str
    vpn_connection_id: str
    account: str
    requester: str
    reason: str
    window_start: Utc
    window_end: Utc
    start_when_approved: bool
    skip_tunnel_replacement: bool
    required_approvals: int
    approvals_valid: int
    ends_after_deadline: bool
    fingerprint: str
    batch: int | None
    created_at: Utc
    updated_at: Utc
    approved_at: Utc | None
    finished_at: Utc | None

    @staticmethod
    def resolve_tunnel(change: Any) -> int:
        return change.tunnel_id

    @staticmethod
    def resolve_outside_ip(change: Any) -> str:
        return change.tunnel.outside_ip

    @staticmethod
    def resolve_vpn_connection_id(change: Any) -> str:
        return change.tunnel.connection.vpn_connection_id

    @staticmethod
    def resolve_account(change: Any) -> str:
        return change.tunnel.connection.account.name

    @staticmethod
    def resolve_requester(change: Any) -> str:
        return change.requester.get_username()

    @staticmethod
    def resolve_why(change: Any) -> str:
        return str(change.why)

    @staticmethod
    def resolve_batch(change: Any) -> int | None:
        return change.batch_id

    @staticmethod
    def resolve_approvals_valid(change: Any) -> int:
        # Annotated on lists (with_approval_counts); counted from the prefetch otherwise.
        counted = getattr(change, "approvals_valid", None)
        return counted if counted is not None else len(change.valid_approvals())

    @staticmethod
    def resolve_ends_after_deadline(change: Any) -> bool:
        flag = getattr(change, "after_deadline", None)
        return bool(flag) if flag is not None else change.ends_after_deadline


class RequestDetailOut(RequestOut):
    approvals: list[ApprovalOut]
    execution: int | None

    @staticmethod
    def resolve_approvals(change: Any) -> list[Any]:
        return list(change.approvals.all())

    @staticmethod
    def resolve_execution(change: Any) -> int | None:
        return change.execution_pk


class RequestPage(Page):
    results: list[RequestOut]


class RequestIn(Schema):
    """A change to one tunnel. Without ``window_start``, ``start_when_approved`` must be
    true: the window opens at the last approval. ``skip_tunnel_replacement`` is asked
    for turning lifecycle control on only (``apply`` or ``skip`` pending maintenance);
    ``confirm_blocker`` submits although a listed risk would block the change."""

    tunnel: Id
    kind: ChangeKind
    reason: str
    window_start: Moment | None = None
    window_end: Moment
    start_when_approved: bool = False
    skip_tunnel_replacement: Literal["apply", "skip"] | None = None
    confirm_blocker: bool = False


class WindowIn(Schema):
    window_start: Moment | None = None
    window_end: Moment
    start_when_approved: bool = False


class DecisionIn(Schema):
    """A comment: optional to approve, needed to reject."""

    comment: str = ""


class CancelIn(Schema):
    reason: str = ""


# -- batches ------------------------------------------------------------------------------


class BatchOut(Schema):
    id: int
    requester: str
    reason: str
    created_at: Utc
    requests: int
    waiting: int
    open: int
    succeeded: int
    failed: int

    @staticmethod
    def resolve_requester(batch: Any) -> str:
        return batch.requester.get_username()

    @staticmethod
    def resolve_requests(batch: Any) -> int:
        return batch.n_total

    @staticmethod
    def resolve_waiting(batch: Any) -> int:
        return batch.n_waiting

    @staticmethod
    def resolve_open(batch: Any) -> int:
        return batch.n_open

    @staticmethod
    def resolve_succeeded(batch: Any) -> int:
        return batch.n_succeeded

    @staticmethod
    def resolve_failed(batch: Any) -> int:
        return batch.n_failed


class BatchDetailOut(BatchOut):
    members: list[RequestOut]

    @staticmethod
    def resolve_members(batch: Any) -> list[Any]:
        return batch.ordered_requests()


class BatchPage(Page):
    results: list[BatchOut]


class BatchDecidedOut(Schema):
    detail: str
    decided: list[int]


# -- executions ---------------------------------------------------------------------------


class StepOut(Schema):
    at: Utc
    level: StepLevel
    text: str
    data: dict[str, Any]

    @staticmethod
    def resolve_text(step: Any) -> str:
        return str(step.sentence)


class ExecutionOut(Schema):
    id: int
    request: int
    status: ChangeStatus
    outcome: ExecutionOutcome | Literal[""]
    claimed_at: Utc | None
    calling_aws_at: Utc | None
    aws_answered_at: Utc | None
    aws_request_id: str
    aws_error_code: str
    aws_error_message: str
    finished_at: Utc | None

    @staticmethod
    def resolve_request(execution: Any) -> int:
        return execution.change_request_id

    @staticmethod
    def resolve_status(execution: Any) -> str:
        return execution.change_request.status


class ExecutionDetailOut(ExecutionOut):
    before: dict[str, Any]
    after: dict[str, Any]
    steps: list[StepOut]

    @staticmethod
    def resolve_steps(execution: Any) -> list[Any]:
        return list(execution.steps.all())

    @staticmethod
    def resolve_before(execution: Any) -> dict[str, Any]:
        return execution.before or {}

    @staticmethod
    def resolve_after(execution: Any) -> dict[str, Any]:
        return execution.after or {}


class ExecutionPage(Page):
    results: list[ExecutionOut]


# -- the audit log ------------------------------------------------------------------------


class AuditEventOut(Schema):
    """An event as its hash covers it (ids of what it concerns), plus names and its
    sentence for the reader (``text``)."""

    seq: int
    at: Utc
    actor: str
    actor_kind: ActorKind
    action: AuditAction | str
    account: int | None
    connection: int | None
    tunnel: int | None
    request: int | None
    message: str
    text: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @staticmethod
    def resolve_actor(event: Any) -> str:
        return event.actor_name

    @staticmethod
    def resolve_account(event: Any) -> int | None:
        return event.account_id

    @staticmethod
    def resolve_connection(event: Any) -> int | None:
        return event.connection_id

    @staticmethod
    def resolve_tunnel(event: Any) -> int | None:
        return event.tunnel_id

    @staticmethod
    def resolve_request(event: Any) -> int | None:
        return event.change_request_id

    @staticmethod
    def resolve_text(event: Any) -> str:
        return str(event.sentence or event.message)

    @staticmethod
    def resolve_details(event: Any) -> dict[str, Any]:
        return event.details if isinstance(event.details, dict) else {"value": event.details}


class AuditPage(Schema):
    """Newest first, 50 a page. ``older`` / ``newer``: the cursors of the neighbouring
    pages (pass ``before=<older>`` or ``after=<newer>``), null at either end."""

    count: int
    newer: int | None
    older: int | None
    results: list[AuditEventOut]
