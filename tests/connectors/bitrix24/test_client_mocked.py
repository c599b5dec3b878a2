"""The Bitrix24 client against `responses` mocks built from the reference's CONFIRMED shapes."""

from __future__ import annotations

import json
import logging
import threading
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
import responses

from connectors.bitrix24 import (AccessDenied, AmbiguousWriteError, ApiError, AuthError, Bitrix24GaveUp,
                                 MethodNotFound, NotFound, OperationTimeLimit)
from connectors.bitrix24.client import command, command_key, created_id, php_query
from connectors.idempotency import PartlyCreated
from reglament import keys
from tests.connectors.bitrix24 import bodies as b
from tests.connectors.bitrix24.conftest import ACCOUNT, in_two_clients


def url(method: str) -> str:
    return b.WEBHOOK + method


def sent(call) -> dict:
    return json.loads(call.request.body)


def batch_cmds(call) -> dict[str, tuple[str, dict]]:
    """The commands of a sent batch, each parsed back into (method, flat params)."""
    found = {}
    for name, text in sent(call)["cmd"].items():
        method, _, query = text.partition("?")
        found[name] = (method, dict(parse_qsl(query)))
    return found


# ---------------------------------------------------------------- calls


def test_a_call_posts_json_to_the_webhook_and_returns_the_result(mocked, make_b24):
    mocked.post(url("crm.deal.get"), json=b.answer(b.DEAL))
    deal = make_b24().call("crm.deal.get", {"id": 7405})
    assert deal["STAGE_ID"] == "UC_CAME"
    assert sent(mocked.calls[0]) == {"id": 7405}
    assert mocked.calls[0].request.headers["Content-Type"] == "application/json"


def test_oauth_sends_the_token_in_the_body_never_in_the_url(r, mocked, make_b24):
    r.hset(keys.key(ACCOUNT, "bitrix24", "oauth"), mapping={"access_token": b.OLD_ACCESS, "refresh_token": b.OLD_REFRESH,
                                                            "expires_at": 4_000_000_000})
    mocked.post(f"{b.PORTAL}/rest/crm.deal.get", json=b.answer(b.DEAL))
    make_b24(b.oauth_settings()).call("crm.deal.get", {"id": 7405})
    request = mocked.calls[0].request
    assert sent(mocked.calls[0]) == {"id": 7405, "auth": b.OLD_ACCESS}
    assert b.OLD_ACCESS not in request.url


def test_php_query_writes_nested_filters_as_a_batch_command_expects():
    assert php_query({"filter": {">=DATE_MODIFY": "2026-11-23T00:00:00+03:00", "@ID": [1, 2]},
                      "select": ["ID", "TITLE"], "flag": True, "skip": None}) == (
        "filter[%3E%3DDATE_MODIFY]=2026-11-23T00%3A00%3A00%2B03%3A00&filter[%40ID][0]=1&filter[%40ID][1]=2"
        "&select[0]=ID&select[1]=TITLE&flag=1")
    assert command("user.current") == "user.current"
    # What the portal reads back from the command (PHP's parse_str on the query)
    assert dict(parse_qsl(command("crm.deal.list", {"filter": {">ID": 5}}).split("?", 1)[1])) == {"filter[>ID]": "5"}


def test_created_ids_from_each_add_methods_answer():
    assert created_id(7405) == 7405                                   # crm.deal.add, crm.timeline.comment.add
    assert created_id({"id": 999}) == 999                             # crm.activity.todo.add
    assert created_id({"task": {"id": "3711", "title": "x"}}) == 3711  # tasks.task.add
    assert created_id(True) is None and created_id(None) is None


# ---------------------------------------------------------------- paging


def test_list_reads_the_first_page_then_every_other_page_in_one_batch(mocked, make_b24):
    mocked.post(url("batch"), json=b.batch_answer({"list": b.deals(1, 50)}, totals={"list": 120}, nexts={"list": 50}))
    mocked.post(url("batch"), json=b.batch_answer({"list~50": b.deals(51, 50), "list~100": b.deals(101, 20)},
                                                  totals={"list~50": 120, "list~100": 120}, nexts={"list~50": 100}))
    rows = make_b24().list("crm.deal.list", {"filter": {"CATEGORY_ID": 0}, "select": ["ID", "STAGE_ID"]})
    assert [int(d["ID"]) for d in rows] == list(range(1, 121))
    assert len(mocked.calls) == 2
    second = batch_cmds(mocked.calls[1])
    assert {name: params["start"] for name, (_, params) in second.items()} == {"list~50": "50", "list~100": "100"}
    assert all(method == "crm.deal.list" and params["filter[CATEGORY_ID]"] == "0" for method, params in second.values())


def test_a_list_without_a_total_follows_next_page_by_page(mocked, make_b24):
    mocked.post(url("batch"), json=b.batch_answer({"list": b.deals(1, 50)}, nexts={"list": 50}))
    mocked.post(url("crm.deal.list"), json=b.answer(b.deals(51, 50), next=100))
    mocked.post(url("crm.deal.list"), json=b.answer(b.deals(101, 3)))
    rows = make_b24().list("crm.deal.list", {"select": ["ID"]})
    assert [int(d["ID"]) for d in rows] == list(range(1, 104))
    assert [sent(c).get("start") for c in mocked.calls[1:]] == [50, 100]


def test_pages_follow_next_one_request_a_page(mocked, make_b24):
    mocked.post(url("crm.deal.list"), json=b.answer(b.deals(1, 50), next=50, total=70))
    mocked.post(url("crm.deal.list"), json=b.answer(b.deals(51, 20), total=70))
    pages = list(make_b24().pages("crm.deal.list", {"select": ["ID"]}))
    assert [len(p) for p in pages] == [50, 20]
    assert [sent(c)["start"] for c in mocked.calls] == [0, 50]


def test_a_nested_list_result_is_unwrapped(mocked, make_b24):
    tasks = [{"id": "1", "title": "Продать"}, {"id": "2", "title": "Перезвонить"}]
    mocked.post(url("batch"), json=b.batch_answer({"list": {"tasks": tasks}}, totals={"list": 2}))
    assert make_b24().list("tasks.task.list", {"select": ["ID", "TITLE"]}) == tasks


# ---------------------------------------------------------------- batch


def _echo_batch(request):
    cmds = json.loads(request.body)["cmd"]
    results, errors = {}, {}
    for name, text in cmds.items():
        query = parse_qs(text.partition("?")[2])
        if query["id"][0] == "13":
            errors[name] = dict(b.NOT_FOUND)
        else:
            results[name] = {**b.DEAL, "ID": query["id"][0]}
    return 200, {}, json.dumps(b.batch_answer(results, errors))


def test_a_batch_of_120_goes_as_50_50_20_with_results_and_errors_keyed(mocked, make_b24):
    mocked.add_callback(responses.POST, url("batch"), callback=_echo_batch)
    answer = make_b24().batch({f"d{i}": ("crm.deal.get", {"id": i}) for i in range(120)})
    assert [len(sent(c)["cmd"]) for c in mocked.calls] == [50, 50, 20]
    assert all(sent(c)["halt"] == 0 for c in mocked.calls)
    assert answer.results["d7"]["ID"] == "7" and len(answer.results) == 119
    assert isinstance(answer.errors["d13"], NotFound)
    assert "crm.deal.get" in str(answer.errors["d13"])
    with pytest.raises(NotFound):
        answer["d13"]


def test_batch_errors_of_the_docs_example_with_empty_arrays(mocked, make_b24):
    # batch.md, "Пример ошибки (halt = 0)": result, result_total, ... are [] and errors keyed.
    mocked.post(url("batch"), json={"result": {"result": [], "result_error": {
        "get_user": {"error": "insufficient_scope", "error_description": ""},
        "get_department": {"error": "insufficient_scope", "error_description": ""}},
        "result_total": [], "result_next": [], "result_time": []}, "time": b.TIME})
    answer = make_b24().batch({"get_user": ("user.current", {}), "get_department": ("department.get", {})})
    assert answer.results == {}
    assert {k: type(v) for k, v in answer.errors.items()} == {"get_user": AccessDenied, "get_department": AccessDenied}
    assert "department.get" in str(answer.errors["get_department"])


def test_gather_raises_a_deferrable_error_first(mocked, make_b24):
    mocked.post(url("batch"), json=b.batch_answer({"deal": b.DEAL}, errors={
        "acts": dict(b.TIME_LIMIT), "user": dict(b.NOT_FOUND)}))
    with pytest.raises(OperationTimeLimit):
        make_b24().gather({"deal": ("crm.deal.get", {"id": 7405}), "acts": ("crm.activity.list", {}),
                           "user": ("user.get", {"ID": 9})})


# ---------------------------------------------------------------- errors and retries


def test_503_query_limit_is_retried_even_for_a_write_and_writes_once(mocked, make_b24, sleeps):
    created, seen = [], []

    def todo_add(request):
        seen.append(request)
        if len(seen) <= 2:
            return 503, {}, json.dumps(b.QUERY_LIMIT)
        created.append(json.loads(request.body))
        return 200, {}, json.dumps(b.batch_answer({name: {"id": 999} for name in json.loads(request.body)["cmd"]}))

    mocked.add_callback(responses.POST, url("batch"), callback=todo_add)
    ids = make_b24().add("todos", [("next:deal:7405:UC_CAME", {"ownerTypeId": 2, "ownerId": 7405, "title": "Продать",
                                                            "deadline": "2026-11-24T12:00:00+03:00"})])
    assert ids == [999]
    assert len(mocked.calls) == 3 and len(created) == 1 and len(sleeps) == 2


def test_503_until_the_budget_runs_out_gives_up_without_the_secret(mocked, make_b24):
    mocked.post(url("crm.deal.get"), status=503, json=b.QUERY_LIMIT)
    with pytest.raises(Bitrix24GaveUp) as caught:
        make_b24().call("crm.deal.get", {"id": 1})
    assert len(mocked.calls) == 4
    assert "crm.deal.get" in str(caught.value) and b.CODE not in str(caught.value)


def test_a_500_on_a_read_is_retried(mocked, make_b24):
    mocked.post(url("crm.deal.get"), status=500, json=b.INTERNAL)
    mocked.post(url("crm.deal.get"), json=b.answer(b.DEAL))
    assert make_b24().call("crm.deal.get", {"id": 7405})["ID"] == "7405"
    assert len(mocked.calls) == 2


def test_operation_time_limit_is_raised_at_once_for_the_job_to_defer(mocked, make_b24):
    mocked.post(url("crm.deal.list"), status=429, json={**b.TIME_LIMIT, "time": b.TIME})
    with pytest.raises(OperationTimeLimit) as caught:
        make_b24().call("crm.deal.list", {})
    assert len(mocked.calls) == 1                            # not retried: waiting seconds won't help
    assert caught.value.retry_at == b.TIME["operating_reset_at"]
    assert caught.value.method == "crm.deal.list"
    from jobs.deferral import stopped  # the jobs layer defers it as it does a spent budget

    assert stopped(caught.value, "acme") == (caught.value.retry_in, "429") and caught.value.retry_in >= 1


def test_unknown_method_access_and_credentials_are_named_by_method_never_by_url(mocked, make_b24, caplog):
    caplog.set_level(logging.DEBUG)
    mocked.post(url("crm.dael.get"), status=404, json=b.METHOD_NOT_FOUND)
    mocked.post(url("telephony.externalcall.register"), status=403, json=b.INSUFFICIENT_SCOPE)
    mocked.post(url("crm.deal.get"), status=401, json=b.INVALID_CREDENTIALS)
    client = make_b24()
    raised = []
    for method, cls in (("crm.dael.get", MethodNotFound), ("telephony.externalcall.register", AccessDenied),
                        ("crm.deal.get", AuthError)):
        with pytest.raises(cls) as caught:
            client.call(method, {})
        assert method in str(caught.value)
        raised.append(str(caught.value))
    assert "webhook" in raised[2]                            # says what the admin must check
    from connectors.http import AccessRefused                # the jobs layer stops the account on these
    assert issubclass(AuthError, AccessRefused) and issubclass(AccessDenied, AccessRefused)
    for text in raised + [caplog.text]:
        assert b.CODE not in text and b.WEBHOOK not in text


def test_a_lost_connection_never_shows_the_webhook_url(mocked, make_b24, caplog):
    caplog.set_level(logging.DEBUG)
    mocked.post(url("crm.deal.get"), body=requests.ConnectionError(f"Max retries exceeded with url: {url('crm.deal.get')}"))
    with pytest.raises(Bitrix24GaveUp) as caught:
        make_b24().call("crm.deal.get", {"id": 1})
    assert b.CODE not in str(caught.value) and b.CODE not in caplog.text
    assert "***" in caplog.text


# ---------------------------------------------------------------- OAuth


def test_expired_token_is_refreshed_once_and_the_call_repeated(r, mocked, make_b24):
    r.hset(keys.key(ACCOUNT, "bitrix24", "oauth"), mapping={"access_token": b.OLD_ACCESS, "refresh_token": b.OLD_REFRESH,
                                                            "expires_at": 4_000_000_000})

    def deal(request):
        ok = json.loads(request.body)["auth"] == b.NEW_ACCESS
        return (200, {}, json.dumps(b.answer(b.DEAL))) if ok else (401, {}, json.dumps(b.EXPIRED))

    mocked.add_callback(responses.POST, f"{b.PORTAL}/rest/crm.deal.get", callback=deal)
    mocked.get(b.TOKEN_URL, json=b.token_pair())
    assert make_b24(b.oauth_settings()).call("crm.deal.get", {"id": 7405})["ID"] == "7405"
    token_calls = [c for c in mocked.calls if c.request.url.startswith(b.TOKEN_URL)]
    assert len(token_calls) == 1
    asked = parse_qs(urlsplit(token_calls[0].request.url).query)
    assert asked["grant_type"] == ["refresh_token"] and asked["refresh_token"] == [b.OLD_REFRESH]
    stored = {k.decode(): v.decode() for k, v in r.hgetall(keys.key(ACCOUNT, "bitrix24", "oauth")).items()}
    assert stored["refresh_token"] == b.NEW_REFRESH and stored["access_token"] == b.NEW_ACCESS


def test_two_clients_with_an_expired_token_refresh_once(r, redis_url, mocked, make_b24):
    r.hset(keys.key(ACCOUNT, "bitrix24", "oauth"), mapping={"access_token": b.OLD_ACCESS, "refresh_token": b.OLD_REFRESH,
                                                            "expires_at": 4_000_000_000})
    refreshes, refused = [], []
    gate = threading.Event()

    def token(request):
        refreshes.append(request.url)
        gate.wait(2)  # hold the refresh so the other client piles up behind the lock
        return 200, {}, json.dumps(b.token_pair())

    def deal(request):
        ok = json.loads(request.body)["auth"] == b.NEW_ACCESS
        if not ok:
            refused.append(1)
            if len(refused) == 2:
                gate.set()  # both clients hold the expired token: only now may the refresh finish
        return (200, {}, json.dumps(b.answer(b.DEAL))) if ok else (401, {}, json.dumps(b.EXPIRED))

    mocked.add_callback(responses.POST, f"{b.PORTAL}/rest/crm.deal.get", callback=deal)
    mocked.add_callback(responses.GET, b.TOKEN_URL, callback=token)
    results, failures = in_two_clients(redis_url, b.oauth_settings(),
                                       lambda client: client.call("crm.deal.get", {"id": 7405})["ID"])
    assert not failures and results == ["7405", "7405"]
    assert len(refused) == 2 and len(refreshes) == 1


def test_a_refused_refresh_marks_the_pair_broken_and_says_what_to_do(r, mocked, make_b24, caplog):
    r.hset(keys.key(ACCOUNT, "bitrix24", "oauth"), mapping={"access_token": b.OLD_ACCESS, "refresh_token": b.OLD_REFRESH,
                                                            "expires_at": 4_000_000_000})
    mocked.post(f"{b.PORTAL}/rest/crm.deal.get", status=401, json=b.EXPIRED)
    mocked.get(b.TOKEN_URL, status=400, json=b.INVALID_GRANT)
    client = make_b24(b.oauth_settings(refresh_token=None))
    with pytest.raises(AuthError) as caught:
        client.call("crm.deal.get", {"id": 1})
    assert "invalid_grant" in str(caught.value) and "install the Bitrix24 application again" in str(caught.value)
    with pytest.raises(AuthError):
        client.call("crm.deal.get", {"id": 1})             # no second refresh in a loop
    assert len([c for c in mocked.calls if c.request.url.startswith(b.TOKEN_URL)]) == 1
    for text in (str(caught.value), caplog.text):
        assert b.OLD_REFRESH not in text and b.CLIENT_SECRET not in text and b.OLD_ACCESS not in text


# ---------------------------------------------------------------- create once


class TodoPortal:
    """crm.activity.todo.add, crm.timeline.comment.add and crm.deal.update through batch, and
    the lists that find them, with memory. `lose` batches are carried out and then answered
    with a failure (a lost reply)."""

    def __init__(self, mocked, *, lose=0, failure=(500, {}, json.dumps(b.INTERNAL))):
        self.todos: list[dict] = []
        self.comments: list[dict] = []
        self.updates: list[dict] = []
        self.adds = 0
        self.lose = lose
        self.failure = failure
        mocked.add_callback(responses.POST, url("batch"), callback=self.batch)

    def batch(self, request):
        cmds = json.loads(request.body)["cmd"]
        results, totals = {}, {}
        for name, text in cmds.items():
            method, _, query = text.partition("?")
            params = dict(parse_qsl(query))
            if method == "crm.activity.todo.add":
                self.adds += 1
                todo = {**b.TODO, "ID": str(1000 + len(self.todos)), "OWNER_ID": params["ownerId"],
                        "SUBJECT": params["title"], "DEADLINE": params["deadline"],
                        "RESPONSIBLE_ID": params.get("responsibleId", "1")}
                self.todos.append(todo)
                results[name] = {"id": int(todo["ID"])}
            elif method == "crm.activity.list":
                rows = [t for t in self.todos if t["OWNER_ID"] == params["filter[OWNER_ID]"]]
                results[name], totals[name] = rows, len(rows)
            elif method == "crm.timeline.comment.add":
                self.adds += 1
                self.comments.append({"ID": str(5000 + len(self.comments)), "ENTITY_TYPE": params["fields[ENTITY_TYPE]"],
                                      "ENTITY_ID": params["fields[ENTITY_ID]"], "COMMENT": params["fields[COMMENT]"],
                                      "CREATED": "2026-11-24T10:00:00+03:00"})
                results[name] = int(self.comments[-1]["ID"])
            elif method == "crm.timeline.comment.list":
                rows = [c for c in self.comments if c["ENTITY_ID"] == params["filter[ENTITY_ID]"]]
                results[name], totals[name] = rows, len(rows)
            elif method == "crm.deal.update":
                self.updates.append(params)
                results[name] = True
        if self.lose and any(t.startswith("crm.activity.todo.add") for t in cmds.values()):
            self.lose -= 1
            if isinstance(self.failure, Exception):
                raise self.failure
            return self.failure
        return 200, {}, json.dumps(b.batch_answer(results, totals=totals))


TODO_PARAMS = {"ownerTypeId": 2, "ownerId": 7405, "deadline": "2026-11-24T12:00:00+03:00", "title": "Продать",
               "responsibleId": 2}


@pytest.mark.parametrize("failure", [(500, {}, json.dumps(b.INTERNAL)), requests.ReadTimeout("read timed out")],
                         ids=["500", "read timeout"])
def test_after_an_ambiguous_failure_the_todo_is_looked_up_not_sent_again(mocked, make_b24, failure):
    server = TodoPortal(mocked, lose=1, failure=failure)
    client = make_b24()
    assert client.add("todos", [("next:deal:7405:UC_CAME", TODO_PARAMS)]) == [1000]
    assert server.adds == 1 and len(server.todos) == 1
    calls = len(mocked.calls)
    assert client.add("todos", [("next:deal:7405:UC_CAME", TODO_PARAMS)]) == [1000]   # remembered: no request at all
    assert len(mocked.calls) == calls


NOTE_PARAMS = {"fields": {"ENTITY_TYPE": "deal", "ENTITY_ID": 7405, "COMMENT": "Reglament: поставлена задача"}}
UPDATE = ("crm.deal.update", {"id": 7405, "fields": {"UF_CRM_TRIAL_AT": "2026-11-25"}})


def test_a_write_sends_updates_a_to_do_and_its_note_in_one_batch_updates_first(mocked, make_b24):
    server = TodoPortal(mocked)
    ids, results = make_b24().write({"u7405": UPDATE}, [("todos", "next:7405", TODO_PARAMS),
                                                        ("comments", "note:7405", NOTE_PARAMS)])
    assert ids == {"next:7405": 1000, "note:7405": 5000} and results == {"u7405": True}
    [call] = mocked.calls
    assert [m for m, _ in batch_cmds(call).values()] == ["crm.deal.update", "crm.activity.todo.add",
                                                         "crm.timeline.comment.add"]
    assert len(server.updates) == 1


@pytest.mark.parametrize("failure", [(500, {}, json.dumps(b.INTERNAL)), requests.ReadTimeout("read timed out")],
                         ids=["500", "read timeout"])
def test_after_an_unclear_write_both_kinds_are_looked_up_and_the_update_sent_again(mocked, make_b24, failure):
    server = TodoPortal(mocked, lose=1, failure=failure)
    client = make_b24()
    creates = [("todos", "next:7405", TODO_PARAMS), ("comments", "note:7405", NOTE_PARAMS)]
    assert client.write({"u7405": UPDATE}, creates) == ({"next:7405": 1000, "note:7405": 5000}, {"u7405": True})
    assert server.adds == 2 and len(server.todos) == 1 and len(server.comments) == 1   # nothing made twice
    assert len(server.updates) == 2                  # the update, safe to repeat, went again on its own
    calls = len(mocked.calls)
    assert client.write({}, creates) == ({"next:7405": 1000, "note:7405": 5000}, {})  # remembered: no request
    assert len(mocked.calls) == calls


def test_a_pending_key_from_a_crashed_process_is_looked_up_first(r, mocked, make_b24):
    server = TodoPortal(mocked)
    server.todos.append({**b.TODO, "ID": "777", "OWNER_ID": "7405"})           # made by the crashed attempt
    r.set(keys.key(ACCOUNT, "bitrix24", "created", "todos", "next:deal:7405:UC_CAME"), "pending:1790000000.000")
    assert make_b24().add("todos", [("next:deal:7405:UC_CAME", {**TODO_PARAMS, "deadline": "2026-11-24T09:00:00+00:00"})]) \
        == [777]                                                               # the same moment in another offset
    assert server.adds == 0


def test_a_clearly_refused_create_is_forgotten_and_a_partial_batch_records_its_successes(r, mocked, make_b24):
    def batch(request):
        cmds = json.loads(request.body)["cmd"]
        names = list(cmds)
        return 200, {}, json.dumps(b.batch_answer({names[0]: {"id": 5}}, errors={
            n: {"error": "OWNER_NOT_FOUND", "error_description": "Owner not found"} for n in names[1:]}))

    mocked.add_callback(responses.POST, url("batch"), callback=batch)
    with pytest.raises(PartlyCreated) as caught:
        make_b24().add("todos", [("a", TODO_PARAMS), ("b", {**TODO_PARAMS, "ownerId": 1})])
    assert caught.value.created == {"a": 5} and isinstance(caught.value.errors["b"], NotFound)
    log = lambda k: r.get(keys.key(ACCOUNT, "bitrix24", "created", "todos", k))  # noqa: E731
    assert log("a") == b"5" and log("b") is None


def test_a_kind_without_a_look_up_is_never_resent_after_an_ambiguous_failure(mocked, make_b24):
    TodoPortal(mocked, lose=1)
    client = make_b24()
    with pytest.raises(AmbiguousWriteError):
        client.create("todos", "crm.activity.todo.add", [("k", TODO_PARAMS)], find=None)
    with pytest.raises(AmbiguousWriteError):
        client.create("todos", "crm.activity.todo.add", [("k", TODO_PARAMS)], find=None)
    assert len(mocked.calls) == 1


def test_a_create_batch_is_keyed_by_the_action_keys_hash(mocked, make_b24):
    TodoPortal(mocked)
    ids = make_b24().add("todos", [(f"next:deal:{i}", {**TODO_PARAMS, "ownerId": i}) for i in range(60)])
    assert len(set(ids)) == 60
    names = [n for c in mocked.calls for n in sent(c)["cmd"]]
    assert names[:2] == [command_key("next:deal:0"), command_key("next:deal:1")]
    assert [len(sent(c)["cmd"]) for c in mocked.calls] == [50, 10]


def test_an_error_answer_with_200_is_still_an_error(mocked, make_b24):
    mocked.post(url("crm.deal.update"), json={"error": "", "error_description": "ID is not defined or invalid."})
    with pytest.raises(ApiError) as caught:
        make_b24().call("crm.deal.update", {"id": 0, "fields": {}})
    assert "ID is not defined or invalid." in str(caught.value)


def test_the_log_filter_scrubs_webhook_codes_and_query_credentials_it_was_never_told():
    from reglament.logs import Redactor

    line = ('"POST /rest/1/unknown-code-77/crm.deal.get HTTP/1.1" 401; '
            'GET /oauth/token/?grant_type=refresh_token&client_id=app.1&client_secret=s3cr3t-x&refresh_token=r0tated-1')
    scrubbed = Redactor([]).scrub(line)
    assert "unknown-code-77" not in scrubbed and "s3cr3t-x" not in scrubbed and "r0tated-1" not in scrubbed
    assert "/rest/1/***/crm.deal.get" in scrubbed and "grant_type=refresh_token" in scrubbed
