"""The task rules as pure functions: NEXT_TASK (with STATUS_TASKS), TERMINAL, REDIAL.

Each rule is `decide(event, snapshot, settings, calendar, now) -> list[Action]` over
reglament.crm's records; it reads nothing and writes nothing. The executor builds a
RuleEvent and a fresh LeadSnapshot, calls every rule, and applies the actions (each
action_key at most once). Events of one lead should be handled one at a time.
"""

from __future__ import annotations

from datetime import datetime

from jobs.rules import next_task, redial
from reglament.rule_settings import RuleSettings
from reglament.calendar import WorkCalendar
from reglament.crm import Action, LeadSnapshot, RuleEvent

# Rule code → decide. TERMINAL has no actions of its own: it is the guard both rules check.
RULES = {
    redial.RULE: redial.decide,
    next_task.RULE: next_task.decide,
}


def decide_all(event: RuleEvent, snapshot: LeadSnapshot, settings: RuleSettings, calendar: WorkCalendar,
               now: datetime) -> list[Action]:
    """Every rule's actions for one event, in RULES order."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return [a for decide in RULES.values() for a in decide(event, snapshot, settings, calendar, now)]
