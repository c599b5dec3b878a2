"""Delivering webhooks: off the request path (sandbox/outbox.py), one sender thread per destination, with retries.

`publish` (called when a request's changes are complete) only builds the bodies and
queues them. A delivery counts as done on HTTP 100-299 within `timeout` seconds (amoCRM
gives receivers 2 s — UNCONFIRMED); otherwise it is retried after each of `retry_delays` (real amoCRM waits
minutes between retries; the sandbox uses seconds so tests and demos see them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from sandbox.outbox import Outbox, post_form

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


class WebhookDispatcher(Outbox):
    def __init__(self, account: SandboxAccount, retry_delays: tuple[float, ...] = (1.0, 5.0, 15.0),
                 timeout: float = 2.0, log_limit: int = 10000):
        super().__init__(timeout, log_limit, name="sandbox-webhooks")
        self.account = account
        self.retry_delays = tuple(retry_delays)
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
                delivery = Delivery(sub.destination, settings, sections, payloads.encode(self.account, chosen))
                self.put(delivery.destination, delivery)

    # ------------------------------------------------------------ sending (one thread per destination)
    def deliver(self, session: requests.Session, delivery: Delivery) -> None:
        delivery.attempt += 1
        status, error = post_form(session, delivery.destination, delivery.body, self.timeout,
                                  {"User-Agent": USER_AGENT, "Accept": "*/*"})
        ok = status is not None and 100 <= status < 300
        retry = not ok and delivery.attempt <= len(self.retry_delays) and not self.stopped
        self._log.add({"time": time.time(), "destination": delivery.destination, "settings": delivery.settings,
                       "sections": delivery.sections, "attempt": delivery.attempt, "status": status, "ok": ok,
                       "final": not retry, "error": error, "body": delivery.body})
        if retry:
            self.put(delivery.destination, delivery, self.retry_delays[delivery.attempt - 1])

    def stop(self) -> None:
        self.account.remove_listener(self.publish)
        super().stop()
