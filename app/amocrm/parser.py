"""amoCRM account webhooks (form-encoded, PHP-style keys) → one Event per entity.

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
    ("leads", "note"): "note.added",
    ("contacts", "add"): "contact.added",
    ("contacts", "update"): "contact.updated",
    ("contacts", "note"): "note.added",
    ("task", "add"): "task.added",
    ("task", "update"): "task.updated",
    ("task", "delete"): "task.deleted",
    ("task", "responsible"): "task.responsible_changed",
    ("message", "add"): None,  # incoming or outgoing, decided by the message's type
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


def _entity_fields(item: dict) -> dict[str, Any]:
    f = _scalars(item)
    f["created_at"] = f.get("created_at") or f.get("date_create")
    f["updated_at"] = f.get("updated_at") or f.get("last_modified")
    f["custom_fields"] = _custom_fields(item.get("custom_fields"))
    f["tags"] = [{"id": _value("id", t.get("id", "")), "name": t.get("name")}
                 for t in _listed(item.get("tags")) if isinstance(t, dict)]
    return f


def _parent(f: dict, type_key: str, id_key: str) -> None:
    et = f.get(type_key)
    f["parent_type"] = ELEMENT_TYPES.get(et, et) if isinstance(et, int) else et
    f["parent_id"] = f.get(id_key)


def _note_fields(item: dict) -> dict[str, Any]:
    # Real captures nest the note one level deeper (leads[note][0][note][...]); some
    # handlers read it flat. Accept both.
    inner = item.get("note") if isinstance(item.get("note"), dict) else item
    f = _scalars(inner)
    nt = f.get("note_type")
    f["note_type"] = NOTE_TYPES.get(nt, str(nt)) if isinstance(nt, int) else nt
    _parent(f, "element_type", "element_id")
    if f["note_type"] in ("call_in", "call_out"):
        f["call"] = _call(f.get("text"))
    return f


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
    f = _scalars(item)
    _parent(f, "element_type", "element_id")
    f["complete_till"] = f.get("complete_till") or f.get("complete_till_at")
    f["task_type"] = f.get("task_type") or f.get("task_type_id")
    f["is_completed"] = f.get("status") == 1
    result = item.get("result")
    f["result_text"] = (result.get("text") or None) if isinstance(result, dict) else None
    f["created_at"] = f.get("created_at") or f.get("date_create")
    f["updated_at"] = f.get("updated_at") or f.get("last_modified")
    return f


def _message_fields(item: dict) -> dict[str, Any]:
    f = _scalars(item)
    f["parent_type"] = f.get("entity_type") or ELEMENT_TYPES.get(f.get("element_type"))
    f["parent_id"] = f.get("entity_id") or f.get("element_id")
    for nested in ("author", "attachment"):
        if isinstance(item.get(nested), dict):
            f[nested] = _scalars(item[nested])
    return f


def parse(body: bytes | str, account: str, full: bool = True) -> Parsed:
    """`full=False` (the request path) checks the body and identifies each event (kind, id,
    dedupe key) without normalising its fields; the dispatcher parses fully later."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("body is not UTF-8 text")
    try:
        form = php_form.parse(body)
    except php_form.FormError as e:
        raise Rejected(f"body is not an amoCRM webhook: {e}")
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
    if kind is None:
        kind = "message.outgoing" if item.get("type") == "outgoing" else "message.incoming"
    fields: dict[str, Any] = {}
    if full:
        if action == "note":
            fields = _note_fields(item)
        elif section == "task":
            fields = _task_fields(item)
        elif section == "message":
            fields = _message_fields(item)
        else:
            fields = _entity_fields(item)
    # The whole item identifies the change: a repeated delivery is byte-for-byte the same entity.
    key = event_key("amocrm", section, action, item)
    return Event(account=account, source="amocrm", kind=kind, entity_id=entity_id, fields=fields, key=key)
