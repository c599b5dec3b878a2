"""Job failures in /metrics: a call split off its batch counts as retried; a job with no
retries left as given up, both under the batch's account and kind."""

from rq import Queue, SimpleWorker

from jobs import batch, context, queues
from jobs.worker import count_failure, rq_connection
from reglament import metrics
from tests.conftest import make_settings


def failures(r) -> dict:
    text = metrics.render(r, ["acme"]).decode()
    return {line.split("{", 1)[1].rsplit("}", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith("reglament_job_failures_total{")}


def test_a_call_failing_inside_a_batch_and_a_job_giving_up_are_counted(r, redis_url):
    context.set_settings(make_settings(), r)
    meta = {"account": "acme", "kind": "lead.status_changed"}
    q = Queue(queues.EVENTS, connection=r)
    calls = [batch.call("tests.jobs_helpers:mark", url=redis_url, name="a"), batch.call("tests.jobs_helpers:fail", name="b")]
    q.enqueue_many([batch.job_data(calls, queues.EVENTS, meta=meta)])
    # The split-off call fails on its own too; with no retries left it gives up.
    q.enqueue_many([Queue.prepare_data(batch.run, args=([batch.call("tests.jobs_helpers:fail", name="c")],),
                                       retry=None, meta=meta)])
    rq_r = rq_connection(r)
    SimpleWorker([Queue(queues.EVENTS, connection=rq_r)], connection=rq_r,
                 exception_handlers=[count_failure]).work(burst=True)
    found = failures(r)
    assert found['account="acme",kind="lead.status_changed",outcome="retried"'] == 2  # b split off, then b's retry
    assert found['account="acme",kind="lead.status_changed",outcome="gave_up"'] == 1  # c
    (split,) = [j for j in (q.fetch_job(i) for i in q.scheduled_job_registry.get_job_ids()) if j]
    assert split.meta == meta and split.retries_left == queues.RETRY.max - 1
