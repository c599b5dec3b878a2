"""Leases (reglament/lease.py): kept while their holder lives, free soon after it is killed."""

import multiprocessing
import os
import signal
import time

import redis as redis_lib

from reglament.lease import Lease


def hold(url, name, ready):
    lease = Lease(redis_lib.Redis.from_url(url), name, ttl=1.5)
    assert lease.acquire(blocking=False)
    ready.set()
    time.sleep(60)


def test_a_lease_outlives_its_ttl_while_held_and_lapses_when_the_holder_is_killed(redis_url, r):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=hold, args=(redis_url, "rg:t:lock:lead:1", ready))
    holder.start()
    try:
        assert ready.wait(30)
        time.sleep(3)  # twice its TTL: renewed by the holder's keeper
        assert r.exists("rg:t:lock:lead:1")
        assert not Lease(r, "rg:t:lock:lead:1").acquire(blocking=False)
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
        started = time.monotonic()
        taken = Lease(r, "rg:t:lock:lead:1", ttl=1.5)
        assert taken.acquire(blocking=True, blocking_timeout=5)
        assert time.monotonic() - started <= 2  # within its TTL, not a long lock's 120 s
        taken.release()
        assert not r.exists("rg:t:lock:lead:1")
    finally:
        if holder.is_alive():
            holder.kill()


def test_a_lease_taken_after_a_release_is_kept_for_its_new_holder(r):
    lease = Lease(r, "rg:t:lock:lead:2", ttl=1)
    assert lease.acquire(blocking=False)
    lease.release()
    other = Lease(r, "rg:t:lock:lead:2", ttl=1)
    assert other.acquire(blocking=False)
    time.sleep(1.5)  # still held: the keeper renews the second holder's token, not the first one's
    assert r.get("rg:t:lock:lead:2") == other.local.token
    other.release()
