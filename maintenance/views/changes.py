"""The change workflow's pages: ask for a change, see it, decide on it, watch it run.

Permissions are checked here and again by the model's transitions, which raise
PermissionDenied or ValidationError; a ValidationError is shown next to its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Prefetch, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from .. import liveness, times
from ..calendar import upcoming_blackouts
from ..choices import AUDIT_ACTION_LEVELS, ActorKind, ChangeKind, ChangeStatus, Decision, StepLevel
from ..forms.changes import (
    CancelForm,
    ChangeRequestForm,
    DecisionForm,
    RequestFilterForm,
    WindowForm,
)
from ..models import Approval, ChangeRequest, Execution, SyncResult, Tunnel, VpnConnection
from ..risks import blocking, risks_for
from ..texts import render as render_text
from .helpers import (
    IKE_ROWS,
    SNAPSHOT_ROWS,
    add_model_errors,
    paginate,
    require_perm,
    tunnel_number,
)

REQUESTS_PER_PAGE = 25
SWEEP_SECONDS = 60  # maintenance/schedules.py: the sweeper runs every minute
# A page that asked AWS for fresh data polls this long for the answer, then says none came.
REFRESH_WAIT_SECONDS = 300


# ---------------------------------------------------------------------------------------
# Asking for a change
# ---------------------------------------------------------------------------------------


def _what_happens(kind: str) -> str:
    if kind == ChangeKind.REPLACE:
        return _(
            "AWS replaces the endpoint behind this tunnel to apply its pending maintenance. "
            "The tunnel's outside IP address does not change."
        )
    return _(
        "AWS turns on tunnel endpoint lifecycle control for this tunnel. From then on AWS "
        "waits for you to apply its maintenance (until its own deadline) instead of choosing "
        "the moment itself."
    )


@login_required
def request_new(request: HttpRequest, tunnel_pk: int, kind: str) -> HttpResponse:
    """The request form, with what will happen and the risks shown before submitting."""
    require_perm(request, "maintenance.request_change")
    if kind not in ChangeKind.values:
        raise Http404
    tunnel = get_object_or_404(Tunnel.objects.select_related("connection__account"), pk=tunnel_pk)
    sibling = tunnel.sibling()
    risks = risks_for(tunnel, kind, sibling=sibling)
    form = ChangeRequestForm(
        request.POST or None, kind=kind, tunnel=tunnel, blocker=blocking(risks)
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            change = ChangeRequest.submit(
                user=request.user,
                tunnel=tunnel,
                kind=kind,
                reason=data["reason"],
                window_start=data["window_start"],
                window_end=data["window_end"],
                start_when_approved=bool(data["start_when_approved"]),
                skip_tunnel_replacement=kind == ChangeKind.ENABLE_LIFECYCLE and form.skip,
            )
        except ValidationError as exc:
            add_model_errors(form, exc)
        else:
            messages.success(
                request,
                _("Request #%(pk)s submitted. The approvers have been told by email.")
                % {"pk": change.pk},
            )
            return redirect("maintenance:request", change.pk)

    calls = {
        skip: ChangeRequest(kind=kind, tunnel=tunnel, skip_tunnel_replacement=skip).aws_call_name
        for skip in (False, True)
    }
    chosen = form.data.get("skip_tunnel_replacement") if form.is_bound else None
    open_request = ChangeRequest.objects.open().filter(tunnel=tunnel).first()
    return render(
        request,
        "maintenance/request_form.html",
        {
            "form": form,
            "kind": kind,
            "kind_label": ChangeKind(kind).label,
            "tunnel": tunnel,
            "connection": tunnel.connection,
            "sibling": sibling,
            "tunnel_number": tunnel_number(tunnel, sibling),
            "what_happens": _what_happens(kind),
            "call_apply": calls[False],
            "call_skip": calls[True],
            "call_chosen": calls[chosen == "skip"] if chosen in ("apply", "skip") else None,
            "risks": risks,
            "has_blocker": blocking(risks),
            "open_request": open_request,
            "zone_name": timezone.get_current_timezone_name(),
            "now": timezone.now(),
            "blackouts": upcoming_blackouts(tunnel.connection.account_id, timezone.now()),
        },
    )


# ---------------------------------------------------------------------------------------
# One request
# ---------------------------------------------------------------------------------------


def _get_request_for_user(request: HttpRequest, pk: int) -> ChangeRequest:
    """The request, 404 if there is none, 403 if the user may not see requests."""
    require_perm(request, "maintenance.view_changerequest")
    return get_object_or_404(
        ChangeRequest.objects.select_related("tunnel__connection__account", "requester", "policy")
        # In the same query, so that the page has a query left for who may decide it.
        .annotate(
            last_synced_at=_last_sync(
                OuterRef("tunnel__connection__account_id"), OuterRef("tunnel__connection__region")
            )
        )
        .prefetch_related(
            Prefetch(
                "approvals", queryset=Approval.objects.select_related("approver").order_by("at")
            ),
        ),
        pk=pk,
    )


@dataclass
class TimelineEntry:
    """One line of the timeline: an audit event or an execution step."""

    key: str  # the element id, stable across refreshes
    at: datetime
    order: tuple[int, int]  # audit events before steps of the same instant, then by id
    source: str
    who: str
    text: str
    detail: str
    level: str
    at_text: str = ""


_WHO = {ActorKind.SYSTEM: "vpnctl", ActorKind.AWS: "AWS"}


def _timeline(change: ChangeRequest, execution: Execution | None) -> list[TimelineEntry]:
    """The request's audit events and its execution's steps, merged by time."""
    entries = []
    for event in change.audit_events.all().order_by("seq"):
        details = event.details or {}
        detail = render_text(details.get("comment") or details.get("reason") or "")
        entries.append(
            TimelineEntry(
                key=f"event-{event.seq}",
                at=event.at,
                order=(0, event.seq),
                source=_("Audit log: %(action)s") % {"action": event.get_action_display()},
                who=event.actor_name
                if event.actor_kind == ActorKind.USER
                else _WHO[event.actor_kind],
                text=event.sentence or event.get_action_display(),
                detail=str(detail),
                level=AUDIT_ACTION_LEVELS.get(event.action, StepLevel.INFO),
            )
        )
    if execution is not None:
        # The model writes the end of an execution both as a step and as an audit event,
        # in the same words at the same instant: say it once.
        said = {(e.text, e.at.replace(microsecond=0)) for e in entries}
        for step in execution.steps.all():
            if (step.sentence, step.at.replace(microsecond=0)) in said:
                continue
            entries.append(
                TimelineEntry(
                    key=f"step-{step.pk}",
                    at=step.at,
                    order=(1, step.pk),
                    source=_("Execution step")
                    if step.level == StepLevel.INFO
                    else _("Execution step (%(level)s)") % {"level": step.get_level_display()},
                    who="vpnctl",
                    text=step.sentence,
                    detail="",
                    level=step.level,
                )
            )
    entries.sort(key=lambda e: (e.at, e.order))
    for entry in entries:
        entry.at_text = times.local(entry.at, seconds=True)
    return entries


def _snapshot_value(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return _("on") if value else _("off")
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _evidence(execution: Execution | None) -> list[tuple[str, Any, Any]]:
    """Rows (label, before, after) of the tunnel's state around the AWS call."""
    if execution is None:
        return []
    before, after = execution.before or {}, execution.after or {}
    if not before and not after:
        return []
    rows = [
        (label, _snapshot_value(before.get(key)), _snapshot_value(after.get(key)))
        for key, label in SNAPSHOT_ROWS
    ]
    ike_before, ike_after = before.get("ike") or {}, after.get("ike") or {}
    rows += [
        (label, _snapshot_value(ike_before.get(key)), _snapshot_value(ike_after.get(key)))
        for key, label in IKE_ROWS
    ]
    if before.get("ike_error") or after.get("ike_error"):
        rows.append((_("IKE details unavailable"), before.get("ike_error"), after.get("ike_error")))
    return [row for row in rows if row[1] is not None or row[2] is not None]


def _is_live(change: ChangeRequest, now: datetime) -> bool:
    """Whether the page should keep refreshing: while the change can start or is running.

    That is: running; approved with its window open; or waiting for an approval with its
    window open ("as soon as approved"), since the last approval starts it at once and the
    requester's open page should follow it without a reload.
    """
    if change.status == ChangeStatus.RUNNING:
        return True
    return change.status in (
        ChangeStatus.APPROVED,
        ChangeStatus.PENDING_APPROVAL,
    ) and change.window_is_open(now)


def _last_sync(account_id: Any, region: Any) -> Subquery:
    """When the last sync that read this account and region without failing finished."""
    return Subquery(SyncResult.clean_read_times(account_id, region)[:1])


def _aws_context(change: ChangeRequest, user: Any, now: datetime) -> dict[str, Any]:
    """When vpnctl last read the tunnel from AWS, the last "Refresh from AWS", the button.

    Said only while the request waits for a decision or its window, where a refresh helps
    to decide (a running change reads the tunnel at every look: see its execution). "Last
    read" is the later of the last refresh and the last sync that read the account and
    region without failing; a failed refresh is shown until a later read succeeds.
    """
    connection = change.tunnel.connection
    if change.status not in ChangeStatus.CANCELLABLE:
        return {"can_refresh": False, "refresh_polls": False}
    if hasattr(change, "last_synced_at"):  # annotated by _get_request_for_user
        synced_at = change.last_synced_at
    else:
        synced_at = SyncResult.clean_read_times(connection.account_id, connection.region).first()
    read_at, read_by = max(
        [(t, by) for t, by in ((connection.refreshed_at, "refresh"), (synced_at, "sync")) if t],
        default=(None, None),
    )
    waiting = connection.refresh_waiting
    asked_at = connection.refresh_requested_at
    stalled = waiting and now - asked_at > timedelta(seconds=REFRESH_WAIT_SECONDS)
    failed_at = connection.refresh_failed_at
    failed = (
        not waiting
        and failed_at is not None
        and bool(connection.refresh_error)
        and (read_at is None or failed_at > read_at)
    )
    next_at = connection.next_refresh_at()
    return {
        "read_at": read_at,
        "read_by": read_by,
        "can_refresh": VpnConnection.may_ask_refresh(user, change),
        "refresh_waiting": waiting,
        "refresh_stalled": stalled,
        "refresh_asked_at": asked_at,
        "refresh_next_at": next_at if next_at is not None and next_at > now else None,
        "refresh_failed_at": failed_at if failed else None,
        "refresh_error": connection.refresh_error if failed else {},
        "refresh_min_seconds": settings.REFRESH_MIN_SECONDS,
        # Said only when it explains a wait: no answer while the worker is not heard of.
        "refresh_silent_worker": liveness.silent_worker(now) if waiting else None,
        "refresh_polls": waiting and not stalled,
    }


def _live_context(change: ChangeRequest, user: Any) -> dict[str, Any]:
    """What the self-refreshing part of the page shows: status, the tunnel on AWS, the plan
    and risks worked out from it, execution, timeline."""
    now = timezone.now()
    execution = Execution.objects.filter(change_request=change).first()
    valid = change.valid_approvals()
    silent_since = execution.silent_since(now) if execution is not None else None
    tunnel = change.tunnel
    sibling = tunnel.sibling()
    aws = _aws_context(change, user, now)
    return {
        **aws,
        "tunnel": tunnel,
        "connection": tunnel.connection,
        "sibling": sibling,
        "tunnel_number": tunnel_number(tunnel, sibling),
        # Risks concern what may still happen: shown until the change starts to run.
        "risks": risks_for(tunnel, change.kind, sibling=sibling, now=now)
        if change.status in ChangeStatus.CANCELLABLE
        else [],
        "what_happens": _what_happens(change.kind),
        "silent_since": silent_since,
        # The sweeper looks every minute for executions silent that long.
        "takeover_by": silent_since
        + timedelta(seconds=settings.STALE_EXECUTION_SECONDS + SWEEP_SECONDS)
        if silent_since
        else None,
        "change": change,
        "execution": execution,
        "evidence": _evidence(execution),
        "timeline": _timeline(change, execution),
        # The page polls while the change can run, or while AWS has a refresh to answer.
        "change_live": _is_live(change, now),
        "live": _is_live(change, now) or aws["refresh_polls"],
        "terminal": change.status in ChangeStatus.TERMINAL,
        "approvals_valid": len(valid),
        "approvals_missing": max(0, change.required_approvals - len(valid)),
        "window_open": change.window_is_open(now),
        "now": now,
    }


def _render_request(
    request: HttpRequest,
    change: ChangeRequest,
    *,
    status: int = 200,
    page_error: str = "",
    decision_form: DecisionForm | None = None,
    cancel_form: CancelForm | None = None,
    reschedule_form: WindowForm | None = None,
) -> HttpResponse:
    user = request.user
    context = _live_context(change, user)
    approvals = list(change.approvals.all())
    can_reschedule = change.can_reschedule(user)
    if reschedule_form is None and can_reschedule:
        reschedule_form = WindowForm(
            initial={
                "window_start": None if change.start_when_approved else change.window_start,
                "window_end": change.window_end,
                "start_when_approved": change.start_when_approved,
            }
        )
    can_decide = change.can_decide(user)
    decide_note = ""
    if change.status == ChangeStatus.PENDING_APPROVAL and not can_decide:
        account = change.tunnel.connection.account
        if user == change.requester:
            decide_note = _("You asked for this change, so others decide on it.")
        elif user.has_perm("maintenance.approve_change") and not account.may_decide(user):
            decide_note = account.refusal()
        elif user.has_perm("maintenance.approve_change"):
            decide_note = _("You have given your decision on this request.")
    # A form that is not shown any more (the request moved on meanwhile) still has its say.
    forms_shown = {
        "decision": can_decide,
        "cancel": change.can_cancel(user),
        "reschedule": can_reschedule,
    }
    for name, form in (
        ("decision", decision_form),
        ("cancel", cancel_form),
        ("reschedule", reschedule_form),
    ):
        if form is not None and form.is_bound and form.errors and not forms_shown[name]:
            page_error = page_error or " ".join(
                str(message) for errors in form.errors.values() for message in errors
            )
    context.update(
        {
            "approvals": approvals,
            "can_decide": can_decide,
            "can_cancel": forms_shown["cancel"],
            "can_reschedule": can_reschedule,
            "decide_note": decide_note,
            "deciders": change.tunnel.connection.account.approvers_text()
            if change.status == ChangeStatus.PENDING_APPROVAL
            else "",
            "decision_form": decision_form or DecisionForm(),
            "cancel_form": cancel_form or CancelForm(),
            "reschedule_form": reschedule_form,
            "page_error": page_error,
            "zone_name": timezone.get_current_timezone_name(),
            "silent_worker": (
                liveness.silent_worker() if change.status in ChangeStatus.SCHEDULED else None
            ),
        }
    )
    return render(request, "maintenance/request_detail.html", context, status=status)


@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One request: what, where, when, who decided, what ran, and its timeline."""
    return _render_request(request, _get_request_for_user(request, pk))


@login_required
@require_GET
@never_cache
def request_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    """The page's self-refreshing part (status, execution, timeline) as an HTML fragment."""
    change = _get_request_for_user(request, pk)
    return render(request, "maintenance/_request_live.html", _live_context(change, request.user))


@login_required
@require_POST
def request_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve or reject (the button pressed says which), with a comment."""
    change = _get_request_for_user(request, pk)
    form = DecisionForm(request.POST)
    if not request.user.has_perm("maintenance.approve_change"):
        return _render_request(
            request, change, status=403, page_error=_("You may not approve or reject changes.")
        )
    if form.is_valid():
        decide = (
            change.approve if form.cleaned_data["decision"] == Decision.APPROVE else change.reject
        )
        try:
            decided = decide(user=request.user, comment=form.cleaned_data["comment"])
        except PermissionDenied as exc:
            return _render_request(request, change, status=403, page_error=str(exc))
        except ValidationError as exc:
            add_model_errors(form, exc)
        else:
            if form.cleaned_data["decision"] == Decision.REJECT:
                messages.success(request, _("You rejected request #%(pk)s.") % {"pk": change.pk})
            elif decided.status == ChangeStatus.APPROVED:
                messages.success(
                    request,
                    _(
                        "You approved request #%(pk)s. It has all its approvals and runs in "
                        "its window."
                    )
                    % {"pk": change.pk},
                )
            else:
                messages.success(
                    request,
                    _("You approved request #%(pk)s. It still needs more approvals.")
                    % {"pk": change.pk},
                )
            return redirect("maintenance:request", change.pk)
    return _render_request(request, _get_request_for_user(request, pk), decision_form=form)


@login_required
@require_POST
def request_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Withdraw a request that has not started to run (its requester, or an admin)."""
    change = _get_request_for_user(request, pk)
    form = CancelForm(request.POST)
    user = request.user
    if user != change.requester and not user.has_perm("maintenance.manage_changes"):
        return _render_request(
            request,
            change,
            status=403,
            page_error=_("Only the requester or an admin may cancel a request."),
        )
    if form.is_valid():
        try:
            change.cancel(user=user, reason=form.cleaned_data["cancel_reason"])
        except PermissionDenied as exc:
            return _render_request(request, change, status=403, page_error=str(exc))
        except ValidationError as exc:
            add_model_errors(form, exc)
        else:
            messages.success(request, _("Request #%(pk)s cancelled.") % {"pk": change.pk})
            return redirect("maintenance:request", change.pk)
    return _render_request(request, _get_request_for_user(request, pk), cancel_form=form)


@login_required
@require_POST
def request_reschedule(request: HttpRequest, pk: int) -> HttpResponse:
    """Change the window of a request still waiting for approval (its requester only)."""
    change = _get_request_for_user(request, pk)
    if request.user != change.requester:
        return _render_request(
            request, change, status=403, page_error=_("Only the requester may change the window.")
        )
    form = WindowForm(request.POST)
    if form.is_valid():
        try:
            change.reschedule(
                user=request.user,
                window_start=form.cleaned_data["window_start"],
                window_end=form.cleaned_data["window_end"],
            )
        except PermissionDenied as exc:
            return _render_request(request, change, status=403, page_error=str(exc))
        except ValidationError as exc:
            add_model_errors(form, exc)
        else:
            messages.success(
                request,
                _(
                    "Window changed. Approvals given before no longer count: the approvers "
                    "have been asked again."
                ),
            )
            return redirect("maintenance:request", change.pk)
    return _render_request(request, _get_request_for_user(request, pk), reschedule_form=form)


# ---------------------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------------------


def _rows(qs) -> Any:
    return (
        qs.with_approval_counts()
        .with_deadline_flag()
        .select_related("tunnel__connection__account", "requester")
        .order_by("-created_at", "-pk")
    )


def _render_list(request: HttpRequest, qs, **context: Any) -> HttpResponse:
    return render(
        request,
        "maintenance/request_list.html",
        {
            "page_obj": paginate(request, _rows(qs), REQUESTS_PER_PAGE),
            "now": timezone.now(),
            **context,
        },
    )


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    """Every request, filtered by status, account, change and window."""
    require_perm(request, "maintenance.view_changerequest")
    form = RequestFilterForm(request.GET or None)
    return _render_list(
        request,
        form.filter(ChangeRequest.objects.all()),
        form=form,
        title=_("Requests"),
        filtered=bool(request.GET.dict().keys() - {"page"}),
        empty=_("No request matches these filters.")
        if request.GET.dict().keys() - {"page"}
        else _("Nobody has requested a change yet."),
    )


@login_required
def my_approvals(request: HttpRequest) -> HttpResponse:
    """The requests this user can still approve or reject."""
    require_perm(request, "maintenance.view_changerequest")
    is_approver = request.user.has_perm("maintenance.approve_change")
    qs = (
        ChangeRequest.objects.awaiting_decision_of(request.user)
        if is_approver
        else ChangeRequest.objects.none()
    )
    return _render_list(
        request,
        qs,
        title=_("Waiting for my approval"),
        intro=_("Requests waiting for a decision that you may take (your own are not listed).")
        if is_approver
        else _("You are not an approver, so no request waits for your decision."),
        empty=_("Nothing is waiting for you."),
    )


@login_required
def my_requests(request: HttpRequest) -> HttpResponse:
    """The requests this user made."""
    require_perm(request, "maintenance.view_changerequest")
    return _render_list(
        request,
        ChangeRequest.objects.filter(requester=request.user),
        title=_("My requests"),
        empty=_("You have not requested any change yet."),
    )
