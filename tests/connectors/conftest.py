"""Fixtures for connector tests: amoCRM clients with instant retries, and a mocked HTTP layer."""

from __future__ import annotations

import pytest
import responses

from connectors.amocrm import AmoCRMClient
from reglament.config import AmoCRMSettings
from tests.connectors.amo_bodies import ACCOUNT, long_lived_settings


@pytest.fixture
def sleeps() -> list[float]:
    """Waits the retry logic asked for; recorded instead of slept."""
    return []


@pytest.fixture
def make_client(r, sleeps):
    def make(settings: AmoCRMSettings | None = None, **kw) -> AmoCRMClient:
        opts = dict(backoff_base=0.001, backoff_max=0.004, sleep=sleeps.append, max_attempts=4)
        opts.update(kw)
        return AmoCRMClient(ACCOUNT, settings or long_lived_settings(), r, **opts)
    return make


@pytest.fixture
def client(make_client) -> AmoCRMClient:
    return make_client()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
