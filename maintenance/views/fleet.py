"""Fleet automation: the plan of the fleet's maintenance, the maintenance policies with
their standard changes, and the AWS Health events received."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from ..choices import ChangeKind
from ..forms.inventory import ConnectionFilterForm
from ..models import (
    ChangeRequest,
    HealthEvent,
    MaintenancePolicy,
    PolicyApproval,
    VpnConnection,
)
from ..models.plan import PlanProblem, fleet_plan, pending_tunnels, plan_counts
from .helpers import paginate, require_perm

ROWS_PER_PAGE = 100


class PlanFilterForm(ConnectionFilterForm):
    """The connection list's filters, and one for the plan's problems."""

    problem = forms.ChoiceField(
        label=gettext_lazy("Problem"),
        required=False,
        choices=[("", gettext_lazy("Any")), *PlanProblem.choices],
    )


@login_required
def plan(request: HttpRequest) -> HttpResponse:
    """Every pending maintenance of the fleet, what it is planned into, conflicts first."""
    require_perm(request, "maintenance.view_vpnconnection")
    regions = VpnConnection.objects.regions()
    form = PlanFilterForm(request.GET or None, regions=regions)
    connections = form.filter(VpnConnection.objects.all())
    tunnels = pending_tunnels().filter(connection__in=connections.values("pk"))
    rows = fleet_plan(tunnels, timezone.now())
    counts = plan_counts(rows)
    problem = form.cleaned_data.get("problem") if form.is_bound and form.is_valid() else ""
    if problem:
        rows = [r for r in rows if problem in r.problems]
    page = paginate(request, rows, ROWS_PER_PAGE)
    return render(
        request,
        "maintenance/plan.html",
        {
            "form": form,
            "page_obj": page,
            "total": len(rows),
            "counts": [(p, p.label, counts.get(p, 0)) for p in PlanProblem],
            "filtered": bool(request.GET.dict().keys() - {"page"}),
        },
    )


def _policy(pk: int) -> MaintenancePolicy:
    return get_object_or_404(
        MaintenancePolicy.objects.prefetch_related(
            "accounts",
            "approver_groups",
            "approver_users",
            Prefetch("approvals", queryset=PolicyApproval.objects.select_related("approver")),
        ),
        pk=pk,
    )


@login_required
def policy_list(request: HttpRequest) -> HttpResponse:
    require_perm(request, "maintenance.view_maintenancepolicy")
    now = timezone.now()
    policies = list(
        MaintenancePolicy.objects.prefetch_related("accounts", "approvals").order_by("name")
    )
    rows = [(p, p.is_standard_at(now)) for p in policies]
    return render(request, "maintenance/policy_list.html", {"rows": rows})


@login_required
def policy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require_perm(request, "maintenance.view_maintenancepolicy")
    policy = _policy(pk)
    now = timezone.now()
    counting = {a.pk for a in policy.counting_approvals()}
    drafts = (
        ChangeRequest.objects.filter(policy=policy)
        .select_related("tunnel__connection__account")
        .order_by("-created_at")[:50]
    )
    return render(
        request,
        "maintenance/policy_detail.html",
        {
            "policy": policy,
            "standard": policy.is_standard_at(now),
            "approvals": [(a, a.pk in counting) for a in policy.approvals.all()],
            "approvals_needed": policy.approvals_needed(),
            "counting": len(counting),
            "drafts": drafts,
            "kind_labels": [ChangeKind(k).label for k in policy.kinds if k in ChangeKind.values],
            "may_approve": policy.may_approve(request.user),
            "may_suspend": policy.may_suspend(request.user),
        },
    )


@login_required
@require_POST
def policy_approve(request: HttpRequest, pk: int) -> HttpResponse:
    policy = _policy(pk)
    try:
        policy.approve_standard(
            user=request.user, comment=request.POST.get("comment", ""), now=timezone.now()
        )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, _("You approved this policy as a standard change."))
    return redirect("maintenance:policy", pk=policy.pk)


@login_required
@require_POST
def policy_suspend(request: HttpRequest, pk: int) -> HttpResponse:
    policy = _policy(pk)
    voided = policy.suspend(user=request.user, now=timezone.now())
    messages.success(
        request,
        _("The standard change is suspended; %(n)d approved draft(s) wait for approval again.")
        % {"n": voided},
    )
    return redirect("maintenance:policy", pk=policy.pk)


HEALTH_EVENTS_PER_PAGE = 50


@login_required
def health_events(request: HttpRequest) -> HttpResponse:
    """Every AWS Health event received, newest first, with the connections it names."""
    require_perm(request, "maintenance.view_healthevent")
    events = HealthEvent.objects.select_related("account").prefetch_related(
        Prefetch("connections", queryset=VpnConnection.objects.only("pk", "vpn_connection_id"))
    )
    page = paginate(request, events, HEALTH_EVENTS_PER_PAGE)
    return render(request, "maintenance/health_events.html", {"page_obj": page})
