"""What every process needs at start: the settings, the Redis URL and logging."""

from __future__ import annotations

import os

import redis

from reglament import config, logs


def redis_url(settings: config.Settings) -> str:
    url = os.environ.get("REDIS_URL") or settings.redis_url
    if not url:
        raise config.ConfigError(["no Redis: set REDIS_URL or redis_url (reglament run starts an embedded one)"])
    return url


def start(config_path: str | None) -> tuple[config.Settings, redis.Redis]:
    settings = config.load(config_path)
    logs.setup(settings.log_format, settings.secrets())
    return settings, redis.Redis.from_url(redis_url(settings))
