"""The project's own AWS errors, and the translation of botocore's failures into them.

Every failure becomes an :class:`AwsError` (or a subclass) carrying AWS's error code, message
and request id, with anything that looks like a credential redacted from the message.
"""

from __future__ import annotations

import re

from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    UnknownEndpointError,
)

# Error codes that mean "slow down": the request was refused, nothing was done.
THROTTLE_CODES = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "EC2ThrottledException"}
)
# Error codes that mean the credentials, the role or the account cannot be used here.
AUTH_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "OptInRequired",
        "RegionDisabledException",
    }
)
# Client-side errors raised before anything is sent: a mutating call that fails with one of
# these certainly did nothing in AWS.
_NOT_SENT_ERRORS = (
    ParamValidationError,
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    NoRegionError,
    UnknownEndpointError,
)
_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


class AwsError(Exception):
    """AWS refused or failed a call. Carries AWS's code, message and request id."""

    def __init__(self, action: str, code: str, message: str, request_id: str = "") -> None:
        self.action = action
        self.code = code
        self.message = _redact(message)
        self.request_id = request_id
        super().__init__(f"{self.code}: {self.message}")

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {
            "action": self.action,
            "code": self.code,
            "message": self.message,
            "request_id": self.request_id,
        }


class AwsThrottled(AwsError):
    """AWS kept answering RequestLimitExceeded after every retry."""


class AwsAmbiguousError(AwsError):
    """A mutating call whose fate is unknown (timeout, 5xx, connection lost).

    AWS may or may not have acted: read the replacement status before deciding anything,
    and never send the call again blindly.
    """


class AwsAuthError(AwsError):
    """The credentials or the assumed role cannot be used (or are not allowed)."""


class AwsMalformedAnswer(AwsError):
    """AWS answered, but the answer lacks a field we need or has the wrong type."""

    def __init__(self, action: str, message: str, request_id: str = "") -> None:
        super().__init__(action, "MalformedAnswer", message, request_id)


# Access key ids, and anything long and base64-like (secret keys, session tokens). Applied to
# every message we keep, so that no credential reaches a log, the database or a page even if
# an endpoint echoes one back.
_SECRET_RE = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b|[A-Za-z0-9/+=]{40,}")


def _redact(text: str) -> str:
    return _SECRET_RE.sub("[redacted]", str(text))


def _from_client_error(exc: ClientError, action: str, *, mutating: bool) -> AwsError:
    """Map a botocore ClientError to our exception classes."""
    error = exc.response.get("Error") or {}
    meta = exc.response.get("ResponseMetadata") or {}
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "")
    request_id = str(meta.get("RequestId") or "")
    status = meta.get("HTTPStatusCode")
    if exc.operation_name == "AssumeRole":
        # The role could not be assumed: nothing was sent to EC2.
        return AwsAuthError(action, code, f"AssumeRole failed: {message}", request_id)
    if code in THROTTLE_CODES:
        return AwsThrottled(action, code, message, request_id)
    if code in AUTH_CODES:
        return AwsAuthError(action, code, message, request_id)
    if mutating and (not isinstance(status, int) or status >= 500):
        return AwsAmbiguousError(action, code, message, request_id)
    return AwsError(action, code, message, request_id)


def _from_exception(exc: Exception, action: str, *, mutating: bool) -> AwsError:
    """Map anything a botocore call raised to our exception classes."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ClientError):
        return _from_client_error(exc, action, mutating=mutating)
    code = type(exc).__name__
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return AwsAuthError(action, code, "No usable AWS credentials were found.")
    if isinstance(exc, _NOT_SENT_ERRORS):
        return AwsError(action, code, str(exc))
    if mutating:
        # Timeouts, dropped connections, unparseable answers: the request may have reached
        # AWS and been acted on.
        return AwsAmbiguousError(action, code, str(exc) or code)
    return AwsError(action, code, str(exc) or code)


def _auth_error(exc: Exception, action: str) -> AwsError:
    error = _from_exception(exc, action, mutating=False)
    if isinstance(error, AwsAuthError):
        return error
    return AwsAuthError(action, error.code, error.message, error.request_id)
