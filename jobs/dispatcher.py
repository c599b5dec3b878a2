"""Turns each account's inbox stream into RQ jobs for its new events.

The inbox is read through a consumer group. The events of the entries read together go
out as batch jobs (jobs/batch.py: a job per event when few arrive, batches in a burst) on
their kind's queue (chat events first, jobs/queues.py). The jobs and the entries' XACK go
to Redis in one MULTI transaction, so an entry is either fully dispatched or still
pending; entries left pending by a dispatcher that died are claimed again after
`reclaim_idle_ms`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis
from rq import Queue

from app.parsers import parse
from jobs import batch, queues
from jobs.events import handle_event
from reglament import keys, metrics
from reglament.events import Event

GROUP = "dispatch"
# After the first entry of a quiet spell, wait this long for more before dispatching: in a
# burst, the entries of 50 ms go out as a few batch jobs instead of a job each.
LINGER = 0.05
log = logging.getLogger("reglament.webhook")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else v


def job_datas(events: list[Event], queue: str, id_suffix: str = "", spread: int = batch.SPREAD,
              order: list[str] | None = None) -> list:
    """The batch jobs, for `queue`, of events of one account read together. Job ids follow
    the first event's key (new events are unique by key), after its `order` (sortable, from
    its inbox entry id) when given: RQ promotes an account's limited jobs queued in the same
    second in the order of their ids. A replay, which may hold one event twice, passes a
    suffix and the chunks are numbered."""
    datas = []
    for n, indexes in enumerate(batch.chunks(list(range(len(events))), queues.MAX_BATCH[queue], spread=spread)):
        chunk = [events[i] for i in indexes]
        first, more = chunk[0], len(chunk) - 1
        kinds = {e.kind for e in chunk}
        job_id = first.job_id if order is None else f"ev-{first.account}-{order[indexes[0]]}-{first.key}"
        datas.append(batch.job_data(
            [batch.call(handle_event, data=e.to_dict()) for e in chunk], queue,
            job_id=f"{job_id}{f'-and-{more}' if more else ''}" + (f"{id_suffix}-{n}" if id_suffix else ""),
            description=f"{first.account} {first.kind} {first.entity_id}{f' and {more} more' if more else ''}",
            meta={"account": first.account, "kind": kinds.pop() if len(kinds) == 1 else "events"}))
    return datas


def sort_key(entry_id: str) -> str:
    """An inbox entry id ("1712345678901-3") as a string that sorts like it."""
    ms, _, seq = entry_id.partition("-")
    return f"{int(ms):013d}{int(seq or 0):06d}"


def enqueue(r: redis.Redis, events: list[Event], pipeline=None, id_suffix: str = "",
            order: list[str] | None = None) -> None:
    """Enqueue events of one account, each on its kind's queue (queues.for_event); `order`,
    when given, holds each event's sort_key."""
    by_queue: dict[str, tuple[list[Event], list[str]]] = {}
    for i, e in enumerate(events):
        some, sorts = by_queue.setdefault(queues.for_event(e.kind), ([], []))
        some.append(e)
        sorts.append(order[i] if order else "")
    for name, (some, sorts) in by_queue.items():
        q = Queue(name, connection=r)
        batch.enqueue(q, job_datas(some, name, id_suffix, spread=batch.spread(q), order=sorts if order else None),
                      pipeline=pipeline)


class Dispatcher:
    def __init__(self, r: redis.Redis, accounts: list[str], consumer: str | None = None,
                 reclaim_idle_ms: int = 30_000, linger: float = LINGER):
        self.r = r
        self.accounts = accounts
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.reclaim_idle_ms = reclaim_idle_ms
        self.linger = linger
        self._stop = threading.Event()

    def ensure_groups(self) -> None:
        for account in self.accounts:
            try:
                # From id 0: entries stored before any dispatcher existed still get dispatched.
                self.r.xgroup_create(keys.inbox(account), GROUP, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def reclaim(self) -> int:
        """Dispatch entries another (dead) consumer read but never acknowledged."""
        done = 0
        for account in self.accounts:
            start = "0-0"
            while True:
                start, entries, *_ = self.r.xautoclaim(keys.inbox(account), GROUP, self.consumer,
                                                       self.reclaim_idle_ms, start_id=start, count=100)
                for entry_id, fields in entries:
                    if not fields:  # an entry trimmed away meanwhile comes back empty
                        self.r.xack(keys.inbox(account), GROUP, entry_id)
                self.dispatch(account, [(_text(i), f) for i, f in entries if f])
                done += sum(1 for _, f in entries if f)
                if _text(start) == "0-0":
                    break
        return done

    def run_once(self, block_ms: int = 1000, count: int = 200) -> int:
        streams = {keys.inbox(a): ">" for a in self.accounts}
        read: dict[str, list] = {}
        response = self.r.xreadgroup(GROUP, self.consumer, streams, count=count, block=block_ms)
        if response and self.linger:
            time.sleep(self.linger)
            response += self.r.xreadgroup(GROUP, self.consumer, streams, count=count) or []
        for stream, entries in response or []:
            read.setdefault(_text(stream).split(":")[1], []).extend((_text(i), f) for i, f in entries)
        for account, entries in read.items():
            self.dispatch(account, entries)
        return sum(len(e) for e in read.values())

    def dispatch(self, account: str, entries: list[tuple[str, dict]]) -> int:
        """Enqueue the new events of these entries of one account's inbox and acknowledge them."""
        fresh = []
        for entry_id, fields in entries:
            fields = {_text(k): v for k, v in fields.items()}
            flags = _text(fields.get("new", ""))
            source = _text(fields["source"])
            try:
                events = parse(source, fields["body"], account).events
            except Exception:
                # Accepted once, so this is a parser change or bug: keep the entry (replayable by
                # id) and move on rather than block the inbox.
                log.exception("dispatcher: stored delivery %s no longer parses", entry_id,
                              extra={"account": account})
                metrics.incr(self.r, account, "job_failures_total", kind="dispatch")
                events = []
            for e, flag in zip(events, flags):
                log.info("webhook event", extra={"account": account, "source": source, "kind": e.kind,
                                                 "entity_id": e.entity_id,
                                                 "outcome": "accepted" if flag == "1" else "duplicate"})
            fresh += [(sort_key(entry_id), e) for e, flag in zip(events, flags) if flag == "1"]
        if not entries:
            return 0
        with self.r.pipeline(transaction=True) as pipe:
            enqueue(self.r, [e for _, e in fresh], pipeline=pipe, order=[k for k, _ in fresh])
            pipe.xack(keys.inbox(account), GROUP, *(entry_id for entry_id, _ in entries))
            pipe.execute()
        return len(fresh)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        self.ensure_groups()
        last_reclaim = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_reclaim > self.reclaim_idle_ms / 1000:
                    self.reclaim()
                    last_reclaim = time.monotonic()
                self.run_once()
            except redis.ConnectionError:
                log.warning("dispatcher: Redis unavailable, retrying")
                self._stop.wait(1)
            except redis.ResponseError as e:
                if "NOGROUP" in str(e):  # Redis restarted without its data, or a stream was deleted
                    self.ensure_groups()
                else:
                    log.exception("dispatcher: Redis error")
                    self._stop.wait(1)
            except Exception:
                log.exception("dispatcher: unexpected error")
                self._stop.wait(1)
