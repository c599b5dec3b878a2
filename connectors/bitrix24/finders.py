"""Looking up what a create with an unclear outcome may have made (see connectors/idempotency.py).

Bitrix24 has no request id to echo, so each kind is found by what it is: a to-do by its
owner, title, deadline and responsible (open ones only); a task by its CRM binding, title
and responsible; a timeline comment by its entity and text, made since the first attempt.
All the look-ups of one call go out together through `gather` (one request for up to 50
owners). One found entity answers one item only, so two identical items need two entities.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from connectors.idempotency import Pending

if TYPE_CHECKING:
    from connectors.bitrix24.client import Bitrix24Client

OWNER_TYPES = {1: "lead", 2: "deal", 3: "contact", 4: "company"}
TASK_PREFIX = {1: "L", 2: "D", 3: "C", 4: "CO"}
# Look back this far before the first attempt: clocks differ and Bitrix24 stamps on arrival.
SLACK = 300


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def same_moment(a: Any, b: Any) -> bool:
    """Two ISO-8601 times name the same moment (offsets may differ); without an offset, the same wall time."""
    x, y = _moment(a), _moment(b)
    if x is None or y is None:
        return str(a) == str(b)
    if (x.tzinfo is None) != (y.tzinfo is None):
        return x.replace(tzinfo=None) == y.replace(tzinfo=None)
    return x == y


def _claim(items: list[Pending], candidates: list[dict], same: Callable[[dict, dict], bool]) -> dict[str, int]:
    pool = list(candidates)
    found: dict[str, int] = {}
    for item in items:
        for entity in pool:
            if same(item.payload, entity):
                found[item.action_key] = int(entity.get("ID") or entity.get("id"))
                pool.remove(entity)
                break
    return found


def _lower(payload: dict) -> dict:
    return {str(k).lower(): v for k, v in payload.items()}


def todos(client: Bitrix24Client, items: list[Pending]) -> dict[str, int]:
    """Open to-dos (crm.activity.todo.add) on the same owner with the same title, deadline and responsible."""
    owners = sorted({(int(_lower(p.payload)["ownertypeid"]), int(_lower(p.payload)["ownerid"])) for p in items})
    calls = {f"o{t}_{i}": ("crm.activity.list", {
        "filter": {"OWNER_TYPE_ID": t, "OWNER_ID": i, "PROVIDER_ID": "CRM_TODO", "COMPLETED": "N"},
        "select": ["ID", "OWNER_TYPE_ID", "OWNER_ID", "SUBJECT", "DEADLINE", "RESPONSIBLE_ID"]}) for t, i in owners}
    candidates = [a for rows in client.gather(calls).values() for a in rows]

    def same(payload: dict, act: dict) -> bool:
        p = _lower(payload)
        return (str(act.get("OWNER_TYPE_ID")) == str(p["ownertypeid"]) and str(act.get("OWNER_ID")) == str(p["ownerid"])
                and (act.get("SUBJECT") or "") == (p.get("title") or "")
                and same_moment(act.get("DEADLINE"), p.get("deadline"))
                and (p.get("responsibleid") in (None, "") or str(act.get("RESPONSIBLE_ID")) == str(p["responsibleid"])))

    return _claim(items, candidates, same)


def tasks(client: Bitrix24Client, items: list[Pending]) -> dict[str, int]:
    """Tasks (tasks.task.add) bound to the same CRM entity with the same title and responsible."""
    def fields(p: Pending) -> dict:
        return {str(k).upper(): v for k, v in (_lower(p.payload).get("fields") or {}).items()}

    bindings = sorted({b for p in items for b in (fields(p).get("UF_CRM_TASK") or [])})
    calls = {f"b{n}": ("tasks.task.list", {"filter": {"UF_CRM_TASK": b},
                                           "select": ["ID", "TITLE", "RESPONSIBLE_ID", "UF_CRM_TASK", "STATUS"]})
             for n, b in enumerate(bindings)}
    candidates = [t for rows in client.gather(calls, keys={k: "tasks" for k in calls}).values() for t in rows]

    def same(payload: dict, task: dict) -> bool:
        f = {str(k).upper(): v for k, v in (_lower(payload).get("fields") or {}).items()}
        task = {str(k).upper(): v for k, v in task.items()}
        return (task.get("TITLE") == f.get("TITLE") and str(task.get("RESPONSIBLEID") or task.get("RESPONSIBLE_ID"))
                == str(f.get("RESPONSIBLE_ID")))

    return _claim(items, candidates, same)


def comments(client: Bitrix24Client, items: list[Pending]) -> dict[str, int]:
    """Timeline comments (crm.timeline.comment.add) on the same entity with the same text, since the first attempt."""
    def fields(p: Pending) -> dict:
        return {str(k).upper(): v for k, v in (p.payload.get("fields") or {}).items()}

    since = min(p.started_at or 0 for p in items) - SLACK
    entities = sorted({(str(fields(p)["ENTITY_TYPE"]).lower(), int(fields(p)["ENTITY_ID"])) for p in items})
    after = datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds")
    calls = {f"{t}_{i}": ("crm.timeline.comment.list", {
        "filter": {"ENTITY_TYPE": t, "ENTITY_ID": i, ">=CREATED": after},
        "select": ["ID", "ENTITY_TYPE", "ENTITY_ID", "COMMENT", "CREATED"]}) for t, i in entities}
    candidates = [c for rows in client.gather(calls).values() for c in rows]

    def same(payload: dict, comment: dict) -> bool:
        f = {str(k).upper(): v for k, v in (payload.get("fields") or {}).items()}
        return (str(comment.get("ENTITY_TYPE")).lower() == str(f["ENTITY_TYPE"]).lower()
                and str(comment.get("ENTITY_ID")) == str(f["ENTITY_ID"]) and comment.get("COMMENT") == f.get("COMMENT"))

    return _claim(items, candidates, same)
