"""What can go wrong talking to Bitrix24, each as its own exception naming the method.

Bitrix24 answers errors as {"error": "<CODE>", "error_description": "<text>"} with a 4xx/5xx
status (CONFIRMED, error-codes.md); inside a batch, each failed command's error sits under
its key in `result_error` while the batch itself answers 200. Some crm.* methods send an
empty code and put everything in the description ("Not found", "ID is not defined or
invalid."). Messages name the method and the code, never the webhook URL or a token.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.http import AccessRefused, ConnectorError, GaveUp
from connectors.ratelimit import OverLimit

# Codes by what they mean for us (CONFIRMED in _includes/system-errors.md, limits.md and the
# method pages; the sandbox README lists its choices where the docs are silent).
REFUSED_FOR_RATE = {"QUERY_LIMIT_EXCEEDED"}                    # 503: the bucket is full; nothing done
OVERLOADED = {"OVERLOAD_LIMIT"}                                # 503: a manual block by Bitrix24's support
TIME_LIMIT = {"OPERATION_TIME_LIMIT"}                          # 429: this method is blocked for a while
EXPIRED = {"expired_token"}                                    # 401: refresh the OAuth pair
BAD_AUTH = {"NO_AUTH_FOUND", "invalid_token", "INVALID_CREDENTIALS", "WRONG_AUTH_TYPE"}
DENIED = {"ACCESS_DENIED", "INVALID_CREDENTIALS", "insufficient_scope", "user_access_error", "WRONG_AUTH_TYPE",
          "PAYMENT_REQUIRED"}
NOT_FOUND = {"NOT_FOUND", "OWNER_NOT_FOUND"}


class Bitrix24Error(ConnectorError):
    """Base of every Bitrix24 error."""


class ApiError(Bitrix24Error):
    """Bitrix24 refused a call: `code` and `description` as it sent them, `method`, HTTP `status`."""

    def __init__(self, method: str, code: str, description: str, status: int | None = None, body: Any = None):
        self.method, self.code, self.description, self.status, self.body = method, code, description, status, body
        words = ": ".join(w for w in (code, description) if w) or "no details"
        where = f" (HTTP {status})" if status else ""
        # Exception's own init: OperationTimeLimit is also an OverLimit, whose init wants other arguments.
        Exception.__init__(self, f"Bitrix24 refused {method}{where}: {words}")


class MethodNotFound(ApiError):
    """The portal has no such method (ERROR_METHOD_NOT_FOUND): a typo, or a module the portal lacks."""


class NotFound(ApiError):
    """The entity does not exist (crm.*: "Not found" with an empty code; NOT_FOUND, OWNER_NOT_FOUND)."""


class AccessDenied(ApiError, AccessRefused):
    """The webhook's or application's user lacks the rights or the scope for this method."""


class AuthError(ApiError, AccessRefused):
    """Bitrix24 does not accept our credentials and we cannot fix it ourselves: an admin must act."""


class OperationTimeLimit(ApiError, OverLimit):
    """429 OPERATION_TIME_LIMIT: Bitrix24 blocked this method for a while (its 10-minute operating
    budget is spent). Nothing was done. It is an OverLimit, so the jobs layer defers the job until
    `retry_at` (unix time) as it does for a spent budget; the portal's other methods go on."""

    def __init__(self, method: str, code: str, description: str, status: int | None = None, body: Any = None,
                 retry_at: float | None = None):
        ApiError.__init__(self, method, code, description, status, body)
        # Bitrix24 lifts the block within 10 minutes (system-errors.md); the answer may say sooner.
        self.retry_at = retry_at or time.time() + 600
        self.key, self.reason = method, "429"
        self.retry_in = max(1.0, self.retry_at - time.time())


class Bitrix24GaveUp(Bitrix24Error, GaveUp):
    """Bitrix24 kept failing (503 QUERY_LIMIT_EXCEEDED, 5xx, network) until the retry budget ran out."""


class AmbiguousWriteError(Bitrix24Error):
    """A create may or may not have happened and there is no way to look it up, so it was not re-sent."""


def code_of(body: Any) -> str:
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def description_of(body: Any) -> str:
    return str(body.get("error_description") or "") if isinstance(body, dict) else ""


def error_for(method: str, status: int | None, body: Any, *, redact=lambda s: s) -> ApiError:
    """The exception for an error answer (of a call, or of one command of a batch: status None)."""
    code, description = code_of(body), redact(description_of(body))
    if not code and not description and status:
        description = f"HTTP {status}"
    args = (method, code, description, status, body)
    if code in TIME_LIMIT or status == 429:
        reset = _reset_at(body)
        return OperationTimeLimit(*args, retry_at=reset)
    if code in BAD_AUTH and status == 401 or code in EXPIRED:
        return AuthError(*args)
    if code in DENIED or description.lower() == "access denied" or status == 403:
        return AccessDenied(*args)
    if code == "ERROR_METHOD_NOT_FOUND":
        return MethodNotFound(*args)
    if code in NOT_FOUND or description.lower() == "not found" or status == 404:
        return NotFound(*args)
    if status == 401:
        return AuthError(*args)
    return ApiError(*args)


def _reset_at(body: Any) -> float | None:
    """`time.operating_reset_at` when the answer carries it (limits.md); else None."""
    t = body.get("time") if isinstance(body, dict) else None
    try:
        return float(t["operating_reset_at"]) if isinstance(t, dict) and t.get("operating_reset_at") else None
    except (TypeError, ValueError):
        return None
