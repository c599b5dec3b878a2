"""The leaky bucket, authorisation (incoming webhook and OAuth) and Bitrix24's error bodies."""

from __future__ import annotations

import dataclasses
import time

import requests

from sandbox.bitrix24 import Portal, PortalServer

from .conftest import CREDS, app, app_token, hook


def test_the_bucket_refuses_above_the_burst_and_drains_at_the_rate(clock):
    with PortalServer(Portal(clock=clock), dataclasses.replace(CREDS)) as b24:   # 2 per second, burst 50
        answers = [hook(b24, "user.current").status_code for _ in range(50)]
        assert answers == [200] * 50
        refused = hook(b24, "user.current")
        assert refused.status_code == 503
        assert refused.json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
        clock.advance(0.5)                      # one request drained
        assert hook(b24, "user.current").status_code == 200
        assert hook(b24, "user.current").status_code == 503
        clock.advance(10)                       # 20 drained
        assert [hook(b24, "user.current").status_code for _ in range(21)] == [200] * 20 + [503]
        # a batch of 50 commands is one request
        clock.advance(0.5)
        r = hook(b24, "batch", {"cmd": {f"c{i}": "user.current" for i in range(50)}})
        assert r.status_code == 200 and len(r.json()["result"]["result"]) == 50
        assert hook(b24, "user.current").status_code == 503
        log = requests.get(b24.url + "/_sandbox/requests", timeout=5).json()
        assert sum(e["error"] == "QUERY_LIMIT_EXCEEDED" for e in log) == 4
        assert log[-2]["method"] == "batch" and len(log[-2]["commands"]) == 50


def test_the_rate_and_burst_are_configurable(clock):
    with PortalServer(Portal(clock=clock), dataclasses.replace(CREDS), rate=5, burst=3) as b24:
        assert [hook(b24, "user.current").status_code for _ in range(4)] == [200, 200, 200, 503]
        clock.advance(0.2)
        assert hook(b24, "user.current").status_code == 200
        r = requests.post(b24.url + "/_sandbox/bucket", json={"burst": 250}, timeout=5).json()
        assert r["burst"] == 250 and r["rate"] == 5


def test_a_wrong_webhook_code_or_user_is_401(b24):
    for url in (f"{b24.url}/rest/1/wrong-code/user.current", f"{b24.url}/rest/2/{CREDS.webhook_code}/user.current"):
        r = requests.post(url, json={}, timeout=5)
        assert r.status_code == 401
        assert r.json() == {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}
    log = requests.get(b24.url + "/_sandbox/requests", timeout=5).json()
    assert all(CREDS.webhook_code not in e["path"] for e in log)
    assert log[-1]["path"] == "/rest/2/***/user.current"


def test_oauth_calls_expire_after_an_hour_and_refresh(b24, clock):
    token = app_token(b24)
    r = app(b24, token, "user.current")
    assert r.status_code == 200 and r.json()["result"]["ID"] == "1"
    assert requests.get(f"{b24.url}/rest/user.current", params={"auth": token}, timeout=5).status_code == 200
    assert requests.post(f"{b24.url}/rest/user.current", json={}, timeout=5).json()["error"] == "NO_AUTH_FOUND"
    bad = app(b24, "not-a-token", "user.current")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
    clock.advance(3601)
    expired = app(b24, token, "user.current")
    assert expired.status_code == 401
    assert expired.json() == {"error": "expired_token", "error_description": "The access token provided has expired."}


def test_the_token_endpoint_rotates_refresh_tokens(b24):
    code = requests.post(b24.url + "/_sandbox/oauth/code", timeout=5).json()["code"]
    args = {"grant_type": "authorization_code", "client_id": CREDS.client_id, "client_secret": CREDS.client_secret,
            "code": code}
    first = requests.get(b24.url + "/oauth/token/", params=args, timeout=5).json()
    assert {"access_token", "refresh_token", "expires_in", "member_id", "client_endpoint", "scope"} <= set(first)
    assert first["expires_in"] == 3600 and first["client_endpoint"] == b24.url + "/rest/"
    again = requests.get(b24.url + "/oauth/token/", params=args, timeout=5)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"   # a code works once
    refresh = {"grant_type": "refresh_token", "client_id": CREDS.client_id, "client_secret": CREDS.client_secret,
               "refresh_token": first["refresh_token"]}
    second = requests.get(b24.url + "/oauth/token/", params=refresh, timeout=5).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert app(b24, second["access_token"], "user.current").status_code == 200
    assert requests.get(b24.url + "/oauth/token/", params=refresh, timeout=5).json()["error"] == "invalid_grant"
    wrong = requests.get(b24.url + "/oauth/token/", params={**refresh, "client_secret": "x"}, timeout=5)
    assert wrong.json()["error"] == "invalid_client"
    log = requests.get(b24.url + "/_sandbox/requests", timeout=5).json()
    assert all(CREDS.client_secret not in str(e) and first["refresh_token"] not in str(e) for e in log)


def test_error_bodies(b24):
    unknown = hook(b24, "crm.deal.nothing")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
    assert hook(b24, "crm.deal.get", {"id": 0}).json() == {"error": "",
                                                          "error_description": "ID is not defined or invalid."}
    assert hook(b24, "crm.deal.add", {"fields": "text"}).json() == {
        "error": "", "error_description": "Parameter 'fields' must be array."}
    broken = requests.post(b24.webhook_url + "crm.deal.list", data=b"{not json",
                           headers={"Content-Type": "application/json"}, timeout=5)
    assert broken.status_code == 400 and set(broken.json()) == {"error", "error_description"}


def test_a_method_over_its_operating_limit_answers_429_until_the_block_ends(b24, clock):
    requests.post(b24.url + "/_sandbox/block", json={"method": "crm.deal.list", "seconds": 600}, timeout=5)
    blocked = hook(b24, "crm.deal.list")
    assert blocked.status_code == 429
    assert blocked.json() == {"error": "OPERATION_TIME_LIMIT",
                              "error_description": "Method is blocked due to operation time limit"}
    assert hook(b24, "crm.deal.get", {"id": 101}).status_code == 200   # other methods keep working
    inside = hook(b24, "batch", {"cmd": {"l": "crm.deal.list"}}).json()["result"]
    assert inside["result_error"]["l"]["error"] == "OPERATION_TIME_LIMIT"
    clock.advance(601)
    assert hook(b24, "crm.deal.list").status_code == 200


def test_injected_faults_answer_in_turn_with_bitrix24_bodies_then_the_portal_serves_again(b24):
    set_ = requests.post(b24.url + "/_sandbox/faults", json={"statuses": [503, 500, 429], "seconds": 0.5}, timeout=5)
    assert set_.status_code == 200 and set_.json()["active_for"] > 0
    answers = [hook(b24, "user.current") for _ in range(4)]
    assert [r.status_code for r in answers] == [503, 500, 429, 503]
    assert [r.json()["error"] for r in answers] == ["QUERY_LIMIT_EXCEEDED", "INTERNAL_SERVER_ERROR",
                                                     "OPERATION_TIME_LIMIT", "QUERY_LIMIT_EXCEEDED"]
    wrong = requests.post(f"{b24.url}/rest/1/wrong-code/user.current", json={}, timeout=5)
    assert wrong.status_code == 401   # a fault never lets an unauthorised call through
    time.sleep(0.6)
    assert hook(b24, "user.current").status_code == 200
    assert requests.get(b24.url + "/_sandbox/faults", timeout=5).json()["answered"] == {"429": 1, "500": 1, "503": 2}
    log = requests.get(b24.url + "/_sandbox/requests", timeout=5).json()
    assert [e["status"] for e in log[:4]] == [503, 500, 429, 503]
    assert requests.post(b24.url + "/_sandbox/faults", json={"statuses": [200]}, timeout=5).status_code == 400
