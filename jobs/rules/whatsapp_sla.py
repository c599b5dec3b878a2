"""WHATSAPP_SLA as pure functions over a chat's state.

A chat is "waiting" from the client's first unanswered message. Its timer runs
`answer_minutes` of working time from that message (a message at night starts counting at
the shift's opening). Any outgoing message of ours answers the chat — except the echo of
Reglament's own automated message. On expiry: alert the manager and record a violation;
`escalate_minutes` of working time later, if still unanswered, alert the head.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from jobs.rules.calls_settings import WhatsappSla
from reglament.calendar import WorkCalendar

RULE = "WHATSAPP_SLA"
ALERT, ESCALATE = 1, 2


@dataclass(frozen=True)
class Waiting:
    """The unanswered message a chat's timer runs for."""
    message_id: str
    since: datetime              # when the client wrote it (aware)


def deadline(since: datetime, settings: WhatsappSla, calendar: WorkCalendar) -> datetime:
    return calendar.add_working(since, timedelta(minutes=settings.answer_minutes))


def escalation_at(alerted_deadline: datetime, settings: WhatsappSla, calendar: WorkCalendar) -> datetime | None:
    if settings.escalate_minutes is None:
        return None
    return calendar.add_working(alerted_deadline, timedelta(minutes=settings.escalate_minutes))


def starts_timer(waiting: Waiting | None, chat_type: str | None, settings: WhatsappSla, *,
                 edited: bool = False, deleted: bool = False) -> bool:
    """A client's message starts a timer unless the chat is already waiting (the first
    unanswered message sets the clock) or it is an edit/deletion of an older message."""
    if not settings.enabled or edited or deleted:
        return False
    if chat_type and settings.chat_types and chat_type not in settings.chat_types:
        return False
    return waiting is None


def answers(waiting: Waiting | None, ours: bool, sent_at: datetime | None, *, deleted: bool = False) -> bool:
    """Does this outgoing message answer the waiting chat? Our own automated message does
    not; nor does an outgoing message older than the client's message (a late echo)."""
    if waiting is None or ours or deleted:
        return False
    return sent_at is None or sent_at >= waiting.since


def on_timer(waiting: Waiting | None, message_id: str, stage: int) -> str:
    """What a firing timer does: "alert", "escalate", or "answered" (nothing)."""
    if waiting is None or waiting.message_id != message_id:
        return "answered"
    return "alert" if stage == ALERT else "escalate"
