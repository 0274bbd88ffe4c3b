"""What the API's modules share: the permission check and page-numbered lists."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.translation import gettext

from ..roles import has_perm


def require(request: HttpRequest, perm: str) -> None:
    """403 unless the token's user holds the permission (the models check again)."""
    if not has_perm(request.user, perm):
        raise PermissionDenied(gettext("Your roles do not allow this."))


def paged(qs: Any, page: int, per_page: int) -> dict[str, Any]:
    """One page of `qs` as the lists answer it; a page past the end is the last one, as
    on the pages (Paginator.get_page)."""
    found = Paginator(qs, per_page).get_page(page)
    return {
        "count": found.paginator.count,
        "page": found.number,
        "pages": found.paginator.num_pages,
        "results": list(found.object_list),
    }
