"""WHATSAPP_SLA timers under load: 1,000 concurrent chats, a random half answered in time.

    /work/main/.venv/bin/python bench/sla_timers.py [--chats 1000] [--deadline 5] [--workers 4]
                                                    [--scheduler-interval 1.0]

Real parts: a redis-server (reglament.redis_server.RedisServer), RQ workers (one of them runs
RQ's scheduler, as `reglament worker` does), the real event job (jobs.events.handle_event →
jobs.handlers.calls), the real timer jobs, cancellation and re-checks, violations in Redis.
Stubbed: the amoCRM lookup of a chat's lead and manager (find_client / manager_person — a
dict, no HTTP) and the messenger (alert_person writes the moment it is called into Redis).

Every chat's first client message starts a timer of `--deadline` seconds (a calendar around
the clock; answer_minutes = deadline / 60). Half the chats, chosen at random, get an
answer from a manager 0.5 s … deadline−1 s after the question. Reported: alert lateness
(alert moment − deadline) p50/p99/max, missing alerts (unanswered chats with no alert) and
false alerts (answered chats that alerted; target 0).

RQ's scheduler moves due jobs to their queue every `interval` seconds (1 s by default in RQ
3, with no worker option for it): lateness is at most about that interval plus the queue
wait. `--scheduler-interval` swaps in an RQScheduler with another interval to show the
effect (rq.worker.base.RQScheduler is replaced in the bench's own processes only).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from rq import Queue, SimpleWorker  # noqa: E402

ACCOUNT = "bench"
ALL_DAY = {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def settings(deadline: float):
    from reglament.config import Settings

    return Settings.model_validate({"public_url": "http://127.0.0.1:8000", "accounts": [{
        "id": ACCOUNT, "amocrm": {"base_url": "https://bench.amocrm.ru", "long_lived_token": "bench-token-0000000"},
        "webhook_secret": "bench-webhook-secret-0001", "working_hours": ALL_DAY, "holidays_country": None,
        "rules": {"calls": {"whatsapp_sla": {"answer_minutes": deadline / 60, "escalate_minutes": None}}},
    }]})


class StubMessenger:
    def __init__(self, r: redis.Redis):
        self.r = r

    def alert_person(self, person, subject, text, html=None, *, action_key):
        from connectors.outbox import SendResult

        # HSETNX: a repeated alert of one key keeps its first moment (the messenger sends once).
        self.r.hsetnx("bench:alerts", action_key, repr(time.time()))
        return SendResult("telegram", "stub", provider="stub")

    def is_our_message(self, message_id=None, crm_message_id=None):
        return False


def install_stubs(r: redis.Redis) -> None:
    from jobs.handlers import calls

    calls.messenger_for = lambda account: StubMessenger(r)
    calls.find_client = lambda account, phone, **kw: {"lead_id": int(phone[-6:]), "name": "Клиент",
                                                      "responsible_user_id": 1000 + int(phone[-1])}
    calls.manager_person = lambda account, user_id: {"name": f"Менеджер {user_id}", "id": str(user_id)}


def patch_scheduler_interval(interval: float | None) -> None:
    if interval is None:
        return
    import rq.worker.base
    from rq.scheduler import RQScheduler

    class Scheduler(RQScheduler):
        """RQScheduler polling every `interval` seconds. RQ uses `interval + 60` as a lock TTL in
        a Lua EXPIRE, which needs an integer, so `interval` itself stays 1 and only the sleep
        of the loop (a copy of RQScheduler.work) is shorter."""

        def work(self):
            self._install_signal_handlers()
            self.register_birth()
            while not self._stop_requested:
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
                time.sleep(interval)
            self.stop()

    rq.worker.base.RQScheduler = Scheduler


def worker_main(url: str, deadline: float, with_scheduler: bool, interval: float | None) -> None:
    from jobs import context, queues

    r = redis.Redis.from_url(url)
    context.set_settings(settings(deadline), r)
    install_stubs(r)
    patch_scheduler_interval(interval)
    # SimpleWorker: no fork per job (the production worker forks; here the stubbed jobs take
    # about a millisecond and the fork would be most of the cost).
    worker = SimpleWorker([Queue(n, connection=r) for n in queues.QUEUES], connection=r)
    worker.work(with_scheduler=with_scheduler, logging_level="WARNING")


def chat_event(kind: str, chat: int, message_id: str, at: datetime):
    from reglament.events import Event, event_key

    phone = f"7900{chat:07d}"
    fields = {"message_id": message_id, "date_time": at.isoformat(), "channel_id": "ch-bench", "chat_type": "whatsapp",
              "chat_id": phone, "is_echo": kind == "chat.message_out", "crm_message_id": None, "is_edited": False,
              "is_deleted": False, "contact": {"phone": phone, "name": f"Клиент {chat}"}}
    return Event(account=ACCOUNT, source="wazzup", kind=kind, entity_id=message_id, fields=fields,
                 key=event_key("wazzup", message_id))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=1000)
    ap.add_argument("--deadline", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--scheduler-interval", type=float, default=None,
                    help="RQ scheduler polling interval in seconds (default: RQ's own, 1 s)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from jobs import context, queues
    from jobs.dispatcher import job_data
    from jobs.handlers import calls
    from reglament.redis_server import RedisServer

    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), fsync="no").start()
        try:
            r = redis.Redis.from_url(server.url)
            context.set_settings(settings(args.deadline), r)
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=worker_main, args=(server.url, args.deadline, i == 0, args.scheduler_interval),
                                 daemon=False) for i in range(args.workers)]  # the scheduler forks
            for p in procs:
                p.start()
            time.sleep(1.5)  # workers up, scheduler lock taken
            events_q = Queue(queues.EVENTS, connection=r)
            t0 = datetime.now(timezone.utc)
            chats = {}
            answered = set(rnd.sample(range(args.chats), args.chats // 2))
            ins = []
            for c in range(args.chats):
                at = t0 + timedelta(seconds=rnd.uniform(0, 1.0))  # 1,000 questions within a second
                chats[c] = at
                ins.append(job_data(chat_event("chat.message_in", c, f"in-{c}", at)))
            events_q.enqueue_many(ins)
            answers = sorted((chats[c] + timedelta(seconds=rnd.uniform(0.5, args.deadline - 1.0)), c)
                             for c in answered)
            for when, c in answers:  # managers answer as time goes by
                pause = (when - datetime.now(timezone.utc)).total_seconds()
                if pause > 0:
                    time.sleep(pause)
                events_q.enqueue_many([job_data(chat_event("chat.message_out", c, f"out-{c}", when))])
            end = max(chats.values()) + timedelta(seconds=args.deadline + 6)
            while datetime.now(timezone.utc) < end:
                time.sleep(0.2)
            fired = {k.decode(): float(v) for k, v in r.hgetall("bench:alerts").items()}
            lateness, false_alerts, missing = [], 0, 0
            for c, at in chats.items():
                chat = calls.chat_key({"channel_id": "ch-bench", "chat_id": f"7900{c:07d}"})
                key = f"WHATSAPP_SLA:{calls._ref(chat)}:{calls._ref(f'in-{c}')}:alert"
                hits = [v for k, v in fired.items() if k.startswith(key)]
                if c in answered:
                    false_alerts += bool(hits)
                elif not hits:
                    missing += 1
                else:
                    lateness.append(hits[0] - (at.timestamp() + args.deadline))
            from reglament import violations

            recorded = len(violations.between(r, ACCOUNT, 0, 2e10))
            lateness.sort()
            lateness = lateness or [float("nan")]
            q = statistics.quantiles(lateness, n=100) if len(lateness) > 1 else [0] * 99
            interval = args.scheduler_interval if args.scheduler_interval is not None else "1.0 (RQ default)"
            print(f"chats={args.chats} answered={len(answered)} deadline={args.deadline}s workers={args.workers} "
                  f"scheduler_interval={interval}")
            print(f"alerts={len(lateness)} missing={missing} false_alerts={false_alerts} violations={recorded}")
            print(f"lateness p50={statistics.median(lateness):.3f}s p99={q[98]:.3f}s max={lateness[-1]:.3f}s "
                  f"min={lateness[0]:.3f}s")
            for p in procs:
                p.terminate()
            for p in procs:
                p.join(5)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
