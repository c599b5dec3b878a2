"""Tasks (tasks.task.add/get/list/update/complete/delete), bound to CRM items through UF_CRM_TASK.

Input field names are UPPER_CASE (TITLE, RESPONSIBLE_ID, DEADLINE, UF_CRM_TASK), answers
camelCase (title, responsibleId, deadline, ufCrmTask) inside {"task": ...} or
{"tasks": [...]} (CONFIRMED). UF_CRM_TASK ("D_12", "L_4", "C_7") comes back only when
selected. Status: 2 waiting, 3 in progress, 4 awaiting control, 5 completed, 6 postponed.
A task bound to a deal or lead also appears in that item's timeline as a TASKS_TASK
activity that completes with it (the docs say tasks are the CRM's task activities; the
exact mirroring is UNCONFIRMED).

Every task keeps a history (tasks.task.history.list, CONFIRMED shape: {"list": [{id,
createdDate, field, value: {from, to}, user}]}, newest first by default): NEW on creation
and an entry per change of TITLE, STATUS, RESPONSIBLE_ID and DEADLINE. The docs show no
DEADLINE entry; its values are written here as unix seconds in strings, the format of the
tasks module's log (UNCONFIRMED).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from . import activities
from .errors import ApiError
from .filters import Matcher, order_by, page, to_timestamp
from .params import BadParams, Params, to_int
from .portal import BINDING_PREFIX, Caller, Portal

KINDS = {"ID": "int", "TITLE": "string", "DESCRIPTION": "string", "STATUS": "int", "REAL_STATUS": "int",
         "DEADLINE": "datetime", "RESPONSIBLE_ID": "int", "CREATED_BY": "int", "CREATED_DATE": "datetime",
         "CHANGED_BY": "int", "CHANGED_DATE": "datetime", "CLOSED_BY": "int", "CLOSED_DATE": "datetime",
         "STATUS_CHANGED_DATE": "datetime", "ACTIVITY_DATE": "datetime", "GROUP_ID": "int", "PRIORITY": "int",
         "UF_CRM_TASK": "string"}
DEFAULT_SELECT = [k for k in KINDS if k not in ("UF_CRM_TASK", "REAL_STATUS")]
STATUSES = {"2", "3", "4", "5", "6"}
_BINDING = re.compile(r"^(L|D|C|CO)_(\d+)$")
HISTORY_FIELDS = ("TITLE", "STATUS", "RESPONSIBLE_ID", "DEADLINE")
HISTORY_PAGE = 50


def camel(name: str) -> str:
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _task_error(description: str) -> ApiError:
    return ApiError(400, "ERROR_CORE", description)


def _bindings(portal: Portal, value: Any) -> list[str]:
    items = list(value.values()) if isinstance(value, dict) else value
    items = [items] if isinstance(items, str) else (items or [])
    out = []
    for item in items:
        m = _BINDING.match(str(item).strip())
        if not m:
            raise _task_error(f"Wrong CRM binding '{item}'")
        store = portal.store(BINDING_PREFIX[m.group(1)])
        if store is not None and int(m.group(2)) not in store:
            raise _task_error(f"CRM item '{item}' is not found")
        out.append(str(item).strip())
    return out


def _apply(portal: Portal, record: dict, fields: dict) -> None:
    for name, value in fields.items():
        key = str(name).upper()
        if key in ("TITLE", "DESCRIPTION"):
            record[key] = str(value)
        elif key in ("RESPONSIBLE_ID", "CREATED_BY"):
            user = to_int(value, key)
            if user not in portal.users:
                raise _task_error("User not found")
            record[key] = str(user)
        elif key == "DEADLINE":
            ts = None if value in (None, "") else to_timestamp(value, portal.tz)
            if value not in (None, "") and ts is None:
                raise _task_error("Wrong deadline")
            record[key] = portal.iso(ts) if ts is not None else None
        elif key == "STATUS":
            if str(value) not in STATUSES:
                raise _task_error("Incorrect status")
            record[key] = str(value)
        elif key == "PRIORITY":
            record[key] = str(to_int(value, key))
        elif key == "UF_CRM_TASK":
            record[key] = _bindings(portal, value)
    if not str(record.get("TITLE") or "").strip():
        raise _task_error("Не указано название задачи")


def _owner(record: dict) -> tuple[int, int] | None:
    """The deal (else lead) a task's activity lives on."""
    for prefix in ("D", "L"):
        for binding in record.get("UF_CRM_TASK") or []:
            if binding.startswith(prefix + "_"):
                return BINDING_PREFIX[prefix], int(binding.split("_", 1)[1])
    return None


def _sync_activity(portal: Portal, record: dict, caller: Caller, *, silent: bool) -> tuple[str, str] | None:
    """Keep the TASKS_TASK activity in step; returns the activity event to send, if any."""
    mirror = next((a for a in portal.activities.values()
                   if a["PROVIDER_ID"] == "TASKS_TASK" and a["ASSOCIATED_ENTITY_ID"] == record["ID"]), None)
    owner = _owner(record)
    if mirror is None and owner is not None and activities.owner_exists(portal, *owner):
        activity_id = activities.add(portal, owner[0], owner[1], activities.TASK, caller, subject=record["TITLE"],
                                     description=record["DESCRIPTION"],
                                     deadline=to_timestamp(record["DEADLINE"], portal.tz) if record["DEADLINE"] else None,
                                     responsible=int(record["RESPONSIBLE_ID"]), completed=record["STATUS"] == "5",
                                     associated=int(record["ID"]), silent=True)
        return None if silent else ("ONCRMACTIVITYADD", str(activity_id))
    if mirror is None:
        return None
    done = record["STATUS"] == "5"
    mirror.update({"SUBJECT": record["TITLE"], "DESCRIPTION": record["DESCRIPTION"],
                   "RESPONSIBLE_ID": record["RESPONSIBLE_ID"], "COMPLETED": "Y" if done else "N",
                   "STATUS": "2" if done else "1", "LAST_UPDATED": portal.iso()})
    if record["DEADLINE"]:
        mirror["DEADLINE"] = mirror["END_TIME"] = record["DEADLINE"]
    return None if silent else ("ONCRMACTIVITYUPDATE", mirror["ID"])


def _emit(portal: Portal, event: str, task_id: str, caller: Caller, activity: tuple[str, str] | None) -> None:
    if event == "ONTASKADD":   # the shapes of the docs' examples (CONFIRMED)
        data = {"FIELDS_BEFORE": "undefined", "FIELDS_AFTER": {"ID": task_id},
                "IS_ACCESSIBLE_BEFORE": "N", "IS_ACCESSIBLE_AFTER": "undefined"}
    else:
        data = {"FIELDS_BEFORE": {"ID": task_id}, "FIELDS_AFTER": {"ID": task_id},
                "IS_ACCESSIBLE_BEFORE": "undefined", "IS_ACCESSIBLE_AFTER": "undefined"}
    portal.emit(event, data, caller)
    if activity:
        portal.emit(activity[0], {"FIELDS": {"ID": activity[1]}}, caller)


def add(portal: Portal, fields: Any, caller: Caller, *, silent: bool = False, created: float | None = None) -> int:
    if not isinstance(fields, dict):
        raise _task_error("Parameter 'fields' must be array.")
    with portal.lock:
        now = portal.iso(created)
        user = str(caller.user_id)
        record = {"ID": None, "TITLE": "", "DESCRIPTION": "", "STATUS": "2", "REAL_STATUS": "2", "DEADLINE": None,
                  "RESPONSIBLE_ID": None, "CREATED_BY": user, "CREATED_DATE": now, "CHANGED_BY": user,
                  "CHANGED_DATE": now, "CLOSED_BY": None, "CLOSED_DATE": None, "STATUS_CHANGED_DATE": now,
                  "ACTIVITY_DATE": now, "GROUP_ID": "0", "PRIORITY": "1", "UF_CRM_TASK": []}
        if not any(str(k).upper() == "RESPONSIBLE_ID" for k in fields):
            raise _task_error("Не указан ответственный")
        _apply(portal, record, fields)
        task_id = portal.new_id("task")
        record["ID"] = str(task_id)
        portal.tasks[task_id] = record
        _log(portal, task_id, "NEW", None, None, caller, created)
        activity = _sync_activity(portal, record, caller, silent=silent)
    if not silent:
        _emit(portal, "ONTASKADD", str(task_id), caller, activity)
    return task_id


def existing(portal: Portal, task_id: Any) -> dict:
    try:
        number = to_int(task_id, "taskId")
    except BadParams:
        raise _task_error("Задача не найдена или доступ запрещен") from None
    record = portal.tasks.get(number)
    if record is None:
        raise _task_error("Задача не найдена или доступ запрещен")
    return record


def render(portal: Portal, record: dict, select: Any = None) -> dict:
    names = list(select.values()) if isinstance(select, dict) else ([select] if isinstance(select, str) else select)
    names = [str(n).upper() for n in (names or [])]
    if not names or "*" in names:
        names = DEFAULT_SELECT + [n for n in names if n not in ("*",)]
    out = {"id": record["ID"]}
    for name in names:
        if name in record:
            value = record[name]
            out[camel(name)] = list(value) if isinstance(value, list) else value
    if "RESPONSIBLE_ID" in names:
        out["responsible"] = _person(portal, record["RESPONSIBLE_ID"])
    if "CREATED_BY" in names:
        out["creator"] = _person(portal, record["CREATED_BY"])
    return out


def _person(portal: Portal, user_id: str) -> dict:
    user = portal.users.get(int(user_id)) if user_id else None
    return {"id": user_id, "name": portal.user_name(int(user_id)) if user else "",
            "link": f"/company/personal/user/{user_id}/", "icon": "/bitrix/images/tasks/default_avatar.png",
            "workPosition": user["WORK_POSITION"] if user else ""}


def get(portal: Portal, params: Params) -> dict:
    with portal.lock:
        record = existing(portal, params.get("taskId"))
        return {"task": render(portal, record, params.get("select"))}


def list_(portal: Portal, params: Params) -> tuple[dict, int | None, int | None]:
    with portal.lock:
        match = Matcher(params.dict("filter"), KINDS, portal.tz)
        found = order_by([t for t in portal.tasks.values() if match(t)], params.dict("order"), KINDS, portal.tz)
        chunk, total, following = page(found, params.get("start"))
        rows = [render(portal, t, params.get("select")) for t in chunk]
    return {"tasks": rows}, total, following


def update(portal: Portal, params: Params, caller: Caller, *, complete: bool = False) -> dict:
    fields = {"STATUS": "5"} if complete else params.get("fields")
    if not isinstance(fields, dict):
        raise _task_error("Parameter 'fields' must be array.")
    with portal.lock:
        record = existing(portal, params.get("taskId"))
        before = copy.deepcopy(record)
        changed = copy.deepcopy(record)
        _apply(portal, changed, fields)
        now = portal.iso()
        if changed["STATUS"] != before["STATUS"]:
            changed["STATUS_CHANGED_DATE"], changed["REAL_STATUS"] = now, changed["STATUS"]
            done = changed["STATUS"] == "5"
            changed["CLOSED_BY"], changed["CLOSED_DATE"] = (str(caller.user_id), now) if done else (None, None)
        changed["CHANGED_BY"], changed["CHANGED_DATE"] = str(caller.user_id), now
        for name in HISTORY_FIELDS:
            if changed[name] != before[name]:
                _log(portal, int(record["ID"]), name, _logged(portal, name, before[name]),
                     _logged(portal, name, changed[name]), caller)
        record.clear()
        record.update(changed)
        activity = _sync_activity(portal, record, caller, silent=False)
        answer = {"task": render(portal, record)}
    _emit(portal, "ONTASKUPDATE", record["ID"], caller, activity)
    return answer


def _logged(portal: Portal, name: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(int(to_timestamp(value, portal.tz))) if name == "DEADLINE" else str(value)


def _log(portal: Portal, task_id: int, field: str, before: str | None, after: str | None, caller: Caller,
         at: float | None = None) -> None:
    user = portal.users.get(caller.user_id) or {}
    portal.ids.setdefault("task_history", 16000)   # a seed need not name this counter
    portal.task_history.setdefault(task_id, []).append({
        "id": portal.new_id("task_history"), "createdDate": portal.iso(at), "field": field,
        "value": {"from": before, "to": after},
        "user": {"id": caller.user_id, "name": user.get("NAME", ""), "lastName": user.get("LAST_NAME", ""),
                 "secondName": user.get("SECOND_NAME", ""), "login": user.get("LOGIN", "")}})


def history(portal: Portal, params: Params) -> dict:
    """tasks.task.history.list: {"list": [...]}, an empty list for a task that does not exist."""
    if params.get("taskId") in (None, ""):
        raise ApiError(400, "100", "CTaskItem All parameters in the constructor must have real class type")
    try:
        task_id = to_int(params.get("taskId"), "taskId")
    except BadParams:
        raise ApiError(400, "0", "wrong task id") from None
    wanted = {str(k).upper(): str(v).upper() for k, v in params.dict("filter").items()}.get("FIELD")
    order = {str(k).lower(): str(v).lower() for k, v in params.dict("order").items()}
    newest_first = order.get("createddate", order.get("id", "desc")) != "asc"
    with portal.lock:
        rows = [copy.deepcopy(h) for h in portal.task_history.get(task_id, ())
                if wanted is None or h["field"] == wanted]
    rows.sort(key=lambda h: (h["createdDate"], h["id"]), reverse=newest_first)
    return {"list": rows[:HISTORY_PAGE]}


def delete(portal: Portal, params: Params, caller: Caller) -> dict:
    with portal.lock:
        record = existing(portal, params.get("taskId"))
        del portal.tasks[int(record["ID"])]
        for a in [a for a in portal.activities.values()
                  if a["PROVIDER_ID"] == "TASKS_TASK" and a["ASSOCIATED_ENTITY_ID"] == record["ID"]]:
            del portal.activities[int(a["ID"])]
    portal.emit("ONTASKDELETE", {"FIELDS_BEFORE": {"ID": record["ID"]}, "FIELDS_AFTER": "undefined",
                                 "IS_ACCESSIBLE_BEFORE": "undefined", "IS_ACCESSIBLE_AFTER": "N"}, caller)
    return {"task": True}
