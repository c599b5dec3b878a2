"""Our application installed in a CRM (app.installed: Bitrix24's ONAPPINSTALL, whose tokens
app/bitrix24/install.py keeps): our handler is bound to the portal's events at once, as
`reglament register-webhooks` would do by hand. Binding skips what is bound already, so a
repeated install changes nothing more."""

from __future__ import annotations

import logging

from connectors import registry
from jobs import context
from jobs.router import on
from reglament.events import Event

log = logging.getLogger("reglament.jobs")


@on("app.installed", name="subscribe")
def subscribe(event: Event) -> dict:
    settings = context.settings()
    account = settings.account(event.account)
    done = registry.kind(account).register_webhooks(account, context.redis_client(), settings.hook_url(account))
    log.info("application installed: %s", done, extra={"account": event.account, "source": event.source})
    return {"subscribed": done}
