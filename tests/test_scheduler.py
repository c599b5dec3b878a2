"""The periodic jobs (sweeps, digests, the Bitrix24 catch-up) under RQ's cron scheduler: a
failed run is retried by RQ soon, a bounded number of times, before the next run is due;
a retry that meets another run of the same job skips."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from jobs import catchup, context, queues, scheduler, sweep
from jobs.handlers import discipline
from jobs.worker import rq_connection
from reglament import keys
from reglament.lease import Lease
from tests import jobs_helpers
from tests.conftest import B24_ACCOUNT, make_settings


@pytest.fixture
def periodic():
    before = list(scheduler.PERIODIC)
    yield scheduler.PERIODIC
    scheduler.PERIODIC[:] = before


def _work(r) -> None:
    rq_r = rq_connection(r)
    SimpleWorker([Queue(queues.SCHEDULED, connection=rq_r)], connection=rq_r).work(burst=True, with_scheduler=True)


def _retry_now(q: Queue, failed_after: float) -> float:
    """The one scheduled retry made due now (RQ's scheduler then enqueues it); how many
    seconds after `failed_after` (a moment before the run failed) it had been scheduled."""
    registry = ScheduledJobRegistry(queue=q)
    (job_id,) = registry.get_job_ids()
    job = Job.fetch(job_id, connection=q.connection)
    delay = registry.get_scheduled_time(job).timestamp() - failed_after
    registry.schedule(job, datetime.now(timezone.utc))
    return delay


def test_the_retry_policy_ends_before_the_next_run():
    assert scheduler.retry_for(600).intervals == [10, 30, 90]   # the sweeps
    assert scheduler.retry_for(60).intervals == [10, 30]        # the catch-up, the shift start
    assert scheduler.retry_for(30).intervals == [10]
    assert scheduler.retry_for(10) is None                      # the next run is as soon


def test_a_failed_start_up_run_is_retried_within_seconds(r, redis_url, periodic):
    periodic[:] = [(jobs_helpers.fails_at_first, 600, {"url": redis_url, "failures": 1})]
    cron = scheduler.scheduler(r)
    assert len(cron.enqueue_jobs()) == 1   # an interval job runs at once: the start-up run
    cron.save()                            # its options, the retry with them, saved as JSON
    started = time.time()
    _work(r)
    assert r.get("test:runs") == b"1"
    q = Queue(queues.SCHEDULED, connection=r)
    assert 9 <= _retry_now(q, started) < 20  # RQ scheduled it BACKOFF[0] later (whole seconds), not 600 s
    _work(r)
    assert r.get("test:runs") == b"2"
    assert q.count == 0 and ScheduledJobRegistry(queue=q).count == 0 and FailedJobRegistry(queue=q).count == 0


def test_a_run_that_keeps_failing_is_retried_a_bounded_number_of_times(r, redis_url, periodic):
    periodic[:] = [(jobs_helpers.fails_at_first, 60, {"url": redis_url, "failures": 99})]
    scheduler.scheduler(r).enqueue_jobs()
    q = Queue(queues.SCHEDULED, connection=r)
    started = time.time()
    _work(r)
    delays = []
    while ScheduledJobRegistry(queue=q).count:
        delays.append(_retry_now(q, started))
        started = time.time()
        _work(r)
    # 10 and 30 s (whole seconds, after a run on a busy machine): done before the next run, 60 s on
    assert len(delays) == 2 and 9 <= delays[0] < 20 and 29 <= delays[1] < 40
    assert r.get("test:runs") == b"3"
    assert FailedJobRegistry(queue=q).count == 1


@pytest.mark.parametrize("job, lock", [(sweep.sweep_job, "sweep"), (discipline.sweep_job, "discipline_sweep"),
                                       (catchup.catchup_job, "catchup")])
def test_a_retry_that_meets_the_next_run_skips(r, job, lock):
    context.set_settings(make_settings(accounts=[B24_ACCOUNT]), r)
    other = Lease(r, keys.key("b24", "lock", lock))   # the other run, still going
    assert other.acquire(blocking=False)
    try:
        assert job("b24")["skipped"] == "already running"
    finally:
        other.release()
