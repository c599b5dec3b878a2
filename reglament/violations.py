"""Recorded breaches of the regulations, per account, for alerts, digests and the dashboard.

One breach is one violation however many webhooks report it: a violation's `key` names
the breach (rule + what broke it), and recording the same key again changes nothing.
Violations are kept `retention_days` (a time index trimmed on every write, and a TTL on
each record).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import redis

from reglament import keys

RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return 1
"""


@dataclass(frozen=True)
class Violation:
    rule: str                  # a code from REGULATIONS.md, e.g. WHATSAPP_SLA
    key: str                   # names the breach: the same breach always gives the same key
    at: float                  # unix time of the breach
    manager_id: int | None     # the CRM user responsible
    lead_id: int | None = None
    link: str | None = None    # into the CRM
    details: str = ""          # Russian, for people
    extra: dict = field(default_factory=dict)


def _index(account: str) -> str:
    return keys.key(account, "violations")


def _record_key(account: str, key: str) -> str:
    return keys.key(account, "violation", key)


def record(r: redis.Redis, account: str, v: Violation, retention_days: float = 90) -> bool:
    """Store a violation; False if this breach was recorded already."""
    ttl = int(retention_days * 86400)
    script = r.register_script(RECORD)
    return bool(script(keys=[_record_key(account, v.key), _index(account)],
                       args=[json.dumps(asdict(v), ensure_ascii=False), ttl, v.at, v.key, time.time() - ttl]))


def between(r: redis.Redis, account: str, start: float, end: float) -> list[Violation]:
    """Violations with start <= at < end, oldest first."""
    found = r.zrangebyscore(_index(account), start, f"({end}")
    if not found:
        return []
    raw = r.mget([_record_key(account, k.decode()) for k in found])
    return [Violation(**json.loads(x)) for x in raw if x]
