"""The amoCRM connector of the CRM protocol, against the sandbox: names, records, batching."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from connectors.amocrm.crm import CALL_STATUSES, AmoCRM, call_status
from reglament.crm import UnknownName
from reglament import rule_settings
from reglament.crm import (REDIAL_ATTEMPT, REDIAL_LAST_AT, SUBSCRIPTION_END, AddNote, CallStatus, CreateTask,
                           SetLeadField, SetLeadStatus)
from tests.engine.conftest import ANNA, STATUS, engine_settings


def connector(amo, r, rules: dict | None = None) -> AmoCRM:
    account = engine_settings(amo.server.url, rules).accounts[0]
    return AmoCRM.for_account(account, r, rule_settings.load(account.rules))


def calls(amo, mark, method=None, path=None):
    return [c for c in amo.requests_since(mark)
            if (method is None or c["method"] == method) and (path is None or c["path"] == path)]


@pytest.mark.parametrize("code, status", [
    (1, CallStatus.OTHER), (2, CallStatus.OTHER), (3, CallStatus.NOT_REACHED), (4, CallStatus.TALKED),
    (5, CallStatus.OTHER), (6, CallStatus.NOT_REACHED), (7, CallStatus.BUSY), (8, CallStatus.OTHER),
    (None, CallStatus.OTHER), ("6", CallStatus.NOT_REACHED), ("x", CallStatus.OTHER),
])
def test_call_statuses(code, status):
    assert call_status(code) is status
    assert set(CALL_STATUSES) == set(range(1, 9))


def test_the_demo_account_has_every_default_name(amo, r):
    problems = connector(amo, r).resolve_problems()
    assert [p for p in problems if not p.optional] == []
    # Seed 003 keeps the callback reason in a comment, and the demo leads have no UTM field.
    assert [p.split(":")[0] for p in problems] == ["rules.discipline.comment_codes.callback_field",
                                                  "rules.distribution.utm_field"]


def test_unknown_names_are_reported_with_the_valid_ones(amo, r):
    problems = connector(amo, r, {
        "pipeline": "Продажи",
        "statuses": {"Недозвн": {"task": "Дозвониться", "due": {"kind": "days", "days": 1}},
                     "Клиент": {"task": "Продление", "type": "Звонок клиенту", "due": {"kind": "days", "days": 1}}},
        "redial": {"loss_reason": "Не дозвонились"},
        "fields": {"callback_at": "Перезвонить в", "subscription_end": "Попытка дозвона"},
    }).resolve_problems()
    text = "\n".join(problems)
    assert "rules.statuses.«Недозвн»: status «Недозвн» is not in pipeline «Продажи»" in text
    assert "«Новая заявка», «Недозвон»" in text
    assert "task type «Звонок клиенту» not found; task types: «Звонок», «Встреча», «Важный звонок»" in text
    assert "loss reason «Не дозвонились» not found; loss reasons: «Не дозвонились 7 раз»" in text
    assert "rules.fields.callback_at: lead field «Перезвонить в» not found" in text
    assert "rules.fields.subscription_end: lead field «Попытка дозвона» is of type text" in text
    assert connector(amo, r, {"pipeline": "Продажи 2"}).resolve_problems()[0].startswith(
        "rules.pipeline: pipeline «Продажи 2» not found; the account has: «Продажи»")


def test_names_are_read_once_and_shared_through_redis(amo, r):
    mark = amo.mark()
    connector(amo, r).names()
    connector(amo, r).names()
    assert len(calls(amo, mark)) == 5


def test_one_lead_is_one_call_without_tasks_and_two_with(amo, r):
    crm = connector(amo, r)
    crm.names()
    end = date.today() + timedelta(days=40)
    lead_id = amo.create_lead("Клиент", fields={
        "Окончание абонемента": int(datetime(end.year, end.month, end.day, tzinfo=crm.tz).timestamp()),
        "Попытка дозвона": "Н2", "Последний недозвон": 1_773_000_000})
    mark = amo.mark()
    snap = crm.get_lead_snapshot(lead_id)
    assert len(calls(amo, mark)) == 1 and snap.open_tasks == ()
    assert snap.lead.status == "Клиент" and snap.lead.responsible_id == ANNA and snap.lead.closed is None
    assert snap.lead.fields == {SUBSCRIPTION_END: end, REDIAL_ATTEMPT: "Н2",
                                REDIAL_LAST_AT: datetime.fromtimestamp(1_773_000_000, timezone.utc)}
    amo.api("POST", "/api/v4/tasks", json=[{"text": "Продление", "complete_till": 1_900_000_000,
                                            "entity_type": "leads", "entity_id": lead_id}])
    mark = amo.mark()
    snap = crm.get_lead_snapshot(lead_id)
    assert len(calls(amo, mark)) == 2
    assert [t.text for t in snap.open_tasks] == ["Продление"] and snap.last_task_id == snap.open_tasks[0].id
    assert crm.get_lead_snapshot(10**9) is None


def test_a_decision_for_one_lead_is_one_patch(amo, r):
    crm = connector(amo, r)
    lead_id = amo.create_lead("Недозвон", fields={"Попытка дозвона": "Н6"})
    crm.get_lead_snapshot(lead_id)
    at = datetime(2026, 3, 10, 12, 30, tzinfo=timezone.utc)
    mark = amo.mark()
    created = crm.apply([
        SetLeadField(lead_id=lead_id, field=REDIAL_ATTEMPT, value="Н7", action_key="REDIAL:a"),
        SetLeadField(lead_id=lead_id, field=REDIAL_LAST_AT, value=at, action_key="REDIAL:b"),
        SetLeadStatus(lead_id=lead_id, status="отказ", loss_reason="Не дозвонились 7 раз", action_key="REDIAL:c"),
        AddNote(lead_id=lead_id, text="Сделка закрыта", action_key="REDIAL:d"),
    ])
    assert [(c["method"], c["path"]) for c in calls(amo, mark)] == [("PATCH", "/api/v4/leads"),
                                                                     ("POST", "/api/v4/leads/notes")]
    lead = amo.lead(lead_id)
    assert (lead["status_id"], lead["loss_reason_id"]) == (STATUS["Отказ"], 5300001)
    assert amo.field(lead_id, "Попытка дозвона") == "Н7"
    assert amo.field(lead_id, "Последний недозвон") == int(at.timestamp())
    assert set(created) == {"REDIAL:d"}
    crm.apply([SetLeadField(lead_id=lead_id, field=REDIAL_ATTEMPT, value=None, action_key="REDIAL:e")])
    assert amo.field(lead_id, "Попытка дозвона") is None


def test_tasks_and_notes_go_fifty_a_request_once_per_key(amo, r):
    crm = connector(amo, r)
    lead_ids = [amo.create_lead("Принимает решение", name=f"Сделка {i}") for i in range(3)]
    due = datetime.now(timezone.utc) + timedelta(days=1)
    tasks = [CreateTask(lead_id=lead_ids[i % 3], text=f"Задача {i}", task_type="Звонок", due=due,
                        responsible_id=ANNA, action_key=f"NEXT_TASK:{i}") for i in range(120)]
    notes = [AddNote(lead_id=lead_ids[i % 3], text=f"Примечание {i}", action_key=f"NOTE:{i}") for i in range(60)]
    crm.names()
    mark = amo.mark()
    created = crm.apply(tasks + notes)
    assert [(c["method"], c["path"]) for c in calls(amo, mark)] == \
        [("POST", "/api/v4/tasks")] * 3 + [("POST", "/api/v4/leads/notes")] * 2
    assert len(created) == 180
    mark = amo.mark()
    assert crm.apply(tasks + notes) == created  # the client remembers each key: nothing is sent again
    assert calls(amo, mark) == []


def test_a_wrong_name_fails_before_anything_is_sent(amo, r):
    crm = connector(amo, r)
    lead_id = amo.create_lead("Недозвон")
    crm.names()
    mark = amo.mark()
    with pytest.raises(UnknownName, match="status «Закрыта» not found in pipeline «Продажи»; it has: «Новая заявка»"):
        crm.apply([AddNote(lead_id=lead_id, text="x", action_key="k1"),
                   SetLeadStatus(lead_id=lead_id, status="Закрыта", action_key="k2")])
    # one look at the lead (its pipeline) and one fresh read of the names; no write
    assert all(c["method"] == "GET" for c in calls(amo, mark))


def test_important_tasks_get_the_type_or_the_prefix(amo, r):
    due = datetime.now(timezone.utc) + timedelta(days=1)
    lead_id = amo.create_lead("Просил перезвонить")
    task = CreateTask(lead_id=lead_id, text="Перезвон", task_type="Звонок", due=due, responsible_id=ANNA,
                      important=True, action_key="t-imp-1")
    connector(amo, r).apply([task])
    no_type = connector(amo, r, {"important": {"task_type": "Срочный звонок"}})
    no_type.apply([CreateTask(**{**task.__dict__, "action_key": "t-imp-2"})])
    found = sorted((t["text"], t["task_type_id"]) for t in amo.open_tasks(lead_id))
    assert found == [("Перезвон", 3012001), ("❗ ВАЖНО: Перезвон", 1)]


def test_neutral_event_fields_become_records(amo, r):
    crm = connector(amo, r)
    lead_id = amo.create_lead("Недозвон")
    note = amo.api("POST", f"/api/v4/leads/{lead_id}/notes", json=[{
        "note_type": "call_out", "params": {"phone": "+79990001122", "uniq": "u-1", "duration": 0,
                                            "source": "pbx", "call_status": 7}}])["_embedded"]["notes"][0]
    # A webhook whose call carries no call_status: the connector reads the note.
    mark = amo.mark()
    assert crm.call_outcome(f"call_out:{lead_id}:{note['id']}:") is CallStatus.BUSY
    assert len(calls(amo, mark)) == 1
    mark = amo.mark()
    assert crm.call_outcome(f"call_in:{lead_id}:5:4") is CallStatus.TALKED  # carried in the webhook: no call
    assert crm.call_outcome(None) is CallStatus.OTHER
    assert calls(amo, mark) == []
    on_contact = {"task_id": 8, "lead_id": None, "completed": True, "due": 1_772_990_000}
    assert crm.task_from_event(on_contact) is None
    closed = {"task_id": 9, "lead_id": lead_id, "completed": True, "text": "Дозвониться", "result": "не дозвон",
              "task_type": "1", "at": 1_773_000_000, "due": 1_772_990_000, "responsible_id": 5}
    task = crm.task_from_event(closed)
    assert (task.id, task.lead_id, task.result, task.task_type, task.is_completed, int(task.due.timestamp())) == \
        (9, lead_id, "не дозвон", "Звонок", True, 1_772_990_000)


def test_the_sweep_reads_pages_of_250(amo, r):
    amo.account.generate_leads(600, without_task_share=0.1, seed_value=1)
    crm = connector(amo, r)
    crm.names()
    mark = amo.mark()
    cursor, leads = None, []
    while True:
        page = crm.list_active_leads_with_open_tasks(cursor)
        leads += page.snapshots
        cursor = page.next_cursor
        if cursor is None:
            break
    gets = calls(amo, mark)
    active = sum(1 for lead in amo.account.leads.values() if lead.status_id not in
                 (STATUS["Отказ"], STATUS["Расторгнут договор"], STATUS["Завершил"], 142, 143))
    with amo.account.lock:
        open_tasks = sum(1 for t in amo.account.tasks.values() if not t.is_completed and t.entity_type == "leads")
    assert len(leads) == active
    assert len(gets) == -(-active // 250) + -(-open_tasks // 250)
    assert all("limit=250" in c["query"] for c in gets)
    assert all(lead.lead.closed is None and lead.lead.status not in ("Отказ", "Завершил") for lead in leads)
    by_id = {s.lead.id: s for s in leads}
    assert all(len(by_id[i].open_tasks) == len(amo.open_tasks(i)) for i in list(by_id)[:30])


@pytest.mark.parametrize("kind, fields, matters", [
    ("lead.status_changed", {"lead_id": 1}, True),
    ("lead.added", {"lead_id": 1}, True),
    ("call.ended", {"lead_id": None, "phone": "79990001122"}, True),
    ("task.updated", {"lead_id": 1, "completed": False}, False),  # an open task moved: NEXT_TASK waits
    ("task.updated", {"lead_id": None, "completed": True}, False),  # a task on a contact
    ("task.updated", {"lead_id": 1, "completed": True}, True),
    ("task.deleted", {"lead_id": 1}, True),
    ("task.added", {"lead_id": 1}, False),  # our own writes echo back as these
    ("comment.added", {"lead_id": 1}, False),
])
def test_which_events_reach_the_task_rules_without_a_crm_call(kind, fields, matters):
    from jobs.rule_jobs import may_matter
    from reglament.events import Event

    assert may_matter(Event(account="demo", source="amocrm", kind=kind, entity_id=1, fields=fields)) is matters
