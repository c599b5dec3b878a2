"""One contract for AmoCRMClient, run against the reference-shaped mock and against the sandbox.

Every test body runs unchanged on both backends (see conftest.py), so the client, the mock
(built from /work/shared/reference/amocrm.md) and the sandbox cannot drift apart without a
failure here. Request tallies are asserted exactly: the same literal holds on both backends,
so paging and batching cost the same number of calls on each.
"""

from __future__ import annotations

import time

import pytest

from connectors.amocrm import AmoCRMValidationError
from tests.contract import world as w

LEADS, LEAD, CONTACTS, TASKS = "/api/v4/leads", "/api/v4/leads/{id}", "/api/v4/contacts", "/api/v4/tasks"
DEADLINE = 1_900_000_000


def new_lead(client, key: str, status: int = w.NEW, **fields) -> int:
    return client.create_lead(key, name=fields.pop("name", f"Сделка {key}"), pipeline_id=w.PIPELINE,
                              status_id=status, **fields)


# ---------------------------------------------------------------- account and settings

def test_account_users_pipelines_loss_reasons_and_custom_fields(backend, client):
    backend.mark()
    account = client.account()
    task_types = client.task_types()
    users = client.users()
    pipelines = client.pipelines()
    reasons = client.loss_reasons()
    lead_fields = client.custom_fields("leads")
    contact_fields = client.custom_fields("contacts")

    assert (account["id"], account["subdomain"], account["current_user_id"]) == (w.ACCOUNT_ID, w.SUBDOMAIN, w.ADMIN)
    assert {g["name"] for g in account["_embedded"]["users_groups"]} == {"Отдел продаж"}
    assert [(t["id"], t["name"]) for t in task_types] == [(i, n) for i, n, _ in w.TASK_TYPES]
    assert sorted(u["id"] for u in users) == sorted(u[0] for u in w.USERS)
    assert [p["id"] for p in pipelines] == [w.PIPELINE] and pipelines[0]["is_main"] is True
    statuses = pipelines[0]["_embedded"]["statuses"]
    assert [s["id"] for s in statuses] == [s for s, _ in w.STATUSES]
    assert statuses[-2:][0]["id"] == w.WON and statuses[-1]["id"] == w.LOST
    assert all(s["pipeline_id"] == w.PIPELINE for s in statuses)
    assert [(r["id"], r["name"]) for r in reasons] == w.LOSS_REASONS
    assert [(f["id"], f["name"], f["type"]) for f in lead_fields] == w.LEAD_FIELDS
    phone = contact_fields[0]
    assert (phone["code"], phone["type"]) == ("PHONE", "multitext")
    assert "WORK" in [e["value"] for e in phone["enums"]]
    assert backend.tally() == {("GET", "/api/v4/account"): 2, ("GET", "/api/v4/users"): 1,
                               ("GET", "/api/v4/leads/pipelines"): 1, ("GET", "/api/v4/leads/loss_reasons"): 1,
                               ("GET", "/api/v4/leads/custom_fields"): 1, ("GET", "/api/v4/contacts/custom_fields"): 1}


# ---------------------------------------------------------------- leads and contacts

def test_lead_with_fields_and_contact_with_phone_linked_and_found_by_phone(backend, client):
    backend.mark()
    lead_id = new_lead(client, "contract:lead:1", name="Заявка с сайта", price=1500, responsible_user_id=w.ANNA,
                       custom_fields_values=[{"field_id": w.SERVICES, "values": [{"value": "Футбол"}]}])
    contact_id = client.create_contact("contract:contact:1", name="Иван Кузнецов", phone="+7 (916) 123-45-67")
    links = client.link_contact_to_lead(lead_id, contact_id, main=True)
    lead = client.get_lead(lead_id)
    by_phone = client.find_contacts_by_phone("8 916 123 45 67")
    nobody = client.find_contacts_by_phone("+7 999 000-00-00")

    assert links and links[0]["to_entity_id"] == contact_id
    assert (lead["id"], lead["name"], lead["price"]) == (lead_id, "Заявка с сайта", 1500)
    assert (lead["pipeline_id"], lead["status_id"], lead["responsible_user_id"]) == (w.PIPELINE, w.NEW, w.ANNA)
    assert [(f["field_id"], f["values"][0]["value"]) for f in lead["custom_fields_values"]] == [(w.SERVICES, "Футбол")]
    assert [c["id"] for c in lead["_embedded"]["contacts"]] == [contact_id]
    assert lead["_embedded"]["contacts"][0]["is_main"] is True
    assert [c["id"] for c in by_phone] == [contact_id]
    assert nobody == []
    # The contact search sent the last 10 digits, whatever the format typed.
    assert ("query", "9161234567") in backend.queries("GET", CONTACTS)[0]
    assert backend.tally() == {("POST", LEADS): 1, ("POST", CONTACTS): 1, ("POST", LEAD + "/link"): 1,
                               ("GET", LEAD): 1, ("GET", CONTACTS): 2}

    # The same action again creates nothing and sends nothing; a missing lead reads as None.
    backend.mark()
    assert new_lead(client, "contract:lead:1", name="Заявка с сайта") == lead_id
    assert client.get_lead(lead_id + 10_000) is None
    assert backend.tally() == {("GET", LEAD): 1}


def test_leads_filtered_by_status_come_in_pages_of_250(backend, client):
    many = client.create_leads([(f"contract:talks:{i}", {"name": f"Переговоры {i}", "pipeline_id": w.PIPELINE,
                                                         "status_id": w.TALKS}) for i in range(260)])
    few = client.create_leads([(f"contract:new:{i}", {"name": f"Новая {i}", "pipeline_id": w.PIPELINE,
                                                      "status_id": w.NEW}) for i in range(3)])
    assert len(set(many)) == 260 and len(set(few)) == 3
    assert [len(b) for b in backend.bodies("POST", LEADS)] == [50] * 5 + [10, 3]

    backend.mark()
    in_talks = client.leads(statuses=[(w.PIPELINE, w.TALKS)])
    assert sorted(x["id"] for x in in_talks) == sorted(many)
    assert all(x["status_id"] == w.TALKS for x in in_talks)
    first, second = backend.queries("GET", LEADS)
    assert ("limit", "250") in first and ("page", "1") in first
    assert ("filter[statuses][0][status_id]", str(w.TALKS)) in first
    assert ("page", "2") in second and ("filter[statuses][0][status_id]", str(w.TALKS)) in second
    assert backend.tally() == {("GET", LEADS): 2}

    # An empty stage: 204 with an empty body, read as an empty list in one call.
    backend.mark()
    assert client.leads(statuses=[(w.PIPELINE, w.DECIDING)]) == []
    assert client.tasks(entity_type="leads", entity_ids=[few[0]], is_completed=False) == []
    assert backend.tally() == {("GET", LEADS): 1, ("GET", TASKS): 1}
    assert backend.statuses() == {204: 2}


def test_leads_update_in_batches_of_50(backend, client):
    ids = client.create_leads([(f"contract:upd:{i}", {"name": f"Сделка {i}", "pipeline_id": w.PIPELINE,
                                                      "status_id": w.NEW}) for i in range(55)])
    backend.mark()
    updated = client.update_leads([{"id": i, "status_id": w.DECIDING, "pipeline_id": w.PIPELINE,
                                    "custom_fields_values": [{"field_id": w.YCLIENTS_ID,
                                                              "values": [{"value": str(i)}]}]} for i in ids])
    assert [u["id"] for u in updated] == ids
    assert [len(b) for b in backend.bodies("PATCH", LEADS)] == [50, 5]
    assert backend.tally() == {("PATCH", LEADS): 2}

    deciding = client.leads(statuses=[(w.PIPELINE, w.DECIDING)])
    assert sorted(x["id"] for x in deciding) == sorted(ids)
    assert all(x["custom_fields_values"][0]["values"][0]["value"] == str(x["id"]) for x in deciding)


# ---------------------------------------------------------------- tasks

def test_tasks_created_in_batches_open_tasks_of_a_lead_and_completion_with_result(backend, client):
    leads = [new_lead(client, f"contract:tasks:{k}") for k in range(3)]
    backend.mark()
    items = [(f"contract:task:{i}", {"text": f"Позвонить {i}", "complete_till": DEADLINE + i, "task_type_id": 1,
                                     "entity_type": "leads", "entity_id": leads[i % 3],
                                     "responsible_user_id": w.BORIS}) for i in range(120)]
    task_ids = client.create_tasks(items)
    assert len(set(task_ids)) == 120
    assert [len(b) for b in backend.bodies("POST", TASKS)] == [50, 50, 20]
    assert backend.tally() == {("POST", TASKS): 3}

    backend.mark()
    open_of_first = client.tasks(entity_type="leads", entity_ids=[leads[0]], is_completed=False)
    assert sorted(t["id"] for t in open_of_first) == sorted(task_ids[0::3])
    assert all((t["entity_type"], t["entity_id"], t["is_completed"]) == ("leads", leads[0], False)
               for t in open_of_first)
    done = client.complete_task(task_ids[0], "Дозвонились, записали на пробное")
    assert done["id"] == task_ids[0]
    still_open = client.tasks(entity_type="leads", entity_ids=[leads[0]], is_completed=False)
    completed = client.tasks(entity_type="leads", entity_ids=[leads[0]], is_completed=True)
    assert len(still_open) == 39 and task_ids[0] not in [t["id"] for t in still_open]
    assert [(t["id"], t["result"]["text"]) for t in completed] == [(task_ids[0], "Дозвонились, записали на пробное")]
    assert backend.tally() == {("GET", TASKS): 3, ("PATCH", TASKS): 1}
    assert ("filter[is_completed]", "0") in backend.queries("GET", TASKS)[0]


# ---------------------------------------------------------------- notes and calls

def test_common_note_and_call_note(backend, client):
    lead_id = new_lead(client, "contract:notes")
    backend.mark()
    common = client.add_note("contract:note:1", "leads", lead_id, "Клиент просил перезвонить вечером")
    call = client.add_call_note("contract:note:2", "leads", lead_id, incoming=False, phone="+79161234567",
                                duration=95, source="my_pbx", uniq="a1b2c3", link="https://pbx.example/rec/a1b2c3.mp3",
                                call_status=4, call_result="Поговорили")
    commons = client.notes("leads", entity_ids=[lead_id], note_types=["common"])
    calls = client.notes("leads", entity_ids=[lead_id], note_types=["call_in", "call_out"])

    assert [(n["id"], n["params"]["text"]) for n in commons] == [(common, "Клиент просил перезвонить вечером")]
    assert [(n["id"], n["note_type"], n["entity_id"]) for n in calls] == [(call, "call_out", lead_id)]
    params = calls[0]["params"]
    assert (params["uniq"], params["duration"], params["phone"], params["call_status"]) == \
           ("a1b2c3", 95, "+79161234567", 4)
    assert backend.tally() == {("POST", "/api/v4/leads/notes"): 2, ("GET", "/api/v4/leads/notes"): 2}


def test_add_call_files_a_known_phone_under_its_lead_and_skips_an_unknown_one(backend, client):
    lead_id = new_lead(client, "contract:call")
    contact_id = client.create_contact("contract:call:contact", name="Мария Соколова", phone="8 (903) 555-12-02")
    client.link_contact_to_lead(lead_id, contact_id)
    backend.mark()
    known = client.add_call("contract:call:1", direction="inbound", phone="+7 903 555 12 02", duration=42,
                            source="my_pbx", uniq="call-0001", call_status=4, created_by=w.ANNA)
    unknown = client.add_call("contract:call:2", direction="inbound", phone="+7 900 000 00 00", duration=5,
                              source="my_pbx", uniq="call-0002")
    assert isinstance(known, int) and unknown is None
    assert backend.tally() == {("POST", "/api/v4/calls"): 2}

    notes = client.notes("leads", entity_ids=[lead_id], note_types=["call_in"])
    assert [(n["id"], n["params"]["uniq"], n["params"]["duration"]) for n in notes] == [(known, "call-0001", 42)]
    # Logged once: the same action again sends nothing.
    backend.mark()
    assert client.add_call("contract:call:1", direction="inbound", phone="+7 903 555 12 02", duration=42,
                           source="my_pbx", uniq="call-0001") == known
    assert backend.tally() == {}


# ---------------------------------------------------------------- events

def test_events_filtered_by_type(backend, client):
    lead_id = new_lead(client, "contract:events")
    client.update_lead(lead_id, status_id=w.TALKS, pipeline_id=w.PIPELINE)
    client.add_note("contract:events:note", "leads", lead_id, "заметка")
    backend.mark()
    changes = client.events(types=["lead_status_changed"], entity="lead", entity_ids=[lead_id])
    assert [(e["type"], e["entity_id"], e["entity_type"]) for e in changes] == \
           [("lead_status_changed", lead_id, "lead")]
    assert changes[0]["value_after"] == [{"lead_status": {"id": w.TALKS, "pipeline_id": w.PIPELINE}}]
    assert changes[0]["value_before"] == [{"lead_status": {"id": w.NEW, "pipeline_id": w.PIPELINE}}]
    assert isinstance(changes[0]["id"], str)
    assert client.events(types=["lead_deleted"], entity="lead", entity_ids=[lead_id]) == []
    assert ("limit", "100") in backend.queries("GET", "/api/v4/events")[0]
    assert backend.tally() == {("GET", "/api/v4/events"): 2}
    assert backend.statuses() == {200: 1, 204: 1}


# ---------------------------------------------------------------- webhooks

def test_webhook_subscribed_twice_is_one_subscription_then_removed(backend, client):
    destination = "https://reglament.example/hooks/amocrm/s3cret-0123456789"
    backend.mark()
    first = client.subscribe_webhook(destination, ["add_lead"])
    second = client.subscribe_webhook(destination, ["add_lead", "status_lead", "update_task"], sort=10)
    assert first["id"] == second["id"] and second["destination"] == destination
    listed = client.webhooks(destination)
    assert [(h["id"], h["settings"], h["disabled"]) for h in listed] == \
           [(first["id"], ["add_lead", "status_lead", "update_task"], False)]
    assert [h["destination"] for h in client.webhooks()] == [destination]
    assert client.unsubscribe_webhook(destination) is True
    assert client.webhooks(destination) == []
    assert client.unsubscribe_webhook(destination) is False
    assert backend.tally() == {("POST", "/api/v4/webhooks"): 2, ("GET", "/api/v4/webhooks"): 3,
                               ("DELETE", "/api/v4/webhooks"): 2}


# ---------------------------------------------------------------- errors

def test_validation_errors_read_in_plain_words_and_change_nothing(backend, client):
    lead_id = new_lead(client, "contract:invalid")
    backend.mark()
    with pytest.raises(AmoCRMValidationError) as bad_status:
        client.update_lead(lead_id, status_id=999, pipeline_id=w.PIPELINE)
    assert str(bad_status.value) == \
           "amoCRM rejected the request: status_id: The value you selected is not a valid choice."
    assert bad_status.value.status == 400 and bad_status.value.errors[0]["code"] == "NotSupportedChoice"

    # The reference's own example: an unknown custom field.
    bad_field = [{"field_id": 1, "values": [{"value": "x"}]}]
    with pytest.raises(AmoCRMValidationError) as unknown_field:
        new_lead(client, "contract:invalid:2", custom_fields_values=bad_field)
    assert str(unknown_field.value) == ("amoCRM rejected the request: custom_fields_values.0.field_id: "
                                        "The value you selected is not a valid choice.")

    with pytest.raises(AmoCRMValidationError) as no_such_lead:
        client.create_task("contract:invalid:task", text="Позвонить", complete_till=DEADLINE,
                           entity_type="leads", entity_id=lead_id + 10_000)
    assert str(no_such_lead.value) == \
           "amoCRM rejected the request: entity_id: The value you selected is not a valid choice."

    # Refused outright, so not retried; and nothing was changed.
    assert backend.tally() == {("PATCH", LEADS): 1, ("POST", LEADS): 1, ("POST", TASKS): 1}
    assert backend.statuses() == {400: 3}
    assert client.get_lead(lead_id)["status_id"] == w.NEW

    # A refused create releases its action key: fixed, the same action goes through.
    fixed = new_lead(client, "contract:invalid:2", custom_fields_values=[
        {"field_id": w.SERVICES, "values": [{"value": "x"}]}])
    assert client.get_lead(fixed)["custom_fields_values"][0]["field_id"] == w.SERVICES


def test_task_without_deadline_is_refused_before_any_request(backend, client):
    backend.mark()
    with pytest.raises(ValueError, match="a task needs text and complete_till"):
        client.create_task("contract:no-deadline", text="Позвонить", complete_till=0)
    assert backend.tally() == {}


# ---------------------------------------------------------------- the request limit

def test_429_is_retried_until_the_window_has_room_and_creates_stay_single(backend):
    client = backend.client(backoff_base=0.3, backoff_max=1.0, max_attempts=6)  # the client does not pace
    lead_id = new_lead(client, "contract:429")
    items = [(f"contract:429:{i}", {"text": f"Задача {i}", "complete_till": DEADLINE, "entity_type": "leads",
                                    "entity_id": lead_id}) for i in range(120)]
    backend.mark()
    with backend.limit_to(3):
        answers = [client.users() for _ in range(3)]
        task_ids = client.create_tasks(items)  # 3 POSTs right after 3 GETs: over 3 in a second
    assert all(sorted(u["id"] for u in a) == sorted(u[0] for u in w.USERS) for a in answers)
    statuses = backend.statuses()
    assert statuses[200] == 6 and statuses.get(429, 0) >= 1
    assert set(statuses) == {200, 429}
    # A 429 created nothing, so the POST it refused was sent again and every task exists once.
    assert len(set(task_ids)) == 120
    on_lead = client.tasks(entity_type="leads", entity_ids=[lead_id])
    assert sorted(t["id"] for t in on_lead) == sorted(task_ids)


def test_paced_client_never_meets_the_limit(backend):
    client = backend.client(rate_limit=5)  # the client's shared limiter at the account's rate
    backend.mark()
    started = time.monotonic()
    with backend.limit_to(5):
        for _ in range(8):
            client.users()
    elapsed = time.monotonic() - started
    assert backend.statuses() == {200: 8}
    assert elapsed >= 7 / 5  # 8 requests at 5/s: at least 7 intervals of 0.2 s
