"""Telegram Bot API sendMessage (messaging.md §4): alerts to managers and heads.

- POST https://api.telegram.org/bot<token>/sendMessage, JSON {chat_id, text, parse_mode: "HTML"}.
- Answers {"ok": true, "result": {"message_id": ...}} or
  {"ok": false, "error_code": 429, "description": "...", "parameters": {"retry_after": 15}}
  (CONFIRMED). Telegram says how long to wait in the body, not in a Retry-After header,
  so a response hook copies it into the header the shared HTTP base honours.
- The bot token is part of the URL: it is redacted from everything logged or raised.
- Bots have no idempotency key. An alert whose outcome is unknown IS sent again by a later
  attempt: a duplicate alert to a manager costs less than a missing one.
"""

from __future__ import annotations

import html
import time
from typing import Any

import redis
import requests

from connectors.http import DEFAULT_TIMEOUT, AmbiguousFailure, ConnectorError, HttpClient
from connectors.outbox import Deliveries, OutcomeUnknown, SendResult, send_once
from connectors.ratelimit import RateLimiter
from reglament import keys

SYSTEM = "telegram"
API_URL = "https://api.telegram.org"
MAX_TEXT = 4096
# Telegram allows about 30 messages a second per bot (UNCONFIRMED, widely cited); stay below.
RATE = 25.0


class TelegramError(ConnectorError):
    """Telegram refused the message (chat not found, bot blocked, bad token, bad HTML...)."""

    def __init__(self, message: str, status: int | None = None, description: str | None = None):
        super().__init__(message)
        self.status = status
        self.description = description


def escape(text: str) -> str:
    """`text` safe inside an HTML-mode message (only <, > and & are special there)."""
    return html.escape(str(text), quote=False)


def format_alert(subject: str, text: str) -> str:
    """An alert as HTML: bold subject, then the text; user text escaped, cut to Telegram's limit."""
    subject, text = str(subject or "").strip()[:256], str(text or "").strip()
    # The limit counts characters after entity parsing, so cut the raw text, not the escaped one.
    budget = MAX_TEXT - len(subject) - 2
    if len(text) > budget:
        text = text[:max(0, budget - 1)] + "…"
    return f"<b>{escape(subject)}</b>\n{escape(text)}" if subject else escape(text)


def _retry_after_from_body(resp: requests.Response, *args, **kwargs) -> requests.Response:
    if resp.status_code == 429 and "Retry-After" not in resp.headers:
        try:
            wait = (resp.json().get("parameters") or {}).get("retry_after")
        except (ValueError, AttributeError):
            wait = None
        if isinstance(wait, (int, float)):
            resp.headers["Retry-After"] = str(wait)
    return resp


class TelegramBot:
    """One bot token. Safe to create per job; shared state lives in Redis."""

    def __init__(self, account_id: str, bot_token: str, r: redis.Redis, *,
                 api_url: str = API_URL,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 max_attempts: int = 4,
                 backoff_base: float = 0.5,
                 backoff_max: float = 30.0,
                 sleep=time.sleep,
                 limiter: RateLimiter | None = None):
        self.account_id = account_id
        self._token = bot_token
        self.api_url = api_url.rstrip("/")
        limiter = limiter or RateLimiter(r, keys.key(account_id, SYSTEM, "ratelimit"), RATE)
        self.http = HttpClient(r, account_id, SYSTEM, limiter=limiter, timeout=timeout, max_attempts=max_attempts,
                               backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep, session=session,
                               secrets=lambda: [self._token])
        self.http.session.hooks["response"].append(_retry_after_from_body)
        self.deliveries = Deliveries(r, account_id, SYSTEM)

    def __repr__(self) -> str:
        return f"TelegramBot(account={self.account_id!r})"

    def send_message(self, chat_id: int | str, html_text: str, action_key: str) -> SendResult:
        """Send an HTML-mode message (escape user text with `escape`) once per action key."""
        if not html_text:
            raise ValueError("text must not be empty")
        return send_once(self.deliveries, action_key, lambda: self._send(chat_id, html_text),
                         channel=SYSTEM, provider=SYSTEM, resend_unknown=True)

    def _send(self, chat_id: int | str, html_text: str) -> str | None:
        url = f"{self.api_url}/bot{self._token}/sendMessage"
        try:
            resp = self.http.request("POST", url, json={"chat_id": chat_id, "text": html_text, "parse_mode": "HTML"})
        except AmbiguousFailure as exc:
            raise OutcomeUnknown(f"telegram: {exc.last}; the message may have been sent") from None
        try:
            body: Any = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True:
            result = body.get("result") if isinstance(body.get("result"), dict) else {}
            return str(result["message_id"]) if result.get("message_id") is not None else None
        if 200 <= resp.status_code < 300:
            raise OutcomeUnknown("telegram answered without ok=true; the message may have been sent")
        raise self._error(resp.status_code, body)

    def _error(self, status: int, body: Any) -> TelegramError:
        body = body if isinstance(body, dict) else {}
        description = body.get("description")
        message = f"Telegram refused the message (HTTP {status}" + (f": {description}" if description else "") + ")"
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        if parameters.get("migrate_to_chat_id"):
            message += f"; the group is now a supergroup, use chat id {parameters['migrate_to_chat_id']}"
        elif status in (401, 404):
            message += "; check telegram.bot_token"
        elif status == 403:
            message += "; the person must start a chat with the bot (or unblock it)"
        return TelegramError(self.http.redact(message), status, description)
