"""From a manager's status change to its task in amoCRM: latency and API calls per change.

Runs the whole path: the amoCRM sandbox (7 requests/s, as amoCRM) sends its real
webhooks to `reglament web` (gunicorn, a subprocess), the worker process (a subprocess
started the way the worker must start: jobs.context.set_settings) runs the rules, and the
task lands in the sandbox. Status changes are made in the sandbox's own page (as a
manager would, outside the API limit) at a steady rate, cycling through the statuses of
the STATUS_TASKS table. The clock for each change stops when the sandbox stores its task.

    python bench/latency.py [--changes 200] [--rate 2]
"""

from __future__ import annotations

import argparse
import re
import statistics
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

from bench.service import ALL_DAY, clean_up, start_service, stop  # noqa: E402
from connectors.amocrm import AmoCRMClient  # noqa: E402
from connectors.amocrm.webhooks import register  # noqa: E402
from reglament.config import AmoCRMSettings  # noqa: E402
from sandbox.amocrm import SandboxAccount, SandboxServer  # noqa: E402
from shell.redis_server import RedisServer, free_port  # noqa: E402

ID = re.compile(r"/\d+")
TOKEN = "bench-latency-token"
SECRET = "bench-latency-secret-0123456"
STATUSES = ["Недозвон", "Просил перезвонить", "Записался на пробное", "Не пришел на пробное", "Пришел на пробное",
            "Принимает решение", "Клиент"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--rate", type=float, default=2.0, help="status changes per second")
    ap.add_argument("--rate-limit", type=float, default=7.0, help="amoCRM requests/s, sandbox and client alike")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="reglament-bench-latency-"))
    redis_server = RedisServer(tmp / "redis", fsync="everysec").start()
    account = SandboxAccount()
    amo = SandboxServer(account, token=TOKEN, rate_limit=args.rate_limit).start()
    port = free_port()
    procs: list = []
    try:
        procs += start_service(tmp, port, {
            "public_url": f"http://127.0.0.1:{port}", "redis_url": redis_server.url, "log_format": "text",
            "accounts": [{"id": "bench", "webhook_secret": SECRET,
                          "amocrm": {"base_url": amo.url, "long_lived_token": TOKEN, "rate_limit": args.rate_limit},
                          "working_hours": ALL_DAY, "holidays_country": None}]})
        # The leads, made before our webhook is subscribed: "Новая заявка", no tasks, the fields the table reads.
        now = account.now()
        fields = {f.name: f.id for f in account.fields["leads"].values()}
        values = [{"field_id": fields["Дата перезвона"], "values": [{"value": now + 86400}]},
                  {"field_id": fields["Дата пробного"], "values": [{"value": now + 3 * 86400}]},
                  {"field_id": fields["Окончание абонемента"], "values": [{"value": now + 30 * 86400}]}]
        made = account.add_leads([{"name": f"Замер {i}", "responsible_id": 9100001 + i % 3,
                                   "custom_fields_values": values} for i in range(args.changes)],
                                 account.info.current_user_id)
        lead_ids = [lead.id for lead, _ in made]
        pipeline = account.main_pipeline()
        status_ids = {s.name: s.id for s in pipeline.statuses}

        client = AmoCRMClient("bench-setup", AmoCRMSettings(base_url=amo.url, long_lived_token=TOKEN),
                              redis.Redis.from_url(redis_server.url))
        register(client, f"http://127.0.0.1:{port}/hooks/amocrm/{SECRET}")
        time.sleep(1.0)  # let the worker's dispatcher start reading

        changed: dict[int, float] = {}
        done: dict[int, float] = {}
        lock = threading.Lock()
        wanted = set(lead_ids)

        def on_change(changes) -> None:
            at = time.perf_counter()
            with lock:
                for c in changes:
                    if c.setting == "add_task" and c.entity.entity_id in wanted and c.entity.entity_id not in done:
                        done[c.entity.entity_id] = at

        account.add_listener(on_change)
        first_request = len(amo.sandbox.requests.since(0))
        ui = requests.Session()
        start = time.perf_counter() + 0.2
        for i, lead_id in enumerate(lead_ids):
            due = start + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with lock:
                changed[lead_id] = time.perf_counter()
            ui.post(f"{amo.url}/ui/leads/{lead_id}/status",
                    data={"status_id": status_ids[STATUSES[i % len(STATUSES)]]}, allow_redirects=False)
        deadline = time.monotonic() + 30
        while len(done) < len(lead_ids) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # let the webhooks our own writes cause be handled too, and counted
        log = amo.sandbox.requests.since(0)[first_request:]

        latencies = sorted(done[i] - changed[i] for i in lead_ids if i in done)
        missing = len(lead_ids) - len(latencies)
        throttled = sum(1 for c in log if c["status"] == 429)
        used = len(log) - throttled
        by_kind = Counter(c["method"] + " " + ID.sub("/{id}", c["path"].removeprefix("/api/v4")) for c in log)
        with account.lock:
            tasks_per_lead = [len(account.tasks_of("leads", i)) for i in lead_ids]
        print(f"{len(lead_ids)} status changes at {args.rate:g}/s through web + worker; amoCRM limit "
              f"{args.rate_limit:g} req/s")
        print(f"change -> task in amoCRM: p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p99 {latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000:.0f} ms, "
              f"max {latencies[-1] * 1000:.0f} ms (target p99 <= 2000 ms); no task: {missing}")
        print(f"API calls: {used} = {used / len(lead_ids):.2f} per change (target <= 4); answered 429: {throttled}")
        print("  by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
        print(f"leads with exactly one open task: {sum(1 for n in tasks_per_lead if n == 1)}/{len(lead_ids)}")
    finally:
        stop(procs)
        amo.stop()
        redis_server.stop()
        clean_up(tmp)


if __name__ == "__main__":
    main()
