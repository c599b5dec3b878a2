"""The CRM actions beyond the task rules' own: complete a task, move its deadline, set the
responsible user, create a lead with its contact — against the sandbox, applied once."""

from datetime import datetime, timedelta, timezone

import requests

from connectors.amocrm.crm import AmoCRM
from reglament.crm import CompleteTask, CreateLead, SetResponsible, SetTaskDue


def test_actions_apply_once(amo, engine, r):
    crm = AmoCRM.for_account(engine.accounts[0], r)
    amo = amo.server
    h = amo.headers
    lead_id = 24100001
    task_id = requests.post(f"{amo.url}/api/v4/tasks", headers=h, json=[{
        "text": "Перезвонить", "complete_till": 1900000000, "entity_type": "leads", "entity_id": lead_id}]
    ).json()["_embedded"]["tasks"][0]["id"]
    due = datetime(2030, 1, 2, 10, 0, tzinfo=timezone.utc)
    actions = [
        SetTaskDue(task_id=task_id, lead_id=lead_id, due=due, action_key="NO_POSTPONE:1:due"),
        CompleteTask(task_id=task_id, lead_id=lead_id, result="Поговорили", action_key="MISSED_CALL:1:done"),
        SetResponsible(lead_id=lead_id, user_id=9100003, action_key="DISTRIBUTION:1"),
        CreateLead(name="Входящий звонок +79990001100", phone="+79990001100", responsible_id=9100002,
                   action_key="MISSED_CALL:new:79990001100"),
    ]
    created = crm.apply(actions)
    again = crm.apply(actions[3:])  # the client remembers the creation by its key
    assert created["MISSED_CALL:new:79990001100"] == again["MISSED_CALL:new:79990001100"]

    task = requests.get(f"{amo.url}/api/v4/tasks/{task_id}", headers=h).json()
    assert task["is_completed"] is True and task["result"]["text"] == "Поговорили"
    assert task["complete_till"] == int(due.timestamp())
    assert requests.get(f"{amo.url}/api/v4/leads/{lead_id}", headers=h).json()["responsible_user_id"] == 9100003
    new_lead = requests.get(f"{amo.url}/api/v4/leads/{created['MISSED_CALL:new:79990001100']}",
                            params={"with": "contacts"}, headers=h).json()
    assert new_lead["responsible_user_id"] == 9100002 and new_lead["pipeline_id"] == 7700001
    contact_id = new_lead["_embedded"]["contacts"][0]["id"]
    contact = requests.get(f"{amo.url}/api/v4/contacts/{contact_id}", headers=h).json()
    phones = [v["value"] for f in contact["custom_fields_values"] for v in f["values"]]
    assert any(p.endswith("9990001100") for p in phones)
    leads_named = requests.get(f"{amo.url}/api/v4/leads", params={"query": "Входящий звонок"}, headers=h).json()
    assert len(leads_named["_embedded"]["leads"]) == 1
