"""Fair events: an account's jobs in flight are capped, and a call that finds its account
stopped goes back to RQ with the calls after it, once, and runs when the account can go on."""

from __future__ import annotations

import time

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.rate_limit import RateLimitRegistry
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from jobs import batch, context, queues
from jobs.dispatcher import enqueue, sort_key
from reglament import keys
from reglament.events import Event
from tests.conftest import make_settings


def _work(r) -> None:
    SimpleWorker([Queue(queues.EVENTS, connection=r)], connection=r).work(burst=True, with_scheduler=False)


def _marks(r) -> list[str]:
    return [m.decode() for m in r.lrange("test:marks", 0, -1)]


def test_a_stopped_call_and_those_after_it_go_back_as_one_job_once_however_often_its_batch_runs(r, redis_url):
    context.set_settings(make_settings(), r)
    q = Queue(queues.EVENTS, connection=r)
    calls = [batch.call("tests.jobs_helpers:mark", url=redis_url, name="a"),
             batch.call("tests.jobs_helpers:over_limit_while_closed", url=redis_url, name="b"),
             batch.call("tests.jobs_helpers:mark", url=redis_url, name="c")]
    batch.enqueue(q, [batch.job_data(calls, queues.EVENTS, job_id="ev-acme-1", meta={"account": "acme"})])
    r.set("test:closed", 1)
    _work(r)

    scheduled = ScheduledJobRegistry(queue=q)
    assert _marks(r) == ["a"] and scheduled.get_job_ids() == ["ev-acme-1-d1"]
    deferred = Job.fetch("ev-acme-1-d1", connection=r)
    assert deferred.args == (calls[1:],)                        # b and c, in their order, as one job
    assert deferred.meta["account"] == "acme" and deferred.meta["deferred"] == "429"
    assert deferred.rate_limit_key == queues.in_flight(queues.EVENTS, "acme").key  # still under the cap
    assert Job.fetch("ev-acme-1", connection=r).get_status() == "finished"  # no retry used up

    # Its worker died after deferring: RQ runs the first job again. It defers the same calls,
    # and finds them deferred already.
    q.enqueue_job(Job.fetch("ev-acme-1", connection=r))
    _work(r)
    assert _marks(r) == ["a", "a"]                              # a is idempotent; it ran again
    assert scheduled.get_job_ids() == ["ev-acme-1-d1"]          # b and c are not doubled
    assert r.hget(keys.metrics("acme"), "deferrals_total\treason=429") == b"1"

    r.delete("test:closed")                                     # the account recovers
    time.sleep(max(0.0, scheduled.get_scheduled_time(deferred).timestamp() - time.time()) + 0.05)
    scheduler = RQScheduler([q], connection=r)
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    _work(r)
    assert _marks(r) == ["a", "a", "b", "c"]
    assert scheduled.count == 0 and q.count == 0


def _event(account: str, n: int) -> Event:
    return Event(account=account, source="amocrm", kind="lead.status_changed", entity_id=n,
                 fields={"id": n}, key=f"k{n:03d}")


def test_an_account_has_at_most_two_jobs_in_flight_and_the_rest_wait_in_order(r):
    # Job ids carry the inbox entry's order: RQ promotes the waiting jobs queued in one second by id.
    entries = [f"1712345678901-{n}" for n in (9, 10, 11, 12, 100)]
    assert sorted(map(sort_key, entries)) == list(map(sort_key, entries))
    loud = [_event("loud", n) for n in range(5)]
    for e, entry in zip(loud, entries):  # a job each, as a trickle gets
        enqueue(r, [e], order=[sort_key(entry)])
    enqueue(r, [_event("calm", 99)], order=[sort_key("1712345678999-0")])
    q = Queue(queues.EVENTS, connection=r)
    in_queue = [Job.fetch(i, connection=r) for i in q.job_ids]
    assert [j.meta["account"] for j in in_queue] == ["loud", "loud", "calm"]
    waiting = RateLimitRegistry(queues.in_flight(queues.EVENTS, "loud").key, connection=r)
    held = [Job.fetch(i, connection=r).args[0][0]["kwargs"]["data"]["entity_id"]
            for i in waiting.get_rate_limited_job_ids()]
    assert held == [2, 3, 4]


def test_a_refused_token_stops_only_its_account_and_its_events_wait_for_a_person(r):
    from connectors import ratelimit
    from connectors.amocrm.client import budget_key
    from jobs import deferral

    context.set_settings(make_settings(), r)
    q = Queue(queues.EVENTS, connection=r)
    batch.enqueue(q, [batch.job_data([batch.call("tests.jobs_helpers:token_refused")], queues.EVENTS,
                                     job_id="ev-acme-2", meta={"account": "acme"})])
    _work(r)
    (deferred,) = ScheduledJobRegistry(queue=q).get_job_ids()
    assert deferred == "ev-acme-2-d1" and Job.fetch(deferred, connection=r).meta["deferred"] == "auth"
    stopped = ratelimit.state(r, budget_key("acme"))
    assert stopped.reason == "auth" and deferral.STOPPED_PAUSE - 5 < stopped.wait <= deferral.STOPPED_PAUSE
    assert ratelimit.state(r, budget_key("other")).reason == ""


@pytest.mark.parametrize("problems, stops", [(["status «Недозвон» not found"], True), ([], False)],
                         ids=["settings-wrong", "lead-gone"])
def test_an_unknown_name_stops_the_account_only_when_its_settings_are_wrong(r, monkeypatch, problems, stops):
    from connectors import ratelimit
    from connectors.amocrm.client import budget_key

    context.set_settings(make_settings(), r)
    monkeypatch.setattr(context, "crm_for", lambda account: type("CRM", (), {"resolve_problems": lambda s: problems})())
    q = Queue(queues.EVENTS, connection=r)
    batch.enqueue(q, [batch.job_data([batch.call("tests.jobs_helpers:name_unknown")], queues.EVENTS,
                                     job_id="ev-acme-3", meta={"account": "acme"})])
    _work(r)
    assert (ratelimit.state(r, budget_key("acme")).reason == "config") is stops
    # Stopped: deferred, no retry used up. Otherwise: failed as any error, and RQ retries it.
    assert ScheduledJobRegistry(queue=q).get_job_ids() == ["ev-acme-3-d1" if stops else "ev-acme-3"]


def test_unknown_names_within_minutes_cost_one_check_of_the_names_per_settings(r, monkeypatch):
    """Checking reads the CRM's whole vocabulary; N UnknownNames at once (workers in
    parallel), or within CHECKED_FOR, check once; changed settings check again."""
    import threading

    from jobs import deferral
    from reglament.crm import UnknownName

    checks = []

    class CRM:
        def resolve_problems(self):
            checks.append(context.account("acme").rules.get("pipeline"))
            time.sleep(0.3)  # a few requests
            return ["status «Недозвон» not found"] if len(checks) == 1 else []

    monkeypatch.setattr(context, "crm_for", lambda account: CRM())
    context.set_settings(make_settings(), r)
    wrong = UnknownName("status «Недозвон» not found in pipeline «Продажи»", kind="status", name="Недозвон")
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(deferral._settings_wrong(wrong, "acme")))
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answers += [deferral._settings_wrong(wrong, "acme") for _ in range(20)]
    assert answers == [True] * 25 and len(checks) == 1

    from tests.conftest import ACCOUNT
    context.set_settings(make_settings(accounts=[{**ACCOUNT, "rules": {"pipeline": "Продажи"}}]), r)
    assert deferral._settings_wrong(wrong, "acme") is False  # the new settings' own answer, not the old one
    assert deferral._settings_wrong(wrong, "acme") is False and checks == [None, "Продажи"]

    monkeypatch.setattr(deferral, "CHECKED_FOR", 1)
    r.flushdb()
    assert deferral._settings_wrong(wrong, "acme") is False and len(checks) == 3
    time.sleep(1.1)  # the answer is old: the CRM may have changed since
    assert deferral._settings_wrong(wrong, "acme") is False and len(checks) == 4
