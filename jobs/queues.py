"""Queue names and the retry policy every job gets."""

from rq import Retry

EVENTS = "events"      # one job per webhook event
SCHEDULED = "scheduled"  # sweeps, digests, timers
QUEUES = (EVENTS, SCHEDULED)

# A job whose worker died mid-run, or that raised, runs again: rules are idempotent.
RETRY = Retry(max=5, interval=[5, 30, 120, 600, 1800])
JOB_TIMEOUT = 120
