"""The task rules end to end: handlers and sweep against the running amoCRM sandbox and real Redis."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from app.amocrm import parser
from jobs import audit, context, events, rule_jobs, sweep
from reglament.events import Event, event_key
from tests.engine.conftest import ACCOUNT, ANNA, BORIS, STATUS, engine_settings, now

MSK = ZoneInfo("Europe/Moscow")


def status_event(amo, lead_id: int, kind: str = "lead.status_changed") -> Event:
    """The event a status webhook of this lead becomes (fields as the parser gives them)."""
    lead = amo.lead(lead_id)
    fields = {"lead_id": lead_id, "stage": str(lead["status_id"]), "pipeline": str(lead["pipeline_id"]),
              "at": lead["updated_at"], "created_at": lead["created_at"]}
    return Event(account=ACCOUNT, source="amocrm", kind=kind, entity_id=lead_id, fields=fields,
                 key=event_key(kind, lead_id, lead["updated_at"]))


def ts(dt: datetime) -> int:
    return int(dt.timestamp())


# --- each status of the table ends with exactly one right task --------------------------------

def _callback():
    at = (now() + timedelta(days=1, hours=3)).replace(second=0, microsecond=0)
    return {"Дата перезвона": ts(at)}, lambda base: at


def _trial():
    at = (now() + timedelta(days=3)).replace(second=0, microsecond=0)
    return {"Дата пробного": ts(at)}, lambda base: at - timedelta(days=1)


def _subscription():
    end = (now() + timedelta(days=30)).astimezone(MSK).date()
    midnight = datetime(end.year, end.month, end.day, tzinfo=MSK)
    return {"Окончание абонемента": ts(midnight)}, lambda base: midnight - timedelta(days=7)


# status → (lead fields, expected due from the event time, task text, task type id)
TABLE = {
    # REDIAL counts attempts in whole minutes.
    "Недозвон": (lambda: ({}, lambda base: base.replace(second=0) + timedelta(hours=1)), "Дозвониться", 1),
    "Просил перезвонить": (_callback, "Перезвон", 3012001),  # important: the «Важный звонок» type
    "Записался на пробное": (_trial, "Напомнить", 1),
    "Не пришел на пробное": (lambda: ({}, lambda base: base + timedelta(days=1)), "Записать", 1),
    "Пришел на пробное": (lambda: ({}, lambda base: base + timedelta(days=1)), "Продать", 1),
    "Принимает решение": (lambda: ({}, lambda base: base + timedelta(days=2)), "Продать", 1),
    "Клиент": (_subscription, "Продление", 1),
}


@pytest.mark.parametrize("status", list(TABLE))
def test_each_status_gets_exactly_one_right_task(amo, engine, status):
    make, text, type_id = TABLE[status]
    fields, expected_due = make()
    lead_id = amo.create_lead(status, responsible=BORIS, fields=fields)
    event = status_event(amo, lead_id)
    for _ in range(2):  # a repeated delivery changes nothing
        rule_jobs.task_rules(event)
    tasks = amo.open_tasks(lead_id)
    assert len(tasks) == 1, tasks
    task = tasks[0]
    assert task["text"] == text
    at = datetime.fromtimestamp(event.fields["at"], timezone.utc)
    assert task["complete_till"] == ts(expected_due(at))
    assert task["responsible_user_id"] == BORIS
    assert task["task_type_id"] == type_id
    if status == "Недозвон":  # REDIAL counted the move into Недозвон as attempt Н1
        assert amo.field(lead_id, "Попытка дозвона") == "Н1"


@pytest.mark.parametrize("status", ["Отказ", "Расторгнут договор", "Завершил", "won", "lost"])
def test_a_terminal_lead_gets_no_task(amo, engine, status):
    lead_id = amo.create_lead(status)
    rule_jobs.task_rules(status_event(amo, lead_id))
    assert amo.open_tasks(lead_id) == []
    assert all(p.snapshot.lead.id != lead_id
               for p in sweep.plan(context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)))


def test_a_lead_with_an_open_task_gets_no_second_one(amo, engine):
    lead_id = amo.create_lead("Принимает решение")
    amo.api("POST", "/api/v4/tasks", json=[{"text": "Позвонить", "complete_till": ts(now()) + 3600,
                                            "entity_type": "leads", "entity_id": lead_id}])
    rule_jobs.task_rules(status_event(amo, lead_id))
    assert [t["text"] for t in amo.open_tasks(lead_id)] == ["Позвонить"]


def test_completing_the_task_brings_the_next_one(amo, engine):
    lead_id = amo.create_lead("Принимает решение")
    rule_jobs.task_rules(status_event(amo, lead_id))
    (first,) = amo.open_tasks(lead_id)
    amo.api("PATCH", "/api/v4/tasks", json=[{"id": first["id"], "is_completed": True,
                                             "result": {"text": "Думает"}}])
    done = Event(account=ACCOUNT, source="amocrm", kind="task.updated", entity_id=first["id"],
                 fields={"task_id": first["id"], "lead_id": lead_id, "completed": True, "text": first["text"],
                         "result": "Думает", "at": ts(now())}, key="t1")
    rule_jobs.task_rules(done)
    rule_jobs.task_rules(done)
    (second,) = amo.open_tasks(lead_id)
    assert second["id"] != first["id"] and second["text"] == "Продать"


# --- races: three deliveries of one webhook and a sweep ---------------------------------------

def test_three_runs_of_a_webhook_job_during_a_sweep_leave_one_task(amo, engine):
    amo.account.generate_leads(60, without_task_share=0.2, seed_value=3)
    lead_id = amo.create_lead("Принимает решение")
    data = status_event(amo, lead_id).to_dict()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def job():
        start.wait()
        try:
            events.handle_event(data)
        except BaseException as e:  # noqa: BLE001 — reported below
            errors.append(e)

    def sweeper():
        start.wait()
        try:
            sweep.run(context.executor_for(ACCOUNT), context.crm_for(ACCOUNT))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=job) for _ in range(3)] + [threading.Thread(target=sweeper)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(amo.open_tasks(lead_id)) == 1
    # ...and the sweep afterwards finds nothing left to do anywhere.
    assert list(sweep.plan(context.executor_for(ACCOUNT), context.crm_for(ACCOUNT))) == []


# --- REDIAL through real calls ----------------------------------------------------------------

def _amocrm_call_note(amo, n: int, at: int) -> Event:
    """A failed call logged in amoCRM, as the sandbox's note webhook delivers it."""
    seen = len(amo.server.dispatcher.log())
    amo.api("POST", "/api/v4/calls", json=[{
        "direction": "outbound", "phone": "89990001122", "duration": 0, "source": "test-pbx",
        "call_status": 6, "uniq": f"call-{n}", "created_at": at, "responsible_user_id": ANNA}])
    assert amo.server.wait_webhooks(5)
    bodies = [d["body"] for d in amo.server.dispatcher.log(seen) if d["ok"]]
    (call,) = [e for b in bodies for e in parser.parse(b, ACCOUNT).events
               if e.kind == "call.ended" and e.fields["direction"] == "out"]
    return call


def _zadarma_call(amo, n: int, at: int) -> Event:
    """The same failed call, as Zadarma's own NOTIFY_OUT_END webhook (no lead id: found by the phone)."""
    from urllib.parse import urlencode

    from app.telephony import zadarma

    started = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    body = urlencode({"event": "NOTIFY_OUT_END", "call_start": started, "pbx_call_id": f"out_{n}",
                      "caller_id": "74951234567", "destination": "79990001122", "internal": "102",
                      "duration": "0", "disposition": "no answer", "status_code": "19", "is_recorded": "0",
                      "call_id_with_rec": ""}).encode()
    (call,) = zadarma.parse(body, ACCOUNT).events
    return call


@pytest.mark.parametrize("call_event", [_amocrm_call_note, _zadarma_call], ids=["amocrm-note", "zadarma"])
def test_seven_failed_calls_end_in_refusal(amo, engine, receiver, call_event):
    """REDIAL counts a failed call the same whether amoCRM's call note or the telephony
    provider's own webhook reports it."""
    amo.api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["note_lead"]})
    contact = amo.api("POST", "/api/v4/contacts", json=[{"name": "Пётр Дозвонов", "custom_fields_values": [
        {"field_code": "PHONE", "values": [{"value": "+7 999 000-11-22", "enum_code": "WORK"}]}]}])
    contact_id = contact["_embedded"]["contacts"][0]["id"]
    lead_id = amo.create_lead("Недозвон", responsible=ANNA)
    amo.api("POST", f"/api/v4/leads/{lead_id}/link",
            json=[{"to_entity_id": contact_id, "to_entity_type": "contacts"}])
    # Each call when the cadence says (1 h, 3 h, 1 d, 7 d, 3 h, 30 d after the one before, on this
    # account's round-the-clock calendar), the seventh's 3 h wait over long ago.
    waits = [0, 3600, 3 * 3600, 86400, 7 * 86400, 3 * 3600, 30 * 86400]
    first = ts(now()) - 40 * 86400
    for n in range(7):
        event = call_event(amo, n, first + sum(waits[:n + 1]))
        assert event.kind == "call.ended" and event.fields["direction"] == "out"
        result = events.handle_event(event.to_dict())
        assert "task_rules" in result["rules"]
        if n < 6:
            assert amo.field(lead_id, "Попытка дозвона") == f"Н{n + 1}"
    lead = amo.lead(lead_id)
    assert lead["status_id"] == STATUS["Отказ"]
    assert lead["loss_reason_id"] == 5300001  # «Не дозвонились 7 раз»
    assert amo.field(lead_id, "Попытка дозвона") == "Н7"
    # One «Дозвониться» task was made for the first failure, and no other; the end of the
    # cadence closed it with the reason, so the closed lead keeps nothing open.
    assert amo.open_tasks(lead_id) == []
    made = [t for t in amo.api("GET", "/api/v4/tasks", params={"filter[entity_type]": "leads", "filter[entity_id][]": lead_id})["_embedded"]["tasks"]
            if t["text"] == "Дозвониться"]
    assert [(t["is_completed"], t["result"]["text"]) for t in made] == [(True, "Не дозвонились 7 раз")]


# --- the sandbox's own webhook, parsed and run as the event job ---------------------------------

def test_a_real_status_webhook_runs_the_rules(amo, engine, receiver):
    amo.api("POST", "/api/v4/webhooks", json={"destination": receiver.url, "settings": ["status_lead"]})
    lead_id = amo.create_lead("Новая заявка", responsible=ANNA)
    amo.api("PATCH", "/api/v4/leads", json=[{"id": lead_id, "status_id": STATUS["Не пришел на пробное"]}])
    assert amo.server.wait_webhooks(5)
    (delivery,) = [d for d in amo.server.dispatcher.log() if d["ok"]]
    parsed = parser.parse(delivery["body"], ACCOUNT)
    (event,) = [e for e in parsed.events if e.kind == "lead.status_changed"]
    result = events.handle_event(event.to_dict())
    assert "task_rules" in result["rules"]
    (task,) = amo.open_tasks(lead_id)
    assert task["text"] == "Записать" and task["responsible_user_id"] == ANNA
    assert task["complete_till"] == event.fields["at"] + 86400


# --- audit and sweep agree ---------------------------------------------------------------------

def test_audit_lists_exactly_the_leads_the_sweep_fixes(amo, engine):
    amo.account.generate_leads(400, without_task_share=0.1, seed_value=7)
    executor, crm = context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)
    found = audit.run(executor, crm)
    listed = {f.lead_id for f in found.findings}
    assert len(listed) > 20 and found.checked > 300
    assert {"Наталья Лебедева"} <= {f.name for f in found.findings}  # the demo lead without a task
    assert all(f.problem == "нет открытой задачи" and "создать задачу" in f.fix for f in found.findings)
    csv_text = audit.render(found.findings, "csv")
    assert csv_text.splitlines()[0].startswith("Сделка,") and len(csv_text.splitlines()) == len(listed) + 1

    mark = amo.mark()
    result = sweep.run(executor, crm)
    assert {p.snapshot.lead.id for p in result.fixed} == listed and not result.skipped
    calls = amo.requests_since(mark)
    posts = [c for c in calls if c["method"] == "POST"]
    assert len(posts) == 2 * -(-len(listed) // 50)  # tasks and notes, 50 a request
    assert all(c["method"] != "PATCH" for c in calls)
    for lead_id in listed:
        assert len(amo.open_tasks(lead_id)) == 1
    assert audit.run(executor, crm).findings == []


def test_the_sweep_leaves_a_lead_touched_by_an_event_to_its_job(amo, engine):
    lead_id = amo.create_lead("Принимает решение")
    executor, crm = context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)
    plans = [p for p in sweep.plan(executor, crm) if p.snapshot.lead.id == lead_id]
    assert plans
    executor.touch(lead_id)  # a webhook about this lead arrived after the page was read
    fixed, skipped = executor.apply_planned(plans)
    assert fixed == [] and [p.snapshot.lead.id for p in skipped] == [lead_id]
    assert amo.open_tasks(lead_id) == []


def test_a_deleted_task_opens_a_new_gap_for_the_sweep(amo, engine, r):
    """amoCRM forgets deleted tasks; the sweep must still make a new task after one."""
    lead_id = amo.create_lead("Принимает решение")
    executor, crm = context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)
    sweep.run(executor, crm)
    (task,) = amo.open_tasks(lead_id)
    with amo.account.lock:  # the API cannot delete tasks; a manager in the UI can
        amo.account.tasks.pop(task["id"])
        amo.account._tasks_by_entity[("leads", lead_id)].discard(task["id"])
    result = sweep.run(executor, crm)
    assert lead_id in {p.snapshot.lead.id for p in result.fixed}
    (again,) = amo.open_tasks(lead_id)
    assert again["id"] != task["id"]


def test_the_sweep_is_registered_per_account(amo, r):
    from jobs.scheduler import PERIODIC

    before = list(PERIODIC)
    try:
        context.set_settings(engine_settings(amo.server.url, rules={"sweep_interval_minutes": 7}), r)
        context.set_settings(engine_settings(amo.server.url, rules={"sweep_interval_minutes": 5}), r)
        assert [e for e in PERIODIC if e[0] is sweep.sweep_job] == [(sweep.sweep_job, 300, {"account": ACCOUNT})]
        result = sweep.sweep_job(ACCOUNT)
        assert result["fixed"] == 2  # Наталья Лебедева, and Иван Кузнецов in «Новая заявка»
        assert sweep.sweep_job(ACCOUNT)["fixed"] == 0
    finally:
        PERIODIC[:] = before
