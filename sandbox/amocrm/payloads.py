"""Webhook bodies exactly as amoCRM posts them: x-www-form-urlencoded, PHP-style nested keys, all values strings.

    leads[status][0][id]=24100002&leads[status][0][old_status_id]=61000001&...&account[subdomain]=demo

Field sets follow the reference's §4.3 captures (CONFIRMED for leads add/update/status/responsible
and lead notes; tasks PARTLY CONFIRMED, sent in the singular `task[...]` section). Choices for the
unconfirmed parts are commented where they are made.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from .fields import DATE_TYPES
from .model import CONTACTS, ELEMENT_TYPE, Contact, CustomField, Lead, Note, Task
from .state import Change, SandboxAccount

# Legacy numeric note types used by webhooks: 4 common, 10 call_in, 11 call_out (CONFIRMED);
# 25 service message (UNCONFIRMED, recalled v2 table).
NOTE_TYPE_CODES = {"common": 4, "call_in": 10, "call_out": 11, "service_message": 25}


def _custom_fields(defs: dict[int, CustomField], values: list[dict], with_code: bool) -> dict:
    out = {}
    for i, f in enumerate(values):
        d = defs.get(f["field_id"])
        item: dict[str, Any] = {"id": f["field_id"], "name": d.name if d else ""}
        if with_code and d and d.code:
            item["code"] = d.code  # contact fields carry their code (PHONE, EMAIL) — UNCONFIRMED, commonly seen
        if d and d.type in DATE_TYPES:
            # Date values come without the [value] level: custom_fields[2][values][0]=1541980800 (CONFIRMED variant).
            item["values"] = {j: v.get("value") for j, v in enumerate(f["values"])}
        else:
            item["values"] = {j: _value(v) for j, v in enumerate(f["values"])}
        out[i] = item
    return out


def _value(v: dict) -> dict:
    one = {"value": v.get("value")}
    if "enum_id" in v:
        one["enum"] = v["enum_id"]
    return one


def _tags(acc: SandboxAccount, tag_ids: list[int]) -> dict:
    return {i: {"id": t, "name": acc.tags[t].name} for i, t in enumerate(tag_ids) if t in acc.tags}


def lead_fields(acc: SandboxAccount, lead: Lead, extra: dict) -> dict:
    d: dict[str, Any] = {"id": lead.id, "name": lead.name, "status_id": lead.status_id}
    if "old_status_id" in extra:
        d["old_status_id"] = extra["old_status_id"]
    d.update(price=lead.price, responsible_user_id=lead.responsible_user_id, last_modified=lead.updated_at,
             modified_user_id=lead.updated_by, created_user_id=lead.created_by, date_create=lead.created_at,
             pipeline_id=lead.pipeline_id)
    if "old_pipeline_id" in extra:
        d["old_pipeline_id"] = extra["old_pipeline_id"]
    if lead.tag_ids:
        d["tags"] = _tags(acc, lead.tag_ids)
    d["account_id"] = acc.info.id
    if lead.custom_fields:
        d["custom_fields"] = _custom_fields(acc.fields["leads"], lead.custom_fields, with_code=False)
    d.update(created_at=lead.created_at, updated_at=lead.updated_at)
    if "old_responsible_user_id" in extra:
        d["old_responsible_user_id"] = extra["old_responsible_user_id"]
    return d


def contact_fields(acc: SandboxAccount, c: Contact) -> dict:
    # Contact bodies mirror the lead ones; `type=contact` as older accounts send it (UNCONFIRMED).
    d: dict[str, Any] = {"id": c.id, "name": c.name, "responsible_user_id": c.responsible_user_id,
                         "date_create": c.created_at, "last_modified": c.updated_at,
                         "created_user_id": c.created_by, "modified_user_id": c.updated_by,
                         "account_id": acc.info.id, "type": "contact"}
    if c.custom_fields:
        d["custom_fields"] = _custom_fields(acc.fields[CONTACTS], c.custom_fields, with_code=True)
    if c.tag_ids:
        d["tags"] = _tags(acc, c.tag_ids)
    d.update(created_at=c.created_at, updated_at=c.updated_at)
    return d


def task_fields(acc: SandboxAccount, t: Task) -> dict:
    d: dict[str, Any] = {
        "id": t.id, "element_id": t.entity_id or 0, "element_type": ELEMENT_TYPE.get(t.entity_type, 0),
        "task_type": t.task_type_id, "text": t.text,
        "status": "1" if t.is_completed else "0",          # UNCONFIRMED: "0" open, "1" completed
        "account_id": acc.info.id, "created_user_id": t.created_by, "modified_user_id": t.updated_by,
        "responsible_user_id": t.responsible_user_id, "date_create": t.created_at, "last_modified": t.updated_at,
        "created_at": t.created_at, "updated_at": t.updated_at, "complete_till": t.complete_till,
    }
    if t.is_completed and t.result_text:
        d["result"] = {"text": t.result_text}          # UNCONFIRMED key
    return d


def _local_time(ts: int, tz: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def note_text(n: Note) -> str:
    if n.note_type in ("call_in", "call_out"):
        p = n.params
        # Call notes carry a JSON string with upper-case keys (CONFIRMED); call_status/call_result (UNCONFIRMED).
        return json.dumps({"UNIQ": str(p.get("uniq") or ""), "DURATION": str(p.get("duration") or 0),
                           "SRC": str(p.get("source") or ""), "LINK": str(p.get("link") or ""),
                           "PHONE": str(p.get("phone") or ""), "call_status": str(p.get("call_status") or ""),
                           "call_result": str(p.get("call_result") or "")}, ensure_ascii=False)
    return str(n.params.get("text", ""))


def note_fields(acc: SandboxAccount, n: Note) -> dict:
    tz = acc.info.timezone
    return {"note": {
        "element_type": ELEMENT_TYPE[n.entity_type], "element_id": n.entity_id,
        "note_type": NOTE_TYPE_CODES[n.note_type], "text": note_text(n), "account_id": acc.info.id,
        "date_create": _local_time(n.created_at, tz), "timestamp_x": _local_time(n.updated_at, tz),
        "created_by": n.created_by, "modified_by": n.updated_by, "main_user_id": n.responsible_user_id,
        "group_id": n.group_id, "id": n.id, "created_at": n.created_at, "updated_at": n.updated_at,
    }}


def fields_of(acc: SandboxAccount, change: Change) -> dict:
    entity = change.entity
    if isinstance(entity, Lead):
        return lead_fields(acc, entity, change.extra)
    if isinstance(entity, Contact):
        return contact_fields(acc, entity)
    if isinstance(entity, Task):
        return task_fields(acc, entity)
    if isinstance(entity, Note):
        return note_fields(acc, entity)
    raise TypeError(f"no webhook shape for {type(entity).__name__}")


def body(acc: SandboxAccount, changes: list[Change]) -> dict:
    """{section: {action: {i: fields}}, account: {...}} — sections in the order they happened, account last."""
    nested: dict[str, dict[str, dict[int, dict]]] = {}
    for change in changes:
        items = nested.setdefault(change.section, {}).setdefault(change.action, {})
        items[len(items)] = fields_of(acc, change)
    nested["account"] = {"subdomain": acc.info.subdomain, "id": acc.info.id,
                         "_links": {"self": acc.info.base_link}}
    return nested


def flatten(node: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts to PHP keys: {"leads": {"status": {0: {"id": 5}}}} -> [("leads[status][0][id]", "5")]."""
    if isinstance(node, dict):
        pairs = []
        for key, value in node.items():
            pairs += flatten(value, f"{prefix}[{key}]" if prefix else str(key))
        return pairs
    if node is None:
        return [(prefix, "")]
    if isinstance(node, bool):
        return [(prefix, "1" if node else "0")]
    return [(prefix, str(node))]


def encode(acc: SandboxAccount, changes: list[Change]) -> str:
    return urlencode(flatten(body(acc, changes)))
