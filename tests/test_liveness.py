"""The worker's heartbeat: the sweeper writes it, ``check_worker`` and the pages read it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.urls import reverse
from django.utils import timezone

from maintenance import liveness, tasks
from maintenance.choices import ChangeKind, ChangeStatus
from maintenance.models import ChangeRequest, WorkerHeartbeat
from tests.factories import make_connection, pending

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BANNER = "Approved changes will not run until the worker is back."


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def text(response) -> str:
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def check_worker() -> str:
    out = StringIO()
    call_command("check_worker", stdout=out)
    return out.getvalue().strip()


# -- the heartbeat -----------------------------------------------------------------------


def test_every_sweeper_run_is_a_heartbeat(db, frozen):
    assert liveness.state().heartbeat_at is None

    tasks.sweep()
    first = liveness.state()
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        tasks.sweep()
        second = liveness.state()

    assert first.heartbeat_at == NOW and first.ok
    assert second.heartbeat_at == NOW + timedelta(minutes=1)
    assert WorkerHeartbeat.objects.count() == 1


def test_there_is_only_ever_one_heartbeat_row(db):
    liveness.beat(NOW)
    with pytest.raises(IntegrityError):
        WorkerHeartbeat.objects.create(id=2, beat_at=NOW)


@pytest.mark.parametrize(("age", "ok"), [(0, True), (180, True), (181, False)])
def test_the_worker_is_not_heard_of_past_the_setting(db, frozen, settings, age, ok):
    settings.WORKER_STALE_SECONDS = 180
    liveness.beat(NOW - timedelta(seconds=age))

    state = liveness.state()

    assert state.heartbeat_age == age
    assert state.ok is ok
    assert liveness.silent_worker() == (None if ok else liveness.state(queue=False))


def test_the_banner_check_costs_one_query(db, django_assert_num_queries):
    with django_assert_num_queries(1):
        liveness.silent_worker()


# -- manage.py check_worker ---------------------------------------------------------------


def test_check_worker_passes_on_a_fresh_heartbeat(db, frozen):
    liveness.beat(NOW - timedelta(seconds=30))

    assert check_worker() == "worker ok: the sweeper last ran 30 s ago; no task waiting"


def test_check_worker_fails_on_a_stale_or_missing_heartbeat(db, frozen, settings):
    settings.WORKER_STALE_SECONDS = 60
    with pytest.raises(CommandError, match="no sweeper run recorded yet") as missing:
        check_worker()

    liveness.beat(NOW - timedelta(seconds=61))
    with pytest.raises(CommandError, match=r"NOT heard of: no sweeper run for 61 s") as stale:
        check_worker()

    # manage.py turns a CommandError into this exit code, its message on stderr.
    assert missing.value.returncode == stale.value.returncode == 1


def test_check_worker_fails_without_a_database(db, monkeypatch):
    def broken(*args, **kwargs):
        raise connection.Database.OperationalError("server closed the connection")

    with monkeypatch.context() as m:
        m.setattr(connection, "cursor", broken)
        with pytest.raises(CommandError, match="database is unavailable"):
            check_worker()


# -- the banner ---------------------------------------------------------------------------


@pytest.fixture
def tunnel(db):
    connection = make_connection(tunnels=[pending(days=10), {}])
    return connection.tunnels.order_by("outside_ip")[0]


def submit(requester, tunnel) -> ChangeRequest:
    start = timezone.now() + timedelta(hours=2)
    return ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="quarterly patch",
        window_start=start,
        window_end=start + timedelta(hours=1),
    )


def test_the_dashboard_shows_the_banner_while_the_worker_is_not_heard_of(
    client, approver, db, settings
):
    settings.WORKER_STALE_SECONDS = 180
    client.force_login(approver)
    home = reverse("maintenance:home")

    never = text(client.get(home))
    liveness.beat(timezone.now() - timedelta(seconds=200))
    stale = text(client.get(home))
    liveness.beat(timezone.now())
    fresh = text(client.get(home))

    assert "The worker has not been heard of yet." in never and BANNER in never
    assert "The worker has not been heard of since" in stale and BANNER in stale
    assert BANNER not in fresh


def test_the_banner_is_an_alert(client, approver, db):
    client.force_login(approver)
    html = client.get(reverse("maintenance:home")).content.decode()
    assert re.search(r'<div class="callout callout-bad worker-banner" role="alert">', html)


def test_request_pages_show_the_banner_only_for_changes_that_wait_for_the_worker(
    client, requester, approver, tunnel
):
    change = submit(requester, tunnel)
    client.force_login(approver)
    page = reverse("maintenance:request", args=[change.pk])

    waiting_for_approval = text(client.get(page))
    change.approve(user=approver)
    approved = text(client.get(page))
    ChangeRequest.objects.filter(pk=change.pk).update(status=ChangeStatus.RUNNING)
    running = text(client.get(page))
    ChangeRequest.objects.filter(pk=change.pk).update(status=ChangeStatus.CANCELLED)
    cancelled = text(client.get(page))
    ChangeRequest.objects.filter(pk=change.pk).update(status=ChangeStatus.APPROVED)
    liveness.beat(timezone.now())
    approved_worker_heard_of = text(client.get(page))

    assert BANNER not in waiting_for_approval
    assert BANNER in approved
    assert BANNER in running
    assert BANNER not in cancelled
    assert BANNER not in approved_worker_heard_of


def test_the_banner_speaks_japanese(client, approver, db):
    client.force_login(approver)
    page = text(client.get(reverse("maintenance:home"), HTTP_ACCEPT_LANGUAGE="ja"))
    assert BANNER not in page
    assert "ワーカーが復旧するまで、承認済みの変更は実行されません。" in page
