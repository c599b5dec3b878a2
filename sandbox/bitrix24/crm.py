"""Deals, leads and contacts: the classic crm.<entity>.add/get/list/update/delete.

Fields are UPPER_CASE as on the wire; values are stored as Bitrix24 answers them
(strings, "Y"/"N", ISO dates, null for empty). Unknown fields in `fields` are ignored
(CONFIRMED for crm.lead.update). Multifields (PHONE, EMAIL) are lists of
{ID, VALUE_TYPE, VALUE, TYPE_ID}; an item sent with an ID changes that value (an empty
VALUE deletes it), an item without one is appended.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import errors
from .filters import Matcher, iso_date, order_by, page, to_timestamp
from .params import BadParams, Params, to_int
from .phones import phone_key
from .portal import Caller, Portal

_COMMON = {"ID": "int", "ASSIGNED_BY_ID": "int", "CREATED_BY_ID": "int", "MODIFY_BY_ID": "int",
           "DATE_CREATE": "datetime", "DATE_MODIFY": "datetime", "OPENED": "string", "COMMENTS": "string",
           "SOURCE_ID": "string", "SOURCE_DESCRIPTION": "string", "ORIGINATOR_ID": "string", "ORIGIN_ID": "string",
           "LAST_ACTIVITY_TIME": "datetime", "LAST_ACTIVITY_BY": "int", "COMPANY_ID": "int",
           "UTM_SOURCE": "string", "UTM_MEDIUM": "string", "UTM_CAMPAIGN": "string", "UTM_CONTENT": "string",
           "UTM_TERM": "string"}
_MONEY = {"OPPORTUNITY": "double", "CURRENCY_ID": "string", "IS_MANUAL_OPPORTUNITY": "string"}
_PERSON = {"NAME": "string", "LAST_NAME": "string", "SECOND_NAME": "string", "HONORIFIC": "string",
           "POST": "string", "BIRTHDATE": "date", "HAS_PHONE": "string", "HAS_EMAIL": "string"}
MULTIFIELDS = ("PHONE", "EMAIL")


@dataclass(frozen=True)
class EntityType:
    name: str                       # "deal"
    type_id: int                    # OWNER_TYPE_ID / entityTypeId
    uf_entity: str                  # crm.<name>.userfield.* ENTITY_ID
    event: str                      # event name prefix, e.g. ONCRMDEAL
    kinds: dict[str, str]           # standard fields and how they compare
    readonly: frozenset = frozenset()
    multifields: tuple[str, ...] = ()
    label: str = ""                 # default title: "<label> #<id>"


DEAL = EntityType("deal", 2, "CRM_DEAL", "ONCRMDEAL", {
    **_COMMON, **_MONEY, "TITLE": "string", "TYPE_ID": "string", "STAGE_ID": "string", "PROBABILITY": "int",
    "TAX_VALUE": "double", "LEAD_ID": "int", "CONTACT_ID": "int", "QUOTE_ID": "int", "BEGINDATE": "date",
    "CLOSEDATE": "date", "CLOSED": "string", "ADDITIONAL_INFO": "string", "LOCATION_ID": "string",
    "CATEGORY_ID": "int", "STAGE_SEMANTIC_ID": "string", "IS_NEW": "string", "IS_RECURRING": "string",
    "IS_RETURN_CUSTOMER": "string", "IS_REPEATED_APPROACH": "string", "MOVED_BY_ID": "int",
    "MOVED_TIME": "datetime"},
    readonly=frozenset({"ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID", "STAGE_SEMANTIC_ID",
                        "CLOSED", "MOVED_BY_ID", "MOVED_TIME", "IS_NEW", "LAST_ACTIVITY_TIME", "LAST_ACTIVITY_BY"}),
    label="Сделка")
LEAD = EntityType("lead", 1, "CRM_LEAD", "ONCRMLEAD", {
    **_COMMON, **_MONEY, **_PERSON, "TITLE": "string", "STATUS_ID": "string", "STATUS_SEMANTIC_ID": "string",
    "STATUS_DESCRIPTION": "string", "CONTACT_ID": "int", "DATE_CLOSED": "datetime", "MOVED_BY_ID": "int",
    "MOVED_TIME": "datetime", "IS_RETURN_CUSTOMER": "string"},
    readonly=frozenset({"ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID", "STATUS_SEMANTIC_ID",
                        "MOVED_BY_ID", "MOVED_TIME", "HAS_PHONE", "HAS_EMAIL", "DATE_CLOSED",
                        "LAST_ACTIVITY_TIME", "LAST_ACTIVITY_BY"}),
    multifields=MULTIFIELDS, label="Лид")
CONTACT = EntityType("contact", 3, "CRM_CONTACT", "ONCRMCONTACT", {
    **_COMMON, **_PERSON, "TYPE_ID": "string", "EXPORT": "string"},
    readonly=frozenset({"ID", "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID", "HAS_PHONE",
                        "HAS_EMAIL", "LAST_ACTIVITY_TIME", "LAST_ACTIVITY_BY"}),
    multifields=MULTIFIELDS, label="Контакт")
TYPES = {"deal": DEAL, "lead": LEAD, "contact": CONTACT}


def store(portal: Portal, et: EntityType) -> dict[int, dict]:
    return portal.store(et.type_id)


def kinds(portal: Portal, et: EntityType) -> dict[str, str]:
    return {**et.kinds, **portal.field_kinds(et.uf_entity), **{m: "string" for m in et.multifields}}


# ---------------------------------------------------------------------- values
def _wire(portal: Portal, kind: str, value: Any, name: str) -> Any:
    """An input value in the form Bitrix24 stores and answers it."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [_wire(portal, kind, v, name) for v in value]
    if kind == "int":
        try:
            return str(int(str(value).strip()))
        except ValueError:
            raise BadParams(f"Field '{name}' must be an integer.") from None
    if kind == "double":
        try:
            return f"{float(str(value).strip()):.2f}"
        except ValueError:
            raise BadParams(f"Field '{name}' must be a number.") from None
    if kind in ("datetime", "date"):
        ts = to_timestamp(value, portal.tz)
        if ts is None:
            raise BadParams(f"Field '{name}' must be a date in ISO 8601.")
        if kind == "date":
            return iso_date(datetime.fromtimestamp(ts, portal.tz).date(), portal.tz)
        return portal.iso(ts)
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def _multifield(portal: Portal, current: list[dict], given: Any, type_id: str) -> list[dict]:
    items = list(given.values()) if isinstance(given, dict) else given
    if not isinstance(items, list):
        raise BadParams(f"Field '{type_id}' must be an array.")
    out = copy.deepcopy(current)
    for item in items:
        if not isinstance(item, dict):
            continue
        value = str(item.get("VALUE", "") or "").strip()
        if item.get("ID"):
            mine = next((m for m in out if m["ID"] == str(item["ID"])), None)
            if mine is None:
                continue
            if not value:
                out.remove(mine)
            else:
                mine["VALUE"] = value
                mine["VALUE_TYPE"] = str(item.get("VALUE_TYPE") or mine["VALUE_TYPE"])
        elif value:
            out.append({"ID": str(portal.new_id("multifield")), "VALUE_TYPE": str(item.get("VALUE_TYPE") or "WORK"),
                        "VALUE": value, "TYPE_ID": type_id})
    return out


def _apply_fields(portal: Portal, et: EntityType, record: dict, fields: dict) -> None:
    all_kinds = kinds(portal, et)
    for name, value in fields.items():
        key = str(name).upper()
        if key in et.multifields:
            record[key] = _multifield(portal, record.get(key) or [], value, key)
            continue
        if key not in all_kinds or key in et.readonly or key in ("STAGE_ID", "STATUS_ID", "CATEGORY_ID"):
            continue  # unknown and read-only fields are ignored; stages are handled below
        if key.startswith("UF_"):
            uf = portal.userfield(et.uf_entity, key)
            wired = _wire(portal, all_kinds[key], value, key)
            if uf["MULTIPLE"] == "Y":
                record[key] = wired if isinstance(wired, list) else ([] if wired is None else [wired])
            else:
                record[key] = wired[0] if isinstance(wired, list) else wired
            continue
        record[key] = _wire(portal, all_kinds[key], value, key)
    if "ASSIGNED_BY_ID" in fields and int(record["ASSIGNED_BY_ID"] or 0) not in portal.users:
        raise BadParams(f"User {record['ASSIGNED_BY_ID']} is not found.")
    for m in et.multifields:
        if m in record:
            record[f"HAS_{m}"] = "Y" if record[m] else "N"


def _move_stage(portal: Portal, et: EntityType, record: dict, fields: dict, caller: Caller, now: str,
                *, adding: bool) -> bool:
    """Set the stage (deals) or status (leads) from `fields`; True when it changed."""
    if et is DEAL:
        category = to_int(record["CATEGORY_ID"], "CATEGORY_ID")
        wanted = _field(fields, "STAGE_ID")
        if wanted in (None, ""):
            if not adding:
                return False
            stage = portal.stages(category)[0]
        else:
            stage = next((s for s in portal.stages(category) if s["STATUS_ID"] == str(wanted)), None)
            if stage is None:
                raise BadParams(f"Stage '{wanted}' is not in the pipeline {category}.")
        changed = record.get("STAGE_ID") != stage["STATUS_ID"]
        record["STAGE_ID"] = stage["STATUS_ID"]
        record["STAGE_SEMANTIC_ID"] = stage["SEMANTICS"] or "P"
        record["CLOSED"] = "Y" if stage["SEMANTICS"] in ("S", "F") else "N"
    elif et is LEAD:
        wanted = _field(fields, "STATUS_ID")
        if wanted in (None, ""):
            if not adding:
                return False
            wanted = "NEW"
        status = portal.lead_status(str(wanted))
        if status is None:
            raise BadParams(f"Status '{wanted}' is not found.")
        changed = record.get("STATUS_ID") != status["STATUS_ID"]
        record["STATUS_ID"] = status["STATUS_ID"]
        record["STATUS_SEMANTIC_ID"] = status["SEMANTICS"] or "P"
        record["DATE_CLOSED"] = now if status["SEMANTICS"] in ("S", "F") else None
    else:
        return False
    if changed:
        record["MOVED_TIME"], record["MOVED_BY_ID"] = now, str(caller.user_id)
        if not adding and et is DEAL:
            record["IS_NEW"] = "N"
    return changed


def _field(fields: dict, name: str) -> Any:
    return next((v for k, v in fields.items() if str(k).upper() == name), None)


def _blank(portal: Portal, et: EntityType, caller: Caller, now: str, category: int) -> dict:
    user = str(caller.user_id)
    record: dict = {k: None for k in et.kinds}
    record.update({"ASSIGNED_BY_ID": user, "CREATED_BY_ID": user, "MODIFY_BY_ID": user, "DATE_CREATE": now,
                   "DATE_MODIFY": now, "OPENED": "Y", "LAST_ACTIVITY_TIME": now, "LAST_ACTIVITY_BY": user,
                   "COMPANY_ID": "0"})
    if et is DEAL:
        today = datetime.fromtimestamp(portal.now(), portal.tz).date()
        record.update({"TYPE_ID": "SALE", "CURRENCY_ID": portal.info["currency"], "OPPORTUNITY": "0.00",
                       "IS_MANUAL_OPPORTUNITY": "N", "TAX_VALUE": "0.00", "BEGINDATE": iso_date(today, portal.tz),
                       "CLOSEDATE": iso_date(today + timedelta(days=7), portal.tz), "CATEGORY_ID": str(category),
                       "IS_NEW": "Y", "IS_RECURRING": "N", "IS_RETURN_CUSTOMER": "N", "IS_REPEATED_APPROACH": "N"})
    elif et is LEAD:
        record.update({"CURRENCY_ID": portal.info["currency"], "OPPORTUNITY": "0.00", "IS_MANUAL_OPPORTUNITY": "N",
                       "IS_RETURN_CUSTOMER": "N", "HAS_PHONE": "N", "HAS_EMAIL": "N"})
    else:
        record.update({"TYPE_ID": "CLIENT", "EXPORT": "Y", "HAS_PHONE": "N", "HAS_EMAIL": "N"})
    for uf in portal.userfields[et.uf_entity]:
        record[uf["FIELD_NAME"]] = [] if uf["MULTIPLE"] == "Y" else None
    for m in et.multifields:
        record[m] = []
    return record


# ---------------------------------------------------------------------- writes
def add(portal: Portal, et: EntityType, fields: Any, caller: Caller, *, silent: bool = False,
        created: float | None = None) -> int:
    if not isinstance(fields, dict):
        raise BadParams("Parameter 'fields' must be array.")
    with portal.lock:
        now = portal.iso(created)
        category = 0
        if et is DEAL and _field(fields, "CATEGORY_ID") not in (None, ""):
            category = to_int(_field(fields, "CATEGORY_ID"), "CATEGORY_ID")
            if category not in portal.categories:
                raise BadParams(f"Category {category} is not found.")
        record = _blank(portal, et, caller, now, category)
        _apply_fields(portal, et, record, fields)
        _move_stage(portal, et, record, fields, caller, now, adding=True)
        if et is DEAL and _field(fields, "CONTACT_IDS"):
            first = _field(fields, "CONTACT_IDS")
            first = list(first.values()) if isinstance(first, dict) else first
            record["CONTACT_ID"] = _wire(portal, "int", first[0] if isinstance(first, list) else first, "CONTACT_IDS")
        new_id = portal.new_id(et.name)
        record["ID"] = str(new_id)
        if et is not CONTACT and not record.get("TITLE"):
            record["TITLE"] = f"{et.label} #{new_id}"
        store(portal, et)[new_id] = record
    if not silent:
        portal.emit(et.event + "ADD", {"FIELDS": {"ID": str(new_id)}}, caller)
    return new_id


def existing(portal: Portal, et: EntityType, entity_id: Any) -> dict:
    """The stored record (caller holds the lock), or the errors crm.*.get answers."""
    try:
        number = to_int(entity_id, "ID")
    except BadParams:
        raise errors.id_invalid() from None
    if number <= 0:
        raise errors.id_invalid()
    record = store(portal, et).get(number)
    if record is None:
        raise errors.not_found()
    return record


def update(portal: Portal, et: EntityType, entity_id: Any, fields: Any, caller: Caller, *,
           silent: bool = False) -> bool:
    if not isinstance(fields, dict):
        raise BadParams("Parameter 'fields' must be array.")
    with portal.lock:
        record = existing(portal, et, entity_id)
        changed = copy.deepcopy(record)
        now = portal.iso()
        _apply_fields(portal, et, changed, fields)
        _move_stage(portal, et, changed, fields, caller, now, adding=False)
        changed["DATE_MODIFY"], changed["MODIFY_BY_ID"] = now, str(caller.user_id)
        record.clear()
        record.update(changed)
    if not silent:
        portal.emit(et.event + "UPDATE", {"FIELDS": {"ID": record["ID"]}}, caller)
    return True


def delete(portal: Portal, et: EntityType, entity_id: Any, caller: Caller) -> bool:
    with portal.lock:
        record = existing(portal, et, entity_id)
        number = int(record["ID"])
        del store(portal, et)[number]
        for activity_id in [i for i, a in portal.activities.items()
                            if a["OWNER_TYPE_ID"] == str(et.type_id) and a["OWNER_ID"] == str(number)]:
            del portal.activities[activity_id]   # a deleted item takes its timeline with it
    portal.emit(et.event + "DELETE", {"FIELDS": {"ID": str(number)}}, caller)
    return True


# ---------------------------------------------------------------------- reads
def get(portal: Portal, et: EntityType, entity_id: Any) -> dict:
    with portal.lock:
        record = copy.deepcopy(existing(portal, et, entity_id))
    for m in et.multifields:
        if not record.get(m):
            record.pop(m, None)   # multifields appear only when the item has values (UNCONFIRMED)
    return record


def select(record: dict, et: EntityType, chosen: Any, uf_names: list[str]) -> dict:
    """Fields named in `select`: '*' all standard ones, 'UF_*' all user fields; multifields only by name."""
    names = list(chosen.values()) if isinstance(chosen, dict) else chosen
    if isinstance(names, str):
        names = [names]
    names = [str(n).upper() for n in (names or [])] or ["*", "UF_*"]
    keep: list[str] = ["ID"]
    for n in names:
        if n == "*":
            keep += list(et.kinds)
        elif n == "UF_*":
            keep += uf_names
        elif n in record:
            keep.append(n)
    return {k: record.get(k) for k in dict.fromkeys(keep) if k in record or k in et.kinds}


def values_reader(et: EntityType):
    """How a filter reads a field: multifields by their VALUEs (phones compared by digits)."""
    def read(record: dict, name: str) -> list:
        if name in et.multifields:
            return [phone_key(m["VALUE"]) if name == "PHONE" else m["VALUE"] for m in record.get(name) or []]
        value = record.get(name)
        if value is None or value == "" or value == []:
            return []
        return list(value) if isinstance(value, list) else [value]
    return read


def _phone_keys(value: Any) -> Any:
    if isinstance(value, dict):
        value = list(value.values())
    return [phone_key(v) for v in value] if isinstance(value, list) else phone_key(value)


def list_(portal: Portal, et: EntityType, params: Params) -> tuple[list[dict], int | None, int | None]:
    flt = params.dict("filter")
    if "PHONE" in {str(k).lstrip("=!").upper() for k in flt} and et.multifields:
        flt = {k: (_phone_keys(v) if str(k).lstrip("=!").upper() == "PHONE" else v) for k, v in flt.items()}
    with portal.lock:
        all_kinds = kinds(portal, et)
        match = Matcher(flt, all_kinds, portal.tz, values_reader(et))
        found = [r for r in store(portal, et).values() if match(r)]
        found = order_by(found, params.dict("order"), all_kinds, portal.tz)
        chunk, total, following = page(found, params.get("start"))
        uf_names = [f["FIELD_NAME"] for f in portal.userfields[et.uf_entity]]
        rows = [copy.deepcopy(select(r, et, params.get("select"), uf_names)) for r in chunk]
    return rows, total, following
