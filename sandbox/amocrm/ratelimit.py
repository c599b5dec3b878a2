"""amoCRM's request limit: at most `rate` requests in any sliding 1-second window (7 by default, CONFIRMED).

Only accepted requests occupy the window, so a client that backs off after a 429 gets in
again as soon as the window has room.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable


class SlidingWindowLimiter:
    def __init__(self, rate: float, window: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.window = window
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if not self.rate or self.rate <= 0:
            return True  # 0 or None disables the limit (benchmarks that measure the client only)
        with self._lock:
            now = self._clock()
            while self._times and self._times[0] <= now - self.window:
                self._times.popleft()
            if len(self._times) + 1 > self.rate:
                return False
            self._times.append(now)
            return True
