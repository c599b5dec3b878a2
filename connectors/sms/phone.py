"""Phone numbers as SMS gateways and WhatsApp want them: international digits, no "+".

CRMs hold numbers as people typed them: "+7 (901) 111-22-33", "8 901 111 22 33",
"9011112233". Russian habits are assumed when the country is missing (the default
country code is 7): a leading 8 is the domestic trunk prefix, ten digits lack the 7.
"""

from __future__ import annotations

import re

from connectors.http import ConnectorError

DEFAULT_COUNTRY = "7"


class InvalidPhone(ConnectorError, ValueError):
    """Not something a message can be sent to."""


def normalize_phone(raw: str | int, default_country: str = DEFAULT_COUNTRY) -> str:
    """`raw` as international digits, e.g. "79011112233"; raises InvalidPhone."""
    text = str(raw).strip()
    digits = re.sub(r"\D", "", text)
    international = text.startswith("+")
    if text.startswith("00"):
        digits, international = digits[2:], True
    if not international and default_country == "7":
        if len(digits) == 11 and digits.startswith("8"):
            digits = "7" + digits[1:]
        elif len(digits) == 10:
            digits = "7" + digits
    if not 10 <= len(digits) <= 15 or digits.startswith("0"):
        # The number itself is not a secret, but keep errors short in logs.
        raise InvalidPhone(f"not a phone number: {text[:40]!r}")
    return digits
