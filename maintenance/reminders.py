"""The daily reminder about AWS deadlines that nobody has planned a change for.

``send_deadline_reminders`` runs from a django-q2 DAILY schedule. It:

1. finds tunnels with pending maintenance, no change planned before AWS's deadline
   (``TunnelQuerySet.unplanned``: lifecycle control with SkipTunnelReplacement plans
   nothing), and that deadline within ``settings.REMINDER_DAYS`` days;
2. picks who should hear of each: admins (``manage_changes``) for every tunnel, and the
   people who requested changes on that connection before, for its tunnels;
3. sends each person ONE email listing all of their tunnels, after claiming the
   ``ReminderSent`` row for (person, day): a second run the same day sends nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from .models import ChangeRequest, ChatEvent, ReminderSent, Tunnel, announce
from .models.chat import listening
from .notifications import in_words_of
from .texts import N_, Text

log = logging.getLogger(__name__)


@dataclass
class DueTunnel:
    tunnel: Tunnel
    deadline: datetime
    link: str


def due_tunnels(now: datetime, days: int) -> list[Tunnel]:
    """Live tunnels whose maintenance AWS applies within `days` days, with no change
    planned before it (TunnelQuerySet.unplanned). One query."""
    return list(
        Tunnel.objects.live()
        .due_within(days, now)
        .unplanned()
        .filter(maintenance_auto_applied_after__gt=now)
        .select_related("connection__account")
        .order_by("maintenance_auto_applied_after", "pk")
    )


def _users():
    return get_user_model().objects.filter(is_active=True).exclude(email="")


def _admins() -> list:
    perm = Permission.objects.get(content_type__app_label="maintenance", codename="manage_changes")
    return list(
        _users()
        .filter(Q(groups__permissions=perm) | Q(user_permissions=perm) | Q(is_superuser=True))
        .select_related("vpnctl_profile")
        .distinct()
    )


def recipients(tunnels: list[Tunnel]) -> dict[int, tuple[object, list[Tunnel]]]:
    """{user pk: (user, their tunnels)}: admins get all, past requesters their connections'."""
    by_user: dict[int, tuple[object, list[Tunnel]]] = {}
    for user in _admins():
        by_user[user.pk] = (user, list(tunnels))
    admins = set(by_user)
    by_connection: dict[int, list[Tunnel]] = {}
    for tunnel in tunnels:
        by_connection.setdefault(tunnel.connection_id, []).append(tunnel)
    pairs = list(
        ChangeRequest.objects.filter(tunnel__connection_id__in=list(by_connection))
        .exclude(requester_id__in=admins)
        .order_by()
        .values_list("requester_id", "tunnel__connection_id")
        .distinct()
    )
    users = _users().select_related("vpnctl_profile").in_bulk({pk for pk, _ in pairs})
    for user_pk, connection_id in sorted(pairs):
        user = users.get(user_pk)
        if user is None:  # inactive, or no email address
            continue
        mine = by_user.setdefault(user_pk, (user, []))[1]
        mine.extend(t for t in by_connection[connection_id] if t not in mine)
    return by_user


def announce_deadlines(tunnels: list[Tunnel], day) -> None:
    """Tell the chat channels of each due tunnel, once a day (a rerun announces nothing)."""
    channels = listening(ChatEvent.DEADLINE_REMINDER)
    if not channels:
        return
    with transaction.atomic():
        for tunnel in tunnels:
            announce(
                ChatEvent.DEADLINE_REMINDER,
                Text(
                    N_(
                        "AWS applies pending maintenance to %(connection)s tunnel %(ip)s "
                        "(account %(account)s) by itself after %(deadline)s, and no change "
                        "is planned before then."
                    ),
                    connection=tunnel.connection.vpn_connection_id,
                    ip=tunnel.outside_ip,
                    account=tunnel.connection.account.name,
                    deadline=tunnel.maintenance_auto_applied_after,
                ),
                tunnel=tunnel,
                once_key=f"deadline:{tunnel.pk}:{day.isoformat()}",
                channels=channels,
            )


def send_deadline_reminders() -> int:
    """Send today's reminders. Returns how many emails were sent (0 on a second run)."""
    now = timezone.now()
    day = now.date()  # UTC: "one a day" is counted in the server's days
    days = settings.REMINDER_DAYS
    tunnels = due_tunnels(now, days)
    if not tunnels:
        return 0
    announce_deadlines(tunnels, day)
    sent = 0
    for user, mine in recipients(tunnels).values():
        mine.sort(key=lambda t: (t.maintenance_auto_applied_after, t.pk))
        try:
            # Claim the day first: whoever creates the row sends, a rerun finds it and stops.
            with transaction.atomic():
                claim = ReminderSent.objects.create(
                    user=user, day=day, tunnels=[t.pk for t in mine], sent_at=now
                )
        except IntegrityError:
            continue
        items = [
            DueTunnel(
                tunnel=t,
                deadline=t.maintenance_auto_applied_after,
                link=settings.SITE_URL
                + reverse("maintenance:connection", args=[t.connection_id])
                + f"#tunnel-{t.pk}",
            )
            for t in mine
        ]
        with in_words_of(user):
            text = render_to_string(
                "emails/deadline_reminder.txt",
                {
                    "user": user,
                    "items": items,
                    "days": days,
                    "now": now,
                    "requests_link": settings.SITE_URL + reverse("maintenance:timeline"),
                },
            )
        subject, _, body = text.strip().partition("\n")
        try:
            sent += send_mail(subject.strip(), body.strip() + "\n", None, [user.email])
        except OSError:
            # Give the claim back so that the next run (django-q2 retries) can send it.
            log.exception("could not send the deadline reminder to %s", user.pk)
            ReminderSent.objects.filter(pk=claim.pk).delete()
    return sent
