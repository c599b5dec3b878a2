"""Fault injection for drills, both sandboxes: the API answers requests with errors for a
while, and can block a client that ignores its 429s (POST /_sandbox/faults, sandbox/controls.py).

- `inject(statuses, seconds)`: every API request (authenticated) is answered with the
  next status of `statuses` in turn until `seconds` have passed, in the sandbox's own
  error format (amoCRM: 429 with an empty body, 5xx as problem+json; Bitrix24: its
  {"error", "error_description"} bodies, sandbox/bitrix24/errors.py `injected`).
- `block_after`: amoCRM blocks a client that keeps exceeding the limit with 403
  (UNCONFIRMED: the reference recalls "repeated violations → 403", no numbers). Here, off by
  default; when set, more than `block_after` 429 answers within a minute block every
  request with 403 for `block_seconds`.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time


class Faults:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.lock = threading.Lock()
        self.statuses = itertools.cycle([])
        self.until = 0.0
        self.answered: collections.Counter[int] = collections.Counter()
        self.block_after = 0
        self.block_seconds = 60.0
        self.blocked_until = 0.0
        self.recent_429: collections.deque[float] = collections.deque()

    def inject(self, statuses: list[int], seconds: float) -> None:
        with self.lock:
            self.statuses = itertools.cycle(statuses)
            self.until = self.clock() + seconds if statuses else 0.0

    def set_block(self, after: int, seconds: float) -> None:
        with self.lock:
            self.block_after, self.block_seconds, self.blocked_until = after, seconds, 0.0
            self.recent_429.clear()

    def answer(self) -> int | None:
        """The status to answer this request with instead of serving it, if any."""
        with self.lock:
            now = self.clock()
            status = None
            if now < self.blocked_until:
                status = 403
            elif now < self.until:
                status = next(self.statuses)
            if status:
                self.answered[status] += 1
            return status

    def note_429(self) -> None:
        """A 429 went out (injected or the rate limit's): a client that keeps causing them is blocked."""
        with self.lock:
            if not self.block_after:
                return
            now = self.clock()
            self.recent_429.append(now)
            while self.recent_429 and self.recent_429[0] <= now - 60:
                self.recent_429.popleft()
            if len(self.recent_429) > self.block_after:
                self.blocked_until = now + self.block_seconds
                self.recent_429.clear()

    def state(self) -> dict:
        with self.lock:
            now = self.clock()
            return {"active_for": max(0.0, round(self.until - now, 3)), "blocked_for": max(0.0, round(self.blocked_until - now, 3)),
                    "block_after": self.block_after, "answered": {str(k): v for k, v in sorted(self.answered.items())}}
