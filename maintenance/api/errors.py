"""The API's errors: one JSON shape for every refusal, and the handlers that give it.

Every error answers ``{"detail": "...", "errors": {"field": ["..."]}}``: ``detail`` in the
reader's language (Accept-Language), ``errors`` the messages of each field that did not
parse or broke a rule, by the field's name (empty when the refusal names no field). The
messages are the models' and the forms' own, so the API and the pages say the same.

- 400: the input does not parse, or breaks a rule of the workflow;
- 401: no token, an unknown, revoked or expired one, or an inactive user;
- 403: the token's user may not do this (their roles, or an account's named approvers);
- 404: no such object;
- 409: a transition refused by the state the object is in (``TransitionRefused``);
- 429: over the token's rate limit (with ``Retry-After``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import Form
from django.http import Http404, HttpRequest, JsonResponse
from django.utils.translation import gettext
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as SchemaValidationError

from ..models import TransitionRefused


class ErrorOut(Schema):
    """Why a call was refused."""

    detail: str
    errors: dict[str, list[str]] = {}


# The answers every operation may give besides its own, for the OpenAPI schema.
COMMON_ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 429: ErrorOut}
TRANSITION_ERRORS = {**COMMON_ERRORS, 409: ErrorOut}


class ApiError(Exception):
    """A refusal with its status, message and headers (auth raises 401 and 429 so)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.errors, self.headers = errors or {}, headers or {}


class FormInvalid(Exception):
    """A form that did not parse: 400 with each field's messages, by the API's names."""

    def __init__(self, form: Form, names: dict[str, str]) -> None:
        super().__init__("invalid form")
        self.form, self.names = form, names


def error_response(exc: ApiError) -> JsonResponse:
    response = JsonResponse({"detail": exc.detail, "errors": exc.errors}, status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="vpnctl"'
    return response


def _invalid(errors: dict[str, list[str]], status: int = 400) -> ApiError:
    """A refusal naming the fields; the non-field messages (``__all__``) make the detail."""
    general = errors.pop("__all__", [])
    detail = " ".join(general) or gettext("The input is not valid: see the fields named.")
    return ApiError(status, detail, errors=errors)


def _messages(errors: Any) -> dict[str, list[str]]:
    return {name: [str(message) for message in messages] for name, messages in errors.items()}


def _from_form(request: HttpRequest, exc: FormInvalid) -> ApiError:
    errors = _messages(exc.form.errors)
    return _invalid({exc.names.get(name, name): messages for name, messages in errors.items()})


def _from_model(request: HttpRequest, exc: ValidationError) -> ApiError:
    """A model's refusal: 409 if the state refused the transition, else 400."""
    status = 409 if isinstance(exc, TransitionRefused) else 400
    if hasattr(exc, "error_dict"):
        return _invalid(_messages(exc.message_dict), status)
    return ApiError(status, " ".join(exc.messages))


def _from_schema(request: HttpRequest, exc: SchemaValidationError) -> ApiError:
    """Input the schema refused (a wrong type, a missing field, a body that is not JSON)."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ())[1:] if not isinstance(part, int)]
        # The last name is the field's; a refusal of the whole body or query names none.
        errors.setdefault(location[-1] if location else "__all__", []).append(str(error["msg"]))
    return _invalid(errors)


def _forbidden(request: HttpRequest, exc: PermissionDenied) -> ApiError:
    return ApiError(403, str(exc) or gettext("Your roles do not allow this."))


def _not_found(request: HttpRequest, exc: Http404) -> ApiError:
    return ApiError(404, gettext("There is no such object."))


def _no_token(request: HttpRequest, exc: AuthenticationError) -> ApiError:
    return ApiError(401, gettext("Send a personal API token: Authorization: Bearer <token>."))


def _http_error(request: HttpRequest, exc: HttpError) -> ApiError:
    return ApiError(exc.status_code, str(exc))


def install_handlers(api: NinjaAPI) -> None:
    """Answer every refusal in the one shape. An unexpected error stays a server error
    (Django's own handling): hiding a bug as a 4xx would only make it harder to find."""

    def answer(to_error: Any) -> Any:
        return lambda request, exc: error_response(to_error(request, exc))

    api.add_exception_handler(ApiError, answer(lambda request, exc: exc))
    api.add_exception_handler(FormInvalid, answer(_from_form))
    api.add_exception_handler(ValidationError, answer(_from_model))
    api.add_exception_handler(SchemaValidationError, answer(_from_schema))
    api.add_exception_handler(PermissionDenied, answer(_forbidden))
    api.add_exception_handler(Http404, answer(_not_found))
    # ninja finds a handler along the exception's classes: the 401 before any HttpError.
    api.add_exception_handler(AuthenticationError, answer(_no_token))
    api.add_exception_handler(HttpError, answer(_http_error))


def check(form: Form, names: dict[str, str] | None = None) -> dict[str, Any]:
    """The form's cleaned data, or 400 with its errors; `names` renames the form's
    fields where the API calls them otherwise."""
    if not form.is_valid():
        raise FormInvalid(form, names or {})
    return form.cleaned_data
