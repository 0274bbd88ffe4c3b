"""vpnctl's pages: function views, login required, POST for every change."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import enqueue
from ..forms.accounts import PreferencesForm
from ..forms.inventory import ConnectionFilterForm
from ..models import SyncResult, SyncRun, Tunnel, UserProfile, VpnConnection, ip_order
from . import tokens
from .helpers import paginate, require_perm

CONNECTIONS_PER_PAGE = 50
SYNC_RUNS_PER_PAGE = 20


def _ordered_tunnels(connection: VpnConnection) -> list[Tunnel]:
    """The connection's prefetched tunnels by outside IP: that order is "Tunnel 1, Tunnel 2"."""
    return sorted(connection.tunnels.all(), key=lambda tunnel: ip_order(tunnel.outside_ip))


# ---------------------------------------------------------------------------------------
# Inventory: connections, tunnels, sync runs, preferences
# ---------------------------------------------------------------------------------------


@dataclass
class ConnectionRow:
    """What one line of the connection list shows."""

    connection: VpnConnection
    tunnels: list[Tunnel]
    pending: list[Tunnel]
    nearest_deadline: datetime | None


@login_required
def connection_list(request: HttpRequest) -> HttpResponse:
    """Every connection, filtered and searched, 50 a page, in a constant number of queries."""
    require_perm(request, "maintenance.view_vpnconnection")
    regions = VpnConnection.objects.regions()
    form = ConnectionFilterForm(request.GET or None, regions=regions)
    qs = (
        VpnConnection.objects.select_related("account")
        .prefetch_related(Prefetch("tunnels", queryset=Tunnel.objects.order_by("outside_ip")))
        .order_by("account__name", "region", "vpn_connection_id")
    )
    qs = form.filter(qs)
    page = paginate(request, qs, CONNECTIONS_PER_PAGE)
    rows = []
    for connection in page.object_list:
        tunnels = _ordered_tunnels(connection)
        pending = [t for t in tunnels if t.has_pending_maintenance]
        deadlines = [t.maintenance_auto_applied_after for t in pending]
        rows.append(
            ConnectionRow(
                connection=connection,
                tunnels=tunnels,
                pending=pending,
                nearest_deadline=min((d for d in deadlines if d), default=None),
            )
        )
    return render(
        request,
        "maintenance/connection_list.html",
        {
            "form": form,
            "page_obj": page,
            "rows": rows,
            "filtered": bool(request.GET.dict().keys() - {"page"}),
        },
    )


def _get_connection_for_user(request: HttpRequest, pk: int) -> VpnConnection:
    """The connection, 404 if there is none, 403 if the user may not see the inventory."""
    require_perm(request, "maintenance.view_vpnconnection")
    return get_object_or_404(
        VpnConnection.objects.select_related("account").prefetch_related("tunnels"), pk=pk
    )


@login_required
def connection_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One connection and its two tunnels side by side."""
    connection = _get_connection_for_user(request, pk)
    tunnels = _ordered_tunnels(connection)
    with_control = [t for t in tunnels if t.lifecycle_control]
    last_confirmed = SyncResult.clean_read_times(connection.account_id, connection.region).first()
    return render(
        request,
        "maintenance/connection_detail.html",
        {
            "connection": connection,
            "tunnels": tunnels,
            "last_confirmed": last_confirmed,
            # Exactly one of the two has it: the other can still be replaced at any time.
            "half_lifecycle": len(tunnels) > 1 and 0 < len(with_control) < len(tunnels),
            "no_lifecycle": bool(tunnels) and not with_control,
        },
    )


# A scope "to look at": AWS could not be read there, or answered with errors.
TROUBLED = Q(failed=True) | ~Q(errors=[])
SYNC_TOTALS = ("connections", "tunnels", "created", "changed", "gone", "api_calls")


@login_required
def sync_runs(request: HttpRequest) -> HttpResponse:
    """The sync runs, newest first: each one's totals, and the accounts and regions in trouble.

    A run reads every account and region, hundreds in a big estate; the page lists only
    those that failed or had errors, and each run's own page lists them all.
    """
    require_perm(request, "maintenance.view_syncrun")
    runs = SyncRun.objects.select_related("requested_by").order_by("-started_at", "-pk")
    page = paginate(request, runs, SYNC_RUNS_PER_PAGE)
    # The totals of this page's runs only, in one grouped query (summed over every run
    # before paging, it read each run's results: 0.23 s at 5,000 connections).
    totals = {
        row.pop("run"): row
        for row in SyncResult.objects.filter(run__in=page.object_list)
        .values("run")
        .annotate(
            scopes=Count("pk"),
            **{name: Sum(name) for name in SYNC_TOTALS},
        )
        .order_by()
    }
    troubled = defaultdict(list)
    for result in (
        SyncResult.objects.filter(TROUBLED, run__in=page.object_list)
        .select_related("account")
        .order_by("account__name", "region")
    ):
        troubled[result.run_id].append(result)
    for run in page.object_list:
        run.totals = totals.get(run.pk, {"scopes": 0})
        run.troubled_results = troubled[run.pk]
    return render(
        request,
        "maintenance/syncrun_list.html",
        {"page_obj": page, "can_sync": request.user.has_perm("maintenance.manage_changes")},
    )


@login_required
def sync_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One sync run: what it found in every account and region it read."""
    require_perm(request, "maintenance.view_syncrun")
    run = get_object_or_404(SyncRun.objects.select_related("requested_by"), pk=pk)
    results = SyncResult.objects.filter(run=run).select_related("account")
    return render(
        request,
        "maintenance/syncrun_detail.html",
        {"run": run, "results": list(results.order_by("account__name", "region"))},
    )


@login_required
@require_POST
def sync_now(request: HttpRequest) -> HttpResponse:
    """Queue a sync of every account and region; the worker runs it, never this request."""
    require_perm(request, "maintenance.manage_changes")
    enqueue.manual_sync(request.user)
    messages.success(request, _("Sync queued. It appears here when the worker has started it."))
    return redirect("maintenance:sync_runs")


@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    """The user's time zone, stored in their profile (created on the first save)."""
    profile = UserProfile.objects.filter(user=request.user).first() or UserProfile(
        user=request.user
    )
    form = PreferencesForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Preferences saved."))
        return redirect("maintenance:preferences")
    return render(
        request,
        "maintenance/preferences.html",
        {"form": form, "now": timezone.now(), **tokens.token_context(request)},
    )
