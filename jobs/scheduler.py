"""The scheduler process: RQ's CronScheduler enqueues the periodic jobs (sweeps, digests)
that rules register in PERIODIC."""

from __future__ import annotations

from collections.abc import Callable

import redis
from rq.cron import CronScheduler

from jobs import queues

# (function, interval in seconds, kwargs); rules add their periodic jobs here.
PERIODIC: list[tuple[Callable, int, dict]] = []


def run(r: redis.Redis) -> None:
    scheduler = CronScheduler(connection=r, logging_level="WARNING")
    for func, interval, kwargs in PERIODIC:
        scheduler.register(func, queues.SCHEDULED, kwargs=kwargs, interval=interval,
                           job_timeout=3600)
    scheduler.start()
