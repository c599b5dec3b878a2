"""Outgoing events: event.bind and outgoing webhooks, the form-encoded bodies, no retries."""

from __future__ import annotations

import requests

from .conftest import CREDS, app, app_token, hook, result

APP_AUTH_KEYS = ["auth[access_token]", "auth[expires_in]", "auth[scope]", "auth[domain]", "auth[server_endpoint]",
                 "auth[status]", "auth[client_endpoint]", "auth[member_id]", "auth[application_token]"]
WEBHOOK_AUTH_KEYS = ["auth[domain]", "auth[client_endpoint]", "auth[server_endpoint]", "auth[member_id]",
                     "auth[application_token]"]


def keys(post: dict) -> list[str]:
    return [pair.split("=", 1)[0].replace("%5B", "[").replace("%5D", "]") for pair in post["raw"].split("&")]


def test_event_bind_needs_the_application_and_lists_handlers(b24, receiver):
    refused = hook(b24, "event.bind", {"event": "ONCRMDEALADD", "handler": receiver.url + "/h"})
    assert refused.status_code == 403 and refused.json()["error"] == "WRONG_AUTH_TYPE"
    token = app_token(b24)
    assert app(b24, token, "event.bind", {"event": "onCrmDealAdd", "handler": receiver.url + "/h"}).json()["result"] is True
    again = app(b24, token, "event.bind", {"event": "ONCRMDEALADD", "handler": receiver.url + "/h"})
    assert again.status_code == 400 and again.json() == {"error": "ERROR_HANDLER_ALREADY_EXIST",
                                                         "error_description": "Handler already exists!"}
    assert app(b24, token, "event.bind", {"event": "ONNOTHING", "handler": receiver.url}).json()["error"] == \
        "ERROR_EVENT_NOT_FOUND"
    assert app(b24, token, "event.get").json()["result"] == [
        {"event": "ONCRMDEALADD", "handler": receiver.url + "/h", "auth_type": "0", "offline": 0}]
    assert app(b24, token, "event.unbind", {"event": "ONCRMDEALADD", "handler": receiver.url + "/h"}).json()[
        "result"] == {"count": 1}
    assert app(b24, token, "event.get").json()["result"] == []


def test_a_bound_deal_add_arrives_form_encoded_as_the_reference_shows(b24, receiver):
    token = app_token(b24)
    app(b24, token, "event.bind", {"event": "ONCRMDEALADD", "handler": receiver.url + "/b24/secret"})
    deal_id = result(b24, "crm.deal.add", {"fields": {"TITLE": "Событие", "ASSIGNED_BY_ID": 3}})
    post = receiver.wait_for(1)[0]
    assert post["path"] == "/b24/secret"
    assert post["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert keys(post) == ["event", "event_handler_id", "data[FIELDS][ID]", "ts"] + APP_AUTH_KEYS
    form = post["form"]
    assert form["event"] == "ONCRMDEALADD" and form["data[FIELDS][ID]"] == str(deal_id)
    assert form["event_handler_id"].isdigit() and form["ts"].isdigit()
    assert form["auth[application_token]"] == CREDS.application_token
    assert form["auth[domain]"] == f"127.0.0.1:{b24.port}" and form["auth[client_endpoint]"] == b24.url + "/rest/"
    assert form["auth[member_id]"] == "5f3a0c9e2b7d4e61a8c0d1b2e3f40513" and form["auth[expires_in]"] == "3600"
    # the access token in the body is a live token of the webhook's user (who made the change)
    assert app(b24, form["auth[access_token]"], "user.current").json()["result"]["ID"] == "1"
    assert b24.wait_events()
    sent = requests.get(b24.url + "/_sandbox/events", timeout=5).json()
    assert [(e["event"], e["status"], e["body"]) for e in sent] == [("ONCRMDEALADD", 200, post["raw"])]


def test_an_outgoing_webhook_gets_the_short_auth_block_and_only_its_events(b24, receiver):
    made = requests.post(b24.url + "/_sandbox/webhooks/outgoing", timeout=5, json={
        "handler": receiver.url + "/out", "events": ["ONCRMDEALUPDATE", "ONCRMACTIVITYUPDATE"]}).json()
    assert len(made["application_token"]) == 32
    hook(b24, "crm.deal.add", {"fields": {"TITLE": "не подписано"}})
    hook(b24, "crm.deal.update", {"id": 104, "fields": {"STAGE_ID": "UC_CAME"}})
    post = receiver.wait_for(1)[0]
    assert keys(post) == ["event", "event_handler_id", "data[FIELDS][ID]", "ts"] + WEBHOOK_AUTH_KEYS
    assert post["form"]["event"] == "ONCRMDEALUPDATE" and post["form"]["data[FIELDS][ID]"] == "104"
    assert post["form"]["auth[application_token]"] == made["application_token"]
    assert b24.wait_events() and len(receiver.posts) == 1


def test_an_outgoing_webhook_set_up_by_a_script_may_give_its_token(b24, receiver):
    made = requests.post(b24.url + "/_sandbox/webhooks/outgoing", timeout=5, json={
        "handler": receiver.url + "/given", "events": ["ONCRMDEALUPDATE"], "application_token": "demo-token-1"}).json()
    assert made["application_token"] == "demo-token-1"
    hook(b24, "crm.deal.update", {"id": 104, "fields": {"TITLE": "с токеном"}})
    assert receiver.wait_for(1)[0]["form"]["auth[application_token]"] == "demo-token-1"


def test_events_are_never_retried(b24, receiver):
    requests.post(b24.url + "/_sandbox/webhooks/outgoing", timeout=5,
                  json={"handler": receiver.url + "/down", "events": ["ONCRMDEALUPDATE"]})
    receiver.answers = [500]
    hook(b24, "crm.deal.update", {"id": 101, "fields": {"TITLE": "раз"}})
    assert b24.wait_events(5)
    log = requests.get(b24.url + "/_sandbox/events", timeout=5).json()
    assert [(e["status"], e["ok"]) for e in log] == [(500, False)]
    hook(b24, "crm.deal.update", {"id": 101, "fields": {"TITLE": "два"}})
    assert b24.wait_events(5)
    assert [p["answered"] for p in receiver.posts] == [500, 200]   # the first was not sent again


def test_completing_a_todo_sends_activity_update_and_task_events_carry_fields_after(b24, receiver):
    requests.post(b24.url + "/_sandbox/webhooks/outgoing", timeout=5, json={
        "handler": receiver.url + "/all", "events": ["ONCRMACTIVITYADD", "ONCRMACTIVITYUPDATE", "ONTASKADD"]})
    todo = result(b24, "crm.activity.todo.add", {"ownerTypeId": 2, "ownerId": 105, "deadline": "2030-01-01T10:00:00",
                                                 "title": "Продать", "responsibleId": 3})["id"]
    result(b24, "crm.activity.update", {"id": todo, "fields": {"COMPLETED": "Y"}})
    task = result(b24, "tasks.task.add", {"fields": {"TITLE": "Задача", "RESPONSIBLE_ID": 3,
                                                     "UF_CRM_TASK": ["D_105"]}})["task"]["id"]
    posts = receiver.wait_for(4)
    events = [(p["form"]["event"], p["form"].get("data[FIELDS][ID]") or p["form"].get("data[FIELDS_AFTER][ID]"))
              for p in posts]
    assert events[:3] == [("ONCRMACTIVITYADD", str(todo)), ("ONCRMACTIVITYUPDATE", str(todo)), ("ONTASKADD", task)]
    assert events[3][0] == "ONCRMACTIVITYADD"          # the task's own activity on the deal
    assert posts[2]["form"]["data[FIELDS_BEFORE]"] == "undefined" and posts[2]["form"]["data[IS_ACCESSIBLE_BEFORE]"] == "N"


def test_a_timeline_comment_fires_its_event_with_data_id_as_documented(b24, receiver):
    requests.post(b24.url + "/_sandbox/webhooks/outgoing", timeout=5,
                  json={"handler": receiver.url + "/comments", "events": ["ONCRMTIMELINECOMMENTADD"]})
    comment_id = result(b24, "crm.timeline.comment.add", {"fields": {"ENTITY_ID": 102, "ENTITY_TYPE": "deal",
                                                                     "COMMENT": "Клиент просил написать"}})
    post = receiver.wait_for(1)[0]
    # onCrmTimelineCommentAdd's page shows "data": {"ID": 999}, not data[FIELDS][ID]
    assert keys(post) == ["event", "event_handler_id", "data[ID]", "ts"] + WEBHOOK_AUTH_KEYS
    assert post["form"]["event"] == "ONCRMTIMELINECOMMENTADD" and post["form"]["data[ID]"] == str(comment_id)
    got = result(b24, "crm.timeline.comment.get", {"id": comment_id})
    assert {k: got[k] for k in ("ID", "ENTITY_ID", "ENTITY_TYPE", "COMMENT", "AUTHOR_ID")} == {
        "ID": str(comment_id), "ENTITY_ID": "102", "ENTITY_TYPE": "deal", "COMMENT": "Клиент просил написать",
        "AUTHOR_ID": "1"}
    assert hook(b24, "crm.timeline.comment.get", {"id": comment_id + 100}).status_code == 400


INSTALL_KEYS = ["event", "data[VERSION]", "data[ACTIVE]", "data[INSTALLED]", "data[LANGUAGE_ID]", "ts",
                "auth[domain]", "auth[scope]", "auth[access_token]", "auth[refresh_token]", "auth[expires_in]",
                "auth[server_endpoint]", "auth[status]", "auth[client_endpoint]", "auth[member_id]",
                "auth[application_token]"]


def test_installing_posts_onappinstall_once_with_a_working_token_pair(b24, receiver):
    receiver.answers = [500]
    sent = requests.post(b24.url + "/_sandbox/install", json={"handler": receiver.url + "/install"}, timeout=10).json()
    assert (sent["event"], sent["status"], sent["ok"]) == ("ONAPPINSTALL", 500, False) and "body" not in sent
    post = receiver.wait_for(1)[0]
    assert post["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert keys(post) == INSTALL_KEYS                      # on-app-install.md's fields, in its order
    form = post["form"]
    assert (form["event"], form["auth[application_token]"]) == ("ONAPPINSTALL", CREDS.application_token)
    assert form["auth[domain]"] == f"127.0.0.1:{b24.port}" and form["auth[member_id]"] == "5f3a0c9e2b7d4e61a8c0d1b2e3f40513"
    assert app(b24, form["auth[access_token]"], "user.current").json()["result"]["ID"] == "1"
    pair = requests.get(b24.url + "/oauth/token/", timeout=5, params={
        "grant_type": "refresh_token", "refresh_token": form["auth[refresh_token]"],
        "client_id": CREDS.client_id, "client_secret": CREDS.client_secret}).json()
    assert pair["access_token"] and pair["refresh_token"] != form["auth[refresh_token]"]
    assert b24.wait_events(2) and len(receiver.posts) == 1   # a refused install is not sent again
    assert requests.post(b24.url + "/_sandbox/install", json={"handler": "nowhere"}, timeout=5).status_code == 400


def test_uninstalling_revokes_the_tokens_and_handlers_and_posts_onappuninstall(b24, receiver):
    token = app_token(b24)
    app(b24, token, "event.bind", {"event": "ONCRMDEALADD", "handler": receiver.url + "/h"})
    sent = requests.post(b24.url + "/_sandbox/uninstall", json={"handler": receiver.url + "/h"}, timeout=10).json()
    assert (sent["event"], sent["status"]) == ("ONAPPUNINSTALL", 200)
    post = receiver.wait_for(1)[0]
    assert keys(post) == ["event", "data[LANGUAGE_ID]", "data[CLEAN]", "ts", "auth[domain]", "auth[server_endpoint]",
                          "auth[client_endpoint]", "auth[member_id]", "auth[application_token]"]
    assert post["form"]["auth[application_token]"] == CREDS.application_token
    assert app(b24, token, "user.current").json()["error"] == "invalid_token"
    assert requests.get(b24.url + "/_sandbox/handlers", timeout=5).json()["bound"] == []
