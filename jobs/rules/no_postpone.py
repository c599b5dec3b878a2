"""NO_POSTPONE (seed 000): do not move a task's deadline — close it with a result and open a new one.

Pure: given the task as it is now and the deadline we knew before, decide the violation, the
alert and (optionally) the revert. One move is one breach: the key names the task and the
deadline it was moved to.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from reglament.discipline_settings import Alert, DisciplineSettings, Outcome
from reglament.names import same_name
from reglament.crm import SetTaskDue, Task
from reglament.violations import Violation

RULE = "NO_POSTPONE"


def when(dt: datetime, tz: tzinfo) -> str:
    return dt.astimezone(tz).strftime("%d.%m.%Y %H:%M")


def decide(task: Task, before: datetime | None, by_user: int | None, settings: DisciplineSettings,
           now: datetime, tz: tzinfo, link: str = "") -> Outcome:
    s = settings.no_postpone
    remember = {"due": task.due}
    if not s.enabled or before is None or task.is_completed:
        return Outcome(remember=remember)
    moved = task.due - before
    if abs(moved) < timedelta(minutes=max(s.tolerance_minutes, 0)) or moved == timedelta(0):
        return Outcome(remember=remember)
    if s.only_later and moved < timedelta(0):
        return Outcome(remember=remember)
    if not by_user or by_user in settings.ignore_users:
        return Outcome(remember=remember)
    if any(same_name(task.text, n) for n in s.allowed_tasks):
        return Outcome(remember=remember)
    key = f"{RULE}:{task.id}:{int(task.due.timestamp())}"
    manager = by_user or task.responsible_id
    v = Violation(rule=RULE, key=key, at=now.timestamp(), manager_id=manager, lead_id=task.lead_id, link=link,
                  details=f"Срок задачи «{task.text}» перенесён с {when(before, tz)} на {when(task.due, tz)}",
                  extra={"task_id": task.id, "before": before.timestamp(), "after": task.due.timestamp()})
    text = s.text.format(task=task.text, before=when(before, tz), after=when(task.due, tz), link=link)
    actions = ()
    if s.revert:
        actions = (SetTaskDue(task_id=task.id, lead_id=task.lead_id, due=before, action_key=f"{key}:revert"),)
        remember = {"due": before}
    return Outcome(violations=(v,), actions=actions,
                   alerts=(Alert("manager", manager, s.subject, text, key, task.lead_id),), remember=remember)
