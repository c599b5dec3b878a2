"""The Bitrix24 application's installation as Reglament recorded it: the Redis hash
rg:<account>:bitrix24:install, written by the receiver (app/bitrix24/install.py) when the
portal sends ONAPPINSTALL or ONAPPUNINSTALL, read by the receiver (the application token
events must carry) and by the connector (connectors/bitrix24/auth.py: the refresh token
that seeds the OAuth pair, and whether the application is still installed).

Fields: state (installed | uninstalled), member_id, domain, application_token,
refresh_token (gone once uninstalled), installed_at and uninstalled_at (unix seconds),
version and language_id (data[VERSION], data[LANGUAGE_ID]).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from reglament import keys

INSTALLED, UNINSTALLED = "installed", "uninstalled"


def key(account: str) -> str:
    return keys.key(account, "bitrix24", "install")


@dataclass(frozen=True)
class Install:
    state: str
    member_id: str | None = None
    domain: str | None = None
    application_token: str | None = None
    refresh_token: str | None = None
    installed_at: int | None = None
    uninstalled_at: int | None = None

    @property
    def uninstalled(self) -> bool:
        return self.state == UNINSTALLED

    def __repr__(self) -> str:  # never the tokens
        return f"Install(state={self.state!r}, member_id={self.member_id!r}, domain={self.domain!r})"


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def from_hash(raw: dict) -> Install | None:
    """The record from HGETALL's answer; None when nothing was ever installed."""
    f = {_text(k): _text(v) for k, v in raw.items()}
    if not f.get("state"):
        return None
    number = lambda name: int(f[name]) if f.get(name, "").isdigit() else None  # noqa: E731
    return Install(state=f["state"], member_id=f.get("member_id") or None, domain=f.get("domain") or None,
                   application_token=f.get("application_token") or None,
                   refresh_token=f.get("refresh_token") or None,
                   installed_at=number("installed_at"), uninstalled_at=number("uninstalled_at"))


def read(r: redis.Redis, account: str) -> Install | None:
    return from_hash(r.hgetall(key(account)))
