"""Many small calls in one RQ job.

RQ spends about 5 ms of bookkeeping on every job on a small machine (registries,
heartbeat, result), more than handling a chat event or a due timer costs. So a burst (a
thousand WhatsApp messages within a second) reaches the workers in batches, one job per
batch, and a quiet stream still gets a job per call: `chunks` splits what arrives together
into up to SPREAD jobs, so that several workers share a burst, and into bigger batches
when jobs already wait in the queue (`spread`).

A batch runs its calls in order. A call that raises does not fail the others: it is split
off into a job of its own, which RQ retries on the usual policy (queues.RETRY). A batch of
one call raises as is, so RQ retries it directly. Every call is idempotent, so a batch run
again (its worker died mid-way) does no harm.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from importlib import import_module
from typing import Any

from rq import Queue

from jobs import context, queues

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
             meta: dict | None = None):
    """What Queue.enqueue_many takes for a job running `calls` (to be enqueued on `queue`)."""
    return Queue.prepare_data(
        run, args=(calls,), kwargs={"queue": queue}, job_id=job_id, description=description,
        # A hang guard per call: a batch waits out the same rate limits its calls would.
        timeout=queues.JOB_TIMEOUT * len(calls), retry=queues.RETRY, failure_ttl=7 * 24 * 3600,
        meta=meta or {},
    )


def run(calls: list[dict], queue: str = queues.EVENTS) -> list[Any]:
    """The batch job: each call's result, or for a call split off after an error, None."""
    if len(calls) == 1:
        return [resolve(calls[0]["func"])(**calls[0]["kwargs"])]
    results, failed = [], []
    for c in calls:
        try:
            results.append(resolve(c["func"])(**c["kwargs"]))
        except Exception:  # noqa: BLE001 — retried on its own, below
            log.warning("batch: %s failed; it is retried as a job of its own", c["func"], exc_info=True)
            results.append(None)
            failed.append(c)
    if failed:
        # If this enqueue fails, the batch raises and RQ runs all of it again: calls are idempotent.
        Queue(queue, connection=context.redis_client()).enqueue_many(
            [job_data([c], queue, description=f"retry of {c['func']}") for c in failed])
    return results
