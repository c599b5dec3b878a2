"""TASK_NAME (seed 000): a task's name states the goal of the next step, not «Связаться» or «Задача»."""

from __future__ import annotations

import re
from datetime import datetime

from reglament.discipline_settings import Alert, DisciplineSettings, Outcome
from reglament.names import norm
from reglament.crm import Task
from reglament.violations import Violation

RULE = "TASK_NAME"


def _bare(text: str) -> str:
    """The name without punctuation, emoji and a leading «❗ ВАЖНО:»-style marker."""
    return norm(re.sub(r"[^\w\s-]", " ", text))


def is_vague(text: str, settings: DisciplineSettings) -> bool:
    bare = _bare(text)
    return not bare or any(bare == _bare(n) for n in settings.task_name.vague_names)


def decide(task: Task, created_by: int | None, settings: DisciplineSettings, now: datetime,
           link: str = "") -> Outcome:
    s = settings.task_name
    if not s.enabled or not created_by or created_by in settings.ignore_users:
        return Outcome()  # made by amoCRM's robot or an integration, not a person
    if not is_vague(task.text, settings):
        return Outcome()
    key = f"{RULE}:{task.id}"
    v = Violation(rule=RULE, key=key, at=now.timestamp(), manager_id=created_by, lead_id=task.lead_id, link=link,
                  details=f"Задача названа «{task.text}»", extra={"task_id": task.id})
    return Outcome(violations=(v,), alerts=(Alert("manager", created_by, s.subject,
                                                  s.text.format(task=task.text, link=link), key, task.lead_id),))
