"""Approvals: one approver's decision on a change request, bound to what it said then.

``Approval.counts`` is the one spelling of "this approval counts" (given to the request as
it stands, its fingerprint unchanged since); ``ApprovalQuerySet.counting`` says it in SQL.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..choices import Decision


class ApprovalQuerySet(models.QuerySet):
    def current(self) -> ApprovalQuerySet:
        """Decisions on the request as it stands (Approval.is_current)."""
        return self.filter(fingerprint=F("change_request__fingerprint"))

    def counting(self) -> ApprovalQuerySet:
        """Approvals that count (Approval.counts)."""
        return self.current().filter(decision=Decision.APPROVE)


class Approval(models.Model):
    """One approver's decision on a request, bound to what the request said then."""

    change_request = models.ForeignKey(
        "maintenance.ChangeRequest", on_delete=models.PROTECT, related_name="approvals"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    decision = models.CharField(_("decision"), max_length=8, choices=Decision.choices)
    comment = models.TextField(_("comment"), blank=True)
    at = models.DateTimeField(_("time"), default=timezone.now)
    fingerprint = models.CharField(_("fingerprint approved"), max_length=64)

    objects = ApprovalQuerySet.as_manager()

    class Meta:
        ordering = ["at"]
        verbose_name = _("decision")
        verbose_name_plural = _("decisions")
        constraints = [
            models.UniqueConstraint(
                fields=["change_request", "approver"], name="one_decision_per_approver"
            )
        ]

    def __str__(self) -> str:
        return f"{self.approver_id} {self.decision} #{self.change_request_id}"

    @property
    def is_current(self) -> bool:
        """Given to the request as it stands (its window has not changed since)."""
        return self.fingerprint == self.change_request.fingerprint

    @property
    def counts(self) -> bool:
        """The one spelling of "this approval counts"; ApprovalQuerySet.counting in SQL."""
        return self.decision == Decision.APPROVE and self.is_current
