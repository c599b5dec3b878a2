"""What every telephony provider's end-of-call notification becomes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reglament.events import Event, event_key


@dataclass
class Parsed:
    events: list[Event]
    ignored: list[str] = field(default_factory=list)


def digits(phone: str | None) -> str | None:
    d = re.sub(r"\D", "", phone or "")
    return d or None


BUSY = {"busy", "user_busy", "no_answer_busy"}  # providers' words for a busy line


def call_event(account: str, provider: str, call_id: str, incoming: bool, answered: bool, *,
               client_phone: str | None, our_number: str | None, extension: str | None,
               started_at: str | int | None, duration: int | None, result: str | None, raw_event: str) -> Event:
    """The neutral call.ended event (reglament.events), the same an amoCRM call note becomes."""
    outcome = "talked" if answered else "busy" if str(result or "").lower() in BUSY else "not_reached"
    fields = {
        "call_id": call_id, "direction": "in" if incoming else "out", "outcome": outcome,
        "duration": duration or 0, "phone": digits(client_phone), "lead_id": None, "user_id": None,
        "at": started_at, "ref": None,
        "provider": provider, "our_number": digits(our_number), "extension": extension or None, "result": result,
    }
    return Event(account=account, source=f"telephony.{provider}", kind="call.ended", entity_id=call_id,
                 fields=fields, key=event_key(provider, raw_event, call_id))
