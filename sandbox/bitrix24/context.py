"""What one running sandbox holds, reachable from any request as `current()`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flask import current_app

from .auth import Auth
from .bucket import LeakyBucket
from .events import Events
from .portal import Portal

EXTENSION = "bitrix24_sandbox"


class RequestLog:
    """Every REST call answered (GET /_sandbox/requests), with stable indexes for `?since=`."""

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self._entries: list[dict] = []
        self._offset = 0
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self._lock:
            self._entries.append({"index": self._offset + len(self._entries), **entry})
            if len(self._entries) > self.limit:
                drop = len(self._entries) - self.limit
                del self._entries[:drop]
                self._offset += drop

    def since(self, index: int = 0) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._entries if e["index"] >= index]

    def clear(self) -> None:
        with self._lock:
            self._offset += len(self._entries)
            self._entries.clear()


@dataclass
class Sandbox:
    portal: Portal
    auth: Auth
    events: Events
    bucket: LeakyBucket
    requests: RequestLog = field(default_factory=RequestLog)
    blocked: dict[str, float] = field(default_factory=dict)   # method -> portal time its OPERATION_TIME_LIMIT ends

    def block(self, method: str, seconds: float) -> float:
        until = self.portal.now() + seconds
        self.blocked[method.lower()] = until
        return until

    def blocked_until(self, method: str) -> float | None:
        until = self.blocked.get(method.lower())
        return until if until is not None and self.portal.now() < until else None


def current() -> Sandbox:
    return current_app.extensions[EXTENSION]


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
