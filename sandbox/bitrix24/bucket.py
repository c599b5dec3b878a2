"""Bitrix24's request limit: a leaky bucket per portal (CONFIRMED, limits.md).

Every request adds one to a counter that drains at `rate` per second; a request that
would lift it above `burst` gets 503 QUERY_LIMIT_EXCEEDED. Common plans: 2 per second,
burst 50; Enterprise: 5 and 250. A batch is one request. Refused requests do not fill
the bucket (UNCONFIRMED). The clock is the portal's, so tests move time instead of sleeping.
"""

from __future__ import annotations

import threading
from typing import Callable


class LeakyBucket:
    def __init__(self, rate: float = 2.0, burst: int = 50, clock: Callable[[], float] | None = None):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._level = 0.0
        self._at: float | None = None
        self._lock = threading.Lock()

    def _drain(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._level = max(0.0, self._level - (now - self._at) * self.rate)
        self._at = now if self._at is None else max(self._at, now)

    def allow(self) -> bool:
        if not self.rate or self.rate <= 0:
            return True   # 0 disables the limit (benchmarks that measure the client alone)
        with self._lock:
            self._drain(self._clock())
            if self._level + 1 > self.burst:
                return False
            self._level += 1
            return True

    def level(self) -> float:
        with self._lock:
            if self.rate and self.rate > 0:
                self._drain(self._clock())
            return self._level
