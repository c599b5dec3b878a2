"""Webhooks sent by the sandbox, checked against the shapes of real amoCRM captures (reference §4.3)."""

from __future__ import annotations

import json
import re
import time

import requests

TOKEN = "test-token-123"  # the token the `amo` fixture's sandbox expects

# Keys of the full "lead status changed" capture (reference §4.3), all under leads[status][0][...].
STATUS_CAPTURE_FIELDS = {"id", "name", "status_id", "old_status_id", "price", "responsible_user_id",
                         "last_modified", "modified_user_id", "created_user_id", "date_create", "pipeline_id",
                         "account_id", "created_at", "updated_at"}
NOTE_CAPTURE_FIELDS = {"element_type", "element_id", "note_type", "text", "account_id", "date_create",
                       "timestamp_x", "created_by", "modified_by", "main_user_id", "group_id", "id", "created_at",
                       "updated_at"}


def api(amo, method: str, path: str, body=None, **params) -> requests.Response:
    return requests.request(method, f"{amo.url}/api/v4/{path}", json=body, params=params or None,
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def lead_named(amo, name: str) -> dict:
    leads = api(amo, "GET", "leads", query=name).json()["_embedded"]["leads"]
    return next(lead for lead in leads if lead["name"] == name)


def status_named(amo, name: str) -> int:
    pipeline = api(amo, "GET", "leads/pipelines").json()["_embedded"]["pipelines"][0]
    return next(s["id"] for s in pipeline["_embedded"]["statuses"] if s["name"] == name)


def subscribe(amo, destination: str, settings: list[str]) -> requests.Response:
    return api(amo, "POST", "webhooks", {"destination": destination, "settings": settings, "sort": 10})


def fields_under(form: dict, prefix: str) -> dict:
    """{"leads[status][0][id]": "5"} with prefix "leads[status][0]" -> {"id": "5"} (nested keys kept as text)."""
    out = {}
    for key, value in form.items():
        if key.startswith(prefix + "["):
            rest = key[len(prefix):]
            top = re.match(r"\[([^\]]*)\]", rest).group(1)
            out[top if rest == f"[{top}]" else rest] = value
    return out


def test_subscribing_twice_keeps_one_subscription_and_delete_removes_it(amo, receiver):
    first = subscribe(amo, receiver.url + "/hook", ["add_lead"])
    assert first.status_code == 200
    second = subscribe(amo, receiver.url + "/hook", ["status_lead", "note_lead"])
    assert second.json()["id"] == first.json()["id"]
    listed = api(amo, "GET", "webhooks", **{"filter[destination]": receiver.url + "/hook"}).json()
    assert listed["_total_items"] == 1
    assert listed["_embedded"]["webhooks"][0]["settings"] == ["status_lead", "note_lead"]
    assert subscribe(amo, receiver.url + "/x", ["no_such_event"]).status_code == 400
    gone = api(amo, "DELETE", "webhooks", {"destination": receiver.url + "/hook"})
    assert gone.status_code == 204 and gone.content == b""
    assert api(amo, "GET", "webhooks").status_code == 204


def test_status_change_arrives_as_form_encoded_leads_status(amo, receiver):
    subscribe(amo, receiver.url + "/amo/secret", ["status_lead"])
    lead = lead_named(amo, "Мария Соколова")
    target = status_named(amo, "Просил перезвонить")
    started = time.monotonic()
    r = api(amo, "PATCH", "leads", [{"id": lead["id"], "status_id": target}])
    assert r.status_code == 200
    post = receiver.wait_for(1)[0]
    assert post["path"] == "/amo/secret"
    assert post["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert post["headers"]["User-Agent"] == "amoCRM-WebHook-client/1.0"
    form = post["form"]
    # Only the subscribed section is sent, and the account block is always there.
    sections = {re.match(r"^(\w+)\[(\w+)\]", k).groups() for k in form}
    assert sections == {("leads", "status"), ("account", "subdomain"), ("account", "id"), ("account", "_links")}
    assert form["account[subdomain]"] == "demo"
    assert form["account[id]"] == str(lead["account_id"])
    assert form["account[_links][self]"] == "https://demo.amocrm.ru"
    fields = fields_under(form, "leads[status][0]")
    assert STATUS_CAPTURE_FIELDS <= set(fields)
    assert set(fields) - STATUS_CAPTURE_FIELDS <= {"old_pipeline_id"} | {k for k in fields if k.startswith("[custom_fields]")}
    assert fields["id"] == str(lead["id"])
    assert fields["name"] == "Мария Соколова"
    assert fields["status_id"] == str(target)
    assert fields["old_status_id"] == str(lead["status_id"])
    assert fields["pipeline_id"] == fields["old_pipeline_id"] == str(lead["pipeline_id"])
    assert fields["price"] == "0"
    assert fields["responsible_user_id"] == str(lead["responsible_user_id"])
    assert fields["created_user_id"] == str(lead["created_by"])
    assert fields["date_create"] == fields["created_at"] == str(lead["created_at"])
    after = api(amo, "GET", f"leads/{lead['id']}").json()
    assert fields["updated_at"] == fields["last_modified"] == str(after["updated_at"])
    assert fields["modified_user_id"] == str(after["updated_by"])
    assert form["leads[status][0][custom_fields][0][name]"] == "Попытка дозвона"
    assert form["leads[status][0][custom_fields][0][values][0][value]"] == "Н1"
    assert all(isinstance(v, str) for v in form.values())
    assert time.monotonic() - started < 5


def test_status_change_sends_status_and_update_in_one_body(amo, receiver):
    subscribe(amo, receiver.url + "/both", ["status_lead", "update_lead", "responsible_lead"])
    lead = lead_named(amo, "Сергей Волков")
    boris = next(u["id"] for u in api(amo, "GET", "users").json()["_embedded"]["users"] if u["name"] == "Борис Иванов")
    api(amo, "PATCH", f"leads/{lead['id']}", {"status_id": status_named(amo, "Пришел на пробное"),
                                              "responsible_user_id": boris})
    form = receiver.wait_for(1)[0]["form"]
    assert form["leads[status][0][id]"] == form["leads[update][0][id]"] == str(lead["id"])
    assert form["leads[update][0][old_status_id]"] == str(lead["status_id"])
    assert form["leads[responsible][0][old_responsible_user_id]"] == str(lead["responsible_user_id"])
    assert form["leads[responsible][0][responsible_user_id]"] == str(boris)
    # Date fields come without the [value] level, as in real captures.
    date_keys = [k for k in form if k.startswith("leads[update][0][custom_fields]") and k.endswith("[values][0]")]
    assert date_keys and form[date_keys[0]].isdigit()
    assert amo.wait_webhooks()
    assert len(receiver.posts) == 1


def test_call_produces_note_webhook_with_json_text(amo, receiver):
    subscribe(amo, receiver.url + "/notes", ["note_lead", "note_contact"])
    lead = lead_named(amo, "Ольга Морозова")
    r = api(amo, "POST", "calls", [{"direction": "inbound", "phone": "8 926 700-33-03", "duration": 95,
                                    "source": "my_pbx", "uniq": "a1b2c3", "call_status": 4,
                                    "link": "https://pbx.example/rec/a1b2c3.mp3", "call_result": "Поговорили"}])
    assert r.status_code == 200 and not r.json()["errors"]
    form = receiver.wait_for(1)[0]["form"]
    note = fields_under(form, "leads[note][0][note]")
    assert NOTE_CAPTURE_FIELDS <= set(note)
    assert note["element_type"] == "2"
    assert note["element_id"] == str(lead["id"])
    assert note["note_type"] == "10"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", note["date_create"])
    text = json.loads(note["text"])
    assert text["UNIQ"] == "a1b2c3" and text["DURATION"] == "95" and text["SRC"] == "my_pbx"
    assert text["LINK"] == "https://pbx.example/rec/a1b2c3.mp3" and text["PHONE"] == "8 926 700-33-03"
    assert text["call_status"] == "4"
    assert note["created_by"] == "0"  # no created_by in the call: amoCRM books it to a robot


def test_call_to_contact_with_two_active_leads_goes_to_the_contact(amo, receiver):
    subscribe(amo, receiver.url + "/notes", ["note_lead", "note_contact"])
    lead = lead_named(amo, "Ольга Морозова")
    contact_id = api(amo, "GET", f"leads/{lead['id']}", **{"with": "contacts"}).json()["_embedded"]["contacts"][0]["id"]
    second = api(amo, "POST", "leads", [{"name": "Ольга, второй ребёнок",
                                         "_embedded": {"contacts": [{"id": contact_id}]}}]).json()
    assert second["_embedded"]["leads"][0]["id"]
    api(amo, "POST", "calls", [{"direction": "outbound", "phone": "+79267003303", "duration": 0, "source": "pbx",
                                "call_status": 6}])
    form = receiver.wait_for(1)[0]["form"]
    assert form["contacts[note][0][note][element_type]"] == "1"
    assert form["contacts[note][0][note][element_id]"] == str(contact_id)
    assert form["contacts[note][0][note][note_type]"] == "11"


def test_task_add_and_complete_webhooks_use_singular_task_section(amo, receiver):
    subscribe(amo, receiver.url + "/tasks", ["add_task", "update_task"])
    lead = lead_named(amo, "Наталья Лебедева")
    due = int(time.time()) + 86400
    task_id = api(amo, "POST", "tasks", [{"text": "Продать", "complete_till": due, "entity_type": "leads",
                                          "entity_id": lead["id"]}]).json()["_embedded"]["tasks"][0]["id"]
    api(amo, "PATCH", f"tasks/{task_id}", {"is_completed": True, "result": {"text": "Оплатил"}})
    added, updated = [p["form"] for p in receiver.wait_for(2)]
    assert added["task[add][0][id]"] == str(task_id)
    assert added["task[add][0][element_id]"] == str(lead["id"]) and added["task[add][0][element_type]"] == "2"
    assert added["task[add][0][status]"] == "0" and added["task[add][0][complete_till]"] == str(due)
    assert added["task[add][0][task_type]"] == "1" and added["task[add][0][text]"] == "Продать"
    assert updated["task[update][0][status]"] == "1"
    assert updated["task[update][0][result][text]"] == "Оплатил"
    assert not any(k.startswith("tasks[") for k in added)


def test_api_answers_without_waiting_for_a_slow_receiver(amo, receiver):
    receiver.delay = 1.5
    subscribe(amo, receiver.url + "/slow", ["add_lead"])
    started = time.monotonic()
    assert api(amo, "POST", "leads", [{"name": "Быстрый ответ"}]).status_code == 200
    assert time.monotonic() - started < 1.0  # the receiver takes 1.5 s to answer
    assert receiver.wait_for(1)[0]["form"]["leads[add][0][name]"] == "Быстрый ответ"


def test_failed_delivery_is_retried_and_logged(amo, receiver):
    receiver.answers = [500]
    subscribe(amo, receiver.url + "/flaky", ["add_lead"])
    api(amo, "POST", "leads", [{"name": "Повтор"}])
    posts = receiver.wait_for(2)
    assert [p["answered"] for p in posts] == [500, 200]
    assert posts[0]["raw"] == posts[1]["raw"]
    assert amo.wait_webhooks()
    log = requests.get(f"{amo.url}/_sandbox/webhooks", timeout=5).json()
    assert [(e["attempt"], e["status"], e["ok"], e["final"]) for e in log] == [(1, 500, False, False),
                                                                                (2, 200, True, True)]
    assert log[0]["sections"] == ["leads[add]"] and log[0]["settings"] == ["add_lead"]


def test_changes_made_on_the_page_behave_like_api_calls(amo, receiver):
    subscribe(amo, receiver.url + "/ui", ["status_lead", "update_task", "add_lead", "add_contact", "note_lead"])
    lead = lead_named(amo, "Мария Соколова")
    page = requests.get(amo.url + "/", timeout=5)
    assert page.status_code == 200 and "Мария Соколова" in page.text and "Недозвон" in page.text
    target = status_named(amo, "Записался на пробное")
    r = requests.post(f"{amo.url}/ui/leads/{lead['id']}/status", data={"status_id": target}, allow_redirects=False,
                      timeout=5)
    assert r.status_code == 303
    form = receiver.wait_for(1)[0]["form"]
    assert form["leads[status][0][status_id]"] == str(target)
    # the page acts as the lead's manager
    assert form["leads[status][0][modified_user_id]"] == str(lead["responsible_user_id"])
    events = api(amo, "GET", "events", **{"filter[type]": "lead_status_changed"}).json()["_embedded"]["events"]
    assert events[0]["entity_id"] == lead["id"] and events[0]["created_by"] == lead["responsible_user_id"]

    task = api(amo, "GET", "tasks", **{"filter[entity_type]": "leads", "filter[entity_id]": lead["id"]}).json()
    task_id = task["_embedded"]["tasks"][0]["id"]
    requests.post(f"{amo.url}/ui/tasks/{task_id}/complete", data={"result": "Записали на субботу"}, timeout=5)
    requests.post(f"{amo.url}/ui/leads/{lead['id']}/call",
                  data={"direction": "outbound", "call_status": "4", "duration": "120"}, timeout=5)
    users = api(amo, "GET", "users").json()["_embedded"]["users"]
    requests.post(f"{amo.url}/ui/leads", data={"name": "Гость со страницы", "phone": "+7 901 000-00-99",
                                               "responsible_user_id": users[2]["id"],
                                               "status_id": status_named(amo, "Новая заявка")}, timeout=5)
    forms = [p["form"] for p in receiver.wait_for(4)]
    assert forms[1]["task[update][0][result][text]"] == "Записали на субботу"
    assert forms[2]["leads[note][0][note][note_type]"] == "11"
    assert forms[3]["contacts[add][0][name]"] == forms[3]["leads[add][0][name]"] == "Гость со страницы"
    created = lead_named(amo, "Гость со страницы")
    assert created["responsible_user_id"] == users[2]["id"]
