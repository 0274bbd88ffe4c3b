"""Batches: lifecycle control for many tunnels, requested and approved together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import notifications
from ..choices import ChangeKind, ChangeStatus, Decision, Notice
from ..roles import has_perm
from ..texts import N_, Text
from .approvals import Approval
from .changes import ChangeRequest, TransitionRefused, create_checked
from .chat import ChatEvent, announce_request
from .inventory import AwsAccount, Tunnel, ip_order
from .rules import check_submitter


class ChangeBatch(models.Model):
    """Lifecycle control for many tunnels, requested and approved together.

    Its requests run one tunnel of a connection at a time: the second waits until the
    first has succeeded and its tunnel is UP, and does not start if the first failed.
    """

    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="change_batches"
    )
    reason = models.TextField(_("reason"))
    created_at = models.DateTimeField(_("requested"), default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("change batch")
        verbose_name_plural = _("change batches")

    def __str__(self) -> str:
        return f"batch #{self.pk}"

    # -- requesting -------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        *,
        user: Any,
        tunnels: list[Tunnel],
        reason: str,
        window_start: datetime | None,
        window_end: datetime,
        start_when_approved: bool = False,
        skip_tunnel_replacement: bool = False,
    ) -> ChangeBatch:
        """Ask for lifecycle control on every tunnel given, in one batch, or on none.

        Each request is checked and audited exactly as ChangeRequest.submit does it; if
        any tunnel breaks a rule, nothing is created and the error names the tunnels.
        """
        window_start, start_when_approved, now = check_submitter(
            user, reason, window_start, start_when_approved
        )
        unique = {t.pk: t for t in tunnels}
        if not unique:
            raise ValidationError(_("Choose at least one tunnel."))
        ordered = sorted(
            Tunnel.objects.filter(pk__in=unique).select_related("connection"),
            key=lambda t: (t.connection.vpn_connection_id, t.connection_id, ip_order(t.outside_ip)),
        )
        # (field, message) -> the tunnels that broke it, so a rule broken by every tunnel
        # (a window in the past, say) is said once, not once per tunnel.
        broken: dict[tuple[str, str], list[str]] = {}
        with transaction.atomic():
            batch = cls.objects.create(requester=user, reason=reason.strip(), created_at=now)
            requests = []
            for tunnel in ordered:
                try:
                    requests.append(
                        create_checked(
                            user=user,
                            tunnel=tunnel,
                            kind=ChangeKind.ENABLE_LIFECYCLE,
                            reason=reason,
                            window_start=window_start,
                            window_end=window_end,
                            start_when_approved=start_when_approved,
                            skip_tunnel_replacement=skip_tunnel_replacement,
                            now=now,
                            batch=batch,
                        )
                    )
                except ValidationError as exc:
                    for field, errors in exc.message_dict.items():
                        for message in errors:
                            broken.setdefault((field, message), []).append(str(tunnel))
            if broken:
                transaction.set_rollback(True)
                raise ValidationError(_batch_errors(broken, len(ordered)))
            first = requests[0]
            # One email for the batch: it names the first request, whose page links here.
            notifications.after_commit(Notice.SUBMITTED, first)
            announce_request(
                ChatEvent.NEEDS_APPROVAL,
                first,
                Text(
                    N_(
                        "first of batch #%(batch)d, %(n)d requests approved or rejected "
                        "together, waits for approval; window %(start)s to %(end)s."
                    ),
                    batch=batch.pk,
                    n=len(requests),
                    start=first.window_start,
                    end=first.window_end,
                ),
            )
        return batch

    # -- deciding ---------------------------------------------------------------------

    def ordered_requests(self) -> list[ChangeRequest]:
        """The batch's requests by connection, then tunnel 1 before tunnel 2 (prefetch-aware)."""
        return sorted(self.requests.all(), key=lambda r: r.pk)

    def can_decide(self, user: Any) -> bool:
        """Whether `user` may approve or reject the batch now (uses prefetched approvals)."""
        if not has_perm(user, "maintenance.approve_change") or user.pk == self.requester_id:
            return False
        waiting = [r for r in self.requests.all() if r.status == ChangeStatus.PENDING_APPROVAL]
        return any(not r.decided_by(user) for r in waiting) and not self.refusals(user, waiting)

    def refusals(self, user: Any, requests: list[ChangeRequest]) -> list[str]:
        """Why `user` may not decide these requests: one sentence per account whose named
        approvers leave them out (a batch is decided whole, so one such account refuses it)."""
        accounts = {r.tunnel.connection.account_id: r.tunnel.connection.account for r in requests}
        AwsAccount.read_named_approvers(accounts.values(), user)  # one query for them all
        return [a.refusal() for _pk, a in sorted(accounts.items()) if not a.may_decide(user)]

    def approve(self, *, user: Any, comment: str = "") -> list[ChangeRequest]:
        """Approve every request of the batch still waiting, together, or none of them."""
        return self._decide(user=user, decision=Decision.APPROVE, comment=comment)

    def reject(self, *, user: Any, comment: str = "") -> list[ChangeRequest]:
        """Reject every request of the batch still waiting, together."""
        return self._decide(user=user, decision=Decision.REJECT, comment=comment)

    def _decide(self, *, user: Any, decision: str, comment: str) -> list[ChangeRequest]:
        """Delegate to each request's own transition, all inside one transaction."""
        if not has_perm(user, "maintenance.approve_change"):
            raise PermissionDenied(_("You may not approve or reject changes."))
        if user.pk == self.requester_id:
            raise ValidationError(_("You cannot approve or reject your own request."))
        if decision == Decision.REJECT and not (comment or "").strip():
            raise ValidationError({"comment": [_("Say why you reject it.")]})
        with transaction.atomic():
            waiting = list(
                ChangeRequest.objects.filter(batch=self, status=ChangeStatus.PENDING_APPROVAL)
                .select_related("tunnel__connection__account")
                .order_by("pk")
            )
            if not waiting:
                raise TransitionRefused(_("No request of this batch is waiting for a decision."))
            refusals = self.refusals(user, waiting)
            if refusals:
                raise PermissionDenied(" ".join(refusals))
            decided = set(
                Approval.objects.current()
                .filter(change_request__in=waiting, approver=user)
                .values_list("change_request_id", flat=True)
            )
            undecided = [r for r in waiting if r.pk not in decided]
            if not undecided:
                raise TransitionRefused(_("You have already decided on this batch."))
            for request in undecided:
                try:
                    request.decide(user=user, decision=decision, comment=comment)
                except ValidationError as exc:
                    # A refusal by the request's state stays one (the API answers it 409).
                    refused = TransitionRefused if isinstance(exc, TransitionRefused) else None
                    raise (refused or ValidationError)(
                        _("Request #%(pk)s: %(error)s")
                        % {"pk": request.pk, "error": " ".join(exc.messages)}
                    ) from exc
        return undecided


def _batch_errors(broken: dict[tuple[str, str], list[str]], total: int) -> dict[str, list[str]]:
    """The batch's refusal: each broken rule once, with the tunnels that broke it."""
    errors: dict[str, list[str]] = {}
    for (field, message), tunnels in broken.items():
        if len(tunnels) < total or total == 1:
            message = _("%(tunnels)s: %(error)s") % {
                "tunnels": ", ".join(tunnels),
                "error": message,
            }
        errors.setdefault(field, []).append(str(message))
    return errors
