"""Small helpers the view modules share: permissions, paging, model errors, tunnel numbers."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.forms import Form
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from ..models import Tunnel, ip_order


def require_perm(request: HttpRequest, perm: str) -> None:
    """403 unless the user holds the permission (the model methods check again)."""
    if not request.user.has_perm(perm):
        raise PermissionDenied


def paginate(request: HttpRequest, qs, per_page: int) -> Page:
    # get_page() turns a missing or bad ?page= into the first or last page, never a 404.
    return Paginator(qs, per_page).get_page(request.GET.get("page"))


def add_model_errors(form: Form, exc: ValidationError) -> None:
    """Put the model's ValidationError next to the field it names (else above the form)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            target = field if field in form.fields else None
            for error in errors:
                form.add_error(target, error)
    else:
        form.add_error(None, exc)


def tunnel_number(tunnel: Tunnel, sibling: Tunnel | None) -> int:
    """1 or 2, as the connection page numbers them (by outside IP)."""
    if sibling is None:
        return 1
    return 1 if ip_order(tunnel.outside_ip) <= ip_order(sibling.outside_ip) else 2


# What the before/after snapshot holds (tasks._snapshot), in the order a reader wants it.
SNAPSHOT_ROWS = [
    ("status", gettext_lazy("Tunnel status")),
    ("status_message", gettext_lazy("Status message")),
    ("connection_state", gettext_lazy("Connection state")),
    ("lifecycle_control", gettext_lazy("Lifecycle control")),
    ("pending_maintenance", gettext_lazy("Pending maintenance")),
    ("maintenance_auto_applied_after", gettext_lazy("AWS applies it itself after")),
    ("last_maintenance_applied", gettext_lazy("Last maintenance applied")),
]
IKE_ROWS = [
    ("provisioning_status", gettext_lazy("Provisioning status")),
    ("provisioning_status_reason", gettext_lazy("Provisioning status reason")),
    ("ike_version", gettext_lazy("IKE version")),
    ("phase1_encryption", gettext_lazy("Phase 1 encryption")),
    ("phase1_integrity", gettext_lazy("Phase 1 integrity")),
    ("phase1_dh_group", gettext_lazy("Phase 1 DH group")),
    ("phase2_encryption", gettext_lazy("Phase 2 encryption")),
    ("phase2_integrity", gettext_lazy("Phase 2 integrity")),
    ("phase2_dh_group", gettext_lazy("Phase 2 DH group")),
]
