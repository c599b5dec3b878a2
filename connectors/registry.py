"""The one place that knows which connector serves `crm: <name>` in an account's
configuration: the CRM interface (reglament.crm.CRM), its errors, and its webhook
subscription. Everything above asks here; nothing else imports a CRM's connector.
(A CRM's webhook parser is app/<crm>/parser.py, found by source in app/parsers.py; its
local sandbox is sandbox/<crm>/, started by the shell.)"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import redis

from connectors.http import ConnectorError
from reglament.config import Account
from reglament.crm import CRM
from reglament.rule_settings import RuleSettings


@dataclass(frozen=True)
class CrmKind:
    name: str
    connector: Callable[..., CRM]                   # (account, redis, rule settings, **client options) → CRM
    register_webhooks: Callable[[Account, redis.Redis, str], str]    # → what was done, in one line
    unregister_webhooks: Callable[[Account, redis.Redis, str], str]
    budget_key: Callable[[Account], str]  # the Redis key of the account's request budget (connectors/ratelimit.py)


def _amocrm() -> CrmKind:
    from connectors.amocrm import AmoCRMClient, webhooks
    from connectors.amocrm.client import budget_key
    from connectors.amocrm.crm import AmoCRM

    def register(account: Account, r: redis.Redis, url: str) -> str:
        hook = webhooks.register(AmoCRMClient(account.id, account.amocrm, r), url)
        return f"subscribed to {len(hook.get('settings') or [])} events"

    def unregister(account: Account, r: redis.Redis, url: str) -> str:
        removed = webhooks.unregister(AmoCRMClient(account.id, account.amocrm, r), url)
        return "removed" if removed else "no subscription was there"

    return CrmKind("amocrm", AmoCRM.for_account, register, unregister, lambda account: budget_key(account.id))


def _bitrix24() -> CrmKind:
    from connectors.bitrix24 import Bitrix24Client, webhooks
    from connectors.bitrix24.client import budget_key
    from connectors.bitrix24.crm import Bitrix24CRM

    def register(account: Account, r: redis.Redis, url: str) -> str:
        return webhooks.register(Bitrix24Client(account.id, account.bitrix24, r), url)

    def unregister(account: Account, r: redis.Redis, url: str) -> str:
        return webhooks.unregister(Bitrix24Client(account.id, account.bitrix24, r), url)

    return CrmKind("bitrix24", Bitrix24CRM.for_account, register, unregister,
                   lambda account: budget_key(account.bitrix24))


KINDS: dict[str, Callable[[], CrmKind]] = {"amocrm": _amocrm, "bitrix24": _bitrix24}


class NoConnector(ConnectorError):
    """An account whose `crm:` has no connector in this version."""


def kind(account: Account) -> CrmKind:
    make = KINDS.get(account.crm)
    if make is None:
        raise NoConnector(f"account {account.id}: crm {account.crm!r} has no connector in this version "
                          f"(available: {', '.join(sorted(KINDS))})")
    return make()


def connector(account: Account, r: redis.Redis, settings: RuleSettings | None = None, **client_options) -> CRM:
    """The account's CRM interface."""
    return kind(account).connector(account, r, settings, **client_options)


def supported(account: Account) -> bool:
    return account.crm in KINDS


def budget_key(account: Account) -> str:
    """The Redis key of the account's request budget, which also says when and why it is paused."""
    return kind(account).budget_key(account)
