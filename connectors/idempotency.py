"""Creates that happen once per action, however often a job runs or a request is retried.

Every create carries an *action key* chosen by the caller, naming why the entity exists,
e.g. "next_task:lead:123:status:456". Redis remembers what happened to each key under
rg:<account>:<system>:created:<kind>:<action key>:

- "<id>"               the entity was created; kept 30 days. A create with this key
                       returns the id without any request.
- "pending:<unix ts>"  a request was sent and its outcome is not known yet (in flight,
                       or it failed in a way that may have reached the CRM, or the
                       process died mid-request). Kept one day.

Sending: a CRM's sender maps each answer back to its action key (amoCRM echoes a
`request_id`; a Bitrix24 batch keys its results by command name).

Ambiguous failures: a read timeout, dropped connection or 5xx after the request left
may or may not have created the entity. Before re-sending, the CRM's finder looks for
what the lost attempt may have created. Found ones are recorded and not re-sent. The
same look-up runs when a later create finds its key still "pending". A kind with no way
to look up is never re-sent after an ambiguous failure: the CRM's AmbiguousWriteError is
raised instead, because a missing entity is better than a double one.

A create that fails clearly (validation error, auth, refused by the rate limit until the
budget ran out, or the job goes back before sending: OverLimit) created nothing, so its pending mark is removed and a later attempt
sends afresh.

Known limits: two processes running the very same action at the same moment can both
send; a look-up can miss an entity the CRM has created but not yet indexed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from connectors.http import AmbiguousFailure, ConnectorError, GaveUp
from connectors.ratelimit import OverLimit
from reglament import keys

log = logging.getLogger(__name__)

DONE_TTL = 30 * 86400
PENDING_TTL = 86400
BATCH = 50


@dataclass
class Pending:
    """One item to create: its action key, the CRM payload, when it was first sent, and its
    kind (what the action log files it under; one send may mix kinds)."""

    action_key: str
    payload: dict
    started_at: float | None = None
    kind: str = ""


class PartlyCreated(ConnectorError):
    """Some items of one request were created (`created`: {action_key: id}) and the others
    were refused clearly (`errors`: {action_key: exception}); raised by a sender."""

    def __init__(self, created: dict[str, int], errors: dict[str, Exception]):
        self.created, self.errors = created, errors
        first = next(iter(errors.values()))
        super().__init__(f"{len(errors)} of {len(errors) + len(created)} creates refused; first: {first}")


# Looks up entities that unclear attempts may have created: {action_key: id} for those found.
Finder = Callable[[list[Pending]], dict[str, int]]
# Sends the items and returns {action_key: new id (None: the CRM made none)}.
Sender = Callable[[list[Pending]], dict[str, int | None]]


class ActionLog:
    """What Redis remembers about each action key."""

    def __init__(self, r: redis.Redis, account: str, system: str):
        self.r = r
        self.account = account
        self.system = system

    def key(self, kind: str, action_key: str) -> str:
        return keys.key(self.account, self.system, "created", kind, action_key)

    def states(self, items: Sequence[tuple[str, str]]) -> list[tuple[str, float | int] | None]:
        """For each (kind, action key): ("done", id), ("pending", started_at) or None."""
        found = []
        for raw in (self.r.mget([self.key(kind, k) for kind, k in items]) if items else []):
            value = raw.decode() if isinstance(raw, bytes) else raw
            if value is None:
                found.append(None)
            elif value.startswith("pending:"):
                found.append(("pending", float(value.split(":", 1)[1])))
            else:
                found.append(("done", int(value)))
        return found

    def mark_pending(self, items: Sequence[Pending]) -> None:
        with self.r.pipeline() as p:
            for item in items:
                p.set(self.key(item.kind, item.action_key), f"pending:{item.started_at:.3f}", ex=PENDING_TTL)
            p.execute()

    def record(self, kind: str, action_key: str, entity_id: int) -> None:
        self.r.set(self.key(kind, action_key), str(int(entity_id)), ex=DONE_TTL)

    def forget(self, items: Sequence[Pending]) -> None:
        if items:
            self.r.delete(*[self.key(p.kind, p.action_key) for p in items])


class IdempotentCreator:
    """Runs creates through the action log; see the module docstring.

    `ambiguous_error` and `error` (a message → exception) and `gave_up_error` (GaveUp's
    arguments → exception) are the CRM's own classes; `refused` lists what a sender raises
    when the CRM clearly created nothing.
    """

    def __init__(self, actions: ActionLog, *, attempts: int, backoff: Callable[[int], float],
                 sleep: Callable[[float], None], name: str,
                 ambiguous_error: Callable[[str], Exception], gave_up_error: Callable[..., Exception] = GaveUp,
                 refused: tuple[type[BaseException], ...] = (ConnectorError, OverLimit),
                 error: Callable[[str], Exception] = ConnectorError, batch: int = BATCH):
        self.actions = actions
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep
        self.name = name
        self.ambiguous_error = ambiguous_error
        self.gave_up_error = gave_up_error
        self.refused = refused
        self.error = error
        self.batch = batch

    def create(self, kind: str, items: Sequence[tuple[str, dict]], *, send: Sender, find: Finder | None,
               allow_missing: bool = False) -> list[int | None]:
        """Ids for (action_key, payload) items of one kind, in order; None only where
        `allow_missing` and the CRM made none."""
        return self.create_mixed([(kind, k, p) for k, p in items], send=send, find=find, allow_missing=allow_missing)

    def create_mixed(self, items: Sequence[tuple[str, str, dict]], *, send: Sender, find: Finder | None,
                     allow_missing: bool = False) -> list[int | None]:
        """Ids for (kind, action_key, payload) items, in order: several kinds in one send (a
        Bitrix24 batch carries a to-do and its note together). Action keys must differ across
        kinds within one call; `send` and `find` see each Pending's kind."""
        for _, action_key, _ in items:
            if not action_key or not isinstance(action_key, str):
                raise ValueError("every create needs a non-empty action key (a string)")
        first: dict[str, Pending] = {}
        for kind, action_key, payload in items:
            # The same action twice in one call is one create.
            first.setdefault(action_key, Pending(action_key, payload, kind=kind))
        result: dict[str, int | None] = {}
        to_send: list[Pending] = []
        unresolved: list[Pending] = []
        for item, state in zip(first.values(), self.actions.states([(p.kind, p.action_key) for p in first.values()])):
            if state is None:
                to_send.append(item)
            elif state[0] == "done":
                result[item.action_key] = int(state[1])
            else:
                item.started_at = float(state[1])
                unresolved.append(item)
        if unresolved:
            if find is None:
                raise self.ambiguous_error(
                    f"an earlier attempt to create {_kinds(unresolved)} for "
                    f"{', '.join(p.action_key for p in unresolved)} may or may not have succeeded, and it cannot "
                    "be looked up; not sending it again")
            found = self._look_up(unresolved, find)
            result.update(found)
            to_send += [p for p in unresolved if p.action_key not in found]
        for start in range(0, len(to_send), self.batch):
            result.update(self._send(to_send[start:start + self.batch], send, find, allow_missing))
        return [result.get(action_key) for _, action_key, _ in items]

    def _look_up(self, items: list[Pending], find: Finder) -> dict[str, int]:
        found = find(items)
        kinds = {p.action_key: p.kind for p in items}
        for action_key, entity_id in found.items():
            self.actions.record(kinds[action_key], action_key, entity_id)
        if found:
            log.info("%s %s already created by an earlier unclear attempt: %s", self.name, _kinds(items),
                     ", ".join(found))
        return found

    def _send(self, chunk: list[Pending], send: Sender, find: Finder | None,
              allow_missing: bool) -> dict[str, int | None]:
        now = time.time()
        for item in chunk:
            item.started_at = item.started_at or now
        self.actions.mark_pending(chunk)
        done: dict[str, int | None] = {}
        remaining = list(chunk)
        unclear = False
        attempt = 0
        while True:
            attempt += 1
            try:
                ids = send(remaining)
            except AmbiguousFailure as exc:
                unclear = True
                if find is None:
                    raise self.ambiguous_error(f"creating {_kinds(remaining)} may or may not have succeeded "
                                               f"({exc.last}), and it cannot be looked up; not sending it again"
                                               ) from None
                if attempt >= self.attempts:
                    raise self.gave_up_error(exc.system, exc.method, exc.path, attempt, exc.last) from None
                # Give the lost attempt time to land before looking for it.
                self.sleep(self.backoff(attempt))
                found = self._look_up(remaining, find)
                done.update(found)
                remaining = [p for p in remaining if p.action_key not in found]
                if not remaining:
                    return done
                continue
            except PartlyCreated as exc:
                kinds = {p.action_key: p.kind for p in remaining}
                for action_key, entity_id in exc.created.items():
                    self.actions.record(kinds[action_key], action_key, entity_id)
                if not unclear:
                    self.actions.forget([p for p in remaining if p.action_key in exc.errors])
                raise
            except self.refused:
                # Refused outright (4xx, credentials, or refused by the rate limit until the budget
                # ran out): nothing was created, unless an earlier attempt of this loop was unclear.
                if not unclear:
                    self.actions.forget(remaining)
                raise
            for item in remaining:
                entity_id = ids.get(item.action_key)
                if entity_id is not None:
                    self.actions.record(item.kind, item.action_key, entity_id)
                elif allow_missing:
                    self.actions.forget([item])
                else:
                    raise self.error(f"{self.name} answered the create of {item.kind} without an id for "
                                     f"{item.action_key}")
                done[item.action_key] = entity_id
            return done


def _kinds(items: Sequence[Pending]) -> str:
    return ", ".join(dict.fromkeys(p.kind for p in items))
