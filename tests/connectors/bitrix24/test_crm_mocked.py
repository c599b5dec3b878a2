"""The Bitrix24 connector against `responses` mocks shaped as the reference's samples: a call
record from voximplant.statistic.get (§2.4, §4.8) becomes one call.ended, and a deal the portal
answers "Not found" for inside a batch (§3.6) is a gone lead."""

from __future__ import annotations

import json

from connectors.bitrix24.crm import Bitrix24CRM
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
