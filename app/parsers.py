"""Parser of each webhook source, for the dispatcher and replay to re-parse stored bodies."""

from app.amocrm import parser as amocrm
from app.bitrix24 import parser as bitrix24
from app.telephony import mango, zadarma
from app.wazzup import parser as wazzup

PARSERS = {"amocrm": amocrm.parse, "bitrix24": bitrix24.parse, "wazzup": wazzup.parse,
           "telephony.zadarma": zadarma.parse, "telephony.mango": mango.parse}


def parse(source: str, body: bytes, account: str):
    return PARSERS[source](body, account)
