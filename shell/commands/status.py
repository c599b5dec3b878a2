"""`reglament status`: one screen for the admin, read from Redis (what every process writes)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import click
import redis

from reglament import config, keys
from shell.commands.common import CONFIG_OPTION, load_settings, redis_for

SOURCES = ("wazzup", "telephony.zadarma", "telephony.mango")  # besides the account's CRM
SCAN = 5000  # inbox entries looked through for each source's last delivery


def _at(entry_id: bytes | str) -> float:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0]) / 1000


def last_webhooks(r: redis.Redis, account: str, crm: str = "amocrm") -> dict[str, float | None]:
    """When each source's last delivery arrived (the inbox entry id is its arrival time)."""
    sources = (crm, *SOURCES)
    found: dict[str, float | None] = {}
    top, seen = "+", 0
    while len(found) < len(sources) and seen < SCAN:
        page = r.xrevrange(keys.inbox(account), max=top, count=500)
        for entry_id, fields in page:
            source = fields.get(b"source", b"").decode()
            found.setdefault(source, _at(entry_id))
        if len(page) < 500:
            break
        seen += len(page)
        top = "(" + page[-1][0].decode()
    return {s: found.get(s) for s in sources}


def api_calls(counters: dict[str, int]) -> dict[str, int]:
    """The account's calls to its CRM, by HTTP status, from its counters."""
    by_status: dict[str, int] = {}
    for k, v in counters.items():
        name, *labels = k.split("\t")
        labels = dict(p.split("=", 1) for p in labels)
        if name == "api_calls_total" and labels.get("system") in ("amocrm", "bitrix24"):
            by_status[labels.get("status", "?")] = by_status.get(labels.get("status", "?"), 0) + v
    return by_status


def gather(settings: config.Settings, r: redis.Redis) -> dict:
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry

    from connectors import registry
    from connectors.outbox import Outbox
    from jobs import account_health, timers
    from jobs.queues import QUEUES

    waiting, late = timers.lag(r)
    crm = [a for a in settings.accounts if registry.supported(a)]
    health = {h.account: h for h in account_health.health(r, crm)}
    accounts = []
    for a in settings.accounts:
        counters = {k.decode(): int(v) for k, v in r.hgetall(keys.metrics(a.id)).items()}
        h = health.get(a.id)
        calls = api_calls(counters)
        accounts.append({
            "id": a.id, "name": a.name, "kind": a.crm,
            "last_webhook": last_webhooks(r, a.id, a.crm),
            "inbox": r.xlen(keys.inbox(a.id)),
            "rejected": r.xlen(keys.rejected(a.id)),
            "crm": None if h is None else {
                "state": h.state, "paused_seconds": h.paused, "reason": h.reason, "strikes": h.strikes,
                "jobs_in_flight": h.in_flight, "jobs_held_back": h.waiting, "jobs_scheduled": h.scheduled,
                "api_calls": sum(calls.values()), "answered_429": calls.get("429", 0),
                "answered_403": calls.get("403", 0)},
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
        lines += ["", f"[{a['id']}] {a['name'] or ''} ({a['kind']})".rstrip()]
        for source, at in a["last_webhook"].items():
            lines.append(f"  last {source + ' webhook:':<28} {_ago(at, now)}")
        lines.append(f"  inbox: {a['inbox']} deliveries kept   rejected: {a['rejected']}   outbox: {a['outbox']} messages")
        c = a["crm"]
        if c:
            why = f" ({c['reason']}, {c['strikes']} failure(s) in a row)" if c["reason"] else ""
            lines.append(f"  CRM: {c['state']}{why}" + (f", calls again in {c['paused_seconds']:g}s" if c["paused_seconds"] else "")
                         + f"; jobs in flight {c['jobs_in_flight']}, held back {c['jobs_held_back']}, "
                           f"scheduled {c['jobs_scheduled']}")
            lines.append(f"  CRM calls: {c['api_calls']}, answered 429: {c['answered_429']}, 403: {c['answered_403']}")
    return "\n".join(lines)


@click.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="print it as JSON, for scripts")
def status(config_path, as_json):
    """One screen for the admin: accounts, last webhook per source, queues, failed jobs,
    timers, each account's CRM state (its rate limit, paused or stopped) and the outbox."""
    settings = load_settings(config_path)
    found = gather(settings, redis_for(settings))
    click.echo(json.dumps(found, ensure_ascii=False, indent=2) if as_json else render(found))


commands = [status]
