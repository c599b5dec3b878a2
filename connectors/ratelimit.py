"""One request budget shared by every process (web, workers, scheduler) through Redis.

The algorithm is GCRA (generic cell rate algorithm): Redis keeps one number, the
"theoretical arrival time" (tat), where the budget would stand if every request so far
had been spaced one interval apart. A caller may go while tat is at most
(burst - 1) intervals ahead of now, and pushes it one interval further; any other caller
learns how long to wait. With burst 1 (amoCRM) requests are simply spaced; with burst B
(Bitrix24's leaky bucket: 50) B requests may go at once after a quiet spell, then one per
interval, which is exactly a leaky bucket of depth B draining at the rate. Nothing is reserved while waiting, so a process
that dies or wakes late costs no slot, and two allowed requests are always at least one
interval apart on Redis's clock, however late a sleeper wakes.

Why a margin: the remote side counts requests in a sliding 1-second window. With the
interval exactly 1/rate, rate+1 evenly spaced requests fit in a closed 1 s window, and
the time between our Redis check and the request leaving adds jitter. Spacing requests
at 1/(rate * (1 - margin)) keeps every 1 s window at `rate` or fewer as long as that
jitter stays under margin/(1 - margin) seconds (about 50 ms at the default 5 %),
while still using (1 - margin) of the budget. The burst keeps the same margin (50 becomes
47): a request admitted here may reach the remote bucket after later ones, and then counts
in its level when our tat has already moved on.

Waiting, or going back. A job of one account must not hold a worker that other accounts'
work needs: inside `waiting_at_most(seconds)` (the jobs layer sets it around every batch
job) a caller sleeps only when its turn comes within that many seconds, and otherwise
raises OverLimit with the moment its budget allows, so that the job can be deferred to
then (Sidekiq Enterprise's limiters do the same: a short wait_timeout, then OverLimit and
a rescheduled job). Outside it (the CLI, the sweep) callers sleep as long as it takes.

Trouble. When the remote side answers 429 or 5xx, or fails, `pause` pushes the account's
moment into the future (exponential in the strikes since the last success, or what
Retry-After asks) and records why: every process then stops calling that account for a
while, its jobs go back, and other accounts are untouched. The first success after a
pause clears the record (`recovered`).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import redis

# KEYS[1] holds the theoretical arrival time in microseconds of Redis's clock; KEYS[2] the
# trouble hash (reason, strikes, until). ARGV[1] is the interval between requests in microseconds,
# ARGV[2] how far ahead of now tat may stand ((burst - 1) intervals). A pause holds until its
# `until` whatever the burst. Returns {0, troubled} when the caller may go now, else
# {microseconds to wait, troubled, reason}.
GCRA = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local ahead = tonumber(ARGV[2] or '0')
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local troubled = redis.call('EXISTS', KEYS[2])
local wait = tat - now - ahead
if troubled == 1 then
  wait = math.max(wait, tonumber(redis.call('HGET', KEYS[2], 'until') or '0') - now)
end
if wait > 0 then
  return {math.ceil(wait), troubled, redis.call('HGET', KEYS[2], 'reason') or ''}
end
tat = math.max(tat, now) + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return {0, troubled, ''}
"""

# One more strike against the account: its moment moves to now + max(ARGV[1], base * 2^(strikes-1)
# capped at ARGV[3]), never back. ARGV: at least (us), base (us), cap (us), reason, keep (ms), and
# the limiter's burst allowance (us): tat goes that much further, so that after the pause requests
# go one interval apart (the remote bucket that refused us is full) rather than in a burst.
# Returns the microseconds until the account may call again.
PAUSE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local strikes = redis.call('HINCRBY', KEYS[2], 'strikes', 1)
local pause = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (strikes - 1))
pause = math.max(pause, tonumber(ARGV[1]))
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local ahead = tonumber(ARGV[6] or '0')
local until_ = math.max(tat - ahead, now + pause)
redis.call('SET', KEYS[1], string.format('%.0f', until_ + ahead), 'PX', math.ceil((until_ + ahead - now) / 1000) + 1000)
redis.call('HSET', KEYS[2], 'reason', ARGV[4], 'until', string.format('%.0f', until_))
redis.call('PEXPIRE', KEYS[2], math.max(tonumber(ARGV[5]), math.ceil((until_ - now) / 1000) + 60000))
return math.ceil(until_ - now)
"""

DEFAULT_MARGIN = 0.05
PAUSE_BASE = 0.5     # seconds of the first pause after a failure; doubles with every strike
PAUSE_CAP = 60.0     # the longest pause strikes alone cause (Retry-After may ask for more)
TROUBLE_KEEP = 600   # seconds a trouble record outlives its pause, so that strikes add up

_max_wait: ContextVar[float | None] = ContextVar("max_wait", default=None)


class OverLimit(Exception):
    """The account's budget allows the next request only in `retry_in` seconds, longer than
    the caller may wait; `reason` is why ("budget" when it is simply spent, else the trouble
    that paused the account: "429", "5xx", "network", "auth", "config")."""

    def __init__(self, key: str, retry_in: float, reason: str = "budget"):
        self.key, self.retry_in, self.reason = key, retry_in, reason or "budget"
        super().__init__(f"request budget of {key} spent for {retry_in:.2f} s ({self.reason})")


@contextlib.contextmanager
def waiting_at_most(seconds: float | None) -> Iterator[None]:
    """Within this block, acquire() sleeps at most `seconds` in all, then raises OverLimit."""
    token = _max_wait.set(seconds)
    try:
        yield
    finally:
        _max_wait.reset(token)


def wait_allowed() -> float | None:
    """The seconds a caller here may still wait for its turn (None: as long as it takes)."""
    return _max_wait.get()


@dataclass(frozen=True)
class State:
    """An account's budget as /metrics and the dashboard show it."""
    wait: float        # seconds until the next request may go
    reason: str        # "" when nothing is wrong; else what paused it last
    strikes: int       # failures since the last success


def trouble_key(key: str) -> str:
    return f"{key}:trouble"


def state(r: redis.Redis, key: str) -> State:
    with r.pipeline(transaction=False) as p:
        p.get(key)
        p.hgetall(trouble_key(key))
        p.time()
        tat, trouble, (sec, micro) = p.execute()
    now_us = sec * 1_000_000 + micro
    trouble = {k.decode(): v.decode() for k, v in trouble.items()}
    return State(wait=max(0.0, (float(tat or 0) - now_us) / 1e6), reason=trouble.get("reason", ""),
                 strikes=int(trouble.get("strikes", 0)))


def pause(r: redis.Redis, key: str, reason: str, at_least: float = 0.0, *, ahead_us: int = 0) -> float:
    """One more strike against the budget at `key`: nobody calls for a while, at least
    `at_least` seconds (a Retry-After). Returns the seconds until the next call may go."""
    us = r.register_script(PAUSE)(keys=[key, trouble_key(key)],
                                  args=[int(at_least * 1e6), int(PAUSE_BASE * 1e6), int(PAUSE_CAP * 1e6), reason,
                                        TROUBLE_KEEP * 1000, int(ahead_us)])
    return int(us) / 1_000_000


class RateLimiter:
    """At most `rate_per_second` requests per second across every process sharing `key`.

    `key` must come from reglament.keys.key(...) so it belongs to an account.
    """

    def __init__(self, r: redis.Redis, key: str, rate_per_second: float, *, burst: int = 1,
                 margin: float = DEFAULT_MARGIN, sleep: Callable[[float], None] = time.sleep):
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        if not 0 <= margin < 1:
            raise ValueError("margin must be in [0, 1)")
        self.r = r
        self.key = key
        self.rate = rate_per_second
        self.interval_us = int(1_000_000 / (rate_per_second * (1 - margin)))
        self.burst = max(1, math.floor(burst * (1 - margin)))
        self.ahead_us = (self.burst - 1) * self.interval_us
        self.troubled = False  # whether the last acquire found a trouble record (see recovered)
        self._sleep = sleep
        self._script = r.register_script(GCRA)

    def acquire(self) -> None:
        """Take one request's turn: sleep until it comes or, inside waiting_at_most(), raise
        OverLimit when it comes later than the caller may wait."""
        allowed = _max_wait.get()
        waited = 0.0
        while True:
            wait_us, troubled, reason = self._script(keys=[self.key, trouble_key(self.key)],
                                                     args=[self.interval_us, self.ahead_us])
            self.troubled = bool(troubled)
            if int(wait_us) <= 0:
                return
            wait = int(wait_us) / 1_000_000
            if allowed is not None and waited + wait > allowed:
                raise OverLimit(self.key, wait, reason.decode() if isinstance(reason, bytes) else reason)
            # A little jitter so waiters woken for the same slot do not hit Redis in lockstep.
            self._sleep(wait + random.uniform(0, 0.001))
            waited += wait

    def pause(self, reason: str, at_least: float = 0.0) -> float:
        """One more strike: no request of this account goes for a while (seconds returned)."""
        self.troubled = True
        return pause(self.r, self.key, reason, at_least, ahead_us=self.ahead_us)

    def recovered(self) -> None:
        """A request succeeded: forget the strikes (only costs a call after trouble)."""
        if self.troubled:
            self.r.delete(trouble_key(self.key))
            self.troubled = False

    def __repr__(self) -> str:
        return f"RateLimiter(key={self.key!r}, rate={self.rate}/s, burst={self.burst})"
