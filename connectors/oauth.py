"""An OAuth 2.0 token pair that rotates, shared by every process through Redis.

The pair lives in the Redis hash rg:<account>:<system>:oauth (access_token, refresh_token,
expires_at, the digest of the configured seed already spent, broken), so every process
uses the same pair.

- A refresh token works once: each refresh returns a new pair and the old refresh token
  dies. So the new pair is written to Redis BEFORE the access token is used, and only one
  process refreshes at a time (a Redis lock); the others wait and re-read the pair.
- The first pair comes from a configured seed (a CRM's authorization code or refresh token).
- When the CRM refuses a refresh or a seed, the pair is marked broken and the CRM's auth
  error is raised, saying an administrator must act; nobody retries it in a loop. A new
  seed in the configuration repairs it.

Each CRM subclasses SharedTokenPair with how to ask for a new pair (`_renew`) and its own
errors. Token values never appear in logs, exception messages or reprs.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import redis
import requests

from connectors.http import AmbiguousFailure, ConnectorError, GaveUp, HttpClient
from reglament import keys

log = logging.getLogger(__name__)

# Refresh this long before the access token expires, so a request never races its expiry.
EXPIRY_MARGIN = 300

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TokenProvider(Protocol):
    can_refresh: bool

    def access_token(self) -> str: ...

    def refresh(self, stale: str) -> str: ...

    def secrets(self) -> list[str]: ...


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def json_body(resp: requests.Response):
    try:
        return resp.json()
    except ValueError:
        return None


class SharedTokenPair:
    """The rotating pair of one account of one CRM; see the module docstring.

    A subclass sets `name` (for messages), `error` and `auth_error` (raised when an admin must act),
    `reauthorize` (what the admin must do), `seed_field` (the hash field holding the
    digest of the seed already spent) and implements `_seed`, `_renew`, `_gave_up` and
    `_refusal`.
    """

    can_refresh = True
    name = "the CRM"
    error: type[Exception] = ConnectorError
    auth_error: type[Exception] = ConnectorError
    default_lifetime = 3600  # seconds an access token lives when the answer does not say
    reauthorize = "An administrator must authorize the integration again."
    seed_field = "seed_digest"

    def __init__(self, r: redis.Redis, account: str, system: str, http: HttpClient, *,
                 lock_ttl: float = 120.0, poll: float = 0.05, sleep: Callable[[float], None] = time.sleep):
        self.r = r
        self.account = account
        self.http = http
        self.key = keys.key(account, system, "oauth")
        self.lock_key = keys.key(account, system, "oauth", "lock")
        # The lock must outlive the token request with all its retries: a lock that lapsed
        # mid-refresh would let a second process spend the same refresh token, and the CRM
        # then revokes the pair.
        self.lock_ttl = max(lock_ttl, http.longest_request() + 10)
        self.poll = poll
        self.sleep = sleep
        self._release = r.register_script(RELEASE)
        self._seen: list[str] = []  # tokens this process has handled, for redaction

    def __repr__(self) -> str:
        return f"{type(self).__name__}(account={self.account!r})"

    # -- public ------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token, obtaining or refreshing the pair first when needed."""
        return self._obtain(stale=None)

    def refresh(self, stale: str) -> str:
        """A new access token after the CRM rejected `stale`; refreshes at most once across processes."""
        return self._obtain(stale=stale)

    def secrets(self) -> list[str]:
        return [s for s in (*self._configured_secrets(), *self._seen) if s]

    # -- for subclasses ----------------------------------------------------------------

    def _configured_secrets(self) -> list[str | None]:
        return []

    def _seed(self) -> str | None:
        """The configured seed (authorization code or refresh token), if any."""
        return None

    def _renew(self, pair: dict[str, str]) -> str:
        """Get a new pair while holding the lock; return the new access token."""
        raise NotImplementedError

    def _gave_up(self, exc: GaveUp | AmbiguousFailure, kind: str) -> Exception:
        """The error for a token request that never got a clear answer."""
        return exc

    def _refusal(self, resp: requests.Response, data) -> str:
        """The CRM's refusal in plain words (never a secret)."""
        return f"HTTP {resp.status_code}"

    # -- internals ---------------------------------------------------------------------

    def _read(self) -> dict:
        """The stored pair's hash as Redis answers it (a subclass may read more in the same round trip)."""
        return self.r.hgetall(self.key)

    def _load(self) -> dict[str, str]:
        pair = {_text(k): _text(v) for k, v in self._read().items()}
        self._remember(pair.get("access_token"), pair.get("refresh_token"))
        return pair

    def _remember(self, *tokens: str | None) -> None:
        for t in tokens:
            if t and t not in self._seen:
                self._seen = [*self._seen[-9:], t]

    def _new_seed(self, pair: dict[str, str]) -> str | None:
        """The configured seed unless it was spent (or refused) already."""
        seed = self._seed()
        return seed if seed and digest(seed) != pair.get(self.seed_field) else None

    def _current(self, pair: dict[str, str], stale: str | None) -> str | None:
        """The stored access token if it is usable and not the one the CRM just rejected."""
        if pair.get("broken"):
            if self._new_seed(pair):
                return None  # an admin configured a new seed: use it
            raise self.auth_error(f"{self.name} refused our OAuth credentials earlier ({pair.get('broken')}). "
                                  f"{self.reauthorize}")
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
                raise self.error(f"timed out waiting for another process to refresh the {self.name} token")
            self.sleep(self.poll)

    def _grant(self, send: Callable[[], requests.Response], seed: str | None, kind: str) -> str:
        """Ask for a new pair with `send` (holding the lock), store it before anyone uses it,
        or mark the pair broken. `seed` is the configured seed being spent, if it is one."""
        try:
            resp = send()
        except (GaveUp, AmbiguousFailure) as exc:
            # Not the admin's fault; the next call tries again (and learns if the token was spent).
            raise self._gave_up(exc, kind) from None
        data = json_body(resp)
        if resp.status_code == 200 and isinstance(data, dict) and data.get("access_token") and data.get("refresh_token"):
            access, refresh = str(data["access_token"]), str(data["refresh_token"])
            self._remember(access, refresh)
            fields = {"access_token": access, "refresh_token": refresh, "updated_at": int(time.time()),
                      "expires_at": int(time.time() + float(data.get("expires_in") or self.default_lifetime))}
            if seed:
                fields[self.seed_field] = digest(seed)
            # Stored before anyone uses it: the old refresh token is already dead.
            with self.r.pipeline() as p:
                p.hset(self.key, mapping=fields)
                p.hdel(self.key, "broken")
                p.execute()
            log.info("%s OAuth token pair %s for account %s", self.name, "obtained" if seed else "refreshed",
                     self.account)
            return access
        reason = self.http.redact(self._refusal(resp, data))
        broken = {"broken": reason}
        if seed:
            broken[self.seed_field] = digest(seed)  # never try the same bad seed twice
        self.r.hset(self.key, mapping=broken)
        log.error("%s refused to %s for account %s: %s", self.name, kind, self.account, reason)
        raise self.auth_error(f"{self.name} refused to {kind}: {reason}. {self.reauthorize}")
