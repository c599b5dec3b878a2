"""Many small calls in one RQ job.

RQ spends about 5 ms of bookkeeping on every job on a small machine (registries,
heartbeat, result), more than handling a chat event or a due timer costs. So a burst (a
thousand WhatsApp messages within a second) reaches the workers in batches, one job per
batch, and a quiet stream still gets a job per call: `chunks` splits what arrives together
into up to SPREAD jobs, so that several workers share a burst, and into bigger batches
when jobs already wait in the queue (`spread`).

A batch runs its calls in order. A call that raises does not fail the others: it is split
off into a job of its own, which RQ retries on the usual policy (queues.RETRY). A batch of
one call raises as is, so RQ retries it directly. A call that finds its account's request
budget spent or its account in trouble does not wait: it and the calls after it go back to
RQ together, in order, deferred to when the account can go on (jobs/deferral.py). Every
call is idempotent, so a batch run again (its worker died mid-way) does no harm.

`enqueue` and `schedule` put batch jobs on a queue; a job on `events` gets its account's
concurrency limit (queues.in_flight).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from importlib import import_module
from typing import Any

from rq import Queue
from rq.job import Job

from connectors import ratelimit
from jobs import context, queues
from reglament import metrics

log = logging.getLogger("reglament.jobs")

SPREAD = 4       # a burst goes out as up to this many jobs, when none wait in the queue


def call(func: Callable | str, **kwargs: Any) -> dict:
    """One call as a batch carries it: the function's import path and its keyword arguments."""
    path = func if isinstance(func, str) else f"{func.__module__}:{func.__qualname__}"
    return {"func": path, "kwargs": kwargs}


def resolve(path: str) -> Callable:
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


def spread(queue: Queue) -> int:
    """Into how many jobs to split what arrives now: SPREAD when the queue is empty, fewer
    (bigger batches) when jobs already wait in it, since then every worker is busy anyway."""
    return max(1, SPREAD - queue.count)


def chunks(items: list, max_size: int, spread: int = SPREAD) -> list[list]:
    size = max(1, min(max_size, math.ceil(len(items) / spread)))
    return [items[i:i + size] for i in range(0, len(items), size)]


def job_data(calls: list[dict], queue: str, *, job_id: str | None = None, description: str = "",
             meta: dict | None = None, result_ttl: int | None = None):
    """What Queue.enqueue_many takes for a job running `calls` (to be enqueued on `queue`)."""
    return Queue.prepare_data(
        run, args=(calls,), kwargs={"queue": queue}, job_id=job_id, description=description,
        result_ttl=result_ttl,
        # A hang guard per call: a batch waits out the same rate limits its calls would.
        timeout=queues.JOB_TIMEOUT * len(calls), retry=queues.RETRY, failure_ttl=7 * 24 * 3600,
        meta=meta or {},
    )


def _job(q: Queue, data) -> Job:
    return q.create_job(data.func, args=data.args, kwargs=data.kwargs, timeout=data.timeout,
                        result_ttl=data.result_ttl, failure_ttl=data.failure_ttl, description=data.description,
                        job_id=data.job_id, meta=data.meta, retry=data.retry,
                        rate_limit=queues.in_flight(q.name, (data.meta or {}).get("account")))


def enqueue(q: Queue, datas: list, pipeline=None) -> None:
    """Enqueue job_data()s on q (inside `pipeline` when given, as one transaction with the caller's writes)."""
    limited, free = [], []
    for d in datas:
        (limited if queues.in_flight(q.name, (d.meta or {}).get("account")) else free).append(d)
    pipe = pipeline if pipeline is not None else q.connection.pipeline()
    if free:
        q.enqueue_many(free, pipeline=pipe)
    for data in limited:
        # RQ's public enqueue refuses a pipeline for a limited job, only because a caller that
        # saved the returned job again on it would undo its promotion; RQ's scheduler uses
        # this same call inside its own pipeline, and nothing here saves the job again.
        q._enqueue_rate_limited_job(_job(q, data), pipeline=pipe)
    if limited:
        pipe.sadd(q.redis_queues_keys, q.key)
    if pipeline is None:
        pipe.execute()


def schedule(q: Queue, data, at: datetime) -> None:
    """A batch job that RQ's scheduler enqueues at `at` (whole seconds, at most about a second
    late). Raises rq's DuplicateJobError, and writes nothing, when its job id exists already."""
    q.schedule_job(_job(q, data), at, unique=True)


def run(calls: list[dict], queue: str = queues.EVENTS) -> list[Any]:
    """The batch job: each call's result, or for a call split off after an error or deferred, None."""
    from jobs import deferral

    results, failed = [], []
    with ratelimit.waiting_at_most(queues.MAX_WAIT):
        for i, c in enumerate(calls):
            try:
                results.append(resolve(c["func"])(**c["kwargs"]))
            except Exception as exc:  # noqa: BLE001 — deferred, or retried on its own, below
                if deferral.defer_if_stopped(exc, calls[i:], queue):
                    results += [None] * (len(calls) - i)
                    break
                if len(calls) == 1:
                    raise
                log.warning("batch: %s failed; it is retried as a job of its own", c["func"], exc_info=True)
                results.append(None)
                failed.append(c)
    if failed:
        meta = _meta()
        for _ in failed:  # each will run again on its own: a retry, counted as RQ's are (jobs/worker.py)
            metrics.job_failure(context.redis_client(), meta, "retried")
        # If this enqueue fails, the batch raises and RQ runs all of it again: calls are idempotent.
        enqueue(Queue(queue, connection=context.redis_client()),
                [job_data([c], queue, description=f"retry of {c['func']}", meta=meta) for c in failed])
    return results


def _meta() -> dict:
    from rq import get_current_job

    job = get_current_job()
    return {"account": job.meta.get("account"), "kind": job.meta.get("kind")} if job and job.meta else {}
