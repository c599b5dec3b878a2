"""What the service benchmarks share: the worker process as `reglament worker` starts it,
waiting for a URL, real-format amoCRM status webhooks for a sandbox's leads, and posting
many of them from several threads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import redis
import requests
import yaml

from connectors.amocrm import AmoCRMClient
from reglament.config import AmoCRMSettings

WORKER = """
import sys
from jobs import context
from jobs.worker import run
from reglament import runtime

settings, r = runtime.start(sys.argv[1])
context.set_settings(settings, r)   # what the worker must do at start
run(r, [a.id for a in settings.accounts])
"""
ALL_DAY = {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def new_leads(account, n: int, name: str) -> list[int]:
    """n leads in the amoCRM sandbox's «Новая заявка», with the fields the status table reads."""
    now = account.now()
    fields = {f.name: f.id for f in account.fields["leads"].values()}
    values = [{"field_id": fields["Дата перезвона"], "values": [{"value": now + 86400}]},
              {"field_id": fields["Дата пробного"], "values": [{"value": now + 3 * 86400}]},
              {"field_id": fields["Окончание абонемента"], "values": [{"value": now + 30 * 86400}]}]
    made = account.add_leads([{"name": f"{name} {i}", "responsible_user_id": 9100001 + i % 3,
                               "custom_fields_values": values} for i in range(n)], account.info.current_user_id)
    return [lead.id for lead, _ in made]


def start_service(tmp: Path, port: int, settings: dict) -> list[subprocess.Popen]:
    """`reglament web` on `port` (2 gunicorn workers) and the worker process, with `settings` as
    their config file in `tmp` (their logs beside it), once the web answers /healthz."""
    cfg = tmp / "config.yaml"
    cfg.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    procs = [subprocess.Popen([sys.executable, "-m", "shell.cli", "web", "--config", str(cfg), "--port", str(port),
                               "--workers", "2"], env=env, stderr=open(tmp / "web.log", "w")),
             subprocess.Popen([sys.executable, "-c", WORKER, str(cfg)], env=env, stderr=open(tmp / "worker.log", "w"))]
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
    except BaseException:
        stop(procs)
        raise
    return procs


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def status_bodies(redis_url: str, sandbox_url: str, token: str, n: int, rate_limit: float) -> list[str]:
    """Real-format status webhooks (`leads[status][0][...]`, reference §4.3) moving n leads of
    the sandbox to their next status; the leads are read once through its API, under a budget
    key of their own (not the service's)."""
    client = AmoCRMClient("bench-setup", AmoCRMSettings(base_url=sandbox_url, long_lived_token=token, rate_limit=rate_limit),
                          redis.Redis.from_url(redis_url))
    leads = client.leads()[:n]
    statuses = [s["id"] for p in client.pipelines() for s in (p.get("_embedded") or {}).get("statuses", [])
                if s["id"] not in (142, 143)]
    info = client.account()
    return [urlencode([("leads[status][0][id]", lead["id"]),
                       ("leads[status][0][status_id]", statuses[(k + 1) % len(statuses)]),
                       ("leads[status][0][pipeline_id]", lead["pipeline_id"]),
                       ("leads[status][0][old_status_id]", lead["status_id"]),
                       ("leads[status][0][old_pipeline_id]", lead["pipeline_id"]),
                       ("account[id]", info.get("id", 1)), ("account[subdomain]", info.get("subdomain", "bench"))])
            for k, lead in enumerate(leads)]


def post_all(posts: list[tuple[str, str]], threads: int) -> tuple[int, int, float, float]:
    """POST each (url, form body) from `threads` threads: (accepted, refused, start, end)."""
    sent = [0, 0]
    lock = threading.Lock()
    todo = iter(posts)

    def poster() -> None:
        s = requests.Session()
        while True:
            with lock:
                item = next(todo, None)
            if item is None:
                return
            ok = s.post(item[0], data=item[1], headers={"Content-Type": "application/x-www-form-urlencoded"}).ok
            with lock:
                sent[0 if ok else 1] += 1

    started = time.time()
    workers = [threading.Thread(target=poster) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sent[0], sent[1], started, time.time()


def stop(procs: list[subprocess.Popen]) -> None:
    """Terminate the processes a bench started, killing what does not end within 15 s."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def clean_up(tmp: Path) -> None:
    """Remove the bench's folder, unless BENCH_KEEP asks to keep its logs."""
    if os.environ.get("BENCH_KEEP"):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
