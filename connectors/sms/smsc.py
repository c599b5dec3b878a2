"""SMSC.ru (messaging.md §2.2): POST https://smsc.ru/sys/send.php, form fields login, psw,
phones, mes, fmt=3 (JSON answer), charset=utf-8 (the default is windows-1251).

Answers with fmt=3:
    success  {"id": 123456, "cnt": 1}   (field set CONFIRMED, typing UNCONFIRMED: id may be a string)
    error    {"error": "описание", "error_code": 2}   (CONFIRMED; errors 3, 6, 7, 8 add "id")
Errors come in a 200 answer (HTTP status UNCONFIRMED), so the body decides.
"""

from __future__ import annotations

from connectors.outbox import AlreadySent, OutcomeUnknown
from connectors.sms.base import SmsSender, as_int

URL = "https://smsc.ru/sys/send.php"

CODES = {  # CONFIRMED
    1: "parameter error", 2: "wrong login or password", 3: "insufficient funds",
    4: "IP temporarily blocked after frequent errors", 5: "wrong date format",
    6: "message forbidden (text or sender name)", 7: "wrong phone format",
    8: "message cannot be delivered to this number",
    9: "identical send request within a minute",
}
RETRYABLE = {4}
# Anti-duplicate: an identical request within the last minute was sent; the client has the text.
DUPLICATE = {9}


class Smsc(SmsSender):
    provider = "smsc"
    title = "SMSC.ru"
    default_url = URL

    def _submit(self, number: str, text: str) -> str | None:
        data = {"login": self.settings.login, "psw": self.settings.password, "phones": number, "mes": text,
                "fmt": 3, "charset": "utf-8"}
        if self.settings.sender:
            data["sender"] = self.settings.sender
        body = self._post(data)
        if "error" in body or "error_code" in body:
            code = as_int(body.get("error_code"))
            if code in DUPLICATE:
                raise AlreadySent(None)
            raise self._refused(code, CODES, body.get("error"), retryable=code in RETRYABLE)
        if body.get("id") is None:
            raise OutcomeUnknown("SMSC.ru answered without a message id or an error; the message may have been sent")
        return str(body["id"])
