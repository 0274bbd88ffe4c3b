"""The task queue's broker as an operator meets it: the database by default, Redis when
``VPNCTL_Q_REDIS_URL`` says so, a clear refusal when that URL is wrong, and the health
checks telling a Redis that cannot be reached.

The clusters themselves run with each broker in test_cluster.py and test_many_clusters.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Task

from maintenance import enqueue, liveness, tasks
from tests.cluster_helpers import queue_broker
from tests.test_settings import start_django

SHOW_BROKER = """
import json, django
django.setup()
from django.conf import settings
from django_q.brokers import get_broker
print(json.dumps({
    "orm": settings.Q_CLUSTER.get("orm"),
    "redis": settings.Q_CLUSTER.get("redis"),
    "broker": type(get_broker()).__name__,
}))
"""


def broker_of(tmp_path, **env: str) -> dict:
    result = start_django(tmp_path, SHOW_BROKER, VPNCTL_MODE="demo", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_database_is_the_broker_unless_a_redis_url_is_set(tmp_path):
    assert broker_of(tmp_path) == {"orm": "default", "redis": None, "broker": "ORM"}


def test_a_redis_url_moves_the_queue_to_redis_with_timeouts(tmp_path):
    shown = broker_of(tmp_path, VPNCTL_Q_REDIS_URL="redis://queue.internal:6379/2")

    assert shown["broker"] == "Redis"
    assert shown["orm"] is None
    # Without timeouts a Redis that stops answering would hang the page that queues a task.
    assert shown["redis"] == (
        "redis://queue.internal:6379/2?socket_connect_timeout=5&socket_timeout=10"
    )
    own = broker_of(tmp_path, VPNCTL_Q_REDIS_URL="rediss://q:6380/0?socket_timeout=3")
    assert own["redis"] == "rediss://q:6380/0?socket_connect_timeout=5&socket_timeout=3"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://queue.internal:6379/0", "does not start with redis://, rediss:// or unix://"),
        ("queue.internal:6379", "does not start with redis://, rediss:// or unix://"),
        ("redis://", "names no host"),
        ("redis://queue.internal:63x9/0", "has a port that is not a number"),
        ("redis://queue.internal:6379/zero", "has a database that is not a number"),
        ("redis://queue.internal/0?socket_timeout=soon", "is refused by redis-py"),
    ],
)
def test_a_malformed_redis_url_refuses_to_start_and_says_why(tmp_path, url, why):
    result = start_django(tmp_path, VPNCTL_MODE="demo", VPNCTL_Q_REDIS_URL=url)

    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: VPNCTL_Q_REDIS_URL ")
    assert "such as redis://127.0.0.1:6379/0" in last
    assert why in last


def test_the_refusal_never_shows_the_password(tmp_path):
    url = "redis://:hunter2-secret@queue.internal:6379/zero"
    result = start_django(tmp_path, VPNCTL_MODE="demo", VPNCTL_Q_REDIS_URL=url)

    assert result.returncode != 0
    assert "VPNCTL_Q_REDIS_URL" in result.stderr
    assert "hunter2-secret" not in result.stderr
    assert "redis://:***@queue.internal:6379/zero" in result.stderr


@pytest.fixture
def redis_broker(transactional_db):  # tasks are queued once a transaction commits
    with queue_broker("redis") as broker:
        yield broker


def test_the_worker_check_counts_the_tasks_waiting_in_redis(client, redis_broker):
    liveness.beat(timezone.now())
    enqueue.manual_sync(None)  # outside a transaction: queued at once

    body = client.get("/healthz/worker/").json()["worker"]

    assert body["ok"] is True
    assert body["queue"] == "redis"
    assert body["queued_tasks"] == 1
    assert body["oldest_queued_task_age_seconds"] is not None
    assert body["oldest_queued_task_age_seconds"] <= 5
    assert "1 task(s) waiting" in body["reason"]


def test_a_redis_that_cannot_be_reached_fails_the_worker_check_not_the_web(client, db):
    liveness.beat(timezone.now())
    # Nothing listens on port 1: a real refused connection, as when Redis is down.
    with mock.patch.multiple(Conf, ORM=None, REDIS="redis://127.0.0.1:1/0"):
        web = client.get("/healthz/")
        worker = client.get("/healthz/worker/")

    assert web.status_code == 200  # the web servers stay in rotation
    assert worker.status_code == 503
    body = worker.json()
    assert body["database"] == "ok"
    assert body["worker"]["ok"] is False
    assert body["worker"]["queued_tasks"] is None
    assert "the task queue (Redis) cannot be read" in body["worker"]["reason"]
    assert "the sweeper last ran" in body["worker"]["reason"]


def test_the_sweeper_keeps_the_newest_successful_results_and_every_failure(db, settings):
    settings.Q_RESULTS_KEPT = 3
    start = timezone.now() - timedelta(hours=1)
    for i in range(7):
        Task.objects.create(
            id=f"task-{i}",
            name=f"task {i}",
            func=enqueue.SWEEP,
            started=start + timedelta(minutes=i),
            stopped=start + timedelta(minutes=i, seconds=1),
            success=i not in (0, 5),  # two failures, one old and one recent
        )

    assert tasks.sweep()["results_pruned"] == 2
    kept = sorted(Task.objects.values_list("name", flat=True))
    # The three newest successes, and both failures however old (as django-q2 keeps them).
    assert kept == ["task 0", "task 3", "task 4", "task 5", "task 6"]
    assert tasks.sweep()["results_pruned"] == 0
