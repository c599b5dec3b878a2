"""Telephony (externalcall register/finish, the call-end event, statistics), to-dos and tasks bound to deals."""

from __future__ import annotations

from datetime import datetime

import requests

from .conftest import app, app_token, hook, result


def test_externalcall_needs_the_application(b24):
    r = hook(b24, "telephony.externalcall.register", {"USER_ID": 2, "PHONE_NUMBER": "79035551202", "TYPE": 2})
    assert r.status_code == 403 and r.json()["error"] == "WRONG_AUTH_TYPE"


def test_a_missed_incoming_call_is_logged_evented_and_listed(b24, receiver):
    requests.post(b24.url + "/_sandbox/webhooks/outgoing", timeout=5,
                  json={"handler": receiver.url + "/calls", "events": ["ONVOXIMPLANTCALLEND"]})
    token = app_token(b24)
    registered = app(b24, token, "telephony.externalCall.register",
                     {"USER_ID": 3, "PHONE_NUMBER": "+7 (903) 555-12-02", "TYPE": 2, "SHOW": 0}).json()["result"]
    assert registered["CALL_ID"].startswith("externalCall.") and registered["CRM_ENTITY_TYPE"] == "CONTACT"
    assert registered["CRM_CREATED_LEAD"] is None and registered["CRM_CREATED_ENTITIES"] == []
    finished = app(b24, token, "telephony.externalcall.finish",
                   {"CALL_ID": registered["CALL_ID"], "USER_ID": 3, "DURATION": 0, "STATUS_CODE": "304"}).json()
    record = finished["result"]
    assert (record["CALL_FAILED_CODE"], record["CALL_STATUS"], record["INCOMING"]) == ("304", 0, "2")
    assert record["CRM_ENTITY_ID"] == registered["CRM_ENTITY_ID"] and isinstance(record["CRM_ACTIVITY_ID"], int)
    form = receiver.wait_for(1)[0]["form"]
    assert form["event"] == "ONVOXIMPLANTCALLEND"
    assert {k: form[f"data[{k}]"] for k in ("CALL_ID", "CALL_TYPE", "CALL_FAILED_CODE", "PORTAL_USER_ID",
                                             "CALL_DURATION", "CRM_ACTIVITY_ID")} == {
        "CALL_ID": registered["CALL_ID"], "CALL_TYPE": "2", "CALL_FAILED_CODE": "304", "PORTAL_USER_ID": "3",
        "CALL_DURATION": "0", "CRM_ACTIVITY_ID": str(record["CRM_ACTIVITY_ID"])}
    activity = result(b24, "crm.activity.get", {"id": record["CRM_ACTIVITY_ID"]})
    assert (activity["PROVIDER_ID"], activity["TYPE_ID"], activity["DIRECTION"], activity["OWNER_TYPE_ID"]) == \
        ("VOXIMPLANT_CALL", "2", "1", "3")
    missed = hook(b24, "voximplant.statistic.get", {"FILTER": {"CALL_TYPE": 2, "CALL_FAILED_CODE": "304"},
                                                    "SORT": "CALL_START_DATE", "ORDER": "DESC"}).json()
    assert missed["total"] == 1 and missed["result"][0]["CALL_ID"] == registered["CALL_ID"]
    assert missed["result"][0]["CRM_ENTITY_TYPE"] == "CONTACT" and missed["result"][0]["CALL_DURATION"] == "0"
    assert hook(b24, "voximplant.statistic.get", {"FILTER": {"CALL_FAILED_CODE": "200"}}).json()["total"] == 0
    again = app(b24, token, "telephony.externalcall.finish", {"CALL_ID": registered["CALL_ID"], "USER_ID": 3})
    assert again.status_code == 400 and again.json()["error"] == "ERROR_CORE"


def test_a_call_from_an_unknown_number_can_create_a_lead(b24):
    token = app_token(b24)
    r = app(b24, token, "telephony.externalcall.register",
            {"USER_PHONE_INNER": "101", "PHONE_NUMBER": "79990001122", "TYPE": 2, "CRM_CREATE": 1}).json()["result"]
    assert r["CRM_ENTITY_TYPE"] == "LEAD" and r["CRM_CREATED_ENTITIES"] == [{"ENTITY_TYPE": "LEAD",
                                                                              "ENTITY_ID": r["CRM_CREATED_LEAD"]}]
    assert result(b24, "crm.lead.get", {"id": r["CRM_CREATED_LEAD"]})["ASSIGNED_BY_ID"] == "2"
    assert app(b24, token, "telephony.externalcall.register", {"USER_ID": 2, "PHONE_NUMBER": "79990001123", "TYPE": 9}
               ).json()["error_description"] == "Unknown TYPE"


def test_a_todo_is_added_listed_completed_and_then_frozen(b24):
    r = hook(b24, "crm.activity.todo.add", {"ownerTypeId": 2, "ownerId": 105, "deadline": "2030-01-02T15:00:00+03:00",
                                            "title": "Продать", "description": "Регламент", "responsibleId": 3,
                                            "pingOffsets": [0, 15]}).json()
    assert set(r["result"]) == {"id"}
    todo = result(b24, "crm.activity.get", {"id": r["result"]["id"]})
    assert (todo["PROVIDER_ID"], todo["TYPE_ID"], todo["SUBJECT"], todo["RESPONSIBLE_ID"], todo["COMPLETED"]) == \
        ("CRM_TODO", "6", "Продать", "3", "N")
    assert todo["DEADLINE"] == "2030-01-02T15:00:00+03:00" and "COMMUNICATIONS" not in todo
    open_ = result(b24, "crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": 105, "COMPLETED": "N"}})
    assert [a["ID"] for a in open_] == [todo["ID"]]
    moved = hook(b24, "crm.activity.todo.updateDeadline", {"id": todo["ID"], "ownerTypeId": 2, "ownerId": 105,
                                                           "value": "2030-01-03T10:00:00"}).json()
    assert moved["result"] == {"id": int(todo["ID"])}
    assert result(b24, "crm.activity.update", {"id": todo["ID"], "fields": {"COMPLETED": "Y"}}) is True
    done = result(b24, "crm.activity.get", {"id": todo["ID"]})
    assert (done["COMPLETED"], done["STATUS"], done["DEADLINE"]) == ("Y", "2", "2030-01-03T10:00:00+03:00")
    assert result(b24, "crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": 105, "COMPLETED": "N"}}) == []
    frozen = hook(b24, "crm.activity.todo.update", {"id": todo["ID"], "ownerTypeId": 2, "ownerId": 105,
                                                    "deadline": "2030-01-05T10:00:00", "title": "x"})
    assert frozen.status_code == 400 and frozen.json()["error"] == "CAN_NOT_UPDATE_COMPLETED_TODO"
    nobody = hook(b24, "crm.activity.todo.add", {"ownerTypeId": 2, "ownerId": 999999, "deadline": "2030-01-01T10:00:00"})
    assert nobody.status_code == 400 and nobody.json() == {"error": "NOT_FOUND", "error_description": "Not found."}
    no_deadline = hook(b24, "crm.activity.todo.add", {"ownerTypeId": 2, "ownerId": 105})
    assert no_deadline.json()["error"] == "100"
    assert hook(b24, "crm.activity.todo.add", {"ownerTypeId": 2, "ownerId": 105, "deadline": "завтра"}).json()[
        "error"] == "WRONG_DATETIME_FORMAT"
    assert result(b24, "crm.activity.delete", {"id": todo["ID"]}) is True


def test_tasks_bound_to_a_deal(b24):
    added = result(b24, "tasks.task.add", {"fields": {"TITLE": "Продать", "RESPONSIBLE_ID": 3, "CREATED_BY": 1,
                                                      "DEADLINE": "2030-01-01T12:00:00", "UF_CRM_TASK": ["D_105"]}})
    task = added["task"]
    assert task["title"] == "Продать" and task["responsibleId"] == "3" and task["status"] == "2"
    assert task["deadline"] == "2030-01-01T12:00:00+03:00" and "ufCrmTask" not in task
    listed = hook(b24, "tasks.task.list", {"filter": {"UF_CRM_TASK": "D_105", "!STATUS": 5},
                                           "select": ["ID", "TITLE", "STATUS", "RESPONSIBLE_ID", "UF_CRM_TASK"]}).json()
    assert listed["total"] == 1
    row = listed["result"]["tasks"][0]
    assert (row["id"], row["ufCrmTask"], row["responsibleId"]) == (task["id"], ["D_105"], "3")
    mirror = result(b24, "crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": 105, "PROVIDER_ID": "TASKS_TASK"}})
    assert [(a["ASSOCIATED_ENTITY_ID"], a["COMPLETED"]) for a in mirror] == [(task["id"], "N")]
    updated = result(b24, "tasks.task.update", {"taskId": task["id"], "fields": {"DEADLINE": "2030-01-02T12:00:00"}})
    assert updated["task"]["deadline"] == "2030-01-02T12:00:00+03:00"
    # the move is in the task's history (tasks-task-history-list.md's shape; DEADLINE as unix seconds)
    moves = result(b24, "tasks.task.history.list", {"taskId": task["id"], "filter": {"FIELD": "DEADLINE"}})["list"]
    assert [(h["field"], h["value"]) for h in moves] == [("DEADLINE", {"from": "1893488400", "to": "1893574800"})]
    assert moves[0]["user"]["id"] == 1 and moves[0]["createdDate"]
    everything = result(b24, "tasks.task.history.list", {"taskId": task["id"], "order": {"createdDate": "asc"}})["list"]
    assert [h["field"] for h in everything] == ["NEW", "DEADLINE"]
    assert result(b24, "tasks.task.history.list", {"taskId": 999999}) == {"list": []}
    assert hook(b24, "tasks.task.history.list", {}).json()["error"] == "100"
    completed = result(b24, "tasks.task.complete", {"taskId": task["id"]})["task"]
    assert completed["status"] == "5" and completed["closedDate"]
    assert result(b24, "crm.activity.get", {"id": mirror[0]["ID"]})["COMPLETED"] == "Y"
    got = result(b24, "tasks.task.get", {"taskId": task["id"], "select": ["ID", "UF_CRM_TASK"]})["task"]
    assert got == {"id": task["id"], "ufCrmTask": ["D_105"]}
    assert hook(b24, "tasks.task.add", {"fields": {"TITLE": "x"}}).json()["error"] == "ERROR_CORE"
    assert hook(b24, "tasks.task.add", {"fields": {"TITLE": "x", "RESPONSIBLE_ID": 2, "UF_CRM_TASK": ["D_999999"]}}
                ).json()["error"] == "ERROR_CORE"


def test_register_binds_the_named_contact_or_lead_and_not_a_deal(b24):
    token = app_token(b24)
    deal = result(b24, "crm.deal.get", {"id": 102})
    contact = int(deal["CONTACT_ID"])
    # a number nobody has, bound to the deal's client as a call from its card is
    named = app(b24, token, "telephony.externalcall.register",
                {"USER_ID": 3, "PHONE_NUMBER": "79990007788", "TYPE": 1, "CRM_ENTITY_TYPE": "contact",
                 "CRM_ENTITY_ID": contact}).json()["result"]
    assert (named["CRM_ENTITY_TYPE"], named["CRM_ENTITY_ID"]) == ("CONTACT", contact)
    record = app(b24, token, "telephony.externalcall.finish",
                 {"CALL_ID": named["CALL_ID"], "USER_ID": 3, "DURATION": 30, "STATUS_CODE": "200"}).json()["result"]
    listed = hook(b24, "voximplant.statistic.get", {"FILTER": {"CALL_ID": named["CALL_ID"]}}).json()["result"]
    assert (listed[0]["CRM_ENTITY_TYPE"], listed[0]["CRM_ENTITY_ID"]) == ("CONTACT", str(contact))
    activity = result(b24, "crm.activity.get", {"id": record["CRM_ACTIVITY_ID"]})
    assert (activity["OWNER_TYPE_ID"], activity["OWNER_ID"]) == ("3", str(contact))
    assert (datetime.fromisoformat(activity["END_TIME"]) - datetime.fromisoformat(activity["START_TIME"])).seconds == 30
    # the deal's contacts, as crm-deal-contact-items-get.md answers them
    assert result(b24, "crm.deal.contact.items.get", {"id": 102}) == [
        {"CONTACT_ID": contact, "SORT": 10, "ROLE_ID": 0, "IS_PRIMARY": "Y"}]
    # DEAL is not one of register's CRM_ENTITY_TYPE values (CONTACT, COMPANY, LEAD): the phone decides
    deal_named = app(b24, token, "telephony.externalcall.register",
                     {"USER_ID": 3, "PHONE_NUMBER": "79990007789", "TYPE": 1, "CRM_ENTITY_TYPE": "DEAL",
                      "CRM_ENTITY_ID": 102}).json()["result"]
    assert (deal_named["CRM_ENTITY_TYPE"], deal_named["CRM_ENTITY_ID"]) == ("", 0)
