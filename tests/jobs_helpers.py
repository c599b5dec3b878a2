"""Job functions the durability tests enqueue (importable by a worker process)."""

import time
from pathlib import Path


def slow_marker(folder: str) -> str:
    d = Path(folder)
    runs = len(list(d.glob("started-*")))
    (d / f"started-{runs}").touch()
    if runs == 0:
        time.sleep(60)  # the first run is killed here
    (d / f"done-{runs}").touch()
    return "done"


def dispatch_all(r, accounts=("acme",)) -> None:
    """Run the dispatcher over the accounts' inboxes until nothing is left to dispatch."""
    from jobs.dispatcher import Dispatcher

    d = Dispatcher(r, list(accounts))
    d.ensure_groups()
    while d.run_once(block_ms=10):
        pass


def queued_events(r, queue: str | None = None) -> list[dict]:
    """The events waiting in a queue (by default the chats' and then the other events'), in
    order, out of the batch jobs that carry them: those in the queue, then those an account's
    concurrency limit holds back (queues.in_flight)."""
    from rq import Queue
    from rq.rate_limit import RateLimitRegistry

    from jobs import queues

    found = []
    for name in [queue] if queue else [queues.CHATS, queues.EVENTS]:
        q = Queue(name, connection=r)
        ids = q.job_ids + [i for reg in RateLimitRegistry.all(r) for i in reg.get_rate_limited_job_ids()]
        jobs = [q.fetch_job(i) for i in ids]
        found += [c["kwargs"]["data"] for j in jobs if j is not None and j.origin == name for c in j.args[0]]
    return found


def mark(url: str, name: str) -> str:
    """A call that leaves a trace: its name pushed to the list test:marks."""
    import redis

    redis.Redis.from_url(url).rpush("test:marks", name)
    return name


def fail(name: str) -> None:
    raise RuntimeError(f"{name} failed")


def over_limit_while_closed(url: str, name: str) -> str:
    """A call whose account is stopped (429) while the key test:closed exists, else a mark."""
    import redis

    from connectors.ratelimit import OverLimit

    r = redis.Redis.from_url(url)
    if r.exists("test:closed"):
        raise OverLimit("rg:acme:amocrm:ratelimit", 0.2, "429")
    r.rpush("test:marks", name)
    return name


def token_refused() -> None:
    from connectors.amocrm.errors import AuthError

    raise AuthError("amoCRM answered 401 Unauthorized even with a freshly refreshed token")


def name_unknown() -> None:
    from reglament.crm import UnknownName

    raise UnknownName("status «Недозвон» not found in pipeline «Продажи»")


def pause(folder: str, seconds: float) -> str:
    """A job that takes a while: started, then done after `seconds`."""
    (Path(folder) / "started").touch()
    time.sleep(seconds)
    (Path(folder) / "done").touch()
    return "done"


def fails_at_first(url: str, failures: int) -> int:
    """A periodic job whose CRM is down for its first `failures` runs: each run counted in
    test:runs, those first ones raising."""
    import redis

    runs = redis.Redis.from_url(url).incr("test:runs")
    if runs <= failures:
        raise ConnectionError(f"run {runs}: the CRM did not answer")
    return runs
