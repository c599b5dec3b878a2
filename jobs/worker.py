"""The worker process: an RQ worker (with RQ's scheduler, which retries failed jobs later)
and, beside it in threads, the dispatcher that feeds it from the inboxes and the pump that
moves due timers (jobs/timers.py) to its first queue."""

from __future__ import annotations

import logging
import threading

import redis
from rq import Queue, SimpleWorker
from rq.worker import BaseWorker

from jobs import queues
from jobs.reclaim import reclaim
from jobs.timers import Pump
from jobs.dispatcher import Dispatcher
from reglament import lifeline, metrics

log = logging.getLogger("reglament.worker")


def count_failure(job, exc_type, exc_value, tb) -> bool:
    """RQ's exception handler: the failure counted as retried (retries left) or given up."""
    meta = {"kind": job.func_name} | (job.meta or {})
    try:
        metrics.job_failure(job.connection, meta, "retried" if job.retries_left else "gave_up")
    except redis.RedisError:
        pass
    return True  # let RQ's default handling (retry or failed registry) go on


def rq_connection(r: redis.Redis) -> redis.Redis:
    """A client of its own for RQ, to the same server as r.

    RQ blocks in BLPOP for up to worker_ttl − 15 s and so raises its pool's socket timeout,
    but only for connections made after it starts. The dispatcher, the pump and the jobs
    share r, whose connections keep redis-py 8's default 5 s: a BLPOP on one of them broke
    off every 5 s, and RQ backed off for up to a minute each time."""
    kwargs = {k: v for k, v in r.connection_pool.connection_kwargs.items() if not k.startswith("orig_")}
    kwargs["socket_timeout"] = None  # RQ sets its own, long enough for its BLPOP
    pool = redis.ConnectionPool(connection_class=r.connection_pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


def run(r: redis.Redis, accounts: list[str], burst: bool = False,
        worker_class: type[BaseWorker] = SimpleWorker) -> None:
    """Jobs run in this process (RQ's SimpleWorker), not in a fork per job. Measured with
    bench/sla_timers.py on 2 cores: with a fork per job, answers in a burst of a thousand
    chats were handled 0.8 s (p50) to 2.9 s after they were written, so 11–29 chats answered
    in time still alerted; in process, 0.06 s and none. Jobs also keep their HTTP
    connections and caches from one job to the next. A job's time limit still holds (RQ
    interrupts it with SIGALRM), and a worker that dies has its job run again (RQ's
    maintenance); a bench can pass RQ's forking Worker to compare."""
    lifeline.tie_forks()  # RQ's scheduler child dies with this worker, kill -9 included
    feeders = [Dispatcher(r, accounts), Pump(r)]
    threads = [threading.Thread(target=f.run, name=type(f).__name__.lower(), daemon=True) for f in feeders]
    for t in threads:
        t.start()
    rq_r = rq_connection(r)
    reclaim(rq_r, list(queues.QUEUES), [count_failure])  # a worker killed here had its job running
    worker = worker_class([Queue(name, connection=rq_r) for name in queues.QUEUES], connection=rq_r,
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
