"""The change workflow's pages: the request form, the request page, its timeline, the lists."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from maintenance import roles
from maintenance.choices import ChangeKind, ChangeStatus, StepLevel, TunnelStatus
from maintenance.models import Approval, ChangeRequest, Execution, UserProfile
from tests.factories import make_account, make_connection, pending

# ---------------------------------------------------------------------------------------
# Helpers and data
# ---------------------------------------------------------------------------------------


def text(response) -> str:
    """The page as a person reads it: tags dropped, whitespace folded."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def field_block(response, field_id: str) -> str:
    """The text of the form-field wrapper around one input (its label, help and errors)."""
    html = response.content.decode()
    at = html.index(f'id="{field_id}"')
    start = html.rindex('<div class="form-field', 0, at)
    end = html.index("</div>", at)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[start:end]))


def local(dt: datetime, zone: str = "UTC") -> str:
    """How a datetime-local input sends a moment in the given zone."""
    return dt.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


def form_url(tunnel, kind=ChangeKind.REPLACE) -> str:
    return reverse("maintenance:request_new", args=[tunnel.pk, kind])


def page_url(change) -> str:
    return reverse("maintenance:request", args=[change.pk])


def submit(user, tunnel, kind=ChangeKind.REPLACE, start_in=timedelta(hours=2), **extra):
    start = timezone.now() + start_in
    fields = {
        "reason": "quarterly patch",
        "window_start": start,
        "window_end": start + timedelta(hours=1),
        **extra,
    }
    return ChangeRequest.submit(user=user, tunnel=tunnel, kind=kind, **fields)


@pytest.fixture
def risky(db):
    """Tunnel 1: pending maintenance in 3 days, lifecycle control off, no BGP routes.
    Tunnel 2: DOWN, lifecycle control off too."""
    connection = make_connection(
        name="osaka-dc",
        tunnels=[
            {**pending(days=3), "lifecycle_control": False, "accepted_route_count": None},
            {"status": TunnelStatus.DOWN, "lifecycle_control": False},
        ],
    )
    return connection.tunnels.order_by("outside_ip")[0]


@pytest.fixture
def tunnel(db):
    """Pending maintenance ten days away; the other tunnel is UP; BGP routes learned."""
    connection = make_connection(
        name="tokyo-office",
        tunnels=[{**pending(days=10), "accepted_route_count": 5}, {"accepted_route_count": 5}],
    )
    return connection.tunnels.order_by("outside_ip")[0]


@pytest.fixture
def change(requester, tunnel):
    return submit(requester, tunnel, reason="apply the March patch before the audit")


def login(client, user):
    client.force_login(user)
    return client


# ---------------------------------------------------------------------------------------
# The request form
# ---------------------------------------------------------------------------------------


def test_form_says_what_will_happen_and_shows_the_risks(client, requester, risky):
    login(client, requester)
    response = client.get(form_url(risky, ChangeKind.ENABLE_LIFECYCLE))
    assert response.status_code == 200
    page = text(response)
    connection = risky.connection
    # What, where, and the exact call.
    assert "Tunnel 1" in page and risky.outside_ip in page
    assert connection.vpn_connection_id in page and "osaka-dc" in page
    assert connection.account.name in page and connection.account.account_id in page
    assert connection.region in page
    assert (
        "ModifyVpnTunnelOptions(EnableTunnelLifecycleControl=True, SkipTunnelReplacement=False)"
        in page
    )
    assert "This tunnel goes DOWN for several minutes." in page
    # The risks, from the current data.
    assert "is DOWN. This change would be a full outage" in page
    assert "execution will be blocked" in page
    assert "AWS applies this maintenance by itself at" in page and "in 3 days" in page
    assert "Your window must end before that." in page
    assert "interrupts it for up to several minutes" in page
    assert "lacks lifecycle control too" in page
    assert "No BGP routes were learned on this tunnel" in page
    # Times in the user's zone, named next to the fields.
    assert "Times are in your time zone, UTC" in page


def test_form_has_labelled_fields_and_no_preselected_replacement_choice(client, requester, risky):
    login(client, requester)
    response = client.get(form_url(risky, ChangeKind.ENABLE_LIFECYCLE))
    html = response.content.decode()
    for label in ("Reason", "Window opens", "Window closes", "As soon as approved"):
        assert re.search(rf'<label for="id_\w+">{label}</label>', html), label
    assert html.count('type="datetime-local"') == 2
    radios = re.findall(r'<input type="radio"[^>]*>', html)
    assert len(radios) == 2 and not any("checked" in r for r in radios)
    assert "Apply pending maintenance at the same time" in html
    assert "Skip the replacement, keep it pending" in html
    # The other tunnel is DOWN: a blocker, so the button asks to submit anyway.
    assert '<button type="submit" class="danger">Submit anyway</button>' in html


def test_replace_form_names_its_call_and_has_no_replacement_choice(client, requester, tunnel):
    login(client, requester)
    response = client.get(form_url(tunnel))
    page = text(response)
    assert "ReplaceVpnTunnel(ApplyPendingMaintenance=True)" in page
    assert 'type="radio"' not in response.content.decode()
    # A healthy tunnel: the deadline is mentioned, nothing alarming.
    assert "full outage" not in page and "No BGP routes" not in page


def test_valid_post_creates_the_request_in_the_users_zone(client, requester, tunnel):
    UserProfile.objects.create(user=requester, time_zone="Asia/Tokyo")
    login(client, requester)
    start = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    response = client.post(
        form_url(tunnel),
        {
            "reason": "patch window agreed with the office",
            "window_start": local(start, "Asia/Tokyo"),
            "window_end": local(start + timedelta(hours=2), "Asia/Tokyo"),
        },
    )
    change = ChangeRequest.objects.get()
    assert response.status_code == 302
    assert response.url == page_url(change)
    assert change.window_start == start
    assert change.window_end == start + timedelta(hours=2)
    assert change.status == ChangeStatus.PENDING_APPROVAL
    assert change.requester == requester and change.kind == ChangeKind.REPLACE
    page = text(client.get(response.url))
    assert f"Request #{change.pk} submitted" in page
    assert "JST" in page


def test_as_soon_as_approved_needs_no_start(client, requester, tunnel):
    login(client, requester)
    end = timezone.now() + timedelta(days=1)
    response = client.post(
        form_url(tunnel),
        {"reason": "asap", "window_end": local(end), "start_when_approved": "on"},
    )
    assert response.status_code == 302
    assert ChangeRequest.objects.get().start_when_approved


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"window_end": 11 * 24}, "id_window_end", "when AWS applies the maintenance by itself"),
        ({"window_start": -5, "window_end": 1}, "id_window_start", "must start in the future"),
        ({"window_end": 2.2}, "id_window_end", "at least 30 minutes"),
        ({"reason": ""}, "id_reason", "Say why this change is needed."),
        ({"window_start": None}, "id_window_start", "Say when the window opens"),
        ({"window_end": "garbage"}, "id_window_end", "Enter a valid date/time."),
    ],
    ids=["after-deadline", "past", "too-short", "no-reason", "no-start", "unparseable"],
)
def test_bad_input_shows_the_rules_message_next_to_the_field(
    client, requester, tunnel, change, field, expected
):
    login(client, requester)
    now = timezone.now()
    data = {
        "reason": "patch",
        "window_start": local(now + timedelta(hours=2)),
        "window_end": local(now + timedelta(hours=4)),
    }
    for name, value in change.items():
        if value is None or isinstance(value, str):
            data[name] = value or ""
        else:
            data[name] = local(now + timedelta(hours=value))
    response = client.post(form_url(tunnel), data)
    assert response.status_code == 200
    assert expected in field_block(response, field)
    assert ChangeRequest.objects.count() == 0


def test_enable_lifecycle_needs_an_explicit_choice_when_maintenance_is_pending(
    client, requester, risky
):
    login(client, requester)
    now = timezone.now()
    data = {
        "reason": "take control of the timing",
        "window_start": local(now + timedelta(hours=2)),
        "window_end": local(now + timedelta(hours=3)),
        "confirm_blocker": "on",  # the other tunnel is DOWN; the requester knows
    }
    response = client.post(form_url(risky, ChangeKind.ENABLE_LIFECYCLE), data)
    assert "Choose whether the pending maintenance is applied" in text(response)
    assert ChangeRequest.objects.count() == 0

    response = client.post(
        form_url(risky, ChangeKind.ENABLE_LIFECYCLE), {**data, "skip_tunnel_replacement": "skip"}
    )
    assert response.status_code == 302
    change = ChangeRequest.objects.get()
    assert change.skip_tunnel_replacement is True
    assert "SkipTunnelReplacement=True" in text(client.get(response.url))


def test_a_second_open_request_on_the_tunnel_is_refused_with_the_reason(
    client, requester, change, tunnel
):
    login(client, requester)
    page = text(client.get(form_url(tunnel)))
    assert f"Request #{change.pk} is already open for this tunnel" in page
    now = timezone.now()
    response = client.post(
        form_url(tunnel),
        {
            "reason": "again",
            "window_start": local(now + timedelta(days=2)),
            "window_end": local(now + timedelta(days=2, hours=1)),
        },
    )
    assert response.status_code == 200
    assert f"Request #{change.pk} is already open for this tunnel" in text(response)
    assert ChangeRequest.objects.count() == 1


def test_only_requesters_get_the_form(client, outsider, approver, auditor, tunnel):
    for user in (outsider, approver, auditor):
        login(client, user)
        assert client.get(form_url(tunnel)).status_code == 403
        assert client.post(form_url(tunnel), {"reason": "x"}).status_code == 403
    assert ChangeRequest.objects.count() == 0


def test_unknown_kind_is_404(client, requester, tunnel):
    login(client, requester)
    assert client.get(form_url(tunnel, "reboot")).status_code == 404


def test_connection_page_offers_the_requests_that_make_sense(client, requester, approver, risky):
    url = reverse("maintenance:connection", args=[risky.connection_id])
    login(client, requester)
    html = client.get(url).content.decode()
    assert form_url(risky, ChangeKind.REPLACE) in html
    assert form_url(risky, ChangeKind.ENABLE_LIFECYCLE) in html
    sibling = risky.sibling()
    assert form_url(sibling, ChangeKind.REPLACE) not in html  # nothing pending there
    assert form_url(sibling, ChangeKind.ENABLE_LIFECYCLE) in html
    assert "Request maintenance" in html and "Request lifecycle control" in html
    login(client, approver)
    assert "Request maintenance" not in client.get(url).content.decode()


def test_anonymous_users_are_sent_to_login(client, tunnel, change):
    for url in (form_url(tunnel), page_url(change), reverse("maintenance:requests")):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response.url


# ---------------------------------------------------------------------------------------
# The request page
# ---------------------------------------------------------------------------------------


def test_request_page_says_what_where_when_and_who(client, approver, change, tunnel):
    UserProfile.objects.create(user=approver, time_zone="Europe/Paris")
    login(client, approver)
    response = client.get(page_url(change))
    assert response.status_code == 200
    page = text(response)
    html = response.content.decode()
    assert f"Request #{change.pk}: Apply pending maintenance" in page
    assert "ReplaceVpnTunnel(ApplyPendingMaintenance=True)" in page
    anchor = reverse("maintenance:connection", args=[tunnel.connection_id]) + f"#tunnel-{tunnel.pk}"
    assert f'href="{anchor}"' in html
    assert tunnel.connection.account.name in page and tunnel.connection.region in page
    assert "Europe/Paris" in page and ("CET" in page or "CEST" in page)
    assert "in 2 hours" in page
    assert "rei" in page and "apply the March patch before the audit" in page
    assert "0 of 1 approval needed." in page
    assert "Waiting for approval" in page and "It needs 1 more approval before it can run." in page
    # The risks are shown again while the request is open.
    assert "Risks" in page and "AWS applies this maintenance by itself at" in page
    # An approver may decide: the buttons are there, labelled.
    assert 'value="approve"' in html and ">Approve</button>" in html
    assert ">Reject</button>" in html and '<label for="id_comment">Comment</label>' in html
    assert ">Cancel request</button>" not in html


def test_approver_approves_and_the_page_says_approved(client, approver, change):
    login(client, approver)
    response = client.post(
        reverse("maintenance:request_decide", args=[change.pk]),
        {"decision": "approve", "comment": "ok for the office"},
    )
    assert response.status_code == 302 and response.url == page_url(change)
    change.refresh_from_db()
    assert change.status == ChangeStatus.APPROVED
    page = text(client.get(response.url))
    assert "Approved, waiting for its window" in page
    assert "It runs when the window opens" in page
    assert "1 of 1 approval needed." in page and "ok for the office" in page
    assert ">Approve</button>" not in client.get(response.url).content.decode()


def test_requester_sees_no_approve_button_and_cannot_approve(client, requester, change):
    login(client, requester)
    html = client.get(page_url(change)).content.decode()
    assert ">Approve</button>" not in html and ">Reject</button>" not in html
    assert ">Cancel request</button>" in html  # their own request: they may withdraw it
    assert "You asked for this change, so others decide on it." in text(
        client.get(page_url(change))
    )
    response = client.post(
        reverse("maintenance:request_decide", args=[change.pk]), {"decision": "approve"}
    )
    assert response.status_code == 403
    assert "You may not approve or reject changes." in text(response)
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING_APPROVAL
    assert not Approval.objects.exists()


def test_an_approver_cannot_decide_on_their_own_request(client, requester, change):
    requester.groups.add(Group.objects.get(name=roles.APPROVER))
    login(client, requester)
    assert ">Approve</button>" not in client.get(page_url(change)).content.decode()
    response = client.post(
        reverse("maintenance:request_decide", args=[change.pk]), {"decision": "approve"}
    )
    assert response.status_code == 200
    assert "You cannot approve or reject your own request." in text(response)
    assert not Approval.objects.exists()


def test_rejecting_needs_a_comment_shown_next_to_it(client, approver, change):
    login(client, approver)
    url = reverse("maintenance:request_decide", args=[change.pk])
    response = client.post(url, {"decision": "reject", "comment": ""})
    assert response.status_code == 200
    assert "Say why you reject it." in field_block(response, "id_comment")
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING_APPROVAL

    response = client.post(url, {"decision": "reject", "comment": "not during the audit"})
    change.refresh_from_db()
    assert change.status == ChangeStatus.REJECTED
    page = text(client.get(page_url(change)))
    assert "Rejected" in page and "not during the audit" in page


def test_deciding_twice_shows_why_not(client, approver, second_approver, change, settings):
    login(client, approver)
    url = reverse("maintenance:request_decide", args=[change.pk])
    client.post(url, {"decision": "approve"})
    response = client.post(url, {"decision": "approve"})  # e.g. a second tab
    # Who decided, and when: here the approver themself, in the other tab.
    assert "aiko already approved it, last " in text(response)
    assert "it is now Approved, waiting for its window." in text(response)
    assert Approval.objects.count() == 1


def test_auditor_can_view_but_not_act(client, auditor, change):
    login(client, auditor)
    response = client.get(page_url(change))
    assert response.status_code == 200
    html = response.content.decode()
    for button in (">Approve</button>", ">Reject</button>", ">Cancel request</button>"):
        assert button not in html
    now = timezone.now()
    for name, data in [
        ("request_decide", {"decision": "approve"}),
        ("request_cancel", {}),
        (
            "request_reschedule",
            {
                "window_start": local(now + timedelta(days=1)),
                "window_end": local(now + timedelta(days=1, hours=1)),
            },
        ),
    ]:
        assert (
            client.post(reverse(f"maintenance:{name}", args=[change.pk]), data).status_code == 403
        )
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING_APPROVAL
    assert not Approval.objects.exists()


def test_outsider_cannot_see_requests(client, outsider, change):
    login(client, outsider)
    assert client.get(page_url(change)).status_code == 403
    assert client.get(reverse("maintenance:request_timeline", args=[change.pk])).status_code == 403
    assert client.get(reverse("maintenance:requests")).status_code == 403


def test_requester_cancels(client, requester, change):
    login(client, requester)
    response = client.post(
        reverse("maintenance:request_cancel", args=[change.pk]),
        {"cancel_reason": "the office moved the audit"},
    )
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.status == ChangeStatus.CANCELLED
    page = text(client.get(page_url(change)))
    assert "Cancelled" in page and "the office moved the audit" in page


def test_another_requester_cannot_cancel(client, other_requester, change):
    login(client, other_requester)
    response = client.post(reverse("maintenance:request_cancel", args=[change.pk]))
    assert response.status_code == 403
    assert "Only the requester or an admin may cancel" in text(response)
    change.refresh_from_db()
    assert change.status == ChangeStatus.PENDING_APPROVAL


def test_requester_reschedules_and_earlier_approvals_stop_counting(
    client, requester, approver, change, settings
):
    settings.REQUIRED_APPROVALS = 2
    change.required_approvals = 2
    change.save(update_fields=["required_approvals"])
    change.approve(user=approver, comment="fine")
    login(client, requester)
    assert ">Change the window</button>" in client.get(page_url(change)).content.decode()
    start = (timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)
    response = client.post(
        reverse("maintenance:request_reschedule", args=[change.pk]),
        {"window_start": local(start), "window_end": local(start + timedelta(hours=1))},
    )
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.window_start == start
    page = text(client.get(page_url(change)))
    assert "0 of 2 approvals needed." in page
    assert "No: given before the window changed" in page


def test_reschedule_errors_are_shown_next_to_the_field(client, requester, change):
    login(client, requester)
    now = timezone.now()
    response = client.post(
        reverse("maintenance:request_reschedule", args=[change.pk]),
        {
            "window_start": local(now + timedelta(hours=1)),
            "window_end": local(now + timedelta(days=30)),
        },
    )
    assert response.status_code == 200
    assert "when AWS applies the maintenance by itself" in field_block(response, "id_window_end")


# ---------------------------------------------------------------------------------------
# Execution details and the self-refreshing timeline
# ---------------------------------------------------------------------------------------


@pytest.fixture
def running(requester, approver, tunnel):
    """A request approved "as soon as approved" and claimed by a worker: it is running."""
    change = submit(requester, tunnel, start_when_approved=True)
    change.approve(user=approver, comment="go")
    change.refresh_from_db()
    execution = Execution.claim(change, task_id="t-1", worker="worker-7")
    execution.step("Tunnel 198.51.0.10 is DOWN: AWS is working on it.", level=StepLevel.WARNING)
    Execution.objects.filter(pk=execution.pk).update(
        aws_request_id="req-5f2c",
        before={
            "status": "UP",
            "pending_maintenance": "Available",
            "lifecycle_control": True,
            "ike": {"ike_version": "ikev2", "phase1_encryption": "AES256"},
        },
    )
    change.refresh_from_db()
    return change


def test_timeline_partial_merges_audit_events_and_execution_steps(client, approver, running):
    login(client, approver)
    response = client.get(reverse("maintenance:request_timeline", args=[running.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # a fragment
    assert 'data-live="true"' in html and 'aria-live="polite"' in html
    page = text(response)
    assert "Running" in page
    assert "Execution started by worker worker-7." in page
    assert "is DOWN: AWS is working on it." in page
    # In time order: the request, the approval, then the execution.
    timeline = page[page.index("Timeline") :]
    assert (
        timeline.index("requested")
        < timeline.index("approved")
        < timeline.index("Execution started by worker worker-7")
    )
    assert "req-5f2c" in page and "ikev2" in page and "AES256" in page


def test_running_page_refreshes_itself_and_stops_when_finished(client, approver, running):
    login(client, approver)
    html = client.get(page_url(running)).content.decode()
    assert 'http-equiv="refresh"' in html  # inside <noscript>: for browsers without JS
    assert "maintenance/request-live.js" in html
    assert reverse("maintenance:request_timeline", args=[running.pk]) in html

    running.execution.fail(
        "AWS refused the change.",
        error_code="InvalidParameterValue",
        error_message="There is no pending maintenance for this tunnel.",
    )
    html = client.get(page_url(running)).content.decode()
    assert 'http-equiv="refresh"' not in html
    page = text(client.get(page_url(running)))
    assert "InvalidParameterValue" in page
    assert "There is no pending maintenance for this tunnel." in page
    # The end is both an audit event and a step, in the same words: the timeline says it once.
    assert page.count("Failed: AWS answered InvalidParameterValue") == 1
    assert 'id="risks-heading"' not in html  # risks concern what may still happen
    fragment = client.get(reverse("maintenance:request_timeline", args=[running.pk]))
    assert 'data-live="false"' in fragment.content.decode()


def test_approved_request_waiting_for_its_window_does_not_poll(client, approver, change):
    change.approve(user=approver)
    login(client, approver)
    html = client.get(page_url(change)).content.decode()
    assert 'data-live="false"' in html and 'http-equiv="refresh"' not in html


def test_request_to_run_as_soon_as_approved_polls_while_it_waits(client, requester, tunnel):
    # The last approval starts it at once: the requester's open page must follow it.
    change = ChangeRequest.submit(
        user=requester,
        tunnel=tunnel,
        kind=ChangeKind.REPLACE,
        reason="now, please",
        window_start=None,
        window_end=timezone.now() + timedelta(hours=1),
    )
    login(client, requester)
    html = client.get(page_url(change)).content.decode()
    assert 'data-live="true"' in html and 'data-status="pending_approval"' in html
    assert "This page updates itself" in text(client.get(page_url(change)))


# ---------------------------------------------------------------------------------------
# Lists, navigation, query counts
# ---------------------------------------------------------------------------------------


def make_requests(n, requester, approver=None, *, account=None, kind=ChangeKind.REPLACE):
    """n requests, one per new connection; every other one approved (when an approver is given)."""
    made = []
    for i in range(n):
        spec = pending(days=10) if kind == ChangeKind.REPLACE else {"lifecycle_control": False}
        connection = make_connection(account, tunnels=[{**spec, "accepted_route_count": 3}, {}])
        change = submit(
            requester,
            connection.tunnels.order_by("outside_ip")[0],
            kind=kind,
            start_in=timedelta(days=1 + i % 5, hours=2),
        )
        if approver is not None and i % 2:
            change.approve(user=approver, comment=f"ok {i}")
        made.append(change)
    return made


def listed(response) -> set[int]:
    return {int(pk) for pk in re.findall(r'data-request="(\d+)"', response.content.decode())}


def test_requests_list_filters(client, requester, other_requester, admin_user, auditor):
    second = make_account("second", "210987654321")
    replaces = make_requests(2, requester)
    lifecycle = make_requests(2, other_requester, account=second, kind=ChangeKind.ENABLE_LIFECYCLE)
    replaces[0].cancel(user=admin_user, reason="dup")
    everything = {c.pk for c in replaces + lifecycle}

    login(client, auditor)
    url = reverse("maintenance:requests")
    assert listed(client.get(url)) == everything
    assert listed(client.get(url, {"status": "cancelled"})) == {replaces[0].pk}
    assert listed(client.get(url, {"status": "open"})) == everything - {replaces[0].pk}
    assert listed(client.get(url, {"account": second.pk})) == {c.pk for c in lifecycle}
    assert listed(client.get(url, {"kind": "enable_lifecycle"})) == {c.pk for c in lifecycle}

    day = lifecycle[1].window_start.date()  # UTC: the auditor has no time zone set
    in_day = {c.pk for c in replaces + lifecycle if c.window_start.date() == day}
    assert listed(client.get(url, {"window_from": day, "window_to": day})) == in_day
    later = day + timedelta(days=30)
    assert listed(client.get(url, {"window_from": later})) == set()
    # A filter that does not parse is ignored, not an error page.
    assert listed(client.get(url, {"window_from": "soon", "status": "bogus"})) == everything


def test_waiting_for_my_approval_and_nav_badge(
    client, requester, approver, second_approver, settings
):
    settings.REQUIRED_APPROVALS = 2
    mine, other = make_requests(2, requester)
    mine.approve(user=approver, comment="fine")  # still needs a second approval
    url = reverse("maintenance:my_approvals")

    login(client, approver)
    response = client.get(url)
    assert listed(response) == {other.pk}
    assert re.search(r"Waiting for my approval\s*<span[^>]*>1<", response.content.decode())

    login(client, second_approver)
    assert listed(client.get(url)) == {mine.pk, other.pk}

    login(client, requester)
    response = client.get(url)
    assert listed(response) == set()
    assert "You are not an approver" in text(response)


def test_my_requests_lists_only_mine(client, requester, other_requester):
    mine = make_requests(2, requester)
    make_requests(1, other_requester)
    login(client, requester)
    response = client.get(reverse("maintenance:my_requests"))
    assert listed(response) == {c.pk for c in mine}
    assert 'aria-current="page">My requests' in response.content.decode()


def test_nav_has_the_three_workflow_links(client, auditor):
    login(client, auditor)
    html = client.get(reverse("maintenance:requests")).content.decode()
    for name, label in [
        ("requests", "Requests"),
        ("my_approvals", "Waiting for my approval"),
        ("my_requests", "My requests"),
    ]:
        assert f'href="{reverse("maintenance:" + name)}"' in html and label in html


# Query budgets, measured then pinned: session, user, profile, 2 x permissions, then the
# page's own (count, rows, filter choices) and the nav badge's one COUNT. Same at any size.
LIST_QUERIES = {"requests": 9, "my_approvals": 8, "my_requests": 7}


@pytest.mark.parametrize("n", [3, 12])
@pytest.mark.parametrize(
    ("name", "persona", "params"),
    [
        ("requests", "second_approver", {}),
        ("requests", "second_approver", {"status": "open", "kind": "replace"}),
        ("my_approvals", "second_approver", {}),
        ("my_requests", "requester", {}),
    ],
)
def test_lists_use_a_constant_number_of_queries(
    client,
    request,
    requester,
    approver,
    second_approver,
    django_assert_max_num_queries,
    n,
    name,
    persona,
    params,
):
    make_requests(n, requester, approver)
    user = request.getfixturevalue(persona)
    login(client, user)
    url = reverse(f"maintenance:{name}")
    with django_assert_max_num_queries(LIST_QUERIES[name]):
        response = client.get(url, params)
    expected = {
        "requests": ChangeRequest.objects.all(),
        "my_approvals": ChangeRequest.objects.awaiting_decision_of(user),
        "my_requests": ChangeRequest.objects.filter(requester=user),
    }[name]
    if params:
        expected = expected.filter(status__in=ChangeStatus.OPEN, kind=params["kind"])
    assert listed(response) == set(expected.values_list("pk", flat=True))
    assert listed(response)


REQUEST_PAGE_QUERIES = 12


@pytest.mark.parametrize("decisions", [1, 4])
def test_request_page_queries_do_not_grow_with_decisions(
    client, requester, approver, tunnel, settings, django_assert_max_num_queries, decisions
):
    settings.REQUIRED_APPROVALS = 5
    change = submit(requester, tunnel)
    group = Group.objects.get(name=roles.APPROVER)
    for i in range(decisions):
        user = User.objects.create_user(f"approver{i}")
        user.groups.add(group)
        change.approve(user=user, comment=f"ok {i}")
    login(client, approver)
    with django_assert_max_num_queries(REQUEST_PAGE_QUERIES):
        response = client.get(page_url(change))
    assert f"{decisions} of 5 approvals needed." in text(response)


def test_the_form_suggests_a_window_before_the_deadline(client, requester, db):
    connection = make_connection(tunnels=[pending(days=10), {}])
    tunnel = connection.tunnels.order_by("outside_ip")[0]
    client.force_login(requester)
    response = client.get(f"/tunnels/{tunnel.pk}/request/replace/")
    form = response.context["form"]
    start, end = form.initial["window_start"], form.initial["window_end"]
    assert timezone.now() < start < end <= tunnel.maintenance_auto_applied_after
    assert end - start == timedelta(hours=2)
    assert 'name="window_end"' in response.content.decode()


def test_no_suggestion_when_the_deadline_is_too_close(client, requester, db):
    connection = make_connection(tunnels=[pending(days=0.01), {}])  # about 14 minutes
    tunnel = connection.tunnels.order_by("outside_ip")[0]
    client.force_login(requester)
    form = client.get(f"/tunnels/{tunnel.pk}/request/replace/").context["form"]
    assert "window_end" not in form.initial
