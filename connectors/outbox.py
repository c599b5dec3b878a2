"""Outgoing-message bookkeeping in Redis, shared by every channel.

Deliveries: each channel sends a message at most once per *action key* (the caller's
name for why the message exists, e.g. "missed_call:lead:123:call:8f2c"). Redis keeps a
small JSON record under rg:<account>:messaging:<channel>:sent:<action key>:

    {"state": "pending", "at": ts}              a send started, its outcome is not known yet
    {"state": "unknown", "at": ts, "why": ...}  a send failed after it may have reached the
                                                provider (read timeout, dropped connection, 5xx)
    {"state": "sent", "at": ts, "id": ...}      the provider accepted it (id: its message id)

A clear failure (refused, or never reached the provider) removes the record, so a later
attempt sends afresh. Whether an "unknown" (or a "pending" left by a process that died)
may be sent again is the channel's choice: never for SMS (a client would get the text
twice and no gateway offers an idempotency key), yes for staff alerts (a duplicate alert
is cheaper than a missing one).

Outbox: where messages go when no channel can carry them (nothing configured, no active
WhatsApp channel, a person with neither Telegram nor e-mail): a capped stream per
account, listed by `reglament outbox`, and one log line per message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from connectors.http import ConnectorError
from reglament import keys, metrics

log = logging.getLogger(__name__)

SENT_TTL = 30 * 86400
UNKNOWN_TTL = 7 * 86400
# A "pending" older than this was left by a process that died mid-send.
PENDING_STALE = 600
OUTBOX = "outbox"
OUTBOX_KEEP = 1000

# Replace the record only if it is still what we read (two workers retrying the same alert).
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


class OutcomeUnknown(ConnectorError):
    """A message may or may not have been sent; it is not sent again automatically."""


class AlreadySent(Exception):
    """Raised by a channel's send when the provider says this very message was sent before
    (e.g. an SMS gateway's anti-duplicate answer): the client has it, nothing new went out."""

    def __init__(self, message_id: str | None = None):
        super().__init__(message_id)
        self.message_id = message_id


@dataclass(frozen=True)
class SendResult:
    """What happened to one message.

    channel:    "whatsapp", "sms", "telegram", "email", or "outbox" (reached nobody)
    message_id: the provider's id for the message, when it gave one
    duplicate:  the message had already been sent for this action key; nothing was sent now
    provider:   "wazzup", "smsru", "smsc", "telegram", "smtp"; None for the outbox
    reason:     why the message went to the outbox (or which channel failed before the one used)
    """

    channel: str
    message_id: str | None = None
    duplicate: bool = False
    provider: str | None = None
    reason: str | None = None

    @property
    def delivered(self) -> bool:
        """False when no channel carried the message: the caller should fall back (e.g. an amoCRM task)."""
        return self.channel != OUTBOX


def check_action_key(action_key: str) -> None:
    if not action_key or not isinstance(action_key, str):
        raise ValueError("every message needs a non-empty action key (a string)")


class Deliveries:
    """The per-action-key records of one channel; see the module docstring."""

    def __init__(self, r: redis.Redis, account: str, channel: str):
        self.r = r
        self.account = account
        self.channel = channel
        self._swap = r.register_script(_SWAP)

    def key(self, action_key: str) -> str:
        return keys.key(self.account, "messaging", self.channel, "sent", action_key)

    def get(self, action_key: str) -> dict | None:
        return self.read(action_key)[1]

    def read(self, action_key: str) -> tuple[bytes | None, dict | None]:
        """The stored record, raw (for take_over) and parsed."""
        raw = self.r.get(self.key(action_key))
        return raw, (json.loads(raw) if raw else None)

    def claim(self, action_key: str) -> bool:
        """Mark a send as started, unless a record exists already."""
        return bool(self.r.set(self.key(action_key), _dump(state="pending"), nx=True, ex=UNKNOWN_TTL))

    def take_over(self, action_key: str, seen: bytes) -> bool:
        """Restart a send whose raw record is still `seen` (an unknown or stale one)."""
        return bool(self._swap(keys=[self.key(action_key)], args=[seen, _dump(state="pending"), UNKNOWN_TTL]))

    def sent(self, action_key: str, message_id: str | None, **extra) -> None:
        self.r.set(self.key(action_key), _dump(state="sent", id=message_id, **extra), ex=SENT_TTL)

    def unknown(self, action_key: str, why: str) -> None:
        self.r.set(self.key(action_key), _dump(state="unknown", why=why[:500]), ex=UNKNOWN_TTL)

    def forget(self, action_key: str) -> None:
        """Nothing was sent (or an operator decided to allow a resend)."""
        self.r.delete(self.key(action_key))


def _dump(**fields) -> str:
    return json.dumps({**fields, "at": round(time.time(), 3)}, sort_keys=True)


def send_once(deliveries: Deliveries, action_key: str, send: Callable[[], str | None], *,
              channel: str, provider: str, resend_unknown: bool) -> SendResult:
    """Run `send` at most once per action key and return what happened.

    `send` returns the provider's message id (or None); it raises AlreadySent when the
    provider reports the message as a repeat, OutcomeUnknown when the attempt may have
    reached the provider, and anything else when nothing was sent.
    """
    check_action_key(action_key)
    what = f"{provider} message for {action_key}"
    while not deliveries.claim(action_key):
        raw, record = deliveries.read(action_key)
        if record is None:
            continue  # expired between the two calls: claim again
        state = record.get("state")
        if state == "sent":
            _count(deliveries, provider, "duplicate")
            return SendResult(channel, record.get("id"), duplicate=True, provider=provider)
        stale = state == "pending" and time.time() - float(record.get("at") or 0) > PENDING_STALE
        if state == "pending" and not stale:
            raise OutcomeUnknown(f"{what}: another attempt is sending it right now")
        if not resend_unknown:
            raise OutcomeUnknown(f"{what}: an earlier attempt may or may not have been sent "
                                 f"({record.get('why') or 'the sending process stopped mid-send'}); "
                                 "not sending it again")
        if deliveries.take_over(action_key, raw):
            log.warning("%s: the outcome of an earlier attempt is unknown; sending again", what)
            break
    duplicate = False
    try:
        message_id = send()
    except AlreadySent as exc:
        message_id, duplicate = exc.message_id, True
    except OutcomeUnknown as exc:
        deliveries.unknown(action_key, str(exc))
        _count(deliveries, provider, "unknown")
        raise
    except BaseException:
        deliveries.forget(action_key)
        _count(deliveries, provider, "failed")
        raise
    deliveries.sent(action_key, message_id)
    _count(deliveries, provider, "duplicate" if duplicate else "sent")
    return SendResult(channel, message_id, duplicate=duplicate, provider=provider)


def _count(deliveries: Deliveries, provider: str, outcome: str) -> None:
    metrics.incr(deliveries.r, deliveries.account, "messages_total", provider=provider, outcome=outcome)


@dataclass(frozen=True)
class OutboxEntry:
    entry_id: str
    at: float
    kind: str          # "client" (a message to a client) or "alert" (to a manager/head)
    recipient: str
    subject: str
    text: str
    action_key: str
    reason: str


class Outbox:
    """Messages no channel carried, newest kept (a capped stream per account)."""

    def __init__(self, r: redis.Redis, account: str, keep: int = OUTBOX_KEEP):
        self.r = r
        self.account = account
        self.keep = keep
        self.deliveries = Deliveries(r, account, OUTBOX)

    @property
    def key(self) -> str:
        return keys.key(self.account, "outbox")

    def put(self, kind: str, recipient: str, text: str, *, action_key: str, subject: str = "",
            reason: str) -> SendResult:
        """Store the message once per (kind, action key) and log it; returns a not-delivered result."""
        check_action_key(action_key)
        if not self.deliveries.claim(f"{kind}:{action_key}"):
            return SendResult(OUTBOX, duplicate=True, reason=reason)
        entry_id = self.r.xadd(self.key, {"at": f"{time.time():.3f}", "kind": kind, "recipient": recipient,
                                          "subject": subject, "text": text, "action_key": action_key,
                                          "reason": reason}, maxlen=self.keep, approximate=True)
        self.deliveries.sent(f"{kind}:{action_key}", entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
        metrics.incr(self.r, self.account, "messages_total", provider=OUTBOX, outcome="stored")
        shown = f"{subject}: {text}" if subject else text
        log.info("outbox: %s message to %s not sent (%s): %s", kind, recipient, reason, one_line(shown, 200),
                 extra={"account": self.account})
        return SendResult(OUTBOX, reason=reason)

    def entries(self, limit: int = 20) -> list[OutboxEntry]:
        """Newest first."""
        found = []
        for entry_id, f in self.r.xrevrange(self.key, count=limit):
            f = {k.decode(): v.decode(errors="replace") for k, v in f.items()}
            found.append(OutboxEntry(entry_id.decode(), float(f.get("at") or 0), f.get("kind", ""),
                                     f.get("recipient", ""), f.get("subject", ""), f.get("text", ""),
                                     f.get("action_key", ""), f.get("reason", "")))
        return found


def one_line(text: str, limit: int | None = None) -> str:
    flat = " ⏎ ".join(line.strip() for line in text.splitlines() if line.strip())
    return flat if limit is None or len(flat) <= limit else flat[:limit - 1] + "…"
