"""The Bitrix24 connector (connectors/bitrix24/crm.py) against the local Bitrix24 sandbox: the
CRM interface's reads and writes on the demo portal, and `expand` turning id-only events into
neutral ones by comparing each deal with the state last seen. Demo ids: sandbox/bitrix24/README.md."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from connectors import registry
from connectors.bitrix24.crm import Bitrix24CRM
from reglament.config import Settings
from reglament.crm import (AddNote, CompleteTask, CreateLead, CreateTask, SetLeadField, SetLeadStatus, SetResponsible,
                           SetTaskDue, UnknownName)
from reglament.events import Event
from tests.connectors.bitrix24.conftest import SANDBOX_CREDS
from tests.connectors.bitrix24.test_client_sandbox import calls, forget_calls, oauth_settings


def account(portal, **b24):
    return Settings.model_validate({"public_url": "http://127.0.0.1:8000", "accounts": [{
        "id": "acme", "crm": "bitrix24", "webhook_secret": "w" * 30,
        "bitrix24": {"webhook_url": portal.webhook_url, "rate_limit": 1000, **b24}}]}).accounts[0]


@pytest.fixture
def crm(portal, r) -> Bitrix24CRM:
    return registry.connector(account(portal), r, max_attempts=2)


def changed(deal_id: int, name: str = "ONCRMDEALUPDATE", entity: str = "deal") -> Event:
    """A crm.changed event as app/bitrix24/parser.py makes it from an outgoing event."""
    return Event("acme", "bitrix24", "crm.changed", deal_id, {"entity": entity, "id": deal_id, "event": name,
                                                               "at": 1_800_000_000})


def kinds(events) -> list[str]:
    return [e.kind for e in events]


def soon(hours: float = 2) -> datetime:
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).replace(microsecond=0)


def test_a_snapshot_is_the_deal_and_its_open_to_dos_in_one_request(crm, portal):
    crm.names()
    forget_calls(portal)
    snap = crm.get_lead_snapshot(102)
    assert [c["method"] for c in calls(portal)] == ["batch"]
    assert (snap.lead.status, snap.lead.stage, snap.lead.pipeline, snap.lead.responsible_id) == \
        ("Недозвон", "UC_NOANSWER", "0", 3)
    assert snap.lead.value("redial_attempt") == "Н1" and snap.lead.closed is None
    assert [(t.id, t.text, t.responsible_id) for t in snap.open_tasks] == [(1001, "Дозвониться", 3)]
    assert crm.get_lead_snapshot(9999) is None and crm.get_lead(9999) is None


def test_the_sweep_lists_active_deals_with_their_open_activities(crm):
    page = crm.list_active_leads_with_open_tasks()
    by_id = {s.lead.id: s for s in page.snapshots}
    assert page.next_cursor is None
    assert all(s.lead.closed is None and s.lead.status not in ("Отказ", "Расторгнут договор", "Завершил")
               for s in page.snapshots)
    assert [t.id for t in by_id[102].open_tasks] == [1001] and by_id[105].open_tasks == ()
    assert 106 in by_id and [t.text for t in by_id[106].open_tasks]   # the bound task's activity is a next step


def test_names_people_and_clients(crm):
    assert crm.stage_name("0", "UC_CAME") == "Пришел на пробное" and crm.stage_name("1", "C1:WON")
    assert crm.arrival_stage(None, None) == ("0", "NEW", "Продажи")
    assert crm.arrival_stage("Продления", None) == ("1", "C1:NEW", "Продления")
    assert crm.users()[2] == "Анна Смирнова" and crm.user_name(3) == "Борис Иванов"
    assert crm.own_user_id() == 1
    assert crm.has_field("Дата пробного") and not crm.has_field("Нет такого")
    found = crm.contacts_by_phone("79161234501")
    assert [(c.id, c.lead_ids) for c in found] == [(301, (101,))]
    assert crm.contacts_by_phone("70000000000") == []


def test_unknown_names_are_reported_with_what_the_portal_has(portal, r):
    acc = account(portal)
    crm = Bitrix24CRM.for_account(acc, r, _settings({"terminal_statuses": ["Отказ", "Нет такой"],
                                                     "redial": {"final_status": "Отказ"}}), max_attempts=2)
    problems = crm.resolve_problems()
    assert any("«Нет такой»" in p and "«Пришел на пробное»" in p and not p.optional for p in problems)
    with pytest.raises(UnknownName):
        crm.apply([SetLeadStatus(lead_id=105, status="Нет такой", action_key="T:105:s")])


def _settings(doc):
    from reglament import rule_settings
    return rule_settings.load(doc)


def test_a_to_do_made_moved_and_completed_is_seen_once_each(crm, portal):
    assert crm.expand(changed(105)) == []                                  # first sight: the baseline
    due = soon()
    made = crm.apply([CreateTask(lead_id=105, text="Продать", task_type="Звонок", due=due, responsible_id=2,
                                 important=True, action_key="T:105:task"),
                      AddNote(lead_id=105, text="Reglament: поставлена задача", action_key="T:105:note"),
                      SetLeadStatus(lead_id=105, status="Принимает решение", action_key="T:105:status")])
    todo = made["T:105:task"]
    # Our own to-do is in the deal's last state already: the deal's event shows only the move,
    # and the to-do's and the comment's add events cost no request at all.
    events = crm.expand(changed(105))
    assert kinds(events) == ["lead.status_changed"]
    assert events[0].fields["stage"] == "UC_DECIDING" and events[0].fields["lead_id"] == 105
    note = made["T:105:note"]
    forget_calls(portal)
    assert crm.expand(changed(todo, "ONCRMACTIVITYADD", "activity")) == []
    assert crm.expand(changed(note, "ONCRMTIMELINECOMMENTADD", "comment")) == []
    assert calls(portal) == []
    # Sent again (a replay), the to-do's event is read and still changes nothing.
    assert crm.expand(changed(todo, "ONCRMACTIVITYADD", "activity")) == []
    assert crm.expand(changed(105)) == [] and crm.expand(changed(todo, "ONCRMACTIVITYUPDATE", "activity")) == []
    crm.apply([SetTaskDue(task_id=todo, lead_id=105, due=due + timedelta(days=1), action_key="T:105:due")])
    moved = crm.expand(changed(todo, "ONCRMACTIVITYUPDATE", "activity"))
    assert kinds(moved) == ["task.updated"] and moved[0].fields["due"] == int((due + timedelta(days=1)).timestamp())
    crm.apply([CompleteTask(task_id=todo, lead_id=105, result="Клиент думает", action_key="T:105:done")])
    done = crm.expand(changed(todo, "oncrmactivityupdate", "activity"))
    assert [(e.kind, e.fields["completed"]) for e in done] == [("task.updated", True)]
    assert crm.get_lead_snapshot(105).open_tasks == ()
    assert crm.latest_comment(105) is None     # our own comment is not a person's
    assert crm.deadline_before(todo, due) is None


def test_a_new_deal_is_added_and_its_fields_status_and_loss_reason_are_written(crm, portal):
    made = crm.apply([CreateLead(name="Пётр Новиков", phone="+7 916 555-00-01", responsible_id=4,
                                 action_key="T:new:lead")])
    deal = made["T:new:lead"]
    assert kinds(crm.expand(changed(deal, "ONCRMDEALADD"))) == ["lead.added"]
    assert [c.lead_ids for c in crm.contacts_by_phone("79165550001")] == [(deal,)]
    trial = soon(48)
    crm.apply([SetLeadField(lead_id=deal, field="trial_at", value=trial, action_key="T:f"),
               SetResponsible(lead_id=deal, user_id=3, action_key="T:r"),
               SetLeadStatus(lead_id=deal, status="Сделка провалена", loss_reason="Думает", action_key="T:s")])
    lead = crm.get_lead(deal)
    assert (lead.closed, lead.loss_reason, lead.responsible_id, lead.value("trial_at")) == ("lost", "Думает", 3, trial)
    assert kinds(crm.expand(changed(deal))) == ["lead.status_changed", "lead.responsible_changed", "lead.updated"]
    assert kinds(crm.expand(changed(deal, "ONCRMDEALDELETE"))) == ["lead.deleted"]


def test_a_next_step_as_a_task_bound_to_the_deal(portal, r):
    crm = registry.connector(account(portal, next_step="task"), r, max_attempts=2)
    crm.expand(changed(105))
    made = crm.apply([CreateTask(lead_id=105, text="Продать", task_type=None, due=soon(), responsible_id=2,
                                 action_key="T:105:task")])
    snap = crm.get_lead_snapshot(105)
    assert [(t.id, t.text) for t in snap.open_tasks] == [(made["T:105:task"], "Продать")]
    assert crm.expand(changed(105)) == []   # our own task is in the deal's last state, as we wrote it
    crm.apply([CompleteTask(task_id=made["T:105:task"], lead_id=105, result="", action_key="T:105:done")])
    assert crm.get_lead_snapshot(105).open_tasks == ()
    assert [(e.kind, e.fields["completed"]) for e in crm.expand(changed(105))] == [("task.updated", True)]


def test_a_finished_call_becomes_call_ended_from_the_statistics(crm, portal):
    from tests.sandbox_bitrix24.conftest import app
    token = portal.auth.issue()["access_token"]
    reg = app(portal, token, "telephony.externalcall.register",
              {"USER_ID": 3, "PHONE_NUMBER": "+7 916 123-45-02", "TYPE": 1}).json()["result"]
    app(portal, token, "telephony.externalcall.finish", {"CALL_ID": reg["CALL_ID"], "USER_ID": 3, "DURATION": 0,
                                                         "STATUS_CODE": "486"})
    [event] = crm.expand(changed(reg["CALL_ID"], "ONVOXIMPLANTCALLEND", "call"))
    assert event.kind == "call.ended"
    f = event.fields
    assert (f["call_id"], f["direction"], f["outcome"], f["duration"], f["phone"], f["user_id"], f["ref"]) == \
        (reg["CALL_ID"], "out", "busy", 0, "79161234502", 3, reg["CALL_ID"])
    assert crm.call_outcome(reg["CALL_ID"]).value == "busy"


def test_a_timeline_comment_on_a_deal_becomes_comment_added(crm):
    on_deal = crm.client.call("crm.timeline.comment.add", {"fields": {
        "ENTITY_TYPE": "deal", "ENTITY_ID": 102, "COMMENT": "Клиент просил написать", "AUTHOR_ID": 3}})
    [event] = crm.expand(changed(on_deal, "ONCRMTIMELINECOMMENTADD", "comment"))
    assert (event.kind, event.entity_id) == ("comment.added", on_deal)
    f = event.fields
    assert (f["lead_id"], f["text"], f["by"]) == (102, "Клиент просил написать", 3)
    assert abs(f["at"] - datetime.now(timezone.utc).timestamp()) < 60   # the comment's CREATED, not the event's ts
    on_contact = crm.client.call("crm.timeline.comment.add", {"fields": {
        "ENTITY_TYPE": "contact", "ENTITY_ID": int(crm.client.call("crm.deal.get", {"id": 102})["CONTACT_ID"]),
        "COMMENT": "Не про сделку"}})
    assert crm.expand(changed(on_contact, "ONCRMTIMELINECOMMENTADD", "comment")) == []
    assert crm.expand(changed(on_deal + 100, "ONCRMTIMELINECOMMENTADD", "comment")) == []   # deleted since


def test_registration_binds_for_an_application_and_explains_for_a_webhook(portal, r):
    hook_url = "http://127.0.0.1:9/hooks/bitrix24/secret"
    said = registry.kind(account(portal)).register_webhooks(account(portal), r, hook_url)
    assert hook_url in said and "ONCRMDEALUPDATE" in said and "outgoing webhook" in said
    app_account = Settings.model_validate({"public_url": "http://127.0.0.1:8000", "accounts": [{
        "id": "acme", "crm": "bitrix24", "webhook_secret": "w" * 30,
        "bitrix24": oauth_settings(portal, _refresh_token(portal)).model_dump()}]}).accounts[0]
    kind = registry.kind(app_account)
    assert kind.register_webhooks(app_account, r, hook_url).startswith("bound 8 events")
    assert kind.register_webhooks(app_account, r, hook_url).startswith("bound 0 events")
    bound = requests.get(portal.url + "/_sandbox/handlers", timeout=5).json()["bound"]
    assert {h["event"].upper() for h in bound if h.get("handler") == hook_url} >= {"ONCRMDEALUPDATE",
                                                                                    "ONVOXIMPLANTCALLEND"}
    assert kind.unregister_webhooks(app_account, r, hook_url) == "unbound 8 events"
    assert registry.budget_key(app_account) == registry.budget_key(account(portal))   # one bucket per portal


def _refresh_token(portal) -> str:
    return portal.auth.issue()["refresh_token"]


def test_the_job_s_snapshot_is_the_reading_its_event_made_unless_we_wrote_since(crm, portal, r):
    crm.expand(changed(105))                                   # the baseline
    crm.names()
    portal_move = crm.client.call("crm.deal.update", {"id": 105, "fields": {"STAGE_ID": "UC_DECIDING"}})
    assert portal_move is True
    forget_calls(portal)
    assert kinds(crm.expand(changed(105))) == ["lead.status_changed"]
    snap = crm.get_lead_snapshot(105)
    assert snap.lead.status == "Принимает решение" and snap.open_tasks == ()
    assert [c["method"] for c in calls(portal)] == ["batch"]   # one reading served both
    # Another worker makes a to-do on the deal meanwhile: our reading is stale, so it is read again.
    other = registry.connector(account(portal), r, max_attempts=2)
    made = other.apply([CreateTask(lead_id=105, text="Продать", task_type=None, due=soon(), responsible_id=2,
                                   action_key="T:105:other")])
    assert [t.id for t in crm.get_lead_snapshot(105).open_tasks] == [made["T:105:other"]]
    assert [c["method"] for c in calls(portal)].count("batch") == 3   # the reading, other's write, the re-read


def test_one_batch_writes_a_field_a_to_do_and_its_note(crm, portal):
    crm.names()
    crm.own_user_id()
    crm.get_lead(105)
    forget_calls(portal)
    made = crm.apply([SetLeadField(lead_id=105, field="trial_at", value=soon(24), action_key="W:f"),
                      CreateTask(lead_id=105, text="Продать", task_type=None, due=soon(), responsible_id=2,
                                 action_key="W:task"),
                      AddNote(lead_id=105, text="Reglament: поставлена задача «Продать»", action_key="W:note")])
    [request] = calls(portal)
    assert request["method"] == "batch"
    assert sorted(set(request["commands"])) == ["crm.activity.todo.add", "crm.deal.get", "crm.deal.update",
                                                 "crm.timeline.comment.add"]   # the field read back, same batch
    assert [t.id for t in crm.get_lead_snapshot(105).open_tasks] == [made["W:task"]]
    assert crm.lead_url(105) and crm.get_lead(105).value("trial_at") is not None
    # Run again (a retried job): every create is remembered, only the update is sent again.
    forget_calls(portal)
    assert crm.apply([SetLeadField(lead_id=105, field="trial_at", value=soon(24), action_key="W:f"),
                      CreateTask(lead_id=105, text="Продать", task_type=None, due=soon(), responsible_id=2,
                                 action_key="W:task")]) == {"W:task": made["W:task"]}
    assert [sorted(set(c.get("commands") or [c["method"]])) for c in calls(portal)] == [["crm.deal.get",
                                                                                          "crm.deal.update"]]


def test_the_event_of_our_own_field_write_is_skipped_a_stage_we_set_is_read_back(crm, portal):
    crm.expand(changed(105))
    crm.apply([SetLeadField(lead_id=105, field="trial_at", value=soon(24), action_key="E:f")])
    forget_calls(portal)
    assert crm.expand(changed(105)) == [] and calls(portal) == []     # our own write's event: no request
    crm.client.call("crm.deal.update", {"id": 105, "fields": {"STAGE_ID": "UC_DECIDING"}})   # a person's move
    assert kinds(crm.expand(changed(105))) == ["lead.status_changed"]   # our value was already in the state
    crm.apply([SetLeadStatus(lead_id=105, status="Пришел на пробное", action_key="E:s")])
    assert kinds(crm.expand(changed(105))) == ["lead.status_changed"]  # rules act on a stage we set


def test_a_person_s_move_before_our_field_write_is_still_read_from_its_event(crm, portal):
    crm.expand(changed(105))
    crm.client.call("crm.deal.update", {"id": 105, "fields": {"STAGE_ID": "UC_DECIDING"}})   # its event still queued
    crm.apply([SetLeadField(lead_id=105, field="trial_at", value=soon(24), action_key="P:f")])
    assert kinds(crm.expand(changed(105))) == ["lead.status_changed", "lead.updated"]


def test_leads_instead_of_deals(portal, r):
    """`entity: leads`: statuses from crm.status.list STATUS, to-dos owned by the lead (owner
    type 1), comments in the lead's timeline, and the lead's own events."""
    from reglament import rule_settings

    crm = Bitrix24CRM.for_account(account(portal, entity="leads"), r, rule_settings.load({}), max_attempts=2)
    assert crm.names().pipelines == {"": "Лиды"}
    snap = crm.get_lead_snapshot(201)
    assert (snap.lead.status, snap.lead.stage, snap.lead.pipeline, snap.lead.closed) == ("Не обработан", "NEW", "", None)
    assert crm.lead_url(201).endswith("/crm/lead/details/201/")
    assert crm.expand(changed(201, "ONCRMLEADUPDATE", "lead")) == []                  # the baseline
    crm.client.call("crm.lead.update", {"id": 201, "fields": {"STATUS_ID": "IN_PROCESS"}})
    [moved] = crm.expand(changed(201, "ONCRMLEADUPDATE", "lead"))
    assert (moved.kind, moved.fields["stage"]) == ("lead.status_changed", "IN_PROCESS")
    made = crm.apply([CreateTask(lead_id=201, text="Перезвонить", task_type=None, due=soon(), responsible_id=2,
                                 action_key="L:task"),
                      AddNote(lead_id=201, text="Reglament: поставлена задача", action_key="L:note"),
                      SetLeadStatus(lead_id=201, status="Обработан", action_key="L:status")])
    todo = crm.client.call("crm.activity.get", {"id": made["L:task"]})
    assert (int(todo["OWNER_TYPE_ID"]), int(todo["OWNER_ID"])) == (1, 201)
    [note] = crm.client.list("crm.timeline.comment.list", {"filter": {"ENTITY_TYPE": "lead", "ENTITY_ID": 201}})
    assert int(note["ID"]) == made["L:note"]
    assert [t.id for t in crm.get_lead_snapshot(201).open_tasks] == [made["L:task"]]
    assert [e.kind for e in crm.expand(changed(201, "ONCRMLEADUPDATE", "lead"))] == ["lead.status_changed"]
    assert 201 in {s.lead.id for s in crm.list_active_leads_with_open_tasks().snapshots}
    crm.apply([SetLeadStatus(lead_id=201, status="Некачественный лид", action_key="L:junk")])
    assert crm.get_lead(201).closed == "lost"


def test_an_event_sent_before_the_deals_last_reading_costs_no_request(crm, portal):
    crm.expand(changed(105))                                             # the baseline
    crm.client.call("crm.deal.update", {"id": 105, "fields": {"STAGE_ID": "UC_DECIDING"}})
    sent = int(portal.portal.now())                                             # its event, still in a queue
    time.sleep(1.1)
    assert kinds(crm.changes(105)) == ["lead.status_changed"]          # read meanwhile (the catch-up)
    forget_calls(portal)
    late = Event("acme", "bitrix24", "crm.changed", 105, {"entity": "deal", "id": 105, "event": "ONCRMDEALUPDATE",
                                                          "at": sent - 1})
    assert crm.expand(late) == [] and calls(portal) == []
    crm.client.call("crm.deal.update", {"id": 105, "fields": {"STAGE_ID": "UC_CAME"}})   # a change after it
    newer = Event("acme", "bitrix24", "crm.changed", 105, {"entity": "deal", "id": 105, "event": "ONCRMDEALUPDATE",
                                                           "at": int(portal.portal.now()) + 1})
    assert kinds(crm.expand(newer)) == ["lead.status_changed"]
