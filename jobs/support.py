"""Small things several rule families' handlers share: reading a moment, a phone number or a
call from an event's fields, the people to alert, the account's messenger, and alerting."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from connectors.sms.phone import InvalidPhone, normalize_phone
from jobs import context
from reglament.crm import Call, CallDirection, CallStatus


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


def call_of(account: str, fields: dict) -> Call:
    """A call.ended event's call; the CRM is asked for the outcome only when the event left it out."""
    outcome = fields.get("outcome")
    status = CallStatus(outcome) if outcome in CallStatus._value2member_map_ else \
        context.crm_for(account).call_outcome(fields.get("ref"))
    return Call(id=str(fields.get("call_id")),
                direction=CallDirection.IN if fields.get("direction") == "in" else CallDirection.OUT,
                status=status, at=moment(fields.get("at")) or datetime.now(timezone.utc),
                duration=int(fields.get("duration") or 0), responsible_id=fields.get("user_id"))


def person(account: str, user_id: int | None) -> dict | None:
    """A CRM user as the messenger's recipient."""
    if not user_id:
        return None
    return {"name": context.crm_for(account).user_name(user_id) or str(user_id), "id": str(user_id)}


def head_of(account: str, manager_name: str | None) -> dict | None:
    """The head of the department whose managers include this manager (by CRM user name)."""
    from reglament.names import same_name

    for dept in context.account(account).departments:
        if manager_name and any(same_name(m, manager_name) for m in dept.managers):
            users = context.crm_for(account).users()
            head_id = next((i for i, n in users.items() if same_name(n, dept.head)), None)
            return {"name": dept.head, "id": str(head_id) if head_id else None}
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
