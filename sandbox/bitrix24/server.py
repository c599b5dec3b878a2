"""Assembling and running the sandbox: the Flask app, `PortalServer` (a background thread) and a blocking `serve()`."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from ..serving import BackgroundServer
from . import admin, api, ui
from .api import masked
from .auth import Auth, Credentials
from .bucket import LeakyBucket
from .context import EXTENSION, Sandbox
from .events import Events
from .portal import Portal


def create_app(portal: Portal | None = None, credentials: Credentials | None = None, *, rate: float = 2.0,
               burst: int = 50, event_timeout: float = 5.0) -> Flask:
    """A Flask app behaving like one Bitrix24 portal (the demo seed unless `portal` is given).

    rate, burst: the leaky bucket (2 per second and 50 on common plans; rate 0 disables it).
    """
    portal = portal or Portal()
    auth = Auth(credentials or Credentials(), clock=portal.now)
    app = Flask(__name__)
    app.extensions[EXTENSION] = Sandbox(portal=portal, auth=auth,
                                        events=Events(portal, auth, timeout=event_timeout),
                                        bucket=LeakyBucket(rate, burst, clock=portal.now))
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(ui.bp)
    return app


def _log_line(method: str, path: str, status: int) -> str:
    return f"{method} {masked(path.split('?', 1)[0])} {status}"


class PortalServer(BackgroundServer):
    """The sandbox on a background thread, for tests, benchmarks and the demo run.

        with PortalServer() as b24:              # a free port on 127.0.0.1
            requests.post(b24.webhook_url + "crm.deal.list", json={})
            b24.url, b24.webhook_url, b24.credentials.application_token, b24.wait_events()
    """

    def __init__(self, portal: Portal | None = None, credentials: Credentials | None = None, *, rate: float = 2.0,
                 burst: int = 50, host: str = "127.0.0.1", port: int = 0, quiet: bool = True,
                 event_timeout: float = 5.0):
        self.portal = portal or Portal()
        self.credentials = credentials or Credentials()
        self.app = create_app(self.portal, self.credentials, rate=rate, burst=burst, event_timeout=event_timeout)
        self.sandbox: Sandbox = self.app.extensions[EXTENSION]
        super().__init__(self.app, host, port, name="bitrix24-sandbox", log_line=None if quiet else _log_line,
                         on_stop=self.sandbox.events.stop)
        self.portal.base_url = self.url

    def __repr__(self) -> str:   # never the secrets
        return f"PortalServer({self.url})"

    @property
    def webhook_url(self) -> str:
        """The incoming webhook: <url>/rest/<user>/<code>/ (append a method name)."""
        c = self.credentials
        return f"{self.url}/rest/{c.webhook_user}/{c.webhook_code}/"

    @property
    def events(self) -> Events:
        return self.sandbox.events

    @property
    def auth(self) -> Auth:
        return self.sandbox.auth

    def wait_events(self, timeout: float = 5.0) -> bool:
        """Wait until every queued outgoing event has been sent (or failed)."""
        return self.events.wait_idle(timeout)


def serve(host: str = "127.0.0.1", port: int = 8766, credentials: Credentials | None = None, *, rate: float = 2.0,
          burst: int = 50, seed_path: str | Path | None = None, generate: int = 0) -> None:
    """Run the sandbox in the foreground until interrupted; prints where it is and its secrets (a terminal only)."""
    portal = Portal(seed_path)
    if generate:
        with portal.lock:
            from .seed import generate_deals
            generate_deals(portal, generate, 0.1, 0)
    server = PortalServer(portal, credentials, rate=rate, burst=burst, host=host, port=port, quiet=False)
    c = server.credentials
    print(f"Bitrix24 sandbox «{portal.info['name']}» at {server.url}/ "
          f"({rate:g} req/s, burst {burst})", flush=True)
    print(f"  incoming webhook: {server.webhook_url}", flush=True)
    print(f"  application: client_id {c.client_id}, client_secret {c.client_secret}, "
          f"application token {c.application_token}; POST {server.url}/_sandbox/oauth/code for a code, "
          f"then {server.url}/oauth/token/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
