"""Credentials for amoCRM: a long-lived token, or an OAuth 2.0 token pair that rotates.

OAuth (POST {base_url}/oauth2/access_token):
- The pair lives in the Redis hash rg:<account>:amocrm:oauth (access_token, refresh_token,
  expires_at, code_digest, broken), so every process uses the same pair.
- A refresh token works once: each refresh returns a new pair and the old refresh token
  dies. So the new pair is written to Redis BEFORE the access token is used, and only
  one process refreshes at a time (a Redis lock); the others wait and re-read the pair.
- The first pair comes from the configured authorization code (valid 20 minutes, once)
  or, failing that, from a configured refresh token.
- When amoCRM refuses a refresh or a code, the pair is marked broken and AuthError is
  raised, saying an administrator must re-authorize; nobody retries it in a loop. A new
  authorization code in the configuration repairs it.

Token values never appear in logs, exception messages or reprs.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import redis

from connectors.amocrm.errors import AmoCRMError, AmoCRMGaveUp, AuthError, describe
from connectors.http import AmbiguousFailure, GaveUp, HttpClient
from reglament import keys
from reglament.config import OAuth

log = logging.getLogger(__name__)

# Refresh this long before the access token expires, so a request never races its expiry.
EXPIRY_MARGIN = 300
REAUTHORIZE = ("An administrator must re-authorize the amoCRM integration and put the new "
               "authorization_code into the configuration.")

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TokenProvider(Protocol):
    can_refresh: bool

    def access_token(self) -> str: ...

    def refresh(self, stale: str) -> str: ...

    def secrets(self) -> list[str]: ...


class LongLivedToken:
    """A token an admin generated for a private integration (1 day to 5 years); it cannot be refreshed."""

    can_refresh = False

    def __init__(self, token: str):
        self._token = token

    def access_token(self) -> str:
        return self._token

    def refresh(self, stale: str) -> str:
        raise AuthError("amoCRM rejected the long-lived token (HTTP 401): it has expired or was revoked. "
                        "An administrator must generate a new long-lived token for the integration "
                        "and put it into the configuration.")

    def secrets(self) -> list[str]:
        return [self._token]

    def __repr__(self) -> str:
        return "LongLivedToken(***)"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class OAuthTokens:
    """The rotating OAuth pair of one account, shared by all processes through Redis."""

    can_refresh = True

    def __init__(self, r: redis.Redis, account: str, base_url: str, oauth: OAuth, http: HttpClient, *,
                 lock_ttl: float = 120.0, poll: float = 0.05, sleep: Callable[[float], None] = time.sleep):
        self.r = r
        self.account = account
        self.url = base_url.rstrip("/") + "/oauth2/access_token"
        self._oauth = oauth
        self.http = http
        self.key = keys.key(account, "amocrm", "oauth")
        self.lock_key = keys.key(account, "amocrm", "oauth", "lock")
        # The lock must outlive the token request with all its retries: a lock that lapsed
        # mid-refresh would let a second process spend the same refresh token, and amoCRM
        # then revokes the pair.
        self.lock_ttl = max(lock_ttl, http.longest_request() + 10)
        self.poll = poll
        self.sleep = sleep
        self._release = r.register_script(RELEASE)
        self._seen: list[str] = []  # tokens this process has handled, for redaction

    def __repr__(self) -> str:
        return f"OAuthTokens(account={self.account!r})"

    # -- public ------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token, obtaining or refreshing the pair first when needed."""
        return self._obtain(stale=None)

    def refresh(self, stale: str) -> str:
        """A new access token after amoCRM rejected `stale`; refreshes at most once across processes."""
        return self._obtain(stale=stale)

    def secrets(self) -> list[str]:
        o = self._oauth
        return [s for s in (o.client_secret, o.authorization_code, o.refresh_token, *self._seen) if s]

    # -- internals ---------------------------------------------------------------------

    def _load(self) -> dict[str, str]:
        pair = {_text(k): _text(v) for k, v in self.r.hgetall(self.key).items()}
        self._remember(pair.get("access_token"), pair.get("refresh_token"))
        return pair

    def _remember(self, *tokens: str | None) -> None:
        for t in tokens:
            if t and t not in self._seen:
                self._seen = [*self._seen[-9:], t]

    def _new_code(self, pair: dict[str, str]) -> str | None:
        code = self._oauth.authorization_code
        return code if code and _digest(code) != pair.get("code_digest") else None

    def _current(self, pair: dict[str, str], stale: str | None) -> str | None:
        """The stored access token if it is usable and not the one amoCRM just rejected."""
        if pair.get("broken"):
            if self._new_code(pair):
                return None  # an admin configured a new code: exchange it
            raise AuthError(f"amoCRM refused our OAuth credentials earlier ({pair.get('broken')}). {REAUTHORIZE}")
        token = pair.get("access_token")
        if not token or token == stale:
            return None
        expires_at = float(pair.get("expires_at") or 0)
        if expires_at and expires_at - time.time() < EXPIRY_MARGIN:
            return None
        return token

    def _obtain(self, stale: str | None) -> str:
        deadline = time.monotonic() + self.lock_ttl + 5
        while True:
            token = self._current(self._load(), stale)
            if token:
                return token
            lock_id = uuid.uuid4().hex
            if self.r.set(self.lock_key, lock_id, nx=True, px=int(self.lock_ttl * 1000)):
                try:
                    pair = self._load()  # someone may have finished just before we took the lock
                    return self._current(pair, stale) or self._renew(pair)
                finally:
                    self._release(keys=[self.lock_key], args=[lock_id])
            if time.monotonic() > deadline:
                raise AmoCRMError("timed out waiting for another process to refresh the amoCRM token")
            self.sleep(self.poll)

    def _renew(self, pair: dict[str, str]) -> str:
        """Get a new pair (holding the lock): exchange a new code, else spend the refresh token."""
        o = self._oauth
        body = {"client_id": o.client_id, "client_secret": o.client_secret, "redirect_uri": o.redirect_uri}
        code = self._new_code(pair)
        if code and (pair.get("broken") or not pair.get("refresh_token")):
            return self._grant(pair, {**body, "grant_type": "authorization_code", "code": code}, code)
        # The configured refresh token only seeds an empty store; afterwards it is stale.
        refresh_token = pair.get("refresh_token") or (None if pair else o.refresh_token)
        if not refresh_token:
            raise AuthError(f"amoCRM has no OAuth token pair for this account yet. {REAUTHORIZE}")
        return self._grant(pair, {**body, "grant_type": "refresh_token", "refresh_token": refresh_token}, None)

    def _grant(self, pair: dict[str, str], body: dict, code: str | None) -> str:
        kind = "exchange the authorization code" if code else "refresh the OAuth token"
        try:
            resp = self.http.request("POST", self.url, json=body, idempotent=False)
        except (GaveUp, AmbiguousFailure) as exc:
            # Not the admin's fault; the next call tries again (and learns if the token was spent).
            raise AmoCRMGaveUp(self.http.system, "POST", "/oauth2/access_token", self.http.max_attempts,
                               f"could not {kind}: {exc}") from None
        data = _json(resp)
        ok = resp.status_code == 200 and isinstance(data, dict)
        if ok and data.get("access_token") and data.get("refresh_token"):
            access, refresh = str(data["access_token"]), str(data["refresh_token"])
            self._remember(access, refresh)
            fields = {"access_token": access, "refresh_token": refresh, "updated_at": int(time.time()),
                      "expires_at": int(time.time() + float(data.get("expires_in") or 86400))}
            if code:
                fields["code_digest"] = _digest(code)
            # Stored before anyone uses it: the old refresh token is already dead.
            with self.r.pipeline() as p:
                p.hset(self.key, mapping=fields)
                p.hdel(self.key, "broken")
                p.execute()
            log.info("amoCRM OAuth token pair %s for account %s", "obtained" if code else "refreshed", self.account)
            return access
        reason = self.http.redact(describe(resp.status_code, data, resp.reason or ""))
        broken = {"broken": reason}
        if code:
            broken["code_digest"] = _digest(code)  # never try the same bad code twice
        self.r.hset(self.key, mapping=broken)
        log.error("amoCRM refused to %s for account %s: %s", kind, self.account, reason)
        raise AuthError(f"amoCRM refused to {kind}: {reason}. {REAUTHORIZE}")


def _json(resp):
    try:
        return resp.json()
    except ValueError:
        return None
