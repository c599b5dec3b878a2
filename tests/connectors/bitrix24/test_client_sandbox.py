"""The Bitrix24 client against the local Bitrix24 sandbox (sandbox/bitrix24): real HTTP, the
portal's own paging, batch, bucket, OAuth server and errors. Calls are counted with
GET /_sandbox/requests. Demo ids (sandbox/bitrix24/README.md): deals 101–107, deal 105 in
«Пришел на пробное» without a to-do, to-dos 1001–1003 on deals 102–104, user 2 a manager."""

from __future__ import annotations

import logging

import pytest
import requests

from connectors.bitrix24 import NotFound, OperationTimeLimit
from reglament.config import Bitrix24OAuth, Bitrix24Settings
from reglament.logs import Redactor
from tests.connectors.bitrix24.conftest import ACCOUNT, SANDBOX_CREDS, in_two_clients

TODO = {"ownerTypeId": 2, "ownerId": 105, "deadline": "2026-12-01T12:00:00+03:00", "title": "Продать",
        "responsibleId": 2}


def settings(portal, **kw) -> Bitrix24Settings:
    return Bitrix24Settings(webhook_url=portal.webhook_url, rate_limit=1000, **kw)


def calls(portal) -> list[dict]:
    return requests.get(portal.url + "/_sandbox/requests", timeout=5).json()


def forget_calls(portal) -> None:
    requests.delete(portal.url + "/_sandbox/requests", timeout=5)


def open_todos(client, deal_id: int) -> list[dict]:
    return client.list("crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": deal_id,
                                                        "PROVIDER_ID": "CRM_TODO", "COMPLETED": "N"}})


def test_a_deal_and_its_open_activities_in_one_request(portal, make_b24):
    client = make_b24(settings(portal))
    forget_calls(portal)
    got = client.gather({"deal": ("crm.deal.get", {"id": 102}),
                         "acts": ("crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": 102,
                                                                   "COMPLETED": "N"}})})
    assert got["deal"]["ID"] == "102" and [a["ID"] for a in got["acts"]] == ["1001"]
    assert [c["method"] for c in calls(portal)] == ["batch"]


def test_a_list_of_170_deals_takes_two_requests(portal, make_b24):
    requests.post(portal.url + "/_sandbox/generate?n=163", timeout=60)
    client = make_b24(settings(portal))
    forget_calls(portal)
    rows = client.list("crm.deal.list", {"select": ["ID", "STAGE_ID"], "order": {"ID": "ASC"}})
    ids = [int(d["ID"]) for d in rows]
    assert len(ids) == 170 and ids == sorted(set(ids))
    log = calls(portal)
    assert [c["method"] for c in log] == ["batch", "batch"]
    assert len(log[1]["commands"]) == 3                      # starts 50, 100, 150 in one batch
    # page by page gives the same rows, one request a page
    forget_calls(portal)
    assert [int(d["ID"]) for p in client.pages("crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}})
            for d in p] == ids
    assert len(calls(portal)) == 4


def test_a_batch_over_50_is_split_and_keyed(portal, make_b24):
    client = make_b24(settings(portal))
    forget_calls(portal)
    wanted = {f"deal{i}": ("crm.deal.get", {"id": 101 + i % 7}) for i in range(60)}
    wanted["missing"] = ("crm.deal.get", {"id": 99999})
    answer = client.batch(wanted)
    assert [len(c["commands"]) for c in calls(portal)] == [50, 11]
    assert answer.results["deal3"]["ID"] == "104" and answer.results["deal59"]["ID"] == str(101 + 59 % 7)
    assert set(answer.errors) == {"missing"} and isinstance(answer.errors["missing"], NotFound)


def test_query_limit_is_retried_and_the_todo_written_once(portal, clock, make_b24, sleeps):
    requests.post(portal.url + "/_sandbox/bucket", json={"rate": 2, "burst": 3}, timeout=5)
    for _ in range(3):  # fill the portal's bucket; its clock stands still until the client waits
        requests.post(portal.webhook_url + "user.current", json={}, timeout=5)
    forget_calls(portal)

    def wait(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(1.0)  # the portal drains 2 a second while we back off

    client = make_b24(settings(portal), sleep=wait)
    [todo_id] = client.add("todos", [("next:deal:105:UC_CAME", TODO)])
    assert [c["status"] for c in calls(portal)] == [503, 200]
    assert [int(t["ID"]) for t in open_todos(client, 105)] == [todo_id]


class LosingSession(requests.Session):
    """Carries out the first write batch and then loses its answer (a read timeout)."""

    def __init__(self):
        super().__init__()
        self.lost = 0

    def request(self, method, url, **kwargs):
        resp = super().request(method, url, **kwargs)
        cmd = (kwargs.get("json") or {}).get("cmd") or {}
        if not self.lost and any(str(c).startswith("crm.activity.todo.add") for c in cmd.values()):
            self.lost += 1
            raise requests.ReadTimeout("read timed out")
        return resp


def test_after_a_lost_answer_the_todo_is_found_not_made_twice(portal, make_b24):
    session = LosingSession()
    client = make_b24(settings(portal), session=session)
    [todo_id] = client.add("todos", [("next:deal:105:UC_CAME", TODO)])
    assert session.lost == 1
    assert [int(t["ID"]) for t in open_todos(client, 105)] == [todo_id]
    forget_calls(portal)
    assert client.add("todos", [("next:deal:105:UC_CAME", TODO)]) == [todo_id]
    assert calls(portal) == []                               # remembered in Redis


def test_a_lost_comment_is_found_too(portal, make_b24):
    session = LosingSession()
    client = make_b24(settings(portal), session=session)
    comment = {"fields": {"ENTITY_TYPE": "deal", "ENTITY_ID": 105, "COMMENT": "Регламент: задача «Продать»"}}
    [first] = client.add("comments", [("note:deal:105:1", comment)])
    session.lost = 0  # lose the next write batch's answer again: the comment batch
    session.request = _losing_for(session, "crm.timeline.comment.add")
    [second] = client.add("comments", [("note:deal:105:2", {"fields": {**comment["fields"], "COMMENT": "второй"}})])
    texts = [c["COMMENT"] for c in client.list("crm.timeline.comment.list",
                                               {"filter": {"ENTITY_TYPE": "deal", "ENTITY_ID": 105}})]
    assert texts.count("второй") == 1 and texts.count(comment["fields"]["COMMENT"]) == 1 and first != second


def test_a_lost_task_is_found_too(portal, make_b24):
    session = requests.Session()
    session.request = _losing_for(session, "tasks.task.add")
    client = make_b24(settings(portal), session=session)
    task = {"fields": {"TITLE": "Продать", "RESPONSIBLE_ID": 2, "DEADLINE": "2026-12-01T12:00:00+03:00",
                       "UF_CRM_TASK": ["D_105"]}}
    [task_id] = client.add("tasks", [("next:deal:105:task", task)])
    found = client.list("tasks.task.list", {"filter": {"UF_CRM_TASK": "D_105"}, "select": ["ID", "TITLE"]})
    assert [int(t["id"]) for t in found] == [task_id]
    sent = [c["commands"] for c in calls(portal) if c["method"] == "batch"]
    assert sum("tasks.task.add" in cmds for cmds in sent) == 1 and any("tasks.task.list" in c for c in sent)


def _losing_for(session, method_name):
    real = requests.Session.request.__get__(session)
    state = {"lost": False}

    def request(method, url, **kwargs):
        resp = real(method, url, **kwargs)
        cmd = (kwargs.get("json") or {}).get("cmd") or {}
        if not state["lost"] and any(str(c).startswith(method_name) for c in cmd.values()):
            state["lost"] = True
            raise requests.ConnectionError("connection reset")
        return resp
    return request


def test_operation_time_limit_raises_a_deferrable_error(portal, make_b24):
    requests.post(portal.url + "/_sandbox/block", json={"method": "crm.deal.list", "seconds": 600}, timeout=5)
    client = make_b24(settings(portal))
    forget_calls(portal)
    with pytest.raises(OperationTimeLimit) as direct:
        client.call("crm.deal.list", {})
    with pytest.raises(OperationTimeLimit):
        client.list("crm.deal.list", {})                     # inside a batch: the command's error
    assert direct.value.retry_at > 0 and [c["status"] for c in calls(portal)] == [429, 200]
    assert client.call("crm.deal.get", {"id": 101})["ID"] == "101"   # other methods keep working


def oauth_settings(portal, refresh_token: str) -> Bitrix24Settings:
    return Bitrix24Settings(portal=portal.url, rate_limit=1000, oauth=Bitrix24OAuth(
        client_id=SANDBOX_CREDS.client_id, client_secret=SANDBOX_CREDS.client_secret, refresh_token=refresh_token,
        token_url=portal.url + "/oauth/token/"))


def redacted_logs(caplog, settings: Bitrix24Settings) -> None:
    """Log through the same redacting filter the service puts on its handler (reglament/logs.py)."""
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(Redactor(settings.secrets()))


def test_an_expired_token_is_refreshed_once_across_two_clients(r, portal, redis_url, make_b24, caplog):
    seed = portal.auth.issue()["refresh_token"]
    redacted_logs(caplog, oauth_settings(portal, seed))
    first = make_b24(oauth_settings(portal, seed))
    assert first.call("user.current")["ID"] == "1"           # spends the configured refresh token
    requests.post(portal.url + "/_sandbox/oauth/expire", timeout=5)
    results, failures = in_two_clients(redis_url, oauth_settings(portal, seed),
                                       lambda client: client.call("crm.deal.get", {"id": 101})["ID"])
    assert not failures and results == ["101", "101"]
    granted = requests.get(portal.url + "/_sandbox/oauth", timeout=5).json()["granted"]
    assert granted["refresh_token"] == 2                     # the seed, then exactly one refresh
    assert any(c["error"] == "expired_token" for c in calls(portal))
    pair = {k.decode(): v.decode() for k, v in r.hgetall(f"rg:{ACCOUNT}:bitrix24:oauth").items()}
    for secret in (seed, SANDBOX_CREDS.client_secret, pair["refresh_token"], pair["access_token"]):
        assert secret not in caplog.text
    assert "refresh_token=***" in caplog.text                # urllib3 logged the token URL, scrubbed


def test_no_secret_in_logs_or_errors(portal, make_b24, caplog):
    redacted_logs(caplog, settings(portal))
    client = make_b24(settings(portal))
    raised = []
    for method in ("crm.nosuch.method", "crm.deal.get", "telephony.externalcall.register"):
        try:
            client.call(method, {"id": 99999})
        except Exception as exc:  # noqa: BLE001 - every failure's text is checked
            raised.append(str(exc))
    wrong = make_b24(Bitrix24Settings(webhook_url=portal.webhook_url.replace(SANDBOX_CREDS.webhook_code, "wrong-code-123"),
                                      rate_limit=1000))
    try:
        wrong.call("crm.deal.get", {"id": 101})
    except Exception as exc:  # noqa: BLE001
        raised.append(str(exc))
    assert len(raised) == 4 and "webhook" in raised[-1]
    for text in raised + [caplog.text, repr(client), repr(client.auth)]:
        assert SANDBOX_CREDS.webhook_code not in text and "wrong-code-123" not in text


def test_the_portals_burst_is_used_without_overfilling_its_bucket(r, portal, make_b24):
    # The portal's clock stands still here, so its bucket never drains: 50 requests at most.
    requests.post(portal.url + "/_sandbox/bucket", json={"rate": 2, "burst": 50}, timeout=5)
    client = make_b24(Bitrix24Settings(webhook_url=portal.webhook_url, rate_limit=2, burst=50))
    forget_calls(portal)
    for i in range(48):
        client.call("crm.deal.get", {"id": 101 + i % 7})
    assert [c["status"] for c in calls(portal)] == [200] * 48
    sec, micro = r.time()
    ahead = (int(r.get(client.http.limiter.key)) - sec * 1_000_000 - micro) / 1e6
    assert ahead > 40 / 1.9                                  # 47 went at once: the budget stands a burst ahead
