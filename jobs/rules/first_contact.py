"""FIRST_CONTACT_SLA and the shift-start list as pure functions: a lead's source, its
first-contact deadline on the working calendar, what counts as contact, the order of
untouched leads, and the median / p90 of the time to first contact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reglament.crm import CallDirection, CallStatus, Touch
from reglament.distribution_settings import DistributionSettings, Source, parse_duration
from reglament.names import norm

RULE = "FIRST_CONTACT_SLA"
ALERT, ESCALATE = 1, 2


# --------------------------------------------------------------------------- the source

def field_value(values: Mapping[str, Any] | None, name: str | None) -> str | None:
    """A custom value by the CRM's field name (an event's `values`), as text; None if empty."""
    if not name:
        return None
    for field_name, value in (values or {}).items():
        if norm(str(field_name)) == norm(name) and value not in (None, ""):
            return str(value)
    return None


def resolve_source(candidates: Sequence[str | None], s: DistributionSettings) -> tuple[str, Source | None]:
    """(source label, its settings) from the candidate values in order (source field,
    utm_source, pipeline name): the first that names a configured source, else the first
    non-empty value with no settings (the defaults apply)."""
    table = {}
    for name, src in s.sources.items():
        for alias in (name, *src.aliases):
            table.setdefault(norm(alias), (name, src))
    for c in candidates:
        if c and norm(c) in table:
            return table[norm(c)]
    return next((c for c in candidates if c), "—"), None


def sla_minutes(source: Source | None, s: DistributionSettings) -> int:
    return parse_duration(source.first_contact if source else s.first_contact)


def priority(source: Source | None) -> int:
    return source.priority if source else 100


def deadline(arrived: datetime, minutes: int, calendar) -> datetime:
    """`minutes` of working time after arrival (a lead at night is due after the opening)."""
    return calendar.add_working(arrived, timedelta(minutes=minutes))


def escalation_at(deadline_at: datetime, s: DistributionSettings, calendar) -> datetime | None:
    if not s.escalation_after:
        return None
    return calendar.add_working(deadline_at, timedelta(minutes=parse_duration(s.escalation_after)))


@dataclass(frozen=True)
class TimerDecision:
    outcome: str      # "contacted" | "early" | "alert" | "escalate" | "gone"


def on_timer(stage: int, contacted: bool, now: datetime, due: datetime, lead_active: bool = True) -> TimerDecision:
    """What the firing job does: nothing for a contacted or closed lead, nothing before the due time."""
    if contacted:
        return TimerDecision("contacted")
    if not lead_active:
        return TimerDecision("gone")
    if now < due:
        return TimerDecision("early")
    return TimerDecision("alert" if stage == ALERT else "escalate")


# --------------------------------------------------------------------------- what is contact

def touch_is_contact(touch: Touch, s: DistributionSettings, integration_user: int | None,
                     messaged_after_failure: bool = False) -> bool:
    """Contact with the client, by a person of ours (seed 002): a conversation (a call that
    talked, either way), a comment or message they wrote, or a failed call followed by our
    message to the client. A dial that did not get through is not contact by itself.
    Comments and messages of the integration's own user (Reglament's notes) and of robots
    (author 0) do not count; calls count whoever logged them."""
    if touch.kind == "call":
        call = touch.call
        if call is None:
            return False
        talked = call.status is CallStatus.TALKED and call.duration > 0
        if call.direction is CallDirection.IN:
            return "incoming_call" in s.contact_kinds and talked
        return "outgoing_call" in s.contact_kinds and (talked or messaged_after_failure)
    if touch.kind not in s.contact_kinds:
        return False
    return bool(touch.by) and touch.by != integration_user


# --------------------------------------------------------------------------- the shift-start list

@dataclass(frozen=True)
class QueueItem:
    lead_id: int
    name: str
    arrived: datetime
    source: str
    priority: int
    is_new: bool               # still in the arrival status
    responsible_id: int | None
    link: str = ""


def order_queue(items: Iterable[QueueItem], s: DistributionSettings) -> list[QueueItem]:
    """New first (if configured), then by source priority, then oldest first (or newest)."""
    sign = 1 if s.oldest_first else -1
    return sorted(items, key=lambda i: (0 if (i.is_new or not s.new_first) else 1, i.priority,
                                        sign * i.arrived.timestamp(), i.lead_id))


def queue_line(n: int, item: QueueItem, tz) -> str:
    at = item.arrived.astimezone(tz).strftime("%d.%m %H:%M")
    return f"{n}. {item.name or 'Сделка ' + str(item.lead_id)} — {item.source}, с {at} — {item.link}"


# --------------------------------------------------------------------------- statistics

def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile (p in 0..100) of the values; None when empty."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def stats(durations: Mapping[int | None, Sequence[float]]) -> dict[int | None, dict]:
    return {m: {"count": len(d), "median": percentile(d, 50), "p90": percentile(d, 90)}
            for m, d in durations.items() if d}


def duration_text(seconds: float | None) -> str:
    """«12 мин», «1 ч 05 мин» — how the digest and the dashboard show a time to first contact."""
    if seconds is None:
        return "—"
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} ч {minutes % 60:02d} мин" if minutes >= 60 else f"{minutes} мин"
