"""The common path of every webhook: find the account by its secret, read the body,
parse, store, answer. Each source's blueprint supplies only its parser."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable

import redis
from flask import Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import Rejected
from reglament import keys, metrics
from reglament.config import Account

log = logging.getLogger("reglament.webhook")


class Accounts:
    """Webhook secret → account. The lookup is by the secret's SHA-256 digest, then a
    constant-time comparison, so response timing tells nothing about the secret."""

    def __init__(self, accounts: Iterable[Account]):
        self.by_digest = {hashlib.sha256(a.webhook_secret.encode()).digest(): a for a in accounts}

    def find(self, secret: str) -> Account | None:
        account = self.by_digest.get(hashlib.sha256(secret.encode()).digest())
        if account and hmac.compare_digest(account.webhook_secret.encode(), secret.encode()):
            return account
        return None


def _json(data: dict, status: int = 200) -> Response:
    # Plain json.dumps + Response: Flask's jsonify costs more, and this runs on every webhook.
    return Response(json.dumps(data, ensure_ascii=False), status=status, mimetype="application/json")


def _error(status: int, reason: str) -> Response:
    return _json({"error": reason}, status)


def find_account(secret: str) -> Account | None:
    return current_app.extensions["reglament"].accounts.find(secret)


def _refuse(ctx, account: Account, source: str, body: bytes, content_type: str, e: Rejected) -> Response:
    try:
        ctx.ingress.reject(account.id, source, body, content_type, e.status, e.code, e.reason)
    except redis.RedisError:
        log.error("could not record a rejected webhook: Redis unavailable", extra={"account": account.id})
    log.warning("webhook rejected: %s", e.reason, extra={"account": account.id, "source": source, "outcome": e.code})
    return _error(e.status, e.reason)


def receive(source: str, secret: str, parse: Callable, content_types: tuple[str, ...],
            check: Callable[[Account, object], None] | None = None,
            authenticate: Callable[[Account, bytes], None] | None = None,
            store: Callable[[Account, object, bytes, str], dict | None] | None = None,
            redact: Callable[[bytes], bytes] | None = None):
    """`authenticate(account, body)` verifies a provider's signature before parsing;
    `check(account, parsed)` vets the parsed result. Both raise Rejected. `store(account,
    parsed, body, content_type)` stores a delivery that is not events (a Bitrix24 install)
    in its own single round trip and returns the answer, or None for the common path; it
    may raise Rejected too. `redact(body)` is what is kept of a body, accepted or refused."""
    ctx = current_app.extensions["reglament"]
    account = ctx.accounts.find(secret)
    if account is None:
        try:
            metrics.incr(ctx.redis, keys.GLOBAL, "webhook_rejections_total", source=source, reason="unknown_secret")
        except redis.RedisError:
            pass
        log.warning("webhook with an unknown secret", extra={"source": source})
        return _error(404, "not found")

    content_type = request.mimetype or ""
    body = b""
    try:
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            raise Rejected(f"body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes", 413, "too_large")
        if content_type not in content_types and not (content_type == "" and "" in content_types):
            raise Rejected(f"content type {content_type or 'none'!r} is not {content_types[0]}", 415, "wrong_content_type")
        try:
            if authenticate:
                authenticate(account, body)
            parsed = parse(body, account.id, full=False)
            if check:
                check(account, parsed)
        except Rejected:
            raise
        except redis.RedisError:  # a check that reads Redis (a Bitrix24 installed token)
            log.error("webhook not checked: Redis unavailable", extra={"account": account.id, "source": source})
            return _error(503, "storage unavailable, retry later")
        except Exception:  # a parser bug must not turn into a 5xx: keep the body for replay after a fix
            log.exception("parser failed", extra={"account": account.id, "source": source})
            raise Rejected("body could not be processed; it is kept for inspection", 400, "parser_error")
    except Rejected as e:
        return _refuse(ctx, account, source, redact(body) if redact else body, content_type, e)

    if getattr(parsed, "probe", False):
        log.info("webhook probe answered", extra={"account": account.id, "source": source})
        return _json({"ok": True})
    try:
        answer = store(account, parsed, body, content_type) if store else None
        if answer is not None:
            return _json(answer)
        kept = redact(body) if redact else body   # a token in a delivery is not kept with it
        entry_id, new = ctx.ingress.accept(account.id, source, kept, content_type, parsed.events, parsed.ignored)
    except Rejected as e:
        return _refuse(ctx, account, source, redact(body) if redact else body, content_type, e)
    except redis.RedisError:
        log.error("webhook not stored: Redis unavailable", extra={"account": account.id, "source": source})
        return _error(503, "storage unavailable, retry later")
    # The line per event is written by the dispatcher, off the request path.
    for kind in parsed.ignored:
        log.warning("webhook kind not handled, ignored", extra={"account": account.id, "source": source, "kind": kind})
    return _json({"accepted": sum(new), "duplicates": len(new) - sum(new), "ignored": parsed.ignored,
                  "delivery": entry_id})
