"""Scrubbing secrets out of text before it reaches a log line or an exception message.

Tokens rotate at run time (OAuth), so the logging handler's list of configured
secrets is not enough: every connector passes its current secrets here itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "***"
BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
# Too-short strings would blank out ordinary words; real tokens are long.
MIN_SECRET_LENGTH = 6


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with each secret and any bearer token replaced by ***."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return BEARER.sub(lambda m: m.group(1) + REDACTED, text)

