"""The driver's own contract, once per CRM: each write returns the events its webhook became, in
neutral fields, and the reads give back what was written. A second CRM's driver passes these
before the end-to-end suites run on it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.driver import LOST, ApiCall


def soon(**delta) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(**delta)


def test_a_lead_with_a_client_then_moved(crm):
    anna = crm.user("Анна Смирнова")
    callback = soon(days=2)
    created = crm.create_lead("Новая заявка", name="Проверка", responsible=anna, phone="+7 901 555-66-77",
                              client="Ольга", values={"Источник": "Сайт", "Дата перезвона": callback})
    added = created.events.one("lead.added")
    assert added.fields["lead_id"] == created.id and added.fields["responsible_id"] == anna
    assert added.fields["values"]["Источник"] == "Сайт"
    lead = crm.lead(created.id)
    assert (lead.name, lead.stage, lead.responsible) == ("Проверка", "Новая заявка", anna)
    assert lead.value("Дата перезвона") == callback and lead.value("Источник") == "Сайт"
    (client,) = [c for c in crm.contacts() if c.id in lead.contacts]
    assert client.name == "Ольга" and client.phones == ("79015556677",) and created.id in client.leads

    moved = crm.move_lead(created.id, LOST, loss_reason="Не удобно", by=anna).one("lead.status_changed")
    assert moved.fields["lead_id"] == created.id and moved.fields["closed"] == "lost" and moved.fields["by"] == anna
    lead = crm.lead(created.id)
    assert lead.stage == LOST and lead.loss_reason == "Не удобно"
    crm.add_field("Срок оплаты", "date")
    updated = crm.set_values(created.id, {"Срок оплаты": callback, "Источник": "Авито"}).one("lead.updated")
    assert updated.fields["values"]["Источник"] == "Авито"
    assert crm.lead(created.id).value("Срок оплаты") == callback and crm.lead(created.id).value("Источник") == "Авито"
    taken = crm.set_responsible(created.id, crm.user("Борис Иванов")).one("lead.responsible_changed")
    assert taken.fields["responsible_id"] == crm.user("Борис Иванов") == crm.lead(created.id).responsible




def test_a_task_moved_then_completed(crm):
    anna = crm.user("Анна Смирнова")
    lead_id = crm.create_lead("Новая заявка").id
    due = soon(hours=5)
    task = crm.create_task(lead_id, "Позвонить", due, responsible=anna, type="Важный звонок", by=anna)
    new = task.events.one("task.added")
    assert (new.fields["task_id"], new.fields["lead_id"], new.fields["created_by"]) == (task.id, lead_id, anna)
    (seen,) = crm.open_tasks(lead_id)
    assert (seen.id, seen.text, seen.due, seen.responsible, seen.type, seen.completed) == \
        (task.id, "Позвонить", due, anna, "Важный звонок" if crm.has_task_types else "", False)

    later = crm.set_task_due(task.id, due + timedelta(hours=1), by=anna).one("task.updated")
    assert later.fields["due"] == int((due + timedelta(hours=1)).timestamp()) and later.fields["by"] == anna
    done = crm.complete_task(task.id, "Договорились", by=anna).one("task.updated")
    assert done.fields["completed"] and done.fields["result"] == "Договорились"
    assert crm.open_tasks(lead_id) == [] and [t.id for t in crm.tasks(lead_id)] == [task.id]
    assert (crm.task(task.id).completed, crm.task(task.id).result) == (True, "Договорились")


def test_a_call_and_a_comment(crm):
    anna = crm.user("Анна Смирнова")
    lead_id = crm.create_lead("Новая заявка", phone="+7 902 000-11-22").id
    at = soon(minutes=-5)
    call = crm.log_call(lead_id, "out", "busy", duration=12, at=at, by=anna).one("call.ended")
    assert (call.fields["lead_id"], call.fields["direction"], call.fields["duration"], call.fields["user_id"],
            call.fields["at"]) == (lead_id, "out", 12, anna, int(at.timestamp()))
    assert call.fields["phone"].endswith("9020001122")
    comment = crm.add_comment(lead_id, "Клиент просил написать", by=anna).one("comment.added")
    assert (comment.fields["lead_id"], comment.fields["text"], comment.fields["by"]) == \
        (lead_id, "Клиент просил написать", anna)
    assert crm.comments(lead_id) == ["Клиент просил написать"]  # the call is not a comment


def test_a_mark_sees_what_happened_after_it(crm):
    before = crm.create_lead("Новая заявка").id
    mark = crm.mark()
    arrived = soon(days=-3)
    after = crm.create_lead("Новая заявка", created_at=arrived).id
    assert [e.fields["lead_id"] for e in crm.events_since(mark).of("lead.added")] == [after]
    assert ApiCall("create", "lead") in crm.calls_since(mark)
    assert crm.lead(after).created_at == arrived
    assert {before, after} <= {lead.id for lead in crm.leads()}


def test_a_deleted_task_is_gone(crm):
    lead_id = crm.create_lead("Новая заявка").id
    task = crm.create_task(lead_id, "Позвонить", soon(hours=1))
    crm.delete_task(task.id)
    assert crm.open_tasks(lead_id) == [] and crm.task(task.id) is None
