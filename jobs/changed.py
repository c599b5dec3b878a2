"""The job of a `crm.changed` event (Bitrix24's events carry only ids): it frees the event's
dedupe key as it starts, then reads the object (jobs/events.py).

Such an event means "read this object again", not one change, so its key only needs to hold
while its job waits: an identical body that comes meanwhile (a replay, a handler bound
twice, or a second change within the same second, whose body is the same) is one read with
it, since the job reads after it. Once the job has started, its read may come before that
change, so the key is freed first and the next identical body makes a job of its own
(app/bitrix24/parser.py says why this and not another key).
"""

from __future__ import annotations

from jobs import context
from jobs.events import handle_event
from reglament import keys


def handle(data: dict) -> dict:
    context.redis_client().delete(keys.dedupe(data["account"], data["key"]))
    return handle_event(data)
