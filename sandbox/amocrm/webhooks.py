"""Delivering webhooks: one sender thread per destination, off the request path, with retries.

The API answer never waits for a delivery: `publish` (called when a request's changes are
complete) only builds the bodies and queues them. Each destination has its own thread, so
deliveries to one receiver keep their order and a slow receiver does not hold up others.
A delivery counts as done on HTTP 100-299 within `timeout` seconds (amoCRM gives receivers
2 s — UNCONFIRMED); otherwise it is retried after each of `retry_delays` (real amoCRM waits
minutes between retries; the sandbox uses seconds so tests and demos see them).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass

import requests

from sandbox.indexed_log import IndexedLog

from . import payloads
from .state import Change, SandboxAccount

USER_AGENT = "amoCRM-WebHook-client/1.0"  # as in real captures


@dataclass
class Delivery:
    destination: str
    settings: list[str]       # which subscribed settings this body answers
    sections: list[str]       # e.g. ["leads[status]", "leads[update]"]
    body: str
    attempt: int = 0


class WebhookDispatcher:
    def __init__(self, account: SandboxAccount, retry_delays: tuple[float, ...] = (1.0, 5.0, 15.0),
                 timeout: float = 2.0, log_limit: int = 10000):
        self.account = account
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._lock = threading.Condition()
        self._workers: dict[str, _Worker] = {}
        self._log = IndexedLog(log_limit)  # every delivery attempt, with stable indexes
        self._pending = 0
        self._stopped = False
        account.add_listener(self.publish)

    # ------------------------------------------------------------ producing
    def publish(self, changes: list[Change]) -> None:
        subscriptions = self.account.subscriptions()
        with self.account.lock:  # bodies read field names and tags
            for sub in subscriptions:
                chosen = [c for c in changes if c.setting in sub.settings]
                if sub.disabled or not chosen:
                    continue
                sections = list(dict.fromkeys(f"{c.section}[{c.action}]" for c in chosen))
                settings = list(dict.fromkeys(c.setting for c in chosen))
                self._enqueue(Delivery(sub.destination, settings, sections, payloads.encode(self.account, chosen)))

    def _enqueue(self, delivery: Delivery, delay: float = 0.0) -> None:
        with self._lock:
            if self._stopped:
                return
            if delivery.attempt == 0:
                self._pending += 1
            worker = self._workers.get(delivery.destination)
            if worker is None:
                worker = self._workers[delivery.destination] = _Worker(self, delivery.destination)
                worker.start()
        worker.put(time.monotonic() + delay, delivery)

    # ------------------------------------------------------------ sending (worker threads)
    def _send(self, session: requests.Session, delivery: Delivery) -> None:
        delivery.attempt += 1
        status, error = None, None
        try:
            answer = session.post(delivery.destination, data=delivery.body.encode("ascii"), timeout=self.timeout,
                                  allow_redirects=False,
                                  headers={"Content-Type": "application/x-www-form-urlencoded",
                                           "User-Agent": USER_AGENT, "Accept": "*/*"})
            status = answer.status_code
            ok = 100 <= status < 300
        except requests.RequestException as e:
            ok, error = False, f"{type(e).__name__}: {e}"
        retry = not ok and delivery.attempt <= len(self.retry_delays) and not self._stopped
        self._record(delivery, status, error, ok, final=not retry)
        if retry:
            self._enqueue(delivery, self.retry_delays[delivery.attempt - 1])
        else:
            with self._lock:
                self._pending -= 1
                self._lock.notify_all()

    def _record(self, d: Delivery, status: int | None, error: str | None, ok: bool, final: bool) -> None:
        self._log.add({"time": time.time(), "destination": d.destination, "settings": d.settings,
                       "sections": d.sections, "attempt": d.attempt, "status": status, "ok": ok, "final": final,
                       "error": error, "body": d.body})

    # ------------------------------------------------------------ inspecting
    def log(self, since: int = 0) -> list[dict]:
        return self._log.since(since)

    def clear_log(self) -> None:
        self._log.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued delivery is done (delivered or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            workers = list(self._workers.values())
        self.account.remove_listener(self.publish)
        for w in workers:
            w.stop()
        for w in workers:
            w.join(timeout=self.timeout + 1)


class _Worker(threading.Thread):
    """Sends to one destination, earliest due delivery first."""

    def __init__(self, dispatcher: WebhookDispatcher, destination: str):
        super().__init__(name=f"sandbox-webhooks {destination}", daemon=True)
        self.dispatcher = dispatcher
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False

    def put(self, due: float, delivery: Delivery) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), delivery))
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
                    _, _, delivery = heapq.heappop(self._heap)
                self.dispatcher._send(session, delivery)
