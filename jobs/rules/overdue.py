"""OVERDUE (seeds 000, 004): no overdue tasks. Periodic: a reminder to the manager once a task is
overdue, a violation, and the head told after a further (working) delay."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from reglament.discipline_settings import Alert, DisciplineSettings, Outcome
from jobs.rules.no_postpone import when
from reglament.calendar import WorkCalendar
from reglament.crm import Task
from reglament.violations import Violation

RULE = "OVERDUE"


def decide(task: Task, settings: DisciplineSettings, calendar: WorkCalendar, now: datetime, tz: tzinfo,
           manager_name: str = "", link: str = "") -> Outcome:
    s = settings.overdue
    manager = task.responsible_id
    if not s.enabled or task.is_completed or not manager or manager in settings.ignore_users:
        return Outcome()
    if now < task.due + timedelta(minutes=s.grace_minutes):
        return Outcome()
    # One deadline is one breach: a task moved and overdue again is a new one.
    key = f"{RULE}:{task.id}:{int(task.due.timestamp())}"
    due = when(task.due, tz)
    v = Violation(rule=RULE, key=key, at=(task.due + timedelta(minutes=s.grace_minutes)).timestamp(),
                  manager_id=manager, lead_id=task.lead_id or None, link=link,
                  details=f"Задача «{task.text}» просрочена (срок {due})",
                  extra={"task_id": task.id, "due": task.due.timestamp()})
    alerts = [Alert("manager", manager, s.subject, s.text.format(task=task.text, due=due, link=link), key,
                    task.lead_id or None)]
    if s.escalate_after_minutes and calendar.working_between(task.due, now) >= timedelta(
            minutes=s.escalate_after_minutes):
        alerts.append(Alert("head", manager, s.escalation_subject,
                            s.escalation_text.format(manager=manager_name or manager, task=task.text, due=due,
                                                     link=link), f"{key}:escalate", task.lead_id or None))
    return Outcome(violations=(v,), alerts=tuple(alerts))
