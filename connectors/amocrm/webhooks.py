"""Keeping amoCRM's webhook subscription for Reglament in the state we want.

`register` is idempotent: run it at every deploy and the account ends up with exactly one
subscription for our URL, listening to exactly the events asked for. `unregister` removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from connectors.amocrm.client import AmoCRMClient

log = logging.getLogger(__name__)

# The events Reglament reacts to (names as amoCRM's subscription `settings` spell them).
EVENTS: tuple[str, ...] = (
    "add_lead", "update_lead", "status_lead", "responsible_lead", "delete_lead", "restore_lead", "note_lead",
    "add_contact", "update_contact", "note_contact",
    "add_task", "update_task", "delete_task",
    "add_message",
)


def register(client: AmoCRMClient, destination_url: str, settings_list: Sequence[str] = EVENTS) -> dict:
    """Make `destination_url` receive exactly `settings_list`; returns the subscription.

    Looks first: if one enabled subscription with these events already exists, nothing is
    sent. Otherwise any subscription of the URL is removed before subscribing afresh, so a
    disabled one (amoCRM disables a hook after many failed deliveries) comes back enabled,
    and whether amoCRM updates or duplicates on a repeated POST does not matter.
    """
    wanted = sorted(set(settings_list))
    if not wanted:
        raise ValueError("subscribe to at least one event")
    existing = [w for w in client.webhooks(destination_url) if w.get("destination") == destination_url]
    if (len(existing) == 1 and not existing[0].get("disabled")
            and sorted(set(existing[0].get("settings") or [])) == wanted):
        return existing[0]
    if existing:
        client.unsubscribe_webhook(destination_url)
    hook = client.subscribe_webhook(destination_url, wanted)
    log.info("amoCRM webhook subscribed for account %s to %d events", client.account_id, len(wanted))
    return hook


def unregister(client: AmoCRMClient, destination_url: str) -> bool:
    """Remove the subscription of `destination_url`; False if there was none."""
    return client.unsubscribe_webhook(destination_url)
