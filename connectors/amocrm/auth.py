"""Credentials for amoCRM: a long-lived token, or an OAuth 2.0 token pair that rotates.

OAuth (POST {base_url}/oauth2/access_token):
- The pair lives in the Redis hash rg:<account>:amocrm:oauth (access_token, refresh_token,
  expires_at, code_digest, broken), shared and refreshed once across processes
  (connectors/oauth.py, which the Bitrix24 connector uses too).
- The first pair comes from the configured authorization code (valid 20 minutes, once)
  or, failing that, from a configured refresh token.
- When amoCRM refuses a refresh or a code, the pair is marked broken and AuthError is
  raised, saying an administrator must re-authorize; nobody retries it in a loop. A new
  authorization code in the configuration repairs it.

Token values never appear in logs, exception messages or reprs.
"""

from __future__ import annotations

import logging

import redis

from connectors.amocrm.errors import AmoCRMError, AmoCRMGaveUp, AuthError, describe
from connectors.http import HttpClient
from connectors.oauth import SharedTokenPair
from reglament.config import OAuth

log = logging.getLogger(__name__)

REAUTHORIZE = ("An administrator must re-authorize the amoCRM integration and put the new "
               "authorization_code into the configuration.")


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


class OAuthTokens(SharedTokenPair):
    """The rotating OAuth pair of one amoCRM account (POST {base_url}/oauth2/access_token)."""

    name = "amoCRM"
    error = AmoCRMError
    auth_error = AuthError
    reauthorize = REAUTHORIZE
    seed_field = "code_digest"
    default_lifetime = 86400

    def __init__(self, r: redis.Redis, account: str, base_url: str, oauth: OAuth, http: HttpClient, **kw):
        super().__init__(r, account, "amocrm", http, **kw)
        self.url = base_url.rstrip("/") + "/oauth2/access_token"
        self._oauth = oauth

    def _configured_secrets(self) -> list[str | None]:
        o = self._oauth
        return [o.client_secret, o.authorization_code, o.refresh_token]

    def _seed(self) -> str | None:
        return self._oauth.authorization_code

    def _renew(self, pair: dict[str, str]) -> str:
        """Get a new pair (holding the lock): exchange a new code, else spend the refresh token."""
        o = self._oauth
        body = {"client_id": o.client_id, "client_secret": o.client_secret, "redirect_uri": o.redirect_uri}
        code = self._new_seed(pair)
        if code and (pair.get("broken") or not pair.get("refresh_token")):
            body = {**body, "grant_type": "authorization_code", "code": code}
            return self._grant(self._post(body), code, "exchange the authorization code")
        # The configured refresh token only seeds an empty store; afterwards it is stale.
        refresh_token = pair.get("refresh_token") or (None if pair else o.refresh_token)
        if not refresh_token:
            raise AuthError(f"amoCRM has no OAuth token pair for this account yet. {REAUTHORIZE}")
        body = {**body, "grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._grant(self._post(body), None, "refresh the OAuth token")

    def _post(self, body: dict):
        return lambda: self.http.request("POST", self.url, json=body, idempotent=False)

    def _gave_up(self, exc, kind: str) -> Exception:
        return AmoCRMGaveUp(self.http.system, "POST", "/oauth2/access_token", self.http.max_attempts,
                            f"could not {kind}: {exc}")

    def _refusal(self, resp, data) -> str:
        return describe(resp.status_code, data, resp.reason or "")
