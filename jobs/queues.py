"""Queue names, the retry policy every job gets, and how one account's work is kept from
crowding out the others'."""

from rq import RateLimit, Retry

TIMERS = "timers"      # SLA deadlines and messages held for the shift: due at a moment, so first
CHATS = "chats"        # Wazzup chat events: what stops or starts an SLA clock, each a few Redis calls
EVENTS = "events"      # every other webhook event: most of them talk to the CRM
SCHEDULED = "scheduled"  # sweeps, digests and other periodic or delayed work
# A worker takes from the first non-empty queue in this order: a timer that has come due, or
# a manager's answer to a chat, is never stuck behind a backlog of CRM events.
QUEUES = (TIMERS, CHATS, EVENTS, SCHEDULED)

# Calls per batch job (jobs/batch.py). Chat events and timers cost less than RQ's own
# bookkeeping per job, so they go in big batches. A CRM event costs API calls at the
# account's rate limit (about a second), so its batches stay small: a worker on them is
# free again for a chat within seconds.
MAX_BATCH = {TIMERS: 25, CHATS: 25, EVENTS: 4}


def for_event(kind: str) -> str:
    return CHATS if kind.startswith("chat.") else EVENTS

# A job whose worker died mid-run, or that raised, runs again: rules are idempotent.
RETRY = Retry(max=5, interval=[5, 30, 120, 600, 1800])
JOB_TIMEOUT = 120

# Fairness between accounts. An account's CRM events go to `events` at most IN_FLIGHT batch
# jobs at a time (RQ's concurrency limit: the rest wait in RQ's per-key set and are promoted
# oldest first as slots free), so a bulk import in one account occupies IN_FLIGHT workers and
# no more, while the others' events find a free worker. IN_FLIGHT jobs of one account
# together use its whole request budget: they spend their time on its rate limit anyway.
IN_FLIGHT = 2
# Inside a batch job a call waits at most this long for its account's request budget; past
# that it goes back to RQ, deferred to when the budget allows (jobs/deferral.py).
MAX_WAIT = 1.0


def in_flight(queue: str, account: str | None) -> RateLimit | None:
    """RQ's concurrency limit for the jobs of `account` on `queue` (only `events` has one)."""
    if queue != EVENTS or not account:
        return None
    return RateLimit(key=f"reglament-{account}-{EVENTS}", concurrency=IN_FLIGHT)
