"""amoCRM's side of creating once per action key (the generic part is connectors/idempotency.py).

Sending: the key's short hash goes to amoCRM as the item's `request_id`, which amoCRM
echoes back next to the new id, so each returned id maps to its action key even in a
batch of 50. Records live under rg:<account>:amocrm:created:<kind>:<action key>.

Look-ups after an unclear attempt (finders.py): for tasks, open tasks on the same entity
with identical text and deadline; for leads and contacts, ones created since the attempt
with the same name; for notes, notes on the entity since the attempt with the same type
and text/call id. Calls cannot be looked up and are never re-sent (AmbiguousWriteError).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import redis

from connectors import idempotency
from connectors.amocrm.errors import AmbiguousWriteError, AmoCRMError, AmoCRMGaveUp, ApiError, AuthError
from connectors.idempotency import Finder, Pending
from connectors.ratelimit import OverLimit

# POSTs the payloads and returns amoCRM's list of created entries ({"id", "request_id", ...}).
Sender = Callable[[list[dict]], list[dict]]


def request_id(action_key: str) -> str:
    """The short, stable stand-in for an action key that travels as amoCRM's request_id."""
    return hashlib.sha1(action_key.encode()).hexdigest()[:16]


class ActionLog(idempotency.ActionLog):
    def __init__(self, r: redis.Redis, account: str):
        super().__init__(r, account, "amocrm")


class IdempotentCreator(idempotency.IdempotentCreator):
    """Creates through the action log, each payload carrying its request_id."""

    def __init__(self, actions: ActionLog, *, attempts: int, backoff: Callable[[int], float],
                 sleep: Callable[[float], None]):
        super().__init__(actions, attempts=attempts, backoff=backoff, sleep=sleep, name="amoCRM",
                         ambiguous_error=AmbiguousWriteError, gave_up_error=AmoCRMGaveUp,
                         refused=(ApiError, AuthError, AmoCRMGaveUp, OverLimit), error=AmoCRMError)

    def create(self, kind: str, items: Sequence[tuple[str, dict]], *, send: Sender, find: Finder | None,
               allow_missing: bool = False) -> list[int | None]:
        def sender(pending: list[Pending]) -> dict[str, int | None]:
            return _match(pending, send([{**p.payload, "request_id": request_id(p.action_key)} for p in pending]))
        return super().create(kind, items, send=sender, find=find, allow_missing=allow_missing)


def _match(items: list[Pending], created: list[dict]) -> dict[str, int]:
    """Map amoCRM's created entries back to action keys through the echoed request_id.

    The echo of a supplied request_id is CONFIRMED for tasks, contacts and calls and
    assumed for the rest; if no entry carries one of ours, fall back to positions, which
    amoCRM keeps (it numbers entries "0", "1", ... when no request_id is sent).
    """
    by_request = {request_id(p.action_key): p.action_key for p in items}
    found: dict[str, int] = {}
    for entry in created:
        action_key = by_request.get(str(entry.get("request_id")))
        if action_key and entry.get("id") is not None:
            found[action_key] = int(entry["id"])
    if not found and len(created) == len(items):
        found = {p.action_key: int(e["id"]) for p, e in zip(items, created) if e.get("id") is not None}
    return found
