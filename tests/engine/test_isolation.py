"""An account in trouble is isolated: while one account's amoCRM answers 429, another
account's task is made at once, and every event of the troubled account is handled once
when its CRM recovers.

The 429 window is a few seconds rather than a minute: what the test shows does not depend
on its length. During it the troubled account pauses itself (0.5 s, then 1 s, 2 s … between
tries: connectors/ratelimit.py) and its jobs go back to RQ's scheduler; with the old
behaviour the worker slept through each backoff and the calm account's task came after
the window.
"""

from __future__ import annotations

import threading
import time

from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler

from jobs import context, queues
from jobs.dispatcher import enqueue
from reglament import keys, metrics
from reglament.events import Event, event_key
from sandbox.amocrm import SandboxServer
from tests.conftest import make_settings
from tests.engine.conftest import ALL_DAY, STATUS, TOKEN, Amo

WINDOW = 3.0   # seconds the loud account's amoCRM answers every API request with 429
LEADS = 12


class Answers429:
    """Stands in for the sandbox's request limit: every request refused until `until`."""

    def __init__(self, until: float):
        self.until = until

    def allow(self) -> bool:
        return time.monotonic() >= self.until


def _account(account_id: str, url: str) -> dict:
    return {"id": account_id, "amocrm": {"base_url": url, "long_lived_token": TOKEN, "rate_limit": 1000},
            "webhook_secret": f"{account_id}-webhook-secret-0123456", "working_hours": ALL_DAY,
            "holidays_country": None}


def _status_change(amo: Amo, account_id: str, status: str) -> Event:
    """A lead moved to `status` in the sandbox, as the event its webhook becomes."""
    lead_id = amo.create_lead("Новая заявка")
    lead = amo.api("PATCH", f"/api/v4/leads/{lead_id}", json={"status_id": STATUS[status], "pipeline_id": 7700001})
    lead = amo.lead(lead_id)
    fields = {"id": lead_id, "status_id": lead["status_id"], "pipeline_id": lead["pipeline_id"],
              "updated_at": lead["updated_at"], "created_at": lead["created_at"]}
    return Event(account=account_id, source="amocrm", kind="lead.status_changed", entity_id=lead_id,
                 fields=fields, key=event_key("lead.status_changed", lead_id, lead["updated_at"]))


def _tasks_made(amo: Amo) -> dict[int, float]:
    """Lead id → when the sandbox stored a task for it (monotonic clock), recorded as it happens."""
    made: dict[int, float] = {}
    lock = threading.Lock()

    def on_change(changes) -> None:
        with lock:
            for c in changes:
                if c.setting == "add_task":
                    made.setdefault(c.entity.entity_id, time.monotonic())

    amo.account.add_listener(on_change)
    return made


def test_a_429_window_in_one_account_delays_no_other_account_and_loses_none_of_its_events(r):
    with (SandboxServer(token=TOKEN, rate_limit=0) as loud_server,
          SandboxServer(token=TOKEN, rate_limit=0) as calm_server):
        loud, calm = Amo(loud_server), Amo(calm_server)
        context.set_settings(make_settings(accounts=[_account("loud", loud_server.url),
                                                     _account("calm", calm_server.url)]), r)
        loud_events = [_status_change(loud, "loud", "Пришел на пробное") for _ in range(LEADS)]
        calm_event = _status_change(calm, "calm", "Пришел на пробное")
        loud_tasks, calm_tasks = _tasks_made(loud), _tasks_made(calm)

        start = time.monotonic()
        loud_server.sandbox.limiter = Answers429(until=start + WINDOW)
        enqueue(r, loud_events)   # first in the queue: a worker meets the troubled account first
        enqueue(r, [calm_event])

        q = Queue(queues.EVENTS, connection=r)
        scheduler = RQScheduler([q], connection=r)
        scheduler.acquire_locks()
        deadline = start + WINDOW + 30
        while len(loud_tasks) < LEADS and time.monotonic() < deadline:
            scheduler.enqueue_scheduled_jobs()   # deferred jobs whose time came (RQ's scheduler, driven here)
            SimpleWorker([q], connection=r).work(burst=True, with_scheduler=False)
            time.sleep(0.05)
        scheduler.release_locks()

        # The calm account's task was made while the loud account's CRM still refused everything.
        assert calm_event.entity_id in calm_tasks
        assert calm_tasks[calm_event.entity_id] - start < WINDOW
        # The loud account lost nothing and doubled nothing: every lead got its task, once, after the window.
        assert sorted(loud_tasks) == sorted(e.entity_id for e in loud_events)
        assert min(loud_tasks.values()) >= start + WINDOW
        assert all(len(loud.open_tasks(e.entity_id)) == 1 for e in loud_events)
        assert len(calm.open_tasks(calm_event.entity_id)) == 1

    counters = {a: {k.decode(): int(v) for k, v in r.hgetall(keys.metrics(a)).items()} for a in ("loud", "calm")}
    assert counters["loud"].get(metrics.field("api_calls_total", system="amocrm", status=429), 0) >= 1
    assert counters["loud"].get(metrics.field("deferrals_total", reason="429"), 0) >= 1
    assert not any(k.startswith("deferrals_total") for k in counters["calm"])
    assert metrics.field("api_calls_total", system="amocrm", status=429) not in counters["calm"]
