"""Re-enqueue raw deliveries kept in an inbox (by id or time range), e.g. after fixing a
setting. Replayed events run again even if they were handled: rules are idempotent."""

from __future__ import annotations

import time

import redis

from app.parsers import parse
from jobs.dispatcher import enqueue
from reglament import keys


def entries(r: redis.Redis, account: str, ids: list[str] | None = None,
            since_ms: int | None = None, until_ms: int | None = None) -> list[tuple[str, dict]]:
    stream = keys.inbox(account)
    if ids:
        found = []
        for entry_id in ids:
            found += r.xrange(stream, entry_id, entry_id)
    else:
        found = r.xrange(stream, since_ms if since_ms is not None else "-", until_ms if until_ms is not None else "+")
    return [(i.decode() if isinstance(i, bytes) else i, {k.decode(): v for k, v in f.items()}) for i, f in found]


def replay(r: redis.Redis, account: str, found: list[tuple[str, dict]]) -> int:
    stamp = int(time.time() * 1000)
    events = []
    for entry_id, fields in found:
        source = fields["source"].decode() if isinstance(fields["source"], bytes) else fields["source"]
        events += parse(source, fields["body"], account).events
    if events:
        enqueue(r, events, id_suffix=f"-replay-{stamp}")
    return len(events)
