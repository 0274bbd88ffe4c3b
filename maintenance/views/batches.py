"""Lifecycle control for many tunnels at once: ask in one form, approve once, watch it run.

A batch is asked for from a connection (its tunnels lacking lifecycle control) or from
the connection list's filters (every listed connection's tunnels lacking it). The rules
live in ChangeBatch and ChangeRequest; these views parse, show and redirect.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ..choices import ChangeKind, ChangeStatus
from ..forms.batches import BatchDecisionForm, BatchRequestForm
from ..forms.inventory import ConnectionFilterForm
from ..models import Approval, ChangeBatch, ChangeRequest, Tunnel, VpnConnection, ip_order
from .helpers import add_model_errors, require_perm

BATCHES_PER_PAGE = 25
FAILED = (ChangeStatus.FAILED, ChangeStatus.BLOCKED, ChangeStatus.TIMED_OUT)


# ---------------------------------------------------------------------------------------
# Asking
# ---------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One tunnel lacking lifecycle control, as a line of the batch form."""

    tunnel: Tunnel
    number: int  # 1 or 2, as the connection page numbers them
    open_request: ChangeRequest | None
    checked: bool


def _scope(request: HttpRequest) -> tuple[QuerySet[VpnConnection], VpnConnection | None]:
    """The connections the form is about: one (?connection=) or the list's filters."""
    connection_pk = request.GET.get("connection", "")
    if connection_pk:
        connection = get_object_or_404(
            VpnConnection.objects.select_related("account"),
            pk=int(connection_pk)
            if connection_pk.isascii() and connection_pk.isdigit() and len(connection_pk) < 19
            else 0,
        )
        return VpnConnection.objects.filter(pk=connection.pk), connection
    form = ConnectionFilterForm(request.GET)
    form.fields["region"].choices = [("", ""), *((r, r) for r in request.GET.getlist("region"))]
    return form.filter(VpnConnection.objects.all()), None


def _candidates(connections: QuerySet[VpnConnection]) -> QuerySet[Tunnel]:
    return Tunnel.objects.filter(
        connection__in=connections.values("pk"),
        connection__gone_at__isnull=True,
        lifecycle_control=False,
    ).select_related("connection__account")


@login_required
def batch_new(request: HttpRequest) -> HttpResponse:
    """One form for every tunnel lacking lifecycle control in the chosen connections."""
    require_perm(request, "maintenance.request_change")
    connections, connection = _scope(request)
    tunnels_qs = _candidates(connections)
    form = BatchRequestForm(request.POST or None, tunnels=tunnels_qs)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            batch = ChangeBatch.submit(
                user=request.user,
                tunnels=list(data["tunnels"]),
                reason=data["reason"],
                window_start=data["window_start"],
                window_end=data["window_end"],
                start_when_approved=bool(data["start_when_approved"]),
                skip_tunnel_replacement=form.skip,
            )
        except ValidationError as exc:
            add_model_errors(form, exc)
        else:
            messages.success(
                request,
                _(
                    "Batch #%(pk)s submitted: %(n)d requests. The approvers decide on it "
                    "once, for all of them."
                )
                % {"pk": batch.pk, "n": len(data["tunnels"])},
            )
            return redirect("maintenance:batch", batch.pk)

    tunnels = list(tunnels_qs)
    # Tunnel 1 or 2 needs the sibling's address: one query for all of them.
    ips: dict[int, list[str]] = {}
    for connection_id, ip in Tunnel.objects.filter(
        connection_id__in={t.connection_id for t in tunnels}
    ).values_list("connection_id", "outside_ip"):
        ips.setdefault(connection_id, []).append(ip)
    open_requests = {
        r.tunnel_id: r
        for r in ChangeRequest.objects.open().filter(tunnel__in=[t.pk for t in tunnels])
    }
    chosen = form.chosen_pks()
    candidates = []
    for tunnel in sorted(
        tunnels,
        key=lambda t: (t.connection.vpn_connection_id, t.connection_id, ip_order(t.outside_ip)),
    ):
        siblings = sorted(ips.get(tunnel.connection_id, []), key=lambda ip: ip_order(ip))
        open_request = open_requests.get(tunnel.pk)
        candidates.append(
            Candidate(
                tunnel=tunnel,
                number=siblings.index(tunnel.outside_ip) + 1
                if tunnel.outside_ip in siblings
                else 1,
                open_request=open_request,
                checked=str(tunnel.pk) in chosen if form.is_bound else open_request is None,
            )
        )
    connection_count = len({c.tunnel.connection_id for c in candidates})
    both = Counter(c.tunnel.connection_id for c in candidates)
    query = request.GET.urlencode()
    return render(
        request,
        "maintenance/batch_form.html",
        {
            "form": form,
            "connection": connection,
            "candidates": candidates,
            "connection_count": connection_count,
            "sequenced": sum(1 for n in both.values() if n > 1),
            "action": reverse("maintenance:batch_new") + (f"?{query}" if query else ""),
            "back": reverse("maintenance:connection", args=[connection.pk])
            if connection
            else reverse("maintenance:connections") + (f"?{query}" if query else ""),
            "zone_name": timezone.get_current_timezone_name(),
            "now": timezone.now(),
            "call_apply": ChangeRequest(kind=ChangeKind.ENABLE_LIFECYCLE).aws_call_name,
            "call_skip": ChangeRequest(
                kind=ChangeKind.ENABLE_LIFECYCLE, skip_tunnel_replacement=True
            ).aws_call_name,
        },
    )


# ---------------------------------------------------------------------------------------
# Seeing and deciding
# ---------------------------------------------------------------------------------------


def with_status_counts(qs: QuerySet[ChangeBatch]) -> QuerySet[ChangeBatch]:
    return qs.annotate(
        n_total=Count("requests"),
        n_waiting=Count("requests", filter=Q(requests__status=ChangeStatus.PENDING_APPROVAL)),
        n_open=Count("requests", filter=Q(requests__status__in=ChangeStatus.OPEN)),
        n_succeeded=Count("requests", filter=Q(requests__status=ChangeStatus.SUCCEEDED)),
        n_failed=Count("requests", filter=Q(requests__status__in=FAILED)),
    )


def _get_batch_for_user(request: HttpRequest, pk: int) -> ChangeBatch:
    """The batch with its requests and their approvals, 404 if none, 403 if not allowed."""
    require_perm(request, "maintenance.view_changerequest")
    return get_object_or_404(
        ChangeBatch.objects.select_related("requester").prefetch_related(
            Prefetch(
                "requests",
                queryset=ChangeRequest.objects.select_related("tunnel__connection__account"),
            ),
            Prefetch(
                "requests__approvals",
                queryset=Approval.objects.select_related("approver").order_by("at"),
            ),
        ),
        pk=pk,
    )


def _render_batch(
    request: HttpRequest, batch: ChangeBatch, *, form: BatchDecisionForm | None = None, status=200
) -> HttpResponse:
    requests = batch.ordered_requests()
    counts = Counter(r.status for r in requests)
    first = requests[0] if requests else None
    return render(
        request,
        "maintenance/batch_detail.html",
        {
            "batch": batch,
            "requests": requests,
            "first": first,
            "summary": [(ChangeStatus(s).label, s, n) for s, n in sorted(counts.items(), key=str)],
            "connection_count": len({r.tunnel.connection_id for r in requests}),
            "can_decide": batch.can_decide(request.user),
            "decision_form": form or BatchDecisionForm(),
            "approvers": sorted(
                {a.approver.get_username() for r in requests for a in r.valid_approvals()}
            ),
        },
        status=status,
    )


@login_required
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A batch: its reason, window, every request with its status, and the decision."""
    return _render_batch(request, _get_batch_for_user(request, pk))


@login_required
@require_POST
def batch_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve or reject the whole batch (the button pressed says which)."""
    batch = _get_batch_for_user(request, pk)
    require_perm(request, "maintenance.approve_change")
    form = BatchDecisionForm(request.POST)
    verb = request.POST.get("decision")
    if form.is_valid() and verb in ("approve", "reject"):
        decide = batch.approve if verb == "approve" else batch.reject
        try:
            decided = decide(user=request.user, comment=form.cleaned_data["comment"])
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
            return _render_batch(request, _get_batch_for_user(request, pk), form=form, status=403)
        except ValidationError as exc:
            add_model_errors(form, exc)
        else:
            if verb == "reject":
                text = _("You rejected batch #%(pk)s: its %(n)d requests will not run.")
            else:
                text = _("You approved batch #%(pk)s (%(n)d requests).")
            messages.success(request, text % {"pk": batch.pk, "n": len(decided)})
            return redirect("maintenance:batch", batch.pk)
    elif form.is_valid():
        form.add_error(None, _("Press Approve or Reject."))
    return _render_batch(request, _get_batch_for_user(request, pk), form=form, status=400)


@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    """Every batch, newest first, with how far its requests have got."""
    require_perm(request, "maintenance.view_changerequest")
    qs = with_status_counts(ChangeBatch.objects.select_related("requester")).order_by(
        "-created_at", "-pk"
    )
    page = Paginator(qs, BATCHES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "maintenance/batch_list.html", {"page_obj": page})
