"""Batch jobs: bursts share few RQ jobs, one failing call is retried on its own."""

from __future__ import annotations

import pytest
from rq import Queue

from jobs import batch, context, queues
from jobs.dispatcher import Dispatcher
from tests.conftest import SECRET, make_settings
from tests.fixtures import load
from tests.jobs_helpers import queued_events


def test_chat_events_have_their_own_queue_served_before_crm_events():
    assert queues.for_event("chat.message_in") == queues.for_event("chat.message_out") == queues.CHATS
    assert queues.for_event("lead.status_changed") == queues.for_event("call.incoming_missed") == queues.EVENTS
    assert queues.QUEUES.index(queues.TIMERS) < queues.QUEUES.index(queues.CHATS) < queues.QUEUES.index(queues.EVENTS)


@pytest.mark.parametrize("n, max_size, spread, sizes", [
    (1, 25, 4, [1]), (3, 25, 4, [1, 1, 1]), (4, 25, 4, [1, 1, 1, 1]), (10, 25, 4, [3, 3, 3, 1]),
    (100, 25, 4, [25] * 4), (1000, 25, 4, [25] * 40),
    (10, 25, 1, [10]),                 # jobs already wait in the queue: one bigger batch
    (10, 4, 4, [3, 3, 3, 1]), (30, 4, 4, [4] * 7 + [2]),  # CRM events: small batches
])
def test_a_trickle_gets_a_job_per_call_and_a_burst_is_batched_over_several_workers(n, max_size, spread, sizes):
    parts = batch.chunks(list(range(n)), max_size, spread)
    assert [len(p) for p in parts] == sizes
    assert [x for p in parts for x in p] == list(range(n))  # order kept


def test_batches_grow_while_jobs_wait(r):
    q = Queue(queues.EVENTS, connection=r)
    assert batch.spread(q) == batch.SPREAD
    q.enqueue_many([batch.job_data([batch.call("tests.jobs_helpers:fail", name=str(n))], queues.EVENTS)
                    for n in range(2)])
    assert batch.spread(q) == batch.SPREAD - 2


def test_a_failing_call_is_split_off_into_a_job_of_its_own_and_the_rest_run(r, redis_url):
    context.set_settings(make_settings(), r)
    calls = [batch.call("tests.jobs_helpers:mark", url=redis_url, name="a"),
             batch.call("tests.jobs_helpers:fail", name="b"),
             batch.call("tests.jobs_helpers:mark", url=redis_url, name="c")]
    assert batch.run(calls, queue=queues.EVENTS) == ["a", None, "c"]
    assert r.lrange("test:marks", 0, -1) == [b"a", b"c"]
    q = Queue(queues.EVENTS, connection=r)
    (job,) = q.jobs
    assert job.args == ([calls[1]],) and job.kwargs == {"queue": queues.EVENTS}
    assert job.retries_left == queues.RETRY.max  # retried on the usual policy


def test_a_batch_of_one_raises_so_that_rq_retries_it(r):
    context.set_settings(make_settings(), r)
    with pytest.raises(RuntimeError, match="b failed"):
        batch.run([batch.call("tests.jobs_helpers:fail", name="b")])
    assert Queue(queues.EVENTS, connection=r).count == 0


def test_a_burst_of_chat_messages_goes_out_in_few_jobs_on_the_chats_queue_each_event_once(client, r):
    context.set_settings(make_settings(), r)
    for n in range(60):
        body = load.wazzup("message_incoming").replace(b'"messageId"', b'"messageId": "m-%d", "_x"' % n, 1)
        assert client.post(f"/hooks/wazzup/{SECRET}", data=body, content_type="application/json").status_code == 200
    d = Dispatcher(r, ["acme"])
    d.ensure_groups()
    assert d.run_once(block_ms=10, count=200) == 60
    q = Queue(queues.CHATS, connection=r)
    assert q.count == batch.SPREAD                        # 60 events, 4 jobs of 15
    assert Queue(queues.EVENTS, connection=r).count == 0
    events = queued_events(r, queues.CHATS)
    assert sorted(e["entity_id"] for e in events) == sorted(f"m-{n}" for n in range(60))
