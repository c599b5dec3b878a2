"""Shared fixtures: a real redis-server process for the whole run, emptied before each test."""

from __future__ import annotations

import pytest
import redis as redis_lib

from shell.redis_server import RedisServer
from tests.driver import DRIVERS, open_driver


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    # appendfsync "no": tests do not need durability against power loss, only a real server.
    server = RedisServer(tmp_path_factory.mktemp("redis"), fsync="no").start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


SECRET = "s3cret-webhook-path-0123456789"
TOKEN = "amo-long-lived-token-abcdef123456"
ZADARMA_SECRET = "zadarma-api-secret-0001"
MANGO_KEY, MANGO_SALT = "abc123", "mango-salt-0002"


ACCOUNT = {
    "id": "acme",
    "amocrm": {"base_url": "https://acme.amocrm.ru", "long_lived_token": TOKEN},
    "webhook_secret": SECRET,
    "telephony": {"zadarma": {"secret": ZADARMA_SECRET},
                  "mango": {"api_key": MANGO_KEY, "api_salt": MANGO_SALT}},
}
# A Bitrix24 account; its token and member_id are those of tests/fixtures/bitrix24.
B24_SECRET = "b24-webhook-secret-path-0123456789"
B24_TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"
B24_MEMBER = "d897063e1ce7c5eb9f04b9751eef5915"
B24_ACCOUNT = {
    "id": "b24", "crm": "bitrix24", "webhook_secret": B24_SECRET,
    "bitrix24": {"webhook_url": "https://some-domain.bitrix24.com/rest/1/c0de0123/",
                 "application_token": B24_TOKEN, "member_id": B24_MEMBER},
}


def make_settings(**overrides):
    from reglament.config import Settings

    doc = {"public_url": "http://127.0.0.1:8000", "accounts": [ACCOUNT]}
    doc.update(overrides)
    return Settings.model_validate(doc)


@pytest.fixture
def settings():
    return make_settings()


@pytest.fixture
def client(settings, r):
    from app import create_app

    app = create_app(settings, r)
    return app.test_client()


@pytest.fixture(params=list(DRIVERS))
def crm(request, redis_url):
    """The CRM-neutral end-to-end driver (tests/driver) on account "demo", once per CRM it is
    implemented for. `@pytest.mark.skip_crm("bitrix24", reason=...)` skips one CRM's run only;
    `@pytest.mark.crm_options("bitrix24", next_step="task")` sets up one CRM's account so."""
    for mark in request.node.iter_markers("skip_crm"):
        if mark.args[0] == request.param:
            pytest.skip(f"{request.param}: {mark.kwargs['reason']}")
    options = {k: v for mark in request.node.iter_markers("crm_options") if mark.args[0] == request.param
               for k, v in mark.kwargs.items()}
    with open_driver(request.param, "demo", redis_url, **options) as driver:
        yield driver
