"""The Bitrix24 catch-up (jobs/catchup.py): what no event brought is found on the next pass,
through the same comparison, and nothing is found twice."""

from __future__ import annotations

import pytest

from jobs import catchup, context
from jobs.scheduler import PERIODIC
from reglament.config import Settings
from tests.connectors.bitrix24.conftest import SANDBOX_CREDS  # noqa: F401 — the portal fixture's credentials
from tests.sandbox_bitrix24.conftest import app, result


@pytest.fixture
def handled(portal, r, monkeypatch):
    settings = Settings.model_validate({"public_url": "http://127.0.0.1:8000", "accounts": [{
        "id": "acme", "crm": "bitrix24", "webhook_secret": "w" * 30,
        "bitrix24": {"webhook_url": portal.webhook_url, "rate_limit": 1000, "catchup_seconds": 30}}]})
    context.set_settings(settings, r)
    seen: list = []
    monkeypatch.setattr("jobs.events.handle_event", lambda data: seen.append((data["kind"], data["entity_id"])))
    yield seen
    PERIODIC[:] = [e for e in PERIODIC if e[0] is not catchup.catchup_job]


def test_changes_no_event_brought_are_found_once(portal, handled):
    assert (catchup.catchup_job, 30, {"account": "acme"}) in PERIODIC
    catchup.catchup_job("acme")          # the first pass sees the portal as it is: baselines
    handled.clear()
    result(portal, "crm.deal.update", {"id": 102, "fields": {"STAGE_ID": "UC_CALLBACK"}})
    token = portal.auth.issue()["access_token"]
    call = app(portal, token, "telephony.externalcall.register",
               {"USER_ID": 2, "PHONE_NUMBER": "+7 916 123-45-03", "TYPE": 2}).json()["result"]
    app(portal, token, "telephony.externalcall.finish", {"CALL_ID": call["CALL_ID"], "USER_ID": 2,
                                                         "STATUS_CODE": "304"})
    new = result(portal, "crm.deal.add", {"fields": {"TITLE": "Новый клиент", "STAGE_ID": "NEW"}})
    result(portal, "crm.activity.update", {"id": 1002, "fields": {"COMPLETED": "Y"}})   # deal 103's to-do
    assert catchup.catchup_job("acme")["events"] == 4
    assert sorted(handled, key=str) == sorted([("lead.status_changed", 102), ("call.ended", call["CALL_ID"]),
                                               ("lead.added", int(new)), ("task.updated", 1002)], key=str)
    handled.clear()
    catchup.catchup_job("acme")
    assert handled == []


def test_what_events_brought_and_our_own_writes_cost_the_catch_up_no_read(portal, handled):
    from datetime import datetime, timedelta, timezone

    from reglament.crm import CreateTask, SetLeadField
    from reglament.events import Event
    from tests.connectors.bitrix24.test_client_sandbox import calls, forget_calls

    catchup.catchup_job("acme")
    crm = context.crm_for("acme")
    result(portal, "crm.deal.update", {"id": 102, "fields": {"STAGE_ID": "UC_CALLBACK"}})   # its event is read
    assert [e.kind for e in crm.expand(Event("acme", "bitrix24", "crm.changed", 102, {
        "entity": "deal", "id": 102, "event": "ONCRMDEALUPDATE"}))] == ["lead.status_changed"]
    due = (datetime.now(timezone.utc) + timedelta(hours=3)).replace(microsecond=0)
    crm.apply([CreateTask(lead_id=103, text="Продать", task_type=None, due=due, responsible_id=2, action_key="C:t"),
               SetLeadField(lead_id=104, field="trial_at", value=due, action_key="C:f")])
    handled.clear()
    forget_calls(portal)
    assert catchup.catchup_job("acme")["events"] == 0 and handled == []
    batches = [c.get("commands") for c in calls(portal)]
    assert len(batches) == 1 and "crm.deal.get" not in batches[0]      # the lists only: no deal was read


def test_each_missed_deal_is_acted_on_as_soon_as_it_is_read(portal, handled, monkeypatch):
    catchup.catchup_job("acme")
    for deal in (102, 105):
        result(portal, "crm.deal.update", {"id": deal, "fields": {"STAGE_ID": "UC_DECIDING"}})
    crm, order = context.crm_for("acme"), []
    read = crm.changes
    monkeypatch.setattr(crm, "changes", lambda lead_id, **kw: order.append(("read", lead_id)) or read(lead_id, **kw))
    monkeypatch.setattr("jobs.events.handle_event", lambda data: order.append((data["kind"], data["entity_id"])))
    assert catchup.catchup_job("acme")["events"] == 2
    assert order == [("read", 102), ("lead.status_changed", 102), ("read", 105), ("lead.status_changed", 105)]
