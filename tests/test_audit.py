"""The audit log: append-only, hash-chained, and `verify_audit` names the first bad event."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

from maintenance.choices import ActorKind, AuditAction
from maintenance.models import AuditEvent, AuditLogError
from tests.factories import make_connection


def record_some(n: int = 5) -> list[AuditEvent]:
    conn = make_connection()
    return [
        AuditEvent.record(
            AuditAction.CONNECTION_DISCOVERED,
            actor_kind=ActorKind.SYSTEM,
            connection=conn,
            message=f"event {i}",
            details={"i": i, "note": "ブルー"},
        )
        for i in range(n)
    ]


def test_events_chain_by_hash(db):
    events = record_some(3)
    assert events[0].prev_hash == "0" * 64
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].account == events[0].connection.account  # parents filled in
    assert AuditEvent.verify_chain() == (3, None, "")


def test_events_cannot_be_changed_or_deleted(db):
    event = record_some(1)[0]
    event.message = "rewritten"
    with pytest.raises(AuditLogError):
        event.save()
    with pytest.raises(AuditLogError):
        event.delete()
    with pytest.raises(AuditLogError):
        AuditEvent.objects.filter(pk=event.pk).update(message="rewritten")
    with pytest.raises(AuditLogError):
        AuditEvent.objects.all().delete()
    event.refresh_from_db()
    assert event.message == "event 0"


def test_verify_audit_passes_on_an_intact_chain(db):
    record_some(4)
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "audit chain intact: 4 events verified" in out.getvalue()


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        (
            "UPDATE maintenance_auditevent SET message = 'nothing happened' WHERE seq = 3",
            "content does not match its hash",
        ),
        (
            "UPDATE maintenance_auditevent SET details = '{\"i\": 99}' WHERE seq = 3",
            "content does not match its hash",
        ),
        (
            "UPDATE maintenance_auditevent SET actor_name = 'mallory' WHERE seq = 3",
            "content does not match its hash",
        ),
    ],
    ids=["message", "details", "actor"],
)
def test_verify_audit_names_the_altered_event(db, sql, why):
    record_some(5)
    with connection.cursor() as cursor:
        cursor.execute(sql)
    with pytest.raises(CommandError) as exc:
        call_command("verify_audit")
    assert "BROKEN at event #3" in str(exc.value)
    assert why in str(exc.value)
    assert "2 events before it are intact" in str(exc.value)


def test_verify_audit_notices_a_deleted_event(db):
    record_some(5)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM maintenance_auditevent WHERE seq = 4")
    with pytest.raises(CommandError) as exc:
        call_command("verify_audit")
    assert "BROKEN at event #5" in str(exc.value)
    assert "sequence jumps from 3 to 5" in str(exc.value)


def test_verify_audit_notices_a_truncated_tail(db):
    record_some(5)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM maintenance_auditevent WHERE seq = 5")
    with pytest.raises(CommandError) as exc:
        call_command("verify_audit")
    assert "chain head counts 5 events, found 4" in str(exc.value)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_linear_chain():
    """Twenty threads appending at once: no fork, no gap (PostgreSQL locks the head row)."""
    conn = make_connection()
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(5):
                AuditEvent.record(
                    AuditAction.CONNECTION_DISCOVERED,
                    actor_kind=ActorKind.SYSTEM,
                    connection=conn,
                    message=f"{i}-{j}",
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert AuditEvent.verify_chain() == (100, None, "")
