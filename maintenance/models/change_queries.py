"""The questions asked of change requests, each written once as a QuerySet method.

Open ones, overlapping a window, awaiting one approver's decision, with the approvals
that count, ending after AWS's deadline, planning a tunnel's maintenance before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce

from ..choices import ChangeKind, ChangeStatus, PendingMaintenance
from .approvals import Approval
from .inventory import AwsAccount

# rules.ends_after_deadline for an open request, in SQL.
ENDS_AFTER_DEADLINE = Q(
    status__in=ChangeStatus.OPEN,
    tunnel__pending_maintenance=PendingMaintenance.AVAILABLE,
    tunnel__maintenance_auto_applied_after__lt=F("window_end"),
)


class ChangeRequestQuerySet(models.QuerySet):
    def open(self) -> ChangeRequestQuerySet:
        return self.filter(status__in=ChangeStatus.OPEN)

    def overlapping(self, start: datetime, end: datetime) -> ChangeRequestQuerySet:
        return self.filter(window_start__lt=end, window_end__gt=start)

    def awaiting_decision_of(self, user: Any) -> ChangeRequestQuerySet:
        """Requests this approver can still decide on (their own excluded)."""
        decided = Approval.objects.current().filter(approver=user).values("change_request")
        return (
            self.filter(status=ChangeStatus.PENDING_APPROVAL)
            .decidable_by(user)
            .exclude(requester=user)
            .exclude(pk__in=decided)
        )

    def decidable_by(self, user: Any) -> ChangeRequestQuerySet:
        """Requests whose account lets this approver decide (AwsAccount.may_decide in SQL)."""
        closed = AwsAccount.objects.closed_to(user).values("pk")
        return self.exclude(tunnel__connection__account_id__in=closed)

    def with_approval_counts(self) -> ChangeRequestQuerySet:
        """Annotate `approvals_valid`: the approvals that count (one query)."""
        # A count per row, not a GROUP BY over the list's join with every approval: the
        # list's ordering and LIMIT then need no aggregate (35 ms at 2,000 requests).
        counting = (
            Approval.objects.counting()
            .filter(change_request=models.OuterRef("pk"))
            .values("change_request")
            .annotate(n=models.Count("pk"))
            .values("n")
        )
        return self.annotate(
            approvals_valid=Coalesce(
                models.Subquery(counting, output_field=models.IntegerField()), 0
            )
        )

    def ending_after_deadline(self) -> ChangeRequestQuerySet:
        """Open requests whose window no longer ends before AWS's current deadline."""
        return self.filter(ENDS_AFTER_DEADLINE)

    def with_deadline_flag(self) -> ChangeRequestQuerySet:
        """Annotate `after_deadline` (ending_after_deadline) for the lists, in the same query."""
        return self.annotate(
            after_deadline=models.ExpressionWrapper(
                ENDS_AFTER_DEADLINE, output_field=models.BooleanField()
            )
        )

    def planned_before_deadline(self) -> ChangeRequestQuerySet:
        """Changes that apply their tunnel's pending maintenance before AWS would.

        Approved or running; a replacement, or lifecycle control turned on without
        SkipTunnelReplacement (which applies it at once); a window that opens before AWS's
        deadline. See inventory.planned_before_deadline, its one use.
        """
        return (
            self.filter(status__in=ChangeStatus.SCHEDULED)
            .filter(Q(kind=ChangeKind.REPLACE) | Q(skip_tunnel_replacement=False))
            .filter(
                Q(tunnel__maintenance_auto_applied_after__isnull=True)
                | Q(window_start__lt=F("tunnel__maintenance_auto_applied_after"))
            )
        )
