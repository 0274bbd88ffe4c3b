"""The one execution of an approved change: what was checked, sent to AWS and seen after.

``Execution.claim`` starts it (the request's ``approved`` → ``running``); the worker
(tasks.py) then marks "about to call AWS", makes the call, records the answer and
watches; ``block``, ``supersede``, ``fail``, ``succeed`` and ``time_out`` end it together
with its request. ``take_over`` and ``reconcile_lost_worker`` are the sweeper's.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import notifications
from ..choices import (
    ActorKind,
    AuditAction,
    ChangeStatus,
    ExecutionOutcome,
    Notice,
    PendingMaintenance,
    StepLevel,
    TunnelStatus,
)
from ..texts import N_, Text, as_data, english, render
from .audit import AuditEvent, canonical_json
from .chat import OUTCOME_EVENTS, ChatEvent, announce_request
from .inventory import Tunnel, VpnConnection

if TYPE_CHECKING:
    from .changes import ChangeRequest


class Execution(models.Model):
    """The one execution of an approved request: what was checked, sent and seen.

    `calling_aws_at` is written and committed *before* the AWS call: it is the durable
    "about to call" mark. A conditional UPDATE sets it, so only one caller ever gets to
    make the call; whoever finds it set later may watch, never call again.
    """

    change_request = models.OneToOneField(
        "maintenance.ChangeRequest", on_delete=models.PROTECT, related_name="execution"
    )
    task_id = models.CharField(_("task id"), max_length=64, blank=True)
    worker = models.CharField(_("worker"), max_length=128, blank=True)
    claimed_at = models.DateTimeField(_("claimed"))
    heartbeat_at = models.DateTimeField(_("last heard of"))
    calling_aws_at = models.DateTimeField(_("about to call AWS"), null=True, blank=True)
    aws_answered_at = models.DateTimeField(_("AWS answered"), null=True, blank=True)
    aws_request_id = models.CharField(_("AWS request id"), max_length=128, blank=True)
    aws_error_code = models.CharField(_("AWS error code"), max_length=128, blank=True)
    aws_error_message = models.TextField(_("AWS error message"), blank=True)
    before = models.JSONField(_("tunnel before"), default=dict, blank=True)
    after = models.JSONField(_("tunnel after"), default=dict, blank=True)
    watch_until = models.DateTimeField(_("watch until"), null=True, blank=True)
    # Each watch task carries the generation it was queued with; a duplicate delivery of
    # an older one finds the number moved on and stops (django-q2 delivers at least once).
    watch_generation = models.PositiveIntegerField(default=0)
    # The sweeper took the execution over from a worker that went silent.
    taken_over_at = models.DateTimeField(_("taken over"), null=True, blank=True)
    next_look_at = models.DateTimeField(_("next look at the tunnel"), null=True, blank=True)
    down_seen_at = models.DateTimeField(_("tunnel seen DOWN"), null=True, blank=True)
    up_seen_at = models.DateTimeField(_("tunnel back UP"), null=True, blank=True)
    cleared_seen_at = models.DateTimeField(_("maintenance seen cleared"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=ExecutionOutcome.choices, blank=True
    )

    class Meta:
        verbose_name = _("execution")
        verbose_name_plural = _("executions")

    def __str__(self) -> str:
        return f"execution of #{self.change_request_id}"

    @property
    def request(self) -> ChangeRequest:
        return self.change_request

    # -- starting -----------------------------------------------------------------------

    @classmethod
    def claim(
        cls, request: ChangeRequest, *, task_id: str = "", worker: str = ""
    ) -> Execution | None:
        """The request's `approved` → `running`, for exactly one caller: its new Execution.

        None when another caller won, or the window is not open.
        """
        now = timezone.now()
        with transaction.atomic():
            window_open = models.Q(window_start__lte=now, window_end__gt=now)
            if not request.transition(
                ChangeStatus.APPROVED, ChangeStatus.RUNNING, now, where=window_open
            ):
                return None
            execution = cls.objects.create(
                change_request=request,
                task_id=task_id,
                worker=worker,
                claimed_at=now,
                heartbeat_at=now,
            )
            execution.step(Text(N_("Execution started by worker %(w)s."), w=worker or "?"), at=now)
            AuditEvent.record(
                AuditAction.EXECUTION_CLAIMED,
                actor_kind=ActorKind.SYSTEM,
                change_request=request,
                message=Text(N_("The window is open; execution started.")),
                details={"task_id": task_id, "worker": worker},
                at=now,
            )
            announce_request(
                ChatEvent.EXECUTION_STARTED,
                request,
                Text(N_("the window is open; the change started.")),
            )
        return execution

    def step(
        self, message: Text, *, level: str = StepLevel.INFO, data: dict | None = None, at=None
    ) -> ExecutionStep:
        """Add a line to the execution's story: stored as data, read in each reader's words."""
        return ExecutionStep.objects.create(
            execution=self,
            at=at or timezone.now(),
            level=level,
            message=english(message),
            text=as_data(message) if isinstance(message, Text) else {},
            data=json.loads(canonical_json(data or {})),
        )

    def heartbeat(self) -> bool:
        """Say this worker is alive; False if the execution has finished meanwhile."""
        now = timezone.now()
        alive = Execution.objects.filter(pk=self.pk, finished_at__isnull=True).update(
            heartbeat_at=now
        )
        self.heartbeat_at = now
        return bool(alive)

    def mark_calling_aws(self, before: dict[str, Any], watch_minutes: int) -> bool:
        """Durably record "about to call AWS". True for the one caller that may call."""
        now = timezone.now()
        watch_until = now + timedelta(minutes=watch_minutes)
        with transaction.atomic():
            won = Execution.objects.filter(
                pk=self.pk,
                calling_aws_at__isnull=True,
                finished_at__isnull=True,
                change_request__status=ChangeStatus.RUNNING,
            ).update(calling_aws_at=now, heartbeat_at=now, before=before, watch_until=watch_until)
            if not won:
                return False
            self.calling_aws_at, self.heartbeat_at = now, now
            self.before, self.watch_until = before, watch_until
            request = self.change_request
            self.step(Text(N_("Preflight checks passed. Calling AWS now.")), at=now, data=before)
            AuditEvent.record(
                AuditAction.EXECUTION_CALLING_AWS,
                actor_kind=ActorKind.SYSTEM,
                change_request=request,
                message=Text(N_("About to call AWS: %(call)s"), call=request.aws_call_name),
                details={"before": before},
                at=now,
            )
        return True

    def record_aws_answer(self, request_id: str) -> None:
        now = timezone.now()
        with transaction.atomic():
            Execution.objects.filter(pk=self.pk).update(
                aws_answered_at=now, aws_request_id=request_id, heartbeat_at=now
            )
            self.aws_answered_at, self.aws_request_id = now, request_id
            self.step(
                Text(
                    N_("AWS accepted the call (request id %(id)s). Watching the tunnel."),
                    id=request_id or "?",
                ),
                at=now,
            )
            AuditEvent.record(
                AuditAction.EXECUTION_AWS_ANSWERED,
                actor_kind=ActorKind.AWS,
                change_request=self.change_request,
                message=Text(N_("AWS accepted %(call)s"), call=self.change_request.aws_call_name),
                details={"request_id": request_id},
                at=now,
            )

    def record_unclear_answer(self, code: str, message: str) -> None:
        """The call may or may not have reached AWS: keep AWS's words, decide later."""
        now = timezone.now()
        with transaction.atomic():
            Execution.objects.filter(pk=self.pk).update(
                aws_error_code=code, aws_error_message=message, heartbeat_at=now
            )
            self.aws_error_code, self.aws_error_message = code, message
            self.step(
                Text(
                    N_(
                        "AWS did not answer clearly (%(code)s: %(message)s). vpnctl does not "
                        "send the change again; it watches the tunnel to learn whether AWS acted."
                    ),
                    code=code,
                    message=message,
                ),
                level=StepLevel.WARNING,
                at=now,
            )

    def observe(self, tunnel: Tunnel, connection: VpnConnection) -> None:
        """Note what a watch poll saw, each first time as a step and an audit event: the
        tunnel DOWN, UP again after it, and the pending maintenance cleared."""
        now = timezone.now()
        fields: dict[str, Any] = {"heartbeat_at": now}
        seen: list[tuple[str, Text, str]] = []
        if tunnel.status == TunnelStatus.DOWN and self.down_seen_at is None:
            fields["down_seen_at"] = now
            seen.append(
                (
                    AuditAction.TUNNEL_SEEN_DOWN,
                    Text(N_("Tunnel %(ip)s is DOWN: AWS is working on it."), ip=tunnel.outside_ip),
                    StepLevel.WARNING,
                )
            )
        elif (
            tunnel.status == TunnelStatus.UP
            and self.down_seen_at is not None
            and self.up_seen_at is None
        ):
            fields["up_seen_at"] = now
            seen.append(
                (
                    AuditAction.TUNNEL_SEEN_UP,
                    Text(N_("Tunnel %(ip)s is UP again."), ip=tunnel.outside_ip),
                    StepLevel.INFO,
                )
            )
        was_pending = (self.before or {}).get("pending_maintenance") == (
            PendingMaintenance.AVAILABLE
        )
        if (
            was_pending
            and tunnel.pending_maintenance != PendingMaintenance.AVAILABLE
            and self.cleared_seen_at is None
        ):
            fields["cleared_seen_at"] = now
            seen.append(
                (
                    AuditAction.MAINTENANCE_CLEARED,
                    Text(
                        N_("AWS no longer shows maintenance pending on tunnel %(ip)s."),
                        ip=tunnel.outside_ip,
                    ),
                    StepLevel.INFO,
                )
            )
        with transaction.atomic():
            Execution.objects.filter(pk=self.pk).update(**fields)
            observed = {
                "tunnel": tunnel.outside_ip,
                "status": tunnel.status,
                "status_message": tunnel.status_message,
                "pending_maintenance": tunnel.pending_maintenance,
            }
            for action, sentence, level in seen:
                self.step(sentence, level=level, at=now, data=observed)
                AuditEvent.record(
                    action,
                    actor_kind=ActorKind.AWS,
                    change_request=self.change_request,
                    message=sentence,
                    details=observed,
                    at=now,
                )
        for name, value in fields.items():
            setattr(self, name, value)

    def _finish(
        self,
        *,
        outcome: str,
        status: str,
        action: str,
        message: Text,
        reason: Any = "",
        level: str = StepLevel.INFO,
        error_code: str = "",
        error_message: str = "",
        after: dict[str, Any] | None = None,
        actor_kind: str = ActorKind.SYSTEM,
    ) -> bool:
        """End the execution and its request together. False if it had already ended."""
        now = timezone.now()
        request = self.change_request
        with transaction.atomic():
            ended = Execution.objects.filter(pk=self.pk, finished_at__isnull=True).update(
                finished_at=now,
                outcome=outcome,
                aws_error_code=error_code or models.F("aws_error_code"),
                aws_error_message=error_message or models.F("aws_error_message"),
                after=after if after is not None else models.F("after"),
            )
            if not ended or not request.transition(
                ChangeStatus.RUNNING,
                status,
                now,
                finished_at=now,
                status_reason=english(reason),
                status_reason_text=as_data(reason) if isinstance(reason, Text) else {},
            ):
                transaction.set_rollback(True)
                return False
            self.finished_at, self.outcome = now, outcome
            if error_code:
                self.aws_error_code, self.aws_error_message = error_code, error_message
            self.step(message, level=level, at=now)
            AuditEvent.record(
                action,
                actor_kind=actor_kind,
                change_request=request,
                message=message,
                details={
                    "outcome": outcome,
                    "reason": as_data(reason),
                    "aws_error_code": error_code,
                    "aws_error_message": error_message,
                    "after": after or {},
                },
                at=now,
            )
            notifications.after_commit(Notice.FINISHED, request)
            if outcome in OUTCOME_EVENTS:
                announce_request(OUTCOME_EVENTS[outcome], request, message, code=error_code)
            if request.batch_id is not None:
                # The batch's next tunnel on this connection waited for this one: start it
                # now rather than at the sweeper's next minute (it runs only if this one
                # succeeded; otherwise it ends blocked, without calling AWS).
                transaction.on_commit(request.queue_batch_followers)
        return True

    def block(self, reason: Any) -> bool:
        """A preflight check failed: nothing was sent to AWS."""
        return self._finish(
            outcome=ExecutionOutcome.BLOCKED,
            status=ChangeStatus.BLOCKED,
            action=AuditAction.EXECUTION_BLOCKED,
            message=Text(N_("Blocked: %(reason)s Nothing was sent to AWS."), reason=reason),
            reason=reason,
            level=StepLevel.ERROR,
        )

    def supersede(self, reason: Any) -> bool:
        """AWS already did what was asked: nothing left to do, nothing sent."""
        return self._finish(
            outcome=ExecutionOutcome.SUPERSEDED,
            status=ChangeStatus.SUPERSEDED,
            action=AuditAction.EXECUTION_SUPERSEDED,
            message=Text(
                N_("No longer needed: %(reason)s Nothing was sent to AWS."), reason=reason
            ),
            reason=reason,
        )

    def fail(self, reason: Any, *, error_code: str = "", error_message: str = "") -> bool:
        """AWS refused the call, or the call was never made (see the reason)."""
        if error_code:
            message = Text(
                N_("Failed: AWS answered %(code)s: %(msg)s"), code=error_code, msg=error_message
            )
        else:
            message = Text(N_("Failed: %(reason)s"), reason=reason)
        return self._finish(
            outcome=ExecutionOutcome.FAILED,
            status=ChangeStatus.FAILED,
            action=AuditAction.EXECUTION_FAILED,
            message=message,
            reason=reason,
            level=StepLevel.ERROR,
            error_code=error_code,
            error_message=error_message,
        )

    def succeed(self, after: dict[str, Any]) -> bool:
        return self._finish(
            outcome=ExecutionOutcome.SUCCEEDED,
            status=ChangeStatus.SUCCEEDED,
            action=AuditAction.EXECUTION_SUCCEEDED,
            message=Text(N_("Succeeded: the tunnel is UP and the change is done.")),
            after=after,
        )

    def time_out(self, reason: Any, after: dict[str, Any]) -> bool:
        return self._finish(
            outcome=ExecutionOutcome.TIMED_OUT,
            status=ChangeStatus.TIMED_OUT,
            action=AuditAction.EXECUTION_TIMED_OUT,
            message=Text(N_("Timed out: %(reason)s"), reason=reason),
            reason=reason,
            level=StepLevel.ERROR,
            after=after,
        )

    def next_watch(self, generation: int, delay: float = 0) -> int | None:
        """Hand the watch on to a new task, looking `delay` seconds from now: the new
        generation, or None if not ours to hand."""
        now = timezone.now()
        next_look = now + timedelta(seconds=delay)
        won = Execution.objects.filter(
            pk=self.pk, finished_at__isnull=True, watch_generation=generation
        ).update(watch_generation=generation + 1, heartbeat_at=now, next_look_at=next_look)
        if not won:
            return None
        self.watch_generation, self.heartbeat_at = generation + 1, now
        self.next_look_at = next_look
        return generation + 1

    def take_over(self, stale_before: datetime) -> int | None:
        """Claim a running execution whose worker went silent (the sweeper's conditional UPDATE).

        Returns the new watch generation, or None if the worker spoke up meanwhile.
        """
        now = timezone.now()
        won = Execution.objects.filter(
            pk=self.pk,
            finished_at__isnull=True,
            heartbeat_at__lt=stale_before,
            watch_generation=self.watch_generation,
        ).update(
            heartbeat_at=now,
            watch_generation=models.F("watch_generation") + 1,
            taken_over_at=now,
            next_look_at=now,
        )
        if not won:
            return None
        self.heartbeat_at, self.taken_over_at, self.next_look_at = now, now, now
        self.watch_generation += 1
        return self.watch_generation

    def silent_since(self, now: datetime) -> datetime | None:
        """When its worker was last heard of, if that is long enough ago to mean it is lost
        (the sweeper takes such an execution over); None while it is heard of."""
        stale = timedelta(seconds=settings.STALE_EXECUTION_SECONDS)
        if self.finished_at is None and self.heartbeat_at < now - stale:
            return self.heartbeat_at
        return None

    @property
    def reconciling(self) -> bool:
        """Taken over after a lost worker, the call possibly sent: vpnctl watches to learn."""
        return (
            self.finished_at is None
            and self.taken_over_at is not None
            and self.calling_aws_at is not None
        )

    def reconcile_lost_worker(self, generation: int) -> None:
        """After take_over: say what vpnctl knows and what it will do about it."""
        if self.calling_aws_at is None:
            self.fail(
                Text(
                    N_(
                        "The worker was lost before the call to AWS; nothing was sent. "
                        "Request the change again if it is still needed."
                    )
                )
            )
            return
        with transaction.atomic():
            self.step(
                Text(
                    N_(
                        "The worker was lost after the AWS call was prepared. vpnctl never sends a "
                        "change twice: it goes on watching the tunnel to learn what happened."
                    )
                ),
                level=StepLevel.WARNING,
                data={"last_heard_of": self.heartbeat_at, "generation": generation},
            )
            AuditEvent.record(
                AuditAction.EXECUTION_RECONCILED,
                actor_kind=ActorKind.SYSTEM,
                change_request=self.change_request,
                message=Text(
                    N_("Worker lost after the call was prepared; watching, not calling again.")
                ),
                details={"calling_aws_at": self.calling_aws_at, "generation": generation},
            )


class ExecutionStep(models.Model):
    """A timestamped sentence about an execution, for the request page's timeline."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps")
    at = models.DateTimeField(_("time"), default=timezone.now)
    level = models.CharField(
        _("level"), max_length=8, choices=StepLevel.choices, default=StepLevel.INFO
    )
    message = models.TextField(_("message"))  # in English, for reading without vpnctl
    text = models.JSONField(default=dict, blank=True)  # texts.Text: written for each reader
    data = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("execution step")
        verbose_name_plural = _("execution steps")

    def __str__(self) -> str:
        return self.message

    @property
    def sentence(self) -> str:
        """The step in the reader's language (the English message for older steps)."""
        return render(self.text) if self.text else self.message
