"""Giving back the jobs of a worker that died on this machine, as soon as a worker starts.

RQ notices a dead worker's job only when the job's heartbeat lapses: its time limit plus
a minute, up to nine minutes for a batch of CRM events. A worker starting on the same
machine (`reglament run` restarts a dead one at once) can tell for sure that a worker
there is dead: its pid is gone. Its jobs are then handed to RQ's own cleanup of abandoned
jobs, which retries them on their policy (or fails them when none is left), and its
registration is removed, so /readyz and `reglament status` count live workers only.
"""

from __future__ import annotations

import logging
import os
import socket

import redis
from rq import Worker
from rq.executions import Execution
from rq.registry import StartedJobRegistry
from rq.utils import parse_composite_key
from rq.worker_registration import get_keys

log = logging.getLogger("reglament.worker")


def dead_here(worker: Worker | None) -> bool:
    """The worker ran on this machine and its process is gone (or now runs something else)."""
    if worker is None or worker.hostname != socket.gethostname() or not worker.pid or worker.pid == os.getpid():
        return False
    try:
        return b"worker" not in open(f"/proc/{worker.pid}/cmdline", "rb").read()
    except FileNotFoundError:
        return True
    except OSError:
        return False


def reclaim(r: redis.Redis, queue_names: list[str], exception_handlers: list | None = None) -> int:
    """Hand the jobs of this machine's dead workers back to RQ; how many were handed back."""
    found = 0
    for name in queue_names:
        registry = StartedJobRegistry(name, connection=r)
        for entry in r.zrange(registry.key, 0, -1):
            job_id, execution_id = parse_composite_key(entry.decode())
            try:
                worker_name = Execution.fetch(execution_id, job_id, r).worker_name
            except Exception:  # noqa: BLE001 - no execution record: left to RQ's own cleanup
                continue
            if dead_here(Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=r)):
                r.zadd(registry.key, {entry: 0}, xx=True)  # expired now: RQ's cleanup takes it below
                found += 1
        if found:
            registry.cleanup(timestamp=1, exception_handlers=exception_handlers)
    for key in get_keys(connection=r):
        worker = Worker.find_by_key(key, connection=r)
        if dead_here(worker):
            worker.register_death()
    if found:
        log.warning("gave back %d job(s) of dead workers on this machine", found)
    return found

