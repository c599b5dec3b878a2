"""Creates happen once per action key, even when a request fails after reaching amoCRM."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from connectors.amocrm import AmbiguousWriteError, AmoCRMGaveUp, AmoCRMValidationError
from connectors.amocrm.idempotency import request_id
from reglament import keys
from tests.connectors.amo_bodies import BASE, HAL, PROBLEM, VALIDATION_ERROR, created, task

TASK_KEY = "next_task:lead:180765:status:456"
NEW_TASK = dict(text="Перезвонить клиенту", complete_till=1700003600, entity_type="leads", entity_id=180765,
                task_type_id=1, responsible_user_id=123123)


def record_key(kind: str, action_key: str) -> str:
    return keys.key("acme", "amocrm", "created", kind, action_key)


class TaskServer:
    """amoCRM's tasks endpoint with memory. `lose_replies` POSTs are carried out but answered
    with `failure` (a lost reply); `refuse` POSTs fail before doing anything."""

    def __init__(self, mocked, *, lose_replies=0, failure=None, refuse=0):
        self.tasks: list[dict] = []
        self.posts = 0
        self.lose_replies = lose_replies
        self.failure = failure or (504, {}, "Gateway Timeout")
        self.refuse = refuse
        mocked.add_callback(responses.POST, f"{BASE}/api/v4/tasks", callback=self.post)
        mocked.add_callback(responses.GET, f"{BASE}/api/v4/tasks", callback=self.get)

    def post(self, request):
        self.posts += 1
        if self.refuse:
            self.refuse -= 1
            return 503, {}, "Service Unavailable"
        body = json.loads(request.body)
        made = []
        for item in body:
            entity = task(90000 + len(self.tasks), **{k: v for k, v in item.items() if k != "request_id"},
                          is_completed=False, result=None)
            self.tasks.append(entity)
            made.append(entity["id"])
        if self.lose_replies:
            self.lose_replies -= 1
            if isinstance(self.failure, Exception):
                raise self.failure
            return self.failure
        return 200, HAL, json.dumps({"_embedded": {"tasks": [
            {"id": i, "request_id": item["request_id"]} for i, item in zip(made, body)]}})

    def get(self, request):
        q = parse_qsl(urlsplit(request.url).query)
        ids = {int(v) for k, v in q if k == "filter[entity_id][]"}
        entity_type = dict(q).get("filter[entity_type]")
        found = [t for t in self.tasks if not t["is_completed"]
                 and (not entity_type or t["entity_type"] == entity_type) and (not ids or t["entity_id"] in ids)]
        if not found:
            return 204, {}, ""
        return 200, HAL, json.dumps({"_links": {}, "_embedded": {"tasks": found}})


def test_a_create_already_done_makes_no_request(client, mocked, r):
    r.set(record_key("tasks", TASK_KEY), "56982")
    assert client.create_task(TASK_KEY, **NEW_TASK) == 56982
    assert len(mocked.calls) == 0


def test_a_create_is_recorded_and_repeating_it_makes_no_request(client, mocked, r):
    server = TaskServer(mocked)
    first = client.create_task(TASK_KEY, **NEW_TASK)
    again = client.create_task(TASK_KEY, **NEW_TASK)

    assert first == again == 90000
    assert server.posts == 1
    assert len(server.tasks) == 1
    sent = json.loads(mocked.calls[0].request.body)[0]
    assert sent["request_id"] == request_id(TASK_KEY)
    assert r.get(record_key("tasks", TASK_KEY)) == b"90000"
    assert 29 * 86400 < r.ttl(record_key("tasks", TASK_KEY)) <= 30 * 86400


@pytest.mark.parametrize("failure", [(504, {}, "Gateway Timeout"), requests.ReadTimeout("read timed out")],
                         ids=["504", "read-timeout"])
def test_ambiguous_failure_then_retry_does_not_create_a_second_task(client, mocked, failure):
    server = TaskServer(mocked, lose_replies=1, failure=failure)
    task_id = client.create_task(TASK_KEY, **NEW_TASK)

    assert len(server.tasks) == 1  # the lost attempt's task was found, not duplicated
    assert task_id == server.tasks[0]["id"]
    assert server.posts == 1
    assert [c.request.method for c in mocked.calls] == ["POST", "GET"]
    lookup = dict(parse_qsl(urlsplit(mocked.calls[1].request.url).query))
    assert lookup["filter[entity_type]"] == "leads" and lookup["filter[is_completed]"] == "0"


def test_ambiguous_failure_that_created_nothing_is_sent_again(client, mocked, r):
    server = TaskServer(mocked, refuse=1)  # 503 before anything was stored
    task_id = client.create_task(TASK_KEY, **NEW_TASK)

    assert server.posts == 2
    assert len(server.tasks) == 1
    assert task_id == server.tasks[0]["id"]
    assert r.get(record_key("tasks", TASK_KEY)) == str(task_id).encode()


def test_a_batch_with_a_lost_reply_creates_each_task_once(client, mocked):
    server = TaskServer(mocked, lose_replies=1)
    items = [(f"k:{i}", {**NEW_TASK, "entity_id": 500 + i}) for i in range(3)]
    ids = client.create_tasks(items)
    assert len(server.tasks) == 3
    assert sorted(ids) == sorted(t["id"] for t in server.tasks)
    assert server.posts == 1


def test_a_pending_mark_left_by_a_crash_is_resolved_by_lookup(client, mocked, r):
    server = TaskServer(mocked)
    server.tasks.append(task(777, **NEW_TASK, is_completed=False))
    r.set(record_key("tasks", TASK_KEY), f"pending:{time.time() - 60:.3f}")

    assert client.create_task(TASK_KEY, **NEW_TASK) == 777
    assert server.posts == 0
    assert r.get(record_key("tasks", TASK_KEY)) == b"777"


def test_a_refused_create_leaves_no_mark_so_it_can_be_tried_again(client, mocked, r):
    mocked.post(f"{BASE}/api/v4/tasks", json=VALIDATION_ERROR, status=400, content_type=PROBLEM)
    with pytest.raises(AmoCRMValidationError):
        client.create_task(TASK_KEY, **NEW_TASK)
    assert r.get(record_key("tasks", TASK_KEY)) is None
    assert len(mocked.calls) == 1


def test_calls_with_an_unclear_outcome_are_never_sent_twice(client, mocked, r):
    mocked.post(f"{BASE}/api/v4/calls", body=requests.ReadTimeout("read timed out"))
    call = dict(direction="inbound", phone="+79990001122", duration=60, source="pbx", uniq="a1b2c3")
    with pytest.raises(AmbiguousWriteError):
        client.add_call("call:a1b2c3", **call)
    with pytest.raises(AmbiguousWriteError):
        client.add_call("call:a1b2c3", **call)
    assert len(mocked.calls) == 1


def test_a_call_amocrm_could_not_file_returns_none(client, mocked, r):
    mocked.post(f"{BASE}/api/v4/calls", json={"_total_items": 0, "errors": [], "_embedded": {"calls": []}}, headers=HAL)
    assert client.add_call("call:x", direction="outbound", phone="123", duration=5, source="pbx") is None
    assert r.get(record_key("calls", "call:x")) is None


def test_notes_are_created_once_and_found_after_a_lost_reply(client, mocked, r):
    def post(request):
        raise requests.ConnectionError("connection reset by peer")

    note = {"id": 4242, "entity_id": 180765, "note_type": "common", "params": {"text": "Клиент просил перезвонить"}}
    mocked.add_callback(responses.POST, f"{BASE}/api/v4/leads/notes", callback=post)
    mocked.get(f"{BASE}/api/v4/leads/notes", json={"_embedded": {"notes": [note]}}, headers=HAL)

    assert client.add_note("note:1", "leads", 180765, "Клиент просил перезвонить") == 4242
    assert [c.request.method for c in mocked.calls] == ["POST", "GET"]
    assert client.add_note("note:1", "leads", 180765, "Клиент просил перезвонить") == 4242
    assert len(mocked.calls) == 2


def test_leads_map_back_by_position_when_request_id_is_not_echoed(client, mocked):
    made = created("leads", "/api/v4/leads", ["0", "1"], 31000)
    mocked.post(f"{BASE}/api/v4/leads", json=made, headers=HAL)
    ids = client.create_leads([("lead:a", {"name": "A"}), ("lead:b", {"name": "B"})])
    assert ids == [31000, 31001]


def test_a_create_throttled_until_the_budget_ran_out_leaves_no_mark(client, mocked, r):
    mocked.post(f"{BASE}/api/v4/tasks", status=429)
    with pytest.raises(AmoCRMGaveUp):
        client.create_task(TASK_KEY, **NEW_TASK)
    assert len(mocked.calls) == 4  # 429 is safe to repeat, even for a create
    assert r.get(record_key("tasks", TASK_KEY)) is None
