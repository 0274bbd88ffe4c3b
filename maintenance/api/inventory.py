"""The inventory through the API: connections, tunnels, sync runs (and a sync, for admins).

The connection filters are the connection list's own form, so that a filter is spelled
and means the same on the page and here; the tunnel list is the tunnels of the
connections those filters find.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext
from ninja import Query, Router, Schema, Status

from .. import enqueue
from ..choices import ConnectionState
from ..forms.inventory import ConnectionFilterForm
from ..models import SyncResult, SyncRun, Tunnel, VpnConnection, ip_order
from .common import paged, require
from .errors import COMMON_ERRORS, check
from .schemas import (
    ConnectionOut,
    ConnectionPage,
    Id,
    SyncQueuedOut,
    SyncRunDetailOut,
    SyncRunPage,
    TunnelOut,
    TunnelPage,
)

router = Router(tags=["inventory"])

CONNECTIONS_PER_PAGE = 50
TUNNELS_PER_PAGE = 100
SYNC_RUNS_PER_PAGE = 20


class ConnectionFilters(Schema):
    """The connection list's filters (forms.inventory.ConnectionFilterForm)."""

    q: str | None = None
    account: Id | None = None
    region: str | None = None
    state: ConnectionState | None = None
    pending: bool | None = None
    lifecycle_off: bool = False
    tunnel_down: bool = False
    deadline_within: int | None = None
    no_approved_request: bool = False
    both_down: bool = False
    half_lifecycle: bool = False
    aws_applied: bool = False
    include_gone: bool = False
    page: Id = 1


def _filtered(filters: ConnectionFilters) -> Any:
    """The connections the filters find, or 400 naming a filter that does not parse."""
    data = filters.model_dump(mode="json", exclude_none=True, exclude={"page"})
    if "pending" in data:
        data["pending"] = "yes" if data["pending"] else "no"
    data = {name: value for name, value in data.items() if value is not False}
    regions = VpnConnection.objects.regions()
    form = ConnectionFilterForm(data, regions=regions)
    check(form)
    return form.filter(VpnConnection.objects.all())


def _with_tunnels(connections: Any) -> Any:
    # Each prefetched tunnel knows its connection already: no JOIN needed for it.
    return connections.select_related("account").prefetch_related("tunnels")


def _ordered(connections: list[VpnConnection]) -> list[VpnConnection]:
    # "Tunnel 1, Tunnel 2" are the tunnels by outside IP, as on the connection page.
    for connection in connections:
        connection.ordered_tunnels = sorted(
            connection.tunnels.all(), key=lambda tunnel: ip_order(tunnel.outside_ip)
        )
    return connections


@router.get("/connections", response={200: ConnectionPage, **COMMON_ERRORS})
def list_connections(request: HttpRequest, filters: Query[ConnectionFilters]) -> Any:
    """Connections, 50 a page, filtered as the connection list filters them."""
    require(request, "maintenance.view_vpnconnection")
    qs = _with_tunnels(_filtered(filters)).order_by("account__name", "region", "vpn_connection_id")
    found = paged(qs, filters.page, CONNECTIONS_PER_PAGE)
    _ordered(found["results"])
    return found


@router.get("/connections/{pk}", response={200: ConnectionOut, **COMMON_ERRORS})
def get_connection(request: HttpRequest, pk: Id) -> Any:
    """One connection with its two tunnels."""
    require(request, "maintenance.view_vpnconnection")
    return _ordered([get_object_or_404(_with_tunnels(VpnConnection.objects.all()), pk=pk)])[0]


@router.get("/tunnels", response={200: TunnelPage, **COMMON_ERRORS})
def list_tunnels(request: HttpRequest, filters: Query[ConnectionFilters]) -> Any:
    """The tunnels of the connections the connection filters find, 100 a page."""
    require(request, "maintenance.view_vpnconnection")
    tunnels = (
        Tunnel.objects.filter(connection__in=_filtered(filters))
        .select_related("connection")
        .order_by("connection__account__name", "connection__vpn_connection_id", "outside_ip")
    )
    return paged(tunnels, filters.page, TUNNELS_PER_PAGE)


@router.get("/tunnels/{pk}", response={200: TunnelOut, **COMMON_ERRORS})
def get_tunnel(request: HttpRequest, pk: Id) -> Any:
    """One tunnel, as vpnctl last read it from AWS."""
    require(request, "maintenance.view_vpnconnection")
    return get_object_or_404(Tunnel.objects.select_related("connection"), pk=pk)


@router.get("/sync-runs", response={200: SyncRunPage, **COMMON_ERRORS})
def list_sync_runs(request: HttpRequest, page: Id = 1) -> Any:
    """Sync runs, newest first, 20 a page."""
    require(request, "maintenance.view_syncrun")
    runs = SyncRun.objects.select_related("requested_by").order_by("-started_at", "-pk")
    return paged(runs, page, SYNC_RUNS_PER_PAGE)


@router.get("/sync-runs/{pk}", response={200: SyncRunDetailOut, **COMMON_ERRORS})
def get_sync_run(request: HttpRequest, pk: Id) -> Any:
    """One sync run, with what it found in every account and region it read."""
    require(request, "maintenance.view_syncrun")
    run = get_object_or_404(SyncRun.objects.select_related("requested_by"), pk=pk)
    run.ordered_results = list(
        SyncResult.objects.filter(run=run)
        .select_related("account")
        .order_by("account__name", "region")
    )
    return run


@router.post("/sync-runs", response={202: SyncQueuedOut, **COMMON_ERRORS})
def start_sync(request: HttpRequest) -> Any:
    """Queue a sync of every account and region (admins); the worker runs it."""
    require(request, "maintenance.manage_changes")
    task = enqueue.manual_sync(request.user)
    return Status(
        202,
        {
            "detail": gettext("Sync queued. It appears here when the worker has started it."),
            "task": task,
        },
    )
