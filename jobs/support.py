"""Small things several rule families' handlers share: reading a moment or a phone number
from an event's fields, the account's messenger, and alerting a person."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from connectors.sms.phone import InvalidPhone, normalize_phone
from jobs import context


def moment(value: Any) -> datetime | None:
    """A unix time or an ISO string (as webhooks carry them) as an aware datetime; None if neither."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value), timezone.utc)
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def phone_digits(phone: Any) -> str | None:
    """A phone as international digits ("79011112233"), the key clients are found by; None if none."""
    if phone in (None, ""):
        return None
    try:
        return normalize_phone(phone)
    except InvalidPhone:
        return None


def messenger_for(account: str):
    """The account's Messenger. Handler modules import this name, so a test or a bench can put
    a stub in its place in one module."""
    from connectors.messaging import Messenger

    return Messenger.for_account(context.account(account), None, context.redis_client())


def alert(account: str, messenger, person: dict | None, subject: str, text: str, *, action_key: str,
          lead_id: int | None = None, note: str | None = None) -> bool:
    """Alert a person through the account's channels (the messenger sends each key once);
    when no channel carries it, `note` goes into the lead, where the manager sees it.
    Whether it was delivered. The caller passes its module's messenger, so a stub put there
    reaches the alerts too."""
    from reglament.crm import AddNote

    delivered = False
    if person is not None:
        delivered = messenger.alert_person(person, subject, text, action_key=action_key).delivered
    if not delivered and lead_id and note:
        ex = context.executor_for(account)
        ex.apply(ex.unapplied([AddNote(lead_id=lead_id, text=note, action_key=f"{action_key}:note")]))
    return delivered
