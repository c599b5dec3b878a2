"""Event ids shaped like amoCRM's: 26-character lower-case ULIDs (01drbfj5a8k9zd60bgg907a6w9).

Monotonic within one generator, so sorting ids as strings sorts events by creation.
"""

from __future__ import annotations

import os
import threading
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 32)
        chars.append(ALPHABET[rest])
    return "".join(reversed(chars))


class UlidGenerator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def new(self, at: float | None = None) -> str:
        ms = int((time.time() if at is None else at) * 1000)
        with self._lock:
            if ms <= self._last_ms:
                # Same (or an earlier, shifted-clock) millisecond: count up so order still holds.
                ms = self._last_ms
                self._last_random += 1
            else:
                self._last_random = int.from_bytes(os.urandom(10), "big") >> 1
            self._last_ms = ms
            return _encode(ms, 10) + _encode(self._last_random, 16)
