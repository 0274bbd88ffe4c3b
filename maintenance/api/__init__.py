"""vpnctl's JSON API, at /api/v1/, with its OpenAPI 3 schema (/api/v1/openapi.json) and
a docs page (/api/v1/docs) for people signed in.

Calls authenticate with a personal API token (auth.py; made on the Preferences page)
and act as its user, through the same forms and model transitions as the pages. One
shape for every error (errors.py). By topic: inventory (connections, tunnels, sync
runs), changes (requests, batches, executions), audit (events and their export), health
(the AWS Health intake, for EventBridge).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI

from . import audit, changes, health, inventory
from .auth import bearer, signed_in
from .errors import ApiError, error_response, install_handlers

api = NinjaAPI(
    title="vpnctl",
    version="1",
    description=(
        "Site-to-Site VPN tunnel maintenance: the inventory, change requests and their "
        "approvals, executions, the audit log. Authenticate with a personal API token "
        "(Preferences): `Authorization: Bearer <token>`."
    ),
    auth=bearer,
    urls_namespace="api",
    docs_decorator=signed_in,
)
install_handlers(api)
api.add_router("/", inventory.router)
api.add_router("/", changes.router)
api.add_router("/", audit.router)
api.add_router("/", health.router)


@csrf_exempt  # as the API's own operations: no cookie, no CSRF
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other path under /api/v1/: 404 in the API's shape, not the site's HTML page."""
    return error_response(ApiError(404, gettext("There is no such path in the API.")))


__all__ = ["api", "not_found"]
