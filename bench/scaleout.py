"""Events handled per second with 1, 2 and 4 worker processes when the CRM is not the bottleneck.

A real redis-server, `reglament web`, and an amoCRM sandbox process with no request limit
(the client's limit raised too) serve ACCOUNTS accounts. Each round starts from an empty
Redis and a fresh sandbox: the web receiver first stores EVENTS real-format status webhooks
(spread over the accounts), then N worker processes start and handle them: the dispatcher
turns them into batch jobs, the rules read each lead (and its tasks) and create its task in
the sandbox. The rate is taken from the workers' own "event handled" log lines, between the
10th and the 90th percentile of their times, so that start-up and the tail do not count.

    python bench/scaleout.py [--events 3000] [--accounts 4] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import yaml  # noqa: E402
from rq import Queue, Worker  # noqa: E402
from rq.registry import StartedJobRegistry  # noqa: E402

from bench.service import ALL_DAY, WORKER, clean_up, post_all, status_bodies, stop, wait_http  # noqa: E402
from jobs import account_health, queues  # noqa: E402
from reglament import config, keys  # noqa: E402
from shell.redis_server import RedisServer, free_port  # noqa: E402

TOKEN = "bench-scaleout-token"


def drained(r: redis.Redis, accounts: list) -> bool:
    """Every stored delivery dispatched and every job done (accounts: reglament.config.Account)."""
    for account in (a.id for a in accounts):
        last = r.xinfo_stream(keys.inbox(account))["last-generated-id"]
        for group in r.xinfo_groups(keys.inbox(account)):
            if group["pending"] or group["last-delivered-id"] != last:
                return False
    if any(Queue(q, connection=r).count or StartedJobRegistry(q, connection=r).count for q in queues.QUEUES):
        return False
    return all(h.in_flight == 0 and h.waiting == 0 and h.scheduled == 0 for h in account_health.health(r, accounts))


def handled_times(logs: list[Path]) -> list[float]:
    times = []
    for path in logs:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if '"event handled"' in line:
                ts = json.loads(line)["ts"]
                times.append(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp())
    return sorted(times)


def one_round(tmp: Path, workers: int, args, env: dict) -> dict:
    redis_server = RedisServer(tmp / f"redis-{workers}", fsync="everysec").start()
    r = redis.Redis.from_url(redis_server.url)
    procs: list[subprocess.Popen] = []
    try:
        amo_port = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "shell.cli", "sandbox", "--port", str(amo_port), "--token", TOKEN,
             "--rate-limit", "0", "--generate", str(args.events)],
            env=env, stdout=open(tmp / f"sandbox-{workers}.log", "w"), stderr=subprocess.STDOUT))
        amo_url = f"http://127.0.0.1:{amo_port}"
        port = free_port()
        accounts = [f"acc{k}" for k in range(args.accounts)]
        cfg = tmp / f"config-{workers}.yaml"
        cfg.write_text(yaml.safe_dump({
            "public_url": f"http://127.0.0.1:{port}", "redis_url": redis_server.url, "log_format": "json",
            "accounts": [{"id": a, "webhook_secret": f"{a}-bench-scaleout-secret",
                          "amocrm": {"base_url": amo_url, "long_lived_token": TOKEN, "rate_limit": 10_000},
                          "working_hours": ALL_DAY, "holidays_country": None} for a in accounts]}), encoding="utf-8")
        loaded = config.load(str(cfg)).accounts
        procs.append(subprocess.Popen([sys.executable, "-m", "shell.cli", "web", "--config", str(cfg),
                                       "--port", str(port), "--workers", "2"],
                                      env=env, stderr=open(tmp / f"web-{workers}.log", "w")))
        wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_http(f"{amo_url}/_sandbox/clock")
        bodies = status_bodies(redis_server.url, amo_url, TOKEN, args.events, 10_000)
        posts = [(f"http://127.0.0.1:{port}/hooks/amocrm/{accounts[k % len(accounts)]}-bench-scaleout-secret", b)
                 for k, b in enumerate(bodies)]
        accepted, refused, _, _ = post_all(posts, 8)
        logs = [tmp / f"worker-{workers}-{k}.log" for k in range(workers)]
        started = time.time()
        for log in logs:
            procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(cfg)], env=env, stderr=open(log, "w")))
        deadline = time.monotonic() + args.timeout
        while Worker.count(connection=r) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        while not drained(r, loaded) and time.monotonic() < deadline:
            time.sleep(0.2)
        finished = time.time()
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs[-workers:])
        sandbox_cpu = cpu_seconds(procs[0].pid)
        times = handled_times(logs)
        lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
        calls = len(__import__("requests").get(f"{amo_url}/_sandbox/requests").json())
        return {"workers": workers, "accepted": accepted, "refused": refused, "handled": len(times),
                "rate": (len(times) * 8 // 10) / max(hi - lo, 1e-9), "wall": finished - started,
                "calls_per_event": calls / max(len(times), 1), "redis_cpu": redis_cpu(r),
                "worker_cpu": worker_cpu, "sandbox_cpu": sandbox_cpu}
    finally:
        stop(procs)
        redis_server.stop()


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (Linux /proc: user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--accounts", type=int, default=4)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="reglament-bench-scaleout-"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.events} status "
              f"webhooks over {args.accounts} accounts; amoCRM sandbox without a request limit")
        results = []
        for n in (int(w) for w in args.workers.split(",")):
            res = one_round(tmp, n, args, env)
            results.append(res)
            print(f"{n} worker process(es): {res['handled']}/{res['accepted']} events handled, "
                  f"{res['rate']:.0f} events/s (10th-90th percentile), all done in {res['wall']:.1f} s; "
                  f"{res['calls_per_event']:.2f} API calls per event; CPU: workers {res['worker_cpu']:.1f} s "
                  f"({res['worker_cpu'] * 1000 / max(res['handled'], 1):.1f} ms per event), sandbox "
                  f"{res['sandbox_cpu']:.1f} s, Redis {res['redis_cpu']:.1f} s "
                  f"({res['redis_cpu'] * 1000 / max(res['handled'], 1):.2f} ms per event, webhook intake included); "
                  f"load average {os.getloadavg()[0]:.1f}")
        base = results[0]["rate"]
        print("scale-out: " + ", ".join(f"{r['workers']} worker(s) {r['rate']:.0f} events/s ({r['rate'] / base:.2f}x)"
                                        for r in results))
    finally:
        clean_up(tmp)


if __name__ == "__main__":
    main()
