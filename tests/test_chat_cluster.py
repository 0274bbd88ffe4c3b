"""A chat message goes through the real queue: a transition commits, a real qcluster
process sends it to a receiver on loopback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from maintenance.models import ChatDelivery, ChatKind, DeliveryStatus
from tests.cluster_helpers import kill, queue_broker, start_cluster, wait_for
from tests.test_chat import Receiver, make_channel, submit

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(aws_server) -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        kill(process)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    webhook = Receiver()
    yield webhook
    webhook.close()


def test_the_worker_delivers_what_a_transition_queued(
    aws_server, cluster, receiver, requester, settings
):
    make_channel(receiver.url("/hook"), ChatKind.WEBHOOK)
    with queue_broker("orm") as broker:
        request = submit(requester)  # queues the delivery once it commits
        cluster.append(start_cluster(settings.AWS_ENDPOINT_URL, broker=broker))

        wait_for(lambda: receiver.received, timeout=90)

    body = json.loads(receiver.received[0]["body"])
    assert (body["event"], body["request"]["id"]) == ("needs_approval", request.pk)
    delivery = wait_for(
        lambda: ChatDelivery.objects.filter(status=DeliveryStatus.DELIVERED).first(), timeout=30
    )
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)
