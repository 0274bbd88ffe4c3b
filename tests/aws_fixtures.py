"""Fixtures for the simulated AWS (the simulator app), loaded from conftest.py.

- ``aws``: moto's ``mock_aws`` in this process, with vpnctl's additions and short timings;
  yields ``SIMULATOR``.
- ``aws_server``: the same, also served over HTTP on a loopback port, with
  ``settings.AWS_ENDPOINT_URL`` (and ``VPNCTL_AWS_ENDPOINT_URL`` for child processes) pointed
  at it; yields ``SIMULATOR``.
- ``accounts``: the two ``AwsAccount`` rows the simulator knows.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator

import pytest

from simulator import (
    DEFAULT_ACCOUNT_ID,
    SECOND_ACCOUNT_ID,
    SECOND_ACCOUNT_ROLE_ARN,
    Simulator,
    Timings,
    simulated_aws,
    start_server,
)

TEST_TIMINGS = Timings(replace_down_seconds=0.5, modify_seconds=0.3)


def _reset_aws_clients() -> None:
    # maintenance.aws caches clients and sessions; a cached client built for another
    # endpoint, or before mock_aws started, would escape the simulator.
    try:
        aws_module = importlib.import_module("maintenance.aws")
    except ImportError:
        return
    reset = getattr(aws_module, "reset_clients", None)
    if reset is not None:
        reset()


@pytest.fixture
def aws(monkeypatch, settings) -> Iterator[Simulator]:
    """The simulated AWS, in process: fake credentials, no endpoint override."""
    # Fake credentials only, and nothing that could lead boto3 to a real account.
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "VPNCTL_AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/vpnctl-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/vpnctl-test-aws-credentials")
    settings.AWS_ENDPOINT_URL = ""
    _reset_aws_clients()
    try:
        # A copy: a test that changes its timings must not change the next test's.
        with simulated_aws(timings=dataclasses.replace(TEST_TIMINGS)) as simulator:
            yield simulator
    finally:
        _reset_aws_clients()


@pytest.fixture
def aws_server(aws, monkeypatch, settings) -> Iterator[Simulator]:
    """The simulated AWS behind a real HTTP server, for other threads and processes."""
    server, url = start_server()
    settings.AWS_ENDPOINT_URL = url
    monkeypatch.setenv("VPNCTL_AWS_ENDPOINT_URL", url)
    _reset_aws_clients()
    try:
        yield aws
    finally:
        server.stop()
        _reset_aws_clients()


@pytest.fixture
def accounts(db) -> dict[str, object]:
    """The accounts "default" (plain credentials) and "second" (an assumed role)."""
    from maintenance.models import AwsAccount

    return {
        "default": AwsAccount.objects.create(
            name="default",
            account_id=DEFAULT_ACCOUNT_ID,
            regions=["ap-northeast-1", "us-east-1"],
        ),
        "second": AwsAccount.objects.create(
            name="second",
            account_id=SECOND_ACCOUNT_ID,
            role_arn=SECOND_ACCOUNT_ROLE_ARN,
            regions=["ap-northeast-1", "eu-west-1"],
        ),
    }
