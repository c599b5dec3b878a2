"""Credentials for Bitrix24: an incoming webhook, or an OAuth application whose pair rotates.

- **Incoming webhook** (CONFIRMED, local-webhooks.md): the URL
  `https://<portal>/rest/<user>/<code>/` is itself the secret; methods are called as
  `<url><method>`. It cannot be refreshed: a 401 means an admin must issue a new one.
- **OAuth application** (CONFIRMED, settings/oauth/): methods are called as
  `https://<portal>/rest/<method>` with `auth=<access token>` in the JSON body (never in
  the URL, so no log line or proxy sees it). The access token lives an hour; the pair is
  renewed with GET `<token_url>?grant_type=refresh_token&client_id&client_secret&refresh_token`
  and the answer carries a new refresh token. The pair is shared by every process and
  refreshed once across them (connectors/oauth.py). The first refresh token (the seed) is
  the configured `oauth.refresh_token`, else the one the portal handed over with
  ONAPPINSTALL (reglament/bitrix24_install.py, read with the pair in one round trip). A
  new configured seed repairs a pair Bitrix24 refused; a reinstall's new refresh token
  replaces the pair at once (it is the newest credential). Once
  the portal said the application was uninstalled, no call goes to it: the auth error
  says an administrator must install it again.
"""

from __future__ import annotations

import time

import redis

from connectors.bitrix24.errors import AuthError, Bitrix24Error, Bitrix24GaveUp, code_of, description_of
from connectors.http import HttpClient
from connectors.oauth import SharedTokenPair
from reglament import bitrix24_install
from reglament.config import Bitrix24Settings

REAUTHORIZE = ("An administrator must install the Bitrix24 application again (its handler URL is the account's "
               "Bitrix24 webhook URL, so Reglament keeps the new tokens), or put a new refresh_token into the "
               "configuration.")
NEW_WEBHOOK = ("An administrator must check the incoming webhook in Bitrix24 (it may have been deleted, "
               "expired or lost its user) and put a working webhook_url into the configuration.")


class WebhookAuth:
    """An incoming webhook: the URL carries the credentials; nothing to add to a call."""

    can_refresh = False

    def __init__(self, webhook_url: str):
        self.base = webhook_url.rstrip("/") + "/"
        self._code = self.base.rstrip("/").rsplit("/", 1)[-1]

    def access_token(self) -> str | None:
        return None

    def refresh(self, stale: str | None) -> str:
        raise AuthError("(auth)", "", f"the incoming webhook was refused. {NEW_WEBHOOK}")

    def secrets(self) -> list[str]:
        return [self.base, self._code]

    def __repr__(self) -> str:
        return "WebhookAuth(***)"


class OAuthTokens(SharedTokenPair):
    """The rotating OAuth pair of one Bitrix24 portal, kept in rg:<account>:bitrix24:oauth."""

    name = "Bitrix24"
    error = Bitrix24Error
    seed_field = "seed_digest"
    reauthorize = REAUTHORIZE

    def __init__(self, r: redis.Redis, account: str, settings: Bitrix24Settings, http: HttpClient, **kw):
        super().__init__(r, account, "bitrix24", http, **kw)
        self.base = settings.portal_url.rstrip("/") + "/rest/"
        self._oauth = settings.oauth
        self._install_key = bitrix24_install.key(account)
        self._installed: bitrix24_install.Install | None = None

    @staticmethod
    def auth_error(message: str) -> AuthError:  # type: ignore[override]
        return AuthError("(auth)", "", message)

    def _configured_secrets(self) -> list[str | None]:
        return [self._oauth.client_secret, self._oauth.refresh_token]

    def _seed(self) -> str | None:
        if self._oauth.refresh_token:
            return self._oauth.refresh_token
        return self._installed.refresh_token if self._installed else None

    def _read(self) -> dict:
        """The pair and the installation, in one round trip."""
        with self.r.pipeline(transaction=False) as p:
            p.hgetall(self.key)
            p.hgetall(self._install_key)
            pair, installed = p.execute()
        self._installed = bitrix24_install.from_hash(installed)
        if self._installed:
            self._remember(self._installed.refresh_token)
        return pair

    def _current(self, pair: dict[str, str], stale: str | None) -> str | None:
        if self._installed and self._installed.uninstalled:
            raise self.auth_error(f"the Bitrix24 application was uninstalled from the portal{_when(self._installed)}. "
                                  f"{REAUTHORIZE}")
        if self._reinstalled(pair):
            return None  # the install's refresh token is the newest credential: spend it now
        return super()._current(pair, stale)

    def _reinstalled(self, pair: dict[str, str]) -> bool:
        """An installed refresh token not spent yet (and none configured, which would come first)."""
        return not self._oauth.refresh_token and self._new_seed(pair) is not None

    def _renew(self, pair: dict[str, str]) -> str:
        """Spend the stored refresh token, or the configured one when the store is empty or broken."""
        seed = self._new_seed(pair)
        if seed and (pair.get("broken") or not pair.get("refresh_token") or self._reinstalled(pair)):
            return self._grant(self._get(seed), seed, "accept the " + ("configured" if self._oauth.refresh_token
                                                                       else "installed") + " refresh token")
        refresh_token = pair.get("refresh_token")
        if not refresh_token:
            raise self.auth_error(f"Bitrix24 has no OAuth token pair for this account yet. {REAUTHORIZE}")
        return self._grant(self._get(refresh_token), None, "refresh the OAuth token")

    def _get(self, refresh_token: str):
        o = self._oauth
        params = {"grant_type": "refresh_token", "client_id": o.client_id, "client_secret": o.client_secret,
                  "refresh_token": refresh_token}
        # Not idempotent: a refresh token works once, so an unclear attempt is never repeated.
        return lambda: self.http.request("GET", o.token_url, params=params, idempotent=False)

    def _gave_up(self, exc, kind: str) -> Exception:
        return Bitrix24GaveUp(self.http.system, "GET", "/oauth/token/", self.http.max_attempts,
                              f"could not {kind}: {exc}")

    def _refusal(self, resp, data) -> str:
        words = ": ".join(w for w in (code_of(data), description_of(data)) if w)
        return f"HTTP {resp.status_code}" + (f", {words}" if words else "")


def _when(installed: bitrix24_install.Install) -> str:
    if not installed.uninstalled_at:
        return ""
    return " at " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(installed.uninstalled_at))
