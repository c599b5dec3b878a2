"""A worker's graceful stop: one SIGTERM lets the running job finish, then the worker and
its RQ scheduler child exit, within seconds and without being killed."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from rq import Queue

from jobs.queues import EVENTS


def children_of(pid: int) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(d.name))
        except (OSError, IndexError, ValueError):
            pass
    return found


def test_sigterm_lets_the_running_job_finish_and_the_worker_exits(r, redis_url, tmp_path):
    job = Queue(EVENTS, connection=r).enqueue("tests.jobs_helpers.pause", str(tmp_path), 2)
    script = textwrap.dedent(f"""
        import redis
        from jobs.worker import run
        run(redis.Redis.from_url({redis_url!r}), [])
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=os.getcwd(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "started").exists()
        scheduler = children_of(worker.pid)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0  # not killed: it stopped by itself
        assert (tmp_path / "done").exists()
        assert Queue(EVENTS, connection=r).fetch_job(job.id).get_status() == "finished"
        assert not any(Path(f"/proc/{pid}").exists() for pid in scheduler)
        assert "cold shut down" not in worker.stderr.read()
    finally:
        if worker.poll() is None:
            worker.kill()


def test_a_worker_killed_here_has_its_job_given_back_when_a_worker_starts(r, redis_url, tmp_path):
    from rq import Worker
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    from jobs.reclaim import reclaim

    from jobs.queues import RETRY

    job = Queue(EVENTS, connection=r).enqueue("tests.jobs_helpers.pause", str(tmp_path), 60, job_timeout=480,
                                              retry=RETRY)
    script = textwrap.dedent(f"""
        import redis
        from jobs.worker import run
        run(redis.Redis.from_url({redis_url!r}), [])
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=os.getcwd(), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "started").exists()
    finally:
        worker.kill()
        worker.wait()
    assert job.id in StartedJobRegistry(EVENTS, connection=r).get_job_ids()  # RQ would wait ~9 minutes
    assert Worker.count(connection=r) == 1
    assert reclaim(r, [EVENTS]) == 1
    assert job.id not in StartedJobRegistry(EVENTS, connection=r).get_job_ids(cleanup=False)
    assert job.id in ScheduledJobRegistry(EVENTS, connection=r).get_job_ids()  # retried on its policy, not in 9 minutes
    assert Worker.count(connection=r) == 0  # the dead worker no longer counts for /readyz
