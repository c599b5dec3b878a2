"""`reglament status`: one screen for the admin, read from Redis (what every process writes)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import click
import redis

from reglament import config, keys
from shell.commands.common import CONFIG_OPTION, load_settings, redis_for

SOURCES = ("amocrm", "wazzup", "telephony.zadarma", "telephony.mango")
SCAN = 5000  # inbox entries looked through for each source's last delivery


def _at(entry_id: bytes | str) -> float:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0]) / 1000


def last_webhooks(r: redis.Redis, account: str) -> dict[str, float | None]:
    """When each source's last delivery arrived (the inbox entry id is its arrival time)."""
    found: dict[str, float | None] = {}
    top, seen = "+", 0
    while len(found) < len(SOURCES) and seen < SCAN:
        page = r.xrevrange(keys.inbox(account), max=top, count=500)
        for entry_id, fields in page:
            source = fields.get(b"source", b"").decode()
            found.setdefault(source, _at(entry_id))
        if len(page) < 500:
            break
        seen += len(page)
        top = "(" + page[-1][0].decode()
    return {s: found.get(s) for s in SOURCES}


def rate_limit(r: redis.Redis, account: config.Account, counters: dict[str, int]) -> dict | None:
    if account.amocrm is None:
        return None
    now_us = (lambda t: t[0] * 1_000_000 + t[1])(r.time())
    next_at = int(r.get(keys.key(account.id, "amocrm", "ratelimit")) or 0)
    calls = {k: v for k, v in counters.items() if k.startswith("api_calls_total\t") and "system=amocrm" in k}
    by_status: dict[str, int] = {}
    for k, v in calls.items():
        status = dict(p.split("=", 1) for p in k.split("\t")[1:]).get("status", "?")
        by_status[status] = by_status.get(status, 0) + v
    return {"rate_per_second": account.amocrm.rate_limit, "next_slot_in_ms": max(0, (next_at - now_us) // 1000),
            "api_calls": sum(by_status.values()), "answered_429": by_status.get("429", 0),
            "answered_403": by_status.get("403", 0)}


def gather(settings: config.Settings, r: redis.Redis) -> dict:
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry

    from connectors.outbox import Outbox
    from jobs import timers
    from jobs.queues import QUEUES

    waiting, late = timers.lag(r)
    accounts = []
    for a in settings.accounts:
        counters = {k.decode(): int(v) for k, v in r.hgetall(keys.metrics(a.id)).items()}
        accounts.append({
            "id": a.id, "name": a.name, "crm": a.crm,
            "last_webhook": last_webhooks(r, a.id),
            "inbox": r.xlen(keys.inbox(a.id)),
            "rejected": r.xlen(keys.rejected(a.id)),
            "rate_limit": rate_limit(r, a, counters),
            "outbox": r.xlen(Outbox(r, a.id).key),
        })
    return {
        "at": time.time(),
        "workers": Worker.count(connection=r),
        "queues": {name: {"waiting": Queue(name, connection=r).count,
                          "retrying": ScheduledJobRegistry(name, connection=r).count,
                          "failed": FailedJobRegistry(name, connection=r).count} for name in QUEUES},
        "timers": {"waiting": waiting, "most_overdue_seconds": round(late, 3)},
        "accounts": accounts,
    }


def _ago(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    seconds = int(now - at)
    span = f"{seconds}s" if seconds < 120 else f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h"
    return f"{datetime.fromtimestamp(at):%Y-%m-%d %H:%M:%S} ({span} ago)"


def render(s: dict) -> str:
    now = s["at"]
    lines = [f"workers registered: {s['workers']}" + ("   (none: jobs and timers wait; is the worker running?)"
                                           if not s["workers"] else "")]
    lines.append("queues:   " + "   ".join(f"{n} {q['waiting']} waiting, {q['retrying']} retrying, {q['failed']} failed"
                                           for n, q in s["queues"].items()))
    t = s["timers"]
    lines.append(f"timers:   {t['waiting']} waiting, the most overdue {t['most_overdue_seconds']:g}s late")
    for a in s["accounts"]:
        lines += ["", f"[{a['id']}] {a['name'] or ''} ({a['crm']})".rstrip()]
        for source, at in a["last_webhook"].items():
            lines.append(f"  last {source + ' webhook:':<28} {_ago(at, now)}")
        lines.append(f"  inbox: {a['inbox']} deliveries kept   rejected: {a['rejected']}   outbox: {a['outbox']} messages")
        rl = a["rate_limit"]
        if rl:
            lines.append(f"  amoCRM: {rl['rate_per_second']:g} req/s, next slot in {rl['next_slot_in_ms']} ms; "
                         f"{rl['api_calls']} calls, {rl['answered_429']} answered 429, {rl['answered_403']} answered 403")
    return "\n".join(lines)


@click.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="print it as JSON, for scripts")
def status(config_path, as_json):
    """One screen for the admin: accounts, last webhook per source, queues, failed jobs,
    timers, the amoCRM rate limit and the outbox."""
    settings = load_settings(config_path)
    found = gather(settings, redis_for(settings))
    click.echo(json.dumps(found, ensure_ascii=False, indent=2) if as_json else render(found))


commands = [status]
