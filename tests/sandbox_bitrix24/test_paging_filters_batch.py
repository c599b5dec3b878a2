"""List paging at 50 with start/next, filter prefixes, and batch (keyed results, halt, the 50 limit, references)."""

from __future__ import annotations

import requests

from .conftest import hook, result


def test_lists_page_at_fifty_with_start_and_next(b24):
    requests.post(b24.url + "/_sandbox/generate", params={"n": 113}, timeout=10)   # 7 seeded + 113 = 120 deals
    first = hook(b24, "crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}}).json()
    assert (len(first["result"]), first["total"], first["next"]) == (50, 120, 50)
    second = hook(b24, "crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}, "start": first["next"]}).json()
    assert second["next"] == 100 and second["result"][0]["ID"] == str(int(first["result"][-1]["ID"]) + 1)
    last = hook(b24, "crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}, "start": 100}).json()
    assert len(last["result"]) == 20 and "next" not in last and last["total"] == 120
    fast = hook(b24, "crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}, "start": -1,
                                       "filter": {">ID": 150}}).json()
    assert "total" not in fast and "next" not in fast and fast["result"][0]["ID"] == "151"


def ids(b24, flt: dict, **extra) -> list[int]:
    return [int(d["ID"]) for d in result(b24, "crm.deal.list", {"filter": flt, "select": ["ID"], **extra})]


def test_filter_prefixes(b24, clock):
    assert ids(b24, {">ID": 105}) == [106, 107]
    assert ids(b24, {">=ID": 106, "<ID": 107}) == [106]
    assert ids(b24, {"<=ID": 102}) == [101, 102]
    assert ids(b24, {"!STAGE_ID": "NEW", "<ID": 104}) == [102, 103]
    assert ids(b24, {"!=STAGE_ID": "NEW", "<ID": 104}) == [102, 103]
    assert ids(b24, {"@ASSIGNED_BY_ID": [2, 4]}) == [101, 103, 104, 106, 107]
    assert ids(b24, {"ASSIGNED_BY_ID": [3]}) == [102, 105]       # a list without a prefix is "in"
    assert ids(b24, {"!@ASSIGNED_BY_ID": [2, 4]}) == [102, 105]
    assert ids(b24, {"%TITLE": "соколова"}) == [102]              # contains, any case
    assert ids(b24, {"=%TITLE": "%ова"}) == [102, 103, 107]   # LIKE with the wildcard given
    assert ids(b24, {"><ID": [102, 104]}) == [102, 103, 104]
    assert ids(b24, {"STAGE_SEMANTIC_ID": "P", "CLOSED": "N"}) == [101, 102, 103, 104, 105, 106, 107]
    assert ids(b24, {">OPPORTUNITY": 1000}) == [106]
    # dates: what changed after a moment (the catch-up sweep's question)
    since = result(b24, "crm.deal.get", {"id": 101})["DATE_MODIFY"]
    assert ids(b24, {">DATE_MODIFY": since}) == []
    clock.advance(60)
    hook(b24, "crm.deal.update", {"id": 104, "fields": {"STAGE_ID": "UC_CAME"}})
    assert ids(b24, {">DATE_MODIFY": since}) == [104]
    assert ids(b24, {">=MOVED_TIME": result(b24, "crm.deal.get", {"id": 104})["MOVED_TIME"]}) == [104]
    # ordering, several keys
    assert ids(b24, {"<ID": 104}, order={"ASSIGNED_BY_ID": "DESC", "ID": "ASC"}) == [103, 102, 101]


def test_filters_in_the_query_string(b24):
    r = requests.get(b24.webhook_url + "crm.deal.list", params={"filter[>ID]": "105", "select[]": "ID",
                                                                "order[ID]": "DESC"}, timeout=5)
    assert [d["ID"] for d in r.json()["result"]] == ["107", "106"]


def test_open_todos_of_a_deal_by_filter(b24):
    open_ = result(b24, "crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": 102, "COMPLETED": "N",
                                                         "PROVIDER_ID": "CRM_TODO"}, "select": ["ID", "SUBJECT"]})
    assert [a["SUBJECT"] for a in open_] == ["Дозвониться"]
    assert result(b24, "crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": 105, "COMPLETED": "N"}}) == []


def test_batch_answers_results_keyed_by_command(b24):
    r = hook(b24, "batch", {"halt": 0, "cmd": {
        "deal": "crm.deal.get?id=102",
        "acts": "crm.activity.list?filter[OWNER_TYPE_ID]=2&filter[OWNER_ID]=102&filter[COMPLETED]=N",
        "page": "crm.deal.list?select[]=ID&order[ID]=ASC"}})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"result", "time"}
    inner = body["result"]
    assert set(inner) == {"result", "result_error", "result_total", "result_next", "result_time"}
    assert inner["result"]["deal"]["TITLE"] == "Мария Соколова"
    assert [a["SUBJECT"] for a in inner["result"]["acts"]] == ["Дозвониться"]
    assert inner["result_error"] == []                       # PHP's empty array
    assert inner["result_total"] == {"acts": 1, "page": 7}   # only list commands
    assert inner["result_next"] == []                        # no command has another page
    assert set(inner["result_time"]) == {"deal", "acts", "page"}


def test_batch_errors_and_halt(b24):
    cmd = {"a": "crm.deal.get?id=101", "b": "crm.deal.get?id=999999", "c": "no.such.method", "d": "crm.deal.get?id=103"}
    go_on = result(b24, "batch", {"halt": 0, "cmd": cmd})
    assert set(go_on["result"]) == {"a", "d"}
    assert go_on["result_error"] == {"b": {"error": "", "error_description": "Not found"},
                                     "c": {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}}
    halted = result(b24, "batch", {"halt": 1, "cmd": cmd})
    assert set(halted["result"]) == {"a"} and set(halted["result_error"]) == {"b"}
    nested = result(b24, "batch", {"cmd": {"x": "batch?cmd[y]=user.current"}})
    assert nested["result_error"]["x"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


def test_batch_of_more_than_fifty_is_refused_and_fifty_pass(b24):
    too_many = hook(b24, "batch", {"cmd": {f"u{i}": "user.current" for i in range(51)}})
    assert too_many.status_code == 400
    assert too_many.json() == {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"}
    fifty = result(b24, "batch", {"cmd": {f"u{i}": "user.current" for i in range(50)}})
    assert len(fifty["result"]) == 50


def test_batch_references_earlier_results_and_list_commands_answer_lists(b24):
    r = result(b24, "batch", {"halt": 1, "cmd": {
        "add": "crm.deal.add?fields[TITLE]=Связанный&fields[ASSIGNED_BY_ID]=4",
        "get": "crm.deal.get?id=$result[add]",
        "todo": "crm.activity.todo.add?ownerTypeId=2&ownerId=$result[add]&deadline=2030-01-01T10:00:00&title=Позвонить",
        "first": "crm.deal.list?filter[ASSIGNED_BY_ID]=$result[get][ASSIGNED_BY_ID]&select[]=ID"}})
    assert r["result_error"] == []
    assert r["result"]["get"]["TITLE"] == "Связанный" and r["result"]["todo"]["id"] > 0
    assert str(r["result"]["add"]) in [d["ID"] for d in r["result"]["first"]]
    listed = requests.post(b24.webhook_url + "batch", data={"cmd[0]": "user.current", "cmd[1]": "crm.deal.get?id=101"},
                           timeout=5).json()["result"]
    assert isinstance(listed["result"], list) and listed["result"][1]["ID"] == "101"
