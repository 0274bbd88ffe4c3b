"""Forms: the inventory filters, the user's preferences, and the account form of the admin."""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import datetime, timedelta
from functools import cache

from django import forms
from django.db import connections
from django.db.models import Exists, F, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .choices import (
    AuditAction,
    ChangeKind,
    ChangeStatus,
    ConnectionState,
    PendingMaintenance,
    TunnelStatus,
)
from .models import AuditEvent, AwsAccount, ChangeRequest, Tunnel, UserProfile, VpnConnection

# ---------------------------------------------------------------------------------------
# Inventory filters
# ---------------------------------------------------------------------------------------

YES_NO = [("", _("Any")), ("yes", _("Yes")), ("no", _("No"))]
DEADLINE_DAYS = (3, 7, 30)
AWS_APPLIED_DAYS = 30


def planned_before_deadline() -> Exists:
    """An approved or running change on the tunnel (OuterRef "pk") that applies its pending
    maintenance before AWS would: a replacement, or lifecycle control turned on without
    SkipTunnelReplacement (which applies it at once)."""
    return Exists(
        ChangeRequest.objects.filter(
            tunnel=OuterRef("pk"), status__in=[ChangeStatus.APPROVED, ChangeStatus.RUNNING]
        )
        .filter(Q(kind=ChangeKind.REPLACE) | Q(skip_tunnel_replacement=False))
        .filter(
            Q(tunnel__maintenance_auto_applied_after__isnull=True)
            | Q(window_start__lt=F("tunnel__maintenance_auto_applied_after"))
        )
    )


def applied_by_aws_since(since: datetime) -> Exists:
    """AWS applied maintenance to the tunnel (OuterRef "pk") itself since then."""
    return Exists(
        AuditEvent.objects.filter(
            tunnel=OuterRef("pk"), action=AuditAction.MAINTENANCE_APPLIED_BY_AWS, at__gte=since
        )
    )


class ConnectionFilterForm(forms.Form):
    """The connection list's GET filters. Always valid enough to filter by what parsed."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=200,
        help_text=_("Connection id, Name, or any tag value"),
    )
    account = forms.ModelChoiceField(
        label=_("Account"), queryset=AwsAccount.objects.all(), required=False, empty_label=_("Any")
    )
    region = forms.ChoiceField(label=_("Region"), required=False)
    state = forms.ChoiceField(
        label=_("State"), required=False, choices=[("", _("Any")), *ConnectionState.choices]
    )
    pending = forms.ChoiceField(label=_("Pending maintenance"), required=False, choices=YES_NO)
    lifecycle_off = forms.BooleanField(label=_("Lifecycle control off on a tunnel"), required=False)
    tunnel_down = forms.BooleanField(label=_("A tunnel is DOWN"), required=False)
    deadline_within = forms.TypedChoiceField(
        label=_("AWS applies maintenance itself"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[
            ("", _("Any time")),
            ("3", _("within 3 days")),
            ("7", _("within 7 days")),
            ("30", _("within 30 days")),
        ],
    )
    no_approved_request = forms.BooleanField(
        label=_("Pending maintenance with no approved change before AWS applies it"),
        required=False,
    )
    both_down = forms.BooleanField(label=_("Both tunnels DOWN"), required=False)
    half_lifecycle = forms.BooleanField(
        label=_("Lifecycle control on one tunnel only"), required=False
    )
    aws_applied = forms.BooleanField(
        label=_("AWS applied maintenance itself in the last 30 days"), required=False
    )
    include_gone = forms.BooleanField(label=_("Include connections gone from AWS"), required=False)

    def __init__(self, *args, regions: list[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [("", _("Any")), *((r, r) for r in regions or [])]

    def filter(self, qs: QuerySet[VpnConnection]) -> QuerySet[VpnConnection]:
        """Apply whatever parsed; a field that did not parse is ignored, not an error page."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        if not data.get("include_gone"):
            qs = qs.filter(gone_at__isnull=True)
        if data.get("account"):
            qs = qs.filter(account=data["account"])
        if data.get("region"):
            qs = qs.filter(region=data["region"])
        if data.get("state"):
            qs = qs.filter(state=data["state"])
        tunnels = Tunnel.objects.filter(connection=OuterRef("pk"))
        pending = Exists(tunnels.filter(pending_maintenance=PendingMaintenance.AVAILABLE))
        if data.get("pending") == "yes":
            qs = qs.filter(pending)
        elif data.get("pending") == "no":
            qs = qs.filter(~pending)
        if data.get("lifecycle_off"):
            qs = qs.filter(Exists(tunnels.filter(lifecycle_control=False)))
        if data.get("tunnel_down"):
            qs = qs.filter(Exists(tunnels.filter(status=TunnelStatus.DOWN)))
        now = timezone.now()
        # Deadline and "no approved change" name the same tunnel: one subquery for both.
        if data.get("deadline_within") or data.get("no_approved_request"):
            due = tunnels.filter(pending_maintenance=PendingMaintenance.AVAILABLE)
            if data.get("deadline_within"):
                due = due.filter(
                    maintenance_auto_applied_after__lte=now
                    + timedelta(days=data["deadline_within"])
                )
            if data.get("no_approved_request"):
                due = due.filter(~planned_before_deadline())
            qs = qs.filter(Exists(due))
        if data.get("both_down"):
            qs = qs.filter(Exists(tunnels.filter(status=TunnelStatus.DOWN))).exclude(
                Exists(tunnels.exclude(status=TunnelStatus.DOWN))
            )
        if data.get("half_lifecycle"):
            qs = qs.filter(Exists(tunnels.filter(lifecycle_control=True))).filter(
                Exists(tunnels.filter(lifecycle_control=False))
            )
        if data.get("aws_applied"):
            since = now - timedelta(days=AWS_APPLIED_DAYS)
            qs = qs.filter(Exists(tunnels.filter(applied_by_aws_since(since))))
        if data.get("q"):
            qs = search_connections(qs, data["q"])
        return qs


def search_connections(qs: QuerySet[VpnConnection], text: str) -> QuerySet[VpnConnection]:
    """Connections whose id, Name or a tag (key or value) contains the text.

    Tags are matched in the JSON document as text, which works on SQLite and PostgreSQL
    alike. The term is JSON-escaped the way the database stores the document: SQLite
    holds Django's json.dumps output (non-ASCII as \\uXXXX), PostgreSQL's jsonb::text
    writes non-ASCII as is; both escape quotes and backslashes.
    """
    text = text.strip()
    if not text:
        return qs
    ascii_only = connections[qs.db].vendor != "postgresql"
    needle = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
    return qs.annotate(tags_text=Cast("tags", TextField())).filter(
        Q(vpn_connection_id__icontains=text)
        | Q(name__icontains=text)
        | Q(tags_text__icontains=needle)
    )


# ---------------------------------------------------------------------------------------
# Preferences
# ---------------------------------------------------------------------------------------


@cache
def _zone_choices() -> list[tuple[str, str]]:
    names = sorted(
        z
        for z in zoneinfo.available_timezones()
        if "/" in z and not z.startswith(("Etc/", "posix"))
    )
    return [("UTC", "UTC"), *((z, z.replace("_", " ")) for z in names)]


class PreferencesForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        help_text=_("Every time on these pages is shown in this zone."),
    )

    class Meta:
        model = UserProfile
        fields = ["time_zone"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = _zone_choices()


# ---------------------------------------------------------------------------------------
# Admin: AWS accounts
# ---------------------------------------------------------------------------------------


class RegionListField(forms.CharField):
    """Regions typed as text, separated by commas or spaces; a list in Python."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        if isinstance(value, str) and value.startswith("["):
            # A JSON list coming back from the model field's initial value.
            try:
                return ", ".join(json.loads(value))
            except (ValueError, TypeError):
                return value
        return value

    def to_python(self, value):
        text = super().to_python(value)
        return [r for r in re.split(r"[\s,]+", text.strip()) if r]

    def has_changed(self, initial, data) -> bool:
        initial_list = initial if isinstance(initial, list) else self.to_python(initial or "")
        return initial_list != self.to_python(data or "")


class AwsAccountForm(forms.ModelForm):
    """The admin's account form; the model's clean() checks the role ARN and the regions."""

    regions = RegionListField(
        label=_("Regions"),
        required=False,  # the model's clean() says "Name at least one region."
        help_text=_(
            "EC2 regions to sync, separated by commas or spaces, e.g. ap-northeast-1, us-east-1."
        ),
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = AwsAccount
        fields = ["name", "account_id", "role_arn", "external_id", "regions", "enabled"]
