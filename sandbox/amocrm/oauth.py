"""OAuth 2.0 of the sandbox's one integration: POST /oauth2/access_token, codes and rotating token pairs.

Like amoCRM (reference §1.1, CONFIRMED): a JSON body with client_id, client_secret,
redirect_uri and grant_type=authorization_code (+ code) or refresh_token (+ refresh_token);
the answer is {token_type: "Bearer", expires_in, access_token (a JWT), refresh_token}.
Codes live 20 minutes and work once; a refresh token works once (the refresh answer
carries a new one) and lives 3 months; refreshing also revokes the access token issued
with the old refresh token. All lifetimes run on the account's clock (POST /_sandbox/clock).

Errors are 400 problem+json in the shape amoCRM's token endpoint answers with
(seen in captures of real answers, not in the reference, so UNCONFIRMED):
    {"hint": "Token has been revoked", "title": "Некорректный запрос",
     "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson", "status": 400,
     "detail": "В запросе отсутствует ряд параметров или параметры невалидны"}

Token values are never logged: the request log keeps method, path and status only.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Callable

from flask import Blueprint, Response, request

from .context import current
from .hal import PROBLEM

bp = Blueprint("amocrm_oauth", __name__)

CODE_TTL = 20 * 60               # CONFIRMED by secondary sources (reference §1.1)
REFRESH_TTL = 90 * 24 * 3600     # "3 months", UNCONFIRMED
GRANTS = ("authorization_code", "refresh_token")
PROBLEM_TYPE = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"


@dataclass(frozen=True)
class Integration:
    """The integration installed in the sandbox account: what token requests must name."""
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    redirect_uri: str = "https://reglament.example/oauth"
    access_ttl: int = 86400      # expires_in of every access token; lower it to test expiry


class Refused(Exception):
    """A token request amoCRM would refuse: 400 with `hint` saying why."""

    def __init__(self, hint: str):
        super().__init__(hint)
        self.hint = hint


@dataclass
class _Code:
    expires_at: int
    used: bool = False


@dataclass
class _Refresh:
    expires_at: int
    access_token: str            # issued together; revoked when this refresh token is spent
    used: bool = False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict) -> str:
    # Shaped like amoCRM's access tokens (eyJ0eXAiOiJKV1Qi...); the sandbox never reads the claims back.
    header = _b64(json.dumps({"typ": "JWT", "alg": "RS256"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{payload}.{_b64(secrets.token_bytes(64))}"


def _same(given, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


class OAuthServer:
    """Codes and token pairs of one integration, checked against the account's clock."""

    def __init__(self, integration: Integration, clock: Callable[[], int], claims: Callable[[], dict]):
        self.integration = integration
        self._clock = clock
        self._claims = claims    # account_id and sub (the token's user) for the JWT payload
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, int] = {}        # access token -> expires_at
        self._refresh: dict[str, _Refresh] = {}
        self.granted = {grant: 0 for grant in GRANTS}

    def __repr__(self) -> str:
        return f"OAuthServer(client_id={self.integration.client_id!r})"

    # ------------------------------------------------------------------ API side
    def accepts(self, token: str) -> bool:
        """An access token this server issued that is neither expired nor revoked."""
        with self._lock:
            expires_at = self._access.get(token)
            return expires_at is not None and self._clock() < expires_at

    def new_code(self) -> str:
        """An authorization code, as amoCRM puts it into the redirect after the user allows access."""
        code = "def50200" + secrets.token_hex(96)
        with self._lock:
            self._codes[code] = _Code(self._clock() + CODE_TTL)
        return code

    def expire_access_tokens(self) -> int:
        """Make every access token expired now (refresh tokens keep working); returns how many were live."""
        with self._lock:
            now = self._clock()
            live = [t for t, expires_at in self._access.items() if now < expires_at]
            for token in live:
                self._access[token] = now
            return len(live)

    def summary(self) -> dict:
        """What a test may check, without any token value."""
        i = self.integration
        with self._lock:
            now = self._clock()
            return {"client_id": i.client_id, "redirect_uri": i.redirect_uri, "access_ttl": i.access_ttl,
                    "code_ttl": CODE_TTL, "refresh_ttl": REFRESH_TTL, "granted": dict(self.granted),
                    "live_access_tokens": sum(now < e for e in self._access.values()),
                    "live_refresh_tokens": sum(not r.used and now < r.expires_at for r in self._refresh.values())}

    # ------------------------------------------------------------------ token endpoint
    def grant(self, body: dict) -> dict:
        """A new token pair for one token request, or Refused. Checks the grant type, the client,
        the redirect URI, then the code or refresh token (the hints are those amoCRM answers with)."""
        i = self.integration
        grant_type = body.get("grant_type")
        if grant_type not in GRANTS:
            raise Refused("Check that all required parameters have been provided")
        for name in ("client_id", "client_secret"):
            if not _same(body.get(name), getattr(i, name)):
                raise Refused(f"Check the `{name}` parameter")
        # The reference shows redirect_uri in both bodies; the sandbox requires it in both (UNCONFIRMED).
        if not body.get("redirect_uri"):
            raise Refused("Check the `redirect_uri` parameter")
        if not _same(body.get("redirect_uri"), i.redirect_uri):
            raise Refused("Redirect URI is not associated with client")
        claims = self._claims()  # outside our lock: it takes the account's
        with self._lock:
            now = self._clock()
            if grant_type == "authorization_code":
                self._spend_code(body.get("code"), now)
            else:
                self._spend_refresh(body.get("refresh_token"), now)
            self.granted[grant_type] += 1
            return self._issue(now, claims)

    def _spend_code(self, code, now: int) -> None:
        if not code or not isinstance(code, str):
            raise Refused("Check the `code` parameter")
        entry = self._codes.get(code)
        if entry is None:
            raise Refused("Cannot decrypt the authorization code")
        if entry.used:
            raise Refused("Authorization code has been revoked")
        if now >= entry.expires_at:
            raise Refused("Authorization code has expired")
        entry.used = True

    def _spend_refresh(self, token, now: int) -> None:
        if not token or not isinstance(token, str):
            raise Refused("Check the `refresh_token` parameter")
        old = self._refresh.get(token)
        if old is None:
            raise Refused("Cannot decrypt the refresh token")
        if old.used:
            raise Refused("Token has been revoked")
        if now >= old.expires_at:
            raise Refused("Token has expired")
        # Rotation: the old refresh token and its access token die now (UNCONFIRMED for the access token).
        old.used = True
        self._access.pop(old.access_token, None)

    def _issue(self, now: int, claims: dict) -> dict:
        ttl = int(self.integration.access_ttl)
        access = _jwt({"aud": self.integration.client_id, "jti": secrets.token_hex(20), "iat": now, "nbf": now,
                       "exp": now + ttl, **claims})
        refresh = "def50200" + secrets.token_hex(160)
        self._access[access] = now + ttl
        self._refresh[refresh] = _Refresh(now + REFRESH_TTL, access)
        return {"token_type": "Bearer", "expires_in": ttl, "access_token": access, "refresh_token": refresh}


def _problem(hint: str) -> Response:
    body = {"hint": hint, "title": "Некорректный запрос", "type": PROBLEM_TYPE, "status": 400,
            "detail": "В запросе отсутствует ряд параметров или параметры невалидны"}
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=400, content_type=PROBLEM)


@bp.post("/oauth2/access_token")
def access_token() -> Response:
    # The reference documents a JSON body; a form body is taken too (OAuth 2.0's own encoding).
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        body = request.form.to_dict()
    try:
        answer = current().oauth.grant(body)
    except Refused as e:
        return _problem(e.hint)
    return Response(json.dumps(answer, separators=(",", ":")), status=200, content_type="application/json",
                    headers={"Cache-Control": "no-store"})
