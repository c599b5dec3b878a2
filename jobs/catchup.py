"""The Bitrix24 catch-up: Bitrix24 tries each outgoing event once and never again, so every
`bitrix24.catchup_seconds` this job asks the portal what changed since its last pass (deals
whose DATE_MODIFY is newer, calls started since) and feeds them through the same path as an
event: the connector compares each deal with the state last seen, so what an event already
delivered changes nothing, and a call already seen is not seen again."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from jobs import context
from jobs.scheduler import PERIODIC
from reglament import keys
from reglament.config import Settings
from reglament.lease import Lease

log = logging.getLogger("reglament.jobs")

FIRST_LOOKBACK = 3600   # seconds looked back on the very first pass
SLACK = 120             # the passes overlap this much: clocks differ and DATE_MODIFY is set on commit


def catchup_job(account: str) -> dict:
    """One pass for one account; one at a time."""
    from jobs.events import handle_event

    r = context.redis_client()
    guard = Lease(r, keys.key(account, "lock", "catchup"))
    if not guard.acquire(blocking=False):
        return {"account": account, "skipped": "already running"}
    try:
        crm = context.crm_for(account)
        mark = keys.key(account, "bitrix24", "catchup_at")
        started = time.time()
        last = r.get(mark)
        if last is None:
            crm.baseline()
        since = datetime.fromtimestamp((float(last) if last else started - FIRST_LOOKBACK) - SLACK, timezone.utc)
        leads, calls = crm.changed_since(since)
        found = 0
        # Each deal's changes are acted on as soon as it is read: after an outage with many
        # missed changes, the first to-do does not wait for the last deal's reading.
        for lead_id, new in leads:
            events = crm.changes(lead_id, added=new)
            for event in events:
                handle_event(event.to_dict())
            found += len(events)
        for event in (e for e in calls if crm.first_sight(e)):
            handle_event(event.to_dict())
            found += 1
        r.set(mark, started)
    finally:
        guard.release()
    if found:
        log.info("catch-up: %d change(s) no event brought", found, extra={"account": account, "rule": "CATCHUP"})
    return {"account": account, "leads": len(leads), "events": found}


def register_periodic(settings: Settings) -> None:
    """Put each Bitrix24 account's catch-up in the scheduler's PERIODIC list, once per account."""
    PERIODIC[:] = [entry for entry in PERIODIC if entry[0] is not catchup_job]
    for account in settings.accounts:
        if account.crm == "bitrix24" and account.bitrix24 and account.bitrix24.catchup_seconds:
            PERIODIC.append((catchup_job, account.bitrix24.catchup_seconds, {"account": account.id}))
