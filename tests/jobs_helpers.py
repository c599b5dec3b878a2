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


def queued_events(r, queue: str = "events") -> list[dict]:
    """The events waiting in a queue, in order, out of the batch jobs that carry them."""
    from rq import Queue

    q = Queue(queue, connection=r)
    return [c["kwargs"]["data"] for i in q.job_ids for c in q.fetch_job(i).args[0]]


def mark(url: str, name: str) -> str:
    """A call that leaves a trace: its name pushed to the list test:marks."""
    import redis

    redis.Redis.from_url(url).rpush("test:marks", name)
    return name


def fail(name: str) -> None:
    raise RuntimeError(f"{name} failed")
