"""What Wazzup answers when it refuses a request, as exceptions in plain words.

Error format (messaging.md §1.3, CONFIRMED): a 4xx status with an empty body or
    {"error": "ERROR CODE", "description": "short English description", "data": {...}}
Only `repeatedCrmMessageId` is branched on (it means "already sent"); every other code
is reported verbatim, since the per-message code table is UNCONFIRMED.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.http import ConnectorError

REPEATED_CRM_MESSAGE_ID = "repeatedCrmMessageId"


class WazzupError(ConnectorError):
    """Wazzup refused a request (4xx other than 429): nothing was sent."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None,
                 description: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.description = description


class WazzupAuthError(WazzupError):
    """401/403: the API key is missing, wrong, or a sidecar key used on a route it may not call."""


class NoActiveChannel(WazzupError):
    """No Wazzup channel we may send WhatsApp messages through is active."""


def body_of(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def error_code(body: Any) -> str | None:
    return str(body["error"]) if isinstance(body, dict) and body.get("error") else None


def is_repeated_crm_message_id(status: int, body: Any) -> bool:
    return status == 400 and (error_code(body) or "").lower() == REPEATED_CRM_MESSAGE_ID.lower()


def error_for(status: int, body: Any, reason: str = "", *, redact=lambda s: s) -> WazzupError:
    code = error_code(body)
    description = body.get("description") if isinstance(body, dict) else None
    data = body.get("data") if isinstance(body, dict) else None
    words = ": ".join(str(w) for w in (code, description) if w) or reason
    message = f"Wazzup refused the request (HTTP {status}" + (f" {words}" if words else "") + ")"
    if data:
        message += f"; details: {json.dumps(data, ensure_ascii=False)[:300]}"
    if status == 401:
        message += ". The API key is missing or wrong: check wazzup.api_key"
    elif status == 403:
        message += ". This API key may not call this route (a sidecar key?)"
    message = redact(message)
    cls = WazzupAuthError if status in (401, 403) else WazzupError
    return cls(message, status, code, description)
