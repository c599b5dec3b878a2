"""Work that goes back to RQ instead of waiting: an account whose request budget is spent,
or whose CRM is in trouble, holds no worker.

A call inside a batch job (jobs/batch.py) can stop for one of these reasons:

| what happened | why | the account pauses |
|---|---|---|
| its request budget allows the next call only after queues.MAX_WAIT | "budget" | — (the budget says when) |
| the CRM answered 429 | "429" | Retry-After, or 0.5 s doubling per failure up to a minute |
| the CRM answered 5xx, or did not answer | "5xx", "network" | the same |
| the token was refused and cannot be refreshed, or access is forbidden | "auth" | STOPPED_PAUSE |
| the account's settings name what its CRM lacks | "config" | STOPPED_PAUSE |

The pause is the account's own (connectors/ratelimit.py `pause`): every process stops
calling that CRM until it ends; other accounts are untouched. The stopped call and those
after it in its batch become one job, in their order, which RQ's scheduler enqueues when
the pause ends (with the account's concurrency limit, queues.in_flight). So an account in
trouble keeps its backlog in RQ, costs each of its jobs one short try per pause, and
drains when it recovers.

Never lost, never doubled: the deferred job is written before the current one finishes. If
the worker dies in between, RQ runs the current job again, which defers the same calls
under the same job id; RQ writes a job with a given id only once (scheduled as unique, and
kept a day after it ran: KEEP), so the second deferral finds the first and adds nothing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from datetime import datetime, timezone

from rq import Queue, get_current_job
from rq.exceptions import DuplicateJobError

from connectors import ratelimit, registry
from connectors.http import AccessRefused
from jobs import batch, context
from reglament import keys, metrics
from reglament.crm import UnknownName
from reglament.names import LEAD

log = logging.getLogger("reglament.jobs")

STOPPED_PAUSE = 300  # seconds before an account stopped by its token or settings is tried again
KEEP = 86400         # seconds a deferred job is kept after it ran, which keeps its id taken
CHECKED_FOR = 180    # seconds one check of an account's names answers for its UnknownNames
WAIT = 10            # seconds a job waits for another's check of the names
CHECKING = b"?"      # the answer while a job checks (for at most 30 s: a check is a few requests)


def stopped(exc: Exception, account: str | None) -> tuple[float, str] | None:
    """(seconds until the account can go on, why) when exc stops the account, else None."""
    if isinstance(exc, ratelimit.OverLimit):
        return exc.retry_in, exc.reason
    if account and (isinstance(exc, AccessRefused) or _settings_wrong(exc, account)):
        reason = "config" if isinstance(exc, UnknownName) else "auth"
        log.error("account %s stopped (%s): %s; its events wait", account, reason, exc, extra={"account": account})
        budget = registry.budget_key(context.account(account))
        return ratelimit.pause(context.redis_client(), budget, reason, STOPPED_PAUSE), reason
    return None


def _settings_wrong(exc: Exception, account: str) -> bool:
    """Whether exc comes from settings that name what the account's CRM lacks. A lead that
    is gone raises UnknownName too, and that stops nothing: the names are checked again
    (an optional name the CRM lacks is only a notice).

    Checking reads the CRM's whole vocabulary (several requests), so one answer serves every
    UnknownName of the account for CHECKED_FOR seconds, under the account's settings as they
    are now: changed settings are checked afresh. One job checks; the others meeting one
    meanwhile wait for its answer (at most WAIT seconds, then they cannot tell)."""
    if not isinstance(exc, UnknownName) or exc.kind == LEAD:
        return False
    r = context.redis_client()
    # The settings the names come from (rules and departments' people), never a secret.
    names = context.account(account).model_dump_json(include={
        "crm": True, "rules": True, "departments": {"__all__": {"name", "head", "managers"}}})
    settings = hashlib.sha256(names.encode()).hexdigest()[:16]
    answer = keys.key(account, "names", "settings_wrong", settings)
    if r.set(answer, CHECKING, nx=True, ex=30):
        return _check(r, answer, account)
    deadline = time.monotonic() + WAIT
    while (known := r.get(answer)) == CHECKING and time.monotonic() < deadline:
        time.sleep(0.1)
    return known == b"1"  # gone or still checking: cannot tell, the job fails as any other would


def _check(r, answer: str, account: str) -> bool:
    try:
        wrong = any(not getattr(p, "optional", False) for p in context.crm_for(account).resolve_problems())
    except Exception:  # noqa: BLE001 — cannot tell: the job fails as any other would; the next asks again
        r.delete(answer)
        return False
    r.set(answer, int(wrong), ex=CHECKED_FOR)
    return wrong


def defer_if_stopped(exc: Exception, calls: list[dict], queue: str) -> bool:
    """If exc stops the account of the current job, defer `calls` and say so."""
    job = get_current_job()
    meta = dict(job.meta or {}) if job is not None else {}
    found = stopped(exc, meta.get("account"))
    if found is None:
        return False
    retry_in, reason = found
    defer(calls, queue, retry_in, reason, job_id=job.id if job is not None else None, meta=meta)
    return True


def defer(calls: list[dict], queue: str, retry_in: float, reason: str, *, job_id: str | None, meta: dict) -> str:
    """Schedule `calls` as one batch job on `queue` in `retry_in` seconds; its job id."""
    origin = meta.get("origin") or job_id or "batch"
    count = int(meta.get("deferrals", 0)) + 1
    meta = {**meta, "origin": origin, "deferrals": count, "deferred": reason}
    deferred_id = f"{origin}-d{count}"
    at = datetime.fromtimestamp(math.ceil(time.time() + retry_in), timezone.utc)
    r = context.redis_client()
    data = batch.job_data(calls, queue, job_id=deferred_id, meta=meta, result_ttl=KEEP,
                          description=f"{meta.get('account', '')} {len(calls)} call(s) deferred ({reason})")
    try:
        batch.schedule(Queue(queue, connection=r), data, at)
    except DuplicateJobError:
        log.warning("job %s was deferred already (its first run died after deferring)", deferred_id,
                    extra={"account": meta.get("account")})
        return deferred_id
    metrics.incr(r, meta.get("account") or "_global", "deferrals_total", reason=reason)
    log.info("deferred %d call(s) %.1f s (%s)", len(calls), retry_in, reason,
             extra={"account": meta.get("account"), "kind": meta.get("kind")})
    return deferred_id
