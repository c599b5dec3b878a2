"""Shared fixtures: a real redis-server process for the whole run, emptied before each test."""

from __future__ import annotations

import pytest
import redis as redis_lib

from reglament.redis_server import RedisServer


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
