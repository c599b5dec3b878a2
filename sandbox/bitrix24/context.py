"""What one running sandbox holds, reachable from any request as `current()`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import current_app

from sandbox.faults import Faults
from sandbox.indexed_log import IndexedLog

from .auth import Auth
from .bucket import LeakyBucket
from .events import Events
from .portal import Portal

EXTENSION = "bitrix24_sandbox"


@dataclass
class Sandbox:
    portal: Portal
    auth: Auth
    events: Events
    bucket: LeakyBucket
    requests: IndexedLog = field(default_factory=IndexedLog)  # every REST call answered (GET /_sandbox/requests)
    blocked: dict[str, float] = field(default_factory=dict)   # method -> portal time its OPERATION_TIME_LIMIT ends
    faults: Faults = field(default_factory=Faults)            # errors injected for a while (POST /_sandbox/faults)

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
