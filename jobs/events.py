"""The job that every webhook event becomes."""

from __future__ import annotations

import logging

from jobs import router
from reglament.events import Event

log = logging.getLogger("reglament.jobs")


def handle_event(data: dict) -> dict:
    event = Event.from_dict(data)
    ran = []
    for name, handler in router.handlers(event.kind):
        handler(event)
        ran.append(name)
    log.info("event handled", extra={"account": event.account, "source": event.source, "kind": event.kind,
                                     "entity_id": event.entity_id, "rule": ",".join(ran) or "-"})
    return {"kind": event.kind, "entity_id": event.entity_id, "rules": ran}
