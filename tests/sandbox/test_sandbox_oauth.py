"""OAuth 2.0 against the live sandbox: its /oauth2/access_token endpoint as amoCRM documents it, and
Reglament's own token handling (connectors/amocrm/auth.py through AmoCRMClient) driven against it."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests

from connectors.amocrm import AmoCRMClient, AuthError
from sandbox.amocrm.oauth import Integration
from reglament import keys
from reglament.config import AmoCRMSettings, OAuth

INTEGRATION = Integration()  # the sandbox's default client_id, client_secret, redirect_uri
ACCOUNT = "acme"
PAIR_KEY = keys.key(ACCOUNT, "amocrm", "oauth")
TOKEN_PATH = "/oauth2/access_token"
PROBLEM = "application/problem+json"
DAY = 86400


# ------------------------------------------------------------------ helpers: a client written from the docs
def new_code(amo) -> str:
    return requests.post(f"{amo.url}/_sandbox/oauth/code", timeout=10).json()["code"]


def token_request(amo, **fields) -> requests.Response:
    body = {"client_id": INTEGRATION.client_id, "client_secret": INTEGRATION.client_secret,
            "redirect_uri": INTEGRATION.redirect_uri, **fields}
    return requests.post(f"{amo.url}{TOKEN_PATH}", json=body, timeout=10)


def exchange(amo) -> dict:
    r = token_request(amo, grant_type="authorization_code", code=new_code(amo))
    assert r.status_code == 200, r.text
    return r.json()


def refresh(amo, refresh_token: str) -> requests.Response:
    return token_request(amo, grant_type="refresh_token", refresh_token=refresh_token)


def api_status(amo, access_token: str) -> int:
    return requests.get(f"{amo.url}/api/v4/account", headers={"Authorization": f"Bearer {access_token}"},
                        timeout=10).status_code


def shift_clock(amo, seconds: float) -> None:
    requests.post(f"{amo.url}/_sandbox/clock", json={"shift": seconds}, timeout=10).raise_for_status()


def expire_access_tokens(amo) -> int:
    return requests.post(f"{amo.url}/_sandbox/oauth/expire", timeout=10).json()["expired"]


def oauth_state(amo) -> dict:
    return requests.get(f"{amo.url}/_sandbox/oauth", timeout=10).json()


def answered(amo, since: int = 0) -> list[tuple[str, str, int]]:
    log = requests.get(f"{amo.url}/_sandbox/requests", params={"since": since}, timeout=10).json()
    return [(e["method"], e["path"], e["status"]) for e in log]


def mark(amo) -> int:
    log = requests.get(f"{amo.url}/_sandbox/requests", timeout=10).json()
    return log[-1]["index"] + 1 if log else 0


def refused(r: requests.Response, hint: str) -> bool:
    body = r.json()
    return (r.status_code, r.headers["Content-Type"], body["status"], body["hint"]) == (400, PROBLEM, 400, hint)


# ------------------------------------------------------------------ helpers: Reglament's client
def oauth_client(amo, r, **oauth) -> AmoCRMClient:
    config = {"client_id": INTEGRATION.client_id, "client_secret": INTEGRATION.client_secret,
              "redirect_uri": INTEGRATION.redirect_uri, **oauth}
    settings = AmoCRMSettings(base_url=amo.url, rate_limit=1000, oauth=OAuth(**config))
    return AmoCRMClient(ACCOUNT, settings, r, backoff_base=0.001, backoff_max=0.004, max_attempts=3)


def stored(r) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(PAIR_KEY).items()}


# ------------------------------------------------------------------ the endpoint
def test_code_exchange_answers_the_documented_pair_and_the_token_works_on_the_api(amo):
    code = requests.post(f"{amo.url}/_sandbox/oauth/code", timeout=10).json()
    assert code["referer"] == "demo.amocrm.ru" and code["expires_in"] == 20 * 60
    r = token_request(amo, grant_type="authorization_code", code=code["code"])

    assert r.status_code == 200
    pair = r.json()
    assert set(pair) == {"token_type", "expires_in", "access_token", "refresh_token"}
    assert (pair["token_type"], pair["expires_in"]) == ("Bearer", DAY)
    assert pair["access_token"].startswith("eyJ0eXAiOiJKV1Qi") and pair["access_token"].count(".") == 2
    assert api_status(amo, pair["access_token"]) == 200
    assert api_status(amo, amo.token) == 200  # the long-lived token keeps working alongside
    assert api_status(amo, "not-a-token") == 401
    # A code works once.
    again = token_request(amo, grant_type="authorization_code", code=code["code"])
    assert refused(again, "Authorization code has been revoked")
    assert oauth_state(amo)["granted"] == {"authorization_code": 1, "refresh_token": 0}


def test_a_form_encoded_body_is_taken_too(amo):
    body = {"client_id": INTEGRATION.client_id, "client_secret": INTEGRATION.client_secret,
            "redirect_uri": INTEGRATION.redirect_uri, "grant_type": "authorization_code", "code": new_code(amo)}
    r = requests.post(f"{amo.url}{TOKEN_PATH}", data=body, timeout=10)
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer"


@pytest.mark.parametrize("fields, hint", [
    ({"client_id": "someone-else"}, "Check the `client_id` parameter"),
    ({"client_secret": "wrong"}, "Check the `client_secret` parameter"),
    ({"client_secret": ""}, "Check the `client_secret` parameter"),
    ({"redirect_uri": "https://elsewhere.example/oauth"}, "Redirect URI is not associated with client"),
    ({"redirect_uri": ""}, "Check the `redirect_uri` parameter"),
    ({"grant_type": "password"}, "Check that all required parameters have been provided"),
    ({"code": ""}, "Check the `code` parameter"),
    ({"code": "def50200-never-issued"}, "Cannot decrypt the authorization code"),
])
def test_a_bad_code_exchange_is_refused_with_the_oauth_problem_shape(amo, fields, hint):
    r = token_request(amo, **{"grant_type": "authorization_code", "code": new_code(amo), **fields})
    assert refused(r, hint), r.text
    assert r.json()["type"] == "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"
    assert oauth_state(amo)["granted"]["authorization_code"] == 0


def test_a_code_expires_after_20_minutes(amo):
    code = new_code(amo)
    shift_clock(amo, 20 * 60 + 1)
    assert refused(token_request(amo, grant_type="authorization_code", code=code), "Authorization code has expired")


def test_refresh_rotates_the_pair_and_the_old_refresh_and_access_tokens_die(amo):
    first = exchange(amo)
    r = refresh(amo, first["refresh_token"])
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]

    assert refused(refresh(amo, first["refresh_token"]), "Token has been revoked")
    assert api_status(amo, first["access_token"]) == 401
    assert api_status(amo, second["access_token"]) == 200
    assert refresh(amo, second["refresh_token"]).status_code == 200
    assert refused(refresh(amo, "def50200-never-issued"), "Cannot decrypt the refresh token")
    # A refresh checks the client like a code exchange does.
    third = exchange(amo)
    bad = token_request(amo, grant_type="refresh_token", refresh_token=third["refresh_token"], client_secret="x")
    assert refused(bad, "Check the `client_secret` parameter")
    assert refresh(amo, third["refresh_token"]).status_code == 200  # a refused request spends nothing


def test_access_tokens_expire_on_the_sandbox_clock_and_on_demand(amo):
    pair = exchange(amo)
    shift_clock(amo, DAY - 5)
    assert api_status(amo, pair["access_token"]) == 200
    shift_clock(amo, DAY)
    answer = requests.get(f"{amo.url}/api/v4/account", headers={"Authorization": f"Bearer {pair['access_token']}"},
                          timeout=10)
    assert answer.status_code == 401 and answer.headers["Content-Type"] == PROBLEM
    # The refresh token outlives the access token by far.
    fresh = refresh(amo, pair["refresh_token"]).json()
    assert api_status(amo, fresh["access_token"]) == 200
    assert expire_access_tokens(amo) == 1
    assert api_status(amo, fresh["access_token"]) == 401
    assert api_status(amo, amo.token) == 200  # the long-lived token never expires
    assert oauth_state(amo)["live_access_tokens"] == 0


def test_a_refresh_token_unused_for_three_months_expires(amo):
    pair = exchange(amo)
    shift_clock(amo, 90 * DAY + 1)
    assert refused(refresh(amo, pair["refresh_token"]), "Token has expired")


def test_the_access_token_lifetime_is_configurable():
    from sandbox.amocrm import SandboxServer

    with SandboxServer(rate_limit=0, integration=Integration(access_ttl=60)) as amo:
        pair = exchange(amo)
        assert pair["expires_in"] == 60
        shift_clock(amo, 61)
        assert api_status(amo, pair["access_token"]) == 401


# ------------------------------------------------------------------ Reglament's token handling against it
def test_client_exchanges_the_configured_code_once_and_calls_the_api(amo, r):
    code = new_code(amo)
    users = oauth_client(amo, r, authorization_code=code).users()
    assert {u["name"] for u in users} >= {"Галина Орлова"}
    # Another process with the same configuration reuses the stored pair instead of the spent code.
    assert oauth_client(amo, r, authorization_code=code).account()["subdomain"] == "demo"

    assert [a for a in answered(amo) if a[1] == TOKEN_PATH] == [("POST", TOKEN_PATH, 200)]
    pair = stored(r)
    assert api_status(amo, pair["access_token"]) == 200
    assert int(pair["expires_at"]) > time.time() + DAY - 60


@pytest.mark.parametrize("how", ["expire", "clock"])
def test_an_expired_access_token_is_refreshed_once_and_the_request_retried(amo, r, how):
    client = oauth_client(amo, r, authorization_code=new_code(amo))
    client.users()
    before = stored(r)
    if how == "expire":
        assert expire_access_tokens(amo) == 1
    else:
        shift_clock(amo, DAY + 1)  # Reglament's own clock still thinks the token is good: amoCRM says 401
    since = mark(amo)

    assert client.account()["subdomain"] == "demo"

    assert answered(amo, since) == [("GET", "/api/v4/account", 401), ("POST", TOKEN_PATH, 200),
                                    ("GET", "/api/v4/account", 200)]
    after = stored(r)
    assert after["refresh_token"] != before["refresh_token"]
    assert after["access_token"] != before["access_token"]
    assert "broken" not in after
    # The rotated pair is the one the sandbox knows; the old refresh token is refused.
    assert refused(refresh(amo, before["refresh_token"]), "Token has been revoked")
    assert api_status(amo, after["access_token"]) == 200
    assert oauth_state(amo)["granted"] == {"authorization_code": 1, "refresh_token": 1}
    # Later calls use the new token without refreshing again.
    since = mark(amo)
    client.users()
    assert answered(amo, since) == [("GET", "/api/v4/users", 200)]


def _run_together(clients, call) -> tuple[list, list]:
    start = threading.Barrier(len(clients))
    results, errors = [], []

    def work(c):
        start.wait()
        try:
            results.append(call(c))
        except Exception as exc:  # reported by the assertions
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, errors


def _slow_refreshes(amo, monkeypatch, delay: float = 0.4) -> None:
    # Hold each token request so the other clients pile up behind the Redis lock meanwhile.
    grant = amo.oauth.grant

    def slow(body):
        time.sleep(delay)
        return grant(body)

    monkeypatch.setattr(amo.oauth, "grant", slow)


def test_concurrent_401s_lead_to_one_refresh(amo, r, monkeypatch):
    oauth_client(amo, r, authorization_code=new_code(amo)).users()
    before = stored(r)
    expire_access_tokens(amo)
    _slow_refreshes(amo, monkeypatch)
    clients = [oauth_client(amo, r) for _ in range(4)]  # separate clients, as in separate processes
    since = mark(amo)

    results, errors = _run_together(clients, lambda c: c.account()["subdomain"])

    assert errors == [] and results == ["demo"] * 4
    log = answered(amo, since)
    assert log.count(("POST", TOKEN_PATH, 200)) == 1 and len([a for a in log if a[1] == TOKEN_PATH]) == 1
    assert log.count(("GET", "/api/v4/account", 401)) == 4  # all of them were refused before the one refresh
    assert oauth_state(amo)["granted"]["refresh_token"] == 1
    after = stored(r)
    assert after["refresh_token"] != before["refresh_token"]
    assert refresh(amo, after["refresh_token"]).status_code == 200  # the stored token is the live one


def test_concurrent_refreshes_of_a_token_about_to_expire_lead_to_one_refresh(amo, r, monkeypatch):
    oauth_client(amo, r, authorization_code=new_code(amo)).users()
    r.hset(PAIR_KEY, "expires_at", int(time.time() + 30))  # inside auth.py's safety margin
    _slow_refreshes(amo, monkeypatch)
    clients = [oauth_client(amo, r) for _ in range(4)]
    since = mark(amo)

    results, errors = _run_together(clients, lambda c: len(c.users()))

    assert errors == [] and results == [4] * 4
    log = answered(amo, since)
    assert [a for a in log if a[1] == TOKEN_PATH] == [("POST", TOKEN_PATH, 200)]
    assert ("GET", "/api/v4/users", 401) not in log  # refreshed before use, never refused


def test_a_refresh_token_spent_elsewhere_stops_the_client_until_a_new_code(amo, r, caplog):
    caplog.set_level(logging.DEBUG)
    client = oauth_client(amo, r, authorization_code=new_code(amo))
    client.users()
    spent = stored(r)
    assert refresh(amo, spent["refresh_token"]).status_code == 200  # e.g. a second installation refreshed
    expire_access_tokens(amo)

    with pytest.raises(AuthError) as caught:
        client.users()
    message = str(caught.value)
    assert "Token has been revoked" in message and "must re-authorize" in message
    assert "broken" in stored(r)
    since = mark(amo)
    with pytest.raises(AuthError):
        oauth_client(amo, r, authorization_code=None).users()
    assert answered(amo, since) == []  # no loop: nothing more was spent at amoCRM

    # An administrator configures a new code: it repairs the pair.
    repaired = oauth_client(amo, r, authorization_code=new_code(amo))
    assert repaired.users()
    assert "broken" not in stored(r)
    # No token value reached a log line or the error.
    for token in (spent["access_token"], spent["refresh_token"], stored(r)["access_token"],
                  stored(r)["refresh_token"], INTEGRATION.client_secret):
        assert token not in caplog.text and token not in message


def test_a_wrong_client_secret_is_reported_in_plain_words_without_the_secret(amo, r):
    with pytest.raises(AuthError) as caught:
        oauth_client(amo, r, client_secret="wrong-secret-value", authorization_code=new_code(amo)).users()
    assert "Check the `client_secret` parameter" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)
