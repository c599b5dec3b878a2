"""A local stand-in for one amoCRM account: REST API v4 subset, real-format webhooks, a small web page.

    from sandbox.amocrm import SandboxServer
    with SandboxServer(token="t", rate_limit=7) as amo:
        ...  # amo.url, amo.token, amo.account, amo.wait_webhooks()

Run it by hand with `python -m sandbox.amocrm --port 8765`.
"""

from .server import DEFAULT_TOKEN, SandboxServer, create_app, serve
from .state import Change, SandboxAccount

__all__ = ["create_app", "serve", "SandboxServer", "SandboxAccount", "Change", "DEFAULT_TOKEN"]
