"""Entities rendered as API v4 JSON objects (call with `account.lock` held).

`base` is the sandbox's own root URL, so every `_links.self.href` can be followed.
Shapes follow the reference's CONFIRMED examples; fields marked UNCONFIRMED there are
given their most plausible form.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from .model import CONTACTS, LEADS, Contact, CustomField, Event, Lead, LossReason, Note, Pipeline, Status, Task, \
    User, Webhook
from .state import SandboxAccount


def link(href: str) -> dict:
    return {"self": {"href": href}}


def custom_fields_values(defs: dict[int, CustomField], values: list[dict]) -> list[dict] | None:
    # null, not [], when an entity has no values (UNCONFIRMED, commonly observed).
    if not values:
        return None
    out = []
    for f in values:
        d = defs.get(f["field_id"])
        out.append({"field_id": f["field_id"], "field_name": d.name if d else "", "field_code": d.code if d else None,
                    "field_type": d.type if d else "text", "values": [dict(v) for v in f["values"]]})
    return out


def tags(acc: SandboxAccount, tag_ids: list[int]) -> list[dict]:
    return [{"id": t, "name": acc.tags[t].name, "color": acc.tags[t].color} for t in tag_ids if t in acc.tags]


def lead(acc: SandboxAccount, lead: Lead, base: str, with_: set[str] = frozenset()) -> dict:
    embedded: dict = {"tags": tags(acc, lead.tag_ids), "companies": []}
    if "contacts" in with_:
        embedded["contacts"] = [{"id": c, "is_main": i == 0, "_links": link(f"{base}/api/v4/contacts/{c}")}
                                for i, c in enumerate(lead.contact_ids)]
    if "loss_reason" in with_:
        reason = acc.loss_reasons.get(lead.loss_reason_id)
        embedded["loss_reason"] = [loss_reason(reason, base)] if reason else []
    return {
        "id": lead.id, "name": lead.name, "price": lead.price, "responsible_user_id": lead.responsible_user_id,
        "group_id": lead.group_id, "status_id": lead.status_id, "pipeline_id": lead.pipeline_id,
        "loss_reason_id": lead.loss_reason_id, "source_id": None, "created_by": lead.created_by,
        "updated_by": lead.updated_by, "created_at": lead.created_at, "updated_at": lead.updated_at,
        "closed_at": lead.closed_at, "closest_task_at": acc.closest_task_at(LEADS, lead.id),
        "is_deleted": lead.is_deleted,
        "custom_fields_values": custom_fields_values(acc.fields[LEADS], lead.custom_fields),
        "score": None, "account_id": acc.info.id, "labor_cost": None,
        "_links": link(f"{base}/api/v4/leads/{lead.id}"), "_embedded": embedded,
    }


def contact(acc: SandboxAccount, c: Contact, base: str, with_: set[str] = frozenset()) -> dict:
    embedded: dict = {"tags": tags(acc, c.tag_ids), "companies": []}
    if "leads" in with_:
        embedded["leads"] = [{"id": i, "_links": link(f"{base}/api/v4/leads/{i}")} for i in c.lead_ids]
    return {
        "id": c.id, "name": c.name, "first_name": c.first_name, "last_name": c.last_name,
        "responsible_user_id": c.responsible_user_id, "group_id": c.group_id, "created_by": c.created_by,
        "updated_by": c.updated_by, "created_at": c.created_at, "updated_at": c.updated_at,
        "closest_task_at": acc.closest_task_at(CONTACTS, c.id), "is_deleted": c.is_deleted, "is_unsorted": False,
        "custom_fields_values": custom_fields_values(acc.fields[CONTACTS], c.custom_fields),
        "account_id": acc.info.id, "_links": link(f"{base}/api/v4/contacts/{c.id}"), "_embedded": embedded,
    }


def task(acc: SandboxAccount, t: Task, base: str) -> dict:
    return {
        "id": t.id, "created_by": t.created_by, "updated_by": t.updated_by, "created_at": t.created_at,
        "updated_at": t.updated_at, "responsible_user_id": t.responsible_user_id, "group_id": t.group_id,
        "entity_id": t.entity_id, "entity_type": t.entity_type, "duration": t.duration,
        "is_completed": t.is_completed, "task_type_id": t.task_type_id, "text": t.text,
        # An empty result is [] (PHP's empty array), a filled one {"text": ...} (UNCONFIRMED for the empty case).
        "result": {"text": t.result_text} if t.result_text else [],
        "complete_till": t.complete_till, "account_id": acc.info.id,
        "_links": link(f"{base}/api/v4/tasks/{t.id}"),
    }


def note(acc: SandboxAccount, n: Note, base: str) -> dict:
    return {
        "id": n.id, "entity_id": n.entity_id, "created_by": n.created_by, "updated_by": n.updated_by,
        "created_at": n.created_at, "updated_at": n.updated_at, "responsible_user_id": n.responsible_user_id,
        "group_id": n.group_id, "note_type": n.note_type, "params": dict(n.params), "account_id": acc.info.id,
        "_links": link(f"{base}/api/v4/{n.entity_type}/{n.entity_id}/notes/{n.id}"),
    }


EVENT_PATHS = {"lead": "leads", "contact": "contacts", "task": "tasks"}


def event(acc: SandboxAccount, e: Event, base: str) -> dict:
    return {
        "id": e.id, "type": e.type, "entity_id": e.entity_id, "entity_type": e.entity_type,
        "created_by": e.created_by, "created_at": e.created_at, "value_after": e.value_after,
        "value_before": e.value_before, "account_id": acc.info.id, "_links": link(f"{base}/api/v4/events/{e.id}"),
        "_embedded": {"entity": {"id": e.entity_id,
                                 "_links": link(f"{base}/api/v4/{EVENT_PATHS[e.entity_type]}/{e.entity_id}")}},
    }


def user(acc: SandboxAccount, u: User, base: str, with_: set[str] = frozenset()) -> dict:
    level = "A"  # every user sees everything in the demo account
    entity_rights = {"view": level, "edit": level, "add": level, "delete": level, "export": level}
    body = {
        "id": u.id, "name": u.name, "email": u.email, "lang": u.lang,
        "rights": {
            "leads": dict(entity_rights), "contacts": dict(entity_rights), "companies": dict(entity_rights),
            "tasks": {"edit": level, "delete": level}, "mail_access": True, "catalog_access": True,
            "files_access": True, "status_rights": [], "catalog_rights": None, "custom_fields_rights": None,
            "oper_day_reports_view_access": False, "oper_day_user_tracking": False,
            "is_admin": u.is_admin, "is_free": False, "is_active": u.is_active, "group_id": u.group_id,
            "role_id": None,
        },
        "_links": link(f"{base}/api/v4/users/{u.id}"),
    }
    embedded = {}
    if "group" in with_:
        embedded["groups"] = [g for g in acc.user_groups if g["id"] == u.group_id]
    if "role" in with_:
        embedded["roles"] = []
    if embedded:
        body["_embedded"] = embedded
    return body


def status(acc: SandboxAccount, s: Status, base: str) -> dict:
    return {"id": s.id, "name": s.name, "sort": s.sort, "is_editable": s.is_editable, "pipeline_id": s.pipeline_id,
            "color": s.color, "type": s.type, "account_id": acc.info.id,
            "_links": link(f"{base}/api/v4/leads/pipelines/{s.pipeline_id}/statuses/{s.id}")}


def pipeline(acc: SandboxAccount, p: Pipeline, base: str) -> dict:
    return {"id": p.id, "name": p.name, "sort": p.sort, "is_main": p.is_main, "is_unsorted_on": False,
            "is_archive": False, "account_id": acc.info.id, "_links": link(f"{base}/api/v4/leads/pipelines/{p.id}"),
            "_embedded": {"statuses": [status(acc, s, base) for s in sorted(p.statuses, key=lambda s: s.sort)]}}


def loss_reason(r: LossReason, base: str) -> dict:
    return {"id": r.id, "name": r.name, "sort": r.sort, "created_at": r.created_at, "updated_at": r.updated_at,
            "_links": link(f"{base}/api/v4/leads/loss_reasons/{r.id}")}


def custom_field(acc: SandboxAccount, f: CustomField, base: str) -> dict:
    return {"id": f.id, "name": f.name, "type": f.type, "account_id": acc.info.id, "code": f.code, "sort": f.sort,
            "is_api_only": False, "enums": [dict(e) for e in f.enums] if f.enums else None, "group_id": None,
            "required_statuses": [], "is_deletable": f.code is None, "is_predefined": f.code is not None,
            "entity_type": f.entity_type, "remind": None, "settings": None,
            "_links": link(f"{base}/api/v4/{f.entity_type}/custom_fields/{f.id}")}


def webhook(acc: SandboxAccount, w: Webhook) -> dict:
    return {"id": w.id, "destination": w.destination, "created_at": w.created_at, "updated_at": w.updated_at,
            "account_id": acc.info.id, "created_by": w.created_by, "sort": w.sort, "disabled": w.disabled,
            "settings": list(w.settings)}


def account(acc: SandboxAccount, base: str, with_: set[str]) -> dict:
    i = acc.info
    body = {
        "id": i.id, "name": i.name, "subdomain": i.subdomain, "created_at": i.created_at,
        "created_by": i.current_user_id, "updated_at": i.created_at, "updated_by": i.current_user_id,
        "current_user_id": i.current_user_id, "country": i.country, "currency": i.currency,
        "currency_symbol": i.currency_symbol, "customers_mode": "disabled", "is_unsorted_on": False,
        "is_loss_reason_enabled": True, "is_helpbot_enabled": False, "is_technical_account": False,
        "contact_name_display_order": 1, "_links": link(f"{base}/api/v4/account"),
    }
    if "amojo_id" in with_:
        body["amojo_id"] = i.amojo_id
    if "version" in with_:
        body["version"] = 1
    if "datetime_settings" in with_:
        body["datetime_settings"] = {"date_pattern": "d.m.Y H:i", "short_date_pattern": "d.m.Y",
                                     "short_time_pattern": "H:i", "date_format": "d.m.Y", "time_format": "H:i:s",
                                     "timezone": i.timezone, "timezone_offset": _offset(i.timezone)}
    embedded = {}
    if "task_types" in with_:
        embedded["task_types"] = [{"id": t.id, "name": t.name, "color": t.color, "icon_id": t.icon_id, "code": t.code}
                                  for t in acc.task_types.values()]
    if "users_groups" in with_:
        embedded["users_groups"] = [dict(g, uuid=None) for g in acc.user_groups]
    if embedded:
        body["_embedded"] = embedded
    return body


def _offset(tz: str) -> str:
    z = datetime.now(ZoneInfo(tz)).strftime("%z")
    return f"{z[:3]}:{z[3:]}"
