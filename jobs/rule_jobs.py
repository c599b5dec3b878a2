"""The task rules' webhook handlers (NEXT_TASK, STATUS_TASKS, TERMINAL, REDIAL).

Each event about a lead — created, moved to another status, a task of it completed or
deleted, a call logged on it — becomes a RuleEvent, and the executor runs the rules for
that lead under its lock.
"""

from __future__ import annotations

from jobs import context
from jobs.router import on
from reglament.crm import Action
from reglament.events import Event

KINDS = ("lead.added", "lead.status_changed", "task.updated", "task.deleted", "note.added")


@on(*KINDS, name="task_rules")
def task_rules(event: Event) -> list[Action]:
    from connectors.amocrm.crm import AmoCRM

    if event.source != "amocrm" or context.account(event.account).crm != "amocrm" or not AmoCRM.may_matter(event):
        return []
    rule_event = context.crm_for(event.account).rule_event(event)
    if rule_event is None:
        return []
    return context.executor_for(event.account).handle(rule_event)
