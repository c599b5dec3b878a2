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

from reglament.calls_settings import WhatsappSla
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


def counts(chat_type: str | None, settings: WhatsappSla, *, edited: bool = False, deleted: bool = False) -> bool:
    """Is this client's message one the rule watches? Not an edit or deletion of an older
    message, and only in the configured kinds of chat."""
    if not settings.enabled or edited or deleted:
        return False
    return not (chat_type and settings.chat_types and chat_type not in settings.chat_types)


def sets_clock(waiting: Waiting | None, message_at: datetime, answered_at: datetime | None) -> bool:
    """Does a client's message written at `message_at` start the chat's clock? Not if we
    answered at or after it (webhooks can arrive out of order), nor if the chat already
    waits for an earlier message (the first unanswered message sets the clock); an earlier
    message that arrives late does."""
    if answered_at is not None and answered_at >= message_at:
        return False
    return waiting is None or message_at < waiting.since


def is_answer(ours: bool, deleted: bool = False) -> bool:
    """An outgoing message answers the client unless it is our own automated message (its
    echo) or a deletion."""
    return not (ours or deleted)


def answers(waiting: Waiting | None, sent_at: datetime) -> bool:
    """Does an answer sent at `sent_at` stop the waiting chat's clock? Not one older than the
    client's message (a late echo)."""
    return waiting is not None and sent_at >= waiting.since


def on_timer(waiting: Waiting | None, message_id: str, stage: int) -> str:
    """What a firing timer does: "alert", "escalate", or "answered" (nothing)."""
    if waiting is None or waiting.message_id != message_id:
        return "answered"
    return "alert" if stage == ALERT else "escalate"
