"""Looking up entities that a create with an unclear outcome may have made (see idempotency.py).

Each finder gets the items still unresolved and returns {action_key: id} for those it
finds. One found entity answers one item only, so two identical items need two entities.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from connectors.amocrm.idempotency import Pending

if TYPE_CHECKING:
    from connectors.amocrm.client import AmoCRMClient

# Look back this far before the first attempt: clocks differ and amoCRM stamps on arrival.
SLACK = 300
IDS_PER_QUERY = 50


def _since(items: list[Pending]) -> int:
    return int(min(p.started_at or 0 for p in items)) - SLACK


def _claim(items: list[Pending], candidates: list[dict], same) -> dict[str, int]:
    pool = list(candidates)
    found: dict[str, int] = {}
    for item in items:
        for entity in pool:
            if same(item.payload, entity):
                found[item.action_key] = int(entity["id"])
                pool.remove(entity)
                break
    return found


def tasks(client: AmoCRMClient, items: list[Pending]) -> dict[str, int]:
    """Open tasks on the same entity with identical text and deadline."""
    candidates: list[dict] = []
    by_type: dict[str | None, set] = defaultdict(set)
    for p in items:
        by_type[p.payload.get("entity_type")].add(p.payload.get("entity_id"))
    for entity_type, entity_ids in by_type.items():
        if entity_type:
            ids = sorted(i for i in entity_ids if i is not None)
            for start in range(0, len(ids), IDS_PER_QUERY):
                candidates += client.tasks(entity_type=entity_type, entity_ids=ids[start:start + IDS_PER_QUERY],
                                           is_completed=False)
        else:
            candidates += [t for t in client.tasks(is_completed=False, updated_at=(_since(items), None))
                           if not t.get("entity_id")]

    def same(payload: dict, task: dict) -> bool:
        return (task.get("text") == payload.get("text")
                and int(task.get("complete_till") or 0) == int(payload.get("complete_till") or 0)
                and (task.get("entity_type") or None) == (payload.get("entity_type") or None)
                and int(task.get("entity_id") or 0) == int(payload.get("entity_id") or 0))

    return _claim(items, candidates, same)


def _named(payload: dict, entity: dict) -> bool:
    for field in ("name", "first_name", "last_name", "pipeline_id", "status_id"):
        if field in payload and payload[field] is not None and entity.get(field) != payload[field]:
            return False
    return True


def leads(client: AmoCRMClient, items: list[Pending]) -> dict[str, int]:
    """Leads created since the first attempt with the same name (and stage, when given)."""
    return _claim(items, client.leads(created_at=(_since(items), None)), _named)


def contacts(client: AmoCRMClient, items: list[Pending]) -> dict[str, int]:
    """Contacts created since the first attempt with the same name."""
    return _claim(items, client.contacts(created_at=(_since(items), None)), _named)


def notes(entity_type: str):
    """Notes on the same entity since the first attempt, of the same type and text (or call id)."""

    def find(client: AmoCRMClient, items: list[Pending]) -> dict[str, int]:
        ids = sorted({p.payload["entity_id"] for p in items})
        types = sorted({p.payload["note_type"] for p in items})
        candidates: list[dict] = []
        for start in range(0, len(ids), IDS_PER_QUERY):
            candidates += client.notes(entity_type, entity_ids=ids[start:start + IDS_PER_QUERY], note_types=types,
                                       updated_at=(_since(items), None))

        def same(payload: dict, note: dict) -> bool:
            if note.get("note_type") != payload["note_type"] or int(note.get("entity_id") or 0) != payload["entity_id"]:
                return False
            want, got = payload.get("params") or {}, note.get("params") or {}
            if want.get("uniq"):
                return got.get("uniq") == want["uniq"]
            return got.get("text") == want.get("text")

        return _claim(items, candidates, same)

    return find
