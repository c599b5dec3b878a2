"""Assembling and running the sandbox: the Flask app, `SandboxServer` (a background thread) and a blocking `serve()`."""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from ..serving import BackgroundServer
from . import admin, api, oauth, ui
from .context import EXTENSION, Sandbox, current
from .hal import problem, validation_problem
from .oauth import Integration, OAuthServer
from .problems import NotFound, ValidationFailed
from .query import BadQuery
from .ratelimit import SlidingWindowLimiter
from .state import SandboxAccount
from .webhooks import WebhookDispatcher

DEFAULT_TOKEN = "sandbox-token"


def create_app(account: SandboxAccount | None = None, token: str = DEFAULT_TOKEN, rate_limit: float = 7.0, *,
               webhook_retry_delays: tuple[float, ...] = (1.0, 5.0, 15.0), webhook_timeout: float = 2.0,
               integration: Integration | None = None) -> Flask:
    """A Flask app behaving like one amoCRM account (the demo seed unless `account` is given).

    token: the long-lived token /api/v4 accepts (OAuth access tokens from /oauth2/access_token work too).
    rate_limit: requests allowed in any sliding 1-second window on /api/v4 (0 disables the limit).
    integration: the OAuth client_id, client_secret, redirect_uri and access token lifetime.
    """
    account = account or SandboxAccount()
    app = Flask(__name__)
    app.extensions[EXTENSION] = Sandbox(
        account=account,
        dispatcher=WebhookDispatcher(account, retry_delays=webhook_retry_delays, timeout=webhook_timeout),
        limiter=SlidingWindowLimiter(rate_limit),
        token=token,
        oauth=OAuthServer(integration or Integration(), clock=account.now, claims=_token_claims(account)),
    )
    app.register_blueprint(api.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(ui.bp)

    @app.before_request
    def started() -> None:
        g.started = time.time()

    @app.after_request
    def record(response: Response) -> Response:
        if request.path.startswith(("/api/", "/oauth2/")):
            current().requests.record(request.method, request.path, request.query_string.decode("latin-1"),
                                   response.status_code, g.get("started", time.time()), g.get("user_id"))
        return response

    @app.errorhandler(ValidationFailed)
    def invalid(e: ValidationFailed) -> Response:
        return validation_problem(e.errors)

    @app.errorhandler(NotFound)
    def not_found(e: NotFound) -> Response:
        return problem(404, e.detail)

    @app.errorhandler(BadQuery)
    @app.errorhandler(api.BadBody)
    def bad_request(e: ValueError) -> Response:
        return problem(400, str(e))

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        if request.path.startswith(("/api/", "/oauth2/")):
            return problem(e.code or 500, e.description or e.name)
        return e

    return app


def _token_claims(account: SandboxAccount):
    def claims() -> dict:
        with account.lock:  # a reset replaces account.info
            return {"sub": str(account.info.current_user_id), "account_id": account.info.id}
    return claims


def _log_line(method: str, path: str, status: int) -> str:
    return f"{method} {path} {status}"


class SandboxServer(BackgroundServer):
    """The sandbox on a background thread, for tests and benchmarks.

        with SandboxServer() as amo:            # a free port on 127.0.0.1
            requests.get(amo.url + "/api/v4/leads", headers={"Authorization": f"Bearer {amo.token}"})
    """

    def __init__(self, account: SandboxAccount | None = None, token: str = DEFAULT_TOKEN, rate_limit: float = 7.0,
                 host: str = "127.0.0.1", port: int = 0, quiet: bool = True, **app_options):
        self.account = account or SandboxAccount()
        self.token = token
        self.app = create_app(self.account, token, rate_limit, **app_options)
        self.sandbox: Sandbox = self.app.extensions[EXTENSION]
        # Quiet by default: tests and benchmarks read /_sandbox/requests instead.
        super().__init__(self.app, host, port, name="amocrm-sandbox", log_line=None if quiet else _log_line,
                         on_stop=self.sandbox.dispatcher.stop)

    @property
    def dispatcher(self) -> WebhookDispatcher:
        return self.sandbox.dispatcher

    @property
    def oauth(self) -> OAuthServer:
        return self.sandbox.oauth

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def wait_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until every queued webhook delivery is done."""
        return self.dispatcher.wait_idle(timeout)


def serve(host: str = "127.0.0.1", port: int = 8765, token: str = DEFAULT_TOKEN, rate_limit: float = 7.0,
          seed_path: str | Path | None = None, generate: int = 0, integration: Integration | None = None) -> None:
    """Run the sandbox in the foreground until interrupted."""
    account = SandboxAccount(seed_path)
    if generate:
        account.generate_leads(generate)
    integration = integration or Integration()
    server = SandboxServer(account, token=token, rate_limit=rate_limit, host=host, port=port, quiet=False,
                           integration=integration)
    print(f"amoCRM sandbox for account {account.info.subdomain!r} at {server.url}  "
          f"(page {server.url}/, API {server.url}/api/v4, token {token!r}, {rate_limit:g} req/s)", flush=True)
    print(f"OAuth: client_id {integration.client_id!r}, redirect_uri {integration.redirect_uri!r}; "
          f"POST {server.url}/_sandbox/oauth/code for an authorization code", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
