"""What one running sandbox app holds, reachable from any request as `current()`."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

from .faults import Faults
from .ratelimit import SlidingWindowLimiter
from .state import SandboxAccount
from .webhooks import WebhookDispatcher

if TYPE_CHECKING:  # oauth.py imports this module for its route
    from .oauth import OAuthServer

EXTENSION = "amocrm_sandbox"


class RequestLog:
    """Every API request answered (GET /_sandbox/requests), with stable indexes for `?since=`."""

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self._entries: list[dict] = []
        self._offset = 0
        self._lock = threading.Lock()

    def add(self, method: str, path: str, query: str, status: int, started: float, user: int | None) -> None:
        with self._lock:
            self._entries.append({"index": self._offset + len(self._entries), "time": started, "method": method,
                                  "path": path, "query": query, "status": status,
                                  "duration_ms": round((time.time() - started) * 1000, 2), "user_id": user})
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
    account: SandboxAccount
    dispatcher: WebhookDispatcher
    limiter: SlidingWindowLimiter
    token: str                   # the long-lived token; it never expires
    oauth: OAuthServer
    requests: RequestLog = field(default_factory=RequestLog)
    faults: Faults = field(default_factory=Faults)


def current() -> Sandbox:
    return current_app.extensions[EXTENSION]
