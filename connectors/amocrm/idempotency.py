"""Creates that happen once per action, however often a job runs or a request is retried.

Every create carries an *action key* chosen by the caller, naming why the entity exists,
e.g. "next_task:lead:123:status:456". Redis remembers what happened to each key under
rg:<account>:amocrm:created:<kind>:<action key>:

- "<id>"               the entity was created; kept 30 days. A create with this key
                       returns the id without any request.
- "pending:<unix ts>"  a request was sent and its outcome is not known yet (in flight,
                       or it failed in a way that may have reached amoCRM, or the
                       process died mid-request). Kept one day.

Sending: the key's short hash goes to amoCRM as the item's `request_id`, which amoCRM
echoes back next to the new id, so each returned id maps to its action key even in a
batch of 50.

Ambiguous failures: a read timeout, dropped connection or 5xx after the request left
may or may not have created the entity. Before re-sending, we look for what the lost
attempt may have created (for tasks: open tasks on the same entity with identical text
and deadline; for leads and contacts: ones created since the attempt with the same name;
for notes: notes on the entity since the attempt with the same type and text/call id).
Found ones are recorded and not re-sent. The same look-up runs when a later create
finds its key still "pending". A kind with no way to look up (calls) is never re-sent
after an ambiguous failure: AmbiguousWriteError is raised instead, because a missing
call log is better than a double one.

A create that fails clearly (validation error, auth, 429s until the budget ran out)
created nothing, so its pending mark is removed and a later attempt sends afresh.

Known limits: two processes running the very same action at the same moment can both
send; a look-up can miss an entity amoCRM has created but not yet indexed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from connectors.amocrm.errors import AmbiguousWriteError, AmoCRMError, AmoCRMGaveUp, ApiError, AuthError
from connectors.http import AmbiguousFailure
from connectors.ratelimit import OverLimit
from reglament import keys

log = logging.getLogger(__name__)

DONE_TTL = 30 * 86400
PENDING_TTL = 86400
BATCH = 50


def request_id(action_key: str) -> str:
    """The short, stable stand-in for an action key that travels as amoCRM's request_id."""
    return hashlib.sha1(action_key.encode()).hexdigest()[:16]


@dataclass
class Pending:
    """One item to create: its action key, the amoCRM payload, and when it was first sent."""

    action_key: str
    payload: dict
    started_at: float | None = None


# Looks up entities that unclear attempts may have created: {action_key: id} for those found.
Finder = Callable[[list[Pending]], dict[str, int]]
# POSTs the payloads and returns amoCRM's list of created entries ({"id", "request_id", ...}).
Sender = Callable[[list[dict]], list[dict]]


class ActionLog:
    """What Redis remembers about each action key."""

    def __init__(self, r: redis.Redis, account: str):
        self.r = r
        self.account = account

    def key(self, kind: str, action_key: str) -> str:
        return keys.key(self.account, "amocrm", "created", kind, action_key)

    def states(self, kind: str, action_keys: Sequence[str]) -> list[tuple[str, float | int] | None]:
        """For each key: ("done", id), ("pending", started_at) or None."""
        found = []
        for raw in (self.r.mget([self.key(kind, k) for k in action_keys]) if action_keys else []):
            value = raw.decode() if isinstance(raw, bytes) else raw
            if value is None:
                found.append(None)
            elif value.startswith("pending:"):
                found.append(("pending", float(value.split(":", 1)[1])))
            else:
                found.append(("done", int(value)))
        return found

    def mark_pending(self, kind: str, items: Sequence[Pending]) -> None:
        with self.r.pipeline() as p:
            for item in items:
                p.set(self.key(kind, item.action_key), f"pending:{item.started_at:.3f}", ex=PENDING_TTL)
            p.execute()

    def record(self, kind: str, action_key: str, entity_id: int) -> None:
        self.r.set(self.key(kind, action_key), str(int(entity_id)), ex=DONE_TTL)

    def forget(self, kind: str, action_keys: Sequence[str]) -> None:
        if action_keys:
            self.r.delete(*[self.key(kind, k) for k in action_keys])


class IdempotentCreator:
    """Runs creates through the action log; see the module docstring."""

    def __init__(self, actions: ActionLog, *, attempts: int, backoff: Callable[[int], float],
                 sleep: Callable[[float], None]):
        self.actions = actions
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep

    def create(self, kind: str, items: Sequence[tuple[str, dict]], *, send: Sender, find: Finder | None,
               allow_missing: bool = False) -> list[int | None]:
        """Ids for (action_key, payload) items, in order; None only where `allow_missing` and amoCRM made none."""
        for action_key, _ in items:
            if not action_key or not isinstance(action_key, str):
                raise ValueError("every create needs a non-empty action key (a string)")
        first: dict[str, dict] = {}
        for action_key, payload in items:
            first.setdefault(action_key, payload)  # the same action twice in one call is one create
        result: dict[str, int | None] = {}
        to_send: list[Pending] = []
        unresolved: list[Pending] = []
        for action_key, state in zip(first, self.actions.states(kind, list(first))):
            if state is None:
                to_send.append(Pending(action_key, first[action_key]))
            elif state[0] == "done":
                result[action_key] = int(state[1])
            else:
                unresolved.append(Pending(action_key, first[action_key], float(state[1])))
        if unresolved:
            if find is None:
                raise AmbiguousWriteError(
                    f"an earlier attempt to create {kind} for {', '.join(p.action_key for p in unresolved)} "
                    "may or may not have succeeded, and it cannot be looked up; not sending it again")
            found = self._look_up(kind, unresolved, find)
            result.update(found)
            to_send += [p for p in unresolved if p.action_key not in found]
        for start in range(0, len(to_send), BATCH):
            result.update(self._send(kind, to_send[start:start + BATCH], send, find, allow_missing))
        return [result.get(action_key) for action_key, _ in items]

    def _look_up(self, kind: str, items: list[Pending], find: Finder) -> dict[str, int]:
        found = find(items)
        for action_key, entity_id in found.items():
            self.actions.record(kind, action_key, entity_id)
        if found:
            log.info("amoCRM %s already created by an earlier unclear attempt: %s", kind, ", ".join(found))
        return found

    def _send(self, kind: str, chunk: list[Pending], send: Sender, find: Finder | None,
              allow_missing: bool) -> dict[str, int | None]:
        now = time.time()
        for item in chunk:
            item.started_at = item.started_at or now
        self.actions.mark_pending(kind, chunk)
        done: dict[str, int | None] = {}
        remaining = list(chunk)
        unclear = False
        attempt = 0
        while True:
            attempt += 1
            try:
                created = send([{**p.payload, "request_id": request_id(p.action_key)} for p in remaining])
            except AmbiguousFailure as exc:
                unclear = True
                if find is None:
                    raise AmbiguousWriteError(f"creating {kind} may or may not have succeeded ({exc.last}), and it "
                                              "cannot be looked up; not sending it again") from None
                if attempt >= self.attempts:
                    raise AmoCRMGaveUp(exc.system, exc.method, exc.path, attempt, exc.last) from None
                # Give the lost attempt time to land before looking for it.
                self.sleep(self.backoff(attempt))
                found = self._look_up(kind, remaining, find)
                done.update(found)
                remaining = [p for p in remaining if p.action_key not in found]
                if not remaining:
                    return done
                continue
            except (ApiError, AuthError, AmoCRMGaveUp, OverLimit):
                # Refused outright (4xx, credentials, 429s/unreachable until the budget ran
                # out, or the job goes back before sending): nothing was created, unless an
                # earlier attempt of this loop was unclear.
                if not unclear:
                    self.actions.forget(kind, [p.action_key for p in remaining])
                raise
            ids = _match(remaining, created)
            for item in remaining:
                entity_id = ids.get(item.action_key)
                if entity_id is not None:
                    self.actions.record(kind, item.action_key, entity_id)
                elif allow_missing:
                    self.actions.forget(kind, [item.action_key])
                else:
                    raise AmoCRMError(f"amoCRM answered the create of {kind} without an id for {item.action_key}")
                done[item.action_key] = entity_id
            return done


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
