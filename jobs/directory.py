"""Read models of the CRM for the receiver and the dashboard, which never call a connector
themselves: the account's users by id."""

from __future__ import annotations

import redis

from reglament.config import Account


def user_names(account: Account, r: redis.Redis) -> dict[int, str]:
    """The account's CRM users: the connector's cached vocabulary, else one read of it; {}
    when the CRM can't be read (the page shows ids then)."""
    from connectors.amocrm.crm import AmoCRM, Names
    from reglament import keys

    raw = r.get(keys.key(account.id, "amocrm", "names"))
    if raw is not None:
        return Names.from_json(raw).users
    if account.crm != "amocrm" or account.amocrm is None:
        return {}
    try:
        return AmoCRM.for_account(account, r).names().users
    except Exception:  # noqa: BLE001 — the page shows ids then
        return {}
