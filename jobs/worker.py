"""The worker process: an RQ worker (with RQ's scheduler, which retries failed jobs later)
and, beside it in threads, the dispatcher that feeds it from the inboxes and the pump that
moves due timers (jobs/timers.py) to its first queue."""

from __future__ import annotations

import logging
import threading

import redis
from rq import Queue, Worker

from jobs import queues
from jobs.timers import Pump
from jobs.dispatcher import Dispatcher
from reglament import metrics

log = logging.getLogger("reglament.worker")


def count_failure(job, exc_type, exc_value, tb) -> bool:
    account = (job.meta or {}).get("account") or "_global"
    try:
        metrics.incr(job.connection, account, "job_failures_total", kind=(job.meta or {}).get("kind", job.func_name))
    except redis.RedisError:
        pass
    return True  # let RQ's default handling (retry or failed registry) go on


def run(r: redis.Redis, accounts: list[str], burst: bool = False, worker_class: type[Worker] = Worker) -> None:
    """worker_class: RQ's forking Worker in production (a job that leaks or hangs can't take
    the worker with it); a bench passes SimpleWorker to measure without the fork."""
    feeders = [Dispatcher(r, accounts), Pump(r)]
    threads = [threading.Thread(target=f.run, name=type(f).__name__.lower(), daemon=True) for f in feeders]
    for t in threads:
        t.start()
    worker = worker_class([Queue(name, connection=r) for name in queues.QUEUES], connection=r,
                          exception_handlers=[count_failure],
                          # Frequent maintenance: jobs of a worker that died are retried within a
                          # minute or two, not after RQ's default ten minutes.
                          maintenance_interval=60)
    try:
        worker.work(with_scheduler=True, burst=burst, logging_level="WARNING")
    finally:
        for f in feeders:
            f.stop()
        for t in threads:
            t.join(5)
