"""Fixtures for the Bitrix24 client tests: clients with instant retries, a mocked HTTP layer,
and the local Bitrix24 sandbox on a clock the test moves."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import responses

from connectors.bitrix24 import Bitrix24Client
from reglament.config import Bitrix24Settings
from sandbox.bitrix24 import Credentials, Portal, PortalServer
from tests.connectors.bitrix24.bodies import webhook_settings
from tests.sandbox_bitrix24.conftest import Clock

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


@pytest.fixture
def clock() -> Clock:
    # Starts at our own time: look-ups compare the portal's stamps with ours, as with a real portal.
    return Clock(time.time())


def in_two_clients(redis_url: str, settings: Bitrix24Settings, call) -> tuple[list, list]:
    """`call(client)` in two threads at once, each with its own client and Redis connection:
    (results, exceptions)."""
    import redis as redis_lib

    start, results, failures = threading.Barrier(2), [], []

    def run():
        conn = redis_lib.Redis.from_url(redis_url)
        try:
            client = Bitrix24Client(ACCOUNT, settings, conn, backoff_base=0.001, backoff_max=0.004)
            start.wait(5)
            results.append(call(client))
        except Exception as exc:  # noqa: BLE001 - returned to the test
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, failures


@pytest.fixture
def portal(clock):
    """The demo portal (sandbox/bitrix24/README.md lists its ids), no bucket unless a test sets one."""
    with PortalServer(Portal(clock=clock), dataclasses.replace(SANDBOX_CREDS), rate=0, event_timeout=2) as server:
        yield server
