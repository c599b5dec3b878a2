"""/hooks/bitrix24/<secret>: Bitrix24's outgoing events (event.bind handlers or outgoing webhooks)."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Blueprint

from app.bitrix24 import parser
from app.errors import Rejected
from app.receive import receive

bp = Blueprint("bitrix24", __name__)


def _same_portal(account, parsed: parser.Parsed) -> None:
    """Bitrix24 signs nothing: `auth[application_token]` (shown when the outgoing webhook is
    made, or sent to the application on install) is the proof an event came from the portal
    (CONFIRMED). Compared in constant time; member_id, and the domain when `portal` is
    configured, must match too."""
    settings = account.bitrix24
    if settings is None:
        raise Rejected("Bitrix24 is not configured for this account", 404, "not_configured")
    if not settings.application_token:
        raise Rejected("no bitrix24.application_token is configured for this account, so no event can be trusted",
                       403, "not_configured")
    given = parsed.application_token
    if given is None:
        raise Rejected("body has no auth[application_token]", 403, "wrong_token")
    if not hmac.compare_digest(given.encode(), settings.application_token.encode()):
        raise Rejected("auth[application_token] does not match the configured application_token", 403, "wrong_token")
    if settings.member_id and parsed.member_id != settings.member_id:
        raise Rejected(f"event is from portal member_id {parsed.member_id!r}, not the configured one",
                       403, "account_mismatch")
    # A webhook_url's host may be another name of the portal, so only an explicit `portal` is compared.
    expected = urlsplit(settings.portal).netloc.lower() if settings.portal else None
    if expected and (parsed.domain or "").lower() != expected:
        raise Rejected(f"event is from portal {parsed.domain!r}, not {expected}", 403, "account_mismatch")


@bp.post("/hooks/bitrix24/<secret>")
def hook(secret: str):
    return receive(parser.SOURCE, secret, parser.parse, ("application/x-www-form-urlencoded",), _same_portal)
