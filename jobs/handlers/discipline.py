"""Discipline rules live: NO_POSTPONE, TASK_RESULT, TASK_NAME, COMMENT_CODES on webhooks; OVERDUE,
INCUBATOR, UNPAID_INVOICE in a periodic sweep; the heads' DIGEST at its time (GitHub issue
"Violations, reminders and the heads' digest, with a dashboard").

The decisions are the pure functions of jobs/rules/{no_postpone,task_result,task_name,
comment_codes,overdue,incubator,unpaid_invoice}.py; this module reads what they need and
carries out their Outcome:
- violations are recorded (one breach, one key: recording again changes nothing);
- CRM actions go through the executor, each action key once;
- alerts go through the Messenger once per key and person; when no channel carries an alert
  to a manager, a task on the lead tells them instead (once per key).

Memory: the deadline each task was last seen with (NO_POSTPONE compares against it); a
task we never saw is looked up in the events API (task_deadline_changed).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from rq import Queue

from connectors import registry
from jobs import context, names, queues, support
from jobs.router import on
from jobs.rules import (comment_codes, incubator, next_task, no_postpone, overdue, redial, task_name, task_result,
                        unpaid_invoice)
from reglament.discipline_settings import Alert, DisciplineSettings, Outcome
from jobs.scheduler import PERIODIC
from jobs.support import head_of, messenger_for, moment, person
from reglament import keys, metrics, violations
from reglament.lease import Lease
from reglament.config import Settings
from reglament.crm import Lead, LeadSnapshot, SetTaskDue, Task, UnknownName
from reglament.events import Event

log = logging.getLogger("reglament.discipline")

MEMORY_TTL = 60 * 86400


# ---------------------------------------------------------------- small helpers

def _now() -> datetime:
    return datetime.now(timezone.utc)


def dsettings(account: str) -> DisciplineSettings:
    return context.rules(account).discipline


def tz(account: str) -> ZoneInfo:
    return ZoneInfo(context.account(account).timezone)


def link(account: str, lead_id: int | None) -> str:
    return context.crm_for(account).lead_url(lead_id) if lead_id else ""


def user_name(account: str, user_id: int | None) -> str:
    return context.crm_for(account).user_name(user_id) if user_id else ""


def _memory_key(account: str, task_id: int) -> str:
    return keys.key(account, "discipline", "task_due", task_id)


def remember_due(account: str, task_id: int, due: datetime, only_new: bool = False) -> None:
    context.redis_client().set(_memory_key(account, task_id), int(due.timestamp()), ex=MEMORY_TTL, nx=only_new)


def known_due(account: str, task_id: int) -> datetime | None:
    raw = context.redis_client().get(_memory_key(account, task_id))
    return moment(raw.decode()) if raw else None


# ---------------------------------------------------------------- carrying out an outcome

def carry_out(account: str, outcome: Outcome, *, alerts: bool = True) -> dict:
    """Record, apply, alert. Safe to repeat: every part is keyed."""
    r = context.redis_client()
    s = dsettings(account)
    recorded = 0
    for v in outcome.violations:
        if violations.record(r, account, v, retention_days=s.retention_days):
            recorded += 1
            metrics.incr(r, account, "violations_total", rule=v.rule)
            log.info("violation: %s", v.details, extra={"account": account, "rule": v.rule, "lead_id": v.lead_id})
    actions = list(outcome.actions)
    if actions:
        ex = context.executor_for(account)
        ex.apply(ex.unapplied(actions))
    sent = 0
    for alert in outcome.alerts if alerts else ():
        sent += _send_alert(account, alert)
    return {"violations": recorded, "actions": len(actions), "alerts": sent}


def _send_alert(account: str, alert: Alert) -> int:
    if alert.to == "head":
        head = head_of(account, user_name(account, alert.user_id))
        if head is None:
            return 0
        messenger_for(account).alert_person(head, alert.subject, alert.text, action_key=alert.key)
        return 1
    if not alert.user_id:
        return 0
    # Undelivered (no channel: the outbox has it), the reminder is also a short note on the
    # lead, never a task: the lead keeps its one current task.
    note = f"{alert.subject}: {alert.text}" if dsettings(account).fallback_note else None
    support.alert(account, messenger_for(account), person(account, alert.user_id), alert.subject, alert.text,
                  action_key=alert.key, lead_id=alert.lead_id, note=note)
    return 1


# ---------------------------------------------------------------- tasks (webhooks)

@on("task.added", "task.updated", name="discipline_tasks")
def tasks(event: Event, now: datetime | None = None) -> dict:
    f = event.fields
    task = context.crm_for(event.account).task_from_event(f) if f.get("lead_id") and f.get("due") else None
    if task is None:
        return {"skipped": "not a lead task"}
    account, s, now = event.account, dsettings(event.account), now or _now()
    url = link(account, task.lead_id)
    outcome = Outcome()
    if event.kind == "task.added":
        remember_due(account, task.id, task.due, only_new=True)
        outcome += task_name.decide(task, f.get("created_by"), s, now, url)
    else:
        by = f.get("by")
        # The deadline it had: as we remember it, else as the event says (a CRM whose events
        # are read by comparing states knows it), else from the CRM's history.
        before = known_due(account, task.id) or moment(f.get("previous_due"))
        if before is None and not task.is_completed:
            before = context.crm_for(account).deadline_before(task.id, task.due)
        moved = no_postpone.decide(task, before, by, s, now, tz(account), url)
        outcome += moved
        outcome += task_result.decide(task, by, s, now, url)
        remember_due(account, task.id, moved.remember.get("due", task.due))
    return carry_out(account, outcome)


# ---------------------------------------------------------------- statuses (webhooks)

@on("lead.status_changed", name="discipline_comment_codes")
def status_changed(event: Event) -> dict:
    s = dsettings(event.account).comment_codes
    if not s.enabled:
        return {"skipped": "disabled"}
    f = event.fields
    lead_id = int(f.get("lead_id") or event.entity_id)
    status = context.crm_for(event.account).stage_name(f.get("pipeline"), f.get("stage"))
    if comment_codes.kind_of(status, f.get("closed") == "lost", dsettings(event.account)) is None:
        return {"skipped": "status needs no code"}
    args = {"account": event.account, "lead_id": lead_id, "stage": f.get("stage"),
            "changed_at": f.get("at") or int(_now().timestamp()), "by": f.get("by")}
    if s.check_after_minutes:
        Queue(queues.SCHEDULED, connection=context.redis_client()).enqueue_in(
            timedelta(minutes=s.check_after_minutes), check_comment_code, kwargs=args,
            job_id=f"comment-codes-{event.account}-{args['lead_id']}-{args['changed_at']}",
            retry=queues.RETRY, job_timeout=queues.JOB_TIMEOUT)
        return {"scheduled": s.check_after_minutes}
    return check_comment_code(**args)


def check_comment_code(account: str, lead_id: int, stage: str, changed_at: int, by: int | None = None) -> dict:
    """The reason of a callback / refusal, read now (the manager had time to write it)."""
    crm = context.crm_for(account)
    s = dsettings(account)
    lead = crm.get_lead(lead_id)
    if lead is None or lead.stage != str(stage):
        return {"skipped": "status changed since"}
    lost = lead.closed == "lost"
    kind = comment_codes.kind_of(lead.status, lost, s)
    if kind == "refusal":
        reason = lead.loss_reason
    elif s.comment_codes.callback_field and crm.has_field(s.comment_codes.callback_field):
        reason = lead.custom_value(s.comment_codes.callback_field)
    else:
        reason = crm.latest_comment(lead_id)
    changed = moment(changed_at) or _now()
    outcome = comment_codes.decide(lead_id, lead.status or "Закрыто и не реализовано", lost,
                                   None if reason is None else str(reason), by or lead.responsible_id,
                                   changed, s, link(account, lead_id))
    at = comment_codes.callback_time(None if reason is None else str(reason), changed, context.calendar(account), s)
    if kind == "callback" and at is not None:
        open_tasks = crm.open_tasks(lead_id)
        ex = context.executor_for(account)
        snapshot = LeadSnapshot(lead=lead, open_tasks=open_tasks, own_task_ids=ex.own(t.id for t in open_tasks))
        moves = comment_codes.schedule_callback(snapshot, at, context.rules(account),
                                                f"{comment_codes.RULE}:{lead_id}:{changed_at}:time")
        for a in moves:
            if isinstance(a, SetTaskDue):
                remember_due(account, a.task_id, a.due)  # our own move is no NO_POSTPONE breach
        outcome += Outcome(actions=tuple(moves))
    return carry_out(account, outcome)


# ---------------------------------------------------------------- the periodic sweep

def _date(value: Any, zone: ZoneInfo) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value), zone).date()
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def sweep(account: str, now: datetime | None = None) -> dict:
    """OVERDUE over every open lead task; INCUBATOR and UNPAID_INVOICE over every active lead.
    Reads in pages of 250; alerts only in working hours (violations are recorded any time)."""
    now = now or _now()
    s = dsettings(account)
    crm = context.crm_for(account)
    cal = context.calendar(account)
    zone = tz(account)
    working = cal.is_working(now)
    totals = {"tasks": 0, "leads": 0, "violations": 0, "actions": 0, "alerts": 0}

    def add(result: dict) -> None:
        for k in ("violations", "actions", "alerts"):
            totals[k] += result[k]

    by_lead: dict[int, list[Task]] = {}
    for task in crm.all_open_tasks():
        totals["tasks"] += 1
        if task.lead_id:
            by_lead.setdefault(task.lead_id, []).append(task)
        remember_due(account, task.id, task.due, only_new=True)
        outcome = overdue.decide(task, s, cal, now, zone, user_name(account, task.responsible_id),
                                 link(account, task.lead_id))
        if outcome:
            add(carry_out(account, outcome, alerts=working))

    own = context.executor_for(account).own(t.id for tasks in by_lead.values() for t in tasks)
    for lead_id, tasks in by_lead.items():
        many = next_task.crowding(LeadSnapshot(lead=Lead(id=lead_id, stage="", status="",
                                                         responsible_id=tasks[0].responsible_id),
                                               open_tasks=tuple(tasks), own_task_ids=own), now, link(account, lead_id))
        if many is not None:
            add(carry_out(account, Outcome(violations=(many,))))
    if not (s.incubator.enabled or s.unpaid_invoice.enabled):
        return totals
    rules = context.rules(account)
    terminal = rules.terminal_statuses
    ex = context.executor_for(account)
    for lead in crm.active_leads():
        totals["leads"] += 1
        url = link(account, lead.id)
        snapshot = LeadSnapshot(lead=lead, open_tasks=tuple(by_lead.get(lead.id, ())), own_task_ids=own)
        outcome = incubator.decide(snapshot, lead.custom_value(s.incubator.meeting_field), terminal, s, now, url,
                                   redial.running(lead, rules))
        u = s.unpaid_invoice
        outcome += unpaid_invoice.decide(
            lead.id, lead.responsible_id, lead.custom_value(u.status_field),
            _date(lead.custom_value(u.due_field), zone), _date(lead.custom_value(u.promised_field), zone),
            s, cal, now, now.astimezone(zone).date(), url, snapshot.open_tasks, own)
        if not outcome:
            continue
        lock = ex.lock(lead.id)
        if not lock.acquire(blocking=False):
            continue  # a webhook job is deciding for this lead; the next sweep looks again
        try:
            add(carry_out(account, outcome, alerts=working))
        finally:
            try:
                lock.release()
            except Exception:  # noqa: BLE001
                pass
    return totals


def sweep_job(account: str) -> dict:
    r = context.redis_client()
    guard = Lease(r, keys.key(account, "lock", "discipline_sweep"))  # free soon after a killed sweep
    if not guard.acquire(blocking=False):
        return {"account": account, "skipped": "already running"}
    try:
        result = sweep(account)
    except UnknownName as e:  # e.g. rules.pipeline: said once an hour, not a failed job every sweep
        names.report(r, account, "DISCIPLINE", e)
        return {"account": account, "skipped": "unknown name"}
    finally:
        guard.release()
    log.info("discipline sweep: %s", result, extra={"account": account, "rule": "DISCIPLINE"})
    return {"account": account, **result}


def digest_tick(account: str, now: datetime | None = None) -> dict:
    """Every few minutes: at the configured time of a working day, each head's digest of
    everything since the previous digest, once (jobs/digest.py)."""
    from jobs import digest

    return digest.tick(account, now)


def register_periodic(settings: Settings) -> None:
    PERIODIC[:] = [e for e in PERIODIC if e[0] not in (sweep_job, digest_tick)]
    from reglament import rule_settings

    for acc in settings.accounts:
        if not registry.supported(acc):
            continue
        s = rule_settings.load(acc.rules).discipline
        PERIODIC.append((sweep_job, s.overdue.interval_minutes * 60, {"account": acc.id}))
        if s.digest.enabled:
            PERIODIC.append((digest_tick, 300, {"account": acc.id}))


__all__ = ["carry_out", "check_comment_code", "digest_tick", "status_changed", "sweep", "sweep_job", "tasks"]
