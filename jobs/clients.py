"""Who a phone number belongs to: the client's active lead and manager, found through the
CRM's contacts and cached in Redis (calls, chats and the first-contact rule ask often)."""

from __future__ import annotations

import json

from jobs import context
from jobs.support import phone_digits
from reglament import keys

NEGATIVE_TTL = 60        # seconds a "no contact has this number" answer is kept
ACTIVE_LEAD_CANDIDATES = 5


def _key(account: str, number: str) -> str:
    return keys.key(account, "calls", "phone", number)


def find_client(account: str, phone: str | None, *, ttl: int = 3600, fresh: bool = False) -> dict | None:
    """{"lead_id", "responsible_id", "name", "contact_id"} for the client with this phone:
    their newest active lead; cached in Redis for `ttl` seconds. A returning client (a
    contact, but no active lead) has lead_id None and the responsible of their newest closed
    lead (or the contact's); None when no contact has the number."""
    number = phone_digits(phone)
    if not number:
        return None
    r = context.redis_client()
    if not fresh:
        raw = r.get(_key(account, number))
        if raw is not None:
            return json.loads(raw)
    crm = context.crm_for(account)
    found = returning = None
    for contact in crm.contacts_by_phone(number):
        person = {"name": contact.name, "contact_id": contact.id, "responsible_id": contact.responsible_id}
        for lead_id in sorted(contact.lead_ids, reverse=True)[:ACTIVE_LEAD_CANDIDATES]:
            lead = crm.get_lead(lead_id)
            if lead is None:
                continue
            manager = lead.responsible_id or contact.responsible_id
            if lead.closed:
                # A closed lead: the client returns to the manager of their newest one.
                if returning is None:
                    returning = {**person, "lead_id": None, "responsible_id": manager}
                continue
            if found is None or lead_id > found["lead_id"]:
                found = {**person, "lead_id": lead_id, "responsible_id": manager}
            break
        if returning is None:
            returning = {**person, "lead_id": None}
    found = found or returning
    r.set(_key(account, number), json.dumps(found), ex=ttl if found and found["lead_id"] else min(ttl, NEGATIVE_TTL))
    return found


def cached_client(account: str, phone: str | None) -> tuple[bool, dict | None]:
    """(known, client) from find_client's cache alone, without asking the CRM."""
    number = phone_digits(phone)
    raw = context.redis_client().get(_key(account, number)) if number else None
    return (False, None) if raw is None else (True, json.loads(raw))


def remember_client(account: str, phone: str | None, client: dict, ttl: int = 3600) -> None:
    number = phone_digits(phone)
    if number:
        context.redis_client().set(_key(account, number), json.dumps(client), ex=ttl)


def leads_of_phone(account: str, phone: str | None) -> list[int]:
    """Every lead of every contact with this phone."""
    number = phone_digits(phone)
    if not number:
        return []
    return [i for c in context.crm_for(account).contacts_by_phone(number) for i in c.lead_ids]
