"""Work due at a moment (an SLA deadline, a message held for the shift), to a tenth of a second.

RQ's own scheduling (enqueue_at) keeps whole seconds and its scheduler moves due jobs once
a second, so a timer ran up to 2 s late before it even waited in a queue: all of the
WhatsApp alert's lateness budget (p99 ≤ 2 s). This is the same design with finer grain: a
Redis sorted set of due moments (float scores) and a pump in every worker process that
moves what is due, every POLL seconds, to the `timers` queue (which workers serve first),
in batch jobs (jobs/batch.py). RQ still runs, retries and records the jobs.

A timer has an id: setting it again replaces it (a repeated webhook never doubles a timer),
and `cancel` drops it. Claiming is one Lua step that leases what is due to one pump; the
jobs and the end of the lease go to Redis in one MULTI. A pump that dies in between leaves
a lease that lapses after LEASE seconds, and the timer is claimed again: late, never lost.
A timer that fires after all (cancelled while being claimed) finds its state answered: the
functions called re-check, as they would after a retry.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from rq import Queue

from jobs import batch, queues
from reglament import keys

log = logging.getLogger("reglament.timers")

POLL = 0.1        # seconds between a pump's looks at the due set
LEASE = 30        # seconds a claimed timer is the claiming pump's, before another may take it
CLAIM_LIMIT = 500  # timers taken per look

DUE = keys.key(keys.GLOBAL, "timers", "due")          # ZSET id → due unix time
LEASED = keys.key(keys.GLOBAL, "timers", "leased")    # ZSET id → end of its lease
PAYLOADS = keys.key(keys.GLOBAL, "timers", "payload")  # HASH id → JSON {func, kwargs, account, kind}

# Lapsed leases back to due, then what is due to a lease; returns id, payload, id, payload…
_CLAIM = """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  redis.call('ZREM', KEYS[2], id)
  if not redis.call('ZSCORE', KEYS[1], id) then redis.call('ZADD', KEYS[1], ARGV[1], id) end
end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
end
return out
"""

# The lease ends; the payload goes unless the timer was set again meanwhile.
_RELEASE = """
for _, id in ipairs(ARGV) do
  redis.call('ZREM', KEYS[2], id)
  if not redis.call('ZSCORE', KEYS[1], id) then redis.call('HDEL', KEYS[3], id) end
end
return #ARGV
"""


@dataclass(frozen=True)
class Timer:
    id: str
    at: float           # unix time it is due
    func: str           # import path, "module:function"
    kwargs: dict
    account: str
    kind: str


def _path(func: Callable | str) -> str:
    return batch.call(func)["func"]


def schedule(r: redis.Redis, timer_id: str, at: datetime | float, func: Callable | str, kwargs: dict[str, Any],
             *, account: str, kind: str) -> None:
    """Call func(**kwargs) at `at`, once; scheduling again with this id replaces the timer.
    kwargs must be JSON data; account and kind label the job (failures are counted by them)."""
    due = at.timestamp() if isinstance(at, datetime) else float(at)
    payload = json.dumps({"func": _path(func), "kwargs": kwargs, "account": account, "kind": kind},
                         ensure_ascii=False)
    with r.pipeline(transaction=True) as p:
        p.hset(PAYLOADS, timer_id, payload)
        p.zadd(DUE, {timer_id: due})
        p.execute()


def cancel(r: redis.Redis, *timer_ids: str) -> None:
    if not timer_ids:
        return
    with r.pipeline(transaction=True) as p:
        p.zrem(DUE, *timer_ids)
        p.hdel(PAYLOADS, *timer_ids)
        p.execute()


def get(r: redis.Redis, timer_id: str) -> Timer | None:
    """A timer not yet claimed, or None."""
    with r.pipeline(transaction=False) as p:
        p.zscore(DUE, timer_id)
        p.hget(PAYLOADS, timer_id)
        at, raw = p.execute()
    return None if at is None or raw is None else _timer(timer_id, at, raw)


def pending(r: redis.Redis, account: str | None = None, prefix: str = "") -> list[Timer]:
    """Timers not yet claimed (of one account, whose ids start with prefix), soonest first."""
    found = []
    for raw_id, at in r.zrange(DUE, 0, -1, withscores=True):
        timer_id = raw_id.decode()
        if timer_id.startswith(prefix):
            timer = get(r, timer_id)
            if timer is not None and (account is None or timer.account == account):
                found.append(timer)
    return found


def lag(r: redis.Redis, now: float | None = None) -> tuple[int, float]:
    """(timers waiting, seconds the most overdue one is late). A lateness above a second or
    two means no pump runs: no worker process is up, or Redis refuses its scripts."""
    now = time.time() if now is None else now
    with r.pipeline(transaction=False) as p:
        p.zcard(DUE)
        p.zrange(DUE, 0, 0, withscores=True)
        count, first = p.execute()
    return count, max(0.0, now - first[0][1]) if first else 0.0


def _timer(timer_id: str, at: float, raw: bytes | str) -> Timer:
    p = json.loads(raw)
    return Timer(timer_id, float(at), p["func"], p["kwargs"], p["account"], p["kind"])


class Pump:
    """Moves due timers to the timers queue; one runs in each worker process, beside the dispatcher."""

    def __init__(self, r: redis.Redis, poll: float = POLL):
        self.r = r
        self.poll = poll
        self.queue = Queue(queues.TIMERS, connection=r)
        self._claim = r.register_script(_CLAIM)
        self._release = r.register_script(_RELEASE)
        self._stop = threading.Event()

    def pump_once(self, now: float | None = None) -> int:
        """Enqueue what is due at `now`; the number of timers enqueued."""
        now = time.time() if now is None else now
        flat = self._claim(keys=[DUE, LEASED, PAYLOADS], args=[now, now + LEASE, CLAIM_LIMIT])
        claimed = [(flat[i].decode(), flat[i + 1]) for i in range(0, len(flat), 2)]
        if not claimed:
            return 0
        by_account: dict[str, list[dict]] = {}
        for timer_id, raw in claimed:
            if not raw:  # cancelled between the look and the claim: nothing to run
                continue
            try:
                p = json.loads(raw)
                by_account.setdefault(p["account"], []).append(p)
            except (ValueError, KeyError, TypeError):
                # Dropped (released below), so that it can't block the timers claimed with it.
                log.error("timers: timer %s has an unreadable payload; dropped", timer_id)
        datas, spread = [], batch.spread(self.queue)
        for account, payloads in by_account.items():
            for chunk in batch.chunks(payloads, queues.MAX_BATCH[queues.TIMERS], spread=spread):
                datas.append(batch.job_data(
                    [batch.call(p["func"], **p["kwargs"]) for p in chunk], queues.TIMERS,
                    description=f"{account}: {len(chunk)} timer(s), first {chunk[0]['kind']}",
                    meta={"account": account, "kind": chunk[0]["kind"]}))
        with self.r.pipeline(transaction=True) as pipe:
            if datas:
                self.queue.enqueue_many(datas, pipeline=pipe)
            self._release(keys=[DUE, LEASED, PAYLOADS], args=[i for i, _ in claimed], client=pipe)
            pipe.execute()
        return sum(len(p) for p in by_account.values())

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.pump_once() == 0:
                    self._stop.wait(self.poll)
            except redis.ConnectionError:
                log.warning("timers: Redis unavailable, retrying")
                self._stop.wait(1)
            except Exception:
                log.exception("timers: unexpected error")
                self._stop.wait(1)
