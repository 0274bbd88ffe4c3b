"""The health checks answer without a login, in JSON: the database, and the worker's state.

``/healthz/`` (load balancers, the web container) fails only with the database;
``/healthz/worker/`` (monitors) also fails when the worker has not been heard of.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django_q.models import OrmQ

from maintenance import liveness

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def test_healthz_is_ok_without_login_and_says_the_worker_was_never_heard_of(client, db):
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["database"] == "ok"
    assert body["worker"]["ok"] is False
    assert body["worker"]["heartbeat_at"] is None
    assert "no sweeper run recorded yet" in body["worker"]["reason"]


def test_healthz_stays_200_when_the_worker_is_stale_but_the_worker_check_fails(
    client, db, frozen, settings
):
    settings.WORKER_STALE_SECONDS = 180
    liveness.beat(NOW - timedelta(seconds=241))

    web = client.get("/healthz/")
    worker = client.get("/healthz/worker/")

    assert web.status_code == 200  # a stuck worker is no reason to pull the web servers
    assert worker.status_code == 503
    for body in (web.json(), worker.json()):
        assert body["database"] == "ok"
        assert body["worker"]["ok"] is False
        assert body["worker"]["heartbeat_age_seconds"] == 241
        assert body["worker"]["stale_after_seconds"] == 180
        assert body["worker"]["reason"].startswith("no sweeper run for 241 s (more than 180 s)")


def test_the_worker_check_passes_on_a_fresh_heartbeat(client, db, frozen):
    liveness.beat(NOW - timedelta(seconds=42))

    response = client.get("/healthz/worker/")

    assert response.status_code == 200
    worker = response.json()["worker"]
    assert worker["ok"] is True
    assert worker["heartbeat_at"] == "2026-11-25T11:59:18+00:00"
    assert worker["worker"].endswith(f":{os.getpid()}")
    assert worker["reason"] == "the sweeper last ran 42 s ago; no task waiting"


def test_the_oldest_waiting_task_is_counted_from_its_lock(client, db, frozen, settings):
    """Waiting: lock passed (enqueued, or handed out and not acknowledged within `retry`).
    A task a worker holds (lock in the future) and another cluster's are not waiting."""
    liveness.beat(NOW - timedelta(seconds=10))
    for lock, key in (
        (NOW - timedelta(seconds=95), "vpnctl"),
        (NOW - timedelta(seconds=5), "vpnctl"),
        (NOW + timedelta(seconds=1100), "vpnctl"),  # taken by a worker
        (NOW - timedelta(seconds=999), "another-cluster"),
    ):
        OrmQ.objects.create(key=key, payload="x", lock=lock)

    worker = client.get("/healthz/worker/").json()["worker"]

    assert worker["queued_tasks"] == 2
    assert worker["oldest_queued_task_age_seconds"] == 95
    assert worker["reason"].endswith("; 2 task(s) waiting, the oldest for 95 s")


@pytest.mark.parametrize("url", ["/healthz/", "/healthz/worker/"])
def test_healthz_reports_a_broken_database(client, db, monkeypatch, url):
    def broken(*args, **kwargs):
        raise connection.Database.OperationalError("server closed the connection")

    client.get(url)  # session and middleware set up before the database "goes"
    with monkeypatch.context() as m:
        m.setattr(connection, "cursor", broken)
        response = client.get(url)
    assert response.status_code == 503
    assert response.json() == {"database": "unavailable", "worker": None}
