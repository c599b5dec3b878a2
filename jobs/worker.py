"""The worker process: an RQ worker (with RQ's scheduler for delayed jobs) and, beside it
in a thread, the dispatcher that feeds it from the inboxes."""

from __future__ import annotations

import logging
import threading

import redis
from rq import Queue, Worker

from jobs import queues
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


def run(r: redis.Redis, accounts: list[str], burst: bool = False) -> None:
    dispatcher = Dispatcher(r, accounts)
    thread = threading.Thread(target=dispatcher.run, name="dispatcher", daemon=True)
    thread.start()
    worker = Worker([Queue(name, connection=r) for name in queues.QUEUES], connection=r,
                    exception_handlers=[count_failure],
                    # Frequent maintenance: jobs of a worker that died are retried within a minute
                    # or two, not after RQ's default ten minutes.
                    maintenance_interval=60)
    try:
        worker.work(with_scheduler=True, burst=burst, logging_level="WARNING")
    finally:
        dispatcher.stop()
        thread.join(5)
