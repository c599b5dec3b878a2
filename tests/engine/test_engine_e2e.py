"""The task rules end to end: handlers and sweep against a CRM's sandbox (through the neutral driver,
tests/driver) and real Redis."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from jobs import audit, context, events, rule_jobs, sweep
from reglament.events import Event
from reglament.rule_settings import ImportantMarker
from tests.driver import LOST, WON
from tests.engine.conftest import ACCOUNT, crm_settings, now

MSK = ZoneInfo("Europe/Moscow")


def moved(crm, stage: str, **lead) -> tuple[int, Event]:
    """A new lead moved into `stage`, and the lead.status_changed event the CRM's webhook became."""
    lead_id = crm.create_lead("Новая заявка", **lead).id
    return lead_id, crm.move_lead(lead_id, stage).one("lead.status_changed")


def at_of(event: Event) -> datetime:
    return datetime.fromtimestamp(event.fields["at"], timezone.utc)


# --- each status of the table ends with exactly one right task --------------------------------

def _callback():
    at = (now() + timedelta(days=1, hours=3)).replace(second=0, microsecond=0)
    return {"Дата перезвона": at}, lambda base: at


def _trial():
    at = (now() + timedelta(days=3)).replace(second=0, microsecond=0)
    return {"Дата пробного": at}, lambda base: at - timedelta(days=1)


def _subscription():
    end = (now() + timedelta(days=30)).astimezone(MSK).date()
    midnight = datetime(end.year, end.month, end.day, tzinfo=MSK)
    return {"Окончание абонемента": midnight}, lambda base: midnight - timedelta(days=7)


# status → (lead values, expected due from the event time, task text, task type)
TABLE = {
    # REDIAL counts attempts in whole minutes.
    "Недозвон": (lambda: ({}, lambda base: base.replace(second=0) + timedelta(hours=1)), "Дозвониться", "Звонок"),
    "Просил перезвонить": (_callback, "Перезвон", "Важный звонок"),  # important: the «Важный звонок» type
    "Записался на пробное": (_trial, "Напомнить", "Звонок"),
    "Не пришел на пробное": (lambda: ({}, lambda base: base + timedelta(days=1)), "Записать", "Звонок"),
    "Пришел на пробное": (lambda: ({}, lambda base: base + timedelta(days=1)), "Продать", "Звонок"),
    "Принимает решение": (lambda: ({}, lambda base: base + timedelta(days=2)), "Продать", "Звонок"),
    "Клиент": (_subscription, "Продление", "Звонок"),
}


@pytest.mark.parametrize("status", list(TABLE))
def test_each_status_gets_exactly_one_right_task(crm, service, status):
    make, text, task_type = TABLE[status]
    values, expected_due = make()
    boris = crm.user("Борис Иванов")
    lead_id, event = moved(crm, status, responsible=boris, values=values)
    for _ in range(2):  # a repeated delivery changes nothing
        rule_jobs.task_rules(event)
    tasks = crm.open_tasks(lead_id)
    assert len(tasks) == 1, tasks
    task = tasks[0]
    if crm.has_task_types:
        assert task.text == text
        assert task.type == task_type
    else:  # an important task gets the marker's prefix instead of the «Важный звонок» type
        marker = ImportantMarker()
        assert task.type == ""
        assert task.text == (marker.prefix + text if task_type == marker.task_type else text)
    assert task.due == expected_due(at_of(event))
    assert task.responsible == boris
    if status == "Недозвон":  # REDIAL counted the move into Недозвон as attempt Н1
        assert crm.lead(lead_id).value("Попытка дозвона") == "Н1"


@pytest.mark.parametrize("status", ["Отказ", "Расторгнут договор", "Завершил", WON, LOST])
def test_a_terminal_lead_gets_no_task(crm, service, status):
    lead_id, event = moved(crm, status)
    rule_jobs.task_rules(event)
    assert crm.open_tasks(lead_id) == []
    assert all(p.snapshot.lead.id != lead_id
               for p in sweep.plan(context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)))


def test_a_lead_with_an_open_task_gets_no_second_one(crm, service):
    lead_id = crm.create_lead("Новая заявка").id
    crm.create_task(lead_id, "Позвонить", now() + timedelta(hours=1))
    rule_jobs.task_rules(crm.move_lead(lead_id, "Принимает решение").one("lead.status_changed"))
    assert [t.text for t in crm.open_tasks(lead_id)] == ["Позвонить"]


def test_completing_the_task_brings_the_next_one(crm, service):
    lead_id, event = moved(crm, "Принимает решение")
    rule_jobs.task_rules(event)
    (first,) = crm.open_tasks(lead_id)
    done = crm.complete_task(first.id, "Думает").one("task.updated")
    assert done.fields["completed"] and done.fields["result"] == "Думает"
    rule_jobs.task_rules(done)
    rule_jobs.task_rules(done)
    (second,) = crm.open_tasks(lead_id)
    assert second.id != first.id and second.text == "Продать"


# --- races: three deliveries of one webhook and a sweep ---------------------------------------

def test_three_runs_of_a_webhook_job_during_a_sweep_leave_one_task(crm, service):
    crm.generate_leads(60, without_task_share=0.2, seed=3)
    lead_id, event = moved(crm, "Принимает решение", responsible=crm.user("Анна Смирнова"))
    data = event.to_dict()
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
    assert len(crm.open_tasks(lead_id)) == 1
    # ...and the sweep afterwards finds nothing left to do anywhere.
    assert list(sweep.plan(context.executor_for(ACCOUNT), context.crm_for(ACCOUNT))) == []


def test_a_task_made_while_the_sweep_reads_its_page_is_not_made_again(crm, service, monkeypatch):
    lead_id, event = moved(crm, "Принимает решение")
    connector = context.crm_for(ACCOUNT)
    read_page = connector.list_active_leads_with_open_tasks

    def page_then_job(cursor=None):
        page = read_page(cursor)
        events.handle_event(event.to_dict())  # the webhook's job runs just after the sweep read its page
        return page

    monkeypatch.setattr(connector, "list_active_leads_with_open_tasks", page_then_job)
    sweep.run(context.executor_for(ACCOUNT), connector)
    assert len(crm.open_tasks(lead_id)) == 1


# --- REDIAL through real calls ----------------------------------------------------------------

def _crm_call_note(crm, lead_id: int, n: int, at: datetime) -> Event:
    """A failed call the telephony logged in the CRM, as the CRM's webhook delivers it."""
    return crm.log_call(lead_id, "out", "not_reached", at=at, by=crm.user("Анна Смирнова")).one("call.ended")


def _zadarma_call(crm, lead_id: int, n: int, at: datetime) -> Event:
    """The same failed call, as Zadarma's own NOTIFY_OUT_END webhook (no lead id: found by the phone)."""
    from urllib.parse import urlencode

    from app.telephony import zadarma

    started = at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    body = urlencode({"event": "NOTIFY_OUT_END", "call_start": started, "pbx_call_id": f"out_{n}",
                      "caller_id": "74951234567", "destination": "79990001122", "internal": "102",
                      "duration": "0", "disposition": "no answer", "status_code": "19", "is_recorded": "0",
                      "call_id_with_rec": ""}).encode()
    (call,) = zadarma.parse(body, ACCOUNT).events
    return call


@pytest.mark.parametrize("call_event", [_crm_call_note, _zadarma_call], ids=["crm-note", "zadarma"])
def test_seven_failed_calls_end_in_refusal(crm, service, call_event):
    """REDIAL counts a failed call the same whether the CRM's call note or the telephony
    provider's own webhook reports it."""
    lead_id = crm.create_lead("Недозвон", responsible=crm.user("Анна Смирнова"), phone="+7 999 000-11-22",
                              client="Пётр Дозвонов").id
    # Each call when the cadence says (1 h, 3 h, 1 d, 7 d, 3 h, 30 d after the one before, on this
    # account's round-the-clock calendar), the seventh's 3 h wait over long ago.
    waits = [0, 3600, 3 * 3600, 86400, 7 * 86400, 3 * 3600, 30 * 86400]
    first = now().replace(microsecond=0) - timedelta(days=40)
    for n in range(7):
        event = call_event(crm, lead_id, n, first + timedelta(seconds=sum(waits[:n + 1])))
        assert event.kind == "call.ended" and event.fields["direction"] == "out"
        result = events.handle_event(event.to_dict())
        assert "task_rules" in result["rules"]
        if n < 6:
            assert crm.lead(lead_id).value("Попытка дозвона") == f"Н{n + 1}"
    lead = crm.lead(lead_id)
    assert lead.stage == "Отказ"
    assert lead.loss_reason == "Не дозвонились 7 раз"
    assert lead.value("Попытка дозвона") == "Н7"
    # One «Дозвониться» task was made for the first failure, and no other; the end of the
    # cadence closed it with the reason, so the closed lead keeps nothing open.
    assert crm.open_tasks(lead_id) == []
    made = [t for t in crm.tasks(lead_id) if t.text == "Дозвониться"]
    assert [(t.completed, t.result) for t in made] == [(True, "Не дозвонились 7 раз")]


# --- the CRM's own webhook, parsed and run as the event job ---------------------------------------

def test_a_real_status_webhook_runs_the_rules(crm, service):
    anna = crm.user("Анна Смирнова")
    lead_id = crm.create_lead("Новая заявка", responsible=anna).id
    (event,) = crm.move_lead(lead_id, "Не пришел на пробное").of("lead.status_changed")
    result = events.handle_event(event.to_dict())
    assert "task_rules" in result["rules"]
    (task,) = crm.open_tasks(lead_id)
    assert task.text == "Записать" and task.responsible == anna
    assert task.due == at_of(event) + timedelta(days=1)


# --- audit and sweep agree ---------------------------------------------------------------------

def test_audit_lists_exactly_the_leads_the_sweep_fixes(crm, service):
    crm.generate_leads(400, without_task_share=0.1, seed=7)
    executor, connector = context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)
    found = audit.run(executor, connector)
    listed = {f.lead_id for f in found.findings}
    assert len(listed) > 20 and found.checked > 300
    assert {"Наталья Лебедева"} <= {f.name for f in found.findings}  # the demo lead without a task
    assert all(f.problem == "нет открытой задачи" and "создать задачу" in f.fix for f in found.findings)
    csv_text = audit.render(found.findings, "csv")
    assert csv_text.splitlines()[0].startswith("Сделка,") and len(csv_text.splitlines()) == len(listed) + 1

    mark = crm.mark()
    result = sweep.run(executor, connector)
    assert {p.snapshot.lead.id for p in result.fixed} == listed and not result.skipped
    calls = crm.calls_since(mark)
    creates = [c for c in calls if c.op == "create"]
    assert len(creates) == 2 * -(-len(listed) // 50)  # tasks and notes, 50 a request
    assert all(c.op != "update" for c in calls)
    for lead_id in listed:
        assert len(crm.open_tasks(lead_id)) == 1
    assert audit.run(executor, connector).findings == []


def test_the_sweep_leaves_a_lead_touched_by_an_event_to_its_job(crm, service):
    lead_id = crm.create_lead("Принимает решение").id
    executor, connector = context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)
    plans = [p for p in sweep.plan(executor, connector) if p.snapshot.lead.id == lead_id]
    assert plans
    executor.touch(lead_id)  # a webhook about this lead arrived after the page was read
    fixed, skipped = executor.apply_planned(plans)
    assert fixed == [] and [p.snapshot.lead.id for p in skipped] == [lead_id]
    assert crm.open_tasks(lead_id) == []


def test_a_deleted_task_opens_a_new_gap_for_the_sweep(crm, service):
    """A CRM forgets deleted tasks; the sweep must still make a new task after one."""
    lead_id = crm.create_lead("Принимает решение").id
    executor, connector = context.executor_for(ACCOUNT), context.crm_for(ACCOUNT)
    sweep.run(executor, connector)
    (task,) = crm.open_tasks(lead_id)
    crm.delete_task(task.id)
    result = sweep.run(executor, connector)
    assert lead_id in {p.snapshot.lead.id for p in result.fixed}
    (again,) = crm.open_tasks(lead_id)
    assert again.id != task.id


def test_the_sweep_is_registered_per_account(crm, r):
    from jobs.scheduler import PERIODIC

    before = list(PERIODIC)
    try:
        context.set_settings(crm_settings(crm, rules={"sweep_interval_minutes": 7}), r)
        context.set_settings(crm_settings(crm, rules={"sweep_interval_minutes": 5}), r)
        assert [e for e in PERIODIC if e[0] is sweep.sweep_job] == [(sweep.sweep_job, 300, {"account": ACCOUNT})]
        result = sweep.sweep_job(ACCOUNT)
        assert result["fixed"] == 2  # Наталья Лебедева, and Иван Кузнецов in «Новая заявка»
        assert sweep.sweep_job(ACCOUNT)["fixed"] == 0
    finally:
        PERIODIC[:] = before
