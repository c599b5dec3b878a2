"""Queue names and the retry policy every job gets."""

from rq import Retry

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
