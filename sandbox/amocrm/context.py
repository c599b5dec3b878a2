"""What one running sandbox app holds, reachable from any request as `current()`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

from sandbox.faults import Faults
from sandbox.indexed_log import IndexedLog

from .ratelimit import SlidingWindowLimiter
from .state import SandboxAccount
from .webhooks import WebhookDispatcher

if TYPE_CHECKING:  # oauth.py imports this module for its route
    from .oauth import OAuthServer

EXTENSION = "amocrm_sandbox"


class RequestLog(IndexedLog):
    """Every API request answered (GET /_sandbox/requests), with stable indexes for `?since=`."""

    def record(self, method: str, path: str, query: str, status: int, started: float, user: int | None) -> None:
        self.add({"time": started, "method": method, "path": path, "query": query, "status": status,
                  "duration_ms": round((time.time() - started) * 1000, 2), "user_id": user})


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
