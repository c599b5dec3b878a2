"""TERMINAL: leads in a final status need no task, and their open tasks are left alone.

This rule has no actions of its own; it is the guard the other task rules check first.
"""

from __future__ import annotations

from reglament.rule_settings import RuleSettings
from reglament.names import same_name
from reglament.crm import Lead

RULE = "TERMINAL"


def is_terminal(lead: Lead, settings: RuleSettings) -> bool:
    """True for the configured terminal statuses and, unless switched off, the CRM's own won/lost."""
    if settings.crm_closed_is_terminal and lead.closed is not None:
        return True
    return any(same_name(lead.status, s) for s in settings.terminal_statuses)
