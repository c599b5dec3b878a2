"""AmoCRMClient reads and writes: paging, 204, batching, retries, error messages, filters."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from connectors.amocrm import AmoCRMGaveUp, AmoCRMValidationError, ForbiddenError
from connectors.amocrm.idempotency import request_id
from reglament import keys
from tests.connectors.amo_bodies import BASE, CONTACT, FORBIDDEN, HAL, LEAD, PROBLEM, VALIDATION_ERROR, created, lead, page


def query(call) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(call.request.url).query)


def api_calls(r) -> dict[str, int]:
    counters = {k.decode(): int(v) for k, v in r.hgetall(keys.metrics("acme")).items()}
    return {k: v for k, v in counters.items() if k.startswith("api_calls_total")}


def test_paging_follows_next_link_until_absent(client, mocked):
    # amoCRM's next links may name a shard host; the client must still talk to base_url only.
    next_href = "https://shard151.amocrm.ru/api/v4/leads?page=2&limit=250&filter%5Bupdated_at%5D%5Bfrom%5D=1700000000"
    mocked.get(f"{BASE}/api/v4/leads", json=page("leads", [lead(1), lead(2)], "/api/v4/leads", 1, next_href),
               headers=HAL, match=[responses.matchers.query_param_matcher({"page": "1"}, strict_match=False)])
    mocked.get(f"{BASE}/api/v4/leads", json=page("leads", [lead(3)], "/api/v4/leads", 2), headers=HAL,
               match=[responses.matchers.query_param_matcher({"page": "2"}, strict_match=False)])

    found = client.leads(updated_at=(1700000000, None))

    assert [x["id"] for x in found] == [1, 2, 3]
    assert len(mocked.calls) == 2
    assert ("limit", "250") in query(mocked.calls[0]) and ("filter[updated_at][from]", "1700000000") in query(mocked.calls[0])
    second = urlsplit(mocked.calls[1].request.url)
    assert second.netloc == "example.amocrm.ru"
    assert ("page", "2") in query(mocked.calls[1])


def test_one_page_says_whether_another_follows(client, mocked):
    mocked.get(f"{BASE}/api/v4/leads", json=page("leads", [lead(1), lead(2)], "/api/v4/leads", 1,
                                                 f"{BASE}/api/v4/leads?page=2"), headers=HAL)
    mocked.get(f"{BASE}/api/v4/leads", status=204)
    found, more = client.page("/api/v4/leads", "leads", [("filter[pipeline_id][]", 7)], 1)
    assert ([x["id"] for x in found], more) == ([1, 2], True)
    assert ("filter[pipeline_id][]", "7") in query(mocked.calls[0]) and ("page", "1") in query(mocked.calls[0])
    assert client.page("/api/v4/leads", "leads", [], 2) == ([], False)  # 204: the end


def test_a_task_deadline_that_is_not_a_unix_time_is_a_clear_error(client, mocked):
    with pytest.raises(TypeError, match="complete_till must be a unix time"):
        client.create_task("k", text="Позвонить", complete_till="завтра")
    assert len(mocked.calls) == 0


def test_204_is_an_empty_list(client, mocked):
    mocked.get(f"{BASE}/api/v4/tasks", status=204)
    assert client.tasks(entity_type="leads", entity_ids=[180765], is_completed=False) == []
    assert len(mocked.calls) == 1


def test_events_page_by_100(client, mocked):
    mocked.get(f"{BASE}/api/v4/events", status=204)
    client.events(types=["lead_status_changed", "task_completed"], created_at=(1700000000, 1700086400))
    q = query(mocked.calls[0])
    assert ("limit", "100") in q
    assert ("filter[type]", "lead_status_changed,task_completed") in q
    assert ("filter[created_at][to]", "1700086400") in q


def test_get_lead_with_contacts_and_missing_lead(client, mocked):
    mocked.get(f"{BASE}/api/v4/leads/17657", json=LEAD, headers=HAL)
    mocked.get(f"{BASE}/api/v4/leads/404404", status=204)

    got = client.get_lead(17657)
    assert got["_embedded"]["contacts"][0]["id"] == 10971463
    assert ("with", "contacts") in query(mocked.calls[0])
    assert client.get_lead(404404) is None


def test_lead_filters_are_encoded_the_way_amocrm_reads_them(client, mocked):
    mocked.get(f"{BASE}/api/v4/leads", status=204)
    client.leads(statuses=[(3643927, 35573056), (3643927, 142)], responsible_user_ids=[5, 6],
                 created_at=(1, 2), ids=[9], query="Иван", with_contacts=True)
    q = query(mocked.calls[0])
    for pair in [("filter[statuses][0][pipeline_id]", "3643927"), ("filter[statuses][0][status_id]", "35573056"),
                 ("filter[statuses][1][status_id]", "142"), ("filter[responsible_user_id][]", "5"),
                 ("filter[responsible_user_id][]", "6"), ("filter[created_at][from]", "1"),
                 ("filter[created_at][to]", "2"), ("filter[id][]", "9"), ("query", "Иван"), ("with", "contacts")]:
        assert pair in q


def test_updates_go_in_batches_of_50(client, mocked):
    sizes = []

    def patched(request):
        body = json.loads(request.body)
        sizes.append(len(body))
        return 200, HAL, json.dumps({"_embedded": {"leads": [{"id": x["id"], "updated_at": 1700000000} for x in body]}})

    mocked.add_callback(responses.PATCH, f"{BASE}/api/v4/leads", callback=patched)
    result = client.update_leads([{"id": i, "status_id": 143, "pipeline_id": 1113} for i in range(120)])
    assert sizes == [50, 50, 20]
    assert [x["id"] for x in result] == list(range(120))


def test_creates_go_in_batches_of_50_and_ids_map_back_by_request_id(client, mocked, r):
    sizes = []

    def posted(request):
        body = json.loads(request.body)
        sizes.append(len(body))
        first = 1000 + sum(sizes[:-1])
        # Answer in reverse order: ids must be matched through request_id, not position.
        made = created("tasks", "/api/v4/tasks", [t["request_id"] for t in body], first)
        made["_embedded"]["tasks"].reverse()
        return 200, HAL, json.dumps(made)

    mocked.add_callback(responses.POST, f"{BASE}/api/v4/tasks", callback=posted)
    items = [(f"t:{i}", {"text": f"Call {i}", "complete_till": 1700003600, "entity_type": "leads", "entity_id": i})
             for i in range(120)]
    ids = client.create_tasks(items)
    assert sizes == [50, 50, 20]
    assert ids == [1000 + i for i in range(120)]
    first_body = json.loads(mocked.calls[0].request.body)
    assert first_body[0]["request_id"] == request_id("t:0")


def test_429_is_retried_honouring_retry_after(client, mocked, sleeps, r):
    mocked.get(f"{BASE}/api/v4/users", status=429, headers={"Retry-After": "3"})
    mocked.get(f"{BASE}/api/v4/users", json=page("users", [{"id": 1, "name": "Anna"}], "/api/v4/users"), headers=HAL)

    assert [u["id"] for u in client.users()] == [1]
    assert len(mocked.calls) == 2
    assert sleeps and sleeps[0] >= 3  # waited at least what the server asked, though backoff is tiny
    counted = api_calls(r)
    assert counted == {"api_calls_total\tstatus=429\tsystem=amocrm": 1, "api_calls_total\tstatus=200\tsystem=amocrm": 1}


def test_5xx_and_connection_errors_are_retried_then_succeed(client, mocked, r):
    mocked.get(f"{BASE}/api/v4/leads/pipelines", status=502)
    mocked.get(f"{BASE}/api/v4/leads/pipelines", body=requests.ConnectionError("connection reset"))
    mocked.get(f"{BASE}/api/v4/leads/pipelines", json={"_embedded": {"pipelines": [
        {"id": 1113, "name": "Воронка", "_embedded": {"statuses": [{"id": 142}, {"id": 143}]}}]}}, headers=HAL)

    pipelines = client.pipelines()
    assert pipelines[0]["_embedded"]["statuses"][0]["id"] == 142
    assert len(mocked.calls) == 3
    assert api_calls(r)["api_calls_total\tstatus=error\tsystem=amocrm"] == 1


def test_gives_up_after_the_retry_budget(client, mocked):
    mocked.get(f"{BASE}/api/v4/users", status=503)
    with pytest.raises(AmoCRMGaveUp) as caught:
        client.users()
    assert len(mocked.calls) == 4  # max_attempts in the fixture
    assert "gave up on GET /api/v4/users after 4 attempt(s)" in str(caught.value)
    assert "503" in str(caught.value)


def test_validation_error_is_not_retried_and_reads_as_plain_words(client, mocked):
    mocked.patch(f"{BASE}/api/v4/leads", json=VALIDATION_ERROR, status=400, content_type=PROBLEM)
    with pytest.raises(AmoCRMValidationError) as caught:
        client.update_lead(17657, custom_fields_values=[{"field_id": 1, "values": [{"enum_id": 5}]}])
    assert len(mocked.calls) == 1
    assert str(caught.value) == ("amoCRM rejected the request: custom_fields_values.0.field_id: "
                                 "The value you selected is not a valid choice.")
    assert caught.value.errors[0]["code"] == "NotSupportedChoice"


def test_403_is_its_own_error_and_not_retried(client, mocked):
    mocked.get(f"{BASE}/api/v4/webhooks", json=FORBIDDEN, status=403, content_type=PROBLEM)
    with pytest.raises(ForbiddenError) as caught:
        client.webhooks()
    assert len(mocked.calls) == 1
    assert "HTTP 403" in str(caught.value)


def test_link_contact_to_lead(client, mocked):
    mocked.post(f"{BASE}/api/v4/leads/17657/link", json={"_embedded": {"links": [
        {"entity_id": 17657, "entity_type": "leads", "to_entity_id": 3, "to_entity_type": "contacts",
         "metadata": {"main_contact": True}}]}}, headers=HAL)
    links = client.link_contact_to_lead(17657, 3, main=True)
    assert links[0]["to_entity_id"] == 3
    assert json.loads(mocked.calls[0].request.body) == [
        {"to_entity_id": 3, "to_entity_type": "contacts", "metadata": {"is_main": True}}]


def test_find_contacts_by_phone_compares_last_ten_digits(client, mocked):
    other = {**CONTACT, "id": 4, "custom_fields_values": [
        {"field_code": "PHONE", "values": [{"value": "+7 999 000 11 99"}]}]}
    mocked.get(f"{BASE}/api/v4/contacts", json=page("contacts", [CONTACT, other], "/api/v4/contacts"), headers=HAL)
    found = client.find_contacts_by_phone("8 (999) 000-11-22")
    assert [c["id"] for c in found] == [3]
    assert ("query", "9990001122") in query(mocked.calls[0])


def test_complete_tasks_sends_result_text(client, mocked):
    mocked.patch(f"{BASE}/api/v4/tasks", json={"_embedded": {"tasks": [{"id": 56981, "updated_at": 1}]}}, headers=HAL)
    client.complete_task(56981, "Дозвонились")
    assert json.loads(mocked.calls[0].request.body) == [
        {"id": 56981, "is_completed": True, "result": {"text": "Дозвонились"}}]


def test_account_task_types_and_notes_filters(client, mocked):
    mocked.get(f"{BASE}/api/v4/account", json={"id": 30896271, "_embedded": {
        "task_types": [{"id": 1, "name": "Follow-up"}, {"id": 2, "name": "Meeting"}],
        "users_groups": [{"id": 0, "name": "Отдел продаж"}]}}, headers=HAL)
    mocked.get(f"{BASE}/api/v4/leads/notes", status=204)
    assert [t["id"] for t in client.task_types()] == [1, 2]
    assert client.notes("leads", entity_ids=[1], note_types=["call_in", "call_out"]) == []
    q = query(mocked.calls[1])
    assert ("filter[note_type][]", "call_in") in q and ("filter[note_type][]", "call_out") in q
