"""OAuth 2.0 and long-lived tokens: refresh on 401 with rotation, one refresh across processes, clear failures."""

from __future__ import annotations

import json
import threading
import time

import pytest
import responses

from connectors.amocrm import AuthError
from reglament import keys
from tests.connectors.amo_bodies import (
    AUTH_CODE, BASE, CLIENT_SECRET, HAL, NEW_ACCESS, NEW_REFRESH, OLD_ACCESS, OLD_REFRESH, PROBLEM,
    REFRESH_REFUSED, UNAUTHORIZED, oauth_settings, page, token_pair,
)

TOKEN_URL = f"{BASE}/oauth2/access_token"
PAIR_KEY = keys.key("acme", "amocrm", "oauth")


def stored(r) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(PAIR_KEY).items()}


def seed(r, access=OLD_ACCESS, refresh=OLD_REFRESH, expires_in=86400):
    r.hset(PAIR_KEY, mapping={"access_token": access, "refresh_token": refresh,
                              "expires_at": int(time.time() + expires_in)})


class FakeAmo:
    """API answering 401 to any token but the current one; token endpoint rotating the pair."""

    def __init__(self, mocked, r, *, valid=NEW_ACCESS, token_status=200, token_delay=0.0):
        self.r = r
        self.valid = valid
        self.token_bodies: list[dict] = []
        self.api_tokens: list[str] = []
        self.stored_when_used: list[dict] = []
        self.token_status = token_status
        self.token_delay = token_delay
        self.lock = threading.Lock()
        mocked.add_callback(responses.GET, f"{BASE}/api/v4/users", callback=self.users)
        mocked.add_callback(responses.POST, TOKEN_URL, callback=self.token)

    def users(self, request):
        token = request.headers["Authorization"].removeprefix("Bearer ")
        with self.lock:
            self.api_tokens.append(token)
        if token != self.valid:
            return 401, {"Content-Type": PROBLEM}, json.dumps(UNAUTHORIZED)
        self.stored_when_used.append(stored(self.r))
        return 200, HAL, json.dumps(page("users", [{"id": 1}], "/api/v4/users"))

    def token(self, request):
        with self.lock:
            self.token_bodies.append(json.loads(request.body))
        time.sleep(self.token_delay)  # hold the refresh long enough for others to pile up behind the lock
        if self.token_status != 200:
            return self.token_status, {"Content-Type": PROBLEM}, json.dumps(REFRESH_REFUSED)
        return 200, {"Content-Type": "application/json"}, json.dumps(token_pair(NEW_ACCESS, NEW_REFRESH))


def test_401_refreshes_once_rotates_and_stores_the_new_pair_before_use(make_client, mocked, r):
    seed(r)
    amo = FakeAmo(mocked, r)
    users = make_client(oauth_settings()).users()

    assert users == [{"id": 1}]
    assert amo.api_tokens == [OLD_ACCESS, NEW_ACCESS]
    assert amo.token_bodies == [{"client_id": "client-id-1", "client_secret": CLIENT_SECRET,
                                 "redirect_uri": "https://reglament.example/oauth",
                                 "grant_type": "refresh_token", "refresh_token": OLD_REFRESH}]
    pair = stored(r)
    assert (pair["access_token"], pair["refresh_token"]) == (NEW_ACCESS, NEW_REFRESH)
    assert int(pair["expires_at"]) > time.time() + 80000
    # When the new access token was first used, Redis already held the new pair.
    assert amo.stored_when_used[0]["refresh_token"] == NEW_REFRESH


def test_concurrent_401s_refresh_only_once(make_client, mocked, r):
    seed(r)
    amo = FakeAmo(mocked, r, token_delay=0.3)
    clients = [make_client(oauth_settings()) for _ in range(6)]  # separate clients, as in separate processes
    start = threading.Barrier(len(clients))
    results, errors = [], []

    def work(c):
        start.wait()
        try:
            results.append(c.users())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert errors == []
    assert results == [[{"id": 1}]] * 6
    assert len(amo.token_bodies) == 1
    assert stored(r)["refresh_token"] == NEW_REFRESH


def test_a_refused_refresh_raises_auth_error_once_and_does_not_loop(make_client, mocked, r):
    seed(r)
    amo = FakeAmo(mocked, r, token_status=400)
    client = make_client(oauth_settings())

    with pytest.raises(AuthError) as caught:
        client.users()
    assert "must re-authorize" in str(caught.value)
    assert "Token has been revoked" in str(caught.value)
    # Every later call fails fast without spending anything at amoCRM.
    with pytest.raises(AuthError):
        make_client(oauth_settings()).users()
    assert len(amo.token_bodies) == 1
    assert amo.api_tokens == [OLD_ACCESS]


def test_first_pair_comes_from_the_authorization_code_and_is_exchanged_once(make_client, mocked, r):
    amo = FakeAmo(mocked, r)
    make_client(oauth_settings(authorization_code=AUTH_CODE)).users()
    make_client(oauth_settings(authorization_code=AUTH_CODE)).users()

    assert [b["grant_type"] for b in amo.token_bodies] == ["authorization_code"]
    assert amo.token_bodies[0]["code"] == AUTH_CODE
    assert amo.api_tokens == [NEW_ACCESS, NEW_ACCESS]
    assert stored(r)["refresh_token"] == NEW_REFRESH


def test_a_new_authorization_code_repairs_a_broken_pair(make_client, mocked, r):
    seed(r)
    r.hset(PAIR_KEY, "broken", "amoCRM rejected the request (HTTP 400)")
    amo = FakeAmo(mocked, r)
    with pytest.raises(AuthError):
        make_client(oauth_settings()).users()
    make_client(oauth_settings(authorization_code=AUTH_CODE)).users()
    assert [b["grant_type"] for b in amo.token_bodies] == ["authorization_code"]
    assert "broken" not in stored(r)


def test_no_pair_and_nothing_configured_asks_for_authorization(make_client, mocked, r):
    FakeAmo(mocked, r)
    with pytest.raises(AuthError, match="no OAuth token pair"):
        make_client(oauth_settings()).users()
    assert len(mocked.calls) == 0


def test_a_configured_refresh_token_seeds_an_empty_store(make_client, mocked, r):
    amo = FakeAmo(mocked, r)
    make_client(oauth_settings(refresh_token=OLD_REFRESH)).users()
    assert amo.token_bodies[0]["refresh_token"] == OLD_REFRESH
    assert stored(r)["refresh_token"] == NEW_REFRESH


def test_an_expiring_token_is_refreshed_before_use(make_client, mocked, r):
    seed(r, expires_in=30)
    amo = FakeAmo(mocked, r)
    make_client(oauth_settings()).users()
    assert amo.api_tokens == [NEW_ACCESS]
    assert len(amo.token_bodies) == 1


def test_401_right_after_a_refresh_is_an_auth_error(make_client, mocked, r):
    seed(r)
    amo = FakeAmo(mocked, r, valid="nothing-is-valid")
    with pytest.raises(AuthError, match="freshly refreshed"):
        make_client(oauth_settings()).users()
    assert len(amo.token_bodies) == 1
    assert len(amo.api_tokens) == 2


def test_a_rejected_long_lived_token_is_an_auth_error_without_refresh(client, mocked):
    mocked.get(f"{BASE}/api/v4/users", json=UNAUTHORIZED, status=401, content_type=PROBLEM)
    with pytest.raises(AuthError, match="new long-lived token"):
        client.users()
    assert len(mocked.calls) == 1


def test_the_refresh_lock_outlives_the_token_request_with_all_its_retries(r):
    """A lock that lapsed while the token request still retried would let a second process
    spend the same refresh token, and amoCRM would revoke the pair."""
    from connectors.amocrm.auth import OAuthTokens
    from connectors.http import HttpClient

    http = HttpClient(r, "acme", "amocrm", timeout=(5.0, 30.0), max_attempts=5, retry_after_max=120.0)
    assert http.longest_request() == 5 * 35 + 4 * 120
    tokens = OAuthTokens(r, "acme", BASE, oauth_settings().oauth, http)
    assert tokens.lock_ttl > http.longest_request()
    quick = HttpClient(r, "acme", "amocrm", timeout=(1.0, 1.0), max_attempts=1)
    assert OAuthTokens(r, "acme", BASE, oauth_settings().oauth, quick).lock_ttl == 120.0  # never below the default
