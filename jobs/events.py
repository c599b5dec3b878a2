"""The job that every webhook event becomes."""

from __future__ import annotations

import logging

from jobs import router
from reglament import keys
from reglament.events import Event

log = logging.getLogger("reglament.jobs")


def handle_event(data: dict) -> dict:
    event = Event.from_dict(data)
    if event.kind == "crm.changed":
        # Only ids came (Bitrix24): the connector reads what changed; each neutral event it
        # finds is handled here, in order, in this job. The event's dedupe key is freed
        # first: it only holds while the job waits (app/bitrix24/parser.py says why).
        from jobs import context

        context.redis_client().delete(keys.dedupe(event.account, event.key))
        found = context.crm_for(event.account).expand(event)
        results = [handle_event(e.to_dict()) for e in found if e.kind != "crm.changed"]
        log.info("CRM change read: %d event(s)", len(results),
                 extra={"account": event.account, "source": event.source, "entity_id": event.entity_id})
        return {"kind": event.kind, "entity_id": event.entity_id, "events": results}
    ran = []
    for name, handler in router.handlers(event.kind):
        handler(event)
        ran.append(name)
    log.info("event handled", extra={"account": event.account, "source": event.source, "kind": event.kind,
                                     "entity_id": event.entity_id, "rule": ",".join(ran) or "-"})
    return {"kind": event.kind, "entity_id": event.entity_id, "rules": ran}
