"""Timers (jobs/timers.py): due to the tenth of a second, once each, never lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import redis as redis_lib
from rq import Queue, SimpleWorker

from jobs import context, queues, timers
from jobs.timers import Pump
from shell.redis_server import RedisServer
from tests.conftest import make_settings

MARK = "tests.jobs_helpers:mark"


def run_timer_jobs(r):
    SimpleWorker([Queue(queues.TIMERS, connection=r)], connection=r).work(burst=True)
    return [m.decode() for m in r.lrange("test:marks", 0, -1)]


def test_a_timer_fires_at_its_moment_not_before_and_once(r, redis_url):
    context.set_settings(make_settings(), r)
    t = 1_900_000_000.25
    timers.schedule(r, "t-1", t, MARK, {"url": redis_url, "name": "one"}, account="acme", kind="test")
    pump = Pump(r)
    assert pump.pump_once(now=t - 0.1) == 0
    assert pump.pump_once(now=t) == 1
    assert pump.pump_once(now=t + 5) == 0       # claimed once
    (job,) = Queue(queues.TIMERS, connection=r).jobs
    assert job.meta == {"account": "acme", "kind": "test"}
    assert run_timer_jobs(r) == ["one"]
    assert timers.pending(r) == [] and r.hlen(timers.PAYLOADS) == 0 and r.zcard(timers.LEASED) == 0


def test_scheduling_again_replaces_and_cancel_drops(r, redis_url):
    timers.schedule(r, "t-1", 100.0, MARK, {"url": redis_url, "name": "first"}, account="acme", kind="test")
    timers.schedule(r, "t-1", 200.0, MARK, {"url": redis_url, "name": "second"}, account="acme", kind="test")
    timers.schedule(r, "t-2", 150.0, MARK, {"url": redis_url, "name": "other"}, account="other", kind="test")
    assert [(t.id, t.at, t.kwargs["name"]) for t in timers.pending(r)] == [("t-2", 150.0, "other"),
                                                                            ("t-1", 200.0, "second")]
    assert [t.id for t in timers.pending(r, account="acme")] == ["t-1"]
    timers.cancel(r, "t-1", "t-2")
    assert timers.pending(r) == [] and Pump(r).pump_once(now=1e10) == 0


def test_a_pump_that_died_holding_timers_loses_none_of_them(r, redis_url):
    context.set_settings(make_settings(), r)
    for n in range(3):
        timers.schedule(r, f"t-{n}", 100.0, MARK, {"url": redis_url, "name": f"n{n}"}, account="acme", kind="test")
    dead = Pump(r)
    # It claimed the timers (the Lua step) and died before enqueueing them.
    assert len(dead._claim(keys=[timers.DUE, timers.LEASED, timers.PAYLOADS], args=[100.0, 100.0 + timers.LEASE, 10])) == 6
    alive = Pump(r)
    assert alive.pump_once(now=101.0) == 0                    # still leased to the dead pump
    assert alive.pump_once(now=100.0 + timers.LEASE + 1) == 3  # the lease lapsed: claimed again
    assert sorted(run_timer_jobs(r)) == ["n0", "n1", "n2"]


def test_a_timer_set_again_while_being_claimed_is_kept(r, redis_url):
    context.set_settings(make_settings(), r)
    timers.schedule(r, "t-1", 100.0, MARK, {"url": redis_url, "name": "old"}, account="acme", kind="test")
    pump = Pump(r)
    pump._claim(keys=[timers.DUE, timers.LEASED, timers.PAYLOADS], args=[100.0, 130.0, 10])
    timers.schedule(r, "t-1", 500.0, MARK, {"url": redis_url, "name": "new"}, account="acme", kind="test")
    pump._release(keys=[timers.DUE, timers.LEASED, timers.PAYLOADS], args=["t-1"])
    (kept,) = timers.pending(r)
    assert (kept.at, kept.kwargs["name"]) == (500.0, "new")


def test_pumps_in_parallel_enqueue_every_timer_exactly_once(r, redis_url):
    context.set_settings(make_settings(), r)
    for n in range(300):
        timers.schedule(r, f"t-{n}", 100.0 + n / 1000, MARK, {"url": redis_url, "name": str(n)},
                        account="acme", kind="test")
    counts = []

    def pump():
        p, total = Pump(r), 0
        for _ in range(20):
            total += p.pump_once(now=101.0)
        counts.append(total)

    threads = [threading.Thread(target=pump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 300
    assert sorted(run_timer_jobs(r), key=int) == [str(n) for n in range(300)]


def test_timers_survive_a_redis_restart(tmp_path):
    server = RedisServer(tmp_path / "redis", fsync="everysec").start()
    try:
        r = redis_lib.Redis.from_url(server.url)
        timers.schedule(r, "t-1", 100.0, MARK, {"url": server.url, "name": "kept"}, account="acme", kind="test")
        port = server.port
        server.stop()
        server = RedisServer(tmp_path / "redis", port=port, fsync="everysec").start()
        r = redis_lib.Redis.from_url(server.url)
        context.set_settings(make_settings(), r)
        assert Pump(r).pump_once(now=101.0) == 1
        assert run_timer_jobs(r) == ["kept"]
    finally:
        server.stop()


def test_the_worker_process_pumps_due_timers_by_itself(r, redis_url):
    """`reglament worker` end to end: its pump thread moves the timer, its RQ worker runs it."""
    timers.schedule(r, "t-1", time.time() + 0.5, MARK, {"url": redis_url, "name": "on time"},
                    account="acme", kind="test")
    script = textwrap.dedent(f"""
        import redis
        from jobs.worker import run
        run(redis.Redis.from_url({redis_url!r}), [])
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, cwd=os.getcwd(),
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not r.llen("test:marks"):
            time.sleep(0.05)
        assert r.lrange("test:marks", 0, -1) == [b"on time"]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(10)


def test_metrics_show_waiting_timers_and_how_late_the_oldest_is(client, r, redis_url):
    assert timers.lag(r) == (0, 0.0)
    now = time.time()
    timers.schedule(r, "t-1", now - 30, MARK, {"url": redis_url, "name": "late"}, account="acme", kind="test")
    timers.schedule(r, "t-2", now + 60, MARK, {"url": redis_url, "name": "later"}, account="acme", kind="test")
    waiting, late = timers.lag(r, now=now)
    assert waiting == 2 and late == 30
    text = client.get("/metrics").get_data(as_text=True)
    assert "reglament_timers_waiting 2.0" in text
    overdue = float(next(line.split()[1] for line in text.splitlines()
                         if line.startswith("reglament_timers_overdue_seconds ")))
    assert 30 <= overdue < 60  # nobody pumps here: the alarm an operator would watch


def test_an_unreadable_timer_is_dropped_and_does_not_block_the_others(r, redis_url, caplog):
    context.set_settings(make_settings(), r)
    timers.schedule(r, "t-good", 100.0, MARK, {"url": redis_url, "name": "good"}, account="acme", kind="test")
    timers.schedule(r, "t-bad", 100.0, MARK, {"url": redis_url, "name": "bad"}, account="acme", kind="test")
    r.hset(timers.PAYLOADS, "t-bad", b"{not json")
    assert Pump(r).pump_once(now=101.0) == 1
    assert run_timer_jobs(r) == ["good"]
    assert "t-bad" in caplog.text and r.zcard(timers.LEASED) == 0 and r.hlen(timers.PAYLOADS) == 0
