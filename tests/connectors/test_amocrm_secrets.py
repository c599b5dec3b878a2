"""No token or client secret ever shows in logs, exception messages or reprs."""

from __future__ import annotations

import json
import logging
import time
import traceback

import pytest
import requests
import responses

from connectors.amocrm import AmoCRMError
from reglament import keys
from tests.connectors.amo_bodies import (
    ALL_SECRETS, BASE, HAL, NEW_ACCESS, NEW_REFRESH, OLD_ACCESS, OLD_REFRESH, PROBLEM, UNAUTHORIZED,
    VALIDATION_ERROR, oauth_settings, page, token_pair,
)


def leaked(text: str) -> list[str]:
    return [s for s in ALL_SECRETS if s in text]


def exception_text(exc: BaseException) -> str:
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc))


@pytest.fixture
def seeded(r):
    r.hset(keys.key("acme", "amocrm", "oauth"), mapping={"access_token": OLD_ACCESS, "refresh_token": OLD_REFRESH,
                                                          "expires_at": int(time.time()) + 86400})


def test_a_whole_troubled_session_leaks_nothing(make_client, mocked, seeded, caplog):
    caplog.set_level(logging.DEBUG)
    # Requests' own logs too: nothing anywhere may carry a token.
    def users(request):
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if token != NEW_ACCESS:
            return 401, {"Content-Type": PROBLEM}, json.dumps(UNAUTHORIZED)
        return 200, HAL, json.dumps(page("users", [{"id": 1}], "/api/v4/users"))

    mocked.add_callback(responses.GET, f"{BASE}/api/v4/users", callback=users)
    mocked.post(f"{BASE}/oauth2/access_token", json=token_pair(NEW_ACCESS, NEW_REFRESH))
    mocked.get(f"{BASE}/api/v4/leads", status=429, headers={"Retry-After": "0"})
    mocked.get(f"{BASE}/api/v4/leads", body=requests.ConnectionError(f"reset; Authorization: Bearer {NEW_ACCESS}"))
    mocked.get(f"{BASE}/api/v4/leads", status=503)
    mocked.patch(f"{BASE}/api/v4/leads", json=VALIDATION_ERROR, status=400, content_type=PROBLEM)

    client = make_client(oauth_settings())
    errors: list[BaseException] = []
    client.users()
    for call in (lambda: client.leads(), lambda: client.update_lead(1, name="x")):
        with pytest.raises(AmoCRMError) as caught:
            call()
        errors.append(caught.value)

    assert "retrying" in caplog.text  # the retries were logged...
    assert leaked(caplog.text) == []  # ...without secrets
    for exc in errors:
        assert leaked(exception_text(exc)) == []
    assert leaked(repr(client) + repr(client.auth) + repr(client.http) + repr(client.http.limiter)) == []


def test_a_refused_refresh_that_echoes_the_token_is_redacted(make_client, mocked, seeded, caplog):
    caplog.set_level(logging.DEBUG)
    mocked.get(f"{BASE}/api/v4/users", json=UNAUTHORIZED, status=401, content_type=PROBLEM)
    mocked.post(f"{BASE}/oauth2/access_token", status=400, content_type=PROBLEM, json={
        "title": "Bad request", "status": 400, "detail": f"refresh token {OLD_REFRESH} is revoked",
        "hint": f"Bearer {OLD_ACCESS}"})

    with pytest.raises(AmoCRMError) as caught:
        make_client(oauth_settings()).users()
    text = exception_text(caught.value)
    assert "is revoked" in text and "re-authorize" in text
    assert leaked(text) == []
    assert "amoCRM refused to refresh" in caplog.text
    assert leaked(caplog.text) == []
