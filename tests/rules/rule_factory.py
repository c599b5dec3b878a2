"""Builders shared by the rule tests: a Moscow calendar with Russian holidays, leads,
snapshots and events with short defaults. 2026-03-13 is a Friday; 2026-03-09 a holiday."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from reglament.rule_settings import RuleSettings
from reglament.calendar import WorkCalendar
from reglament.crm import (Call, CallDirection, CallStatus, Lead, LeadSnapshot, RuleEvent, Task,
                           CreateTask, AddNote, SetLeadField, SetLeadStatus)

MSK = ZoneInfo("Europe/Moscow")
WEEK = {d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}
CAL = WorkCalendar("Europe/Moscow", WEEK, "RU")
SETTINGS = RuleSettings()
LEAD_ID = 501
MANAGER = 7001

STATUS_IDS = {"Недозвон": 11, "Просил перезвонить": 12, "Записался на пробное": 13, "Не пришел на пробное": 14,
              "Пришел на пробное": 15, "Принимает решение": 16, "Клиент": 17, "Отказ": 18,
              "Расторгнут договор": 19, "Завершил": 20, "Новая заявка": 21}


def m(y, mo, d, h=0, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=MSK)


def lead(status="Недозвон", *, closed=None, created=None, source=None, **fields) -> Lead:
    return Lead(id=LEAD_ID, name="Иван, футбол 6 лет", stage=str(STATUS_IDS.get(status, 99)), status=status,
                pipeline="1", responsible_id=MANAGER, created_at=created or m(2026, 3, 1, 10), closed=closed,
                fields=fields, custom={"Источник": source} if source else {})


def task(id=900, text="Дозвониться", *, completed=False, result=None, created_at=None, due=None) -> Task:
    return Task(id=id, lead_id=LEAD_ID, text=text, task_type="Звонок", due=due or m(2026, 3, 16, 11),
                responsible_id=MANAGER, is_completed=completed, result=result, created_at=created_at)


def snap(the_lead: Lead, open_tasks=(), last_task_id=None) -> LeadSnapshot:
    return LeadSnapshot(lead=the_lead, open_tasks=tuple(open_tasks), last_task_id=last_task_id)


def event(kind: str, at: datetime, **kw) -> RuleEvent:
    return RuleEvent(kind=kind, lead_id=LEAD_ID, at=at, **kw)


def call(at: datetime, status=CallStatus.NOT_REACHED, direction=CallDirection.OUT, id=None) -> Call:
    return Call(id=id or f"c-{at:%d%H%M}", direction=direction, status=status, at=at)


def call_event(at: datetime, status=CallStatus.NOT_REACHED, direction=CallDirection.OUT, id=None) -> RuleEvent:
    return RuleEvent.for_call(LEAD_ID, call(at, status, direction, id))


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def only(actions, kind):
    found = of(actions, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {actions}"
    return found[0]


def applied(snapshot: LeadSnapshot, actions, task_id=None) -> LeadSnapshot:
    """The snapshot after the executor applied these actions (for duplicate-delivery cases)."""
    lead_, tasks = snapshot.lead, list(snapshot.open_tasks)
    fields = dict(lead_.fields)
    status = lead_.status
    for a in actions:
        if isinstance(a, SetLeadField):
            fields[a.field] = a.value
        elif isinstance(a, SetLeadStatus):
            status = a.status
        elif isinstance(a, CreateTask):
            tasks.append(Task(id=task_id or 9999, lead_id=a.lead_id, text=a.text, task_type=a.task_type, due=a.due,
                              responsible_id=a.responsible_id))
    new_lead = Lead(id=lead_.id, name=lead_.name, stage=str(STATUS_IDS.get(status, 99)), status=status,
                    pipeline=lead_.pipeline, responsible_id=lead_.responsible_id,
                    created_at=lead_.created_at, closed=lead_.closed, fields=fields)
    last = max([t.id for t in tasks] + [snapshot.last_task_id or 0]) or None
    return LeadSnapshot(lead=new_lead, open_tasks=tuple(tasks), last_task_id=last)


__all__ = ["AddNote", "CAL", "CreateTask", "LEAD_ID", "MANAGER", "SETTINGS", "SetLeadField", "SetLeadStatus",
           "applied", "call", "call_event", "event", "lead", "m", "of", "only", "snap", "task"]
