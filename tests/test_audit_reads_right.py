"""The audit log, the timeline and the emails read right for every reader.

Sentences are stored as data and written at display time in the reader's language and
zone; details have human labels; exports honour exactly the filters shown (or refuse
them) and never hand a spreadsheet a formula; the approver who lost a race learns who
won; a request whose risks include a blocker asks before it is sent.
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from django_q.conf import Conf

from maintenance import roles, sync, tasks
from maintenance.choices import AuditAction, ChangeKind, ChangeStatus
from maintenance.models import Approval, AuditEvent, ChangeRequest, Tunnel, UserProfile
from maintenance.views.audit import FORMULA_STARTS
from simulator import Timings, TunnelSpec
from tests.factories import make_connection, pending
from tests.queue_helpers import queue_held
from tests.test_views_requests import form_url, submit

JA = {"HTTP_ACCEPT_LANGUAGE": "ja"}


def page_text(response) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def japanese(msgid: str, **params) -> str:
    with translation.override("ja"):
        said = gettext(msgid)
    assert said != msgid, f"no Japanese for {msgid!r}"
    return said % params if params else said


# ---------------------------------------------------------------------------------------
# Written in English, read in Japanese
# ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_change_written_in_english_reads_in_japanese(
    aws, accounts, requester, approver, auditor, client, monkeypatch, settings
):
    settings.WATCH_INTERVAL_SECONDS = 0.1
    monkeypatch.setattr(Conf, "SYNC", True)
    aws.configure(timings=Timings(replace_down_seconds=2, modify_seconds=0.3))
    first = TunnelSpec(
        pending_maintenance="Available", auto_apply_after=timezone.now() + timedelta(days=5)
    )
    connection_id = aws.create_connection(region="ap-northeast-1", tunnels=[first, TunnelSpec()])
    sync.run_sync()
    tunnel = Tunnel.objects.get(outside_ip=aws.tunnel_ips(connection_id)[0])
    with translation.override("en"):
        change = ChangeRequest.submit(
            user=requester,
            tunnel=tunnel,
            kind=ChangeKind.REPLACE,
            reason="quarterly patch",
            window_start=None,
            window_end=timezone.now() + timedelta(hours=2),
        )
        with queue_held():
            change.approve(user=approver, comment="go")
        assert tasks.execute_change(change.pk) == "watching"
    change.refresh_from_db()
    assert change.status == ChangeStatus.SUCCEEDED
    # What was stored reads in English to a tool that knows nothing of vpnctl.
    calling = AuditEvent.objects.get(
        change_request=change, action=AuditAction.EXECUTION_CALLING_AWS
    )
    assert calling.message == "About to call AWS: ReplaceVpnTunnel(ApplyPendingMaintenance=True)"
    submitted = AuditEvent.objects.get(change_request=change, action=AuditAction.REQUEST_SUBMITTED)
    assert submitted.details["reason"] == "quarterly patch"

    expected = [
        japanese("%(user)s approved", user=approver.username),
        japanese("About to call AWS: %(call)s", call=change.aws_call_name),
        japanese("Preflight checks passed. Calling AWS now."),
        japanese("Tunnel %(ip)s is DOWN: AWS is working on it.", ip=tunnel.outside_ip),
        japanese("Succeeded: the tunnel is UP and the change is done."),
    ]
    UserProfile.objects.create(user=approver, time_zone="Asia/Tokyo")
    client.force_login(approver)
    request_page = page_text(client.get(reverse("maintenance:request", args=[change.pk]), **JA))
    timeline = page_text(
        client.get(reverse("maintenance:request_timeline", args=[change.pk]), **JA)
    )
    for sentence in expected:
        assert sentence in request_page, sentence
        assert sentence in timeline, sentence
    assert "About to call AWS" not in timeline and " JST" in timeline

    client.force_login(auditor)
    audit_page = page_text(client.get(reverse("maintenance:audit"), {"request": change.pk}, **JA))
    for sentence in expected[:2] + expected[3:]:
        if sentence == expected[2]:
            continue  # a step, not an audit event
        assert sentence in audit_page, sentence
    # Details with labels in the reader's language, not raw keys.
    assert japanese("Reason") in audit_page and "window_start" not in audit_page
    # The export writes the sentence for its reader, beside the raw English message.
    export = client.get(
        reverse("maintenance:audit_export", args=["jsonl"]), {"request": change.pk}, **JA
    )
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert any(japanese("%(user)s approved", user=approver.username) in line for line in lines)
    assert any('"message": "aiko approved"' in line for line in lines)


def test_emails_are_written_in_each_recipients_language(
    requester, approver, second_approver, django_capture_on_commit_callbacks
):
    UserProfile.objects.create(user=approver, language="ja", time_zone="Asia/Tokyo")
    connection = make_connection(name="tokyo-office", tunnels=[pending(days=10), {}])
    tunnel = connection.tunnels.order_by("outside_ip")[0]
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        change = submit(requester, tunnel)
    [to_aiko] = [m for m in mail.outbox if m.to == [approver.email]]
    [to_bunta] = [m for m in mail.outbox if m.to == [second_approver.email]]
    assert to_bunta.subject.startswith("[vpnctl] Approval needed")
    with translation.override("ja"):
        subject = gettext("[vpnctl] Approval needed: #%(pk)s %(kind)s") % {
            "pk": change.pk,
            "kind": gettext("Apply pending maintenance"),
        }
    assert to_aiko.subject == subject
    assert " JST" in to_aiko.body and " UTC" in to_bunta.body


# ---------------------------------------------------------------------------------------
# Exports: exactly the filters shown, and no formulas
# ---------------------------------------------------------------------------------------


def test_an_export_with_an_invalid_filter_is_refused(client, auditor, requester):
    connection = make_connection(tunnels=[pending(days=10), {}])
    submit(requester, connection.tunnels.order_by("outside_ip")[0])
    client.force_login(auditor)
    page = client.get(reverse("maintenance:audit"), {"request": "abc"})
    assert "Correct the filters above to download these events." in page_text(page)
    assert reverse("maintenance:audit_export", args=["csv"]) not in page.content.decode()
    for fmt in ("csv", "jsonl"):
        refused = client.get(reverse("maintenance:audit_export", args=[fmt]), {"request": "abc"})
        assert refused.status_code == 400
        said = refused.content.decode()
        assert "These filters are not valid; nothing was exported." in said
        assert "Request number: Enter a whole number." in said
    # A valid filter still exports exactly what it matches.
    fine = client.get(reverse("maintenance:audit_export", args=["csv"]), {"request": 999999})
    rows = list(csv.reader(io.StringIO(b"".join(fine.streaming_content).decode())))
    assert len(rows) == 1  # the header only


def test_no_csv_cell_can_start_a_formula(client, auditor, requester, db):
    group = Group.objects.get(name=roles.APPROVER)
    evil = User.objects.create_user("@evil", "evil@example.com", "pw")
    evil.groups.add(group)
    connection = make_connection(name='=HYPERLINK("http://x")', tunnels=[pending(days=10), {}])
    change = submit(
        requester, connection.tunnels.order_by("outside_ip")[0], reason='=HYPERLINK("http://x")'
    )
    change.reject(user=evil, comment='=HYPERLINK("http://x","click")')
    for start in FORMULA_STARTS:
        AuditEvent.record(AuditAction.SYNC_FAILED, message=f'{start}HYPERLINK("http://x")')
    client.force_login(auditor)
    export = client.get(reverse("maintenance:audit_export", args=["csv"]))
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
    assert "'@evil" in cells and "'@evil rejected" in cells
    assert sum(cell.startswith("'=HYPERLINK") for cell in cells) >= 2


# ---------------------------------------------------------------------------------------
# Small clarity fixes
# ---------------------------------------------------------------------------------------


def test_the_approver_who_lost_the_race_learns_who_decided(
    client, requester, approver, second_approver
):
    connection = make_connection(tunnels=[pending(days=10), {}])
    change = submit(requester, connection.tunnels.order_by("outside_ip")[0])
    with queue_held():
        change.approve(user=approver, comment="fine")
    decided_at = Approval.objects.get(change_request=change).at
    client.force_login(second_approver)
    late = client.post(
        reverse("maintenance:request_decide", args=[change.pk]), {"decision": "approve"}
    )
    said = page_text(late)
    with timezone.override("UTC"):
        when = f"{decided_at:%Y-%m-%d %H:%M} UTC"
    assert f"aiko already approved it, last {when}" in said
    assert Approval.objects.filter(change_request=change).count() == 1


def test_a_blocker_asks_for_confirmation_at_the_submit_button(client, requester):
    # The other tunnel is DOWN: as things stand, the preflight would block the change.
    connection = make_connection(tunnels=[pending(days=10), {"status": "DOWN"}])
    tunnel = connection.tunnels.order_by("outside_ip")[0]
    client.force_login(requester)
    form = page_text(client.get(form_url(tunnel)))
    assert "This change will be blocked as things stand." in form
    assert "Submit anyway" in form
    start = timezone.localtime() + timedelta(hours=2)
    data = {
        "reason": "patch",
        "window_start": start.strftime("%Y-%m-%dT%H:%M"),
        "window_end": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    refused = client.post(form_url(tunnel), data)
    assert refused.status_code == 200
    assert "Tick the box to submit anyway" in page_text(refused)
    assert not ChangeRequest.objects.exists()
    accepted = client.post(form_url(tunnel), {**data, "confirm_blocker": "on"})
    assert accepted.status_code == 302
    assert ChangeRequest.objects.count() == 1


def test_no_confirmation_is_asked_without_a_blocker(client, requester):
    connection = make_connection(tunnels=[pending(days=10), {}])
    client.force_login(requester)
    form = page_text(client.get(form_url(connection.tunnels.order_by("outside_ip")[0])))
    assert "Submit request" in form and "Submit anyway" not in form
