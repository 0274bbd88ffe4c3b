"""Access from outside the browser: personal API tokens.

A token is shown once, when it is made; only its SHA-256 digest is stored (a token is 32
random bytes, so a plain digest is enough: there is nothing to guess). It acts with its
user's roles, nothing more. The API (``maintenance/api/``) finds a token by its digest.
Making one, using one from an address it was never used from, and revoking one are
audited; the audit log names a token by its id, name and prefix, never by its value.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import times
from ..choices import AuditAction
from ..texts import N_, Text
from .audit import AuditEvent

TOKEN_PREFIX = "vpnctl_"
# What lists show of a token: "vpnctl_" and five of its 43 random characters.
SHOWN_CHARS = len(TOKEN_PREFIX) + 5
RATE_WINDOW = timedelta(minutes=1)


def token_digest(clear: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(clear.encode()).hexdigest()


class ApiToken(models.Model):
    """One personal API token of one user."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=100)
    # The first characters of the token, shown in lists so its owner can tell tokens apart.
    prefix = models.CharField(_("prefix"), max_length=16)
    digest = models.CharField(_("digest"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(_("last used from"), null=True, blank=True)
    # The per-token rate limit's fixed window, counted by a conditional UPDATE.
    window_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    window_calls = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    # -- making and ending ------------------------------------------------------------

    @classmethod
    def issue(
        cls, user: Any, *, name: str, expires_at: datetime | None = None
    ) -> tuple[ApiToken, str]:
        """A new token for `user`: the row, and the token itself, which is never stored
        and must be shown to its owner now. Audited (without the token)."""
        now = timezone.now()
        clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with transaction.atomic():
            token = cls.objects.create(
                user=user,
                name=name.strip(),
                prefix=clear[:SHOWN_CHARS],
                digest=token_digest(clear),
                created_at=now,
                expires_at=expires_at,
            )
            AuditEvent.record(
                AuditAction.API_TOKEN_CREATED,
                actor=user,
                message=Text(
                    N_("%(user)s created the API token %(name)s (%(prefix)s…)."),
                    user=user.get_username(),
                    name=token.name,
                    prefix=token.prefix,
                ),
                details={**token.audit_snapshot(), "expires_at": times.iso(expires_at)},
                at=now,
            )
        return token, clear

    def revoke(self, *, user: Any) -> bool:
        """Stop the token for good. Audited; True if it was live until now."""
        now = timezone.now()
        with transaction.atomic():
            revoked = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
                revoked_at=now
            )
            if revoked:
                self.revoked_at = now
                AuditEvent.record(
                    AuditAction.API_TOKEN_REVOKED,
                    actor=user,
                    message=Text(
                        N_("%(user)s revoked the API token %(name)s (%(prefix)s…)."),
                        user=user.get_username(),
                        name=self.name,
                        prefix=self.prefix,
                    ),
                    details=self.audit_snapshot(),
                    at=now,
                )
        return bool(revoked)

    def audit_snapshot(self) -> dict[str, Any]:
        return {"token": self.pk, "name": self.name, "prefix": self.prefix}

    # -- using ------------------------------------------------------------------------

    @classmethod
    def find(cls, clear: str) -> ApiToken | None:
        """The token with this value, with its user, or None."""
        # With the profile: the call reads its times in the user's zone (times.zone_of).
        tokens = cls.objects.select_related("user", "user__vpnctl_profile")
        return tokens.filter(digest=token_digest(clear)).first()

    def refusal(self, now: datetime | None = None) -> str:
        """Why the token may not be used now, in the reader's words; "" if it may."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return gettext("This API token was revoked.")
        if self.expires_at is not None and self.expires_at <= now:
            expired = self.expires_at.astimezone(UTC).isoformat(timespec="seconds")
            return gettext("This API token expired on %(when)s.") % {
                "when": expired.replace("+00:00", "Z")
            }
        if not self.user.is_active:
            return gettext("The user of this API token is inactive.")
        return ""

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )

    def count_call(self, *, ip: str | None, limit: int, now: datetime | None = None) -> int:
        """Count one call in the token's rate-limit window and note where it came from.

        A fixed window of a minute, counted by a conditional UPDATE, so that two calls at
        once cannot both take the last place: a call either starts a new window, or takes
        a place left in the current one. Returns 0 if the call may go on, else the
        seconds until the window ends (the call is not counted then). A call from an
        address this token was never used from is audited.
        """
        now = now or timezone.now()
        seen = {"last_used_at": now, "last_used_ip": ip}
        tokens = ApiToken.objects.filter(pk=self.pk)
        over = Q(window_started_at__isnull=True) | Q(window_started_at__lte=now - RATE_WINDOW)
        counted = tokens.filter(over).update(window_started_at=now, window_calls=1, **seen)
        if not counted:
            counted = tokens.filter(
                window_started_at__gt=now - RATE_WINDOW, window_calls__lt=limit
            ).update(window_calls=F("window_calls") + 1, **seen)
        if not counted:
            started = tokens.values_list("window_started_at", flat=True).first() or now
            return max(1, int((started + RATE_WINDOW - now).total_seconds() + 0.999))
        previous_ip, self.last_used_at, self.last_used_ip = self.last_used_ip, now, ip
        if ip and ip != previous_ip:
            self._note_address(ip, now)
        return 0

    def _note_address(self, ip: str, now: datetime) -> None:
        """Audit the first use from `ip` (an address it changed back to was seen before)."""
        seen = AuditEvent.objects.filter(
            action=AuditAction.API_TOKEN_NEW_ADDRESS, details__token=self.pk, details__ip=ip
        )
        if seen.exists():
            return
        AuditEvent.record(
            AuditAction.API_TOKEN_NEW_ADDRESS,
            actor=self.user,
            message=Text(
                N_("The API token %(name)s (%(prefix)s…) of %(user)s was used from %(ip)s."),
                name=self.name,
                prefix=self.prefix,
                user=self.user.get_username(),
                ip=ip,
            ),
            details={**self.audit_snapshot(), "ip": ip},
            at=now,
        )
