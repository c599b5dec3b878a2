"""Batch jobs: bursts share few RQ jobs, one failing call is retried on its own."""

from __future__ import annotations

import pytest
from rq import Queue

from jobs import batch, context, queues
from jobs.dispatcher import Dispatcher
from tests.conftest import SECRET, make_settings
from tests.fixtures import load
from tests.jobs_helpers import queued_events


@pytest.mark.parametrize("n, sizes", [
    (1, [1]), (3, [1, 1, 1]), (4, [1, 1, 1, 1]), (10, [3, 3, 3, 1]), (100, [25] * 4), (1000, [25] * 40)])
def test_a_trickle_gets_a_job_per_call_and_a_burst_is_batched_over_several_workers(n, sizes):
    parts = batch.chunks(list(range(n)))
    assert [len(p) for p in parts] == sizes
    assert [x for p in parts for x in p] == list(range(n))  # order kept


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


def test_a_burst_of_deliveries_goes_out_in_few_jobs_each_event_once(client, r):
    context.set_settings(make_settings(), r)
    for n in range(60):
        body = load.wazzup("message_incoming").replace(b'"messageId"', b'"messageId": "m-%d", "_x"' % n, 1)
        assert client.post(f"/hooks/wazzup/{SECRET}", data=body, content_type="application/json").status_code == 200
    d = Dispatcher(r, ["acme"])
    d.ensure_groups()
    assert d.run_once(block_ms=10, count=200) == 60
    q = Queue(queues.EVENTS, connection=r)
    assert q.count == batch.SPREAD                        # 60 events, 4 jobs of 15
    events = queued_events(r)
    assert sorted(e["entity_id"] for e in events) == sorted(f"m-{n}" for n in range(60))
