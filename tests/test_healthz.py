"""The health check answers without a login, and says so when the database is gone."""

from __future__ import annotations

from django.db import connection


def test_healthz_is_ok_without_login(client, db):
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response.content == b"ok\n"


def test_healthz_reports_a_broken_database(client, db, monkeypatch):
    def broken(*args, **kwargs):
        raise connection.Database.OperationalError("server closed the connection")

    client.get("/healthz/")  # session and middleware set up before the database "goes"
    with monkeypatch.context() as m:
        m.setattr(connection, "cursor", broken)
        response = client.get("/healthz/")
    assert response.status_code == 503
    assert b"database unavailable" in response.content
