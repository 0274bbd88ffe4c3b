"""The health checks: ``/healthz/`` for the web server, ``/healthz/worker/`` for the worker.

Both are unauthenticated, cheap (three small queries) and answer JSON::

    {"database": "ok", "worker": {"ok": true, "reason": "...", "heartbeat_age_seconds": 42, ...}}

``/healthz/`` fails (503) only when the database is unreachable: it is what load balancers
and the web container's HEALTHCHECK ask, and a stuck worker is no reason to take every web
server out of rotation (the pages say so in a banner instead). ``/healthz/worker/`` also
fails when the worker has not been heard of for ``VPNCTL_WORKER_STALE_SECONDS``: point a
monitor at it (``manage.py check_worker`` is the same test, for the worker's own container).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from .. import liveness


def _answer(*, worker_must_be_ok: bool) -> JsonResponse:
    try:
        state = liveness.state()
    except Exception:  # noqa: BLE001 - any database failure means "unhealthy"
        return JsonResponse({"database": "unavailable", "worker": None}, status=503)
    status = 503 if worker_must_be_ok and not state.ok else 200
    return JsonResponse({"database": "ok", "worker": state.as_json()}, status=status)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and the web container: the app answers, the DB too."""
    return _answer(worker_must_be_ok=False)


@never_cache
def healthz_worker(request: HttpRequest) -> JsonResponse:
    """For monitors: as ``healthz``, and 503 when the worker has not been heard of."""
    return _answer(worker_must_be_ok=True)
