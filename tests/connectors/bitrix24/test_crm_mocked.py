"""The Bitrix24 connector against `responses` mocks shaped as the reference's samples: a call
record from voximplant.statistic.get (§2.4, §4.8) becomes one call.ended, and a deal the portal
answers "Not found" for inside a batch (§3.6) is a gone lead; touches and deadline_before send
the documented requests (crm.deal.contact.items.get, tasks.task.history.list, `$result[...]`
references, batch.md) and read the documented answers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest

from connectors.bitrix24.crm import Bitrix24CRM
from reglament.crm import CallStatus
from reglament.config import Settings
from reglament.events import Event
from tests.connectors.bitrix24 import bodies as b

# reference §2.4 (the event's data) with §4.8's record fields; a missed incoming call on a contact
CALL = {"CALL_ID": "externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327", "CALL_TYPE": "2",
        "PHONE_NUMBER": "+499061234567", "PORTAL_NUMBER": "REST_APP:", "PORTAL_USER_ID": "1269",
        "CALL_DURATION": "0", "CALL_START_DATE": "2026-03-11T17:28:46+03:00", "COST": "0", "COST_CURRENCY": "",
        "CALL_FAILED_CODE": "304", "CALL_FAILED_REASON": "Call canceled", "CRM_ACTIVITY_ID": "7953",
        "CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": "797"}


def connector(r) -> Bitrix24CRM:
    account = Settings.model_validate({"public_url": "http://127.0.0.1:8000", "accounts": [{
        "id": "acme", "crm": "bitrix24", "webhook_secret": "w" * 30,
        "bitrix24": {"webhook_url": b.WEBHOOK, "rate_limit": 1000}}]}).accounts[0]
    return Bitrix24CRM.for_account(account, r, max_attempts=2, backoff_base=0.001)


def test_a_call_end_is_read_from_the_statistics_once(mocked, r):
    mocked.post(b.WEBHOOK + "voximplant.statistic.get", json=b.answer([CALL], total=1))
    deals = mocked.post(b.WEBHOOK + "crm.deal.list", json=b.answer([{"ID": "7405"}], total=1))
    event = Event("acme", "bitrix24", "crm.changed", CALL["CALL_ID"], {"entity": "call", "id": CALL["CALL_ID"],
                                                                        "event": "OnVoximplantCallEnd", "at": 1773239624})
    (ended,) = connector(r).expand(event)
    assert (ended.kind, ended.entity_id) == ("call.ended", CALL["CALL_ID"])
    assert ended.fields == {"call_id": CALL["CALL_ID"], "direction": "in", "outcome": "not_reached", "duration": 0,
                            "phone": "499061234567", "lead_id": 7405, "user_id": 1269, "at": 1773239326,
                            "ref": CALL["CALL_ID"]}
    asked = json.loads(deals.calls[0].request.body)
    assert asked["filter"] == {"CONTACT_ID": 797, "CLOSED": "N"}      # the contact's newest open deal
    assert connector(r).expand(event) == []                           # the same call again: nothing new


def test_a_deal_not_found_inside_the_batch_is_gone(mocked, r):
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer({"acts": []}, errors={"lead": b.NOT_FOUND}))
    assert connector(r).get_lead_snapshot(7405) is None


# --- touches: the deal's calls and its contact's (crm-activity-get.md, crm-deal-contact-items-get.md)

# crm-activity-get.md's call activity (abridged), on contact 55: a call of 95 s
CLIENT_CALL = {"ID": "999", "OWNER_ID": "55", "OWNER_TYPE_ID": "3", "TYPE_ID": "2", "PROVIDER_ID": "VOXIMPLANT_CALL",
               "PROVIDER_TYPE_ID": "CALL", "ASSOCIATED_ENTITY_ID": "0", "SUBJECT": "Outgoing call Andrew Johnson",
               "CREATED": "2026-11-23T13:26:55+03:00", "START_TIME": "2026-11-23T13:25:00+03:00",
               "END_TIME": "2026-11-23T13:26:35+03:00", "DEADLINE": "2026-11-23T13:25:00+03:00", "COMPLETED": "Y",
               "STATUS": "2", "RESPONSIBLE_ID": "505", "DIRECTION": "2", "ORIGIN_ID": None, "AUTHOR_ID": "505"}
# crm-deal-contact-items-get.md's answer
CONTACTS = [{"CONTACT_ID": 55, "SORT": 100, "ROLE_ID": 0, "IS_PRIMARY": "Y"},
            {"CONTACT_ID": 54, "SORT": 200, "ROLE_ID": 0, "IS_PRIMARY": "N"},
            {"CONTACT_ID": 56, "SORT": 400, "ROLE_ID": 0, "IS_PRIMARY": "N"}]
SINCE = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def sent_commands(call) -> dict[str, tuple[str, dict]]:
    return {name: (text.partition("?")[0], dict(parse_qsl(text.partition("?")[2])))
            for name, text in json.loads(call.request.body)["cmd"].items()}


def test_touches_read_the_deal_and_its_first_contact_in_one_batch(mocked, r):
    other = {**CLIENT_CALL, "ID": "1001", "OWNER_ID": "77"}   # not this deal's contact: never counted
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer(
        {"comments": [], "calls": [CLIENT_CALL], "contacts": CONTACTS[:1], "client_calls": [CLIENT_CALL, other]},
        totals={"comments": 0, "calls": 1}))
    (touch,) = connector(r).touches(7405, SINCE)     # bound to the deal and to its contact: one call
    assert (touch.kind, touch.by, touch.call.status, touch.call.duration) == ("call", 505, CallStatus.TALKED, 95)
    assert len(mocked.calls) == 1
    cmds = sent_commands(mocked.calls[0])
    assert cmds["contacts"] == ("crm.deal.contact.items.get", {"id": "7405"})
    assert cmds["calls"][0] == "crm.activity.list" and {k: v for k, v in cmds["calls"][1].items()
                                                        if k.startswith("filter")} == {
        "filter[OWNER_TYPE_ID]": "2", "filter[OWNER_ID]": "7405", "filter[PROVIDER_ID]": "VOXIMPLANT_CALL"}
    method, params = cmds["client_calls"]
    assert method == "crm.activity.list" and params["start"] == "-1"
    assert params["filter[OWNER_TYPE_ID]"] == "3" and params["filter[OWNER_ID]"] == "$result[contacts][0][CONTACT_ID]"
    assert datetime.fromisoformat(params["filter[>=START_TIME]"]) == SINCE


def test_touches_of_a_deal_without_a_contact_ignore_whatever_the_empty_reference_found(mocked, r):
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer(
        {"comments": [], "calls": [], "contacts": [], "client_calls": [{**CLIENT_CALL, "OWNER_ID": "77"}]}))
    assert connector(r).touches(7405, SINCE) == [] and len(mocked.calls) == 1


def test_touches_of_a_deal_with_more_contacts_read_their_calls_once_more(mocked, r):
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer(
        {"comments": [], "calls": [], "contacts": CONTACTS, "client_calls": [CLIENT_CALL]}))
    second = {**CLIENT_CALL, "ID": "1002", "OWNER_ID": "56", "START_TIME": "2026-11-23T14:00:00+03:00",
              "END_TIME": "2026-11-23T14:00:00+03:00"}
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer({"list": [CLIENT_CALL, second]}, totals={"list": 2}))
    touches = connector(r).touches(7405, SINCE)
    assert sorted((t.call.duration, t.call.status) for t in touches) == [(0, CallStatus.NOT_REACHED),
                                                                         (95, CallStatus.TALKED)]
    (method, params), = sent_commands(mocked.calls[1]).values()
    assert method == "crm.activity.list" and params["filter[OWNER_TYPE_ID]"] == "3"
    assert [params[f"filter[OWNER_ID][{i}]"] for i in range(3)] == ["55", "54", "56"]


# --- deadline_before: a task's history (tasks-task-history-list.md)

TASK_ACTIVITY = {**b.TODO, "ID": "1203", "TYPE_ID": "3", "PROVIDER_ID": "TASKS_TASK", "ASSOCIATED_ENTITY_ID": "8137"}
USER = {"id": 503, "name": "Maria", "lastName": "Johnson", "secondName": "", "login": "maria@mysite.com"}
EARLIER, MOVED, LATER = (datetime(2026, 11, 24, h, 0, tzinfo=timezone.utc) for h in (9, 12, 15))


def history(*moves, shape=lambda m: str(int(m.timestamp()))) -> dict:
    return {"list": [{"id": 16400 + i, "createdDate": f"2026-11-23T1{i}:00:00+02:00", "field": "DEADLINE",
                      "value": {"from": shape(a) if a else None, "to": shape(z)}, "user": USER}
                     for i, (a, z) in enumerate(moves)]}


@pytest.mark.parametrize("shape", [lambda m: str(int(m.timestamp())), lambda m: m.isoformat(),
                                   lambda m: m.astimezone(ZoneInfo("Europe/Moscow")).strftime("%d.%m.%Y %H:%M:%S")],
                         ids=["unix", "iso", "site format"])
def test_deadline_before_reads_the_task_history_in_one_batch(mocked, r, shape):
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer(
        {"act": TASK_ACTIVITY, "history": history((None, EARLIER), (EARLIER, MOVED), (MOVED, LATER), shape=shape)}))
    assert connector(r).deadline_before(1203, LATER) == MOVED
    cmds = sent_commands(mocked.calls[0])
    assert cmds == {"act": ("crm.activity.get", {"id": "1203"}),
                    "history": ("tasks.task.history.list", {"taskId": "$result[act][ASSOCIATED_ENTITY_ID]",
                                                            "filter[FIELD]": "DEADLINE"})}


def test_deadline_before_is_none_for_a_to_do_or_a_move_not_in_the_history(mocked, r):
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer(
        {"act": b.TODO}, errors={"history": {"error": "0", "error_description": "wrong task id (internal error)"}}))
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer({"act": TASK_ACTIVITY, "history": history((None, EARLIER))}))
    mocked.post(b.WEBHOOK + "batch", json=b.batch_answer({"act": TASK_ACTIVITY, "history": {"list": []}}))
    crm = connector(r)
    assert crm.deadline_before(999, LATER) is None      # a to-do keeps no history
    assert crm.deadline_before(1203, LATER) is None     # never moved to LATER as far as the history says
    assert crm.deadline_before(1203, LATER) is None
