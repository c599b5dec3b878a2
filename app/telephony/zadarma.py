"""Zadarma call notifications (form fields; messaging.md §3.3).

Signed with the `Signature` header: base64 of the lowercase hex HMAC-SHA1 of a per-event
string, keyed with the API secret. The strings for NOTIFY_END (caller_id + called_did +
call_start) and NOTIFY_OUT_END (internal + destination + call_start) are CONFIRMED in
Zadarma's official PHP library (lib/Webhook/NotifyEnd.php, NotifyOutEnd.php). Only those
two end-of-call events become events; the others are acknowledged and ignored, unverified,
since nothing acts on them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from app import php_form
from app.errors import Rejected
from app.telephony.call import Parsed, call_event

SIGNED = {
    "NOTIFY_END": ("caller_id", "called_did", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
}


def fields_of(body: bytes) -> dict[str, str]:
    try:
        return dict(php_form.pairs(body.decode("utf-8")))
    except (php_form.FormError, UnicodeDecodeError) as e:
        raise Rejected(f"body is not a Zadarma notification: {e}")


def signature(fields: dict[str, str], secret: str) -> str:
    signed = "".join(fields.get(name, "") for name in SIGNED[fields["event"]])
    hexdigest = hmac.new(secret.encode(), signed.encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(hexdigest.encode()).decode()


def verify(fields: dict[str, str], header: str | None, secret: str) -> None:
    if fields.get("event") not in SIGNED:
        return
    # compare_digest refuses non-ASCII str, and a header may hold anything: compare bytes.
    if not header or not hmac.compare_digest(signature(fields, secret).encode(), header.strip().encode()):
        raise Rejected("Zadarma signature does not match", 403, "bad_signature")


def parse(body: bytes, account: str, full: bool = True) -> Parsed:
    f = fields_of(body)
    event = f.get("event")
    if not event:
        raise Rejected("no event field: not a Zadarma notification")
    if event not in SIGNED:
        return Parsed(events=[], ignored=[event])
    call_id = f.get("pbx_call_id")
    if not call_id:
        raise Rejected(f"{event} has no pbx_call_id")
    incoming = event == "NOTIFY_END"
    duration = int(f["duration"]) if f.get("duration", "").isdigit() else None
    return Parsed(events=[call_event(
        account, "zadarma", call_id, incoming, f.get("disposition") == "answered",
        client_phone=f.get("caller_id") if incoming else f.get("destination"),
        our_number=f.get("called_did") if incoming else f.get("caller_id"),
        extension=f.get("internal"), started_at=f.get("call_start"), duration=duration,
        result=f.get("disposition"), raw_event=event,
    )])
