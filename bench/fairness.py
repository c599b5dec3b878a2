"""Two accounts on one installation: does a bulk import in one delay the other's tasks?

The whole service runs as in production, on this machine: a real redis-server, `reglament
web` (gunicorn) and 4 worker processes, serving two accounts, each with its own amoCRM
sandbox limited to 7 requests/s as amoCRM is:

- the quiet account's sandbox runs in this process, so that the moment it stores a task is
  recorded exactly; its status changes are made in its page, as a manager makes them, and it
  sends its real webhooks to the service;
- the noisy account's sandbox is a `reglament sandbox` process holding the leads of the burst.

First the quiet account alone: one status change a second (the clock stops when the task
for that change is stored). Then the same again while the noisy account receives a burst
of real-format status webhooks (`leads[status][0][...]`, as amoCRM sends them) for its
leads, posted by another process as fast as the service takes them. Each of those events
costs the noisy account's CRM calls, so its backlog outlasts the measurement by far.

    python bench/fairness.py [--changes 120] [--rate 1] [--burst 5000] [--workers 4]

Last line: `fairness: quiet account p99 X s alone, Y s during a N-event burst in another account`.
Target: Y <= 2 s and Y <= 3 * X (X counted as at least 0.3 s).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from bench.service import (ALL_DAY, WORKER, clean_up, new_leads, post_all, status_bodies, stop,  # noqa: E402
                           wait_http)
from connectors.amocrm import AmoCRMClient  # noqa: E402
from connectors.amocrm.webhooks import register  # noqa: E402
from reglament.config import AmoCRMSettings  # noqa: E402
from sandbox.amocrm import SandboxAccount, SandboxServer  # noqa: E402
from shell.redis_server import RedisServer, free_port  # noqa: E402

QUIET_TOKEN, NOISY_TOKEN = "bench-fair-quiet-token", "bench-fair-noisy-token"
QUIET_SECRET, NOISY_SECRET = "bench-fair-quiet-secret-0123", "bench-fair-noisy-secret-0123"
STATUSES = ["Недозвон", "Просил перезвонить", "Записался на пробное", "Не пришел на пробное", "Пришел на пробное",
            "Принимает решение", "Клиент"]
def post_burst(url: str, bodies: list[str], threads: int, out) -> None:
    """Post the burst (in a child process, so that the quiet sandbox here keeps its CPU)."""
    out.put(post_all([(url, b) for b in bodies], threads))


def p99(values: list[float]) -> float:
    """Nearest rank: the value 99 % of the samples do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)]


class Quiet:
    """The quiet account's sandbox, with the moment each lead got its task."""

    def __init__(self, rate_limit: float):
        self.account = SandboxAccount()
        self.server = SandboxServer(self.account, token=QUIET_TOKEN, rate_limit=rate_limit).start()
        self.done: dict[int, float] = {}
        self.wanted: set[int] = set()
        self.lock = threading.Lock()
        self.account.add_listener(self.on_change)
        self.ui = requests.Session()
        self.status_ids = {s.name: s.id for s in self.account.main_pipeline().statuses}

    def on_change(self, changes) -> None:
        at = time.perf_counter()
        with self.lock:
            for c in changes:
                if c.setting == "add_task" and c.entity.entity_id in self.wanted:
                    self.done.setdefault(c.entity.entity_id, at)

    def leads(self, n: int) -> list[int]:
        """Leads in «Новая заявка» with the fields the status table reads, made before our webhook is subscribed."""
        return new_leads(self.account, n, "Замер")

    def changes(self, lead_ids: list[int], rate: float) -> list[float]:
        """Change each lead's status at `rate` per second; each change's seconds until its task (None: none in 30 s)."""
        changed = {}
        with self.lock:
            self.wanted |= set(lead_ids)
        start = time.perf_counter() + 0.2
        for i, lead_id in enumerate(lead_ids):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            changed[lead_id] = time.perf_counter()
            self.ui.post(f"{self.server.url}/ui/leads/{lead_id}/status",
                         data={"status_id": self.status_ids[STATUSES[i % len(STATUSES)]]}, allow_redirects=False)
        deadline = time.monotonic() + 30
        while any(i not in self.done for i in lead_ids) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [self.done[i] - changed[i] if i in self.done else float("inf") for i in lead_ids]


def summary(name: str, latencies: list[float]) -> str:
    ok = [x for x in latencies if x != float("inf")]
    return (f"{name}: {len(ok)}/{len(latencies)} tasks, p50 {statistics.median(ok):.2f} s, "
            f"p99 {p99(latencies):.2f} s, max {max(latencies):.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=120, help="quiet status changes per phase")
    ap.add_argument("--rate", type=float, default=1.0, help="quiet status changes per second")
    ap.add_argument("--burst", type=int, default=5000, help="webhooks the noisy account receives")
    ap.add_argument("--burst-threads", type=int, default=8)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rate-limit", type=float, default=7.0, help="amoCRM requests/s, sandboxes and client alike")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="reglament-bench-fairness-"))
    redis_server = RedisServer(tmp / "redis", fsync="everysec").start()
    r = redis.Redis.from_url(redis_server.url)
    procs: list[subprocess.Popen] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        noisy_port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "shell.cli", "sandbox", "--port", str(noisy_port), "--token", NOISY_TOKEN,
             "--rate-limit", str(args.rate_limit), "--generate", str(args.burst)],
            env=env, stdout=open(tmp / "noisy-sandbox.log", "w"), stderr=subprocess.STDOUT))
        noisy_url = f"http://127.0.0.1:{noisy_port}"
        quiet = Quiet(args.rate_limit)
        port = free_port()
        cfg = tmp / "config.yaml"
        cfg.write_text(yaml.safe_dump({
            "public_url": f"http://127.0.0.1:{port}", "redis_url": redis_server.url, "log_format": "text",
            "accounts": [{"id": account, "webhook_secret": secret,
                          "amocrm": {"base_url": url, "long_lived_token": token, "rate_limit": args.rate_limit},
                          "working_hours": ALL_DAY, "holidays_country": None}
                         for account, secret, url, token in (("quiet", QUIET_SECRET, quiet.server.url, QUIET_TOKEN),
                                                             ("noisy", NOISY_SECRET, noisy_url, NOISY_TOKEN))]},
                                     allow_unicode=True), encoding="utf-8")
        procs.append(subprocess.Popen([sys.executable, "-m", "shell.cli", "web", "--config", str(cfg),
                                       "--port", str(port), "--workers", "2"],
                                      env=env, stderr=open(tmp / "web.log", "w")))
        for k in range(args.workers):
            procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(cfg)], env=env,
                                          stderr=open(tmp / f"worker-{k}.log", "w")))
        wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_http(f"{noisy_url}/_sandbox/clock")

        bodies = status_bodies(redis_server.url, noisy_url, NOISY_TOKEN, args.burst, args.rate_limit * 0.9)
        alone_ids, during_ids = quiet.leads(args.changes), quiet.leads(args.changes)
        register(AmoCRMClient("bench-setup-quiet", AmoCRMSettings(base_url=quiet.server.url, long_lived_token=QUIET_TOKEN),
                              r), f"http://127.0.0.1:{port}/hooks/amocrm/{QUIET_SECRET}")
        time.sleep(2.0)  # the workers' dispatchers start reading
        load_before = os.getloadavg()

        alone = quiet.changes(alone_ids, args.rate)
        load_alone = os.getloadavg()
        noisy_log_start = len(requests.get(f"{noisy_url}/_sandbox/requests").json())
        out: mp.Queue = mp.Queue()
        poster = mp.get_context("fork").Process(
            target=post_burst, args=(f"http://127.0.0.1:{port}/hooks/amocrm/{NOISY_SECRET}", bodies,
                                     args.burst_threads, out))
        burst_started = time.time()
        poster.start()
        during = quiet.changes(during_ids, args.rate)
        load_during = os.getloadavg()
        accepted, refused, post_start, post_end = out.get(timeout=600)
        poster.join(10)
        noisy_log = requests.get(f"{noisy_url}/_sandbox/requests").json()[noisy_log_start:]
        measured_until = time.time()
        quiet_log = quiet.server.sandbox.requests.since(0)

        from jobs import account_health
        from reglament import config
        by_id = {h.account: h for h in account_health.health(r, config.load(str(cfg)).accounts)}
        noisy_health, quiet_health = by_id["noisy"], by_id["quiet"]
        x, y = p99(alone), p99(during)
        print(f"machine: {os.cpu_count()} cores; load average before {load_before[0]:.1f}, "
              f"after the quiet phase {load_alone[0]:.1f}, after the burst phase {load_during[0]:.1f}")
        print(f"quiet account: {args.changes} status changes at {args.rate:g}/s per phase; "
              f"amoCRM limit {args.rate_limit:g} req/s per account; {args.workers} worker processes")
        print(summary("alone", alone))
        print(summary("during the burst", during))
        print(f"burst: {accepted} webhooks accepted ({refused} refused) in {post_end - post_start:.1f} s "
              f"({accepted / max(post_end - post_start, 1e-9):.0f}/s), starting {post_start - burst_started:.1f} s "
              f"after the burst phase began")
        noisy_used = [c for c in noisy_log if c["status"] != 429]
        span = max(measured_until - burst_started, 1e-9)
        print(f"noisy account meanwhile: {len(noisy_used)} API calls ({len(noisy_used) / span:.2f}/s of "
              f"{args.rate_limit:g}), {sum(1 for c in noisy_log if c['status'] == 429)} answered 429; "
              f"its events still in flight {noisy_health.in_flight}, waiting {noisy_health.waiting}, "
              f"scheduled {noisy_health.scheduled}")
        print(f"quiet account: {sum(1 for c in quiet_log if c['status'] == 429)} API answers 429; "
              f"in flight {quiet_health.in_flight}, waiting {quiet_health.waiting}")
        target = y <= 2.0 and y <= 3 * max(x, 0.3)
        print(f"target Y <= 2 s and Y <= 3 x max(X, 0.3 s) = {3 * max(x, 0.3):.2f} s: {'met' if target else 'NOT met'}")
        print(f"fairness: quiet account p99 {x:.2f} s alone, {y:.2f} s during a {accepted}-event burst "
              "in another account")
    finally:
        stop(procs)
        redis_server.stop()
        clean_up(tmp)


if __name__ == "__main__":
    main()
