"""How well several processes share amoCRM's request budget through the Redis rate limiter.

Starts a real redis-server and the amoCRM sandbox limited to 7 requests/s (as amoCRM is,
reference §2), then worker processes that use one account id, so they share one limiter:

1. create phase: together they create 1,000 tasks on sandbox leads through AmoCRMClient,
   each process its own slice, `create_tasks` in batches of 50, one action key per task;
2. read phase: each makes paced single reads (GET /api/v4/leads/{id}), long enough that
   start-up does not dominate the measured rate.

Counts come from the sandbox's own log of answered requests (/_sandbox/requests); the
duplicate count from the tasks the sandbox holds.

    python bench/api_budget.py [--tasks 1000] [--workers 4] [--reads 60] [--rate 7]
"""

from __future__ import annotations

import argparse
import collections
import math
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.amocrm import SandboxAccount, SandboxServer  # noqa: E402
from connectors.ratelimit import DEFAULT_MARGIN  # noqa: E402
from shell.redis_server import RedisServer  # noqa: E402

ACCOUNT = "bench"
TOKEN = "bench-sandbox-token"
BATCH = 50
TEXT = "Bench task "


def worker(k: int, redis_url: str, base_url: str, rate: float, first: int, stop: int, lead_ids: list[int],
           reads: int, deadline: int, out, go_create, go_read) -> None:
    import redis

    from connectors.amocrm import AmoCRMClient
    from reglament.config import AmoCRMSettings

    r = redis.Redis.from_url(redis_url)
    r.ping()
    client = AmoCRMClient(ACCOUNT, AmoCRMSettings(base_url=base_url, long_lived_token=TOKEN, rate_limit=rate), r)
    items = [(f"bench:task:{i}", {"text": f"{TEXT}{i:05d}", "complete_till": deadline, "task_type_id": 1,
                                  "entity_type": "leads", "entity_id": lead_ids[i % len(lead_ids)]})
             for i in range(first, stop)]
    out.put(("ready", k))
    go_create.wait()
    ids: list[int] = []
    for start in range(0, len(items), BATCH):
        ids += client.create_tasks(items[start:start + BATCH])
    out.put(("created", k, ids, time.time()))
    go_read.wait()
    found = 0
    for j in range(reads):
        found += client.get_lead(lead_ids[(k * reads + j) % len(lead_ids)], with_contacts=False) is not None
    out.put(("read", k, found, time.time()))


def collect(out, kind: str, n: int, timeout: float = 600) -> list[tuple]:
    got = []
    while len(got) < n:
        msg = out.get(timeout=timeout)
        if msg[0] != kind:
            raise SystemExit(f"unexpected message from a worker: {msg!r}")
        got.append(msg)
    return got


def requests_log(url: str, since: int) -> list[dict]:
    return requests.get(f"{url}/_sandbox/requests", params={"since": since}, timeout=30).json()


def phase(log: list[dict], started: float, ended: float, rate: float) -> dict:
    ok = [e for e in log if 200 <= e["status"] < 300]
    times = sorted(e["time"] for e in ok)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {"calls": len(log), "ok": len(ok), "429": sum(e["status"] == 429 for e in log),
            "other": sum(not (200 <= e["status"] < 300) and e["status"] != 429 for e in log),
            "wall": ended - started, "rate": len(ok) / (ended - started),
            "ratio": len(ok) / (ended - started) / rate,
            "steady": (len(times) - 1) / span if span else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--reads", type=int, default=60, help="GET /api/v4/leads/{id} per worker in the read phase")
    ap.add_argument("--rate", type=float, default=7.0, help="the sandbox's limit and the client's setting")
    ap.add_argument("--leads", type=int, default=200, help="generated sandbox leads the tasks go on")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="reglament-api-budget-"))
    redis_server = RedisServer(tmp / "redis").start()
    account = SandboxAccount()
    lead_ids = account.generate_leads(args.leads)
    amo = SandboxServer(account, token=TOKEN, rate_limit=args.rate).start()
    ctx = mp.get_context("spawn")  # the sandbox runs threads in this process: do not fork it
    out = ctx.Queue()
    go_create, go_read = ctx.Event(), ctx.Event()
    deadline = int(time.time()) + 7 * 86400
    bounds = [round(args.tasks * k / args.workers) for k in range(args.workers + 1)]
    procs = [ctx.Process(target=worker, args=(k, redis_server.url, amo.url, args.rate, bounds[k], bounds[k + 1],
                                              lead_ids, args.reads, deadline, out, go_create, go_read))
             for k in range(args.workers)]
    try:
        for p in procs:
            p.start()
        collect(out, "ready", args.workers, timeout=120)

        mark = len(requests_log(amo.url, 0))
        started = time.time()
        go_create.set()
        created = collect(out, "created", args.workers)
        create = phase(requests_log(amo.url, mark), started, max(m[3] for m in created), args.rate)
        returned = [i for m in created for i in m[2]]

        mark += create["calls"]
        started = time.time()
        go_read.set()
        read_msgs = collect(out, "read", args.workers)
        read = phase(requests_log(amo.url, mark), started, max(m[3] for m in read_msgs), args.rate)
        for p in procs:
            p.join(30)

        with account.lock:
            texts = collections.Counter(t.text for t in account.tasks.values() if t.text.startswith(TEXT))
        duplicates = sum(n - 1 for n in texts.values() if n > 1)
        missing = args.tasks - len(texts)
        minimum = math.ceil(args.tasks / BATCH)

        print(f"{args.workers} worker processes, one account id → one Redis rate limiter at {args.rate:g} req/s "
              f"(spacing margin {DEFAULT_MARGIN:.0%}, so at most {1 - DEFAULT_MARGIN:.2f} of the rate); "
              f"sandbox answers 429 beyond {args.rate:g} requests in any sliding second")
        print(f"CREATE phase: {args.tasks} tasks, create_tasks in batches of {BATCH}, {len(returned)} ids returned "
              f"({len(set(returned))} distinct)")
        print(f"  achieved rate / allowed:     {create['ratio']:.2f}   ({create['ok']} requests answered in "
              f"{create['wall']:.2f} s wall = {create['rate']:.2f} req/s of {args.rate:g}; first→last request "
              f"{create['steady']:.2f} req/s)  (target >= 0.9)")
        print(f"  429 answers received:        {create['429']}   (target 0; other errors: {create['other']})")
        print(f"  duplicate tasks:             {duplicates}   (target 0; missing: {missing}; "
              f"tasks in the sandbox with bench text: {sum(texts.values())})")
        print(f"  API calls used / minimum:    {create['calls'] / minimum:.2f}   ({create['calls']} calls, minimum "
              f"ceil({args.tasks}/{BATCH}) = {minimum})  (target <= 1.1)")
        print(f"READ phase: {args.workers} x {args.reads} paced GET /api/v4/leads/{{id}}")
        print(f"  achieved rate / allowed:     {read['ratio']:.2f}   ({read['ok']} requests answered in "
              f"{read['wall']:.2f} s wall = {read['rate']:.2f} req/s of {args.rate:g}; first→last request "
              f"{read['steady']:.2f} req/s)  (target >= 0.9)")
        print(f"  429 answers received:        {read['429']}   (target 0; other errors: {read['other']})")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
        amo.stop()
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
