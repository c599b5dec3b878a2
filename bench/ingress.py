"""Webhook ingress throughput and latency, measured against a do-nothing endpoint.

Starts a real redis-server (append-only, fsync everysec: `reglament run`'s default) and the
Flask app under gunicorn with the settings `reglament web` uses, plus one extra
do-nothing route. wrk drives both endpoints with real-format amoCRM bodies (a new lead id
per request, so every request stores a new event). The two endpoints alternate for a few
rounds and the median ratio is reported, so a neighbour's load during one run skews
neither side alone. Then wrk paces 500 requests/s to measure our latency percentiles.

    python bench/ingress.py [--seconds 5] [--rounds 3] [--workers 4] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shell.redis_server import RedisServer, free_port  # noqa: E402

SECRET = "bench-secret-0123456789abcdef"
BODY = [  # reference amocrm.md §4.3, status_lead full form; XIDX varies per request
    ("leads[status][0][id]", "XIDX"), ("leads[status][0][name]", "Сделка XIDX"),
    ("leads[status][0][status_id]", "47873533"), ("leads[status][0][old_status_id]", "47888833"),
    ("leads[status][0][price]", "0"), ("leads[status][0][responsible_id]", "3493057"),
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
from shell.web import _Gunicorn, app_from_config, gunicorn_options

def load():
    app = app_from_config(sys.argv[1])
    app.add_url_rule("/noop", "noop", lambda: "ok", methods=["POST"])
    return app

_Gunicorn(load, gunicorn_options("127.0.0.1", int(sys.argv[2]), int(sys.argv[3]))).run()
"""
WRK_SCRIPT = """
local template = [[BODY]]
local n = 0
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
delay = function() return DELAY_MS end
request = function()
  n = n + 1
  local body = template:gsub("XIDX", tostring(tid * 100000000 + n))
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
"""


def wrk_script(path: Path, delay_ms: int) -> Path:
    path.write_text(WRK_SCRIPT.replace("BODY", urlencode(BODY)).replace("DELAY_MS", str(delay_ms)))
    return path


def wrk(url: str, seconds: int, connections: int, script: Path, latency: bool = False) -> str:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script)] + (["--latency"] if latency else [])
    proc = subprocess.run(args + [url], capture_output=True, text=True)
    if proc.returncode or "Non-2xx" in proc.stdout:
        raise SystemExit(f"wrk failed against {url}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def requests_per_second(out: str) -> float:
    return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))


def percentile_ms(out: str, p: str) -> float:
    """wrk --latency prints lines like '     99%    3.21ms'."""
    value = next(line.split()[1] for line in out.splitlines() if line.strip().startswith(p + "%"))
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    raise ValueError(value)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--fsync", default="everysec", choices=["always", "everysec", "no"],
                    help="Redis appendfsync (settings.redis_fsync; everysec is the default)")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="reglament-bench-"))
    redis_server = RedisServer(tmp / "redis", fsync=args.fsync).start()
    cfg = tmp / "config.yaml"
    cfg.write_text(f"""
redis_url: {redis_server.url}
accounts:
  - id: bench
    amocrm: {{base_url: "https://drvorobjev.amocrm.ru", long_lived_token: "t0ken-for-bench-only"}}
    webhook_secret: {SECRET}
""")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Our handler logs one line per event; that cost is real and kept, but goes to a file.
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(cfg), str(port), str(args.workers)],
                              env=env, stderr=open(tmp / "server.log", "w"))
    base = f"http://127.0.0.1:{port}"
    hook = f"{base}/hooks/amocrm/{SECRET}"
    # wrk has no fixed rate: each of 10 connections pauses between requests, and the pause
    # leaves room for ~2 ms of answer time, so 10 connections make about `rate` per second.
    flat, paced = wrk_script(tmp / "flat.lua", 0), wrk_script(tmp / "paced.lua", max(1, round(10_000 / args.rate) - 2))
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        wrk(base + "/noop", 2, args.connections, flat)  # warm-up
        noops, ours = [], []
        for _ in range(args.rounds):
            noops.append(requests_per_second(wrk(base + "/noop", args.seconds, args.connections, flat)))
            ours.append(requests_per_second(wrk(hook, args.seconds, args.connections, flat)))
        ratio = statistics.median(o / n for o, n in zip(ours, noops))
        out = wrk(hook, args.seconds * 2, 10, paced, latency=True)
        stored = redis.Redis.from_url(redis_server.url).xlen("rg:bench:inbox")
        print(f"redis appendfsync {args.fsync}; gunicorn {args.workers} sync workers; "
              f"wrk 2 threads, {args.connections} connections, {args.seconds}s per run")
        print(f"do-nothing endpoint: {' '.join(f'{x:6.0f}' for x in noops)} req/s")
        print(f"amoCRM webhook:      {' '.join(f'{x:6.0f}' for x in ours)} req/s")
        print(f"throughput ratio, median of {args.rounds} alternating rounds: {ratio:.2f}  (target >= 0.5)")
        print(f"paced at {requests_per_second(out):.0f} req/s (asked {args.rate}): p50 {percentile_ms(out, '50'):.2f} ms, "
              f"p99 {percentile_ms(out, '99'):.2f} ms  (target p99 <= 10 ms)")
        print(f"deliveries stored in the inbox: {stored}")
    finally:
        server.terminate()
        server.wait(10)
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
