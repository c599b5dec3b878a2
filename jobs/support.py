"""Small things several rule families' handlers share: reading a moment or a phone number
from an event's fields, and the account's messenger."""

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
