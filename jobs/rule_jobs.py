"""The task rules' webhook handlers (NEXT_TASK, STATUS_TASKS, TERMINAL, REDIAL).

Each event about a lead — created, moved to another status, a task of it completed or
deleted, a call with its client (from the CRM or a telephony provider) — becomes a
RuleEvent, and the executor runs the rules for that lead under its lock.
"""

from __future__ import annotations

from datetime import datetime, timezone

from jobs import clients, context
from jobs.router import on
from jobs.support import call_of, moment
from reglament.crm import (CRM, LEAD_ADDED, LEAD_STATUS_CHANGED, SWEEP, TASK_DELETED, TASK_UPDATED, Action,
                           RuleEvent, Task)
from reglament.events import Event

KINDS = ("lead.added", "lead.status_changed", "task.updated", "task.deleted", "call.ended")


def may_matter(event: Event) -> bool:
    """A cheap first look (no CRM call): False for events rule_event would surely drop, such
    as the echoes of our own writes (tasks added, leads updated)."""
    if event.kind == "task.updated":
        return bool(event.fields.get("lead_id")) and bool(event.fields.get("completed"))
    if event.kind == "task.deleted":
        return bool(event.fields.get("lead_id"))
    return event.kind in KINDS


def event_task(fields: dict, crm: CRM, at: datetime) -> Task | None:
    """A task event's task; a webhook without a deadline (a deleted task) gets `at`."""
    if not fields.get("lead_id"):
        return None
    return crm.task_from_event({**fields, "due": fields.get("due") or int(at.timestamp())})


def rule_event(event: Event, crm: CRM) -> RuleEvent | None:
    """The RuleEvent a neutral webhook event means for one lead; None when it means nothing
    to the task rules (a task not on a lead, a call of an unknown number, ...)."""
    f = event.fields
    now = datetime.now(timezone.utc)
    if event.kind in ("lead.added", "lead.status_changed"):
        kind = LEAD_ADDED if event.kind == "lead.added" else LEAD_STATUS_CHANGED
        return RuleEvent(kind=kind, lead_id=int(f.get("lead_id") or event.entity_id),
                         at=moment(f.get("at") or f.get("created_at")) or now)
    if event.kind in ("task.updated", "task.deleted"):
        at = moment(f.get("at")) or now
        task = event_task(f, crm, at)
        if task is None or (event.kind == "task.updated" and not task.is_completed):
            return None
        return RuleEvent(kind=TASK_UPDATED if event.kind == "task.updated" else TASK_DELETED,
                         lead_id=task.lead_id, at=at, task=task)
    if event.kind == "call.ended":
        lead_id = f.get("lead_id") or (clients.find_client(event.account, f.get("phone")) or {}).get("lead_id")
        return RuleEvent.for_call(int(lead_id), call_of(event.account, f)) if lead_id else None
    return None


@on(*KINDS, name="task_rules")
def task_rules(event: Event) -> list[Action]:
    if not may_matter(event):
        return []
    crm = context.crm_for(event.account)
    found = rule_event(event, crm)
    if found is None:
        return []
    return context.executor_for(event.account).handle(found)


def recheck(account: str, lead_id: int) -> list[Action]:
    """A timer a rule set for a deadline it waits for (RecheckAt): the rules look at the lead
    again, as the sweep would."""
    event = RuleEvent(kind=SWEEP, lead_id=lead_id, at=datetime.now(timezone.utc))
    return context.executor_for(account).handle(event)
