"""SMS.ru (messaging.md §2.1): POST https://sms.ru/sms/send, form fields api_id, to, msg, json=1.

Answer with json=1 (CONFIRMED):
    {"status": "OK", "status_code": 100,
     "sms": {"79255070602": {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"},
             "74993221627": {"status": "ERROR", "status_code": 207, "status_text": "..."}},
     "balance": 4122.56}
The top-level status is about the request (key, sender...), each number has its own.
A request-level failure is read as {"status": "ERROR", "status_code": 200, "status_text": "..."}
(shape UNCONFIRMED; consistent with the per-number object).
"""

from __future__ import annotations

from connectors.outbox import AlreadySent, OutcomeUnknown
from connectors.sms.base import SmsSender, as_int

URL = "https://sms.ru/sms/send"

# Codes CONFIRMED (code) from a public SMS.ru client's enum (messaging.md §2.1).
CODES = {
    200: "wrong api_id", 201: "insufficient funds", 202: "invalid recipient number", 203: "no message text",
    204: "sender name not approved with the operator", 205: "message too long (over 8 SMS)",
    206: "daily limit exceeded", 207: "cannot send to this number", 208: "invalid time",
    209: "number is in the stop list", 210: "wrong HTTP method", 211: "method not found",
    212: "text must be UTF-8", 213: "too many recipients", 214: "foreign number (international sending is off)",
    215: "number is in the spam list", 216: "forbidden message or word", 220: "service temporarily unavailable",
    230: "daily message limit for this number exceeded", 231: "same message to this number within a minute",
    232: "same message to this number within a day", 233: "too many code attempts",
    300: "invalid token", 301: "wrong login or password", 302: "account not confirmed", 500: "server error",
}
# "Service unavailable" and "server error" are worth retrying later (engineering advice, UNCONFIRMED).
RETRYABLE = {220, 500}
# The gateway refused a repeat of the very same text to the number: the client already has it.
DUPLICATE = {231, 232}


class SmsRu(SmsSender):
    provider = "smsru"
    title = "SMS.ru"
    default_url = URL

    def _submit(self, number: str, text: str) -> str | None:
        data = {"api_id": self.settings.api_id, "to": number, "msg": text, "json": 1}
        if self.settings.sender:
            data["from"] = self.settings.sender  # parameter name UNCONFIRMED (recalled)
        body = self._post(data)
        if str(body.get("status", "")).upper() != "OK":
            code = as_int(body.get("status_code"))
            raise self._refused(code, CODES, body.get("status_text"), retryable=code in RETRYABLE)
        per_number = body.get("sms") if isinstance(body.get("sms"), dict) else {}
        entry = per_number.get(number)
        if entry is None and len(per_number) == 1:
            entry = next(iter(per_number.values()))  # the gateway may have re-spelled the number
        if not isinstance(entry, dict):
            raise OutcomeUnknown("SMS.ru accepted the request but did not report on the number; "
                                 "the message may have been sent")
        if str(entry.get("status", "")).upper() == "OK":
            return str(entry["sms_id"]) if entry.get("sms_id") else None
        code = as_int(entry.get("status_code"))
        if code in DUPLICATE:
            raise AlreadySent(None)
        raise self._refused(code, CODES, entry.get("status_text"), retryable=code in RETRYABLE)
