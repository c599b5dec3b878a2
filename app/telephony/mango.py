"""Mango Office VPBX notifications (form fields vpbx_api_key, sign, json; messaging.md §3.2).

`sign` = sha256_hex(vpbx_api_key + json + vpbx_api_salt) — CONFIRMED from public code for
commands; using the same check on notifications is UNCONFIRMED but consistent with them.
Mango posts to <our URL>/events/<name>; only events/summary (one per finished call, with
call_direction 1 = incoming, 2 = outgoing and entry_result 1 = talked, 0 = missed,
CONFIRMED) becomes an event. Fields beyond those are read defensively (UNCONFIRMED).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from app import php_form
from app.errors import Rejected
from app.telephony.call import Parsed, call_event


def fields_of(body: bytes) -> dict[str, str]:
    try:
        f = dict(php_form.pairs(body.decode("utf-8")))
    except (php_form.FormError, UnicodeDecodeError) as e:
        raise Rejected(f"body is not a Mango notification: {e}")
    for name in ("vpbx_api_key", "sign", "json"):
        if not f.get(name):
            raise Rejected(f"Mango notification without {name}")
    return f


def verify(fields: dict[str, str], api_key: str, api_salt: str) -> None:
    expected = hashlib.sha256((api_key + fields["json"] + api_salt).encode()).hexdigest()
    # Bytes, not str: compare_digest refuses non-ASCII str, and these fields may hold anything.
    if not (hmac.compare_digest(fields["vpbx_api_key"].encode(), api_key.encode())
            and hmac.compare_digest(expected.encode(), fields["sign"].lower().encode())):
        raise Rejected("Mango signature does not match", 403, "bad_signature")


def parse(body: bytes, account: str, full: bool = True, event_name: str = "summary") -> Parsed:
    f = fields_of(body)
    try:
        data = json.loads(f["json"])
    except ValueError as e:
        raise Rejected(f"Mango json field is not JSON: {e}")
    if not isinstance(data, dict):
        raise Rejected("Mango json field must be an object")
    if "call_direction" not in data or "entry_result" not in data:
        # events/call, events/recording, events/dtmf ...: nothing acts on them.
        return Parsed(events=[], ignored=[f"mango.{event_name}"])
    direction, result = data.get("call_direction"), data.get("entry_result")
    if direction not in (1, 2) or result not in (0, 1):
        return Parsed(events=[], ignored=[f"mango.summary.direction_{direction}"])
    call_id = data.get("entry_id")
    if not isinstance(call_id, str) or not call_id:
        raise Rejected("Mango summary without entry_id")
    incoming = direction == 1
    client, ours = (data.get("from"), data.get("to")) if incoming else (data.get("to"), data.get("from"))
    client = client if isinstance(client, dict) else {}
    ours = ours if isinstance(ours, dict) else {}
    talk, end = data.get("talk_time"), data.get("end_time")
    duration = end - talk if isinstance(talk, int) and isinstance(end, int) and talk else 0
    return Parsed(events=[call_event(
        account, "mango", call_id, incoming, result == 1,
        client_phone=client.get("number"), our_number=data.get("line_number") or ours.get("number"),
        extension=ours.get("extension"), started_at=data.get("create_time"), duration=duration, result=str(data.get("disconnect_reason", "")) or None,
        raw_event="summary",
    )])
