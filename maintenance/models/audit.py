"""The audit log: append-only events, each chained to the one before by SHA-256.

Writers go through ``AuditEvent.record`` inside the transaction of the change they
record; a single ``AuditChainHead`` row serialises them. ``verify_chain`` names the first
event that does not hold.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import times
from ..choices import ActorKind, AuditAction
from ..texts import Text, english, render
from .inventory import AwsAccount, Tunnel, VpnConnection


class AuditLogError(Exception):
    """Raised on any attempt to change or delete an audit event."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AuditLogError("The audit log is append-only: events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogError("The audit log is append-only: events cannot be deleted.")


class AuditChainHead(models.Model):
    """A single row that serialises writers of the audit chain.

    Writers lock it with select_for_update on PostgreSQL; on SQLite the IMMEDIATE
    transaction mode already lets one writer in at a time.
    """

    last_hash = models.CharField(max_length=64, default="")
    count = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"audit chain head at #{self.count}"


GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class AuditEvent(models.Model):
    """One thing that happened, chained to the one before by SHA-256."""

    seq = models.PositiveBigIntegerField(_("sequence"), unique=True, editable=False)
    at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_name = models.CharField(_("actor name"), max_length=150)
    actor_kind = models.CharField(_("actor kind"), max_length=8, choices=ActorKind.choices)
    action = models.CharField(_("action"), max_length=48, choices=AuditAction.choices)
    # The three are indexed together with what is read by them (Meta.indexes), which
    # serves their plain lookups too.
    account = models.ForeignKey(
        AwsAccount,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    connection = models.ForeignKey(
        VpnConnection,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    tunnel = models.ForeignKey(
        Tunnel, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    change_request = models.ForeignKey(
        "ChangeRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    message = models.TextField(_("message"), blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64, unique=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["seq"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        constraints = [
            # A fork in the chain (two events naming the same predecessor) cannot be stored.
            models.UniqueConstraint(fields=["prev_hash"], name="audit_chain_is_linear"),
        ]
        indexes = [
            models.Index(fields=["action", "at"], name="audit_action_at_idx"),
            # The audit page's filters, newest first, read from a cursor (views.audit).
            models.Index(fields=["action", "seq"], name="audit_action_seq_idx"),
            models.Index(fields=["account", "seq"], name="audit_account_seq_idx"),
            models.Index(fields=["connection", "seq"], name="audit_connection_seq_idx"),
            # "AWS applied it itself since": one index seek per tunnel (applied_by_aws_since).
            # Without it each tunnel scanned every such event of the period: the
            # dashboard grew with tunnels x events.
            models.Index(fields=["tunnel", "action", "at"], name="audit_tunnel_action_at_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogError("The audit log is append-only: events cannot be changed.")
        if not self.hash:
            raise AuditLogError("Write audit events with AuditEvent.record().")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogError("The audit log is append-only: events cannot be deleted.")

    @property
    def sentence(self) -> str:
        """What happened, in the reader's language and zone (the stored English message
        for events written before sentences were kept as data)."""
        text = (self.details or {}).get("text")
        return render(text) if text else self.message

    def hashed_fields(self) -> dict[str, Any]:
        """The canonical form the hash covers (ids, not names, for related objects)."""
        at = self.at
        if isinstance(at, datetime):
            at = times.utc_iso(at)
        return {
            "seq": self.seq,
            "at": at,
            "actor_name": self.actor_name,
            "actor_kind": self.actor_kind,
            "action": self.action,
            "account": self.account_id,
            "connection": self.connection_id,
            "tunnel": self.tunnel_id,
            "change_request": self.change_request_id,
            "message": self.message,
            "details": json.loads(canonical_json(self.details)),
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.hashed_fields()).encode()).hexdigest()

    @classmethod
    def record(
        cls,
        action: str,
        *,
        actor: Any = None,
        actor_kind: str | None = None,
        account: AwsAccount | None = None,
        connection: VpnConnection | None = None,
        tunnel: Tunnel | None = None,
        change_request: Any = None,
        message: Any = "",
        details: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEvent:
        """Append one event to the chain; call inside the transaction of the change it records.

        Related objects fill in their parents: a tunnel names its connection, a connection
        its account. A ``texts.Text`` message is kept as data (``details["text"]``) and
        written for each reader when shown; ``message`` keeps it in English, so that the
        record reads without vpnctl.
        """
        details = dict(details or {})
        if isinstance(message, Text):
            details["text"] = message.as_data()
        message = english(message)
        if change_request is not None and tunnel is None:
            tunnel = change_request.tunnel
        if tunnel is not None and connection is None:
            connection = tunnel.connection
        if connection is not None and account is None:
            account = connection.account
        if actor is not None and getattr(actor, "is_authenticated", False):
            kind, name, user = ActorKind.USER, actor.get_username(), actor
        else:
            kind = actor_kind or ActorKind.SYSTEM
            name, user = str(kind), None
        at = at or timezone.now()
        with transaction.atomic():
            head = cls._lock_head()
            event = cls(
                seq=head.count + 1,
                at=at,
                actor=user,
                actor_name=name,
                actor_kind=kind,
                action=action,
                account=account,
                connection=connection,
                tunnel=tunnel,
                change_request=change_request,
                message=message,
                details=json.loads(canonical_json(details)),
                prev_hash=head.last_hash or GENESIS_HASH,
            )
            event.hash = event.compute_hash()
            super(AuditEvent, event).save(force_insert=True)
            AuditChainHead.objects.filter(pk=head.pk).update(last_hash=event.hash, count=event.seq)
        return event

    @staticmethod
    def _lock_head() -> AuditChainHead:
        # select_for_update serialises writers on PostgreSQL; SQLite ignores it, where the
        # IMMEDIATE transaction that wraps us already holds the database's write lock.
        # Every lock in vpnctl is FOR NO KEY UPDATE: a plain FOR UPDATE would also block
        # the foreign-key checks other transactions make at COMMIT, and deadlock them.
        head = AuditChainHead.objects.select_for_update(no_key=True).filter(pk=1).first()
        if head is None:
            AuditChainHead.objects.get_or_create(pk=1)
            head = AuditChainHead.objects.select_for_update(no_key=True).get(pk=1)
        return head

    @classmethod
    def verify_chain(cls, batch_size: int = 2000) -> tuple[int, AuditEvent | None, str]:
        """Walk the chain in order. Returns (events checked, first bad event, why)."""
        expected_prev = GENESIS_HASH
        expected_seq = 1
        checked = 0
        for event in cls.objects.order_by("seq").iterator(chunk_size=batch_size):
            if event.seq != expected_seq:
                return checked, event, f"sequence jumps from {expected_seq - 1} to {event.seq}"
            if event.prev_hash != expected_prev:
                return checked, event, "its previous-hash does not match the event before it"
            if event.compute_hash() != event.hash:
                return checked, event, "its content does not match its hash"
            expected_prev = event.hash
            expected_seq += 1
            checked += 1
        head = AuditChainHead.objects.filter(pk=1).first()
        if head is not None and head.count != checked:
            return checked, None, f"the chain head counts {head.count} events, found {checked}"
        return checked, None, ""


# --------------------------------------------------------------------------------------
