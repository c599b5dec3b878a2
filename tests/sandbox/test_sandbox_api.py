"""The sandbox's REST API seen by a client written from amoCRM's public API v4 docs."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from sandbox.amocrm import SandboxAccount, SandboxServer

TOKEN = "test-token-123"  # the token the `amo` fixture's sandbox expects
HAL = "application/hal+json"
PROBLEM = "application/problem+json"


class Client:
    """Just enough of an amoCRM client: Bearer token, JSON bodies, HAL answers."""

    def __init__(self, base: str, token: str = TOKEN):
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base}/api/v4/{path.lstrip('/')}"

    def get(self, path: str, params=None) -> requests.Response:
        return self.http.get(self.url(path), params=params, timeout=10)

    def post(self, path: str, body) -> requests.Response:
        return self.http.post(self.url(path), json=body, timeout=10)

    def patch(self, path: str, body) -> requests.Response:
        return self.http.patch(self.url(path), json=body, timeout=10)

    def pipeline(self) -> dict:
        r = self.get("leads/pipelines")
        return r.json()["_embedded"]["pipelines"][0]

    def status_id(self, name: str) -> int:
        return next(s["id"] for s in self.pipeline()["_embedded"]["statuses"] if s["name"] == name)

    def lead_by_name(self, name: str) -> dict:
        r = self.get("leads", {"query": name, "with": "contacts"})
        assert r.status_code == 200, r.text
        return next(lead for lead in r.json()["_embedded"]["leads"] if lead["name"] == name)


def test_pipeline_lists_the_seeded_statuses_in_order_with_won_and_lost(amo):
    api = Client(amo.url)
    r = api.get("leads/pipelines")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == HAL
    pipeline = r.json()["_embedded"]["pipelines"][0]
    assert pipeline["name"] == "Продажи" and pipeline["is_main"] is True
    names = [s["name"] for s in pipeline["_embedded"]["statuses"]]
    assert names == ["Новая заявка", "Недозвон", "Просил перезвонить", "Записался на пробное",
                     "Не пришел на пробное", "Пришел на пробное", "Принимает решение", "Клиент", "Инкубатор",
                     "Отказ", "Расторгнут договор", "Завершил", "Успешно реализовано", "Закрыто и не реализовано"]
    ids = [s["id"] for s in pipeline["_embedded"]["statuses"]]
    assert ids[-2:] == [142, 143]
    one = api.get(f"leads/pipelines/{pipeline['id']}/statuses").json()["_embedded"]["statuses"]
    assert [s["id"] for s in one] == ids
    missing = api.get("leads/pipelines/1")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == PROBLEM


def test_account_users_task_types_and_loss_reasons(amo):
    api = Client(amo.url)
    account = api.get("account", {"with": "task_types,users_groups"}).json()
    assert account["subdomain"] == "demo"
    assert {t["name"] for t in account["_embedded"]["task_types"]} == {"Звонок", "Встреча", "Важный звонок"}
    assert {t["id"] for t in account["_embedded"]["task_types"]} >= {1, 2}
    users = api.get("users").json()["_embedded"]["users"]
    assert {u["name"] for u in users} == {"Анна Смирнова", "Борис Иванов", "Вера Петрова", "Галина Орлова"}
    assert api.get(f"users/{users[0]['id']}").json()["name"] == users[0]["name"]
    reasons = [r["name"] for r in api.get("leads/loss_reasons").json()["_embedded"]["loss_reasons"]]
    assert "Не дозвонились 7 раз" in reasons and "Дубль" in reasons
    phone = api.get("contacts/custom_fields").json()["_embedded"]["custom_fields"][0]
    assert (phone["name"], phone["type"], phone["code"]) == ("Телефон", "multitext", "PHONE")


def test_create_lead_lands_in_first_status_and_echoes_request_id(amo):
    api = Client(amo.url)
    first = api.pipeline()["_embedded"]["statuses"][0]
    r = api.post("leads", [{"name": "Новый клиент", "price": 5000, "request_id": "mine-1",
                            "_embedded": {"tags": [{"name": "тест"}]}}])
    assert r.status_code == 200 and r.headers["Content-Type"] == HAL
    created = r.json()["_embedded"]["leads"][0]
    assert created["request_id"] == "mine-1"
    lead = api.get(created["_links"]["self"]["href"]).json()
    assert (lead["name"], lead["price"], lead["status_id"]) == ("Новый клиент", 5000, first["id"])
    assert [t["name"] for t in lead["_embedded"]["tags"]] == ["тест"]
    assert lead["custom_fields_values"] is None
    # a single object instead of an array is refused
    assert api.post("leads", {"name": "x"}).status_code == 400


def test_paging_600_leads_follows_links_next(demo: SandboxAccount):
    demo.generate_leads(600 - len(demo.leads))
    with SandboxServer(demo, token=TOKEN, rate_limit=0) as amo:
        api = Client(amo.url)
        url, sizes, seen = api.url("leads?limit=250"), [], set()
        while url:
            r = api.get(url)
            assert r.status_code == 200
            page = r.json()
            sizes.append(len(page["_embedded"]["leads"]))
            seen |= {lead["id"] for lead in page["_embedded"]["leads"]}
            url = page["_links"].get("next", {}).get("href")
        assert sizes == [250, 250, 100]
        assert len(seen) == 600
        # default limit is 50, and limit is capped at 250
        assert len(api.get("leads").json()["_embedded"]["leads"]) == 50
        assert len(api.get("leads", {"limit": 1000}).json()["_embedded"]["leads"]) == 250
        assert api.get("leads", {"limit": 250, "page": 4}).status_code == 204


def test_empty_filter_answers_204_with_empty_body(amo):
    api = Client(amo.url)
    r = api.get("leads", {"filter[id]": 1})
    assert r.status_code == 204 and r.content == b""
    r = api.get("tasks", {"filter[responsible_user_id]": 5})
    assert r.status_code == 204


def test_filters_statuses_responsible_and_ranges(amo):
    api = Client(amo.url)
    pipeline = api.pipeline()
    nedozvon = api.status_id("Недозвон")
    r = api.get("leads", {"filter[statuses][0][pipeline_id]": pipeline["id"],
                          "filter[statuses][0][status_id]": nedozvon})
    leads = r.json()["_embedded"]["leads"]
    assert [lead["name"] for lead in leads] == ["Мария Соколова"]
    anna = next(u["id"] for u in api.get("users").json()["_embedded"]["users"] if u["name"] == "Анна Смирнова")
    mine = api.get("leads", {"filter[responsible_user_id][]": anna}).json()["_embedded"]["leads"]
    assert mine and all(lead["responsible_user_id"] == anna for lead in mine)
    future = int(time.time()) + 10 * 86400
    assert api.get("leads", {"filter[created_at][from]": future}).status_code == 204
    ordered = api.get("leads", {"order[created_at]": "desc"}).json()["_embedded"]["leads"]
    assert [lead["created_at"] for lead in ordered] == sorted((lead["created_at"] for lead in ordered), reverse=True)


def test_without_token_answers_401_problem(amo):
    r = requests.get(f"{amo.url}/api/v4/leads", timeout=5)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == PROBLEM
    assert r.json()["status"] == 401
    r = requests.get(f"{amo.url}/api/v4/leads", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert r.status_code == 401


def test_more_than_rate_requests_in_a_second_get_429():
    with SandboxServer(token=TOKEN, rate_limit=7) as amo:
        # Ten requests at once all land within one second: exactly seven get through.
        with ThreadPoolExecutor(10) as pool:
            codes = list(pool.map(lambda _: Client(amo.url).get("account").status_code, range(10)))
        assert sorted(codes) == [200] * 7 + [429] * 3
        time.sleep(1.05)
        assert Client(amo.url).get("account").status_code == 200
        log = requests.get(f"{amo.url}/_sandbox/requests", timeout=5).json()
        assert sorted(e["status"] for e in log) == [200] * 8 + [429] * 3


def test_task_without_complete_till_is_a_validation_problem(amo):
    api = Client(amo.url)
    r = api.post("tasks", [{"text": "Перезвонить", "entity_type": "leads", "entity_id": 1}])
    assert r.status_code == 400
    assert r.headers["Content-Type"] == PROBLEM
    problem = r.json()
    assert problem["title"] == "Bad Request" and problem["detail"] == "Request validation failed"
    errors = problem["validation-errors"][0]
    assert errors["request_id"] == "0"
    assert {e["path"] for e in errors["errors"]} == {"complete_till", "entity_id"}
    # nothing was created by the refused batch
    assert api.get("tasks", {"filter[entity_type]": "leads", "filter[entity_id]": 1}).status_code == 204


def test_task_lifecycle_complete_with_result_and_move(amo):
    api = Client(amo.url)
    lead = api.lead_by_name("Наталья Лебедева")
    due = int(time.time()) + 3600
    r = api.post("tasks", [{"text": "Продать", "complete_till": due, "entity_type": "leads",
                            "entity_id": lead["id"], "task_type_id": 1, "request_id": "t1"}])
    task_id = r.json()["_embedded"]["tasks"][0]["id"]
    assert api.get(f"leads/{lead['id']}").json()["closest_task_at"] == due
    assert api.patch(f"tasks/{task_id}", {"complete_till": due + 86400}).status_code == 200
    r = api.patch("tasks", [{"id": task_id, "is_completed": True, "result": {"text": "Купил абонемент"}}])
    assert r.status_code == 200
    task = api.get(f"tasks/{task_id}").json()
    assert task["is_completed"] is True and task["result"] == {"text": "Купил абонемент"}
    open_tasks = api.get("tasks", {"filter[entity_type]": "leads", "filter[entity_id][]": lead["id"],
                                   "filter[is_completed]": 0})
    assert open_tasks.status_code == 204
    types = [e["type"] for e in api.get("events", {"filter[entity]": "task", "filter[entity_id]": task_id,
                                                   "order[created_at]": "asc"}).json()["_embedded"]["events"]]
    assert types == ["task_added", "task_deadline_changed", "task_completed", "task_result_added"]


def test_status_change_to_lost_needs_pipeline_and_records_event(amo):
    api = Client(amo.url)
    lead = api.lead_by_name("Мария Соколова")
    r = api.patch("leads", [{"id": lead["id"], "status_id": 143}])
    assert r.status_code == 400
    assert r.json()["validation-errors"][0]["errors"][0]["path"] == "pipeline_id"
    reason = next(x["id"] for x in api.get("leads/loss_reasons").json()["_embedded"]["loss_reasons"]
                  if x["name"] == "Не дозвонились 7 раз")
    r = api.patch(f"leads/{lead['id']}", {"status_id": 143, "pipeline_id": lead["pipeline_id"],
                                           "loss_reason_id": reason})
    assert r.status_code == 200
    after = api.get(f"leads/{lead['id']}", {"with": "loss_reason"}).json()
    assert (after["status_id"], after["loss_reason_id"]) == (143, reason)
    assert after["closed_at"] is not None
    assert after["_embedded"]["loss_reason"][0]["name"] == "Не дозвонились 7 раз"
    events = api.get("events", {"filter[type]": "lead_status_changed,entity_responsible_changed",
                                "filter[entity]": "lead", "filter[entity_id]": lead["id"]}).json()
    event = events["_embedded"]["events"][0]
    assert re.fullmatch(r"[0-9a-hjkmnp-tv-z]{26}", event["id"])
    assert event["value_before"] == [{"lead_status": {"id": lead["status_id"], "pipeline_id": lead["pipeline_id"]}}]
    assert event["value_after"] == [{"lead_status": {"id": 143, "pipeline_id": lead["pipeline_id"]}}]


def test_custom_fields_validated_and_merged(amo):
    api = Client(amo.url)
    lead = api.lead_by_name("Мария Соколова")
    fields = {f["name"]: f["id"] for f in api.get("leads/custom_fields").json()["_embedded"]["custom_fields"]}
    bad = api.patch("leads", [{"id": lead["id"], "custom_fields_values": [{"field_id": 1, "values": [{"value": "x"}]}]}])
    assert bad.status_code == 400
    assert bad.json()["validation-errors"][0]["errors"][0] == {
        "code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id",
        "detail": "The value you selected is not a valid choice."}
    ok = api.patch("leads", [{"id": lead["id"], "custom_fields_values": [
        {"field_id": fields["Попытка дозвона"], "values": [{"value": "Н2"}]},
        {"field_id": fields["Дата перезвона"], "values": [{"value": 1900000000}]}]}])
    assert ok.status_code == 200
    values = {f["field_name"]: f["values"][0]["value"] for f in api.get(f"leads/{lead['id']}").json()["custom_fields_values"]}
    assert values == {"Попытка дозвона": "Н2", "Дата перезвона": 1900000000, "Источник": "Instagram"}


def test_contacts_query_by_phone_digits_and_linking(amo):
    api = Client(amo.url)
    # seeded as "8 (903) 555-12-02": matched by its last 10 digits whatever the prefix
    for query in ("+7 903 555 12 02", "79035551202", "9035551202"):
        found = api.get("contacts", {"query": query}).json()["_embedded"]["contacts"]
        assert [c["name"] for c in found] == ["Мария Соколова"], query
    assert api.get("contacts", {"query": "+7 999 999 99 99"}).status_code == 204
    r = api.post("contacts", [{"first_name": "Пётр", "last_name": "Сидоров", "custom_fields_values": [
        {"field_code": "PHONE", "values": [{"value": "+7 900 111-22-33", "enum_code": "MOB"}]}]}])
    contact_id = r.json()["_embedded"]["contacts"][0]["id"]
    lead_id = api.post("leads", [{"name": "Сделка Петра"}]).json()["_embedded"]["leads"][0]["id"]
    r = api.post("leads/link", [{"entity_id": lead_id, "to_entity_id": contact_id, "to_entity_type": "contacts"}])
    assert r.status_code == 200
    assert r.json()["_embedded"]["links"][0]["to_entity_id"] == contact_id
    lead = api.get(f"leads/{lead_id}", {"with": "contacts"}).json()
    assert lead["_embedded"]["contacts"] == [
        {"id": contact_id, "is_main": True, "_links": {"self": {"href": api.url(f"contacts/{contact_id}")}}}]
    contact = api.get(f"contacts/{contact_id}", {"with": "leads"}).json()
    assert contact["name"] == "Пётр Сидоров"
    assert [x["id"] for x in contact["_embedded"]["leads"]] == [lead_id]
    assert contact["custom_fields_values"][0]["values"][0]["enum_code"] == "MOB"


def test_calls_attach_to_single_active_lead_else_report_error(amo):
    api = Client(amo.url)
    lead = api.lead_by_name("Мария Соколова")
    r = api.post("calls", [
        {"direction": "outbound", "phone": "+7 903 555-12-02", "duration": 0, "source": "pbx", "call_status": 6,
         "uniq": "c-1", "link": "https://pbx.example/c-1.mp3", "request_id": "a"},
        {"direction": "inbound", "phone": "+7 000 000-00-00", "duration": 10, "source": "pbx", "request_id": "b"},
    ])
    assert r.status_code == 200
    body = r.json()
    assert [(c["entity_type"], c["entity_id"], c["request_id"]) for c in body["_embedded"]["calls"]] == [
        ("leads", lead["id"], "a")]
    assert [e["request_id"] for e in body["errors"]] == ["b"]
    notes = api.get(f"leads/{lead['id']}/notes", {"filter[note_type][]": "call_out"}).json()["_embedded"]["notes"]
    assert notes[0]["params"]["uniq"] == "c-1" and notes[0]["params"]["call_status"] == 6
    events = api.get("events", {"filter[type]": "outgoing_call"}).json()["_embedded"]["events"]
    assert events[0]["entity_id"] == lead["id"] and events[0]["value_after"] == [{"note": {"id": notes[0]["id"]}}]
    # missing required fields are a validation problem, not an error item
    assert api.post("calls", [{"phone": "+79035551202"}]).status_code == 400


def test_notes_add_and_list(amo):
    api = Client(amo.url)
    lead = api.lead_by_name("Ольга Морозова")
    r = api.post(f"leads/{lead['id']}/notes", [{"note_type": "common", "params": {"text": "Думает"}}])
    assert r.status_code == 200
    r = api.post("leads/notes", [{"entity_id": lead["id"], "note_type": "common", "params": {}}])
    assert r.status_code == 400
    listed = api.get("leads/notes", {"filter[entity_id]": lead["id"]}).json()["_embedded"]["notes"]
    assert [(n["note_type"], n["params"]["text"]) for n in listed] == [("common", "Думает")]


def test_request_log_lists_answered_api_requests(amo):
    api = Client(amo.url)
    requests.delete(f"{amo.url}/_sandbox/requests", timeout=5)
    api.get("leads", {"limit": 5})
    api.get("leads", {"filter[id]": 1})
    log = requests.get(f"{amo.url}/_sandbox/requests", timeout=5).json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", "/api/v4/leads", 200),
                                                                      ("GET", "/api/v4/leads", 204)]
    assert log[0]["query"] == "limit=5"
    later = requests.get(f"{amo.url}/_sandbox/requests", params={"since": log[1]["index"]}, timeout=5).json()
    assert len(later) == 1


def test_five_thousand_generated_leads_page_quickly(demo: SandboxAccount):
    demo.generate_leads(5000, without_task_share=0.1)
    with SandboxServer(demo, token=TOKEN, rate_limit=0) as amo:
        api = Client(amo.url)
        started = time.monotonic()
        url, total = api.url("leads?limit=250&with=contacts"), 0
        while url:
            page = api.get(url).json()
            total += len(page["_embedded"]["leads"])
            url = page["_links"].get("next", {}).get("href")
        assert total == 5007
        assert time.monotonic() - started < 10
        open_tasks = 0
        url = api.url("tasks?limit=250&filter[is_completed]=0")
        while url:
            page = api.get(url).json()
            open_tasks += len(page["_embedded"]["tasks"])
            url = page["_links"].get("next", {}).get("href")
        active = [lead for lead in demo.leads.values() if not demo.status(lead.pipeline_id, lead.status_id).terminal]
        # about 10 % of the active generated leads have no task
        assert 0.8 * len(active) < open_tasks < 0.97 * len(active)
