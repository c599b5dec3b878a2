"""Each account's share of the work, as /metrics and the dashboard's queue health show it:
its CRM events in flight and waiting (queues.in_flight), its jobs scheduled for later
(deferred, or retried), and whether its CRM is paused and why (connectors/ratelimit.py)."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from rq import Queue
from rq.rate_limit import RateLimitRegistry
from rq.registry import ScheduledJobRegistry

from connectors import ratelimit, registry
from jobs import queues
from reglament.config import CRM_NAMES, Account

STOPPING = ("auth", "config")  # reasons that need a person: the account waits until fixed

# What the dashboard says (in Russian, as users read it) for each reason; {crm} is the CRM's name.
REASONS = {
    "budget": "лимит запросов исчерпан",
    "429": "{crm}: слишком много запросов (ответ 429 или 503)",
    "5xx": "{crm} отвечает ошибкой сервера",
    "network": "{crm} не отвечает",
    "auth": "токен не принят: нужна повторная авторизация",
    "config": "настройки не совпадают с {crm}: см. reglament check",
}


@dataclass(frozen=True)
class Health:
    account: str
    in_flight: int      # CRM event jobs queued or running (at most queues.IN_FLIGHT)
    waiting: int        # CRM event jobs held back by the account's concurrency limit
    scheduled: int      # its event jobs scheduled for later: deferred, or retried after an error
    paused: float       # seconds until its CRM is called again (0: now)
    reason: str         # why it was paused last ("" when nothing is wrong)
    strikes: int        # failures since the last success
    crm: str            # the CRM's name, as users read it

    @property
    def state(self) -> str:
        if self.reason in STOPPING:
            return "stopped"
        return "paused" if self.reason and self.paused > 0 else "ok"

    @property
    def reason_text(self) -> str:
        return REASONS.get(self.reason, self.reason).format(crm=self.crm)


def health(r: redis.Redis, accounts: list[Account]) -> list[Health]:
    scheduled_ids = ScheduledJobRegistry(queue=Queue(queues.EVENTS, connection=r)).get_job_ids()
    found = []
    for acc in (a for a in accounts if registry.supported(a)):  # a CRM with no connector has no budget
        account = acc.id
        limit = RateLimitRegistry(queues.in_flight(queues.EVENTS, account).key, connection=r)
        budget = ratelimit.state(r, registry.budget_key(acc))
        found.append(Health(account=account, in_flight=limit.get_allowed_job_count(),
                            waiting=limit.get_rate_limited_job_count(),
                            scheduled=sum(1 for i in scheduled_ids if i.startswith(f"ev-{account}-")),
                            paused=round(budget.wait, 3) if budget.reason else 0.0,
                            reason=budget.reason, strikes=budget.strikes, crm=CRM_NAMES[acc.crm]))
    return found


def gauges(r: redis.Redis, accounts: list[Account]) -> dict[str, list[tuple[dict, float]]]:
    """Per-account gauges for metrics.render."""
    found = health(r, accounts)
    return {
        "account_jobs": [({"account": h.account, "state": state}, n) for h in found
                         for state, n in (("in_flight", h.in_flight), ("waiting", h.waiting),
                                          ("scheduled", h.scheduled))],
        "account_paused_seconds": [({"account": h.account, "reason": h.reason or "none"}, h.paused) for h in found],
        "account_stopped": [({"account": h.account}, 1.0 if h.state == "stopped" else 0.0) for h in found],
    }
