"""``manage.py check_worker``: exit 1 when the worker has not been heard of, for probes.

The worker container's HEALTHCHECK (Dockerfile), a Kubernetes liveness probe or a systemd
timer run it: one line on stdout or stderr, exit 0 when the last sweeper run is at most
``VPNCTL_WORKER_STALE_SECONDS`` old, 1 otherwise or when the database cannot be read.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from maintenance import liveness


class Command(BaseCommand):
    help = (
        "Exit 1 when no sweeper run started for VPNCTL_WORKER_STALE_SECONDS "
        "(the worker is stopped or stuck); one line says why. For health checks."
    )

    def handle(self, *args, **options) -> None:
        try:
            state = liveness.state()
        except Exception as exc:  # noqa: BLE001 - whatever stops the read means "unknown"
            raise CommandError(f"worker unknown: the database is unavailable ({exc})") from exc
        if not state.ok:
            raise CommandError(f"worker NOT heard of: {state.reason}")
        self.stdout.write(f"worker ok: {state.reason}")
