"""The sweep over a big account: API calls used against the fewest possible, and wall time.

A sandbox account with the demo leads plus N generated ones (10% of the active ones
without a task), amoCRM's 7 requests/s limit on both sides, a real redis-server. The
fewest calls any sweep could make: one page of 250 for the active leads and for the open
tasks, and one request per 50 tasks created and per 50 notes.

    python bench/sweep.py [--leads 5000] [--rate-limit 7]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from sandbox.amocrm import SandboxAccount, SandboxServer  # noqa: E402
from jobs import context, sweep  # noqa: E402
from reglament.config import Settings  # noqa: E402
from shell.redis_server import RedisServer  # noqa: E402

TOKEN = "bench-sweep-token"
TERMINAL = {"Отказ", "Расторгнут договор", "Завершил"}


def ceil(a: int, b: int) -> int:
    return -(-a // b)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leads", type=int, default=5000)
    ap.add_argument("--rate-limit", type=float, default=7.0, help="requests/s, sandbox and client alike")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="reglament-bench-sweep-"))
    redis_server = RedisServer(tmp / "redis", fsync="no").start()
    r = redis.Redis.from_url(redis_server.url)
    account = SandboxAccount()
    account.generate_leads(args.leads, without_task_share=0.1, seed_value=42)
    try:
        with SandboxServer(account, token=TOKEN, rate_limit=args.rate_limit) as amo:
            settings = Settings.model_validate({"redis_url": redis_server.url, "accounts": [{
                "id": "bench", "webhook_secret": "bench-sweep-secret-0123456",
                "amocrm": {"base_url": amo.url, "long_lived_token": TOKEN, "rate_limit": args.rate_limit},
                "working_hours": {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}}]})
            context.set_settings(settings, r)
            executor, crm = context.executor_for("bench"), context.crm_for("bench")
            with account.lock:
                pipeline = account.main_pipeline()
                names = {s.id: s.name for s in pipeline.statuses}
                active = [lead for lead in account.leads.values()
                          if lead.status_id not in (142, 143) and names[lead.status_id] not in TERMINAL]
                open_tasks = sum(1 for t in account.tasks.values() if not t.is_completed and t.entity_type == "leads")
                without = sum(1 for lead in active if not account.tasks_of("leads", lead.id))

            started = time.perf_counter()
            result = sweep.run(executor, crm)
            wall = time.perf_counter() - started
            log = amo.sandbox.requests.since(0)

            fixed = len(result.fixed)
            tasks = sum(1 for p in result.fixed for a in p.actions if type(a).__name__ == "CreateTask")
            notes = sum(1 for p in result.fixed for a in p.actions if type(a).__name__ == "AddNote")
            vocabulary = [c for c in log if c["path"] in ("/api/v4/account", "/api/v4/users", "/api/v4/leads/pipelines",
                                                          "/api/v4/leads/loss_reasons", "/api/v4/leads/custom_fields")]
            throttled = [c for c in log if c["status"] == 429]
            used = len(log) - len(throttled)
            minimum = ceil(len(active), 250) + ceil(open_tasks, 250) + ceil(tasks, 50) + ceil(notes, 50)
            sweep_calls = used - len(vocabulary)

            print(f"account: {len(account.leads)} leads, {len(active)} active, {without} active without a task, "
                  f"{open_tasks} open tasks; {args.rate_limit:g} req/s")
            print(f"sweep: checked {result.checked}, fixed {fixed} leads ({tasks} tasks, {notes} notes), "
                  f"skipped {len(result.skipped)}")
            print(f"API calls: {sweep_calls} for the sweep + {len(vocabulary)} to read the account's names "
                  f"(cached {context.crm_for('bench').names_ttl:g}s); answered 429: {len(throttled)}")
            print(f"fewest possible: {minimum} = {ceil(len(active), 250)} lead pages + {ceil(open_tasks, 250)} "
                  f"task pages + {ceil(tasks, 50)} task batches + {ceil(notes, 50)} note batches")
            print(f"ratio: {sweep_calls / minimum:.3f} without the names, {used / minimum:.3f} with them "
                  f"(target <= 1.1)")
            print(f"wall time: {wall:.1f} s")
            again = sweep.run(executor, crm)
            print(f"a second sweep right after: fixed {len(again.fixed)} in {again.seconds:.1f} s")
    finally:
        redis_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
