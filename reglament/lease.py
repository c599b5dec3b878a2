"""A Redis lock kept alive by its holder: held as long as the holder lives, free soon after it dies.

A plain lock with a long TTL keeps a lead locked for that long after its worker is killed;
one with a short TTL may lapse under a slow job. A lease has a short TTL (TTL) that a
thread of the holding process renews every TTL/3 while the lease is held, so a killed
holder's leases lapse within TTL seconds, and a live one keeps its lease for as long as
its job takes (the job's own time limit still bounds that).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis
from redis.exceptions import LockError
from redis.lock import Lock

log = logging.getLogger("reglament.lease")

TTL = 15     # seconds a dead holder's lease outlives it
TICK = 0.25  # how often the keeper looks for leases a third of the way to their end


class Lease(Lock):
    def __init__(self, r: redis.Redis, name: str, ttl: float = TTL):
        # Not thread-local: the keeper thread renews it with the holder's token.
        super().__init__(r, name, timeout=ttl, thread_local=False)

    def do_acquire(self, token) -> bool:
        if super().do_acquire(token):
            self.renew_at = time.monotonic() + self.timeout / 3
            _keeper.hold(self)
            return True
        return False

    def do_release(self, expected_token) -> None:
        _keeper.drop(self)
        super().do_release(expected_token)


class _Keeper:
    """The thread of this process that renews the leases it holds."""

    def __init__(self):
        self.held: set[Lease] = set()
        self.guard = threading.Lock()
        self.pid = 0

    def hold(self, lease: Lease) -> None:
        with self.guard:
            if self.pid != os.getpid():  # the first lease here, or a forked child: no keeper thread yet
                self.pid = os.getpid()
                self.held.clear()  # a parent's leases are the parent's to keep
                threading.Thread(target=self.run, name="lease-keeper", daemon=True).start()
            self.held.add(lease)

    def drop(self, lease: Lease) -> None:
        with self.guard:
            self.held.discard(lease)

    def run(self) -> None:
        while True:
            time.sleep(TICK)
            with self.guard:
                due = [lease for lease in self.held if lease.renew_at <= time.monotonic()]
            for lease in due:
                try:
                    lease.reacquire()
                    lease.renew_at = time.monotonic() + lease.timeout / 3
                except LockError:  # released meanwhile, or lost (Redis restarted without it)
                    self.drop(lease)
                except redis.RedisError:
                    log.warning("could not renew the lease %s; trying again", lease.name)


_keeper = _Keeper()
