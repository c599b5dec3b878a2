"""Sending a sandbox's webhooks off the request path: one sender thread per URL, and a count
of what is still on its way so that tests can wait for it.

Each URL has its own thread, so deliveries to one receiver keep their order and a slow
receiver holds up no other; the API answer never waits for a delivery. A job may be put
with a delay (a retry). What is sent, whether it is retried and what the log says are each
CRM's own rules: `deliver` in sandbox/amocrm/webhooks.py and sandbox/bitrix24/events.py.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

import requests

from sandbox.indexed_log import IndexedLog


class Outbox:
    def __init__(self, timeout: float, log_limit: int, name: str):
        self.timeout = timeout
        self.name = name
        self._log = IndexedLog(log_limit)   # every delivery attempt, with stable indexes
        self._cond = threading.Condition()
        self._senders: dict[str, _Sender] = {}
        self._pending = 0
        self._stopped = False

    def deliver(self, session: requests.Session, job: Any) -> None:
        """Send one job (on its URL's thread); a subclass's."""
        raise NotImplementedError

    def put(self, url: str, job: Any, delay: float = 0.0) -> None:
        with self._cond:
            if self._stopped:
                return
            self._pending += 1
            sender = self._senders.get(url)
            if sender is None:
                sender = self._senders[url] = _Sender(self, url)
                sender.start()
        sender.put(time.monotonic() + delay, job)

    def _delivered(self) -> None:
        with self._cond:
            self._pending -= 1
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def log(self, since: int = 0) -> list[dict]:
        return self._log.since(since)

    def clear_log(self) -> None:
        self._log.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued delivery is done (a retry put by `deliver` counts); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            senders = list(self._senders.values())
        for s in senders:
            s.stop()
        for s in senders:
            s.join(timeout=self.timeout + 1)


def post_form(session: requests.Session, url: str, body: str, timeout: float,
              headers: dict[str, str]) -> tuple[int | None, str | None]:
    """POST an application/x-www-form-urlencoded body, no redirects: (status, None) or (None, the error)."""
    try:
        answer = session.post(url, data=body.encode("ascii"), timeout=timeout, allow_redirects=False,
                              headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    except requests.RequestException as e:
        return None, f"{type(e).__name__}: {e}"
    return answer.status_code, None


class _Sender(threading.Thread):
    """Sends to one URL, earliest due job first."""

    def __init__(self, outbox: Outbox, url: str):
        super().__init__(name=f"{outbox.name} {url}", daemon=True)
        self.outbox = outbox
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False

    def put(self, due: float, job: Any) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), job))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def run(self) -> None:
        with requests.Session() as session:
            while True:
                with self._cond:
                    while not self._stopped:
                        now = time.monotonic()
                        if self._heap and self._heap[0][0] <= now:
                            break
                        self._cond.wait(self._heap[0][0] - now if self._heap else None)
                    if self._stopped:
                        return
                    _, _, job = heapq.heappop(self._heap)
                try:
                    self.outbox.deliver(session, job)
                finally:
                    self.outbox._delivered()
