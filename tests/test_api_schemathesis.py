"""Schemathesis against the live API: every operation of the schema the running server
publishes, with data that fits it and data that does not, as a requester and as an
approver who is also an admin. No answer may be a server error, and every answer must
be one the schema documents (status, content type, headers, body).

The server is pytest-django's live server on the test database (SQLite or PostgreSQL,
whichever the suite runs on), seeded with an estate the operations can find: small ids
are the ones Hypothesis tries first. Then Schemathesis's state machine follows the links
it infers from the schema (a list's ids into the operations on one object: show, approve,
reject, cancel, reschedule). Bounded: a few examples an operation, no shrinking.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests
import schemathesis
from django.contrib.auth.models import Group
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from maintenance import roles
from maintenance.choices import ChangeKind
from maintenance.models import (
    ApiToken,
    ChangeBatch,
    ChangeRequest,
    Execution,
    ExecutionStep,
    SyncResult,
    SyncRun,
)
from tests.factories import make_connection, pending

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 15
BUDGET_SECONDS = 110


def _seed(requester, lead) -> None:
    """Connections, an open request, a batch, an execution with a step, a sync run."""
    start = timezone.now() + timedelta(hours=2)
    connection = make_connection(name="st-office", tunnels=[pending(days=10), {}])
    tunnel = connection.tunnels.order_by("outside_ip")[0]
    change = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="quarterly patch",
        window_start=start,
        window_end=start + timedelta(hours=1),
    )
    off = {"lifecycle_control": False}
    batch_connection = make_connection(name="st-batch", tunnels=[off, off])
    ChangeBatch.submit(
        user=requester,
        tunnels=list(batch_connection.tunnels.all()),
        reason="lifecycle control everywhere",
        window_start=start,
        window_end=start + timedelta(hours=1),
    )
    make_connection(name="st-quiet")
    now = timezone.now()
    execution = Execution.objects.create(change_request=change, claimed_at=now, heartbeat_at=now)
    ExecutionStep.objects.create(execution=execution, message="Preflight checks passed.")
    run = SyncRun.objects.create(finished_at=now)
    SyncResult.objects.create(run=run, account=connection.account, region="ap-northeast-1")
    lead.groups.add(Group.objects.get(name=roles.APPROVER), Group.objects.get(name=roles.ADMIN))


@pytest.mark.django_db(transaction=True)
def test_every_operation_of_the_live_schema(settings_override, requester, approver, live_server):
    _seed(requester, approver)
    tokens = [
        ApiToken.issue(requester, name="schemathesis")[1],
        ApiToken.issue(approver, name="schemathesis")[1],
    ]
    headers = {"Authorization": f"Bearer {tokens[1]}"}
    schema = schemathesis.openapi.from_url(
        f"{live_server.url}/api/v1/openapi.json", headers=headers, timeout=10
    )
    schema.config.base_url = live_server.url
    started = time.monotonic()
    ran, statuses = [], {}
    # Closed at the end: a kept-alive connection holds a server thread, and with it a
    # database session that PostgreSQL would not let the test database be dropped under.
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                calls = _run(operation, mode, tokens, session, live_server.url, statuses)
                ran.append((operation.label, mode.value, calls))
        # Then sequences: what one call answers (a request's id) feeds the next.
        stateful = _stateful(schema, tokens[1], session, live_server.url, statuses)
    elapsed = time.monotonic() - started
    assert stateful > 0
    labels = {label for label, _mode, _calls in ran}
    paths = schema.raw_schema["paths"]
    documented = {f"{method.upper()} {path}" for path, item in paths.items() for method in item}
    assert labels == documented
    assert all(calls > 0 for _label, _mode, calls in ran), ran
    assert elapsed < BUDGET_SECONDS, f"schemathesis took {elapsed:.0f} s"
    # Not only refusals: the seeded estate was found and answered.
    assert statuses.get(200, 0) > 50 and statuses.get(400, 0) > 50, statuses
    print(f"schemathesis: {sum(statuses.values())} calls in {elapsed:.0f} s: {statuses}")


def _run(operation, mode, tokens, session, base_url, statuses) -> int:
    calls = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        nonlocal calls
        # The two tokens take turns: each operation is called as both people. Hypothesis
        # would write a token of its own from the security scheme: tests/test_api.py
        # covers wrong tokens, this covers what a right one reaches.
        token = tokens[calls % len(tokens)]
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        response = case.call_and_validate(base_url=base_url, session=session, checks=CHECKS)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        calls += 1

    check()
    return calls


def _stateful(schema, token, session, base_url, statuses) -> int:
    """Schemathesis's state machine over the links it infers from the schema."""
    steps = 0

    class Workflow(schema.as_state_machine()):
        def before_call(self, case) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

        def get_call_kwargs(self, case) -> dict:
            return {"base_url": base_url, "session": session}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            nonlocal steps
            case.validate_response(response, checks=CHECKS)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            steps += 1

    Workflow.run(
        settings=settings(
            max_examples=10,
            stateful_step_count=6,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    return steps


@pytest.fixture
def settings_override(settings):
    """Hypothesis calls far more often than the rate limit allows a person's script."""
    settings.API_RATE_PER_MINUTE = 10**6
