"""A django-q2 worker builds its AWS clients when it starts, without calling AWS."""

from __future__ import annotations

import logging

from django_q.signals import post_spawn

from maintenance import aws as seam


def test_worker_start_prepares_clients_for_every_enabled_scope(aws, accounts):
    seam.reset_clients()
    post_spawn.send(sender="django_q", proc_name="Process-test")
    # Two accounts × two regions × (read, write), and not one call reached AWS.
    assert len(seam.clients._clients) == 8
    assert aws.calls() == 0


def test_an_account_that_cannot_be_prepared_does_not_stop_the_worker(
    aws, accounts, monkeypatch, caplog
):
    # No source credentials: the assumed-role account cannot even build a session.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    seam.reset_clients()
    with caplog.at_level(logging.WARNING, logger="maintenance.signals"):
        post_spawn.send(sender="django_q", proc_name="Process-test")
    assert "could not prepare AWS clients for second ap-northeast-1" in caplog.text
    assert len(seam.clients._clients) == 4  # the default account's clients were still built
    assert aws.calls() == 0
