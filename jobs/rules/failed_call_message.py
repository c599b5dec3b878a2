"""FAILED_CALL_MESSAGE as a pure function: after a failed outbound call, the configured
message to the client, once per attempt.

An attempt is one call id; reports of the same number closer than `same_attempt_minutes`
(a telephony webhook and amoCRM's call note for one call carry different ids) are the same
attempt: the handler tells it through `same_attempt_seen`.
"""

from __future__ import annotations

from dataclasses import dataclass

from reglament.calls_settings import FailedCallMessage
from jobs.rules.missed_call import call_ref

RULE = "FAILED_CALL_MESSAGE"


@dataclass(frozen=True)
class FailedFacts:
    call_id: str
    phone: str | None          # digits
    lead_id: int | None
    same_attempt_seen: bool = False  # another report of this attempt already got its message


@dataclass(frozen=True)
class FailedPlan:
    action_key: str | None = None    # send the message under this key; None = nothing to send
    why: str = ""


def decide(facts: FailedFacts, settings: FailedCallMessage) -> FailedPlan:
    if not settings.enabled:
        return FailedPlan(why="disabled")
    if not facts.phone:
        return FailedPlan(why="no phone number")
    if facts.same_attempt_seen:
        return FailedPlan(why="this attempt was messaged already")
    return FailedPlan(action_key=f"{RULE}:{call_ref(facts.call_id)}")
