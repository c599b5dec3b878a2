"""Turns each account's inbox stream into RQ jobs, one per new event.

The inbox is read through a consumer group. An entry's jobs and its XACK go to Redis in
one MULTI transaction, so an entry is either fully dispatched or still pending; entries
left pending by a dispatcher that died are claimed again after `reclaim_idle_ms`.
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
from jobs import queues
from jobs.events import handle_event
from reglament import keys, metrics
from reglament.events import Event

GROUP = "dispatch"
log = logging.getLogger("reglament.webhook")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else v


def job_data(event: Event, job_id: str | None = None):
    return Queue.prepare_data(
        handle_event, args=(event.to_dict(),), job_id=job_id or event.job_id,
        description=f"{event.account} {event.kind} {event.entity_id}",
        timeout=queues.JOB_TIMEOUT, retry=queues.RETRY, failure_ttl=7 * 24 * 3600,
        meta={"account": event.account, "kind": event.kind},
    )


class Dispatcher:
    def __init__(self, r: redis.Redis, accounts: list[str], consumer: str | None = None,
                 reclaim_idle_ms: int = 30_000):
        self.r = r
        self.accounts = accounts
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.reclaim_idle_ms = reclaim_idle_ms
        self.queue = Queue(queues.EVENTS, connection=r)
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
                    if fields:  # an entry trimmed away meanwhile comes back empty
                        self.dispatch(account, _text(entry_id), fields)
                        done += 1
                    else:
                        self.r.xack(keys.inbox(account), GROUP, entry_id)
                if _text(start) == "0-0":
                    break
        return done

    def run_once(self, block_ms: int = 1000, count: int = 200) -> int:
        streams = {keys.inbox(a): ">" for a in self.accounts}
        response = self.r.xreadgroup(GROUP, self.consumer, streams, count=count, block=block_ms)
        done = 0
        for stream, entries in response or []:
            account = _text(stream).split(":")[1]
            for entry_id, fields in entries:
                self.dispatch(account, _text(entry_id), fields)
                done += 1
        return done

    def dispatch(self, account: str, entry_id: str, fields: dict) -> int:
        fields = {_text(k): v for k, v in fields.items()}
        flags = _text(fields.get("new", ""))
        source = _text(fields["source"])
        try:
            events = parse(source, fields["body"], account).events
        except Exception:
            # Accepted once, so this is a parser change or bug: keep the entry (replayable by id)
            # and move on rather than block the inbox.
            log.exception("dispatcher: stored delivery %s no longer parses", entry_id, extra={"account": account})
            metrics.incr(self.r, account, "job_failures_total", kind="dispatch")
            events = []
        for e, flag in zip(events, flags):
            log.info("webhook event", extra={"account": account, "source": source, "kind": e.kind,
                                             "entity_id": e.entity_id,
                                             "outcome": "accepted" if flag == "1" else "duplicate"})
        fresh = [e for e, flag in zip(events, flags) if flag == "1"]
        with self.r.pipeline(transaction=True) as pipe:
            if fresh:
                self.queue.enqueue_many([job_data(e) for e in fresh], pipeline=pipe)
            pipe.xack(keys.inbox(account), GROUP, entry_id)
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
