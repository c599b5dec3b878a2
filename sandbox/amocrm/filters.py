"""Read queries of the list endpoints: which entities a filter[...] / query / order selects.

Call with `account.lock` held. Each function returns the full ordered match list; the
caller slices the page.
"""

from __future__ import annotations

from . import fields as cf
from .model import LEADS, Contact, Event, Lead, Note, Task
from .query import BadQuery, as_ints, as_list, in_range, order, time_range
from .state import SandboxAccount


def _matches_text(acc: SandboxAccount, needle: str, name: str, custom_fields: list[dict], phones: list[str]) -> bool:
    if needle.casefold() in name.casefold():
        return True
    key = cf.phone_key(needle)
    # Digits of a query are compared with the last 10 digits of each phone, so +7/8 prefixes do not matter.
    if len(key) >= 5 and any(key in cf.phone_key(p) for p in phones):
        return True
    return any(needle.casefold() in str(v.get("value", "")).casefold()
               for f in custom_fields for v in f["values"])


def contact_matches(acc: SandboxAccount, contact: Contact, needle: str) -> bool:
    return _matches_text(acc, needle, contact.name, contact.custom_fields, acc.contact_phones(contact))


def leads(acc: SandboxAccount, params: dict) -> list[Lead]:
    f = params.get("filter") if isinstance(params.get("filter"), dict) else {}
    ids = as_ints(f.get("id"), "id")
    pipelines = as_ints(f.get("pipeline_id"), "pipeline_id")
    responsible = as_ints(f.get("responsible_user_id"), "responsible_user_id")
    created_by = as_ints(f.get("created_by"), "created_by")
    updated_by = as_ints(f.get("updated_by"), "updated_by")
    ranges = {key: time_range(f.get(key), key) for key in ("created_at", "updated_at", "closed_at", "closest_task_at")}
    statuses = None
    if f.get("statuses") is not None:
        statuses = set()
        for item in as_list(f["statuses"]):
            # Items need both ids (the PHP client skips incomplete ones; so do we).
            if isinstance(item, dict) and item.get("pipeline_id") and item.get("status_id"):
                try:
                    statuses.add((int(item["pipeline_id"]), int(item["status_id"])))
                except ValueError:
                    raise BadQuery("filter[statuses] ids must be integers") from None
    name = f.get("name")
    needle = str(params.get("query") or "").strip()
    result = []
    for lead in acc.leads.values():
        if lead.is_deleted:
            continue
        if ids is not None and lead.id not in ids:
            continue
        if pipelines is not None and lead.pipeline_id not in pipelines:
            continue
        if statuses is not None and (lead.pipeline_id, lead.status_id) not in statuses:
            continue
        if responsible is not None and lead.responsible_user_id not in responsible:
            continue
        if created_by is not None and lead.created_by not in created_by:
            continue
        if updated_by is not None and lead.updated_by not in updated_by:
            continue
        if name is not None and str(name).casefold() not in lead.name.casefold():
            continue
        if any(r is not None and not in_range(_lead_time(acc, lead, k), r) for k, r in ranges.items()):
            continue
        if needle and not (needle == str(lead.id)
                           or _matches_text(acc, needle, lead.name, lead.custom_fields, [])
                           or any(contact_matches(acc, acc.contacts[c], needle) for c in lead.contact_ids)):
            continue
        result.append(lead)
    key, desc = order(params, ("created_at", "updated_at", "id"), ("id", False))
    result.sort(key=lambda e: (getattr(e, key), e.id), reverse=desc)
    return result


def _lead_time(acc: SandboxAccount, lead: Lead, key: str) -> int | None:
    if key == "closest_task_at":
        return acc.closest_task_at(LEADS, lead.id)
    return getattr(lead, key)


def contacts(acc: SandboxAccount, params: dict) -> list[Contact]:
    f = params.get("filter") if isinstance(params.get("filter"), dict) else {}
    ids = as_ints(f.get("id"), "id")
    responsible = as_ints(f.get("responsible_user_id"), "responsible_user_id")
    created = time_range(f.get("created_at"), "created_at")
    updated = time_range(f.get("updated_at"), "updated_at")
    name = f.get("name")
    needle = str(params.get("query") or "").strip()
    result = []
    for c in acc.contacts.values():
        if c.is_deleted or (ids is not None and c.id not in ids):
            continue
        if responsible is not None and c.responsible_user_id not in responsible:
            continue
        if not in_range(c.created_at, created) or not in_range(c.updated_at, updated):
            continue
        if name is not None and str(name).casefold() != c.name.casefold():
            continue
        if needle and not (needle == str(c.id) or contact_matches(acc, c, needle)):
            continue
        result.append(c)
    key, desc = order(params, ("updated_at", "id"), ("id", False))
    result.sort(key=lambda e: (getattr(e, key), e.id), reverse=desc)
    return result


def tasks(acc: SandboxAccount, params: dict) -> list[Task]:
    f = params.get("filter") if isinstance(params.get("filter"), dict) else {}
    ids = as_ints(f.get("id"), "id")
    responsible = as_ints(f.get("responsible_user_id"), "responsible_user_id")
    types = as_ints(f.get("task_type"), "task_type")
    entity_ids = as_ints(f.get("entity_id"), "entity_id")
    entity_type = f.get("entity_type")
    if entity_ids is not None and entity_type is None:
        raise BadQuery("filter[entity_id] needs filter[entity_type]")
    completed = None
    if f.get("is_completed") not in (None, ""):
        completed = str(f["is_completed"]).lower() in ("1", "true")
    updated = time_range(f.get("updated_at"), "updated_at")
    if entity_type is not None and entity_ids is not None and ids is None:
        # Use the per-entity index: the common "open tasks of these leads" query stays cheap at 5,000 leads.
        pool = [t for eid in entity_ids for t in acc.tasks_of(entity_type, eid, open_only=False)]
    else:
        pool = list(acc.tasks.values())
    result = []
    for t in pool:
        if ids is not None and t.id not in ids:
            continue
        if entity_type is not None and t.entity_type != entity_type:
            continue
        if entity_ids is not None and t.entity_id not in entity_ids:
            continue
        if responsible is not None and t.responsible_user_id not in responsible:
            continue
        if types is not None and t.task_type_id not in types:
            continue
        if completed is not None and t.is_completed != completed:
            continue
        if not in_range(t.updated_at, updated):
            continue
        result.append(t)
    key, desc = order(params, ("created_at", "complete_till", "id"), ("id", False))
    result.sort(key=lambda e: (getattr(e, key), e.id), reverse=desc)
    return result


def notes(acc: SandboxAccount, entity_type: str, params: dict, entity_id: int | None = None) -> list[Note]:
    f = params.get("filter") if isinstance(params.get("filter"), dict) else {}
    ids = as_ints(f.get("id"), "id")
    entity_ids = {entity_id} if entity_id is not None else as_ints(f.get("entity_id"), "entity_id")
    types = set(as_list(f.get("note_type"))) or None
    updated = time_range(f.get("updated_at"), "updated_at")
    result = [n for n in acc.notes.values()
              if n.entity_type == entity_type
              and (ids is None or n.id in ids)
              and (entity_ids is None or n.entity_id in entity_ids)
              and (types is None or n.note_type in types)
              and in_range(n.updated_at, updated)]
    key, desc = order(params, ("updated_at", "id"), ("id", False))
    result.sort(key=lambda e: (getattr(e, key), e.id), reverse=desc)
    return result


def events(acc: SandboxAccount, params: dict) -> list[Event]:
    f = params.get("filter") if isinstance(params.get("filter"), dict) else {}
    ids = set(as_list(f.get("id"))) or None
    types = set(as_list(f.get("type"))) or None
    entities = set(as_list(f.get("entity"))) or None
    entity_ids = as_ints(f.get("entity_id"), "entity_id")
    if entity_ids is not None and (entities is None or len(entities) != 1):
        raise BadQuery("filter[entity_id] needs exactly one filter[entity]")
    created_by = as_ints(f.get("created_by"), "created_by")
    created = time_range(f.get("created_at"), "created_at")
    after = f.get("value_after") if isinstance(f.get("value_after"), dict) else None
    before = f.get("value_before") if isinstance(f.get("value_before"), dict) else None
    result = [e for e in acc.events
              if (ids is None or e.id in ids)
              and (types is None or e.type in types)
              and (entities is None or e.entity_type in entities)
              and (entity_ids is None or e.entity_id in entity_ids)
              and (created_by is None or e.created_by in created_by)
              and in_range(e.created_at, created)
              and _value_matches(e.value_after, after) and _value_matches(e.value_before, before)]
    # Newest first unless asked otherwise (UNCONFIRMED default); ids are time-ordered ULIDs.
    key, desc = order(params, ("created_at", "id"), ("created_at", True))
    result.sort(key=lambda e: (getattr(e, key), e.id), reverse=desc)
    return result


def _value_matches(values: list, spec: dict | None) -> bool:
    """filter[value_after][leads_statuses][0][status_id|pipeline_id] and [responsible_user_id] (CONFIRMED names)."""
    if not spec:
        return True
    if "leads_statuses" in spec:
        wanted = {(str(s.get("pipeline_id")), str(s.get("status_id"))) for s in as_list(spec["leads_statuses"])
                  if isinstance(s, dict)}
        have = {(str(v["lead_status"]["pipeline_id"]), str(v["lead_status"]["id"])) for v in values
                if "lead_status" in v}
        if not wanted & have:
            return False
    if "responsible_user_id" in spec:
        wanted_users = {str(u) for u in as_list(spec["responsible_user_id"])}
        have_users = {str(v["responsible_user"]["id"]) for v in values if "responsible_user" in v}
        if not wanted_users & have_users:
            return False
    return True

