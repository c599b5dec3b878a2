"""Bitrix24 outgoing events (form-encoded, PHP-style keys) → one `crm.changed` Event.

Shapes follow ../shared/reference/bitrix24.md §2 (CONFIRMED): `event`, `event_handler_id`,
`data[...]`, `ts`, `auth[...]`. An event carries only the id of what changed (a call's
event carries the call), so the event becomes `crm.changed` with {entity, id, event, at};
the connector reads the object and derives the neutral events (CRM.expand) in the job.

Bitrix24 never retries an event, but a replay or a handler bound twice repeats it. The
dedupe key is the body's identity without `event_handler_id` and `auth`: the event name,
its data and `ts`. Two changes of one object within the same second have that same
identity, so the key cannot tell a second change from a repeat, and it does not have to:
the event's job reads the object when it runs. The key holds only while the job waits
(jobs/events.py frees it as the job starts, before the read), so

- a body that comes while the job waits is one read with it (the read comes after it);
- a body that comes once the job has started makes a job of its own, so a change the
  first read may have missed is read too; if it was a repeat after all, that job finds
  nothing new (the connector compares with the last state seen) and costs one read.

Why this and not another key: every body a job of its own (no key) costs a read per
repeat and per bound handler; a key per object without `ts` would merge an add with its
updates; a window of time would drop a change that came after the job read. The ingress
sets the keys in its one Lua step (app/ingress.py), and freeing one is a single DEL, so no
step needs more atomicity than that.

ONAPPINSTALL and ONAPPUNINSTALL (the application installed into the portal, or removed)
are no CRM change: they become `Parsed.lifecycle` with what the install hands over, and
app/bitrix24/install.py checks and records them. They carry tokens, so `redact` masks
every token in a body before any copy of it is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app import php_form
from app.errors import Rejected
from reglament.events import Event, event_key

SOURCE = "bitrix24"

# Handled events (upper case) → the entity they are about. Others are answered 200 and ignored.
EVENTS = {
    **{f"ONCRM{name}{action}": name.lower()
       for name in ("DEAL", "LEAD", "CONTACT", "ACTIVITY") for action in ("ADD", "UPDATE", "DELETE")},
    "ONTASKADD": "task", "ONTASKUPDATE": "task", "ONTASKDELETE": "task",
    "ONVOXIMPLANTCALLEND": "call",
    "ONCRMTIMELINECOMMENTADD": "comment",
}

_ID = re.compile(r"^\d{1,18}$")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
LIFECYCLE = ("ONAPPINSTALL", "ONAPPUNINSTALL")
# A token's value in a form body (brackets raw or percent-encoded) or in a JSON one.
_SECRET_FORM = re.compile(rb"((?:^|&)auth(?:\[|%5B)(?:access_token|refresh_token|application_token)(?:\]|%5D)=)[^&]*",
                          re.I)
_SECRET_JSON = re.compile(rb'("(?:access_token|refresh_token|application_token)"\s*:\s*")[^"]*')


@dataclass
class Parsed:
    events: list[Event]
    ignored: list[str] = field(default_factory=list)
    application_token: str | None = None
    member_id: str | None = None
    domain: str | None = None
    lifecycle: str | None = None        # ONAPPINSTALL | ONAPPUNINSTALL
    refresh_token: str | None = None    # auth[refresh_token] of an install
    version: str | None = None          # data[VERSION], data[LANGUAGE_ID] of an install
    language_id: str | None = None

    def __repr__(self) -> str:  # never the tokens
        return (f"Parsed(events={self.events!r}, ignored={self.ignored!r}, lifecycle={self.lifecycle!r}, "
                f"member_id={self.member_id!r}, domain={self.domain!r})")


def _entity_id(name: str, data: dict) -> int | str:
    """Where each event keeps its object's id: data[FIELDS][ID] for CRM objects (data[ID] for a
    timeline comment, as its page documents; either is taken),
    data[FIELDS_AFTER][ID] for tasks (data[FIELDS_BEFORE][ID] once deleted), data[CALL_ID]
    for a call (CONFIRMED, reference §2.3–2.4 and OnTaskDelete)."""
    if EVENTS[name] == "call":
        call_id = data.get("CALL_ID")
        if not isinstance(call_id, str) or not call_id.strip():
            raise Rejected(f"{name} has no data[CALL_ID]")
        return call_id
    if EVENTS[name] == "comment" and isinstance(data.get("ID"), str):
        data = {"FIELDS": {"ID": data["ID"]}}  # documented as data[ID] (UNCONFIRMED), unlike other CRM events
    where = "FIELDS" if not name.startswith("ONTASK") else "FIELDS_BEFORE" if name == "ONTASKDELETE" else "FIELDS_AFTER"
    fields = data.get(where)
    raw = fields.get("ID") if isinstance(fields, dict) else None
    if not isinstance(raw, str) or not _ID.match(raw) or int(raw) == 0:
        raise Rejected(f"{name} has no valid data[{where}][ID]")
    return int(raw)


def parse(body: bytes | str, account: str, full: bool = True) -> Parsed:
    """`full` is accepted for the receiver's interface: the event is the same either way."""
    form = php_form.webhook(body, "a Bitrix24 event")
    event, auth, data, ts = form.get("event"), form.get("auth"), form.get("data"), form.get("ts")
    if not isinstance(event, str) or not event.strip():
        raise Rejected("body has no event: not a Bitrix24 event")
    if not isinstance(auth, dict):
        raise Rejected("body has no auth[...] block: not a Bitrix24 event")
    parsed = Parsed(events=[], application_token=_text(auth.get("application_token")),
                    member_id=_text(auth.get("member_id")), domain=_text(auth.get("domain")))
    name = event.strip().upper()  # one doc example writes onCrmActivityAdd
    if not _NAME.match(name):  # it becomes a metric label, and answers list it
        raise Rejected(f"event {event[:40]!r} is not an event name")
    if name in LIFECYCLE:
        # Only what is read here is required, and the receiver says what is missing: the
        # stored copy of the body has its tokens masked and must still parse.
        parsed.lifecycle = name
        parsed.refresh_token = _text(auth.get("refresh_token"))
        if isinstance(data, dict):
            parsed.version, parsed.language_id = _text(data.get("VERSION")), _text(data.get("LANGUAGE_ID"))
        if name == "ONAPPINSTALL":  # its job binds our handler to the portal's events
            at = int(ts) if isinstance(ts, str) and _ID.match(ts) else 0
            parsed.events.append(Event(
                account=account, source=SOURCE, kind="app.installed", entity_id=parsed.member_id or "",
                fields={"member_id": parsed.member_id, "domain": parsed.domain, "at": at},
                key=event_key(SOURCE, name, parsed.member_id, at)))
        return parsed
    if name not in EVENTS:
        parsed.ignored.append(name)
        return parsed
    if not isinstance(ts, str) or not _ID.match(ts):
        raise Rejected(f"{name} has no valid ts (unix seconds)")
    if not isinstance(data, dict):
        raise Rejected(f"{name} has no data[...]")
    entity_id = _entity_id(name, data)
    at = int(ts)
    parsed.events.append(Event(
        account=account, source=SOURCE, kind="crm.changed", entity_id=entity_id,
        fields={"entity": EVENTS[name], "id": entity_id, "event": name, "at": at},
        key=event_key(SOURCE, name, data, at),
    ))
    return parsed


def _text(v) -> str | None:
    return v if isinstance(v, str) and v else None


def redact(body: bytes) -> bytes:
    """The body with every token's value masked (form or JSON), for the copies we keep."""
    return _SECRET_JSON.sub(rb"\1***", _SECRET_FORM.sub(rb"\1***", body))
