"""Calls of an outside PBX: telephony.externalcall.register/finish and voximplant.statistic.get.

register/finish work only with an application's token: through an incoming webhook they
answer WRONG_AUTH_TYPE (CONFIRMED). finish writes the statistic record, logs a
VOXIMPLANT_CALL activity in the client's timeline and sends ONVOXIMPLANTCALLEND with the
call's fields (CONFIRMED: the event fires for externalcall.finish too). The activity is the
client's only (OWNER the contact, company or lead register named, as the docs' call
activity's OWNER_TYPE_ID 3); whether a real portal also binds it to the contact's open deal
is UNCONFIRMED, and the connector reads both. The client is the
one named in register (CRM_ENTITY_TYPE/CRM_ENTITY_ID), else a contact, else a lead with
that phone; with CRM_CREATE=1 and nobody found, a new lead.
"""

from __future__ import annotations

import copy
import secrets
from . import activities, crm, errors
from .errors import ApiError
from .filters import Matcher, order_by, page, to_timestamp
from .params import Params, to_int
from .phones import phone_key
from .portal import Caller, Portal

CALL_TYPES = {1, 2, 3, 4, 5}      # outgoing, incoming, incoming redirected, callback, informational
ENTITY_TYPES = {"LEAD": 1, "CONTACT": 3}
KINDS = {"ID": "int", "PORTAL_USER_ID": "int", "PORTAL_NUMBER": "string", "PHONE_NUMBER": "string",
         "CALL_ID": "string", "EXTERNAL_CALL_ID": "string", "CALL_CATEGORY": "string", "CALL_DURATION": "int",
         "CALL_START_DATE": "datetime", "CALL_VOTE": "int", "COST": "double", "COST_CURRENCY": "string",
         "CALL_FAILED_CODE": "string", "CALL_FAILED_REASON": "string", "CRM_ENTITY_TYPE": "string",
         "CRM_ENTITY_ID": "int", "CRM_ACTIVITY_ID": "int", "REST_APP_ID": "int", "REST_APP_NAME": "string",
         "CALL_TYPE": "int", "COMMENT": "string"}
FAILED_REASONS = {"200": "", "304": "Missed call", "603": "Call declined", "603-S": "Call canceled",
                  "486": "Busy", "480": "Temporarily unavailable", "404": "Invalid number"}


def _core(description: str) -> ApiError:
    return ApiError(400, "ERROR_CORE", description)


def _app_only(caller: Caller) -> None:
    if caller.kind == "webhook":
        raise errors.wrong_auth_type()


def _user(portal: Portal, params: Params) -> int:
    if params.get("USER_ID") not in (None, ""):
        user = to_int(params.get("USER_ID"), "USER_ID")
    elif params.get("USER_PHONE_INNER") not in (None, ""):
        inner = params.str("USER_PHONE_INNER")
        user = next((u for u, d in portal.users.items() if d.get("UF_PHONE_INNER") == inner), 0)
    else:
        raise _core("USER_ID or USER_PHONE_INNER should be set")
    if user not in portal.users:
        raise _core("User is not found or is not active")
    return user


def find_client(portal: Portal, phone: str) -> tuple[str, int] | None:
    """A contact, else a lead, with this phone (lowest id first)."""
    key = phone_key(phone)
    for name, store in (("CONTACT", portal.contacts), ("LEAD", portal.leads)):
        for entity_id in sorted(store):
            if any(phone_key(m["VALUE"]) == key for m in store[entity_id].get("PHONE") or []):
                return name, entity_id
    return None


def register(portal: Portal, params: Params, caller: Caller) -> dict:
    _app_only(caller)
    created_lead = None
    with portal.lock:
        user = _user(portal, params)
        phone = params.str("PHONE_NUMBER").strip()
        if not phone or len(phone_key(phone)) < 5:
            raise _core("Unsupported phone number format")
        call_type = params.int("TYPE", 0)
        if call_type not in CALL_TYPES:
            raise _core("Unknown TYPE")
        start = portal.now()
        if params.get("CALL_START_DATE") not in (None, ""):
            start = to_timestamp(params.get("CALL_START_DATE"), portal.tz)
            if start is None:
                raise _core("CALL_START_DATE should be in the ISO-8601 format")
        entity_type = params.str("CRM_ENTITY_TYPE").upper()
        if entity_type in ENTITY_TYPES and params.get("CRM_ENTITY_ID") not in (None, ""):
            client = (entity_type, to_int(params.get("CRM_ENTITY_ID"), "CRM_ENTITY_ID"))
        else:
            client = find_client(portal, phone)
        if client is None and str(params.get("CRM_CREATE") or "0") in ("1", "Y", "true"):
            created_lead = crm.add(portal, crm.LEAD, {"TITLE": f"Звонок {phone}", "SOURCE_ID": "CALL",
                                                      "ASSIGNED_BY_ID": user,
                                                      "PHONE": [{"VALUE": phone, "VALUE_TYPE": "WORK"}]},
                                   caller, silent=True)
            client = ("LEAD", created_lead)
        call_id = f"externalCall.{secrets.token_hex(16)}.{int(portal.now())}"
        portal.calls[call_id] = {"CALL_ID": call_id, "USER_ID": user, "PHONE_NUMBER": phone, "TYPE": call_type,
                                 "START": start, "LINE_NUMBER": params.str("LINE_NUMBER"),
                                 "EXTERNAL_CALL_ID": params.get("EXTERNAL_CALL_ID"),
                                 "CLIENT": client, "RECORD": None}
    if created_lead:
        portal.emit("ONCRMLEADADD", {"FIELDS": {"ID": str(created_lead)}}, caller)
    return {"CALL_ID": call_id, "CRM_CREATED_LEAD": created_lead,
            "CRM_CREATED_ENTITIES": [{"ENTITY_TYPE": "LEAD", "ENTITY_ID": created_lead}] if created_lead else [],
            "CRM_ENTITY_TYPE": client[0] if client else "", "CRM_ENTITY_ID": client[1] if client else 0}


def finish(portal: Portal, params: Params, caller: Caller) -> dict:
    _app_only(caller)
    with portal.lock:
        call = portal.calls.get(params.str("CALL_ID"))
        if call is None or call["RECORD"] is not None:
            raise _core("Call is not found")
        user = _user(portal, params)
        duration = params.int("DURATION", 0)
        code = params.str("STATUS_CODE") or ("200" if duration > 0 else "304")
        reason = params.str("FAILED_REASON") or FAILED_REASONS.get(code, "")
        incoming = call["TYPE"] in (2, 3)
        client = call["CLIENT"]
        activity_id = None
        if client and activities.owner_exists(portal, ENTITY_TYPES[client[0]], client[1]):
            subject = ("Входящий звонок" if incoming else "Исходящий звонок") + f" {call['PHONE_NUMBER']}"
            activity_id = activities.add(
                portal, ENTITY_TYPES[client[0]], client[1], activities.CALL, caller, subject=subject,
                deadline=call["START"], responsible=user, completed=True, direction=1 if incoming else 2,
                communications=[{"VALUE": call["PHONE_NUMBER"], "ENTITY_ID": str(client[1]),
                                 "ENTITY_TYPE_ID": str(ENTITY_TYPES[client[0]]), "TYPE": "PHONE"}], silent=True)
            # The call's end: its start plus the talk (UNCONFIRMED; the docs' example shows both times).
            portal.activities[activity_id]["END_TIME"] = portal.iso(call["START"] + duration)
        record_id = portal.new_id("call")
        record = {"ID": str(record_id), "PORTAL_USER_ID": str(user),
                  "PORTAL_NUMBER": call["LINE_NUMBER"] or "REST_APP:", "PHONE_NUMBER": call["PHONE_NUMBER"],
                  "CALL_ID": call["CALL_ID"], "EXTERNAL_CALL_ID": call["EXTERNAL_CALL_ID"],
                  "CALL_CATEGORY": "external", "CALL_LOG": None, "CALL_DURATION": str(duration),
                  "CALL_START_DATE": portal.iso(call["START"]), "CALL_RECORD_URL": params.get("RECORD_URL"),
                  "CALL_VOTE": params.str("VOTE") or None, "COST": f"{float(params.get('COST') or 0):.4f}",
                  "COST_CURRENCY": params.str("COST_CURRENCY"), "CALL_FAILED_CODE": code,
                  "CALL_FAILED_REASON": reason, "CRM_ENTITY_TYPE": client[0] if client else None,
                  "CRM_ENTITY_ID": str(client[1]) if client else None,
                  "CRM_ACTIVITY_ID": str(activity_id) if activity_id else None, "REST_APP_ID": "1",
                  "REST_APP_NAME": "Reglament sandbox PBX", "TRANSCRIPT_ID": None, "TRANSCRIPT_PENDING": "N",
                  "SESSION_ID": None, "REDIAL_ATTEMPT": None, "COMMENT": None, "RECORD_DURATION": None,
                  "RECORD_FILE_ID": None, "CALL_TYPE": str(call["TYPE"])}
        call["RECORD"] = record
    if activity_id:
        portal.emit("ONCRMACTIVITYADD", {"FIELDS": {"ID": str(activity_id)}}, caller)
    portal.emit("ONVOXIMPLANTCALLEND", {k: record[k] or "" for k in (
        "CALL_ID", "CALL_TYPE", "PHONE_NUMBER", "PORTAL_NUMBER", "PORTAL_USER_ID", "CALL_DURATION", "CALL_START_DATE",
        "COST", "COST_CURRENCY", "CALL_FAILED_CODE", "CALL_FAILED_REASON", "CRM_ACTIVITY_ID")}, caller)
    return {"CALL_ID": record["CALL_ID"], "EXTERNAL_CALL_ID": record["EXTERNAL_CALL_ID"], "PORTAL_USER_ID": user,
            "PHONE_NUMBER": record["PHONE_NUMBER"], "PORTAL_NUMBER": record["PORTAL_NUMBER"],
            "INCOMING": record["CALL_TYPE"], "CALL_DURATION": duration, "CALL_START_DATE": {},
            "CALL_STATUS": 1 if code == "200" else 0, "CALL_VOTE": int(record["CALL_VOTE"]) if record["CALL_VOTE"] else None,
            "COST": float(record["COST"]), "COST_CURRENCY": record["COST_CURRENCY"], "CALL_FAILED_CODE": code,
            "CALL_FAILED_REASON": reason, "REST_APP_ID": record["REST_APP_ID"], "REST_APP_NAME": record["REST_APP_NAME"],
            "CRM_ACTIVITY_ID": activity_id, "COMMENT": None, "CRM_ENTITY_TYPE": record["CRM_ENTITY_TYPE"],
            "CRM_ENTITY_ID": client[1] if client else None, "ID": record_id}


def statistic(portal: Portal, params: Params) -> tuple[list[dict], int | None, int | None]:
    with portal.lock:
        match = Matcher(params.dict("FILTER"), KINDS, portal.tz)
        found = [copy.deepcopy(c["RECORD"]) for c in portal.calls.values() if c["RECORD"] and match(c["RECORD"])]
    sort = params.str("SORT") or "CALL_START_DATE"
    found = order_by(found, {sort: params.str("ORDER") or "DESC"}, KINDS, portal.tz)
    return page(found, params.get("start"))

