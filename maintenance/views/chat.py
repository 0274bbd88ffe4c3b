"""Chat channels (admins): the list, adding and editing one, deleting, a test message, and
the delivery log. The webhook URL is never shown back; its hint is."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import chat
from ..forms.chat import ChatChannelForm, DeliveryFilterForm
from ..models import ChatChannel, ChatDelivery, ChatKind
from .helpers import paginate, require_perm

DELIVERIES_PER_PAGE = 50


@login_required
def channel_list(request: HttpRequest) -> HttpResponse:
    """Every channel, with how its last delivery went."""
    require_perm(request, "maintenance.view_chatchannel")
    last = ChatDelivery.objects.filter(channel=OuterRef("pk")).order_by("-created_at", "-id")
    channels = ChatChannel.objects.select_related("account").annotate(
        last_status=Subquery(last.values("status")[:1]),
        last_at=Subquery(last.values("created_at")[:1]),
    )
    return render(request, "maintenance/chat_channel_list.html", {"channels": channels})


@login_required
def channel_new(request: HttpRequest) -> HttpResponse:
    require_perm(request, "maintenance.add_chatchannel")
    return _edit(request, ChatChannel())


@login_required
def channel_edit(request: HttpRequest, pk: int) -> HttpResponse:
    require_perm(request, "maintenance.change_chatchannel")
    return _edit(request, get_object_or_404(ChatChannel, pk=pk))


def _edit(request: HttpRequest, channel: ChatChannel) -> HttpResponse:
    """The form: a new channel's generated signing secret is shown once, on the answer."""
    creating = channel.pk is None
    form = ChatChannelForm(request.POST or None, instance=channel)
    if request.method == "POST" and form.is_valid():
        secret = form.cleaned_data["secret"]
        generated = ""
        if creating and channel.kind == ChatKind.WEBHOOK and not secret:
            secret = generated = secrets.token_urlsafe(32)
        channel.save_by(request.user, url=form.cleaned_data["url"], secret=secret)
        if generated:
            return render(
                request,
                "maintenance/chat_channel_secret.html",
                {"channel": channel, "secret": generated},
            )
        messages.success(request, _("Chat channel %(name)s saved.") % {"name": channel.name})
        return redirect("maintenance:chat_channels")
    return render(
        request,
        "maintenance/chat_channel_form.html",
        {"form": form, "channel": channel, "creating": creating},
    )


@login_required
@require_POST
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    require_perm(request, "maintenance.delete_chatchannel")
    channel = get_object_or_404(ChatChannel.objects.select_related("account"), pk=pk)
    channel.delete_by(request.user)
    messages.success(request, _("Chat channel %(name)s deleted.") % {"name": channel.name})
    return redirect("maintenance:chat_channels")


@login_required
@require_POST
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    require_perm(request, "maintenance.change_chatchannel")
    channel = get_object_or_404(ChatChannel, pk=pk)
    chat.send_test(channel)
    messages.success(
        request,
        _("A test message to %(name)s is on its way; the delivery log shows how it went.")
        % {"name": channel.name},
    )
    return redirect("maintenance:chat_channels")


@login_required
def delivery_log(request: HttpRequest) -> HttpResponse:
    """Every delivery, newest first, by channel and status."""
    require_perm(request, "maintenance.view_chatdelivery")
    form = DeliveryFilterForm(request.GET or None)
    deliveries = form.filter(DeliveryFilterForm.base()) if form.is_bound else form.base()
    page = paginate(request, deliveries, DELIVERIES_PER_PAGE)
    return render(request, "maintenance/chat_delivery_list.html", {"form": form, "page_obj": page})
