"""INCUBATOR (seed 000): a lead with no meeting scheduled a month after it arrived moves to «Инкубатор»,
with a note. A meeting is an open task of a meeting type, a date in the meeting field, or a
status past the meeting.

It agrees with REDIAL: a lead whose redial cadence runs is REDIAL's until the cadence ends
(in «Отказ», or with a call that got through). Reglament's own open task is closed when the
lead moves, so the status's next step («Презент») becomes its one task; a person's task
stays."""

from __future__ import annotations

from datetime import datetime, timedelta

from reglament.discipline_settings import DisciplineSettings, Outcome
from reglament.names import same_name
from reglament.crm import AddNote, CompleteTask, LeadSnapshot, SetLeadStatus
from reglament.violations import Violation

RULE = "INCUBATOR"


def decide(snapshot: LeadSnapshot, meeting_at: object, terminal: list[str], settings: DisciplineSettings,
           now: datetime, link: str = "", cadence_running: bool = False) -> Outcome:
    s = settings.incubator
    lead = snapshot.lead
    if not s.enabled or lead.closed or lead.created_at is None:
        return Outcome()
    if now - lead.created_at < timedelta(days=s.after_days):
        return Outcome()
    if same_name(lead.status, s.status) or any(same_name(lead.status, t) for t in terminal):
        return Outcome()
    if cadence_running and s.skip_running_cadence:
        return Outcome()
    if any(same_name(lead.status, m) for m in s.meeting_statuses):
        return Outcome()
    if meeting_at:
        return Outcome()
    if any(t.task_type and any(same_name(t.task_type, m) for m in s.meeting_task_types) for t in snapshot.open_tasks):
        return Outcome()
    key = f"{RULE}:{lead.id}"
    closes = tuple(CompleteTask(task_id=t.id, lead_id=lead.id, result=s.closed_result,
                                action_key=f"{key}:close:{t.id}")
                   for t in snapshot.open_tasks if t.id in snapshot.own_task_ids)
    actions = (SetLeadStatus(lead_id=lead.id, status=s.status, action_key=f"{key}:status"), *closes,
               AddNote(lead_id=lead.id, text=s.note.format(days=s.after_days, status=s.status),
                       action_key=f"{key}:note"))
    violations = ()
    if s.violation and lead.responsible_id and lead.responsible_id not in settings.ignore_users:
        violations = (Violation(rule=RULE, key=key, at=now.timestamp(), manager_id=lead.responsible_id,
                                lead_id=lead.id, link=link,
                                details=f"За {s.after_days} дней встреча не назначена (статус «{lead.status}»)"),)
    return Outcome(violations=violations, actions=actions)
