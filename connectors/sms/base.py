"""What every SMS gateway client shares: the interface, at-most-once sending, HTTP plumbing.

SMS gateways have no idempotency key, so a send whose outcome is unknown (read timeout,
dropped connection, 5xx, an answer we cannot read) is recorded as such and never sent
again automatically: OutcomeUnknown is raised now and for every later attempt with the
same action key (see connectors.outbox). A clear refusal sends nothing and may be retried.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import redis
import requests

from connectors.http import DEFAULT_TIMEOUT, AmbiguousFailure, ConnectorError, HttpClient
from connectors.outbox import Deliveries, OutcomeUnknown, SendResult, send_once
from connectors.sms.phone import normalize_phone

if TYPE_CHECKING:
    from reglament.messaging_settings import SmsSettings

CHANNEL = "sms"


class SmsError(ConnectorError):
    """The gateway refused the message; nothing was sent. `retryable`: worth trying later."""

    def __init__(self, message: str, *, provider: str, code: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.provider = provider
        self.code = code
        self.retryable = retryable


class SmsSender:
    """Sends one SMS per action key through a gateway chosen in the configuration."""

    provider = ""     # short name used in metrics and results
    title = ""        # the gateway's name in messages
    default_url = ""

    def __init__(self, account_id: str, settings: SmsSettings, r: redis.Redis, *,
                 url: str | None = None,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 max_attempts: int = 3,
                 backoff_base: float = 0.5,
                 backoff_max: float = 10.0,
                 sleep=time.sleep):
        self.account_id = account_id
        self.settings = settings
        self.url = url or self.default_url
        # No rate limiter: neither gateway documents a request rate limit.
        self.http = HttpClient(r, account_id, self.provider, timeout=timeout, max_attempts=max_attempts,
                               backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep, session=session,
                               secrets=settings.secrets)
        self.deliveries = Deliveries(r, account_id, CHANNEL)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(account={self.account_id!r})"

    def send(self, phone: str, text: str, action_key: str) -> SendResult:
        """Send `text` to `phone` once per action key.

        Raises InvalidPhone, SmsError (refused; nothing sent), GaveUp (unreachable; nothing
        sent) or OutcomeUnknown (may have been sent; will not be resent automatically).
        """
        if not text:
            raise ValueError("text must not be empty")
        number = normalize_phone(phone)
        return send_once(self.deliveries, action_key, lambda: self._submit(number, text),
                         channel=CHANNEL, provider=self.provider, resend_unknown=False)

    def _submit(self, number: str, text: str) -> str | None:
        """Send one SMS; return the gateway's message id (see send_once for what to raise)."""
        raise NotImplementedError

    def _post(self, data: dict) -> dict[str, Any]:
        """POST the form and return the JSON answer; an unreadable 2xx answer is an unknown outcome."""
        try:
            resp = self.http.request("POST", self.url, data=data)
        except AmbiguousFailure as exc:
            raise OutcomeUnknown(f"{self.title}: {exc.last}; the message may have been sent") from None
        if not 200 <= resp.status_code < 300:
            raise SmsError(f"{self.title} refused the request (HTTP {resp.status_code} {resp.reason or ''})".strip(),
                           provider=self.provider)
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OutcomeUnknown(f"{self.title} answered something that is not the expected JSON; "
                                 "the message may have been sent")
        return body

    def _refused(self, code: int | None, known: dict[int, str], text: Any, *, retryable: bool) -> SmsError:
        words = "; ".join(str(w) for w in (known.get(code) if code is not None else None, text) if w)
        message = f"{self.title} refused the message (code {code}" + (f": {words}" if words else "") + ")"
        return SmsError(self.http.redact(message), provider=self.provider, code=code, retryable=retryable)


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
