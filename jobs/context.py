"""What rule jobs need, set up once per process: the settings, Redis, and per account its
CRM connector and rule executor.

The worker and the scheduler call `set_settings(settings, r)` at start (tests too). It also
registers the task rules' webhook handlers and each account's periodic sweep. A process
that did not call it falls back to the configuration file named by REGLAMENT_CONFIG.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta

import redis

from reglament import rule_settings
from reglament.rule_settings import RuleSettings
from reglament import config, runtime
from reglament.calendar import WorkCalendar
from reglament.crm import CRM

_settings: config.Settings | None = None
_redis: redis.Redis | None = None
_rules: dict[str, RuleSettings] = {}
_calendars: dict[str, WorkCalendar] = {}
# Connectors hold an HTTP session; threads (tests, the CLI) each get their own, made again
# after set_settings (the generation changes).
_local = threading.local()
_generation = 0
_lock = threading.Lock()


def set_settings(settings: config.Settings, r: redis.Redis) -> None:
    global _settings, _redis, _generation
    with _lock:
        _settings, _redis = settings, r
        _rules.clear()
        _calendars.clear()
        _generation += 1
    import jobs.rule_jobs  # noqa: F401 — registers the task rules' webhook handlers
    from jobs import catchup, sweep

    sweep.register_periodic(settings)
    catchup.register_periodic(settings)
    for module in _handler_modules():
        if hasattr(module, "register_periodic"):
            module.register_periodic(settings)
    _warm(settings)


def _handler_modules() -> list:
    import importlib
    import pkgutil

    import jobs.handlers

    return [importlib.import_module(f"jobs.handlers.{m.name}") for m in pkgutil.iter_modules(jobs.handlers.__path__)]


def _warm(settings: config.Settings) -> None:
    """Import and build now what every job needs (about 250 ms), so that the first event
    after a start does not pay for it."""
    import jobs.executor  # noqa: F401
    from connectors import registry

    for acc in settings.accounts:
        if registry.supported(acc):
            registry.kind(acc)  # imports the account's connector

    today = date.today()
    for acc in settings.accounts:
        rules(acc.id)
        cal = calendar(acc.id)
        for d in (today, today.replace(month=12, day=31) + timedelta(days=1)):  # this year's holidays and next
            cal.is_working_date(d)


def settings() -> config.Settings:
    if _settings is None:
        loaded = config.load()
        set_settings(loaded, redis.Redis.from_url(runtime.redis_url(loaded)))
    return _settings


def redis_client() -> redis.Redis:
    settings()
    return _redis


def account(account_id: str) -> config.Account:
    return settings().account(account_id)


def rules(account_id: str) -> RuleSettings:
    with _lock:
        if account_id not in _rules:
            _rules[account_id] = rule_settings.load(account(account_id).rules)
        return _rules[account_id]


def calendar(account_id: str) -> WorkCalendar:
    with _lock:
        if account_id not in _calendars:
            _calendars[account_id] = WorkCalendar.from_account(account(account_id))
        return _calendars[account_id]


def _cached(name: str, account_id: str, make):
    if getattr(_local, "generation", None) != _generation:
        _local.__dict__.clear()
        _local.generation = _generation
    cache = _local.__dict__.setdefault(name, {})
    if account_id not in cache:
        cache[account_id] = make()
    return cache[account_id]


def crm_for(account_id: str) -> CRM:
    """The account's CRM interface (connectors.registry picks the connector by `crm:`)."""
    from connectors import registry

    acc = account(account_id)
    return _cached("crm", account_id, lambda: registry.connector(acc, redis_client(), rules(account_id)))


def executor_for(account_id: str):
    from jobs.executor import Executor

    return _cached("executor", account_id, lambda: Executor(account_id, crm_for(account_id), redis_client(),
                                                             rules(account_id), calendar(account_id)))
