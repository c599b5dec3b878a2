"""The Wazzup public API v3 client (messaging.md §1): WhatsApp messages and channels.

- Auth `Authorization: Bearer <apiKey>`; base URL https://api.wazzup24.com/v3 (CONFIRMED).
- Rate limit 500 requests per 5 s per key (CONFIRMED), spread evenly: 100/s through
  the Redis limiter shared by every process.
- Sends are made safe to repeat with `crmMessageId` (CONFIRMED: a repeat answers 400
  `repeatedCrmMessageId`, which we read as "already sent"). So, unlike other POSTs,
  sends are retried after 5xx and timeouts. We also record each action key's send in
  Redis, because how long Wazzup remembers crmMessageIds is UNCONFIRMED.
- Our automated messages go with `clearUnanswered: false`, so the chat still shows as
  unanswered to the managers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
import requests

from connectors.http import DEFAULT_TIMEOUT, HttpClient
from connectors.outbox import Deliveries, SendResult, check_action_key
from connectors.ratelimit import RateLimiter
from connectors.sms.phone import normalize_phone
from connectors.wazzup import ours
from connectors.wazzup.errors import NoActiveChannel, body_of, error_for, is_repeated_crm_message_id
from reglament import keys, metrics

if TYPE_CHECKING:
    from reglament.config import Wazzup

log = logging.getLogger(__name__)

SYSTEM = "wazzup"
CHANNEL = "whatsapp"
BASE_URL = "https://api.wazzup24.com/v3"
RATE = 500 / 5
CHANNELS_TTL = 60  # seconds a channel list is reused before asking Wazzup again
# Channel transports that reach a client by phone, and the chatType to send with.
# whatsapp → whatsapp is CONFIRMED; wapi (WABA) → "whatsapp" is UNCONFIRMED (inference).
PHONE_TRANSPORTS = {"whatsapp": "whatsapp", "wapi": "whatsapp"}
# Separator between values in the "@template:" text form. Only a one-value example was
# seen (`{ [[value]] }`); how several values are written is UNCONFIRMED.
TEMPLATE_TEXT_SEPARATOR = " "


@dataclass(frozen=True)
class Channel:
    channel_id: str
    transport: str
    plain_id: str | None
    state: str

    @property
    def active(self) -> bool:
        return self.state == "active"

    @classmethod
    def parse(cls, item: dict) -> Channel:
        return cls(str(item.get("channelId") or ""), str(item.get("transport") or ""),
                   None if item.get("plainId") is None else str(item["plainId"]), str(item.get("state") or ""))


@dataclass(frozen=True)
class Template:
    """A WABA template: sent as templateId + templateValues, or, with `as_text`, in the
    `"@template: <id> { [[value]] }"` text form (both CONFIRMED)."""

    template_id: str
    values: Sequence[str] = ()
    as_text: bool = False

    def body(self) -> dict:
        if self.as_text:
            values = TEMPLATE_TEXT_SEPARATOR.join(f"[[{v}]]" for v in self.values)
            return {"text": f"@template: {self.template_id} {{ {values} }}" if values
                    else f"@template: {self.template_id}"}
        # templateValues is CONFIRMED as a field; its element type (plain strings) is UNCONFIRMED.
        return {"templateId": self.template_id, "templateValues": [str(v) for v in self.values]}


def crm_message_id(account: str, action_key: str) -> str:
    """Our id for the message as Wazzup's crmMessageId: stable per action, short, URL-safe."""
    return "rg-" + hashlib.sha256(f"{account}\n{action_key}".encode()).hexdigest()[:32]


def message_id_of(body: Any) -> str | None:
    """Wazzup's id for a sent message. The success body is UNCONFIRMED; a public client
    tries messageId, message_id, then data.messageId, and so do we."""
    if not isinstance(body, dict):
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    for value in (body.get("messageId"), body.get("message_id"), data.get("messageId")):
        if value:
            return str(value)
    return None


class WazzupClient:
    """One Wazzup API key. Safe to create per job; shared state lives in Redis."""

    def __init__(self, account_id: str, settings: Wazzup, r: redis.Redis, *,
                 base_url: str = BASE_URL,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 max_attempts: int = 5,
                 backoff_base: float = 0.5,
                 backoff_max: float = 30.0,
                 sleep=time.sleep,
                 limiter: RateLimiter | None = None):
        self.account_id = account_id
        self.r = r
        self.base_url = base_url.rstrip("/")
        self.channel_id = settings.channel_id
        self._api_key = settings.api_key
        limiter = limiter or RateLimiter(r, keys.key(account_id, SYSTEM, "ratelimit"), RATE)
        self.http = HttpClient(r, account_id, SYSTEM, limiter=limiter, timeout=timeout, max_attempts=max_attempts,
                               backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep, session=session,
                               secrets=lambda: [self._api_key])
        self.deliveries = Deliveries(r, account_id, SYSTEM)

    def __repr__(self) -> str:
        return f"WazzupClient(account={self.account_id!r})"

    # ---------------------------------------------------------------- channels

    def list_channels(self) -> list[Channel]:
        """Every channel of the key, whatever its state (GET /v3/channels)."""
        resp = self.http.request("GET", f"{self.base_url}/channels", headers=self._auth())
        body = self._check(resp)
        items = body if isinstance(body, list) else []
        channels = [Channel.parse(i) for i in items if isinstance(i, dict) and i.get("channelId")]
        self.r.set(self._channels_key, json.dumps([c.__dict__ for c in channels]), ex=CHANNELS_TTL)
        return channels

    def active_channels(self) -> list[Channel]:
        return [c for c in self.list_channels() if c.active]

    def usable_channel(self, *, refresh: bool = False) -> Channel | None:
        """The active WhatsApp channel to message clients through, or None.

        The configured channel_id if it is active (never silently another number), else
        the first active WhatsApp/WABA channel. The list is reused for CHANNELS_TTL seconds.
        """
        cached = None if refresh else self.r.get(self._channels_key)
        channels = [Channel(**c) for c in json.loads(cached)] if cached else self.list_channels()
        for channel in channels:
            if not channel.active or channel.transport not in PHONE_TRANSPORTS:
                continue
            if self.channel_id is None or channel.channel_id == self.channel_id:
                return channel
        return None

    @property
    def _channels_key(self) -> str:
        return keys.key(self.account_id, SYSTEM, "channels")

    # ---------------------------------------------------------------- sending

    def send_text(self, phone: str, text: str, action_key: str, *, channel: Channel | None = None) -> SendResult:
        """Send `text` to the WhatsApp chat of `phone`, once per action key."""
        if not text:
            raise ValueError("text must not be empty")
        return self._send(phone, {"text": text}, action_key, channel)

    def send_template(self, phone: str, template: Template, action_key: str, *,
                      channel: Channel | None = None) -> SendResult:
        """Send a WABA template to the WhatsApp chat of `phone`, once per action key."""
        return self._send(phone, template.body(), action_key, channel)

    def is_our_message(self, message_id: str | None = None, crm_message_id: str | None = None) -> bool:
        """True if Reglament sent this message (see connectors.wazzup.ours)."""
        return ours.is_our_message(self.r, self.account_id, message_id, crm_message_id)

    def _send(self, phone: str, content: dict, action_key: str, channel: Channel | None) -> SendResult:
        check_action_key(action_key)
        record = self.deliveries.get(action_key)
        if record and record.get("state") == "sent":
            metrics.incr(self.r, self.account_id, "messages_total", provider=SYSTEM, outcome="duplicate")
            return SendResult(CHANNEL, record.get("id"), duplicate=True, provider=SYSTEM)
        chat_id = normalize_phone(phone)
        channel = channel or self.usable_channel()
        if channel is None:
            raise NoActiveChannel("Wazzup has no active WhatsApp channel" +
                                  (f" {self.channel_id}" if self.channel_id else ""))
        crm_id = crm_message_id(self.account_id, action_key)
        ours.remember(self.r, self.account_id, crm_message_id=crm_id)
        body = {"channelId": channel.channel_id, "chatType": PHONE_TRANSPORTS.get(channel.transport, "whatsapp"),
                "chatId": chat_id, **content, "crmMessageId": crm_id, "clearUnanswered": False}
        # idempotent=True: crmMessageId makes a repeat after a lost answer harmless.
        resp = self.http.request("POST", f"{self.base_url}/message", json=body, headers=self._auth(),
                                 idempotent=True)
        parsed = body_of(resp.text)
        if is_repeated_crm_message_id(resp.status_code, parsed):
            # A previous attempt (this call's or an earlier job's) got through.
            log.info("wazzup: message for %s was already sent (repeatedCrmMessageId)", action_key)
            message_id, duplicate = None, True
        else:
            message_id, duplicate = message_id_of(self._check(resp, parsed)), False
        ours.remember(self.r, self.account_id, message_id=message_id)
        self.deliveries.sent(action_key, message_id, crm=crm_id)
        metrics.incr(self.r, self.account_id, "messages_total", provider=SYSTEM,
                     outcome="duplicate" if duplicate else "sent")
        return SendResult(CHANNEL, message_id, duplicate=duplicate, provider=SYSTEM)

    def _auth(self) -> dict[str, str]:
        # Per request, not on the session: a session may be shared with other clients (tests).
        return {"Authorization": f"Bearer {self._api_key}"}

    def _check(self, resp: requests.Response, parsed: Any = ...) -> Any:
        """The parsed body of a 2xx answer; raises WazzupError for anything else."""
        body = body_of(resp.text) if parsed is ... else parsed
        if 200 <= resp.status_code < 300:
            return body
        raise error_for(resp.status_code, body, resp.reason or "", redact=self.http.redact)
