"""Small helpers every view module uses."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import HttpRequest


def require_perm(request: HttpRequest, perm: str) -> None:
    """403 unless the user holds the permission (the model methods check again)."""
    if not request.user.has_perm(perm):
        raise PermissionDenied


def paginate(request: HttpRequest, qs, per_page: int) -> Page:
    # get_page() turns a missing or bad ?page= into the first or last page, never a 404.
    return Paginator(qs, per_page).get_page(request.GET.get("page"))
