"""What Reglament's Bitrix24 client costs in requests, and how processes share a portal's bucket.

Starts a real redis-server and the Bitrix24 sandbox with Bitrix24's bucket (2 requests/s,
burst 50) and 5,000 deals, then measures, counting from the sandbox's own request log:

1. a typical job: one deal and its open activities (`gather`: one batch);
2. a sweep's read: every deal (`list`: the first page, then 50 pages to a batch);
3. N processes on one portal, each making M single reads at once through the shared
   Redis limiter: wall time, achieved rate over the bucket's long-run rate, 503 answers.

The same scenarios were run with fast-bitrix24 and b24pysdk in a scratch venv (README,
"Libraries, and why").

    python bench/bitrix24_client.py [--deals 5000] [--processes 2] [--calls 60]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.bitrix24 import Credentials, Portal, PortalServer  # noqa: E402
from shell.redis_server import RedisServer  # noqa: E402

ACCOUNT = "bench"
RATE, BURST = 2.0, 50


def client(redis_url: str, webhook_url: str):
    import redis

    from connectors.bitrix24 import Bitrix24Client
    from reglament.config import Bitrix24Settings

    return Bitrix24Client(ACCOUNT, Bitrix24Settings(webhook_url=webhook_url, rate_limit=RATE, burst=BURST),
                          redis.Redis.from_url(redis_url))


def reader(redis_url: str, webhook_url: str, calls: int, go, out) -> None:
    c = client(redis_url, webhook_url)
    go.wait()
    for i in range(calls):
        c.call("crm.deal.get", {"id": 101 + i % 7})
    out.put(calls)


def log(b24) -> list[dict]:
    return requests.get(b24.url + "/_sandbox/requests", timeout=60).json()


def fresh(b24) -> None:
    """Forget the log and start from an empty bucket (as after a quiet spell)."""
    requests.delete(b24.url + "/_sandbox/requests", timeout=5)
    requests.post(b24.url + "/_sandbox/clock", json={"advance": 3600}, timeout=5)


def shared_bucket(redis_url: str, b24, processes: int, calls: int) -> tuple[int, int, float, float]:
    """`processes` processes each make `calls` single reads at once through one portal's bucket,
    from an empty bucket: (requests, 503 answers, wall seconds, the fastest wall time the bucket allows)."""
    fresh(b24)
    go, out = mp.Event(), mp.Queue()
    procs = [mp.Process(target=reader, args=(redis_url, b24.webhook_url, calls, go, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every process connected and waiting
    started = time.monotonic()
    go.set()
    done = sum(out.get(timeout=600) for _ in procs)
    wall = time.monotonic() - started
    for p in procs:
        p.join(10)
    entries = log(b24)
    # The bucket lets BURST through at once, then RATE a second: the fastest possible wall time.
    return len(entries), sum(e["status"] == 503 for e in entries), wall, max(0.0, (done - BURST) / RATE)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deals", type=int, default=5000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--calls", type=int, default=60)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-b24-"))
    redis_server = RedisServer(tmp, fsync="no").start()
    try:
        creds = Credentials(webhook_code="bench-code-0000")
        with PortalServer(Portal(), creds, rate=RATE, burst=BURST) as b24:
            have = 7
            requests.post(f"{b24.url}/_sandbox/generate?n={max(0, args.deals - have)}", timeout=600)
            c = client(redis_server.url, b24.webhook_url)

            fresh(b24)
            c.gather({"deal": ("crm.deal.get", {"id": 102}),
                      "acts": ("crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": 102, "COMPLETED": "N"}})})
            print(f"a deal and its open activities: {len(log(b24))} request(s)")

            fresh(b24)
            started = time.monotonic()
            rows = c.list("crm.deal.list", {"select": ["ID", "STAGE_ID", "ASSIGNED_BY_ID", "DATE_MODIFY"]})
            entries = log(b24)
            pages = -(-len(rows) // 50)
            print(f"every deal: {len(rows)} rows, {pages} pages in {len(entries)} requests "
                  f"(minimum 1 + ceil({pages - 1}/50) = {1 + -(-(pages - 1) // 50)}), "
                  f"{sum(e['status'] == 503 for e in entries)} x 503, {time.monotonic() - started:.1f} s")

            requests_sent, refused, wall, best = shared_bucket(redis_server.url, b24, args.processes, args.calls)
            print(f"{args.processes} processes x {args.calls} reads: {requests_sent} requests, {refused} x 503, "
                  f"{wall:.1f} s (the bucket allows {best:.1f} s: ratio {best / wall if wall else 0:.2f})")
    finally:
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
