"""Forms for chat channels (admins) and the delivery log's filters.

A channel's webhook URL and signing secret are write-only: the form never shows them
back, and a blank field when editing keeps what was stored.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from ..models import AwsAccount, ChatChannel, ChatDelivery, ChatKind, DeliveryStatus
from ..models.chat import CHOOSABLE_EVENTS


def insecure_urls_allowed() -> bool:
    """http:// webhooks are for the test suite and the demo only."""
    return settings.MODE in ("test", "demo")


class ChatChannelForm(forms.ModelForm):
    url = forms.CharField(
        label=_("Webhook URL"),
        max_length=2000,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Kept secret: only its host and last characters are shown once saved."),
    )
    secret = forms.CharField(
        label=_("Signing secret"),
        max_length=200,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_(
            "JSON webhooks only: the key of the HMAC-SHA256 signature. Empty on a new "
            "channel: vpnctl makes one and shows it once."
        ),
    )
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=CHOOSABLE_EVENTS,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = ChatChannel
        fields = ["name", "kind", "account", "events", "language", "enabled"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = AwsAccount.objects.order_by("name")
        self.fields["account"].empty_label = _("Every account")
        self.fields["language"].help_text = _("Empty: the site's language.")
        if not self.instance.pk:
            self.initial["events"] = [value for value, _label in CHOOSABLE_EVENTS]
        else:
            self.fields["url"].help_text = _(
                "Now %(hint)s. Leave it empty to keep it; type a new one to replace it."
            ) % {"hint": self.instance.url_hint}
            self.fields["secret"].help_text = _(
                "JSON webhooks only. Leave it empty to keep the current secret."
            )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not url:
            if not self.instance.pk:
                raise forms.ValidationError(_("Enter the webhook URL."))
            return ""
        parts = urlsplit(url)
        allowed = ("https", "http") if insecure_urls_allowed() else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            raise forms.ValidationError(
                _("The webhook URL must start with https:// and name a host.")
            )
        return url

    def clean_events(self) -> list[str]:
        # In ChatEvent's order, whatever order the browser sent.
        chosen = set(self.cleaned_data["events"])
        return [event for event, _label in CHOOSABLE_EVENTS if event in chosen]

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("secret") and cleaned.get("kind") != ChatKind.WEBHOOK:
            self.add_error("secret", _("Only a JSON webhook is signed; leave this empty."))
        return cleaned


class DeliveryFilterForm(forms.Form):
    channel = forms.ModelChoiceField(
        label=_("Channel"), queryset=ChatChannel.objects.all(), required=False
    )
    status = forms.ChoiceField(
        label=_("Status"), choices=[("", _("Any")), *DeliveryStatus.choices], required=False
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["channel"].empty_label = _("Any")

    def filter(self, qs):
        if not self.is_valid():
            return qs.none()
        if self.cleaned_data["channel"] is not None:
            qs = qs.filter(channel=self.cleaned_data["channel"])
        if self.cleaned_data["status"]:
            qs = qs.filter(status=self.cleaned_data["status"])
        return qs

    @staticmethod
    def base():
        return ChatDelivery.objects.select_related("channel")
