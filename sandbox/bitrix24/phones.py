"""Telling phone numbers apart the way the sandbox matches them: by their last 10 digits.

"+7 916 123-45-01", "8 (916) 123-45-01" and "79161234501" are one number (Russian
numbers written with +7 or 8). Bitrix24's own normalisation is not documented (UNCONFIRMED).
"""

from __future__ import annotations

import re


def phone_key(value) -> str:
    digits = re.sub(r"\D", "", str(value or ""))
    return digits[-10:] if len(digits) >= 10 else digits
