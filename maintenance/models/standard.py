"""Standard changes on a change request: approved by its policy, and voided again.

A mixin of ``ChangeRequest`` (models/changes.py), kept apart so that each module stays one
reading: a request drafted by a maintenance policy (models/drafting.py) under a policy
approved as a standard change is approved by it; editing or suspending that policy voids
the approval of its drafts that have not run (MaintenancePolicy.record_edit, suspend).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q

from .. import notifications, times
from ..choices import ActorKind, AuditAction, ChangeStatus, Notice
from ..texts import N_, Text
from .audit import AuditEvent
from .chat import ChatEvent, announce_request


class StandardChangeMixin:
    """The standard change's transitions; ``standard_fingerprint`` is the policy's
    fingerprint when it approved the request (empty: approved by people, or not yet)."""

    def approve_as_standard(self, policy: Any, *, now: datetime) -> bool:
        """Approved by the policy's standard change (``pending_approval`` → ``approved``),
        audited with the policy and the approvals that made it one. True if this won."""
        approvals = policy.counting_approvals()
        fingerprint = policy.fingerprint()
        with transaction.atomic():
            if not self.transition(
                ChangeStatus.PENDING_APPROVAL,
                ChangeStatus.APPROVED,
                now,
                approved_at=now,
                standard_fingerprint=fingerprint,
            ):
                return False
            AuditEvent.record(
                AuditAction.REQUEST_APPROVED,
                actor_kind=ActorKind.SYSTEM,
                change_request=self,
                message=Text(
                    N_(
                        "Approved under standard change policy %(policy)s, approved by "
                        "%(approvers)s on %(dates)s; it runs in its window."
                    ),
                    policy=policy.name,
                    approvers=", ".join(a.approver.get_username() for a in approvals),
                    dates=", ".join(times.iso(a.approved_at)[:10] for a in approvals),
                ),
                details={
                    "policy": policy.pk,
                    "policy_fingerprint": fingerprint,
                    "approvals": [
                        {"by": a.approver.get_username(), "at": a.approved_at} for a in approvals
                    ],
                    "window_start": self.window_start,
                    "window_end": self.window_end,
                },
                at=now,
            )
            notifications.after_commit(Notice.DECIDED, self)
            announce_request(
                ChatEvent.DECIDED,
                self,
                Text(
                    N_(
                        "approved by standard change policy %(policy)s; it runs in its "
                        "window, %(start)s to %(end)s."
                    ),
                    policy=policy.name,
                    start=self.window_start,
                    end=self.window_end,
                ),
            )
            if self.window_start <= now:
                self.queue_execution(now)
        return True

    def standard_holds(self) -> bool:
        """Approved by a standard change that still stands as it was approved."""
        if not self.standard_fingerprint or self.policy is None:
            return False
        policy = self.policy
        return policy.fingerprint() == self.standard_fingerprint and policy.is_standard_at(
            self.window_start
        )

    def void_standard(self, why: Text, *, now: datetime) -> bool:
        """A standard change's approval no longer holds: back to waiting for approval
        (``approved`` → ``pending_approval``), audited. True if this won."""
        with transaction.atomic():
            if not self.transition(
                ChangeStatus.APPROVED,
                ChangeStatus.PENDING_APPROVAL,
                now,
                where=Q(execution_queued_at__isnull=True),
                approved_at=None,
                standard_fingerprint="",
            ):
                return False
            AuditEvent.record(
                AuditAction.REQUEST_STANDARD_VOIDED,
                actor_kind=ActorKind.SYSTEM,
                change_request=self,
                message=Text(
                    N_(
                        "No longer approved by its standard change (%(why)s); it waits "
                        "for approval."
                    ),
                    why=why,
                ),
                details={"policy": self.policy_id},
                at=now,
            )
            self.announce_submitted()
        return True
