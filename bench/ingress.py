"""Webhook ingress throughput and latency, measured against a do-nothing endpoint.

Starts a real redis-server (append-only, fsync always: the production default) and the
Flask app under gunicorn with the same settings `reglament web` uses, plus one extra
do-nothing route. wrk drives both endpoints in the same run with real-format amoCRM
bodies (a new lead id per request, so every request stores a new event), then a
constant 500 requests/s stream measures our p99 latency.

    python bench/ingress.py [--seconds 10] [--workers 4] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reglament.redis_server import RedisServer, free_port  # noqa: E402

SECRET = "bench-secret-0123456789abcdef"
BODY = [  # reference amocrm.md §4.3, status_lead full form; XIDX varies per request
    ("leads[status][0][id]", "XIDX"), ("leads[status][0][name]", "Сделка XIDX"),
    ("leads[status][0][status_id]", "47873533"), ("leads[status][0][old_status_id]", "47888833"),
    ("leads[status][0][price]", "0"), ("leads[status][0][responsible_user_id]", "3493057"),
    ("leads[status][0][last_modified]", "1700000100"), ("leads[status][0][modified_user_id]", "3493057"),
    ("leads[status][0][created_user_id]", "3493057"), ("leads[status][0][date_create]", "1699990000"),
    ("leads[status][0][pipeline_id]", "5389528"), ("leads[status][0][old_pipeline_id]", "5389528"),
    ("leads[status][0][account_id]", "29013640"), ("leads[status][0][created_at]", "1699990000"),
    ("leads[status][0][updated_at]", "1700000100"),
    ("account[subdomain]", "drvorobjev"), ("account[id]", "29013640"),
    ("account[_links][self]", "https://drvorobjev.amocrm.ru"),
]
SERVER = """
import sys
from flask import Flask
from reglament.web import _Gunicorn, app_from_config, gunicorn_options

def load():
    app = app_from_config(sys.argv[1])
    app.add_url_rule("/noop", "noop", lambda: "ok", methods=["POST"])
    return app

_Gunicorn(load, gunicorn_options("127.0.0.1", int(sys.argv[2]), int(sys.argv[3]))).run()
"""
WRK_SCRIPT = """
local template = [[%s]]
local n = 0
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
request = function()
  n = n + 1
  local body = template:gsub("XIDX", tostring(tid * 100000000 + n))
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""


def wrk(url: str, seconds: int, connections: int, script: Path) -> float:
    proc = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"wrk failed: {proc.stdout}{proc.stderr}")
    out = proc.stdout
    errors = [line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    if any("Non-2xx" in e for e in errors):
        raise SystemExit(f"wrk saw failures against {url}:\n{out}")
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))


def constant_rate(url: str, rate: int, seconds: int) -> list[float]:
    """Open-loop load: each request has a scheduled start; latency counts from that start, so a
    slow server is not hidden by a load generator that waits for it (coordinated omission)."""
    latencies: list[float] = []
    lock = threading.Lock()
    threads = 16
    start = time.perf_counter() + 0.2
    total = rate * seconds

    def worker(k: int) -> None:
        session = requests.Session()
        for i in range(k, total, threads):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = urlencode(BODY).replace("XIDX", str(900_000_000 + i))
            session.post(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}).raise_for_status()
            with lock:
                latencies.append(time.perf_counter() - due)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--fsync", default="always", choices=["always", "everysec", "no"],
                    help="Redis appendfsync; always is what `reglament run` uses")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="reglament-bench-"))
    redis_server = RedisServer(tmp / "redis", fsync=args.fsync).start()
    cfg = tmp / "config.yaml"
    cfg.write_text(f"""
redis_url: {redis_server.url}
log_format: text
accounts:
  - id: bench
    amocrm: {{base_url: "https://drvorobjev.amocrm.ru", long_lived_token: "t0ken-for-bench-only"}}
    webhook_secret: {SECRET}
""")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(cfg), str(port), str(args.workers)],
                              env=env, stderr=open(tmp / "server.log", "w"))
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT % urlencode(BODY))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        # Our handler logs one line per request and per event; keep that cost, it is real,
        # but send it to a file rather than a terminal.
        wrk(base + "/noop", 2, args.connections, script)  # warm-up
        noop = wrk(base + "/noop", args.seconds, args.connections, script)
        ours = wrk(base + f"/hooks/amocrm/{SECRET}", args.seconds, args.connections, script)
        latencies = sorted(constant_rate(base + f"/hooks/amocrm/{SECRET}", args.rate, args.seconds))
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        import redis

        stored = redis.Redis.from_url(redis_server.url).xlen("rg:bench:inbox")
        print(f"redis appendfsync {args.fsync}; gunicorn: {args.workers} sync workers; wrk: 2 threads, {args.connections} connections, {args.seconds}s each")
        print(f"do-nothing endpoint: {noop:8.0f} req/s")
        print(f"amoCRM webhook:      {ours:8.0f} req/s   ratio {ours / noop:.2f}  (target >= 0.5)")
        print(f"at {args.rate} req/s constant: p50 {p50:.1f} ms, p99 {p99:.1f} ms  (target p99 <= 10 ms)")
        print(f"deliveries stored in the inbox: {stored}")
    finally:
        server.terminate()
        server.wait(10)
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
