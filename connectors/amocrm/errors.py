"""What can go wrong talking to amoCRM, each as its own exception with a message in plain words.

amoCRM answers errors as application/problem+json, e.g. (HTTP 400):
    {"validation-errors": [{"request_id": "0",
                            "errors": [{"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id",
                                        "detail": "The value you selected is not a valid choice."}]}],
     "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400, "detail": "Request validation failed"}
"""

from __future__ import annotations

from typing import Any

from connectors.http import AccessRefused, ConnectorError, GaveUp


class AmoCRMError(ConnectorError):
    """Base of every amoCRM error."""


class ApiError(AmoCRMError):
    """amoCRM answered with an error status not covered by a narrower class."""

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class AmoCRMValidationError(ApiError):
    """amoCRM refused the data we sent (HTTP 400/422). `errors` lists {request_id, code, path, detail}."""

    def __init__(self, message: str, status: int, body: Any, errors: list[dict]):
        super().__init__(message, status, body)
        self.errors = errors


class AuthError(AmoCRMError, AccessRefused):
    """amoCRM does not accept our credentials and we cannot fix it ourselves: an admin must re-authorize."""


class ForbiddenError(ApiError, AccessRefused):
    """HTTP 403: the integration's user lacks the rights, or amoCRM blocked our IP after too many requests."""


class NotFoundError(ApiError):
    """HTTP 404."""


class AmoCRMGaveUp(AmoCRMError, GaveUp):
    """amoCRM kept failing (429, 5xx, network) until the retry budget ran out."""


class AmbiguousWriteError(AmoCRMError):
    """A create may or may not have happened and there is no way to look it up, so it was not re-sent."""


def _problem(body: Any) -> dict:
    return body if isinstance(body, dict) else {}


def validation_errors(body: Any) -> list[dict]:
    """Flatten problem+json `validation-errors` into [{request_id, code, path, detail}]."""
    found: list[dict] = []
    for group in _problem(body).get("validation-errors") or []:
        if not isinstance(group, dict):
            continue
        for err in group.get("errors") or []:
            if isinstance(err, dict):
                found.append({"request_id": group.get("request_id"), "code": err.get("code"),
                              "path": err.get("path"), "detail": err.get("detail")})
    return found


def describe(status: int, body: Any, reason: str = "") -> str:
    """The problem in plain words: validation details when present, else title/detail."""
    problem = _problem(body)
    details = []
    for e in validation_errors(body):
        text = e["detail"] or e["code"] or "invalid value"
        details.append(f"{e['path']}: {text}" if e["path"] else text)
    if details:
        return "amoCRM rejected the request: " + "; ".join(details)
    words = [str(w) for w in (problem.get("title") or reason, problem.get("detail"), problem.get("hint")) if w]
    # Drop a detail that only repeats the title ("Unauthorized: Unauthorized").
    words = [w for i, w in enumerate(words) if w not in words[:i]]
    return f"amoCRM rejected the request (HTTP {status}" + (f": {'; '.join(words)})" if words else ")")


def error_for(status: int, body: Any, reason: str = "", *, redact=lambda s: s) -> ApiError:
    """The exception for an error response (not 401, which needs a refresh first)."""
    message = redact(describe(status, body, reason))
    if status in (400, 422) and validation_errors(body):
        return AmoCRMValidationError(message, status, body, validation_errors(body))
    if status == 403:
        return ForbiddenError(message + ". The integration's user may lack rights for this, or amoCRM "
                              "temporarily blocked requests after too many of them", status, body)
    if status == 404:
        return NotFoundError(message, status, body)
    if status in (400, 422):
        return AmoCRMValidationError(message, status, body, [])
    return ApiError(message, status, body)
