"""Discipline rules end to end: real-format webhooks from the amoCRM sandbox, parsed and run through
the event job, against real Redis; reminders land in the messaging outbox (no channel configured)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from app.amocrm import parser
from connectors.outbox import Outbox
from jobs import events
from jobs.handlers import discipline
from reglament import violations
from tests.engine.conftest import ACCOUNT, ANNA, STATUS

AS_ANNA = {"X-Sandbox-User": str(ANNA)}
MSK = ZoneInfo("Europe/Moscow")


def now_ts() -> int:
    return int(datetime.now(timezone.utc).timestamp())


def found(r, rule, lead_id=None):
    return [v for v in violations.between(r, ACCOUNT, 0, time.time() + 86400 * 60)
            if v.rule == rule and (lead_id is None or v.lead_id == lead_id)]


def alerts(r, subject):
    return [e for e in Outbox(r, ACCOUNT).entries(200) if e.kind == "alert" and e.subject == subject]


def deliver(amo, since: int, kinds: set[str], times: int = 2) -> list:
    """Wait for the sandbox's webhooks, parse them as the receiver does, run each event's job (twice:
    a redelivery must change nothing)."""
    assert amo.server.wait_webhooks(5)
    evs = [e for d in amo.server.dispatcher.log(since) if d["ok"] for e in parser.parse(d["body"], ACCOUNT).events
           if e.kind in kinds]
    for _ in range(times):
        for e in evs:
            events.handle_event(e.to_dict())
    return evs


def hook_mark(amo) -> int:
    log = amo.server.dispatcher.log()
    return log[-1]["index"] + 1 if log else 0


def subscribe(amo, receiver):
    amo.api("POST", "/api/v4/webhooks", json={"destination": receiver.url,
                                              "settings": ["add_task", "update_task", "status_lead"]})


def test_vague_name_then_postponed_then_closed_without_result(amo, disc, receiver, r):
    subscribe(amo, receiver)
    lead_id = amo.create_lead("Новая заявка")
    mark = hook_mark(amo)
    due = now_ts() + 3600
    task_id = amo.api("POST", "/api/v4/tasks", headers=AS_ANNA, json=[{
        "text": "Связаться", "complete_till": due, "entity_type": "leads", "entity_id": lead_id,
        "responsible_user_id": ANNA}])["_embedded"]["tasks"][0]["id"]
    assert deliver(amo, mark, {"task.added"})
    assert [v.manager_id for v in found(r, "TASK_NAME", lead_id)] == [ANNA]
    assert len(alerts(r, "Неконкретное название задачи")) == 1

    mark = hook_mark(amo)
    amo.api("PATCH", f"/api/v4/tasks/{task_id}", headers=AS_ANNA, json={"complete_till": due + 86400})
    assert deliver(amo, mark, {"task.updated"})
    (moved,) = found(r, "NO_POSTPONE", lead_id)
    assert moved.extra["before"] == due and moved.extra["after"] == due + 86400
    assert len(alerts(r, "Перенос срока задачи")) == 1

    mark = hook_mark(amo)
    amo.api("PATCH", f"/api/v4/tasks/{task_id}", headers=AS_ANNA, json={"is_completed": True})
    assert deliver(amo, mark, {"task.updated"})
    assert len(found(r, "TASK_RESULT", lead_id)) == 1 and len(found(r, "NO_POSTPONE", lead_id)) == 1
    assert len(alerts(r, "Задача закрыта без результата")) == 1
    # No channel reached Анна: each reminder went to the outbox and became one short note on the
    # lead, never a task (the lead keeps its one current task).
    assert not any(t["text"].startswith(("Перенос срока задачи", "Задача закрыта")) for t in amo.open_tasks(lead_id))
    notes = [n["params"]["text"] for n in
             amo.api("GET", f"/api/v4/leads/{lead_id}/notes").get("_embedded", {}).get("notes", [])]
    assert sum(t.startswith("Перенос срока задачи") for t in notes) == 1
    assert sum(t.startswith("Задача закрыта без результата") for t in notes) == 1


def test_postponed_task_we_never_saw_is_found_in_the_events_api_and_reverted(amo, r, receiver):
    from jobs import context
    from tests.discipline.conftest import discipline_settings

    context.set_settings(discipline_settings(amo.server.url, no_postpone={"revert": True}), r)
    lead_id = amo.create_lead("Новая заявка")
    due = now_ts() + 3600
    task_id = amo.api("POST", "/api/v4/tasks", headers=AS_ANNA, json=[{
        "text": "Перезвон", "complete_till": due, "entity_type": "leads", "entity_id": lead_id}]
    )["_embedded"]["tasks"][0]["id"]
    subscribe(amo, receiver)   # the task.added webhook was never seen
    mark = hook_mark(amo)
    amo.api("PATCH", f"/api/v4/tasks/{task_id}", headers=AS_ANNA, json={"complete_till": due + 7200})
    deliver(amo, mark, {"task.updated"})
    assert len(found(r, "NO_POSTPONE", lead_id)) == 1
    assert amo.api("GET", f"/api/v4/tasks/{task_id}")["complete_till"] == due   # put back
    deliver(amo, hook_mark(amo) - 1, {"task.updated"})   # our own revert's webhook is no breach
    assert len(found(r, "NO_POSTPONE", lead_id)) == 1


def test_comment_codes_from_notes_and_loss_reasons(amo, disc, receiver, r):
    subscribe(amo, receiver)
    bad, good, refused = (amo.create_lead("Новая заявка") for _ in range(3))
    for lead_id, text in ((bad, "перезвоните потом"), (good, "Думает")):
        amo.api("POST", "/api/v4/leads/notes", headers=AS_ANNA, json=[{
            "entity_id": lead_id, "note_type": "common", "params": {"text": text}}])
    mark = hook_mark(amo)
    amo.api("PATCH", "/api/v4/leads", headers=AS_ANNA, json=[
        {"id": bad, "status_id": STATUS["Просил перезвонить"], "pipeline_id": 7700001},
        {"id": good, "status_id": STATUS["Просил перезвонить"], "pipeline_id": 7700001},
        {"id": refused, "status_id": STATUS["Отказ"], "pipeline_id": 7700001, "loss_reason_id": 5300005}])
    deliver(amo, mark, {"lead.status_changed"})
    assert sorted(v.lead_id for v in found(r, "COMMENT_CODES")) == sorted([bad, refused])
    assert {v.extra["reason"] for v in found(r, "COMMENT_CODES")} == {"перезвоните потом", "Не удобно"}
    assert len(alerts(r, "Причина не по кодам")) == 2


def test_a_callback_code_sets_the_callback_time_on_the_one_task(amo, disc, receiver, r):
    subscribe(amo, receiver)
    lead_id = amo.create_lead("Новая заявка")
    amo.api("POST", "/api/v4/leads/notes", headers=AS_ANNA, json=[{
        "entity_id": lead_id, "note_type": "common", "params": {"text": "15.03 18:00"}}])
    mark = hook_mark(amo)
    amo.api("PATCH", "/api/v4/leads", headers=AS_ANNA, json=[
        {"id": lead_id, "status_id": STATUS["Просил перезвонить"], "pipeline_id": 7700001}])
    deliver(amo, mark, {"lead.status_changed"})
    assert not found(r, "COMMENT_CODES", lead_id)  # a specific date and time is a code
    (callback,) = amo.open_tasks(lead_id)
    year = datetime.now(timezone.utc).year
    at = datetime(year, 3, 15, 18, 0, tzinfo=MSK)
    if at < datetime.now(timezone.utc) - timedelta(days=1):
        at = at.replace(year=year + 1)
    assert callback["complete_till"] == int(at.timestamp())
    assert amo.field(lead_id, "Дата перезвона") == int(at.timestamp())
    deliver(amo, hook_mark(amo) - 1, {"task.updated"})  # our own move is no NO_POSTPONE breach
    assert not found(r, "NO_POSTPONE", lead_id)


def test_sweep_overdue_incubator_and_unpaid_invoice(amo, disc, r):
    old = amo.create_lead("Новая заявка")
    amo.api("PATCH", f"/api/v4/leads/{old}", json={"created_at": now_ts() - 40 * 86400})
    fresh = amo.create_lead("Новая заявка")
    late = amo.create_lead("Новая заявка")
    amo.api("POST", "/api/v4/tasks", headers=AS_ANNA, json=[{
        "text": "Перезвон", "complete_till": now_ts() - 3 * 3600, "entity_type": "leads", "entity_id": late,
        "responsible_user_id": ANNA}])
    invoice = amo.create_lead("Принимает решение")
    amo.api("PATCH", f"/api/v4/leads/{invoice}", json={"custom_fields_values": [
        {"field_id": 883020, "values": [{"value": "Выставлен"}]},
        {"field_id": 883021, "values": [{"value": now_ts() - 3 * 86400}]}]})

    for _ in range(2):
        discipline.sweep(ACCOUNT)
    assert len(found(r, "OVERDUE", late)) == 1
    assert len(alerts(r, "Просроченная задача")) >= 1
    assert any(e.recipient == "Галина Орлова" for e in alerts(r, "Эскалация: просроченная задача"))
    assert amo.lead(old)["status_id"] == STATUS["Инкубатор"] and amo.lead(fresh)["status_id"] == STATUS["Новая заявка"]
    assert len(found(r, "INCUBATOR", old)) == 1 and not found(r, "INCUBATOR", fresh)
    reminders = [t for t in amo.open_tasks(invoice) if t["text"] == "Напомнить клиенту об оплате счёта"]
    assert len(reminders) == 1 and len(found(r, "UNPAID_INVOICE", invoice)) == 1

    assert len(amo.open_tasks(invoice)) == 1  # the reminder is the lead's one current task

    # The client promised to pay by yesterday and did not: one more violation, and the open
    # reminder stays the one task (no second one).
    amo.api("PATCH", f"/api/v4/leads/{invoice}", json={"custom_fields_values": [
        {"field_id": 883022, "values": [{"value": now_ts() - 86400 - 3600}]}]})
    discipline.sweep(ACCOUNT)
    discipline.sweep(ACCOUNT)
    reminders = [t for t in amo.open_tasks(invoice) if t["text"] == "Напомнить клиенту об оплате счёта"]
    assert len(reminders) == 1 and len(amo.open_tasks(invoice)) == 1
    assert len(found(r, "UNPAID_INVOICE", invoice)) == 2


def test_two_open_tasks_made_by_people_are_one_violation_and_listed_by_the_audit(amo, disc, r):
    from jobs import audit, context

    lead_id = amo.create_lead("Принимает решение")
    for text in ("Позвонить насчёт оплаты", "Отправить договор"):
        amo.api("POST", "/api/v4/tasks", headers=AS_ANNA, json=[{
            "text": text, "complete_till": now_ts() + 86400, "entity_type": "leads", "entity_id": lead_id,
            "responsible_user_id": ANNA}])
    for _ in range(2):
        discipline.sweep(ACCOUNT)
    (v,) = found(r, "NEXT_TASK", lead_id)
    assert v.manager_id == ANNA and "2 открытых задачи" in v.details
    listed = [f for f in audit.run(context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)).findings
              if f.lead_id == lead_id]
    assert [(f.rules, f.problem.split(":")[0]) for f in listed] == [("NEXT_TASK", "2 открытых задачи вместо одной")]
    assert len(amo.open_tasks(lead_id)) == 2  # a person's tasks are never closed by Reglament
