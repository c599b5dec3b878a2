"""The Bitrix24 application installed into a portal, or removed: ONAPPINSTALL and
ONAPPUNINSTALL posted to the account's hook URL (the application's handler URL).

When an administrator installs the application, the portal posts ONAPPINSTALL to its
handler once, form-encoded (CONFIRMED, api-reference/common/events/on-app-install.md):
`auth[refresh_token]` (the only event that brings one the application can keep),
`auth[application_token]` (every later event carries it), `auth[member_id]`,
`auth[domain]`, with `data[VERSION]`, `data[LANGUAGE_ID]`. ONAPPUNINSTALL carries only
domain, endpoints, member_id and the application token (on-app-uninstall.md).

Trust rule. The secret in the URL authenticates the request (the receiver found the
account by it). An install is accepted when
  - the account is configured as an OAuth application (`bitrix24.oauth`),
  - `auth[domain]` is the configured `portal`, and
  - either no application token is known yet (neither configured nor stored by an earlier
    install), or the event's member_id is the known one (configured, else stored): a reinstall.
Otherwise 403 with the reason. The check and the write are one Lua step, so two installs
at once cannot both pass as "the first". ONAPPUNINSTALL is checked as every other event is,
against the known application token (the reference: for it, the only check), and marks
the installation uninstalled; the connector then refuses to call the portal and says an
administrator must install the application again.

What is stored is the record of reglament/bitrix24_install.py, in the same round trip as
the delivery's entry in the inbox; that entry, the rejected-bodies stream and the log never
hold a token (parser.redact masks them).

The application token events are checked against: the configured one, else the installed
one. Accounts with a configured token never read Redis for it; for the others a found
token is kept in the process for TOKEN_CACHE_SECONDS (a missing one never is, and a token
that does not match is looked up again before the event is refused, so a reinstall's new
token is taken at once).
"""

from __future__ import annotations

import hmac
import logging
import time
from urllib.parse import urlsplit

import redis

from app.bitrix24.parser import redact
from app.errors import Rejected
from app.ingress import Ingress, ScriptCaller
from reglament import bitrix24_install, keys, metrics
from reglament.config import Account

log = logging.getLogger("reglament.webhook")

TOKEN_CACHE_SECONDS = 60.0

# KEYS: install record, inbox, metrics. ARGV: 1 a token is configured (1/0), 2 the configured
# member_id or '', 3 the event's member_id, 4 the inbox's MINID, 5 source, 6 body, 7 content
# type, 8 now (ms), 9 the counter's field, 10... the record's fields and values.
INSTALL = """
if ARGV[1] == '1' or redis.call('HEXISTS', KEYS[1], 'application_token') == 1 then
  local member = ARGV[2]
  if member == '' then member = redis.call('HGET', KEYS[1], 'member_id') or '' end
  if member == '' then return {0, 'unknown'} end
  if member ~= ARGV[3] then return {0, member} end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 10))
local id = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[4], '*',
  'source', ARGV[5], 'body', ARGV[6], 'ct', ARGV[7], 'at', ARGV[8], 'new', '1')
redis.call('HINCRBY', KEYS[3], ARGV[9], 1)
return {1, id}
"""

# KEYS as above. ARGV: 1 now (s), 2 the inbox's MINID, 3 source, 4 body, 5 content type, 6 now (ms), 7 the counter's field.
UNINSTALL = """
redis.call('HSET', KEYS[1], 'state', 'uninstalled', 'uninstalled_at', ARGV[1])
redis.call('HDEL', KEYS[1], 'refresh_token')
local id = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*',
  'source', ARGV[3], 'body', ARGV[4], 'ct', ARGV[5], 'at', ARGV[6], 'new', '')
redis.call('HINCRBY', KEYS[3], ARGV[7], 1)
return id
"""


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def portal_host(account: Account) -> str | None:
    """The configured portal's host[:port], as `auth[domain]` names it."""
    portal = account.bitrix24.portal if account.bitrix24 else None
    return urlsplit(portal).netloc.lower() if portal else None


class Installs:
    """One per receiver app: the two scripts and the short cache of installed tokens."""

    def __init__(self, r: redis.Redis, ingress: Ingress):
        self.r = r
        self.ingress = ingress
        self._install = ScriptCaller(r, INSTALL)
        self._uninstall = ScriptCaller(r, UNINSTALL)
        self._tokens: dict[str, tuple[str, str | None, float]] = {}   # account → (token, member_id, until)

    def known(self, account: Account, fresh: bool = False) -> tuple[str | None, str | None]:
        """(application token, member_id) events must carry: the configured ones, else the
        installed ones. `fresh` skips the cache."""
        settings = account.bitrix24
        if settings.application_token:
            return settings.application_token, settings.member_id
        cached = self._tokens.get(account.id)
        if cached and not fresh and cached[2] > time.monotonic():
            return cached[0], cached[1]
        found = bitrix24_install.read(self.r, account.id)
        if not found or not found.application_token:
            self._tokens.pop(account.id, None)
            return None, settings.member_id
        member = settings.member_id or found.member_id
        self._tokens[account.id] = (found.application_token, member, time.monotonic() + TOKEN_CACHE_SECONDS)
        return found.application_token, member

    # ------------------------------------------------------------------ install

    def install(self, account: Account, parsed, body: bytes, content_type: str, source: str) -> dict:
        settings = account.bitrix24
        if not settings.oauth:
            raise Rejected("this account uses an incoming webhook (bitrix24.webhook_url); installing an application "
                           "needs bitrix24.oauth with its portal", 403, "not_configured")
        expected = portal_host(account)
        if (parsed.domain or "").lower() != expected:
            raise Rejected(f"install is from portal {parsed.domain!r}, not {expected}", 403, "account_mismatch")
        for name in ("member_id", "application_token", "refresh_token"):
            if not getattr(parsed, name):
                raise Rejected(f"ONAPPINSTALL has no auth[{name}]")
        now_ms = int(time.time() * 1000)
        record = {"state": bitrix24_install.INSTALLED, "member_id": parsed.member_id, "domain": parsed.domain.lower(),
                  "application_token": parsed.application_token, "refresh_token": parsed.refresh_token,
                  "installed_at": now_ms // 1000, "version": parsed.version or "",
                  "language_id": parsed.language_id or ""}
        done, answer = self._install(
            keys=[bitrix24_install.key(account.id), keys.inbox(account.id), keys.metrics(account.id)],
            args=["1" if settings.application_token else "0", settings.member_id or "", parsed.member_id,
                  now_ms - self.ingress.retention_ms, source, redact(body), content_type, now_ms,
                  metrics.field("webhooks_total", kind="app.installed", outcome="accepted", source=source),
                  *(x for pair in record.items() for x in pair)])
        if not done:
            known = _text(answer)
            raise Rejected("an application token is known for this account but no member_id to recognise a "
                           "reinstall by; configure bitrix24.member_id" if known == "unknown" else
                           f"install is from portal member_id {parsed.member_id!r}, but the application is "
                           f"installed in member_id {known!r}", 403, "account_mismatch")
        if not settings.application_token:
            self._tokens[account.id] = (parsed.application_token, settings.member_id or parsed.member_id,
                                        time.monotonic() + TOKEN_CACHE_SECONDS)
        log.info("Bitrix24 application installed in %s (member_id %s)%s", parsed.domain, parsed.member_id,
                 "" if settings.oauth.refresh_token else "; its refresh token seeds the OAuth pair",
                 extra={"account": account.id, "source": source})
        if settings.application_token and not hmac.compare_digest(settings.application_token.encode(),
                                                                  parsed.application_token.encode()):
            log.warning("the installed application's token differs from bitrix24.application_token, so its events "
                        "will be refused: remove that setting or put the new token there",
                        extra={"account": account.id, "source": source})
        return {"installed": True, "delivery": _text(answer)}

    # ------------------------------------------------------------------ uninstall

    def uninstall(self, account: Account, body: bytes, content_type: str, source: str) -> dict:
        now_ms = int(time.time() * 1000)
        entry_id = self._uninstall(
            keys=[bitrix24_install.key(account.id), keys.inbox(account.id), keys.metrics(account.id)],
            args=[now_ms // 1000, now_ms - self.ingress.retention_ms, source, redact(body), content_type, now_ms,
                  metrics.field("webhooks_total", kind="app.uninstalled", outcome="accepted", source=source)])
        log.warning("Bitrix24 application uninstalled from the portal: no calls to it until an administrator "
                    "installs the application again", extra={"account": account.id, "source": source})
        return {"uninstalled": True, "delivery": _text(entry_id)}

