"""Fixtures for the Bitrix24 client tests: clients with instant retries, a mocked HTTP layer,
and the local Bitrix24 sandbox on a clock the test moves."""

from __future__ import annotations

import dataclasses
import time

import pytest
import responses

from connectors.bitrix24 import Bitrix24Client
from reglament.config import Bitrix24Settings
from sandbox.bitrix24 import Credentials, Portal, PortalServer
from tests.connectors.bitrix24.bodies import webhook_settings

ACCOUNT = "acme"
SANDBOX_CREDS = Credentials(webhook_user=1, webhook_code="sandbox-code-7c1d9e", client_id="local.reglament.test",
                            client_secret="sandbox-client-secret-5f2a", application_token="sandbox-app-token-0b4e")


@pytest.fixture
def sleeps() -> list[float]:
    """Waits the retry logic asked for; recorded instead of slept."""
    return []


@pytest.fixture
def make_b24(r, sleeps):
    def make(settings: Bitrix24Settings | None = None, **kw) -> Bitrix24Client:
        opts = dict(backoff_base=0.001, backoff_max=0.004, sleep=sleeps.append, max_attempts=4)
        opts.update(kw)
        return Bitrix24Client(ACCOUNT, settings or webhook_settings(), r, **opts)
    return make


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


class Clock:
    """The sandbox portal's clock: its bucket drains and its tokens expire as the test moves it."""

    def __init__(self, now: float | None = None):
        # Starts at our own time: look-ups compare the portal's stamps with ours, as with a real portal.
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def portal(clock):
    """The demo portal (sandbox/bitrix24/README.md lists its ids), no bucket unless a test sets one."""
    with PortalServer(Portal(clock=clock), dataclasses.replace(SANDBOX_CREDS), rate=0, event_timeout=2) as server:
        yield server
