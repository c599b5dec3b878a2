"""A local stand-in for one Bitrix24 portal: the REST subset Reglament uses, outgoing events, a small page.

    from sandbox.bitrix24 import PortalServer
    with PortalServer() as b24:
        ...  # b24.url, b24.webhook_url, b24.credentials, b24.portal, b24.wait_events()

Run it by hand with `python -m sandbox.bitrix24 --port 8766`.
"""

from .auth import Credentials
from .portal import Caller, Portal
from .server import PortalServer, create_app, serve

__all__ = ["Portal", "PortalServer", "Credentials", "Caller", "create_app", "serve"]
