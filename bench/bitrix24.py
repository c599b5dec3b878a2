"""Bitrix24 beside amoCRM: requests over the fewest possible, the bucket's use, and latency.

Everything runs against the Bitrix24 sandbox with a standard portal's bucket (2 requests/s,
burst 50; `--rate`/`--burst` for Enterprise's 5 and 250) and a real redis-server; requests
are counted from the sandbox's own log (/_sandbox/requests), where a batch is one request.

1. service: `reglament web` (gunicorn) and the worker process as subprocesses, the sandbox's
   outgoing webhook on our /hooks/bitrix24. Deals are made at «Новая заявка» and read once
   (the baseline a portal's first catch-up takes), then a manager moves them on the
   sandbox's page at `--per-second`, cycling through the stages of the STATUS_TASKS table.
   The clock for a change stops when the sandbox stores its to-do. Requests per change
   are over the fewest possible: one batch to read the deal with its activities, one to
   add the to-do (with its note, and any field the rule sets). Every request the portal
   answered in the run is counted: those the events of our own writes cause, and the
   catch-up's passes (every `--catchup` seconds, 30) too;
2. sweep: jobs.sweep over `--deals` deals (10% of the active ones without a to-do); the
   fewest: every page of active deals and of open activities packed 50 to a batch, and one
   batch per 50 to-dos and comments added;
3. bucket: bench/bitrix24_client.py's two processes making single reads through one
   portal's bucket, from empty: achieved rate over the bucket's, and 503 QUERY_LIMIT_EXCEEDED.

    python bench/bitrix24.py [--changes 120] [--per-second 1] [--deals 5000] [--rate 2] [--burst 50] [--catchup 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402

from app.bitrix24.parser import EVENTS  # noqa: E402
from bench import bitrix24_client  # noqa: E402
from bench.latency import STATUSES  # noqa: E402
from bench.service import ALL_DAY, clean_up, start_service, stop  # noqa: E402
from bench.sweep import TERMINAL, ceil  # noqa: E402
from jobs import catchup, context, sweep  # noqa: E402
from reglament.config import Settings  # noqa: E402
from sandbox.bitrix24 import Credentials, Portal, PortalServer  # noqa: E402
from sandbox.bitrix24 import crm as portal_crm  # noqa: E402
from sandbox.bitrix24.portal import Caller  # noqa: E402
from shell.redis_server import RedisServer, free_port  # noqa: E402

SECRET = "bench-bitrix24-secret-0123456"
APP_TOKEN = "bench-bitrix24-application-token"
PAGE, BATCH = 50, 50


def account(webhook_url: str, rate: float, burst: int, catchup: int = 0) -> dict:
    return {"id": "bench", "webhook_secret": SECRET, "crm": "bitrix24", "timezone": "Europe/Moscow",
            "bitrix24": {"webhook_url": webhook_url, "application_token": APP_TOKEN, "rate_limit": rate,
                         "burst": burst, "catchup_seconds": catchup},
            "working_hours": ALL_DAY, "holidays_country": None}


def by_kind(entries: list[dict]) -> str:
    """Requests by method; a batch by the methods of its commands."""
    kinds = Counter(e["method"] + (f"[{','.join(sorted(set(map(str, e['commands']))))}]" if e.get("commands") else "")
                    for e in entries)
    return ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))


def service(args, tmp: Path, redis_url: str) -> dict:
    portal = Portal()
    b24 = PortalServer(portal, Credentials(webhook_code="bench-code-0000"), rate=args.rate, burst=args.burst).start()
    port = free_port()
    procs: list = []
    try:
        procs += start_service(tmp, port, {"public_url": f"http://127.0.0.1:{port}", "redis_url": redis_url,
                                   "log_format": "text",
                                   "accounts": [account(b24.webhook_url, args.rate, args.burst, args.catchup)]})
        # The deals, at «Новая заявка» without a to-do, with the dates the table's stages read.
        now = portal.now()
        dates = {"UF_CRM_CALLBACK_AT": portal.iso(now + 86400), "UF_CRM_TRIAL_AT": portal.iso(now + 3 * 86400),
                 "UF_CRM_PASS_ENDS": portal.iso(now + 30 * 86400)[:10]}
        managers = [2, 3, 4]
        deal_ids = [portal_crm.add(portal, portal_crm.DEAL, {"TITLE": f"Замер {i}", "STAGE_ID": "NEW",
                                                             "ASSIGNED_BY_ID": managers[i % 3], **dates},
                                   Caller(managers[i % 3], "page"), silent=True) for i in range(args.changes)]
        stage_ids = {s["NAME"]: s["STATUS_ID"] for s in portal.stages(0)}
        # The deals as a first catch-up pass leaves them: seen once, so a move is a move.
        context.set_settings(Settings.model_validate({"redis_url": redis_url, "accounts": [
            account(b24.webhook_url, args.rate, args.burst)]}), redis.Redis.from_url(redis_url))
        context.crm_for("bench").baseline()
        requests.post(b24.url + "/_sandbox/webhooks/outgoing", timeout=10, json={
            "handler": f"http://127.0.0.1:{port}/hooks/bitrix24/{SECRET}", "events": sorted(EVENTS),
            "application_token": APP_TOKEN}).raise_for_status()
        time.sleep(3.0)  # the worker's dispatcher reading; the bucket refilled after the setup's reads
        bitrix24_client.fresh(b24)  # the clock's jump also empties the bucket, as after a quiet spell
        b24.sandbox.events.clear_log()

        changed: dict[int, float] = {}
        done: dict[int, float] = {}
        lock = threading.Lock()
        wanted = set(deal_ids)

        def on_event(event: str, data: dict, caller) -> None:
            if event != "ONCRMACTIVITYADD":
                return
            at = time.perf_counter()
            with portal.lock:
                owner = int((portal.activities.get(int(data["FIELDS"]["ID"])) or {}).get("OWNER_ID") or 0)
            with lock:
                if owner in wanted and owner not in done:
                    done[owner] = at

        portal.add_listener(on_event)
        # The catch-up's passes, as the scheduler would run them (the scheduler itself is not
        # started: its start-up sweep would give the waiting deals their to-dos first).
        stopping = threading.Event()
        passes: list[dict] = []

        def catching_up() -> None:
            while args.catchup and not stopping.wait(args.catchup):
                passes.append(catchup.catchup_job("bench"))

        catcher = threading.Thread(target=catching_up, daemon=True)
        catcher.start()
        ui = requests.Session()
        start = time.perf_counter() + 0.2
        for i, deal_id in enumerate(deal_ids):
            delay = start + i / args.per_second - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with lock:
                changed[deal_id] = time.perf_counter()
            ui.post(f"{b24.url}/ui/deals/{deal_id}/stage", data={"stage": stage_ids[STATUSES[i % len(STATUSES)]]},
                    allow_redirects=False)
        deadline = time.monotonic() + args.changes / args.rate * 4 + 30
        while len(done) < len(deal_ids) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.0)  # the events our own to-dos cause are read too, and counted
        stopping.set()
        catcher.join()
        log = bitrix24_client.log(b24)
        events = Counter(e["event"] for e in b24.sandbox.events.log())
        latencies = sorted(done[i] - changed[i] for i in deal_ids if i in done)
        slowest = sorted(((done[d] - changed[d], STATUSES[k % len(STATUSES)]) for k, d in enumerate(deal_ids) if d in done),
                         reverse=True)[:3]
        with portal.lock:
            open_todos = Counter(int(a["OWNER_ID"]) for a in portal.activities.values()
                                 if a.get("COMPLETED") != "Y" and int(a.get("OWNER_TYPE_ID", 0)) == 2)
        refused = sum(e["status"] == 503 for e in log)
        return {"passes": passes, "changes": len(deal_ids), "latencies": latencies, "requests": len(log) - refused, "refused": refused,
                "kinds": by_kind(log), "events": ", ".join(f"{k} {v}" for k, v in sorted(events.items())),
                "one_todo": sum(open_todos[i] == 1 for i in deal_ids),
                "slowest": ", ".join(f"{stage} {t:.1f} s" for t, stage in slowest),
                "span": (max(done.values()) - start) if done else 0.0}
    finally:
        stop(procs)
        b24.stop()


def sweep_run(args, redis_url: str) -> dict:
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    with PortalServer(Portal(), Credentials(webhook_code="bench-code-0001"), rate=args.rate, burst=args.burst) as b24:
        requests.post(f"{b24.url}/_sandbox/generate?n={args.deals - 7}&without_todo_share=0.1",
                      timeout=600).raise_for_status()
        context.set_settings(Settings.model_validate({"redis_url": redis_url, "accounts": [
            account(b24.webhook_url, args.rate, args.burst)]}), r)
        crm = context.crm_for("bench")
        crm.names()  # the vocabulary (2 requests, kept 10 minutes) is counted apart
        bitrix24_client.fresh(b24)
        started = time.perf_counter()
        result = sweep.run(context.executor_for("bench"), crm)
        wall = time.perf_counter() - started
        log = bitrix24_client.log(b24)
        with b24.portal.lock:
            portal = b24.portal
            names = {s["STATUS_ID"]: s for s in portal.stages(0)}
            active = [d for d in portal.deals.values() if d["STAGE_ID"] in names
                      and not names[d["STAGE_ID"]]["_terminal"] and names[d["STAGE_ID"]]["NAME"] not in TERMINAL]
            acts = [a for a in portal.activities.values() if a.get("COMPLETED") != "Y"]
        todos = sum(1 for p in result.fixed for a in p.actions if type(a).__name__ == "CreateTask")
        notes = sum(1 for p in result.fixed for a in p.actions if type(a).__name__ == "AddNote")
        # Active deals as they were read, open activities before the sweep added its own.
        pages = ceil(len(active), PAGE) + ceil(len(acts) - todos, PAGE)
        minimum = ceil(pages, BATCH) + ceil(todos + notes, BATCH)   # to-dos and comments share batches
        refused = sum(e["status"] == 503 for e in log)
        return {"deals": len(portal.deals), "active": len(active), "acts": len(acts) - todos, "pages": pages,
                "fixed": len(result.fixed), "todos": todos, "notes": notes, "checked": result.checked,
                "requests": len(log) - refused, "refused": refused, "minimum": minimum, "wall": wall,
                "kinds": by_kind(log)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=120)
    ap.add_argument("--per-second", type=float, default=1.0, help="stage changes per second")
    ap.add_argument("--deals", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=2.0, help="the portal's requests/s, sandbox and client alike")
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--calls", type=int, default=60, help="single reads per process in the bucket part")
    ap.add_argument("--catchup", type=int, default=30, help="the catch-up's period in the service part (0: off)")
    ap.add_argument("--only", choices=("service", "sweep", "bucket"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="reglament-bench-b24-"))
    redis_server = RedisServer(tmp / "redis", fsync="everysec").start()
    summary = []
    try:
        print(f"Bitrix24 sandbox: {args.rate:g} requests/s, burst {args.burst}; a batch is one request")
        if args.only in (None, "service"):
            s = service(args, tmp, redis_server.url)
            lat = s["latencies"]
            p99 = lat[max(0, ceil(len(lat) * 99, 100) - 1)] if lat else float("nan")
            per_change = s["requests"] / s["changes"]
            print(f"service: {s['changes']} stage changes at {args.per_second:g}/s through web + worker, "
                  f"all handled in {s['span']:.0f} s")
            print(f"  change -> to-do in Bitrix24: p50 {lat[len(lat) // 2] * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
                  f"max {lat[-1] * 1000:.0f} ms; no to-do: {s['changes'] - len(lat)}")
            print(f"  slowest: {s['slowest']}")
            print(f"  requests: {s['requests']} = {per_change:.2f} per change; fewest possible 2 (read the deal, "
                  f"add the to-do): ratio {per_change / 2:.2f}; 503 answers: {s['refused']}")
            print(f"  by kind: {s['kinds']}")
            print(f"  events the portal sent us: {s['events']}")
            print(f"  deals with exactly one open to-do: {s['one_todo']}/{s['changes']}")
            print(f"  catch-up passes (every {args.catchup} s, counted above): {len(s['passes'])}, "
                  f"deals read {sum(p.get('leads', 0) for p in s['passes'])}, "
                  f"changes no event brought {sum(p.get('events', 0) for p in s['passes'])}")
            summary += [f"calls/change {per_change:.2f} (x{per_change / 2:.2f} of 2)", f"p99 {p99:.2f} s"]
        if args.only in (None, "sweep"):
            w = sweep_run(args, redis_server.url)
            ratio = w["requests"] / w["minimum"]
            print(f"sweep: {w['deals']} deals, {w['active']} active, {w['acts']} open activities "
                  f"({w['pages']} pages); checked {w['checked']}, fixed {w['fixed']} ({w['todos']} to-dos, "
                  f"{w['notes']} comments) in {w['wall']:.1f} s")
            print(f"  requests: {w['requests']}, fewest possible {w['minimum']} = ceil({w['pages']} pages / 50) + "
                  f"ceil(({w['todos']} to-dos + {w['notes']} comments) / 50): ratio {ratio:.2f} "
                  f"(target <= 1.1); 503 answers: {w['refused']}; plus 2 for the vocabulary, once per 10 minutes")
            print(f"  by kind: {w['kinds']}")
            summary.append(f"sweep {w['requests']}/{w['minimum']} = {ratio:.2f}")
        if args.only in (None, "bucket"):
            bitrix24_client.RATE, bitrix24_client.BURST = args.rate, args.burst
            with PortalServer(Portal(), Credentials(webhook_code="bench-code-0000"), rate=args.rate,
                              burst=args.burst) as b24:
                sent, refused, wall, best = bitrix24_client.shared_bucket(redis_server.url, b24, 2, args.calls)
            print(f"bucket: 2 processes x {args.calls} reads from an empty bucket: {sent} requests in {wall:.1f} s, "
                  f"the bucket allows {best:.1f} s: achieved rate over the bucket's {best / wall:.2f} "
                  f"(target >= 0.9); QUERY_LIMIT_EXCEEDED: {refused} (target 0)")
            summary.append(f"rate {best / wall:.2f} of the bucket, {refused} x 503")
        print("summary: " + "; ".join(summary))
    finally:
        redis_server.stop()
        clean_up(tmp)


if __name__ == "__main__":
    main()
