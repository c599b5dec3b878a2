"""The REST methods the sandbox answers, by name, and `batch`.

A method takes (sandbox, params, caller) and returns an Answer: `result`, plus `total`
and `next` for lists. Names are case-insensitive (telephony.externalCall.register works).
`call()` is the one way in, for plain requests and each command of a batch alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from . import activities, crm, errors, tasks, telephony
from .context import Sandbox
from .errors import ApiError
from .filters import Matcher, order_by, page
from .params import BadParams, Params, php_array, split_command, substitute_results, to_int
from .phones import phone_key
from .portal import Caller

BATCH_LIMIT = 50


@dataclass
class Answer:
    result: Any
    total: int | None = None
    next: int | None = None


Method = Callable[[Sandbox, Params, Caller], Answer]
METHODS: dict[str, Method] = {}


def method(*names: str):
    def register(fn: Method) -> Method:
        for name in names:
            METHODS[name.lower()] = fn
        return fn
    return register


def time_block(sandbox: Sandbox, started_at: float, started: float, method_name: str) -> dict:
    """The `time` object of an answer (CONFIRMED keys)."""
    duration = time.perf_counter() - started
    p = sandbox.portal
    blocked = sandbox.blocked_until(method_name)
    return {"start": round(started_at, 6), "finish": round(started_at + duration, 6), "duration": duration,
            "processing": duration, "date_start": p.iso(started_at), "date_finish": p.iso(started_at + duration),
            "operating_reset_at": int(blocked if blocked else started_at + 600), "operating": 0}


def call(sandbox: Sandbox, name: str, params: Params, caller: Caller) -> Answer:
    name = name.lower().removesuffix(".json")
    fn = METHODS.get(name)
    if fn is None:
        raise errors.method_not_found(name)
    if sandbox.blocked_until(name):
        raise errors.operation_time_limit()
    try:
        return fn(sandbox, params, caller)
    except BadParams as e:
        raise errors.from_bad_params(e) from None


# ---------------------------------------------------------------------- batch
@method("batch")
def batch(sandbox: Sandbox, params: Params, caller: Caller) -> Answer:
    cmd = params.get("cmd")
    if isinstance(cmd, list):
        commands = list(enumerate(cmd))
    elif isinstance(cmd, dict):
        commands = list(cmd.items())
    else:
        raise BadParams("Parameter 'cmd' must be array.")
    if len(commands) > BATCH_LIMIT:
        raise ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
    halt = str(params.get("halt", "0")).lower() in ("1", "true", "y")
    results, failures, totals, nexts, times = {}, {}, {}, {}, {}
    for key, command in commands:
        name, sub = split_command(command)
        started_at, started = sandbox.portal.now(), time.perf_counter()
        try:
            if name.lower() == "batch":
                raise ApiError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
            answer = call(sandbox, name, Params(substitute_results(sub, results)), caller)
        except ApiError as e:
            failures[key] = e.body()
            if halt:
                break
            continue
        results[key] = answer.result
        if answer.total is not None:
            totals[key] = answer.total
        if answer.next is not None:
            nexts[key] = answer.next
        times[key] = time_block(sandbox, started_at, started, name)
    return Answer({"result": php_array(results), "result_error": php_array(failures),
                   "result_total": php_array(totals), "result_next": php_array(nexts),
                   "result_time": php_array(times)})


# ---------------------------------------------------------------------- deals, leads, contacts
def _crud(et: crm.EntityType) -> None:
    prefix = f"crm.{et.name}."

    @method(prefix + "add")
    def add(sandbox, params, caller):
        return Answer(crm.add(sandbox.portal, et, params.get("fields"), caller))

    @method(prefix + "get")
    def get(sandbox, params, caller):
        return Answer(crm.get(sandbox.portal, et, params.get("id")))

    @method(prefix + "list")
    def list_(sandbox, params, caller):
        return Answer(*crm.list_(sandbox.portal, et, params))

    @method(prefix + "update")
    def update(sandbox, params, caller):
        return Answer(crm.update(sandbox.portal, et, params.get("id"), params.get("fields"), caller))

    @method(prefix + "delete")
    def delete(sandbox, params, caller):
        return Answer(crm.delete(sandbox.portal, et, params.get("id"), caller))

    @method(prefix + "fields")
    def fields(sandbox, params, caller):
        kinds = crm.kinds(sandbox.portal, et)
        types = {"int": "integer", "double": "double", "datetime": "datetime", "date": "date", "string": "string"}
        return Answer({name: {"type": "crm_multifield" if name in et.multifields else types[kind],
                              "isRequired": False, "isReadOnly": name in et.readonly, "isImmutable": False,
                              "isMultiple": name in et.multifields, "isDynamic": name.startswith("UF_"),
                              "title": name} for name, kind in kinds.items()})

    @method(prefix + "userfield.list")
    def userfields(sandbox, params, caller):
        with sandbox.portal.lock:
            items = [{k: v for k, v in f.items()} for f in sandbox.portal.userfields[et.uf_entity]]
        kinds = {"ID": "int", "FIELD_NAME": "string", "USER_TYPE_ID": "string", "XML_ID": "string", "SORT": "int",
                 "MULTIPLE": "string", "MANDATORY": "string", "SHOW_FILTER": "string", "SHOW_IN_LIST": "string",
                 "EDIT_IN_LIST": "string", "IS_SEARCHABLE": "string"}
        flt = {k: v for k, v in params.dict("filter").items() if str(k).upper() != "LANG"}
        match = Matcher(flt, kinds, sandbox.portal.tz)
        found = order_by([f for f in items if match(f)], params.dict("order"), kinds, sandbox.portal.tz,
                         default=(("SORT", False), ("ID", False)))
        return Answer(found, len(found))


for _et in crm.TYPES.values():
    _crud(_et)


@method("crm.deal.contact.items.get")
def deal_contacts(sandbox, params, caller):
    """The deal's contacts (CONFIRMED shape: [{CONTACT_ID, SORT, ROLE_ID, IS_PRIMARY}], numbers as
    numbers); a deal here has one, its CONTACT_ID."""
    deal = crm.get(sandbox.portal, crm.DEAL, params.get("id"))
    contact = to_int(deal.get("CONTACT_ID") or 0, "CONTACT_ID")
    return Answer([{"CONTACT_ID": contact, "SORT": 10, "ROLE_ID": 0, "IS_PRIMARY": "Y"}] if contact else [])


# ---------------------------------------------------------------------- pipelines and stages
STATUS_KINDS = {"ID": "int", "ENTITY_ID": "string", "STATUS_ID": "string", "NAME": "string", "NAME_INIT": "string",
                "SORT": "int", "SYSTEM": "string", "CATEGORY_ID": "int", "COLOR": "string", "SEMANTICS": "string"}


def _public(status: dict) -> dict:
    return {k: v for k, v in status.items() if not k.startswith("_")}


@method("crm.status.list")
def status_list(sandbox, params, caller):
    p = sandbox.portal
    with p.lock:
        match = Matcher(params.dict("filter"), STATUS_KINDS, p.tz)
        found = [_public(s) for s in p.statuses if match(s)]
    found = order_by(found, params.dict("order"), STATUS_KINDS, p.tz, default=(("SORT", False),))
    return Answer(found, len(found))


def _entity_type(params: Params) -> int:
    if params.get("entityTypeId") in (None, ""):
        raise BadParams("Parameter 'entityTypeId' is required.", "ENTITY_TYPE_NOT_SUPPORTED")
    value = to_int(params.get("entityTypeId"), "entityTypeId")
    if value != 2:
        raise ApiError(400, "NOT_FOUND", "Смарт-процесс не найден") if value > 4 else \
            ApiError(400, "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type {value} is not supported")
    return value


@method("crm.category.list")
def category_list(sandbox, params, caller):
    _entity_type(params)
    with sandbox.portal.lock:
        found = sorted(sandbox.portal.categories.values(), key=lambda c: (c["sort"], c["id"]))
        return Answer({"categories": [dict(c) for c in found]}, len(found))


@method("crm.category.get")
def category_get(sandbox, params, caller):
    _entity_type(params)
    category = sandbox.portal.categories.get(to_int(params.get("id"), "id"))
    if category is None:
        raise ApiError(400, "NOT_FOUND", "Элемент не найден")
    return Answer({"category": dict(category)})


def _old_category(sandbox: Sandbox, c: dict) -> dict:
    return {"ID": str(c["id"]), "CREATED_DATE": sandbox.portal.iso(sandbox.portal.now() - 300 * 86400),
            "NAME": c["name"], "IS_LOCKED": "N", "SORT": str(c["sort"])}


@method("crm.dealcategory.list")
def dealcategory_list(sandbox, params, caller):
    p = sandbox.portal
    kinds = {"ID": "int", "NAME": "string", "SORT": "int", "IS_LOCKED": "string", "CREATED_DATE": "datetime"}
    with p.lock:   # the default pipeline is not in this list; crm.dealcategory.default.get names it
        rows = [_old_category(sandbox, c) for i, c in p.categories.items() if i != 0]
    match = Matcher(params.dict("filter"), kinds, p.tz)
    rows = order_by([r for r in rows if match(r)], params.dict("order"), kinds, p.tz)
    chunk, total, following = page(rows, params.get("start"))
    return Answer(chunk, total, following)


@method("crm.dealcategory.get")
def dealcategory_get(sandbox, params, caller):
    category = sandbox.portal.categories.get(to_int(params.get("id"), "id"))
    if category is None or category["id"] == 0:
        raise errors.not_found()
    return Answer(_old_category(sandbox, category))


@method("crm.dealcategory.default.get")
def dealcategory_default(sandbox, params, caller):
    return Answer({"ID": 0, "NAME": sandbox.portal.categories[0]["name"]})


@method("crm.dealcategory.stage.list")
def dealcategory_stages(sandbox, params, caller):
    category = to_int(params.get("id"), "id") if params.get("id") not in (None, "") else 0
    with sandbox.portal.lock:
        if category not in sandbox.portal.categories:
            return Answer([])
        return Answer([{"NAME": s["NAME"], "SORT": s["SORT"], "STATUS_ID": s["STATUS_ID"]}
                       for s in sandbox.portal.stages(category)])


# ---------------------------------------------------------------------- duplicates
@method("crm.duplicate.findbycomm")
def findbycomm(sandbox, params, caller):
    kind = params.str("type").upper()
    if not kind:
        raise ApiError(400, "Communication type is not defined", "Parameter 'type' is required.")
    if kind not in ("PHONE", "EMAIL"):
        raise ApiError(400, f"Communication type '{kind}' is not supported in current context",
                       f"Communication type '{kind}' is not supported in current context")
    values = params.get("values")
    values = list(values.values()) if isinstance(values, dict) else ([values] if isinstance(values, str) else values)
    if not values:
        raise ApiError(400, "Communication values is not defined", "Parameter 'values' is required.")
    if len(values) > 20:
        raise BadParams("Too many values: 20 at most.")
    wanted = {phone_key(v) if kind == "PHONE" else str(v).strip().casefold() for v in values}
    only = params.str("entity_type").upper()
    found = {}
    p = sandbox.portal
    with p.lock:
        for name, store in (("LEAD", p.leads), ("CONTACT", p.contacts)):
            if only and only != name:
                continue
            ids = [entity_id for entity_id, record in sorted(store.items())
                   if any((phone_key(m["VALUE"]) if kind == "PHONE" else m["VALUE"].casefold()) in wanted
                          for m in record.get(kind) or [])]
            if ids:
                found[name] = ids[:20]
    return Answer(found or [])


# ---------------------------------------------------------------------- activities, to-dos, comments
@method("crm.activity.get")
def activity_get(sandbox, params, caller):
    return Answer(activities.get(sandbox.portal, params.get("id")))


@method("crm.activity.list")
def activity_list(sandbox, params, caller):
    return Answer(*activities.list_(sandbox.portal, params))


@method("crm.activity.update")
def activity_update(sandbox, params, caller):
    return Answer(activities.update(sandbox.portal, params.get("id"), params.get("fields"), caller))


@method("crm.activity.delete")
def activity_delete(sandbox, params, caller):
    return Answer(activities.delete(sandbox.portal, params.get("id"), caller))


@method("crm.activity.todo.add")
def todo_add(sandbox, params, caller):
    return Answer(activities.todo_add(sandbox.portal, params, caller))


for _name, _part in (("update", None), ("updateDeadline", "deadline"), ("updateDescription", "description"),
                     ("updateResponsibleUser", "responsible")):
    def _todo_update(sandbox, params, caller, _part=_part):
        return Answer(activities.todo_update(sandbox.portal, params, caller, _part))
    method(f"crm.activity.todo.{_name}")(_todo_update)


@method("crm.timeline.comment.add")
def comment_add(sandbox, params, caller):
    return Answer(activities.comment_add(sandbox.portal, params, caller))


@method("crm.timeline.comment.get")
def comment_get(sandbox, params, caller):
    return Answer(activities.comment_get(sandbox.portal, params))


@method("crm.timeline.comment.list")
def comment_list(sandbox, params, caller):
    return Answer(*activities.comment_list(sandbox.portal, params))


# ---------------------------------------------------------------------- tasks
@method("tasks.task.add")
def task_add(sandbox, params, caller):
    task_id = tasks.add(sandbox.portal, params.get("fields"), caller)
    with sandbox.portal.lock:
        return Answer({"task": tasks.render(sandbox.portal, sandbox.portal.tasks[task_id])})


@method("tasks.task.get")
def task_get(sandbox, params, caller):
    return Answer(tasks.get(sandbox.portal, params))


@method("tasks.task.list")
def task_list(sandbox, params, caller):
    return Answer(*tasks.list_(sandbox.portal, params))


@method("tasks.task.history.list")
def task_history(sandbox, params, caller):
    return Answer(tasks.history(sandbox.portal, params))


@method("tasks.task.update")
def task_update(sandbox, params, caller):
    return Answer(tasks.update(sandbox.portal, params, caller))


@method("tasks.task.complete")
def task_complete(sandbox, params, caller):
    return Answer(tasks.update(sandbox.portal, params, caller, complete=True))


@method("tasks.task.delete")
def task_delete(sandbox, params, caller):
    return Answer(tasks.delete(sandbox.portal, params, caller))


# ---------------------------------------------------------------------- users
USER_KINDS = {"ID": "int", "ACTIVE": "string", "NAME": "string", "LAST_NAME": "string", "EMAIL": "string",
              "WORK_POSITION": "string", "UF_DEPARTMENT": "int", "UF_PHONE_INNER": "string", "USER_TYPE": "string",
              "IS_ONLINE": "string"}


def _user(record: dict) -> dict:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in record.items() if not k.startswith("IS_")
            or k == "IS_ONLINE"}


@method("user.get")
def user_get(sandbox, params, caller):
    flt = dict(params.dict("FILTER"))
    for key, value in params.data.items():   # user.get?ID=5 (fields given at the top level)
        if str(key).upper().lstrip("!<>=%@") in USER_KINDS:
            flt[key] = value
    flt = {k: ("Y" if v is True or str(v).lower() == "true" else v) for k, v in flt.items()}
    p = sandbox.portal
    with p.lock:
        rows = [dict(u, ACTIVE="Y") for u in p.users.values()]
    match = Matcher(flt, USER_KINDS, p.tz)
    order = {params.str("sort") or "ID": params.str("order") or "ASC"}
    found = order_by([r for r in rows if match(r)], order, USER_KINDS, p.tz)
    chunk, total, following = page([_user(dict(r, ACTIVE=True)) for r in found], params.get("start"))
    return Answer(chunk, total, following)


@method("user.current")
def user_current(sandbox, params, caller):
    return Answer(_user(sandbox.portal.users[caller.user_id]))


@method("department.get")
def department_get(sandbox, params, caller):
    with sandbox.portal.lock:
        rows = [dict(d) for d in sandbox.portal.departments.values()]
    wanted = params.get("ID")
    if wanted not in (None, ""):
        rows = [d for d in rows if d["ID"] == str(wanted)]
    return Answer(rows, len(rows))


# ---------------------------------------------------------------------- telephony
@method("telephony.externalcall.register")
def call_register(sandbox, params, caller):
    return Answer(telephony.register(sandbox.portal, params, caller))


@method("telephony.externalcall.finish")
def call_finish(sandbox, params, caller):
    return Answer(telephony.finish(sandbox.portal, params, caller))


@method("voximplant.statistic.get")
def call_statistic(sandbox, params, caller):
    return Answer(*telephony.statistic(sandbox.portal, params))


# ---------------------------------------------------------------------- events
def _app_only(caller: Caller) -> None:
    if caller.kind == "webhook":   # event.bind works only with an application's authorisation (CONFIRMED)
        raise errors.wrong_auth_type()


@method("event.bind")
def event_bind(sandbox, params, caller):
    _app_only(caller)
    if params.str("event_type", "online") == "offline":
        raise ApiError(403, "ACCESS_DENIED", "Offline events are not served by the sandbox")
    sandbox.events.bind(params.str("event"), params.str("handler"), params.int("auth_type", 0) or 0)
    return Answer(True)


@method("event.unbind")
def event_unbind(sandbox, params, caller):
    _app_only(caller)
    auth_type = params.get("auth_type")
    count = sandbox.events.unbind(params.str("event"), params.str("handler") or None,
                                  None if auth_type is None else to_int(auth_type or 0, "auth_type"))
    return Answer({"count": count})


@method("event.get")
def event_get(sandbox, params, caller):
    _app_only(caller)
    return Answer(sandbox.events.bound())
