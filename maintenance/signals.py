"""Signal receivers, connected when the app is ready."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django_q.signals import post_spawn

from .middleware import start_session_clock
from .models import AwsAccount

log = logging.getLogger(__name__)


@receiver(post_spawn, dispatch_uid="vpnctl-warm-up-worker")
def warm_up_worker(sender: Any, proc_name: str = "", **kwargs: Any) -> None:
    """A django-q2 worker has started: build its AWS clients before a change waits for them.

    Without this, the first change a worker runs pays about a second to import boto3 and
    load EC2's service model (bench/queue_latency.py measures the difference).
    """
    # Imported here, not at the top: only worker processes load boto3 and the task code
    # (this module is loaded by every process, the web server's too).
    from . import aws, tasks  # noqa: F401 - imports the task code itself, too

    for account in AwsAccount.objects.filter(enabled=True):
        for region in account.regions:
            try:
                aws.warm_up(account, region)
            except Exception:  # noqa: BLE001 - a worker must start even if AWS setup fails
                log.warning("could not prepare AWS clients for %s %s", account.name, region)


@receiver(user_logged_in, dispatch_uid="vpnctl-session-clock")
def start_session_limits(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """A sign-in starts both session limits afresh (maintenance.middleware)."""
    if request is not None and hasattr(request, "session"):
        start_session_clock(request.session)
