"""Queue names and the retry policy every job gets."""

from rq import Retry

TIMERS = "timers"      # SLA deadlines and messages held for the shift: due at a moment, so first
EVENTS = "events"      # one job per webhook event
SCHEDULED = "scheduled"  # sweeps, digests and other periodic or delayed work
# A worker takes from the first non-empty queue in this order: a timer that has come due is
# never stuck behind a backlog of webhook events.
QUEUES = (TIMERS, EVENTS, SCHEDULED)

# A job whose worker died mid-run, or that raised, runs again: rules are idempotent.
RETRY = Retry(max=5, interval=[5, 30, 120, 600, 1800])
JOB_TIMEOUT = 120
