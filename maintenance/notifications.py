"""Emails about change requests: approvers when they are needed, requesters on each step.

Sent after the transaction that caused them commits (the model transitions register
``transaction.on_commit``), through Django's email backend.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse

from .choices import ChangeStatus
from .models import ChangeRequest

log = logging.getLogger(__name__)


def approvers_for(request: ChangeRequest) -> list:
    """Active users who may decide on this request (never the requester)."""
    perm = Permission.objects.get(content_type__app_label="maintenance", codename="approve_change")
    users = (
        get_user_model()
        .objects.filter(
            Q(groups__permissions=perm) | Q(user_permissions=perm) | Q(is_superuser=True),
            is_active=True,
        )
        .exclude(pk=request.requester_id)
        .exclude(email="")
        .distinct()
        .order_by("username")
    )
    return list(users)


def send(event: str, request_pk: int) -> int:
    """Send the emails for one workflow event. Returns how many were sent."""
    request = (
        ChangeRequest.objects.select_related("tunnel__connection__account", "requester")
        .filter(pk=request_pk)
        .first()
    )
    if request is None:
        return 0
    link = settings.SITE_URL + reverse("maintenance:request", args=[request.pk])
    context = {"request_obj": request, "link": link, "tunnel": request.tunnel}
    if event == "request_submitted":
        recipients = [u.email for u in approvers_for(request)]
        template = "emails/request_submitted.txt"
    elif event == "request_decided":
        recipients = [request.requester.email] if request.requester.email else []
        template = "emails/request_decided.txt"
    elif event == "request_finished":
        recipients = [request.requester.email] if request.requester.email else []
        template = "emails/request_finished.txt"
    else:
        raise ValueError(f"unknown notification {event!r}")
    if not recipients:
        return 0
    context["approved"] = request.status == ChangeStatus.APPROVED
    subject, _, body = render_to_string(template, context).strip().partition("\n")
    sent = 0
    for address in recipients:
        # One message per person: nobody learns who else was asked.
        try:
            sent += send_mail(subject.strip(), body.strip() + "\n", None, [address])
        except OSError:
            log.exception("could not send %s for request %s", event, request.pk)
    return sent
