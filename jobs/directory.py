"""Read models of the CRM for the receiver and the dashboard, which never call a connector
themselves: the account's users by id."""

from __future__ import annotations

import redis

from reglament.config import Account


def user_names(account: Account, r: redis.Redis) -> dict[int, str]:
    """The account's CRM users (the connector caches them); {} when the CRM can't be read
    (the page shows ids then)."""
    from connectors import registry

    if not registry.supported(account):
        return {}
    try:
        return registry.connector(account, r).users()
    except Exception:  # noqa: BLE001 — the page shows ids then
        return {}
