"""Forms of the change workflow: ask for a change, reschedule it, decide, cancel, list.

Times are typed into `datetime-local` inputs and read in the user's own time zone (the
middleware activates it), so "09:00" means 09:00 where the person is.
The workflow's rules live in the model (ChangeRequest.check_rules); these forms only parse.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..choices import ChangeKind, ChangeStatus, Decision
from ..models import AwsAccount, ChangeRequest
from .widgets import PlainSelect

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"
# The years a person may type. Far from Python's limits, so that a moment typed in any
# zone still converts to UTC, and a day later or a minute later still exists.
EARLIEST_YEAR, LATEST_YEAR = 1970, 9000
# The largest id a database integer column holds: larger "numbers" name nothing.
MAX_ID = 2**63 - 1


def within_years(value: Any) -> None:
    """A validator for date and datetime fields: refuse years no change or event has."""
    if value is not None and not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValidationError(
            _("Enter a date between the years %(first)d and %(last)d."),
            code="out_of_range",
            params={"first": EARLIEST_YEAR, "last": LATEST_YEAR},
        )


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format=LOCAL_FORMAT)


def _local_field(label: Any, required: bool) -> forms.DateTimeField:
    # DateTimeField makes a naive input aware in the *current* time zone, the user's.
    return forms.DateTimeField(
        label=label,
        required=required,
        widget=LocalDateTimeInput(),
        input_formats=[LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        validators=[within_years],
    )


class WindowForm(forms.Form):
    """When the change may run: a window, or "as soon as approved" until a closing time."""

    window_start = _local_field(_("Window opens"), required=False)
    window_end = _local_field(_("Window closes"), required=True)
    start_when_approved = forms.BooleanField(
        label=_("As soon as approved"),
        required=False,
        help_text=_(
            "The window opens when the last approval is given; it still closes at the time above."
        ),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("start_when_approved") and not data.get("window_start"):
            if "window_start" not in self.errors:
                self.add_error(
                    "window_start",
                    _('Say when the window opens, or tick "As soon as approved".'),
                )
        if data.get("start_when_approved"):
            data["window_start"] = None
        return data


SKIP_CHOICES = [
    ("apply", _("Apply pending maintenance at the same time")),
    ("skip", _("Skip the replacement, keep it pending")),
]


def suggested_window(tunnel: Any) -> dict[str, Any]:
    """A window to start from: the next whole hour after the coming one, two hours long,
    ending before AWS's own deadline when that is close. The user changes it as needed."""
    now = timezone.now()
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    end = start + timedelta(hours=2)
    deadline = tunnel.maintenance_auto_applied_after
    if tunnel.has_pending_maintenance and deadline is not None and end > deadline:
        start = now.replace(second=0, microsecond=0) + timedelta(minutes=10)
        end = deadline - timedelta(minutes=5)
        if end - start < timedelta(minutes=settings.MIN_WINDOW_MINUTES):
            return {}  # too tight to suggest anything: the risks say so
    return {"window_start": start, "window_end": end}


def reason_field() -> forms.CharField:
    """The reason a requester gives, for one request or a batch: what approvers read first."""
    return forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        help_text=_("Why this change, why now. Approvers read this first."),
        error_messages={"required": _("Say why this change is needed.")},
    )


class ChangeRequestForm(WindowForm):
    """Ask for one change to one tunnel."""

    reason = reason_field()
    skip_tunnel_replacement = forms.ChoiceField(
        label=_("Pending maintenance"),
        choices=SKIP_CHOICES,
        widget=forms.RadioSelect,
        error_messages={
            "required": _(
                "Choose whether the pending maintenance is applied together with the switch."
            )
        },
    )

    field_order = ["reason", "window_start", "window_end", "start_when_approved"]

    def __init__(
        self, *args: Any, kind: str, tunnel: Any, blocker: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        if blocker:
            # A risk says the change will be blocked as things stand: ask before sending.
            self.fields["confirm_blocker"] = forms.BooleanField(
                label=_(
                    "I understand: as things stand, vpnctl will block this change when its "
                    "window opens, and nothing will be sent to AWS."
                ),
                error_messages={
                    "required": _(
                        "A blocker is listed above. Tick the box to submit anyway, or wait "
                        "until what blocks it is fixed."
                    )
                },
            )
        if not self.is_bound:
            self.initial.update(suggested_window(tunnel))
        if kind != ChangeKind.ENABLE_LIFECYCLE:
            del self.fields["skip_tunnel_replacement"]
        elif not tunnel.has_pending_maintenance:
            # Nothing pending now: the choice only matters if AWS announces something
            # before the window, so a default is harmless here (and only here).
            self.fields["skip_tunnel_replacement"].initial = "apply"
            self.fields["skip_tunnel_replacement"].help_text = _(
                "Nothing is pending now. This matters only if AWS announces maintenance "
                "before the window."
            )

    @property
    def skip(self) -> bool:
        return self.cleaned_data.get("skip_tunnel_replacement") == "skip"


class DecisionForm(forms.Form):
    """Approve or reject, with a comment (required to reject: the model says so)."""

    decision = forms.ChoiceField(choices=Decision.choices, widget=forms.HiddenInput)
    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Optional to approve; needed to reject."),
    )


class CancelForm(forms.Form):
    cancel_reason = forms.CharField(
        label=_("Why cancel? (optional)"),
        required=False,
        max_length=4000,
        widget=forms.TextInput(),
    )


class RequestFilterForm(forms.Form):
    """The request list's GET filters. Whatever parsed is applied; the rest is ignored."""

    status = forms.ChoiceField(label=_("Status"), required=False)
    account = forms.ModelChoiceField(
        label=_("Account"),
        queryset=AwsAccount.objects.all(),
        required=False,
        empty_label=_("Any"),
        widget=PlainSelect,
    )
    kind = forms.ChoiceField(
        label=_("Change"), required=False, choices=[("", _("Any")), *ChangeKind.choices]
    )
    window_from = forms.DateField(
        label=_("Window from"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        validators=[within_years],
    )
    window_to = forms.DateField(
        label=_("Window to"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        validators=[within_years],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            ("", _("Any")),
            ("open", _("Open (not finished)")),
            *ChangeStatus.choices,
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("window_from"), data.get("window_to")
        if start and end and end < start:
            raise ValidationError(_('"Window to" is before "Window from".'))
        return data

    def filter(self, qs: QuerySet[ChangeRequest]) -> QuerySet[ChangeRequest]:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        status = data.get("status")
        if status == "open":
            qs = qs.open()
        elif status:
            qs = qs.filter(status=status)
        if data.get("account"):
            qs = qs.filter(tunnel__connection__account=data["account"])
        if data.get("kind"):
            qs = qs.filter(kind=data["kind"])
        # Days are the user's days: "from the 3rd" starts at 00:00 where they are.
        zone = timezone.get_current_timezone()
        if data.get("window_from"):
            start = datetime.combine(data["window_from"], time.min, tzinfo=zone)
            qs = qs.filter(window_end__gt=start)
        if data.get("window_to"):
            end = datetime.combine(data["window_to"] + timedelta(days=1), time.min, tzinfo=zone)
            qs = qs.filter(window_start__lt=end)
        return qs
