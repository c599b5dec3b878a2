"""UNPAID_INVOICE (seed 004): an invoice sent and not paid by its due date → a reminder for the
manager; again when a date the client promised passes. One reminder per date.

The reminder call becomes the lead's one current task (Reglament's own open task is closed
for it); when a person's task is open it stays the one task, and the manager gets an alert."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from jobs.rules.one_task import replace_own
from reglament.calendar import WorkCalendar
from reglament.crm import CreateTask, Task
from reglament.discipline_settings import Alert, DisciplineSettings, Outcome
from reglament.names import same_name
from reglament.violations import Violation

RULE = "UNPAID_INVOICE"


def decide(lead_id: int, responsible: int | None, status: str | None, due: date | None, promised: date | None,
           settings: DisciplineSettings, calendar: WorkCalendar, now: datetime, today: date,
           link: str = "", open_tasks: Sequence[Task] = (), own_task_ids: frozenset[int] = frozenset()) -> Outcome:
    s = settings.unpaid_invoice
    if not s.enabled or due is None or not any(same_name(status, v) for v in s.sent_values):
        return Outcome()
    if promised is not None and promised > due:
        stage, deadline = "promised", promised
    else:
        stage, deadline = "due", due
    if today <= deadline:
        return Outcome()
    key = f"{RULE}:{lead_id}:{stage}:{deadline.isoformat()}"
    task = CreateTask(lead_id=lead_id, text=s.task, task_type=s.task_type,
                      due=calendar.add_working(now, timedelta(hours=s.task_due_hours)),
                      responsible_id=responsible, action_key=f"{key}:task")
    what = "обещанная дата оплаты" if stage == "promised" else "срок оплаты"
    v = Violation(rule=RULE, key=key, at=now.timestamp(), manager_id=responsible, lead_id=lead_id, link=link,
                  details=f"Счёт не оплачен: {what} {deadline.strftime('%d.%m.%Y')} прошла",
                  extra={"stage": stage, "date": deadline.isoformat()})
    if any(same_name(t.text, s.task) for t in open_tasks):
        return Outcome(violations=(v,))
    actions = replace_own(task, open_tasks, own_task_ids, s.replaced_result)
    if actions is not None:
        return Outcome(violations=(v,), actions=tuple(actions))
    alert = Alert(to="manager", user_id=responsible, subject=s.alert_subject, key=f"{key}:alert", lead_id=lead_id,
                  text=s.alert_text.format(what=what, date=deadline.strftime("%d.%m.%Y"), link=link))
    return Outcome(violations=(v,), alerts=(alert,))
