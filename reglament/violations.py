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


# --- reading them for digests and the dashboard ------------------------------------------

def counts(vs: list[Violation]) -> dict[int | None, dict[str, int]]:
    """manager id → rule → how many."""
    out: dict[int | None, dict[str, int]] = {}
    for v in vs:
        per = out.setdefault(v.manager_id, {})
        per[v.rule] = per.get(v.rule, 0) + 1
    return out


def per_day(r: redis.Redis, account: str, days: list[tuple[str, float, float]]
            ) -> dict[str, dict[int | None, dict[str, int]]]:
    """For each (label, start, end): counts() of the violations in [start, end) — e.g. one
    label per local day, with the day's bounds in the account's time zone."""
    return {label: counts(between(r, account, start, end)) for label, start, end in days}


def worst(vs: list[Violation], n: int) -> list[tuple[int | None, list[Violation]]]:
    """The leads with the most violations (lead id, its violations), most first, then earliest."""
    by_lead: dict[int | None, list[Violation]] = {}
    for v in vs:
        by_lead.setdefault(v.lead_id, []).append(v)
    ranked = sorted(by_lead.items(), key=lambda kv: (-len(kv[1]), min(x.at for x in kv[1])))
    return ranked[:n] if n else []


def latest(r: redis.Redis, account: str, since: float, limit: int = 100) -> list[Violation]:
    """Violations since this time, newest first (the dashboard's current breaches)."""
    found = r.zrevrangebyscore(_index(account), "+inf", since, start=0, num=limit)
    if not found:
        return []
    raw = r.mget([_record_key(account, k.decode()) for k in found])
    return [Violation(**json.loads(x)) for x in raw if x]
