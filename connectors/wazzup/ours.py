"""Which WhatsApp messages Reglament itself sent, so rules can tell our automated
messages from a manager's answer.

Wazzup marks every outgoing message with isEcho=true, ours included (messaging.md §1.6),
so a chat would look "answered" right after our automatic reply to a missed call. We
keep, per account and for OURS_TTL, the messageId Wazzup returned for each of our sends
and the crmMessageId we gave it. The crmMessageId is remembered *before* the send: the
echo webhook may arrive before our HTTP call returns. Whether the echo carries
crmMessageId is UNCONFIRMED, hence both.
"""

from __future__ import annotations

import redis

from reglament import keys

OURS_TTL = 30 * 86400


def _key(account: str, kind: str, value: str) -> str:
    return keys.key(account, "wazzup", "ours", kind, value)


def remember(r: redis.Redis, account: str, *, message_id: str | None = None,
             crm_message_id: str | None = None) -> None:
    with r.pipeline(transaction=False) as p:
        if message_id:
            p.set(_key(account, "id", message_id), 1, ex=OURS_TTL)
        if crm_message_id:
            p.set(_key(account, "crm", crm_message_id), 1, ex=OURS_TTL)
        p.execute()


def is_our_message(r: redis.Redis, account: str, message_id: str | None = None,
                   crm_message_id: str | None = None) -> bool:
    """True if Reglament sent this message (by Wazzup's messageId or our crmMessageId)."""
    wanted = [_key(account, kind, v) for kind, v in (("id", message_id), ("crm", crm_message_id)) if v]
    return bool(wanted) and r.exists(*wanted) > 0
