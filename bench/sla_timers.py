"""WHATSAPP_SLA timers under load: 1,000 concurrent chats, a random half answered in time.

    /work/main/.venv/bin/python bench/sla_timers.py [--chats 1000] [--deadline 5] [--workers 4]

Real parts: a redis-server (shell.redis_server.RedisServer); each delivery stored by the
webhook path's own Lua step (app.ingress.Ingress.accept) as a Wazzup webhook body of the
reference's format; worker processes running `reglament worker`'s code (jobs.worker.run:
the dispatcher, the timer pump, RQ), with the real event jobs (jobs.handlers.calls), the
real timers (jobs/timers.py), cancellation and re-checks, and violations in Redis.
Stubbed: the amoCRM lookup of a chat's lead and manager (find_client / manager_person: a
dict, no HTTP) and the messenger (alert_person writes the moment it is called into Redis).
The workers run jobs in process (RQ's SimpleWorker), as production does; `--fork` runs
RQ's forking Worker (a process per job) to compare.

Every chat's first client message starts a timer of `--deadline` seconds (a calendar around
the clock; answer_minutes = deadline / 60). Half the chats, chosen at random, get an
answer from a manager 0.5 s … deadline−1 s after the question. Reported: alert lateness
(alert moment − deadline) p50/p99/max, missing alerts (unanswered chats with no alert) and
false alerts (answered chats that alerted; target 0).
"""

from __future__ import annotations

import argparse
import json
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
                                                      "responsible_id": 1000 + int(phone[-1])}
    real_out = calls.message_out

    def message_out(account, f, now=None):  # how long after its message an answer is handled
        r.rpush("bench:answer_lag", time.time() - datetime.fromisoformat(f["date_time"].replace("Z", "+00:00")).timestamp())
        return real_out(account, f, now)

    calls.message_out = message_out
    calls.manager_person = lambda account, user_id: {"name": f"Менеджер {user_id}", "id": str(user_id)}


def worker_main(url: str, deadline: float, fork: bool) -> None:
    from rq import SimpleWorker, Worker

    from jobs import context, worker

    r = redis.Redis.from_url(url)
    context.set_settings(settings(deadline), r)
    install_stubs(r)
    worker.run(r, [ACCOUNT], worker_class=Worker if fork else SimpleWorker)


def wazzup_body(chat: int, message_id: str, at: datetime, echo: bool) -> bytes:
    """One message in a Wazzup webhook, as the reference shows it (messages[])."""
    phone = f"7900{chat:07d}"
    return json.dumps({"messages": [{
        "messageId": message_id, "dateTime": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "channelId": "ch-bench", "chatType": "whatsapp", "chatId": phone, "type": "text", "isEcho": echo,
        "status": "sent" if echo else "inbound", "text": "Здравствуйте" if echo else "Сколько стоит?",
        "contact": {"name": f"Клиент {chat}", "phone": phone}, "authorName": "Менеджер" if echo else None,
        "sentFromApp": echo, "isEdited": False, "isDeleted": False}]}, ensure_ascii=False).encode()


def deliver(ingress, bodies: list[bytes]) -> None:
    """What the webhook endpoint does with each body after authenticating it."""
    from app.parsers import parse

    for body in bodies:
        parsed = parse("wazzup", body, ACCOUNT)
        ingress.accept(ACCOUNT, "wazzup", body, "application/json", parsed.events, parsed.ignored)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chats", type=int, default=1000)
    ap.add_argument("--deadline", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fork", action="store_true", help="RQ's forking Worker, as in production")
    args = ap.parse_args()

    from app.ingress import Ingress
    from jobs import context
    from jobs.handlers import calls
    from shell.redis_server import RedisServer

    rnd = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), fsync="no").start()
        try:
            r = redis.Redis.from_url(server.url)
            context.set_settings(settings(args.deadline), r)
            ingress = Ingress(r, dedupe_ttl=3600, retention_hours=1, rejected_keep=100, rejected_ttl_hours=1)
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=worker_main, args=(server.url, args.deadline, args.fork)) for _ in range(args.workers)]
            for p in procs:
                p.start()
            time.sleep(2)  # workers up, their dispatchers' consumer group made
            t0 = datetime.now(timezone.utc) + timedelta(seconds=0.2)
            answered = set(rnd.sample(range(args.chats), args.chats // 2))
            chats = {c: t0 + timedelta(seconds=rnd.uniform(0, 1.0)) for c in range(args.chats)}  # within a second
            answers = {c: chats[c] + timedelta(seconds=rnd.uniform(0.5, args.deadline - 1.0)) for c in answered}
            timeline = sorted([(at, wazzup_body(c, f"in-{c}", at, echo=False)) for c, at in chats.items()]
                              + [(at, wazzup_body(c, f"out-{c}", at, echo=True)) for c, at in answers.items()])
            lags = []  # how late this script delivered each webhook (its lateness is in the alerts')
            for at, body in timeline:  # each webhook comes when its message is written
                pause = (at - datetime.now(timezone.utc)).total_seconds()
                if pause > 0:
                    time.sleep(pause)
                lags.append(max(0.0, -pause))
                deliver(ingress, [body])
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
            from rq import Queue

            from jobs import queues
            from reglament import violations

            ran = {n: Queue(n, connection=r).finished_job_registry.count for n in queues.QUEUES}
            print("RQ jobs run: " + ", ".join(f"{n}={c}" for n, c in ran.items()))
            failed = [j for n in queues.QUEUES for j in Queue(n, connection=r).failed_job_registry.get_job_ids()]
            if failed:
                job = Queue(queues.EVENTS, connection=r).fetch_job(failed[0])
                print(f"{len(failed)} failed jobs, the first: {job and job.exc_info}")

            recorded = len(violations.between(r, ACCOUNT, 0, 2e10))
            answer_lag = sorted(float(x) for x in r.lrange("bench:answer_lag", 0, -1))
            print(f"answers handled after their message: p50={statistics.median(answer_lag):.3f}s "
                  f"max={answer_lag[-1]:.3f}s")
            lateness.sort()
            lateness = lateness or [float("nan")]
            q = statistics.quantiles(lateness, n=100) if len(lateness) > 1 else [0] * 99
            print(f"chats={args.chats} answered={len(answered)} deadline={args.deadline}s workers={args.workers} "
                  f"worker={'Worker (fork per job)' if args.fork else 'SimpleWorker'} delivery lag p50={statistics.median(lags):.3f}s max={max(lags):.3f}s")
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
