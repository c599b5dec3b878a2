"""Wazzup API v3 webhooks (JSON) → one Event per message or status.

Shapes follow ../shared/reference/messaging.md §1.5–1.7. The message and status field
names are CONFIRMED only from public client code, so optional fields are read defensively.
`{"test": true}` is Wazzup's probe when the webhook URL is saved: answered 200, no event.
Other top-level keys (channelsUpdates, createContact, createDeal, templateStatus) are
returned as `ignored`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.errors import Rejected
from reglament.events import Event, event_key

IGNORED_KEYS = ("channelsUpdates", "createContact", "createDeal", "templateStatus")

_MESSAGE_FIELDS = {
    "messageId": "message_id", "dateTime": "date_time", "channelId": "channel_id",
    "chatType": "chat_type", "chatId": "chat_id", "type": "type", "isEcho": "is_echo",
    "status": "status", "text": "text", "contentUri": "content_uri", "authorName": "author_name",
    "authorId": "author_id", "sentFromApp": "sent_from_app", "isEdited": "is_edited",
    "isDeleted": "is_deleted", "crmMessageId": "crm_message_id",
}


@dataclass
class Parsed:
    events: list[Event]
    ignored: list[str] = field(default_factory=list)
    probe: bool = False


def _str(d: dict, key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise Rejected(f"{where}.{key} must be a non-empty string")
    return v


def _message(account: str, m: Any, where: str) -> Event:
    if not isinstance(m, dict):
        raise Rejected(f"{where} must be an object")
    message_id = _str(m, "messageId", where)
    _str(m, "chatId", where)
    f = {ours: m.get(theirs) for theirs, ours in _MESSAGE_FIELDS.items()}
    contact = m.get("contact")
    f["contact"] = {k: contact.get(k) for k in ("name", "phone", "username")} if isinstance(contact, dict) else {}
    f["is_echo"] = bool(f["is_echo"])
    kind = "chat.message_out" if f["is_echo"] else "chat.message_in"
    # The same message comes again on edits and deletions; those are separate changes.
    key = event_key("wazzup", "message", message_id, m.get("status"), bool(m.get("isEdited")), bool(m.get("isDeleted")))
    return Event(account=account, source="wazzup", kind=kind, entity_id=message_id, fields=f, key=key)


def _status(account: str, s: Any, where: str) -> Event:
    if not isinstance(s, dict):
        raise Rejected(f"{where} must be an object")
    message_id = _str(s, "messageId", where)
    status = _str(s, "status", where)
    f: dict[str, Any] = {"message_id": message_id, "status": status, "timestamp": s.get("timestamp")}
    err = s.get("error")
    if isinstance(err, dict):
        # The error object's code key is `error` or `code` (UNCONFIRMED which): read both.
        f["error"] = {"code": err.get("error") or err.get("code"), "description": err.get("description")}
    key = event_key("wazzup", "status", message_id, status)
    return Event(account=account, source="wazzup", kind="chat.status", entity_id=message_id, fields=f, key=key)


def parse(body: bytes, account: str, full: bool = True) -> Parsed:
    """`full` is accepted for symmetry with the amoCRM parser: JSON bodies are cheap to read whole."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise Rejected(f"body is not JSON: {e}")
    if not isinstance(data, dict):
        raise Rejected("body must be a JSON object")
    if data.get("test") is True:
        return Parsed(events=[], probe=True)
    parsed = Parsed(events=[], ignored=[k for k in IGNORED_KEYS if k in data])
    for name, build in (("messages", _message), ("statuses", _status)):
        if name not in data:
            continue
        items = data[name]
        if not isinstance(items, list):
            raise Rejected(f"{name} must be a list")
        parsed.events += [build(account, item, f"{name}[{i}]") for i, item in enumerate(items)]
    if not parsed.events and not parsed.ignored and "messages" not in data and "statuses" not in data:
        raise Rejected("body has none of messages, statuses or another Wazzup webhook key")
    return parsed
