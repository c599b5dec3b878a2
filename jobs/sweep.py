"""The sweep: active leads without an open task get their next task, with the fewest API calls.

Webhooks can be lost, delayed or come before Reglament was installed; every
`rules.sweep_interval_minutes` the sweep reads the account's open tasks and its active
leads in pages of 250 (never one call per lead), lets the rules decide for each lead as
a SWEEP event, and applies the fixes 100 leads at a time (tasks and notes in batches of
50), under the same per-lead locks and action keys as the webhook jobs.

`plan` changes nothing; the audit lists exactly what it yields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from connectors import registry
from jobs import context, names
from jobs.executor import Executor, Planned
from jobs.rules import next_task
from jobs.scheduler import PERIODIC
from reglament import keys, metrics, rule_settings
from reglament.lease import Lease
from reglament.config import Settings
from reglament.crm import CRM, SWEEP, LeadSnapshot, RuleEvent, UnknownName

log = logging.getLogger("reglament.sweep")

CHUNK = 100  # plans applied together: two full batches of tasks and of notes


@dataclass
class SweepResult:
    checked: int = 0                                   # active leads looked at
    fixed: list[Planned] = field(default_factory=list)
    skipped: list[Planned] = field(default_factory=list)  # busy, or changed since read: left to their job
    crowded: list[LeadSnapshot] = field(default_factory=list)  # two or more open tasks made by people
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"checked": self.checked, "fixed": len(self.fixed), "skipped": len(self.skipped),
                "actions": sum(len(p.actions) for p in self.fixed), "seconds": round(self.seconds, 2)}


def plan(executor: Executor, crm: CRM, now: datetime | None = None, counted: SweepResult | None = None
         ) -> Iterator[Planned]:
    """Every active lead the rules would change now, with its actions. Changes nothing."""
    now = now or executor.clock()
    cursor = None
    while True:
        # Stamped before the read: a lead a job changes while the page is read is left to that job.
        read_at = executor.redis_time()
        page = crm.list_active_leads_with_open_tasks(cursor)
        if counted is not None:
            counted.checked += len(page.snapshots)
        for snapshot in executor.complete(page.snapshots):
            if counted is not None and next_task.crowded(snapshot):
                counted.crowded.append(snapshot)
            actions = executor.decide(RuleEvent(kind=SWEEP, lead_id=snapshot.lead.id, at=now), snapshot, now)
            if actions:
                yield Planned(snapshot, tuple(actions), read_at)
        cursor = page.next_cursor
        if cursor is None:
            return


def apply(executor: Executor, plans: Iterable[Planned], result: SweepResult | None = None) -> SweepResult:
    result = result or SweepResult()
    chunk: list[Planned] = []
    for p in plans:
        chunk.append(p)
        if len(chunk) == CHUNK:
            _apply_chunk(executor, chunk, result)
            chunk = []
    if chunk:
        _apply_chunk(executor, chunk, result)
    return result


def _apply_chunk(executor: Executor, chunk: list[Planned], result: SweepResult) -> None:
    fixed, skipped = executor.apply_planned(chunk)
    result.fixed += fixed
    result.skipped += skipped


def run(executor: Executor, crm: CRM, now: datetime | None = None) -> SweepResult:
    started = time.monotonic()
    result = SweepResult()
    apply(executor, plan(executor, crm, now, result), result)
    result.seconds = time.monotonic() - started
    return result


def sweep_job(account: str) -> dict:
    """The periodic job (see register_periodic). One sweep per account at a time."""
    r = context.redis_client()
    guard = Lease(r, keys.key(account, "lock", "sweep"))  # free soon after a killed sweep
    if not guard.acquire(blocking=False):
        log.info("sweep already running", extra={"account": account, "rule": "SWEEP"})
        return {"account": account, "skipped": "already running"}
    try:
        result = run(context.executor_for(account), context.crm_for(account))
    except UnknownName as e:  # e.g. rules.pipeline: said once an hour, not a failed job every sweep
        names.report(r, account, "SWEEP", e)
        return {"account": account, "skipped": "unknown name"}
    finally:
        guard.release()
    summary = result.summary()
    log.info("sweep done: %(checked)d active leads, %(fixed)d fixed, %(skipped)d left to their jobs, %(seconds)ss",
             summary, extra={"account": account, "rule": "SWEEP"})
    metrics.incr(r, account, "sweep_runs_total")
    if result.fixed:
        metrics.incr(r, account, "sweep_leads_fixed_total", len(result.fixed))
    return {"account": account, **summary}


def register_periodic(settings: Settings) -> None:
    """Put each account's sweep in the scheduler's PERIODIC list, once per account."""
    PERIODIC[:] = [entry for entry in PERIODIC if entry[0] is not sweep_job]
    for account in settings.accounts:
        minutes = rule_settings.load(account.rules).sweep_interval_minutes
        if registry.supported(account) and minutes:
            PERIODIC.append((sweep_job, minutes * 60, {"account": account.id}))
