"""The scheduler process: RQ's CronScheduler enqueues the periodic jobs (sweeps, digests,
the Bitrix24 catch-up) that rules register in PERIODIC.

A periodic run that fails (the CRM did not answer the start-up sweep) is retried by RQ soon
after (BACKOFF), not only at its next interval. The retries of one run are scheduled to end
before the next run is due, and a retry that still meets it does no harm: the sweeps and the
catch-up hold a lease per account and skip while another run holds it, the digest claims its
day before sending, and the shift-start look marks each shift it messages (and unmarks
those a failed run did not message).
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from rq import Retry
from rq.cron import CronJob, CronScheduler

from jobs import queues

# (function, interval in seconds, kwargs); rules add their periodic jobs here.
PERIODIC: list[tuple[Callable, int, dict]] = []

BACKOFF = (10, 30, 90)  # seconds before each retry of a failed periodic run


def retry_for(interval: int) -> Retry | None:
    """RQ's retry policy for a job run every `interval` seconds: BACKOFF, cut where the
    retries would reach the next run (none when the next run is that close anyway)."""
    delays: list[int] = []
    for delay in BACKOFF:
        if sum(delays) + delay >= interval:
            break
        delays.append(delay)
    return Retry(max=len(delays), interval=delays) if delays else None


class PeriodicJob(CronJob):
    """RQ's cron job with a retry policy. rq 3.0's `register` takes none, though CronJob.enqueue
    hands its job options on to Queue.enqueue, which takes one; the scheduler also saves the
    options as JSON (for `rq cron` monitoring), so the Retry is saved as its numbers."""

    def __init__(self, *args, retry: Retry | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if retry is not None:
            self.job_options["retry"] = retry

    def to_dict(self) -> dict:
        obj = super().to_dict()
        if "retry" in obj:
            obj["retry"] = {"max": obj["retry"].max, "intervals": obj["retry"].intervals}
        return obj


def scheduler(r: redis.Redis) -> CronScheduler:
    """RQ's cron scheduler with every PERIODIC job, each with its retry policy."""
    cron = CronScheduler(connection=r, logging_level="WARNING")
    for func, interval, kwargs in PERIODIC:
        # get_jobs() is the scheduler's own list: what register() appends to.
        cron.get_jobs().append(PeriodicJob(queues.SCHEDULED, func=func, kwargs=kwargs, interval=interval,
                                           job_timeout=3600, retry=retry_for(interval)))
    return cron


def run(r: redis.Redis) -> None:
    scheduler(r).start()
