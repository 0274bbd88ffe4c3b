"""Secrets vpnctl keeps at rest (chat webhook URLs, signing secrets): encrypted with Fernet.

A leaf: it knows the settings and ``cryptography``, nothing of vpnctl. The key is
``settings.SECRETS_KEY`` (``VPNCTL_SECRETS_KEY``, a Fernet key) when set, else derived from
``SECRET_KEY`` with HKDF-SHA256. Rotating ``SECRET_KEY`` without ``VPNCTL_SECRETS_KEY`` makes
what was stored unreadable: ``decrypt`` then raises ``SecretUnreadable``, and the admin
enters the webhook URL again.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"vpnctl stored secrets v1"


class SecretUnreadable(Exception):
    """What was stored cannot be decrypted with the current key."""


def _fernet() -> Fernet:
    key = getattr(settings, "SECRETS_KEY", "")
    if key:
        return Fernet(key.encode() if isinstance(key, str) else key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(value: str) -> str:
    """The encrypted form to store ("" stays "")."""
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt(token: str) -> str:
    """The stored value in clear, or SecretUnreadable when the key changed."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        raise SecretUnreadable(
            "a stored secret cannot be decrypted with the current key (SECRET_KEY or "
            "VPNCTL_SECRETS_KEY changed?): enter the webhook URL again"
        ) from None


def url_hint(url: str) -> str:
    """What may be shown of a URL: its scheme, host and last four characters."""
    parts = urlsplit(url)
    tail = url.rstrip("/")[-4:]
    return f"{parts.scheme}://{parts.hostname or ''}/…/{tail}"
