"""Never lose: a dispatcher or worker that dies, and a Redis restart, lose no event."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import redis as redis_lib
from rq import Queue, Retry
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from app import create_app
from jobs.dispatcher import GROUP, Dispatcher
from jobs.queues import EVENTS
from tests.jobs_helpers import queued_events
from reglament import keys
from shell.redis_server import RedisServer
from tests.conftest import SECRET, make_settings
from tests.fixtures import load

FORM = "application/x-www-form-urlencoded"


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_entries_read_by_a_dead_dispatcher_are_reclaimed_once(client, r):
    client.post(f"/hooks/amocrm/{SECRET}", data=load.amocrm("multi_section"), content_type=FORM)
    dead = Dispatcher(r, ["acme"], consumer="dead")
    dead.ensure_groups()
    # It read the entry and died before enqueueing or acknowledging.
    assert r.xreadgroup(GROUP, "dead", {keys.inbox("acme"): ">"}, count=10)
    assert Queue(EVENTS, connection=r).count == 0

    alive = Dispatcher(r, ["acme"], consumer="alive", reclaim_idle_ms=0)
    assert alive.reclaim() == 1
    assert alive.reclaim() == 0  # acknowledged: never dispatched twice
    assert len(queued_events(r)) == 4
    assert r.xpending(keys.inbox("acme"), GROUP)["pending"] == 0


def test_deliveries_stored_before_any_dispatcher_existed_are_dispatched(client, r):
    client.post(f"/hooks/amocrm/{SECRET}", data=load.amocrm("lead_added"), content_type=FORM)
    d = Dispatcher(r, ["acme"])
    d.ensure_groups()
    assert d.run_once(block_ms=10) == 1
    assert len(queued_events(r)) == 1


def test_a_job_whose_worker_is_killed_runs_again(r, redis_url, tmp_path):
    q = Queue(EVENTS, connection=r)
    job = q.enqueue("tests.jobs_helpers.slow_marker", str(tmp_path), retry=Retry(max=3, interval=[5]),
                    job_timeout=120)
    script = textwrap.dedent(f"""
        import redis
        from jobs.worker import run
        run(redis.Redis.from_url({redis_url!r}), [])
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                              cwd=os.getcwd(), stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (tmp_path / "started-0").exists()), "job started"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its work horse die mid-job
        worker.wait()
    assert not (tmp_path / "done-0").exists()
    assert job.id in StartedJobRegistry(EVENTS, connection=r).get_job_ids()

    # What a surviving worker's maintenance does once the dead one's heartbeat has lapsed
    # (time moved forward here instead of waited for):
    StartedJobRegistry(EVENTS, connection=r).cleanup(timestamp=time.time() + 3600)
    scheduled = ScheduledJobRegistry(EVENTS, connection=r)
    assert job.id in scheduled.get_job_ids(), "retried after the retry interval"
    for job_id in scheduled.get_jobs_to_schedule(time.time() + 3600):
        scheduled.remove(job_id)
        q.enqueue_job(q.fetch_job(job_id))
    from rq import SimpleWorker

    SimpleWorker([q], connection=r).work(burst=True)
    assert (tmp_path / "done-1").exists()
    assert q.fetch_job(job.id).get_status() == "finished"


@pytest.mark.parametrize("fsync, crash", [("everysec", False), ("always", True)])
def test_redis_restart_keeps_accepted_events_and_dedupe(tmp_path, fsync, crash):
    """everysec (the default) survives a restart; always survives even a crash of Redis."""
    server = RedisServer(tmp_path / "redis", fsync=fsync).start()
    try:
        r = redis_lib.Redis.from_url(server.url)
        client = create_app(make_settings(), r).test_client()
        assert client.post(f"/hooks/amocrm/{SECRET}", data=load.amocrm("lead_added"), content_type=FORM).json["accepted"] == 1
        port = server.port
        if crash:
            server.process.send_signal(signal.SIGKILL)  # appendfsync always: the write is on disk already
            server.process.wait()
        else:
            server.stop()  # SIGTERM: Redis flushes its append-only file
        server = RedisServer(tmp_path / "redis", port=port, fsync=fsync).start()
        r = redis_lib.Redis.from_url(server.url)
        client = create_app(make_settings(), r).test_client()
        assert client.post(f"/hooks/amocrm/{SECRET}", data=load.amocrm("lead_added"), content_type=FORM).json["duplicates"] == 1
        d = Dispatcher(r, ["acme"])
        d.ensure_groups()
        assert d.run_once(block_ms=10) == 2  # both deliveries are there
        assert len(queued_events(r)) == 1  # and still one event to handle
    finally:
        server.stop()


def test_the_hot_path_connection_recovers_from_a_script_flush_and_a_dropped_connection(client, r):
    def post():
        return client.post(f"/hooks/amocrm/{SECRET}", data=load.amocrm("lead_added"), content_type=FORM)

    assert post().status_code == 200
    r.script_flush()  # as after a Redis restart: the script must be loaded again
    assert post().json["duplicates"] == 1
    r.client_kill_filter(_type="normal", skipme=True)  # the receiver's own connection is cut
    first = post()
    assert first.status_code in (200, 503)  # 503 tells the sender to retry; nothing half-written
    assert post().status_code == 200
    assert r.xlen(keys.inbox("acme")) == (4 if first.status_code == 200 else 3)
