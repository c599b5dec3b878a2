"""SMS through SMS.ru or SMSC.ru behind one interface, SmsSender.send(phone, text, action_key)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from connectors.sms.base import SmsError, SmsSender
from connectors.sms.phone import InvalidPhone, normalize_phone
from connectors.sms.smsc import Smsc
from connectors.sms.smsru import SmsRu

if TYPE_CHECKING:
    from reglament.messaging_settings import SmsSettings

PROVIDERS: dict[str, type[SmsSender]] = {"smsru": SmsRu, "smsc": Smsc}


def make_sms_sender(account_id: str, settings: SmsSettings, r: redis.Redis, **options) -> SmsSender:
    """The sender for the provider chosen in the configuration (`options` go to the client)."""
    return PROVIDERS[settings.provider](account_id, settings, r, **options)


__all__ = ["InvalidPhone", "PROVIDERS", "SmsError", "SmsRu", "SmsSender", "Smsc", "make_sms_sender",
           "normalize_phone"]
