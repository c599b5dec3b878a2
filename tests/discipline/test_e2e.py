"""Discipline rules end to end: real-format webhooks from a CRM's sandbox (through the neutral driver,
tests/driver), run through the event job, against real Redis; reminders land in the messaging
outbox (no channel configured)."""

from __future__ import annotations

import pytest

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from connectors.outbox import Outbox
from jobs import context, events
from jobs.handlers import discipline
from reglament import violations
from tests.driver import Events
from tests.discipline.conftest import crm_discipline_settings
from tests.engine.conftest import ACCOUNT

MSK = ZoneInfo("Europe/Moscow")


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def found(r, rule, lead_id=None):
    return [v for v in violations.between(r, ACCOUNT, 0, time.time() + 86400 * 60)
            if v.rule == rule and (lead_id is None or v.lead_id == lead_id)]


def alerts(r, subject):
    return [e for e in Outbox(r, ACCOUNT).entries(200) if e.kind == "alert" and e.subject == subject]


def deliver(evs: Events, kinds: set[str], times: int = 2) -> list:
    """Run the job of each event of these kinds (twice: a redelivery must change nothing)."""
    chosen = [e for e in evs if e.kind in kinds]
    for _ in range(times):
        for e in chosen:
            events.handle_event(e.to_dict())
    return chosen


def test_vague_name_then_postponed_then_closed_without_result(crm, discipline_on, r):
    anna = crm.user("Анна Смирнова")
    lead_id = crm.create_lead("Новая заявка").id
    due = now() + timedelta(hours=1)
    task = crm.create_task(lead_id, "Связаться", due, responsible=anna, by=anna)
    assert deliver(task.events, {"task.added"})
    assert [v.manager_id for v in found(r, "TASK_NAME", lead_id)] == [anna]
    assert len(alerts(r, "Неконкретное название задачи")) == 1

    assert deliver(crm.set_task_due(task.id, due + timedelta(days=1), by=anna), {"task.updated"})
    (moved,) = found(r, "NO_POSTPONE", lead_id)
    assert moved.extra["before"] == ts(due) and moved.extra["after"] == ts(due + timedelta(days=1))
    assert len(alerts(r, "Перенос срока задачи")) == 1

    assert deliver(crm.complete_task(task.id, None, by=anna), {"task.updated"})
    assert len(found(r, "TASK_RESULT", lead_id)) == 1 and len(found(r, "NO_POSTPONE", lead_id)) == 1
    assert len(alerts(r, "Задача закрыта без результата")) == 1
    # No channel reached Анна: each reminder went to the outbox and became one short note on the
    # lead, never a task (the lead keeps its one current task).
    assert not any(t.text.startswith(("Перенос срока задачи", "Задача закрыта")) for t in crm.open_tasks(lead_id))
    notes = crm.comments(lead_id)
    assert sum(t.startswith("Перенос срока задачи") for t in notes) == 1
    assert sum(t.startswith("Задача закрыта без результата") for t in notes) == 1


# A Bitrix24 to-do keeps no history of its deadline; a task bound to the deal does (tasks.task.history.list).
@pytest.mark.crm_options("bitrix24", next_step="task")
def test_postponed_task_we_never_saw_is_found_in_the_events_api_and_reverted(crm, r):
    context.set_settings(crm_discipline_settings(crm, no_postpone={"revert": True}), r)
    anna = crm.user("Анна Смирнова")
    lead_id = crm.create_lead("Новая заявка").id
    due = now() + timedelta(hours=1)
    task = crm.create_task(lead_id, "Перезвон", due, by=anna)   # its task.added webhook is never seen
    postponed = crm.set_task_due(task.id, due + timedelta(hours=2), by=anna)
    mark = crm.mark()
    deliver(postponed, {"task.updated"})
    assert len(found(r, "NO_POSTPONE", lead_id)) == 1
    assert crm.task(task.id).due == due   # put back
    revert = crm.events_since(mark).one("task.updated", task_id=task.id)
    assert revert.fields["due"] == ts(due)
    deliver(Events([revert]), {"task.updated"})   # our own revert's webhook is no breach
    assert len(found(r, "NO_POSTPONE", lead_id)) == 1


def test_a_person_postponing_reglaments_own_task_is_found(crm, discipline_on, r):
    anna = crm.user("Анна Смирнова")
    lead_id = crm.create_lead("Новая заявка").id
    mark = crm.mark()
    deliver(crm.move_lead(lead_id, "Пришел на пробное", by=anna), {"lead.status_changed"})
    deliver(crm.events_since(mark), {"task.added"})      # our own task's webhooks, as the CRM sends them
    (ours,) = crm.open_tasks(lead_id)
    assert ours.text == "Продать"
    assert deliver(crm.set_task_due(ours.id, ours.due + timedelta(days=2), by=anna), {"task.updated"})
    (moved,) = found(r, "NO_POSTPONE", lead_id)
    assert moved.extra["before"] == ts(ours.due) and moved.extra["after"] == ts(ours.due + timedelta(days=2))


def test_comment_codes_from_notes_and_loss_reasons(crm, discipline_on, r):
    anna = crm.user("Анна Смирнова")
    bad, good, refused = (crm.create_lead("Новая заявка").id for _ in range(3))
    for lead_id, text in ((bad, "перезвоните потом"), (good, "Думает")):
        crm.add_comment(lead_id, text, by=anna)
    moves = Events()
    for lead_id in (bad, good):
        moves += crm.move_lead(lead_id, "Просил перезвонить", by=anna)
    moves += crm.move_lead(refused, "Отказ", loss_reason="Не удобно", by=anna)
    deliver(moves, {"lead.status_changed"})
    assert sorted(v.lead_id for v in found(r, "COMMENT_CODES")) == sorted([bad, refused])
    assert {v.extra["reason"] for v in found(r, "COMMENT_CODES")} == {"перезвоните потом", "Не удобно"}
    assert len(alerts(r, "Причина не по кодам")) == 2


def test_a_callback_code_sets_the_callback_time_on_the_one_task(crm, discipline_on, r):
    anna = crm.user("Анна Смирнова")
    lead_id = crm.create_lead("Новая заявка").id
    crm.add_comment(lead_id, "15.03 18:00", by=anna)
    moved = crm.move_lead(lead_id, "Просил перезвонить", by=anna)
    mark = crm.mark()
    deliver(moved, {"lead.status_changed"})
    assert not found(r, "COMMENT_CODES", lead_id)  # a specific date and time is a code
    (callback,) = crm.open_tasks(lead_id)
    year = datetime.now(timezone.utc).year
    at = datetime(year, 3, 15, 18, 0, tzinfo=MSK)
    if at < datetime.now(timezone.utc) - timedelta(days=1):
        at = at.replace(year=year + 1)
    assert callback.due == at
    assert crm.lead(lead_id).value("Дата перезвона") == at
    # The webhooks of our own task are no NO_POSTPONE breach. (Bitrix24's connector knows its
    # own to-do: its add event becomes no neutral event at all.)
    assert deliver(crm.events_since(mark), {"task.added", "task.updated"}) or crm.name == "bitrix24"
    assert not found(r, "NO_POSTPONE", lead_id)


def test_sweep_overdue_incubator_and_unpaid_invoice(crm, discipline_on, r):
    anna = crm.user("Анна Смирнова")
    old = crm.create_lead("Новая заявка", created_at=now() - timedelta(days=40)).id
    fresh = crm.create_lead("Новая заявка").id
    late = crm.create_lead("Новая заявка").id
    crm.create_task(late, "Перезвон", now() - timedelta(hours=3), responsible=anna, by=anna)
    invoice = crm.create_lead("Принимает решение").id
    crm.set_values(invoice, {"Статус счёта": "Выставлен", "Срок оплаты": now() - timedelta(days=3)})

    for _ in range(2):
        discipline.sweep(ACCOUNT)
    assert len(found(r, "OVERDUE", late)) == 1
    assert len(alerts(r, "Просроченная задача")) >= 1
    assert any(e.recipient == "Галина Орлова" for e in alerts(r, "Эскалация: просроченная задача"))
    assert crm.lead(old).stage == "Инкубатор" and crm.lead(fresh).stage == "Новая заявка"
    assert len(found(r, "INCUBATOR", old)) == 1 and not found(r, "INCUBATOR", fresh)
    reminders = [t for t in crm.open_tasks(invoice) if t.text == "Напомнить клиенту об оплате счёта"]
    assert len(reminders) == 1 and len(found(r, "UNPAID_INVOICE", invoice)) == 1

    assert len(crm.open_tasks(invoice)) == 1  # the reminder is the lead's one current task

    # The client promised to pay by yesterday and did not: one more violation, and the open
    # reminder stays the one task (no second one).
    crm.set_values(invoice, {"Обещанная дата оплаты": now() - timedelta(days=1, hours=1)})
    discipline.sweep(ACCOUNT)
    discipline.sweep(ACCOUNT)
    reminders = [t for t in crm.open_tasks(invoice) if t.text == "Напомнить клиенту об оплате счёта"]
    assert len(reminders) == 1 and len(crm.open_tasks(invoice)) == 1
    assert len(found(r, "UNPAID_INVOICE", invoice)) == 2


def test_two_open_tasks_made_by_people_are_one_violation_and_listed_by_the_audit(crm, discipline_on, r):
    from jobs import audit

    anna = crm.user("Анна Смирнова")
    lead_id = crm.create_lead("Принимает решение").id
    for text in ("Позвонить насчёт оплаты", "Отправить договор"):
        crm.create_task(lead_id, text, now() + timedelta(days=1), responsible=anna, by=anna)
    for _ in range(2):
        discipline.sweep(ACCOUNT)
    (v,) = found(r, "NEXT_TASK", lead_id)
    assert v.manager_id == anna and "2 открытых задачи" in v.details
    listed = [f for f in audit.run(context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)).findings
              if f.lead_id == lead_id]
    assert [(f.rules, f.problem.split(":")[0]) for f in listed] == [("NEXT_TASK", "2 открытых задачи вместо одной")]
    assert len(crm.open_tasks(lead_id)) == 2  # a person's tasks are never closed by Reglament
