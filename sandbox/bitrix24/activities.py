"""The timeline: activities (crm.activity.*), to-dos (crm.activity.todo.*) and comments (crm.timeline.comment.*).

A to-do is an activity with TYPE_ID 6, PROVIDER_ID CRM_TODO (CONFIRMED); completing it is
crm.activity.update with fields COMPLETED=Y (STATUS becomes 2). Calls finished through
telephony.externalcall.finish add VOXIMPLANT_CALL activities (TYPE_ID 2); tasks bound to
a deal or lead add TASKS_TASK activities (TYPE_ID 3) that complete with the task.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from .errors import ApiError
from .filters import Matcher, order_by, page, to_timestamp
from .params import BadParams, Params, to_int
from .portal import OWNER_TYPES, Caller, Portal

KINDS = {"ID": "int", "OWNER_ID": "int", "OWNER_TYPE_ID": "int", "TYPE_ID": "int", "PROVIDER_ID": "string",
         "PROVIDER_TYPE_ID": "string", "PROVIDER_GROUP_ID": "string", "ASSOCIATED_ENTITY_ID": "int",
         "SUBJECT": "string", "CREATED": "datetime", "LAST_UPDATED": "datetime", "START_TIME": "datetime",
         "END_TIME": "datetime", "DEADLINE": "datetime", "COMPLETED": "string", "STATUS": "int",
         "RESPONSIBLE_ID": "int", "PRIORITY": "int", "NOTIFY_TYPE": "int", "NOTIFY_VALUE": "int",
         "DESCRIPTION": "string", "DESCRIPTION_TYPE": "int", "DIRECTION": "int", "LOCATION": "string",
         "SETTINGS": "string", "ORIGINATOR_ID": "string", "ORIGIN_ID": "string", "AUTHOR_ID": "int",
         "EDITOR_ID": "int", "PROVIDER_PARAMS": "string", "PROVIDER_DATA": "string", "RESULT_MARK": "int",
         "RESULT_VALUE": "string", "RESULT_SUM": "string", "RESULT_CURRENCY_ID": "string", "RESULT_STATUS": "int",
         "RESULT_STREAM": "int", "RESULT_SOURCE_ID": "string", "AUTOCOMPLETE_RULE": "int"}
ON_REQUEST = ("COMMUNICATIONS", "FILES")     # returned only when named in select (CONFIRMED)
UPDATABLE = {"SUBJECT": "string", "DESCRIPTION": "string", "DESCRIPTION_TYPE": "int", "RESPONSIBLE_ID": "int",
             "PRIORITY": "int", "COMPLETED": "string", "START_TIME": "datetime", "END_TIME": "datetime",
             "DIRECTION": "int", "LOCATION": "string", "ORIGIN_ID": "string", "ORIGINATOR_ID": "string"}
TODO, CALL, TASK = ("6", "CRM_TODO", "TODO"), ("2", "VOXIMPLANT_CALL", "CALL"), ("3", "TASKS_TASK", "TASK")


def owner_exists(portal: Portal, owner_type_id: int, owner_id: int) -> bool:
    store = portal.store(owner_type_id)
    return store is not None and owner_id in store


def add(portal: Portal, owner_type_id: int, owner_id: int, kind: tuple[str, str, str], caller: Caller, *,
        subject: str = "", description: str = "", deadline: float | None = None, responsible: int | None = None,
        completed: bool = False, direction: int = 0, associated: int = 0, communications: list | None = None,
        created: float | None = None, silent: bool = False) -> int:
    """A new activity in an item's timeline (the caller checked the owner exists)."""
    with portal.lock:
        now = portal.iso(created)
        when = portal.iso(deadline) if deadline is not None else now
        activity_id = portal.new_id("activity")
        user = str(responsible or caller.user_id)
        portal.activities[activity_id] = {
            "ID": str(activity_id), "OWNER_ID": str(owner_id), "OWNER_TYPE_ID": str(owner_type_id),
            "TYPE_ID": kind[0], "PROVIDER_ID": kind[1], "PROVIDER_TYPE_ID": kind[2], "PROVIDER_GROUP_ID": None,
            "ASSOCIATED_ENTITY_ID": str(associated), "SUBJECT": subject, "CREATED": now, "LAST_UPDATED": now,
            "START_TIME": when, "END_TIME": when, "DEADLINE": when, "COMPLETED": "Y" if completed else "N",
            "STATUS": "2" if completed else "1", "RESPONSIBLE_ID": user, "PRIORITY": "2", "NOTIFY_TYPE": "0",
            "NOTIFY_VALUE": "0", "DESCRIPTION": description, "DESCRIPTION_TYPE": "1", "DIRECTION": str(direction),
            "LOCATION": "", "SETTINGS": [], "ORIGINATOR_ID": None, "ORIGIN_ID": None,
            "AUTHOR_ID": str(caller.user_id), "EDITOR_ID": str(caller.user_id), "PROVIDER_PARAMS": [],
            "PROVIDER_DATA": None, "RESULT_MARK": "0", "RESULT_VALUE": None, "RESULT_SUM": None,
            "RESULT_CURRENCY_ID": None, "RESULT_STATUS": "0", "RESULT_STREAM": "0", "RESULT_SOURCE_ID": None,
            "AUTOCOMPLETE_RULE": "0", "COMMUNICATIONS": communications or [], "FILES": [],
        }
        owner = portal.store(owner_type_id).get(owner_id)
        if owner is not None and "LAST_ACTIVITY_TIME" in owner:
            owner["LAST_ACTIVITY_TIME"], owner["LAST_ACTIVITY_BY"] = now, str(caller.user_id)
    if not silent:
        portal.emit("ONCRMACTIVITYADD", {"FIELDS": {"ID": str(activity_id)}}, caller)
    return activity_id


def existing(portal: Portal, activity_id: Any) -> dict:
    try:
        number = to_int(activity_id, "ID")
    except BadParams:
        raise errors.id_invalid() from None
    record = portal.activities.get(number)
    if record is None:
        raise errors.not_found()
    return record


def get(portal: Portal, activity_id: Any) -> dict:
    with portal.lock:
        record = copy.deepcopy(existing(portal, activity_id))
    for name in ON_REQUEST:
        record.pop(name, None)
    return record


def list_(portal: Portal, params: Params) -> tuple[list[dict], int | None, int | None]:
    names = params.get("select")
    names = list(names.values()) if isinstance(names, dict) else ([names] if isinstance(names, str) else names)
    names = [str(n).upper() for n in (names or [])] or ["*"]
    with portal.lock:
        match = Matcher(params.dict("filter"), KINDS, portal.tz)
        found = order_by([a for a in portal.activities.values() if match(a)], params.dict("order"), KINDS, portal.tz,
                         default=(("START_TIME", False),))
        chunk, total, following = page(found, params.get("start"))
        rows = []
        for a in chunk:
            keep = ["ID"] + [k for n in names for k in (list(KINDS) if n == "*" else [n]) if k in a]
            rows.append(copy.deepcopy({k: a[k] for k in dict.fromkeys(keep)}))
    return rows, total, following


def update(portal: Portal, activity_id: Any, fields: Any, caller: Caller, *, silent: bool = False) -> bool:
    if not isinstance(fields, dict):
        raise BadParams("Parameter 'fields' must be array.")
    with portal.lock:
        record = existing(portal, activity_id)
        for name, value in fields.items():
            key = str(name).upper()
            if key not in UPDATABLE:
                continue
            if key == "COMPLETED":
                done = str(value).upper() in ("Y", "1", "TRUE")
                record["COMPLETED"], record["STATUS"] = ("Y", "2") if done else ("N", "1")
            elif key == "RESPONSIBLE_ID":
                user = to_int(value, "RESPONSIBLE_ID")
                if user not in portal.users:
                    raise BadParams(f"User {user} is not found.")
                record[key] = str(user)
            elif UPDATABLE[key] == "datetime":
                ts = to_timestamp(value, portal.tz)
                if ts is None:
                    raise BadParams(f"Field '{key}' must be a date in ISO 8601.")
                record[key] = portal.iso(ts)
                # DEADLINE follows START_TIME for calls and meetings, END_TIME for the rest (CONFIRMED)
                if (key == "START_TIME") == (record["TYPE_ID"] in ("1", "2")):
                    record["DEADLINE"] = record[key]
            else:
                record[key] = None if value is None else str(value)
        record["LAST_UPDATED"], record["EDITOR_ID"] = portal.iso(), str(caller.user_id)
    if not silent:
        portal.emit("ONCRMACTIVITYUPDATE", {"FIELDS": {"ID": record["ID"]}}, caller)
    return True


def delete(portal: Portal, activity_id: Any, caller: Caller) -> bool:
    with portal.lock:
        record = existing(portal, activity_id)
        del portal.activities[int(record["ID"])]
    portal.emit("ONCRMACTIVITYDELETE", {"FIELDS": {"ID": record["ID"]}}, caller)
    return True


# ---------------------------------------------------------------------- to-dos
def _todo_error(code: str, description: str) -> ApiError:
    return ApiError(400, code, description)


def _owner(portal: Portal, params: Params) -> tuple[int, int]:
    missing = [n for n in ("ownerTypeId", "ownerId") if params.get(n) in (None, "")]
    if missing:
        raise _todo_error("100", f"Required fields are not set: {', '.join(missing)}")
    owner_type, owner_id = to_int(params.get("ownerTypeId"), "ownerTypeId"), to_int(params.get("ownerId"), "ownerId")
    if owner_type not in OWNER_TYPES or not owner_exists(portal, owner_type, owner_id):
        raise _todo_error("NOT_FOUND", "Not found.")
    return owner_type, owner_id


def _deadline(portal: Portal, value: Any) -> float:
    if value in (None, ""):
        raise _todo_error("100", "Required fields are not set: deadline")
    ts = to_timestamp(value, portal.tz)
    if ts is None:
        raise _todo_error("WRONG_DATETIME_FORMAT", "Wrong datetime format")
    return ts


def _responsible(portal: Portal, value: Any, default: int) -> int:
    if value in (None, ""):
        return default
    user = to_int(value, "responsibleId")
    if user not in portal.users:
        raise _todo_error("NOT_FOUND", "Not found.")
    return user


def todo_add(portal: Portal, params: Params, caller: Caller) -> dict:
    with portal.lock:
        owner_type, owner_id = _owner(portal, params)
        deadline = _deadline(portal, params.get("deadline"))
        responsible = _responsible(portal, params.get("responsibleId"), caller.user_id)
        activity_id = add(portal, owner_type, owner_id, TODO, caller, subject=params.str("title"),
                          description=params.str("description"), deadline=deadline, responsible=responsible,
                          silent=True)
    portal.emit("ONCRMACTIVITYADD", {"FIELDS": {"ID": str(activity_id)}}, caller)
    return {"id": activity_id}


def _todo(portal: Portal, params: Params) -> dict:
    if params.get("id") in (None, ""):
        raise _todo_error("100", "Required fields are not set: id")
    owner_type, owner_id = _owner(portal, params)
    record = portal.activities.get(to_int(params.get("id"), "id"))
    if record is None or record["PROVIDER_ID"] != "CRM_TODO" or \
            (record["OWNER_TYPE_ID"], record["OWNER_ID"]) != (str(owner_type), str(owner_id)):
        raise _todo_error("NOT_FOUND", "Not found.")
    if record["COMPLETED"] == "Y":
        raise _todo_error("CAN_NOT_UPDATE_COMPLETED_TODO", "Can not update completed todo")
    return record


def todo_update(portal: Portal, params: Params, caller: Caller, part: str | None = None) -> dict:
    """crm.activity.todo.update (part None) or one of updateDeadline / updateDescription / updateResponsibleUser."""
    with portal.lock:
        record = _todo(portal, params)
        if part in (None, "deadline"):
            when = portal.iso(_deadline(portal, params.get("deadline" if part is None else "value")))
            record["DEADLINE"] = record["START_TIME"] = record["END_TIME"] = when
        if part is None and params.get("title") is not None:
            record["SUBJECT"] = params.str("title")
        if part in (None, "description") and params.get("description" if part is None else "value") is not None:
            record["DESCRIPTION"] = params.str("description" if part is None else "value")
        if part in (None, "responsible") and params.get("responsibleId") not in (None, ""):
            record["RESPONSIBLE_ID"] = str(_responsible(portal, params.get("responsibleId"), caller.user_id))
        record["LAST_UPDATED"], record["EDITOR_ID"] = portal.iso(), str(caller.user_id)
    portal.emit("ONCRMACTIVITYUPDATE", {"FIELDS": {"ID": record["ID"]}}, caller)
    return {"id": int(record["ID"])}


# ---------------------------------------------------------------------- timeline comments
COMMENT_KINDS = {"ID": "int", "ENTITY_ID": "int", "ENTITY_TYPE": "string", "CREATED": "datetime",
                 "COMMENT": "string", "AUTHOR_ID": "int"}
ENTITY_TYPES = {"lead": 1, "deal": 2, "contact": 3, "company": 4}


def comment_add(portal: Portal, params: Params, caller: Caller) -> int:
    fields = params.exact("fields")  # since crm 23.100.0 only lower-case `fields` is accepted (CONFIRMED)
    if not isinstance(fields, dict):
        raise BadParams("Parameter 'fields' must be array.")
    fields = {str(k).upper(): v for k, v in fields.items()}
    entity_type = str(fields.get("ENTITY_TYPE") or "").lower()
    if entity_type not in ENTITY_TYPES or fields.get("ENTITY_ID") in (None, ""):
        raise BadParams("ENTITY_TYPE and ENTITY_ID are required.", "ERROR_WRONG_OWNER")
    if not str(fields.get("COMMENT") or "").strip():
        raise BadParams("COMMENT is required.", "ERROR_EMPTY_COMMENT")
    with portal.lock:
        entity_id = to_int(fields["ENTITY_ID"], "ENTITY_ID")
        if not owner_exists(portal, ENTITY_TYPES[entity_type], entity_id):
            raise errors.not_found()
        author = fields.get("AUTHOR_ID")
        author = to_int(author, "AUTHOR_ID") if author not in (None, "") else caller.user_id
        comment_id = portal.new_id("comment")
        portal.comments[comment_id] = {"ID": str(comment_id), "ENTITY_ID": str(entity_id),
                                       "ENTITY_TYPE": entity_type, "CREATED": portal.iso(),
                                       "COMMENT": str(fields["COMMENT"]), "AUTHOR_ID": str(author), "FILES": {}}
    # The documented body carries data[ID], not data[FIELDS][ID] (onCrmTimelineCommentAdd).
    portal.emit("ONCRMTIMELINECOMMENTADD", {"ID": str(comment_id)}, caller)
    return comment_id


def comment_get(portal: Portal, params: Params) -> dict:
    with portal.lock:
        found = portal.comments.get(to_int(params.get("id"), "id"))
        if found is None:
            raise errors.not_found()
        return copy.deepcopy(found)


def comment_list(portal: Portal, params: Params) -> tuple[list[dict], int | None, int | None]:
    flt = params.dict("filter")
    upper = {str(k).upper() for k in flt}
    if not {"ENTITY_ID", "ENTITY_TYPE"} <= upper:
        raise BadParams("filter ENTITY_ID and ENTITY_TYPE are required.")
    flt = {k: (str(v).lower() if str(k).upper() == "ENTITY_TYPE" else v) for k, v in flt.items()}
    with portal.lock:
        match = Matcher(flt, COMMENT_KINDS, portal.tz)
        found = order_by([c for c in portal.comments.values() if match(c)], params.dict("order"), COMMENT_KINDS,
                         portal.tz)
        chunk, total, following = page(found, params.get("start"))
        return copy.deepcopy(chunk), total, following
