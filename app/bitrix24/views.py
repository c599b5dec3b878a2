"""/hooks/bitrix24/<secret>: Bitrix24's outgoing events (event.bind handlers or outgoing webhooks),
and the application's install and uninstall (app/bitrix24/install.py)."""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app

from app.bitrix24 import parser
from app.bitrix24.install import Installs, portal_host
from app.errors import Rejected
from app.receive import receive

bp = Blueprint("bitrix24", __name__)


def _installs() -> Installs:
    ext = current_app.extensions
    if "bitrix24.installs" not in ext:
        ctx = ext["reglament"]
        ext.setdefault("bitrix24.installs", Installs(ctx.redis, ctx.ingress))
    return ext["bitrix24.installs"]


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _same_portal(account, parsed: parser.Parsed) -> None:
    """Bitrix24 signs nothing: `auth[application_token]` (shown when the outgoing webhook is
    made, or sent to the application on install) is the proof an event came from the portal
    (CONFIRMED). It is compared in constant time with the configured token, else the
    installed one; member_id (configured, else installed) and the domain when `portal` is
    configured must match too. An install has its own rule, checked as it is stored."""
    settings = account.bitrix24
    if settings is None:
        raise Rejected("Bitrix24 is not configured for this account", 404, "not_configured")
    if parsed.lifecycle == "ONAPPINSTALL":
        return
    installs = _installs()
    token, member = installs.known(account)
    if not token:
        raise Rejected("no bitrix24.application_token is configured or installed for this account, so no event "
                       "can be trusted", 403, "not_configured")
    given = parsed.application_token
    if given is None:
        raise Rejected("body has no auth[application_token]", 403, "wrong_token")
    if not _same(given, token) and not settings.application_token:
        token, member = installs.known(account, fresh=True)   # a reinstall may have brought a new one
    if not token or not _same(given, token):
        where = "configured" if settings.application_token else "installed"
        raise Rejected(f"auth[application_token] does not match the {where} application_token", 403, "wrong_token")
    if member and parsed.member_id != member:
        where = "configured" if settings.member_id else "installed"
        raise Rejected(f"event is from portal member_id {parsed.member_id!r}, not the {where} one",
                       403, "account_mismatch")
    # A webhook_url's host may be another name of the portal, so only an explicit `portal` is compared.
    expected = portal_host(account)
    if expected and (parsed.domain or "").lower() != expected:
        raise Rejected(f"event is from portal {parsed.domain!r}, not {expected}", 403, "account_mismatch")


def _lifecycle(account, parsed: parser.Parsed, body: bytes, content_type: str) -> dict | None:
    """Store an install or uninstall in its one round trip; None for every other event."""
    if parsed.lifecycle is None:
        return None
    if parsed.lifecycle == "ONAPPINSTALL":
        return _installs().install(account, parsed, body, content_type, parser.SOURCE)
    if not account.bitrix24.oauth:
        raise Rejected("this account uses an incoming webhook (bitrix24.webhook_url); no application is installed "
                       "to uninstall", 403, "not_configured")
    return _installs().uninstall(account, body, content_type, parser.SOURCE)


@bp.post("/hooks/bitrix24/<secret>")
def hook(secret: str):
    return receive(parser.SOURCE, secret, parser.parse, ("application/x-www-form-urlencoded",), _same_portal,
                   store=_lifecycle, redact=parser.redact)
