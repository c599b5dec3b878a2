"""amoCRM account webhooks (form-encoded, PHP-style keys) → one Event per entity, with the
CRM-neutral kinds and fields of reglament.events.

Shapes follow ../shared/reference/amocrm.md §4. Every value arrives as a string; numbers
are cast here, "" becomes None. One POST may carry several sections (`leads[status]`,
`task[add]`, ...) and several entities in each. Sections we do not handle are returned
as `ignored` so the receiver can log and count them without failing the delivery
(a failing answer would make amoCRM retry and, after 100 failures, disable the hook).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from app import php_form
from app.errors import Rejected
from reglament.events import Event, event_key

KINDS = {
    ("leads", "add"): "lead.added",
    ("leads", "update"): "lead.updated",
    ("leads", "status"): "lead.status_changed",
    ("leads", "responsible"): "lead.responsible_changed",
    ("leads", "delete"): "lead.deleted",
    ("leads", "restore"): "lead.restored",
    ("leads", "note"): "comment.added",  # or call.ended, message.outgoing, crm.other: by the note's type
    ("contacts", "add"): "contact.added",
    ("contacts", "update"): "contact.updated",
    ("contacts", "note"): "comment.added",
    ("task", "add"): "task.added",
    ("task", "update"): "task.updated",
    ("task", "delete"): "task.deleted",
    ("task", "responsible"): "task.responsible_changed",
    ("message", "add"): "crm.other",  # an incoming chat message; an outgoing one is message.outgoing
}

# `tasks[...]` appears in hand-written fixtures, `task[...]` in real captures (UNCONFIRMED which
# is official): accept both.
SECTION_ALIASES = {"tasks": "task", "messages": "message"}

# element_type codes (CONFIRMED: 1 contact, 2 lead, 3 company, 12 customer)
ELEMENT_TYPES = {1: "contact", 2: "lead", 3: "company", 12: "customer"}

# Legacy numeric note types in webhooks: 4 common, 10 call_in, 11 call_out are CONFIRMED;
# the rest are recalled from the v2 table (UNCONFIRMED).
NOTE_TYPES = {
    1: "lead_created", 2: "contact_created", 3: "lead_status_changed", 4: "common",
    10: "call_in", 11: "call_out", 12: "company_created", 13: "task_result",
    25: "service_message", 102: "sms_in", 103: "sms_out",
}

_INT = re.compile(r"^-?\d{1,18}$")
# Keys that are numbers in every capture; other digit-only strings (names, texts) stay strings.
_NUMERIC = {
    "id", "status_id", "old_status_id", "pipeline_id", "old_pipeline_id", "price",
    "responsible_user_id", "old_responsible_user_id", "last_modified", "modified_user_id",
    "created_user_id", "account_id", "created_at", "updated_at", "element_id", "element_type",
    "task_type", "task_type_id", "complete_till", "complete_till_at", "loss_reason_id", "talk_id",
    "contact_id", "entity_id", "group_id", "main_user_id", "created_by", "modified_by", "status",
    "action_close", "duration", "date_create", "closed_at", "note_type", "enum", "call_status",
}


@dataclass
class Parsed:
    events: list[Event]
    ignored: list[str] = field(default_factory=list)  # "section.action" we do not handle
    account_id: int | None = None
    subdomain: str | None = None


def _value(key: str, v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _value(k, x) for k, x in v.items()}
    if v == "":
        return None
    if key in _NUMERIC and _INT.match(v):
        return int(v)
    return v


def _listed(d: Any) -> list:
    """PHP indexed arrays arrive as {"0": .., "1": ..}; keep their order."""
    if not isinstance(d, dict):
        return []
    return [d[k] for k in sorted(d, key=lambda k: int(k) if k.isdigit() else 0)]


def _custom_fields(raw: Any) -> list[dict]:
    out = []
    for cf in _listed(raw):
        if not isinstance(cf, dict):
            continue
        values = []
        for v in _listed(cf.get("values")):
            # Date fields may come as values[0]=1541980800, without a [value] key (CONFIRMED).
            values.append({"value": _value("value", v)} if not isinstance(v, dict)
                          else {k: _value(k, x) for k, x in v.items()})
        out.append({"id": _value("id", cf.get("id", "")), "name": cf.get("name"), "values": values})
    return out


def _scalars(item: dict) -> dict[str, Any]:
    return {k: _value(k, v) for k, v in item.items() if not isinstance(v, dict)}


def _user(f: dict, *names: str) -> int | None:
    for n in names:
        if isinstance(f.get(n), int):
            return f[n]
    return None


WON, LOST = 142, 143  # amoCRM's own closing stages, shared by every pipeline (CONFIRMED)


def _lead_fields(item: dict) -> dict[str, Any]:
    """Neutral lead fields (reglament.events)."""
    f = _scalars(item)
    status = f.get("status_id")
    values = {}
    for cf in _custom_fields(item.get("custom_fields")):
        if cf["name"] and cf["values"]:
            values[cf["name"]] = cf["values"][0].get("value")
    return {
        "lead_id": f.get("id"), "name": f.get("name") or "",
        "pipeline": None if f.get("pipeline_id") is None else str(f["pipeline_id"]),
        "stage": None if status is None else str(status),
        "closed": "won" if status == WON else "lost" if status == LOST else None,
        "responsible_id": f.get("responsible_user_id"), "previous_responsible_id": f.get("old_responsible_user_id"),
        "by": _user(f, "modified_user_id", "modified_by"),
        "created_at": f.get("created_at") or f.get("date_create"), "at": f.get("updated_at") or f.get("last_modified"),
        "values": values,
        "tags": [t.get("name") for t in _listed(item.get("tags")) if isinstance(t, dict) and t.get("name")],
    }


def _contact_fields(item: dict) -> dict[str, Any]:
    f = _scalars(item)
    return {"contact_id": f.get("id"), "name": f.get("name") or "", "responsible_id": f.get("responsible_user_id"),
            "at": f.get("updated_at") or f.get("last_modified") or f.get("created_at") or f.get("date_create")}


def _on_lead(f: dict, type_key: str, id_key: str) -> int | None:
    """The lead id of a note or task that belongs to a lead (element_type 2), else None."""
    et = f.get(type_key)
    kind = ELEMENT_TYPES.get(et, et) if isinstance(et, int) else et
    return f.get(id_key) if kind in ("lead", "leads") else None


def _note(item: dict) -> dict:
    # Real captures nest the note one level deeper (leads[note][0][note][...]); some
    # handlers read it flat. Accept both.
    return item.get("note") if isinstance(item.get("note"), dict) else item


def _note_type(item: dict) -> str | None:
    nt = _value("note_type", _note(item).get("note_type", ""))
    return NOTE_TYPES.get(nt, str(nt)) if isinstance(nt, int) else nt


NOTE_KINDS = {"call_in": "call.ended", "call_out": "call.ended", "common": "comment.added",
              "sms_out": "message.outgoing"}


def _note_fields(item: dict) -> dict[str, Any]:
    """Neutral fields of a note: a call (call.ended), a comment or an SMS sent."""
    f = _scalars(_note(item))
    note_type = _note_type(item)
    lead_id = _on_lead(f, "element_type", "element_id")
    at = f.get("created_at") or f.get("date_create")
    by = _user(f, "created_by", "created_user_id")
    if note_type not in ("call_in", "call_out"):
        return {"lead_id": lead_id, "text": f.get("text") if isinstance(f.get("text"), str) else "", "by": by,
                "at": at}
    call = _call(f.get("text"))
    duration = call.get("duration")
    return {"call_id": str(call.get("uniq") or f"note-{f.get('id')}"),
            "direction": "in" if note_type == "call_in" else "out",
            "outcome": None,  # the connector reads it from amoCRM's call_status (in `ref`, else in the note)
            "duration": duration if isinstance(duration, int) else 0,
            "phone": call.get("phone"), "lead_id": lead_id,
            "user_id": _user(f, "main_user_id", "created_by") or None, "at": at,
            # The note and the call_status it carried (UNCONFIRMED that a webhook carries it; else "").
            "ref": f"{note_type}:{lead_id}:{f.get('id')}:{call.get('call_status') or ''}" if lead_id else None}


def _call(text: Any) -> dict[str, Any]:
    """Call notes carry a JSON string with upper-case keys UNIQ, LINK, PHONE, DURATION, SRC
    (CONFIRMED); call_status / call_result inside it are UNCONFIRMED, read when present."""
    try:
        data = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out = {str(k).lower(): v for k, v in data.items()}
    for k in ("duration", "call_status"):
        if isinstance(out.get(k), str) and _INT.match(out[k]):
            out[k] = int(out[k])
    return out


def _task_fields(item: dict) -> dict[str, Any]:
    """Neutral task fields (reglament.events)."""
    f = _scalars(item)
    result = item.get("result")
    task_type = f.get("task_type") or f.get("task_type_id")
    return {
        "task_id": f.get("id"), "lead_id": _on_lead(f, "element_type", "element_id"), "text": f.get("text") or "",
        "task_type": None if task_type is None else str(task_type),
        "due": f.get("complete_till") or f.get("complete_till_at"), "responsible_id": f.get("responsible_user_id"),
        "completed": f.get("status") == 1,
        "result": (result.get("text") or None) if isinstance(result, dict) else None,
        "created_by": _user(f, "created_user_id", "created_by"),
        "by": _user(f, "modified_user_id", "modified_by", "created_user_id"),
        "created_at": f.get("created_at") or f.get("date_create"), "at": f.get("updated_at") or f.get("last_modified"),
    }


def _message_fields(item: dict) -> dict[str, Any]:
    """A chat message in amoCRM's own chats, in the neutral fields of message.outgoing."""
    f = _scalars(item)
    kind = f.get("entity_type") or ELEMENT_TYPES.get(f.get("element_type"))
    author = _scalars(item["author"]) if isinstance(item.get("author"), dict) else {}
    return {"lead_id": (f.get("entity_id") or f.get("element_id")) if kind in ("lead", "leads") else None,
            "text": f.get("text") or "", "by": author.get("id") if isinstance(author.get("id"), int) else None,
            "at": f.get("created_at"), "chat_id": f.get("chat_id"), "message_id": f.get("id")}


def parse(body: bytes | str, account: str, full: bool = True) -> Parsed:
    """`full=False` (the request path) checks the body and identifies each event (kind, id,
    dedupe key) without normalising its fields; the dispatcher parses fully later."""
    form = php_form.webhook(body, "an amoCRM webhook")
    acct = form.pop("account", None)
    if not isinstance(acct, dict) or not (acct.get("id") or acct.get("subdomain")):
        raise Rejected("body has no account[id] or account[subdomain]: not an amoCRM webhook")
    parsed = Parsed(events=[], account_id=_value("id", acct.get("id", "")), subdomain=acct.get("subdomain"))

    for section_name, actions in form.items():
        section = SECTION_ALIASES.get(section_name, section_name)
        if not isinstance(actions, dict):
            raise Rejected(f"{section_name} is a plain value, expected {section_name}[action][index][field]")
        for action, items in actions.items():
            if (section, action) not in KINDS:
                parsed.ignored.append(f"{section}.{action}")
                continue
            if not isinstance(items, dict) or not items:
                raise Rejected(f"{section_name}[{action}] has no entities")
            for index in sorted(items, key=lambda k: int(k) if k.isdigit() else -1):
                item = items[index]
                where = f"{section_name}[{action}][{index}]"
                if not isinstance(item, dict):
                    raise Rejected(f"{where} is a plain value, expected fields")
                parsed.events.append(_event(account, section, action, item, where, full))
    if not parsed.events and not parsed.ignored:
        raise Rejected("body has no entities (expected keys like leads[status][0][id])")
    return parsed


def _event(account: str, section: str, action: str, item: dict, where: str, full: bool) -> Event:
    inner = item.get("note") if action == "note" and isinstance(item.get("note"), dict) else item
    raw_id = inner.get("id")
    entity_id = raw_id if section == "message" else _value("id", raw_id) if isinstance(raw_id, str) else None
    if not entity_id or (section != "message" and not isinstance(entity_id, int)):
        raise Rejected(f"{where} has no valid id")
    kind = KINDS[(section, action)]
    if action == "note":
        kind = NOTE_KINDS.get(_note_type(item), "crm.other")
    elif section == "message" and item.get("type") == "outgoing":
        kind = "message.outgoing"
    fields: dict[str, Any] = {}
    if full:
        if action == "note":
            fields = _note_fields(item)
        elif section == "task":
            fields = _task_fields(item)
        elif section == "message":
            fields = _message_fields(item)
        elif section == "contacts":
            fields = _contact_fields(item)
        else:
            fields = _lead_fields(item)
    # The whole item identifies the change: a repeated delivery is byte-for-byte the same entity.
    key = event_key("amocrm", section, action, item)
    return Event(account=account, source="amocrm", kind=kind, entity_id=entity_id, fields=fields, key=key)
