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


def call_event(account: str, provider: str, call_id: str, incoming: bool, answered: bool, *,
               client_phone: str | None, our_number: str | None, extension: str | None,
               started_at: str | int | None, duration: int | None, result: str | None, raw_event: str) -> Event:
    if incoming:
        kind = "call.incoming_answered" if answered else "call.incoming_missed"
    else:
        kind = "call.outgoing_answered" if answered else "call.outgoing_failed"
    fields = {
        "provider": provider, "call_id": call_id, "direction": "in" if incoming else "out",
        "answered": answered, "client_phone": digits(client_phone), "our_number": digits(our_number),
        "extension": extension or None, "started_at": started_at, "duration": duration, "result": result,
    }
    return Event(account=account, source=f"telephony.{provider}", kind=kind, entity_id=call_id, fields=fields,
                 key=event_key(provider, raw_event, call_id))
