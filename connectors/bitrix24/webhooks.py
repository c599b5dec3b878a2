"""Our handler's subscription to a portal's events. An OAuth application binds it with
`event.bind` (one batch); an incoming webhook cannot (event.bind is application-only), so
the admin sets up an outgoing webhook by hand and we say what to paste."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.bitrix24.client import Bitrix24Client

# The events that change what rules see: deals, their activities, finished calls, comments.
EVENTS = ("ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE",
          "ONCRMACTIVITYADD", "ONCRMACTIVITYUPDATE", "ONCRMACTIVITYDELETE", "ONVOXIMPLANTCALLEND",
          "ONCRMTIMELINECOMMENTADD")
LEAD_EVENTS = ("ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE")


def events_for(client: Bitrix24Client) -> tuple[str, ...]:
    deals = EVENTS
    return deals if client.settings.entity == "deals" else LEAD_EVENTS + deals[3:]


def register(client: Bitrix24Client, url: str) -> str:
    events = events_for(client)
    if client.settings.webhook_url:
        return (f"an incoming webhook cannot subscribe (event.bind is for applications): in Bitrix24 add an "
                f"outgoing webhook with handler URL {url} and events {', '.join(events)}, then put its "
                "application token in bitrix24.application_token")
    bound = {b.get("event", "").upper() for b in client.call("event.get") or [] if b.get("handler") == url}
    todo = [e for e in events if e not in bound]
    if todo:
        client.batch({e: ("event.bind", {"event": e, "handler": url}) for e in todo}).raise_first()
    return f"bound {len(todo)} events ({len(events) - len(todo)} were bound already)"


def unregister(client: Bitrix24Client, url: str) -> str:
    if client.settings.webhook_url:
        return f"remove the outgoing webhook with handler URL {url} in Bitrix24 (an incoming webhook cannot unbind)"
    bound = [b.get("event", "").upper() for b in client.call("event.get") or [] if b.get("handler") == url]
    if not bound:
        return "no subscription was there"
    client.batch({e: ("event.unbind", {"event": e, "handler": url}) for e in bound}).raise_first()
    return f"unbound {len(bound)} events"
