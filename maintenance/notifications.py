"""Emails about change requests: approvers when they are needed, requesters on each step.

A leaf the models use: the transitions call ``after_commit(notice, request)`` and the
emails go out once the transaction that caused them commits, through Django's email
backend. It takes the request itself and imports no model of vpnctl's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from . import times
from .choices import ChangeStatus, Notice

log = logging.getLogger(__name__)

TEMPLATES = {
    Notice.SUBMITTED: "emails/request_submitted.txt",
    Notice.DECIDED: "emails/request_decided.txt",
    Notice.FINISHED: "emails/request_finished.txt",
    Notice.DEADLINE_MOVED: "emails/request_deadline_moved.txt",
}


@contextmanager
def in_words_of(user: Any) -> Iterator[None]:
    """Write for this person: their language (else the site's) and their time zone."""
    profile = getattr(user, "vpnctl_profile", None)
    language = (profile.language if profile is not None else "") or settings.LANGUAGE_CODE
    with translation.override(language), timezone.override(times.zone_of(user)):
        yield


def after_commit(notice: Notice, request: Any) -> None:
    """Send `notice` about `request` once the current transaction commits.

    A mail server that fails is logged; it never undoes the change.
    """
    transaction.on_commit(lambda: send(notice, request), robust=True)


def approvers_for(request: Any) -> list:
    """Active users who may decide on this request (never the requester).

    Where its account names approvers (AwsAccount.may_decide), only those; for a batch's
    request, those every account of the batch lets decide (a batch is decided whole).
    """
    perm = Permission.objects.get(content_type__app_label="maintenance", codename="approve_change")
    users = (
        get_user_model()
        .objects.filter(
            Q(groups__permissions=perm) | Q(user_permissions=perm) | Q(is_superuser=True),
            is_active=True,
        )
        .exclude(pk=request.requester_id)
    )
    siblings = (
        request.batch.requests.select_related("tunnel__connection__account")
        if request.batch_id
        else [request]
    )
    accounts = list({r.tunnel.connection.account for r in siblings})
    type(accounts[0]).read_named_approvers(accounts)  # one query for them all
    for account in accounts:
        named = account.named_approvers()
        if named:
            users = users.filter(
                Q(groups__in=[pk for pk, _name in named.groups])
                | Q(pk__in=[pk for pk, _name in named.users])
            )
    users = users.exclude(email="").select_related("vpnctl_profile").distinct().order_by("username")
    return list(users)


def send(notice: Notice | str, request: Any) -> int:
    """Send the emails for one workflow event about a ChangeRequest. Returns how many."""
    notice = Notice(notice)
    if notice == Notice.SUBMITTED:
        recipients = approvers_for(request)
    else:
        recipients = [request.requester] if request.requester.email else []
    link = settings.SITE_URL + reverse("maintenance:request", args=[request.pk])
    context = {
        "request_obj": request,
        "link": link,
        "tunnel": request.tunnel,
        "approved": request.status == ChangeStatus.APPROVED,
    }
    sent = 0
    for user in recipients:
        # One message per person, in their words: nobody learns who else was asked.
        with in_words_of(user):
            text = render_to_string(TEMPLATES[notice], context)
        subject, _, body = text.strip().partition("\n")
        try:
            sent += send_mail(subject.strip(), body.strip() + "\n", None, [user.email])
        except OSError:
            log.exception("could not send %s for request %s", notice, request.pk)
    return sent
