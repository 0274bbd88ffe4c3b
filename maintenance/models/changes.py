"""The change workflow: requests on a tunnel and the approvers' decisions on them.

A request is submitted, decided on, then claimed and executed once (see executions.py).
Every status change is a verb method of ``ChangeRequest``; each checks the state, moves
it with a conditional UPDATE and writes its audit event in the same transaction.
``check_submitter`` and ``create_checked`` (submission.py) are what a batch of requests
and a policy's drafts share with a single one.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import enqueue, notifications, times
from ..choices import (
    ActorKind,
    AuditAction,
    ChangeKind,
    ChangeStatus,
    Decision,
    Notice,
)
from ..roles import has_perm
from ..texts import N_, Text, english, render
from .approvals import Approval
from .audit import AuditEvent, canonical_json
from .change_queries import ChangeRequestQuerySet
from .chat import ChatEvent, announce_request
from .inventory import Tunnel
from .rules import check_rules, check_submitter, deadline_refusal, ends_after_deadline
from .standard import StandardChangeMixin
from .submission import create_checked

CLOSED_BEFORE_RUN = Text(N_("The window closed before the change could run."))


class TransitionRefused(ValidationError):
    """A transition refused by the state its object is in, not by what was asked: a
    request already decided, cancelled or running. Pages show it as any ValidationError;
    the API answers it 409."""


class ChangeRequest(StandardChangeMixin, models.Model):
    """A change to one tunnel, requested for a window, approved, then executed once.

    Every status change is a verb method below: it checks the current state, changes it
    with a conditional UPDATE (so two workers or two clicks cannot both win) and writes
    its audit event in the same transaction.
    """

    kind = models.CharField(_("change"), max_length=32, choices=ChangeKind.choices)
    tunnel = models.ForeignKey(
        Tunnel, on_delete=models.PROTECT, related_name="change_requests", verbose_name=_("tunnel")
    )
    skip_tunnel_replacement = models.BooleanField(
        _("skip tunnel replacement"),
        default=False,
        help_text=_(
            "Only for turning lifecycle control on: leave pending maintenance pending "
            "instead of applying it at once."
        ),
    )
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="change_requests",
        verbose_name=_("requested by"),
    )
    reason = models.TextField(_("reason"))
    window_start = models.DateTimeField(_("window opens"))
    window_end = models.DateTimeField(_("window closes"))
    start_when_approved = models.BooleanField(
        _("as soon as approved"),
        default=False,
        help_text=_("The window opens when the last approval is given."),
    )
    required_approvals = models.PositiveSmallIntegerField(_("approvals needed"), default=1)
    status = models.CharField(
        _("status"),
        max_length=24,
        choices=ChangeStatus.choices,
        default=ChangeStatus.PENDING_APPROVAL,
        db_index=True,
    )
    status_reason = models.TextField(_("why"), blank=True)
    # The same reason as data (texts.Text), written in each reader's language; empty when
    # the reason is a person's own words (a rejection's comment, a cancellation's reason).
    status_reason_text = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    created_at = models.DateTimeField(_("requested"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    approved_at = models.DateTimeField(_("approved"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # When an execution task was last queued for it: one outstanding task per request.
    execution_queued_at = models.DateTimeField(_("execution queued"), null=True, blank=True)
    batch = models.ForeignKey(
        "maintenance.ChangeBatch",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="requests",
        verbose_name=_("batch"),
    )
    # Drafted by a maintenance policy (models/drafting.py), perhaps outside its preferred
    # windows; approved by the policy's standard change when standard_fingerprint is set
    # (the policy's fingerprint then: editing or suspending the policy voids it).
    policy = models.ForeignKey(
        "maintenance.MaintenancePolicy",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="requests",
        verbose_name=_("drafted by policy"),
    )
    outside_preferred = models.BooleanField(_("outside the preferred windows"), default=False)
    standard_fingerprint = models.CharField(max_length=64, blank=True, editable=False)

    objects = ChangeRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("change request")
        verbose_name_plural = _("change requests")
        permissions = [
            ("request_change", _("Can request changes to tunnels")),
            ("approve_change", _("Can approve or reject change requests")),
            ("manage_changes", _("Can cancel any change request and run syncs")),
            ("view_audit", _("Can read and export the audit log")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(window_end__gt=models.F("window_start")),
                name="change_window_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["status", "window_start"], name="change_status_window_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} {self.tunnel}"

    # -- what was asked ---------------------------------------------------------------

    def compute_fingerprint(self) -> str:
        """SHA-256 over what approvers approve: the change, its target and its window."""
        connection = self.tunnel.connection
        asked = {
            "kind": self.kind,
            "account": connection.account.account_id,
            "region": connection.region,
            "connection": connection.vpn_connection_id,
            "tunnel": self.tunnel.outside_ip,
            "skip_tunnel_replacement": self.skip_tunnel_replacement,
            "start_when_approved": self.start_when_approved,
            # "As soon as approved" moves the start at approval; only the end was asked for.
            "window_start": None
            if self.start_when_approved
            else self.window_start.astimezone(UTC).isoformat(),
            "window_end": self.window_end.astimezone(UTC).isoformat(),
        }
        return hashlib.sha256(canonical_json(asked).encode()).hexdigest()

    @property
    def is_open(self) -> bool:
        return self.status in ChangeStatus.OPEN

    @property
    def aws_call_name(self) -> str:
        """The AWS call this change makes, as an engineer would write it."""
        if self.kind == ChangeKind.REPLACE:
            return "ReplaceVpnTunnel(ApplyPendingMaintenance=True)"
        return (
            "ModifyVpnTunnelOptions(EnableTunnelLifecycleControl=True, "
            f"SkipTunnelReplacement={self.skip_tunnel_replacement})"
        )

    def valid_approvals(self) -> list[Approval]:
        """The approvals that count (uses prefetched approvals)."""
        return [a for a in self.approvals.all() if a.counts]

    def decided_by(self, user: Any) -> bool:
        """Whether `user` has decided on the request as it stands (uses prefetched approvals)."""
        return any(a.approver_id == user.pk and a.is_current for a in self.approvals.all())

    def window_is_open(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.window_start <= now < self.window_end

    def can_cancel(self, user: Any) -> bool:
        return self.status in ChangeStatus.CANCELLABLE and (
            user == self.requester or has_perm(user, "maintenance.manage_changes")
        )

    def can_reschedule(self, user: Any) -> bool:
        return self.status == ChangeStatus.PENDING_APPROVAL and user == self.requester

    def can_decide(self, user: Any) -> bool:
        return (
            self.status == ChangeStatus.PENDING_APPROVAL
            and has_perm(user, "maintenance.approve_change")
            and user != self.requester
            and not self.decided_by(user)
            and self.tunnel.connection.account.may_decide(user)
        )

    @property
    def why(self) -> str:
        """Why it ended, in the reader's language (a person's own words as they wrote them)."""
        return render(self.status_reason_text) if self.status_reason_text else self.status_reason

    @property
    def ends_after_deadline(self) -> bool:
        """An open request whose window no longer ends before AWS's current deadline."""
        return self.is_open and ends_after_deadline(self.tunnel, self.window_end)

    # -- transitions ------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        *,
        user: Any,
        tunnel: Tunnel,
        kind: str,
        reason: str,
        window_start: datetime | None,
        window_end: datetime,
        start_when_approved: bool = False,
        skip_tunnel_replacement: bool = False,
    ) -> ChangeRequest:
        """Create a request in `pending_approval`, audited, and tell the approvers."""
        window_start, start_when_approved, now = check_submitter(
            user, reason, window_start, start_when_approved
        )
        with transaction.atomic():
            request = create_checked(
                user=user,
                tunnel=tunnel,
                kind=kind,
                reason=reason,
                window_start=window_start,
                window_end=window_end,
                start_when_approved=start_when_approved,
                skip_tunnel_replacement=skip_tunnel_replacement,
                now=now,
            )
            request.announce_submitted()
        return request

    def announce_submitted(self) -> None:
        """Tell the approvers it waits for them: by email and chat, once committed."""
        notifications.after_commit(Notice.SUBMITTED, self)
        announce_request(
            ChatEvent.NEEDS_APPROVAL,
            self,
            Text(
                N_("waits for approval; window %(start)s to %(end)s."),
                start=self.window_start,
                end=self.window_end,
            ),
        )

    def audit_snapshot(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tunnel": self.tunnel.outside_ip,
            "connection": self.tunnel.connection.vpn_connection_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "start_when_approved": self.start_when_approved,
            "skip_tunnel_replacement": self.skip_tunnel_replacement,
            "required_approvals": self.required_approvals,
            "fingerprint": self.fingerprint,
        }

    def _locked(self) -> ChangeRequest:
        """Re-read this request inside the caller's transaction, locked on PostgreSQL."""
        return (
            ChangeRequest.objects.select_for_update(no_key=True, of=("self",))
            .select_related("tunnel__connection__account", "requester")
            .get(pk=self.pk)
        )

    def transition(
        self,
        from_statuses: Any,
        to_status: str,
        now: datetime,
        *,
        where: Q | None = None,
        **fields: Any,
    ) -> bool:
        """The conditional UPDATE behind every transition: True if this caller won.

        Only transitions call it (here and in executions.py), each with its audit event;
        `where` adds conditions the row must meet, `fields` the columns it sets.
        """
        if isinstance(from_statuses, str):
            from_statuses = [from_statuses]
        rows = ChangeRequest.objects.filter(pk=self.pk, status__in=list(from_statuses))
        if where is not None:
            rows = rows.filter(where)
        changed = rows.update(status=to_status, updated_at=now, **fields)
        if changed:
            self.status, self.updated_at = to_status, now
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(changed)

    def reschedule(
        self, *, user: Any, window_start: datetime | None, window_end: datetime
    ) -> ChangeRequest:
        """Change the window of a request still waiting for approval.

        The fingerprint changes with it, so approvals given before no longer count.
        """
        now = timezone.now()
        with transaction.atomic():
            request = self._locked()
            if user != request.requester:
                raise PermissionDenied(_("Only the requester may change the window."))
            if request.status != ChangeStatus.PENDING_APPROVAL:
                raise TransitionRefused(
                    _("Only a request waiting for approval can be rescheduled; this one is %(s)s.")
                    % {"s": request.get_status_display()}
                )
            start_when_approved = window_start is None
            window_start = window_start or now
            check_rules(
                tunnel=request.tunnel,
                kind=request.kind,
                window_start=window_start,
                window_end=window_end,
                skip_tunnel_replacement=request.skip_tunnel_replacement,
                now=now,
                exclude_pk=request.pk,
                batch_id=request.batch_id,
            )
            before = request.audit_snapshot()
            request.window_start, request.window_end = window_start, window_end
            request.start_when_approved = start_when_approved
            request.fingerprint = request.compute_fingerprint()
            request.updated_at = now
            request.save(
                update_fields=[
                    "window_start",
                    "window_end",
                    "start_when_approved",
                    "fingerprint",
                    "updated_at",
                ]
            )
            voided = request.approvals.exclude(fingerprint=request.fingerprint).count()
            AuditEvent.record(
                AuditAction.REQUEST_RESCHEDULED,
                actor=user,
                change_request=request,
                message=Text(
                    N_("Window changed; %(n)d earlier approval(s) no longer count."), n=voided
                ),
                details={"before": before, "after": request.audit_snapshot()},
                at=now,
            )
            notifications.after_commit(Notice.SUBMITTED, request)
            announce_request(
                ChatEvent.NEEDS_APPROVAL,
                request,
                Text(
                    N_("window changed to %(start)s to %(end)s; it waits for approval again."),
                    start=request.window_start,
                    end=request.window_end,
                ),
            )
        return request

    def approve(self, *, user: Any, comment: str = "") -> ChangeRequest:
        """Record an approval; the last one needed moves the request to `approved`."""
        return self.decide(user=user, decision=Decision.APPROVE, comment=comment)

    def reject(self, *, user: Any, comment: str = "") -> ChangeRequest:
        """Record a rejection, which ends the request."""
        return self.decide(user=user, decision=Decision.REJECT, comment=comment)

    def decide(self, *, user: Any, decision: str, comment: str) -> ChangeRequest:
        """Record one approver's decision (approve and reject; ChangeBatch decides with it)."""
        if not has_perm(user, "maintenance.approve_change"):
            raise PermissionDenied(_("You may not approve or reject changes."))
        now = timezone.now()
        with transaction.atomic():
            request = self._locked()
            if not request.tunnel.connection.account.may_decide(user):
                raise PermissionDenied(request.tunnel.connection.account.refusal())
            if user == request.requester:
                raise ValidationError(_("You cannot approve or reject your own request."))
            if request.status != ChangeStatus.PENDING_APPROVAL:
                raise TransitionRefused(request.decided_already())
            if decision == Decision.APPROVE and request.window_end <= now:
                raise ValidationError(_("The window has already closed; this request cannot run."))
            if decision == Decision.APPROVE and ends_after_deadline(
                request.tunnel, request.window_end
            ):
                raise ValidationError(deadline_refusal(request.tunnel))
            if decision == Decision.REJECT and not (comment or "").strip():
                raise ValidationError({"comment": [_("Say why you reject it.")]})
            previous = Approval.objects.filter(change_request=request, approver=user).first()
            if previous is not None and previous.fingerprint == request.fingerprint:
                raise TransitionRefused(_("You have already decided on this request."))
            if request.compute_fingerprint() != request.fingerprint:
                raise ValidationError(
                    _("This request was altered outside vpnctl; it cannot be approved.")
                )
            if previous is None:
                Approval.objects.create(
                    change_request=request,
                    approver=user,
                    decision=decision,
                    comment=comment.strip(),
                    at=now,
                    fingerprint=request.fingerprint,
                )
            else:
                # Their earlier decision was on a window that has since changed.
                Approval.objects.filter(pk=previous.pk).update(
                    decision=decision,
                    comment=comment.strip(),
                    at=now,
                    fingerprint=request.fingerprint,
                )
            AuditEvent.record(
                AuditAction.REQUEST_APPROVED_BY
                if decision == Decision.APPROVE
                else AuditAction.REQUEST_REJECTED,
                actor=user,
                change_request=request,
                message=Text(
                    N_("%(user)s approved")
                    if decision == Decision.APPROVE
                    else N_("%(user)s rejected"),
                    user=user.get_username(),
                ),
                details={"comment": comment.strip(), "fingerprint": request.fingerprint},
                at=now,
            )
            if decision == Decision.REJECT:
                request.transition(
                    ChangeStatus.PENDING_APPROVAL,
                    ChangeStatus.REJECTED,
                    now,
                    finished_at=now,
                    status_reason=comment.strip(),
                )
                notifications.after_commit(Notice.DECIDED, request)
                announce_request(
                    ChatEvent.DECIDED,
                    request,
                    Text(
                        N_("rejected by %(user)s: %(comment)s"),
                        user=user.get_username(),
                        comment=comment.strip(),
                    ),
                )
                return request
            if len(request.valid_approvals()) >= request.required_approvals:
                fields: dict[str, Any] = {"approved_at": now}
                if request.start_when_approved:
                    fields["window_start"] = now
                request.transition(
                    ChangeStatus.PENDING_APPROVAL, ChangeStatus.APPROVED, now, **fields
                )
                AuditEvent.record(
                    AuditAction.REQUEST_APPROVED,
                    actor_kind=ActorKind.SYSTEM,
                    change_request=request,
                    message=Text(
                        N_("Approved by %(n)d of %(needed)d; it runs in its window."),
                        n=len(request.valid_approvals()),
                        needed=request.required_approvals,
                    ),
                    details={
                        "window_start": request.window_start,
                        "window_end": request.window_end,
                    },
                    at=now,
                )
                notifications.after_commit(Notice.DECIDED, request)
                announce_request(
                    ChatEvent.DECIDED,
                    request,
                    Text(
                        N_("approved; it runs in its window, %(start)s to %(end)s."),
                        start=request.window_start,
                        end=request.window_end,
                    ),
                )
                if request.window_start <= now:
                    request.queue_execution(now)
        return request

    def decided_already(self) -> str:
        """Why a decision comes too late, naming who decided and when (for the approver
        who lost the race, or whose page was old)."""
        decisions = [a for a in self.approvals.select_related("approver") if a.is_current]
        approvals = [a for a in decisions if a.decision == Decision.APPROVE]
        rejection = next((a for a in decisions if a.decision == Decision.REJECT), None)
        if self.status == ChangeStatus.REJECTED and rejection is not None:
            return _("%(who)s already rejected it, %(when)s; it is now %(status)s.") % {
                "who": rejection.approver.get_username(),
                "when": times.local(rejection.at),
                "status": self.get_status_display(),
            }
        if approvals and self.status != ChangeStatus.CANCELLED:
            return _("%(who)s already approved it, last %(when)s; it is now %(status)s.") % {
                "who": ", ".join(a.approver.get_username() for a in approvals),
                "when": times.local(max(a.at for a in approvals)),
                "status": self.get_status_display(),
            }
        return _(
            "Decisions are only taken while a request waits for approval; this one is %(s)s."
        ) % {"s": self.get_status_display()}

    def cancel(self, *, user: Any, reason: str = "") -> ChangeRequest:
        """Withdraw a request that has not started to run."""
        now = timezone.now()
        with transaction.atomic():
            request = self._locked()
            if user != request.requester and not has_perm(user, "maintenance.manage_changes"):
                raise PermissionDenied(_("Only the requester or an admin may cancel a request."))
            if not request.transition(
                ChangeStatus.CANCELLABLE,
                ChangeStatus.CANCELLED,
                now,
                finished_at=now,
                status_reason=reason.strip(),
            ):
                raise TransitionRefused(
                    _("Only a request that has not started can be cancelled; this one is %(s)s.")
                    % {"s": request.get_status_display()}
                )
            AuditEvent.record(
                AuditAction.REQUEST_CANCELLED,
                actor=user,
                change_request=request,
                message=Text(N_("%(user)s cancelled the request"), user=user.get_username()),
                details={"reason": reason.strip()},
                at=now,
            )
            notifications.after_commit(Notice.FINISHED, request)
        return request

    def expire(self, now: datetime | None = None) -> bool:
        """End a request whose window closed before it could run. True if it expired now."""
        now = now or timezone.now()
        with transaction.atomic():
            if not ChangeRequest.objects.filter(pk=self.pk, window_end__lte=now).exists():
                return False
            if not self.transition(
                ChangeStatus.CANCELLABLE,
                ChangeStatus.EXPIRED,
                now,
                finished_at=now,
                status_reason=english(CLOSED_BEFORE_RUN),
                status_reason_text=CLOSED_BEFORE_RUN.as_data(),
            ):
                return False
            AuditEvent.record(
                AuditAction.REQUEST_EXPIRED,
                actor_kind=ActorKind.SYSTEM,
                change_request=self,
                message=Text(N_("The window closed before the change ran.")),
                at=now,
            )
            notifications.after_commit(Notice.FINISHED, self)
        return True

    def queue_execution(self, now: datetime | None = None) -> bool:
        """Queue the execution task of an approved request, unless one is outstanding.

        One task per request at a time: a task counts as outstanding until it has run
        without starting the change (``execution_not_started``), or for
        ``settings.EXECUTION_REQUEUE_SECONDS`` if it never runs (a lost task). The claim
        still decides who executes; this only keeps the queue free of duplicates.
        True if a task was queued now.
        """
        now = now or timezone.now()
        horizon = now - timedelta(seconds=settings.EXECUTION_REQUEUE_SECONDS)
        queued = (
            ChangeRequest.objects.filter(pk=self.pk, status=ChangeStatus.APPROVED)
            .filter(Q(execution_queued_at__isnull=True) | Q(execution_queued_at__lt=horizon))
            .update(execution_queued_at=now)
        )
        if queued:
            self.execution_queued_at = now
            enqueue.execute_change(self.pk)
        return bool(queued)

    def execution_not_started(self) -> None:
        """Its execution task ran and left it approved (a window not open yet, a batch's
        turn not come): the next sweep may queue another."""
        ChangeRequest.objects.filter(pk=self.pk, status=ChangeStatus.APPROVED).update(
            execution_queued_at=None
        )
        self.execution_queued_at = None

    def queue_batch_followers(self) -> None:
        """Queue the requests of the same batch and connection that wait for this one."""
        followers = ChangeRequest.objects.filter(
            batch_id=self.batch_id,
            tunnel__connection_id=self.tunnel.connection_id,
            status=ChangeStatus.APPROVED,
            pk__gt=self.pk,
        ).only("pk")
        for follower in followers:
            # Its earlier task found it waiting for this one; this is the news it waited for.
            follower.execution_not_started()
            follower.queue_execution()

    def note_deadline_moved(self, previous: datetime | None) -> None:
        """Sync saw AWS move the deadline before this open request's window ends: audit
        it and tell the requester (the request can no longer be approved or run as it is)."""
        deadline = self.tunnel.maintenance_auto_applied_after
        with transaction.atomic():
            AuditEvent.record(
                AuditAction.REQUEST_DEADLINE_MOVED,
                actor_kind=ActorKind.AWS,
                change_request=self,
                message=Text(
                    N_(
                        "AWS moved its deadline to %(deadline)s, before this window ends (%(end)s)."
                    ),
                    deadline=deadline,
                    end=self.window_end,
                ),
                details={
                    "previous_deadline": times.iso(previous),
                    "deadline": times.iso(deadline),
                    "window_end": times.iso(self.window_end),
                },
            )
            notifications.after_commit(Notice.DEADLINE_MOVED, self)
