"""bench/pages.py at a tiny size: the seeded estate holds, and every page it measures answers.

No gunicorn here: the seeding (bench/seed_fleet.py) and the in-process query count, the
part of the benchmark a product change can break.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from maintenance.choices import ChangeStatus
from maintenance.models import (
    AuditEvent,
    ChangeRequest,
    Execution,
    Tunnel,
    VpnConnection,
)

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


seed_fleet = _load("seed_fleet")
pages = _load("pages")


@pytest.fixture
def estate(db):
    seed_fleet.seed(connections=20)
    return seed_fleet.samples()


def test_sizes_scale_with_the_connections():
    sizes = seed_fleet.Sizes.scaled(500)
    assert (sizes.connections, sizes.tunnels, sizes.requests, sizes.audit_events) == (
        500,
        1000,
        200,
        10_000,
    )
    default = seed_fleet.Sizes.scaled(5000)
    assert (default.accounts, default.requests, default.audit_events) == (100, 2000, 100_000)


def test_the_seeded_estate_is_what_the_docstring_says(estate):
    assert VpnConnection.objects.count() == 20
    assert Tunnel.objects.count() == 40
    assert set(ChangeRequest.objects.values_list("status", flat=True)) == set(ChangeStatus)
    # An execution exactly where the status implies one.
    executed = set(Execution.objects.values_list("change_request__status", flat=True))
    assert executed == set(seed_fleet.EXECUTED)
    # Open requests keep the rules a submission checks.
    assert not ChangeRequest.objects.ending_after_deadline().exists()
    assert not ChangeRequest.objects.open().filter(
        kind="replace", tunnel__pending_maintenance="None"
    )


def test_the_seeded_audit_chain_verifies(estate):
    checked, bad, why = AuditEvent.verify_chain()
    assert (why, bad) == ("", None)
    assert checked == AuditEvent.objects.count() > 20 * 20


def test_every_page_answers_and_is_counted(estate, client):
    measured = pages.page_list(estate)
    assert len(measured) >= 25
    counted = pages.count_queries(measured, estate.lead)
    answers = {c.name: c.status for c in counted}
    assert answers == {p.name: 200 for p in measured}
    assert all(c.queries > 0 for c in counted)
    # Every page but preferences has an admin changelist to be compared with, and it exists.
    admins = pages.admin_pages(estate)
    assert {p.admin for p in measured} - {None} <= admins.keys()
    client.force_login(estate.lead, backend=pages.session_backend())
    for key, url in admins.items():
        assert client.get(url).status_code == 200, key


def test_the_audit_page_verifies_the_small_seeded_chain(estate, client):
    client.force_login(estate.lead, backend=pages.session_backend())
    response = client.get("/audit/")
    assert response.context["verification"]["state"] == "intact"
