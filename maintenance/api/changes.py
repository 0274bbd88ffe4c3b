"""The change workflow through the API: requests, their decisions, batches, executions.

Every change goes through the same forms (which parse) and the same model transitions
(which check, move and audit) as the pages, so the rules, the audit events and the
messages are the same. The transitions' refusals become the API's errors (errors.py):
a rule broken, 400; not allowed, 403; refused by the state the request is in, 409.
"""

from __future__ import annotations

from typing import Any, Literal

from django.db.models import Prefetch
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema, Status

from ..choices import ChangeKind, ChangeStatus, Decision
from ..forms.batches import BatchDecisionForm
from ..forms.changes import (
    CancelForm,
    ChangeRequestForm,
    DecisionForm,
    RequestFilterForm,
    WindowForm,
)
from ..models import Approval, ChangeBatch, ChangeRequest, Execution, Tunnel
from ..risks import blocking, risks_for
from ..views.batches import with_status_counts
from .common import paged, require
from .errors import COMMON_ERRORS, TRANSITION_ERRORS, check
from .schemas import (
    BatchDetailOut,
    BatchPage,
    CancelIn,
    DecisionIn,
    ExecutionDetailOut,
    ExecutionPage,
    Id,
    RequestDetailOut,
    RequestIn,
    RequestPage,
    WindowIn,
)

router = Router(tags=["changes"])

REQUESTS_PER_PAGE = 50
BATCHES_PER_PAGE = 20
EXECUTIONS_PER_PAGE = 50


# -- requests -----------------------------------------------------------------------------


class RequestFilters(Schema):
    """The request list's filters (forms.changes.RequestFilterForm): ``status`` is a
    status or ``open`` (not finished); dates are days in the user's time zone."""

    status: ChangeStatus | Literal["open"] | None = None
    account: Id | None = None
    kind: ChangeKind | None = None
    window_from: str | None = None
    window_to: str | None = None
    mine: bool = False
    waiting_for_me: bool = False
    page: Id = 1


def _request_rows(qs: Any) -> Any:
    return (
        qs.with_approval_counts()
        .with_deadline_flag()
        .select_related("tunnel__connection__account", "requester")
        .order_by("-created_at", "-pk")
    )


def _get_request(request: HttpRequest, pk: int) -> ChangeRequest:
    """The request with what its answer shows, 404 if none, 403 if not allowed to look."""
    require(request, "maintenance.view_changerequest")
    change = get_object_or_404(
        ChangeRequest.objects.select_related(
            "tunnel__connection__account", "requester"
        ).prefetch_related(
            Prefetch(
                "approvals", queryset=Approval.objects.select_related("approver").order_by("at")
            )
        ),
        pk=pk,
    )
    change.execution_pk = (
        Execution.objects.filter(change_request=change).values_list("pk", flat=True).first()
    )
    return change


@router.get("/requests", response={200: RequestPage, **COMMON_ERRORS})
def list_requests(request: HttpRequest, filters: Query[RequestFilters]) -> Any:
    """Change requests, newest first, 50 a page, filtered as the request list filters
    them; ``mine``: the caller's own, ``waiting_for_me``: those they may still decide."""
    require(request, "maintenance.view_changerequest")
    fields = {"status", "account", "kind", "window_from", "window_to"}
    data = filters.model_dump(mode="json", exclude_none=True, include=fields)
    form = RequestFilterForm(data)
    check(form)
    qs = form.filter(ChangeRequest.objects.all())
    if filters.mine:
        qs = qs.filter(requester=request.user)
    if filters.waiting_for_me:
        waiting = ChangeRequest.objects.awaiting_decision_of(request.user)
        qs = qs.filter(pk__in=waiting.values("pk"))
    return paged(_request_rows(qs), filters.page, REQUESTS_PER_PAGE)


@router.get("/requests/{pk}", response={200: RequestDetailOut, **COMMON_ERRORS})
def get_request(request: HttpRequest, pk: Id) -> Any:
    """One request, with its decisions and its execution's id once it has one."""
    return _get_request(request, pk)


@router.post("/requests", response={201: RequestDetailOut, **COMMON_ERRORS})
def create_request(request: HttpRequest, payload: RequestIn) -> Any:
    """Ask for a change to a tunnel (requesters), as the request form does."""
    require(request, "maintenance.request_change")
    tunnel = get_object_or_404(
        Tunnel.objects.select_related("connection__account"), pk=payload.tunnel
    )
    risks = risks_for(tunnel, payload.kind, sibling=tunnel.sibling())
    form = ChangeRequestForm(
        payload.model_dump(exclude={"tunnel", "kind"}, exclude_none=True),
        kind=payload.kind,
        tunnel=tunnel,
        blocker=blocking(risks),
    )
    data = check(form)
    change = ChangeRequest.submit(
        user=request.user,
        tunnel=tunnel,
        kind=payload.kind,
        reason=data["reason"],
        window_start=data["window_start"],
        window_end=data["window_end"],
        start_when_approved=bool(data["start_when_approved"]),
        skip_tunnel_replacement=payload.kind == ChangeKind.ENABLE_LIFECYCLE and form.skip,
    )
    return Status(201, _get_request(request, change.pk))


def _decide(request: HttpRequest, pk: int, decision: str, payload: DecisionIn) -> Any:
    change = _get_request(request, pk)
    data = check(DecisionForm({"decision": decision, "comment": payload.comment}))
    decide = change.approve if decision == Decision.APPROVE else change.reject
    decide(user=request.user, comment=data["comment"])
    return _get_request(request, pk)


@router.post("/requests/{pk}/approve", response={200: RequestDetailOut, **TRANSITION_ERRORS})
def approve_request(request: HttpRequest, pk: Id, payload: DecisionIn) -> Any:
    """Approve (approvers, never the requester; the account's named approvers if it has
    any). The last approval needed makes it ``approved``."""
    return _decide(request, pk, Decision.APPROVE, payload)


@router.post("/requests/{pk}/reject", response={200: RequestDetailOut, **TRANSITION_ERRORS})
def reject_request(request: HttpRequest, pk: Id, payload: DecisionIn) -> Any:
    """Reject, saying why in ``comment``: one rejection ends the request."""
    return _decide(request, pk, Decision.REJECT, payload)


@router.post("/requests/{pk}/cancel", response={200: RequestDetailOut, **TRANSITION_ERRORS})
def cancel_request(request: HttpRequest, pk: Id, payload: CancelIn) -> Any:
    """Withdraw a request that has not started to run (its requester, or an admin)."""
    change = _get_request(request, pk)
    data = check(CancelForm({"cancel_reason": payload.reason}), {"cancel_reason": "reason"})
    change.cancel(user=request.user, reason=data["cancel_reason"])
    return _get_request(request, pk)


@router.post("/requests/{pk}/reschedule", response={200: RequestDetailOut, **TRANSITION_ERRORS})
def reschedule_request(request: HttpRequest, pk: Id, payload: WindowIn) -> Any:
    """Change the window of a request waiting for approval (its requester only): the
    approvals given before no longer count."""
    change = _get_request(request, pk)
    data = check(WindowForm(payload.model_dump(exclude_none=True)))
    change.reschedule(
        user=request.user, window_start=data["window_start"], window_end=data["window_end"]
    )
    return _get_request(request, pk)


# -- batches ------------------------------------------------------------------------------


def _batches() -> Any:
    return with_status_counts(ChangeBatch.objects.select_related("requester"))


def _get_batch(request: HttpRequest, pk: int) -> ChangeBatch:
    require(request, "maintenance.view_changerequest")
    return get_object_or_404(
        _batches().prefetch_related(
            Prefetch(
                "requests",
                queryset=_request_rows(ChangeRequest.objects.all()),
            )
        ),
        pk=pk,
    )


@router.get("/batches", response={200: BatchPage, **COMMON_ERRORS})
def list_batches(request: HttpRequest, page: Id = 1) -> Any:
    """Batches, newest first, 20 a page, with how far their requests have got."""
    require(request, "maintenance.view_changerequest")
    return paged(_batches().order_by("-created_at", "-pk"), page, BATCHES_PER_PAGE)


@router.get("/batches/{pk}", response={200: BatchDetailOut, **COMMON_ERRORS})
def get_batch(request: HttpRequest, pk: Id) -> Any:
    """One batch with its requests."""
    return _get_batch(request, pk)


def _decide_batch(request: HttpRequest, pk: int, decision: str, payload: DecisionIn) -> Any:
    batch = _get_batch(request, pk)
    require(request, "maintenance.approve_change")
    data = check(BatchDecisionForm({"comment": payload.comment}))
    decide = batch.approve if decision == Decision.APPROVE else batch.reject
    decide(user=request.user, comment=data["comment"])
    return _get_batch(request, pk)


@router.post("/batches/{pk}/approve", response={200: BatchDetailOut, **TRANSITION_ERRORS})
def approve_batch(request: HttpRequest, pk: Id, payload: DecisionIn) -> Any:
    """Approve every request of the batch still waiting, together, or none of them."""
    return _decide_batch(request, pk, Decision.APPROVE, payload)


@router.post("/batches/{pk}/reject", response={200: BatchDetailOut, **TRANSITION_ERRORS})
def reject_batch(request: HttpRequest, pk: Id, payload: DecisionIn) -> Any:
    """Reject every request of the batch still waiting, saying why in ``comment``."""
    return _decide_batch(request, pk, Decision.REJECT, payload)


# -- executions ---------------------------------------------------------------------------


def _executions() -> Any:
    return Execution.objects.select_related("change_request")


@router.get("/executions", response={200: ExecutionPage, **COMMON_ERRORS})
def list_executions(request: HttpRequest, page: Id = 1) -> Any:
    """Executions, newest first, 50 a page (their steps: one execution's own answer)."""
    require(request, "maintenance.view_changerequest")
    return paged(_executions().order_by("-claimed_at", "-pk"), page, EXECUTIONS_PER_PAGE)


@router.get("/executions/{pk}", response={200: ExecutionDetailOut, **COMMON_ERRORS})
def get_execution(request: HttpRequest, pk: Id) -> Any:
    """One execution: what AWS was asked and answered, the tunnel before and after, and
    every step, in the call's language."""
    require(request, "maintenance.view_changerequest")
    return get_object_or_404(_executions().prefetch_related("steps"), pk=pk)
