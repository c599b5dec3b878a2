"""One request budget shared by every process (web, workers, scheduler) through Redis.

The algorithm is GCRA (generic cell rate algorithm) without burst: Redis keeps one
number, the earliest moment the next request may go (the "theoretical arrival time").
A caller whose moment has come takes it and pushes it one interval further; any
other caller learns how long to wait, sleeps that long and asks again. Nothing is
reserved while sleeping, so a process that dies or wakes late costs no slot, and
two allowed requests are always at least one interval apart on Redis's clock,
however late a sleeper wakes.

Why a margin: the remote side counts requests in a sliding 1-second window. With the
interval exactly 1/rate, rate+1 evenly spaced requests fit in a closed 1 s window, and
the time between our Redis check and the request leaving adds jitter. Spacing requests
at 1/(rate * (1 - margin)) keeps every 1 s window at `rate` or fewer as long as that
jitter stays under margin/(1 - margin) seconds (about 50 ms at the default 5 %),
while still using (1 - margin) of the budget.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import redis

# KEYS[1] holds the theoretical arrival time in microseconds of Redis's clock.
# ARGV[1] is the interval between requests in microseconds.
# Returns 0 when the caller may go now, else the microseconds to wait.
GCRA = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat > now then
  return math.ceil(tat - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', now + interval), 'PX', math.ceil(interval / 1000) + 1000)
return 0
"""

DEFAULT_MARGIN = 0.05


class RateLimiter:
    """At most `rate_per_second` requests per second across every process sharing `key`.

    `key` must come from reglament.keys.key(...) so it belongs to an account.
    """

    def __init__(self, r: redis.Redis, key: str, rate_per_second: float, *, margin: float = DEFAULT_MARGIN,
                 sleep: Callable[[float], None] = time.sleep):
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be in [0, 1)")
        self.r = r
        self.key = key
        self.rate = rate_per_second
        self.interval_us = int(1_000_000 / (rate_per_second * (1 - margin)))
        self._sleep = sleep
        self._script = r.register_script(GCRA)

    def acquire(self) -> None:
        """Block (sleeping) until this process may send one request."""
        while True:
            wait_us = int(self._script(keys=[self.key], args=[self.interval_us]))
            if wait_us <= 0:
                return
            # A little jitter so waiters woken for the same slot do not hit Redis in lockstep.
            self._sleep(wait_us / 1_000_000 + random.uniform(0, 0.001))

    def __repr__(self) -> str:
        return f"RateLimiter(key={self.key!r}, rate={self.rate}/s)"
