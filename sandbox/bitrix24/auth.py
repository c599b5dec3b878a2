"""Who may call: incoming webhooks (/rest/<user>/<code>/) and one OAuth application (/rest/<method>?auth=...).

The application's token endpoint is oauth.bitrix.info's `/oauth/token/` (CONFIRMED:
GET with grant_type=authorization_code|refresh_token, client_id, client_secret, code |
refresh_token), served here on the sandbox's own host. Access tokens live an hour,
refresh tokens 180 days, codes 30 seconds (CONFIRMED), all on the portal's clock. A
refresh answers a new pair and spends the old refresh token; access tokens issued
before stay valid until they expire (UNCONFIRMED). Secrets are compared in constant time
and never logged.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from typing import Callable

from . import errors
from .portal import Caller

ACCESS_TTL = 3600
REFRESH_TTL = 180 * 86400
CODE_TTL = 30
SCOPE = "crm,task,telephony,user,department,placement"


def _same(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class Credentials:
    """The portal's secrets: its incoming webhook and its one installed application."""
    webhook_user: int = 1
    webhook_code: str = field(default_factory=lambda: secrets.token_hex(8))
    client_id: str = field(default_factory=lambda: "local." + secrets.token_hex(7) + "." + secrets.token_hex(4))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(36))
    application_token: str = field(default_factory=lambda: secrets.token_hex(16))
    app_user: int = 1                  # the user who installed the application (whose tokens event.bind gets)


class OAuthError(Exception):
    def __init__(self, code: str, description: str):
        super().__init__(code)
        self.code = code
        self.description = description


class Auth:
    def __init__(self, credentials: Credentials, clock: Callable[[], float]):
        self.credentials = credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._access: dict[str, tuple[int, float]] = {}     # token -> (user, expires_at)
        self._refresh: dict[str, tuple[int, float]] = {}
        self._codes: dict[str, tuple[int, float]] = {}
        self._event_tokens: dict[int, str] = {}              # one live token per user for event bodies
        self.granted = {"authorization_code": 0, "refresh_token": 0}

    def __repr__(self) -> str:      # never the secrets
        return f"Auth(webhook_user={self.credentials.webhook_user}, client_id={self.credentials.client_id!r})"

    # ------------------------------------------------------------------ REST calls
    def webhook(self, user: str, code: str) -> Caller:
        c = self.credentials
        if not (user.isdigit() and int(user) == c.webhook_user and _same(code, c.webhook_code)):
            raise errors.invalid_credentials()
        return Caller(c.webhook_user, "webhook")

    def token(self, token: object) -> Caller:
        if not isinstance(token, str) or not token:
            raise errors.no_auth()
        with self._lock:
            found = next((v for k, v in self._access.items() if _same(token, k)), None)
        if found is None:
            raise errors.invalid_token()
        user, expires_at = found
        if self._clock() >= expires_at:
            raise errors.expired_token()
        return Caller(user, "oauth")

    # ------------------------------------------------------------------ tokens
    def _pair(self, user: int) -> dict:
        now = self._clock()
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self._access[access] = (user, now + ACCESS_TTL)
        self._refresh[refresh] = (user, now + REFRESH_TTL)
        return {"access_token": access, "refresh_token": refresh, "expires_in": ACCESS_TTL,
                "expires": int(now + ACCESS_TTL), "user_id": user}

    def new_code(self, user: int | None = None) -> str:
        """An authorization code, as the portal hands it to the application's redirect."""
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = (user or self.credentials.app_user, self._clock() + CODE_TTL)
        return code

    def issue(self, user: int | None = None) -> dict:
        """A token pair straight away (tests and the demo run; a real app goes through a code)."""
        with self._lock:
            return self._pair(user or self.credentials.app_user)

    def event_token(self, user: int) -> str:
        """A live access token of `user` for an event body sent to the application."""
        with self._lock:
            token = self._event_tokens.get(user)
            if token is None or self._access.get(token, (0, 0))[1] - self._clock() < 60:
                token = self._pair(user)["access_token"]
                self._event_tokens[user] = token
            return token

    def grant(self, args: dict) -> dict:
        """The token endpoint: a new pair for a code or a refresh token, or OAuthError."""
        c = self.credentials
        grant_type = args.get("grant_type")
        if grant_type not in self.granted:
            raise OAuthError("invalid_request", "Unsupported grant_type")
        if not _same(args.get("client_id"), c.client_id) or not _same(args.get("client_secret"), c.client_secret):
            raise OAuthError("invalid_client", "Invalid client credentials")
        secret_name, store = ("code", self._codes) if grant_type == "authorization_code" else \
            ("refresh_token", self._refresh)
        given = args.get(secret_name)
        with self._lock:
            key = next((k for k in store if _same(given, k)), None)
            if key is None:
                raise OAuthError("invalid_grant", "Invalid grant")
            user, expires_at = store.pop(key)     # a code and a refresh token work once
            if self._clock() >= expires_at:
                raise OAuthError("invalid_grant", "Grant has expired")
            self.granted[grant_type] += 1
            return self._pair(user)

    def revoke(self) -> int:
        """The application was uninstalled: every token it holds stops working (CONFIRMED: "all
        access permissions for the application to the API are revoked")."""
        with self._lock:
            gone = len(self._access) + len(self._refresh)
            self._access.clear()
            self._refresh.clear()
            self._event_tokens.clear()
            return gone

    def expire_access_tokens(self) -> int:
        with self._lock:
            now = self._clock()
            live = [k for k, (_, exp) in self._access.items() if exp > now]
            for k in live:
                self._access[k] = (self._access[k][0], now)
            return len(live)

    def summary(self) -> dict:
        with self._lock:
            now = self._clock()
            return {"client_id": self.credentials.client_id, "granted": dict(self.granted),
                    "live_access_tokens": sum(1 for _, exp in self._access.values() if exp > now),
                    "live_refresh_tokens": sum(1 for _, exp in self._refresh.values() if exp > now)}
