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

from reglament.distribution_settings import DistributionSettings, Source, parse_duration
from reglament.shifts import norm

RULE = "FIRST_CONTACT_SLA"
ALERT, ESCALATE = 1, 2


# --------------------------------------------------------------------------- the source

def field_value(custom_fields: Iterable[Mapping[str, Any]] | None, name: str | None) -> str | None:
    """The first value of a custom field (webhook or API shape) by its name or code."""
    if not name:
        return None
    for cf in custom_fields or ():
        if norm(str(cf.get("name") or cf.get("field_name") or "")) == norm(name) or \
                norm(str(cf.get("field_code") or cf.get("code") or "")) == norm(name):
            for v in cf.get("values") or ():
                value = v.get("value") if isinstance(v, Mapping) else v
                if value not in (None, ""):
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

def note_is_contact(fields: Mapping[str, Any], s: DistributionSettings, integration_user: int | None) -> bool:
    """A note written in the lead by a person of ours: a common note, a call out, a talked
    call in, an SMS out. Notes of the integration's own user (Reglament's notes) and of
    robots (created_by 0) do not count; call notes count whoever logged them."""
    note_type = fields.get("note_type")
    if fields.get("parent_type") != "lead" or note_type not in s.contact_note_types:
        return False
    if note_type in ("call_in", "call_out"):
        call = fields.get("call") or {}
        if note_type == "call_in":
            return int(call.get("duration") or 0) > 0 and str(call.get("call_status") or "4") == "4"
        return True
    author = fields.get("created_by") or fields.get("created_user_id") or 0
    return bool(author) and author != integration_user


# --------------------------------------------------------------------------- the shift-start list

@dataclass(frozen=True)
class QueueItem:
    lead_id: int
    name: str
    arrived: datetime
    source: str
    priority: int
    is_new: bool               # still in the arrival status
    responsible_user_id: int | None
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
