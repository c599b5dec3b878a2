"""TASK_RESULT (seeds 000, 004): every completed task carries its result."""

from __future__ import annotations

from datetime import datetime

from reglament.discipline_settings import Alert, DisciplineSettings, Outcome
from reglament.crm import Task
from reglament.violations import Violation

RULE = "TASK_RESULT"


def decide(task: Task, by_user: int | None, settings: DisciplineSettings, now: datetime, link: str = "") -> Outcome:
    s = settings.task_result
    if not s.enabled or not task.is_completed:
        return Outcome()
    if len((task.result or "").strip()) >= s.min_length:
        return Outcome()
    if by_user == 0:
        return Outcome()  # amoCRM's robot (a trigger, an integration) closed it
    manager = by_user or task.responsible_id
    if not manager or manager in settings.ignore_users:
        return Outcome()
    key = f"{RULE}:{task.id}"
    v = Violation(rule=RULE, key=key, at=now.timestamp(), manager_id=manager, lead_id=task.lead_id, link=link,
                  details=f"Задача «{task.text}» закрыта без результата", extra={"task_id": task.id})
    return Outcome(violations=(v,), alerts=(Alert("manager", manager, s.subject,
                                                  s.text.format(task=task.text, link=link), key, task.lead_id),))
