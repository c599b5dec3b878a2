"""What every process needs at start: the settings, the Redis URL and logging."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import redis

from reglament import config, logs

ADDRESS = "address"  # the file in an embedded redis-server's directory that holds its URL (shell.redis_server)


def embedded_dir(settings: config.Settings) -> Path:
    """Where `reglament run` keeps its embedded redis-server's data and published address."""
    return Path(settings.data_dir) / "redis"


def published(data_dir: str | Path) -> str | None:
    """The URL a running embedded redis-server published in `data_dir`, if any."""
    try:
        return (Path(data_dir) / ADDRESS).read_text().strip() or None
    except OSError:
        return None


def redis_url(settings: config.Settings) -> str:
    """REDIS_URL, else the configuration's redis_url, else the address the embedded
    redis-server of a `reglament run` on the same data directory published."""
    url = os.environ.get("REDIS_URL") or settings.redis_url or published(embedded_dir(settings))
    if not url:
        raise config.ConfigError([f"no Redis: nothing is running on {settings.data_dir}; start `reglament run` "
                                  "(it starts an embedded one), or set REDIS_URL or redis_url"])
    return url


def where(url: str) -> str:
    """A Redis URL as it may be shown: host and port or socket, never a password."""
    parts = urlsplit(url)
    return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"


def connect(settings: config.Settings) -> redis.Redis:
    """A client to the settings' Redis, checked: a ConfigError in one line when it does not answer."""
    url = redis_url(settings)
    r = redis.Redis.from_url(url)
    try:
        r.ping()
    except redis.RedisError as e:
        hint = ("is `reglament run` still running?" if not (os.environ.get("REDIS_URL") or settings.redis_url)
                else "check REDIS_URL or redis_url")
        raise config.ConfigError([f"Redis at {where(url)} does not answer ({type(e).__name__}): {hint}"])
    return r


def start(config_path: str | None) -> tuple[config.Settings, redis.Redis]:
    settings = config.load(config_path)
    logs.setup(settings.log_format, settings.secrets())
    return settings, redis.Redis.from_url(redis_url(settings))
