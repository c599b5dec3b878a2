"""NEXT_TASK + STATUS_TASKS: every active lead has exactly one open next-step task.

An active (non-terminal) lead with no open task gets the task its status's template names
(text, type, due on the calendar, responsible = the lead's responsible user). A lead that
already has an open task gets nothing — never a second one; a terminal lead gets nothing
and its open tasks are left alone. Statuses without a template (and no default_task) get
nothing.

Failure signals for leads in the redial cadence belong to REDIAL (it counts the attempt
and makes the task itself), so this rule stays out of them.

Keys are NEXT_TASK:<lead>:s<status id>:t<newest task id>:<what>: the same while the lead
stays in the same gap without a task (a webhook and a sweep racing agree), new once a
task has been made and closed (or deleted) since.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from jobs.rules import redial
from jobs.rules.due import template_due
from jobs.rules.notes import note, when
from reglament.rule_settings import RuleSettings
from jobs.rules.terminal import is_terminal
from reglament.calendar import WorkCalendar
from reglament.crm import (LEAD_ADDED, LEAD_STATUS_CHANGED, SWEEP, TASK_DELETED, TASK_UPDATED, Action,
                           CreateTask, LeadSnapshot, RuleEvent, action_key)
from reglament.violations import Violation

RULE = "NEXT_TASK"
KINDS = frozenset({LEAD_ADDED, LEAD_STATUS_CHANGED, TASK_UPDATED, TASK_DELETED, SWEEP})


def decide(event: RuleEvent, snapshot: LeadSnapshot, settings: RuleSettings, calendar: WorkCalendar,
           now: datetime) -> list[Action]:
    if event.kind not in KINDS:
        return []
    lead = snapshot.lead
    if is_terminal(lead, settings) or snapshot.open_tasks:
        return []
    if redial.claims(event, snapshot, settings) or redial.finishing(snapshot, settings, calendar, now):
        return []
    template = settings.template_for(lead.status)
    if template is None:
        return []

    missing_field = None
    if template.due.kind == "cadence":
        due = redial.cadence_due(lead, settings, calendar, base=event.at, now=now)
    else:
        d = template_due(template, lead, settings, calendar, base=event.at, now=now)
        due, missing_field = d.at, d.missing_field

    # The deleted or completed task of this event may already be gone from last_task_id.
    gap = max(snapshot.last_task_id or 0, event.task.id if event.task else 0)
    key = partial(action_key, RULE, lead.id, f"s{lead.stage}", f"t{gap}")
    actions: list[Action] = [CreateTask(
        lead_id=lead.id, text=template.task, task_type=template.type, due=due,
        responsible_id=lead.responsible_id, important=template.important, action_key=key("task"))]
    values = dict(rule=RULE, task=template.task, due=when(due, calendar))
    if missing_field:
        actions += note(settings, lead.id, key("note"),
                        ("next_task_fallback", values | {"field": settings.field_label(missing_field)}))
    else:
        actions += note(settings, lead.id, key("note"), ("next_task", values))
    return actions


def crowded(snapshot: LeadSnapshot) -> bool:
    """Two or more open tasks made by people: the lead has no one current task (seed 003).
    Reglament never closes a person's task; it reports them."""
    return len(snapshot.people_tasks()) >= 2


def crowding(snapshot: LeadSnapshot, now: datetime, link: str = "") -> Violation | None:
    """The NEXT_TASK violation of a crowded lead, once per set of open tasks."""
    if not crowded(snapshot):
        return None
    tasks = sorted(snapshot.people_tasks(), key=lambda t: t.id)
    names = ", ".join(f"«{t.text}»" for t in tasks)
    return Violation(rule=RULE, key=f"{RULE}:{snapshot.lead.id}:many:{'-'.join(str(t.id) for t in tasks)}",
                     at=now.timestamp(), manager_id=snapshot.lead.responsible_id or tasks[-1].responsible_id,
                     lead_id=snapshot.lead.id, link=link or None,
                     details=f"У сделки {len(tasks)} открытых задачи вместо одной текущей: {names}")
