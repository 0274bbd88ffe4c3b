"""Small helpers the view modules share: permissions, paging, model errors, tunnel numbers."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page, Paginator
from django.forms import Form
from django.http import HttpRequest

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
