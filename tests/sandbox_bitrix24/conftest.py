"""Fixtures for the Bitrix24 sandbox tests: a running portal, a clock the test moves, a real event receiver.

Tests talk to the sandbox as an outside client would: plain `requests` calls written from
Bitrix24's REST docs (and ../shared/reference/bitrix24.md), never through the sandbox's
Python objects, except where a test sets up data or moves the clock.
"""

from __future__ import annotations

import dataclasses

import pytest
import requests

from sandbox.bitrix24 import Credentials, Portal, PortalServer
from tests.sandbox.conftest import Receiver  # the amoCRM sandbox tests' HTTP receiver

CREDS = Credentials(webhook_user=1, webhook_code="test-code-4f1e", client_id="local.test.app",
                    client_secret="test-client-secret", application_token="app-token-51856fef")


class Clock:
    """A clock the test moves: the bucket, token lifetimes and dates all read it."""

    def __init__(self, now: float = 1_790_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def b24(clock):
    """The demo portal with no rate limit (bucket tests start their own) on a moved clock."""
    with PortalServer(Portal(clock=clock), dataclasses.replace(CREDS), rate=0, event_timeout=2) as server:
        yield server


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def hook(b24, method: str, body: dict | None = None, **kwargs) -> requests.Response:
    """A call through the incoming webhook, JSON body."""
    return requests.post(b24.webhook_url + method, json=body or {}, timeout=10, **kwargs)


def result(b24, method: str, body: dict | None = None):
    r = hook(b24, method, body)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def app_token(b24) -> str:
    """An OAuth access token the documented way: a code, then GET /oauth/token/ (grant_type=authorization_code)."""
    code = requests.post(b24.url + "/_sandbox/oauth/code", timeout=5).json()["code"]
    r = requests.get(b24.url + "/oauth/token/", params={"grant_type": "authorization_code", "code": code,
                                                         "client_id": CREDS.client_id,
                                                         "client_secret": CREDS.client_secret}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def app(b24, token: str, method: str, body: dict | None = None) -> requests.Response:
    """A call as the OAuth application: /rest/<method> with "auth" in the JSON body."""
    return requests.post(f"{b24.url}/rest/{method}", json={**(body or {}), "auth": token}, timeout=10)
