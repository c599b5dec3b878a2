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


def queued_events(r, queue: str | None = None) -> list[dict]:
    """The events waiting in a queue (by default the chats' and then the other events'), in
    order, out of the batch jobs that carry them."""
    from rq import Queue

    from jobs import queues

    found = []
    for name in [queue] if queue else [queues.CHATS, queues.EVENTS]:
        q = Queue(name, connection=r)
        found += [c["kwargs"]["data"] for i in q.job_ids for c in q.fetch_job(i).args[0]]
    return found


def mark(url: str, name: str) -> str:
    """A call that leaves a trace: its name pushed to the list test:marks."""
    import redis

    redis.Redis.from_url(url).rpush("test:marks", name)
    return name


def fail(name: str) -> None:
    raise RuntimeError(f"{name} failed")
