"""DISTRIBUTION as pure functions: who of the group may get a lead now, and whether the
picked manager should be set (never over a person's own choice).

The turn itself (smooth weighted round robin) is reglament.shifts.take_turn, atomic in Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from reglament.names import norm
from reglament.distribution_settings import DistributionSettings, Manager
from reglament import shifts
from reglament.crm import SetResponsible, action_key

RULE = "DISTRIBUTION"


def on_duty(managers: list[Manager], calendar, absent: Mapping[str, shifts.Absence], t: datetime) -> list[Manager]:
    """The managers of the group on shift at `t` and not absent, in configured order."""
    return [m for m in managers
            if shifts.schedule_for(m, calendar).on_shift(t) and not shifts.is_absent(absent, m.name, t)]


def eligible_ids(managers: list[Manager], users: Mapping[int, str]) -> list[tuple[int, int]]:
    """(user id, weight) of the managers whose names the CRM knows (unknown names are skipped)."""
    by_name = {norm(n): i for i, n in users.items()}
    return [(by_name[norm(m.name)], m.weight) for m in managers if norm(m.name) in by_name]


def user_id(users: Mapping[int, str], name: str | None) -> int | None:
    if not name:
        return None
    return next((i for i, n in users.items() if norm(n) == norm(name)), None)


@dataclass(frozen=True)
class Assignment:
    action: SetResponsible | None
    why: str


def decide(lead_id: int, pick: int | None, current: int | None, original: int | None,
           changed_by_person: bool) -> Assignment:
    """Whether to set the picked manager as the lead's responsible.

    `original` is the responsible the lead arrived with, `current` the one it has now (read
    fresh). A person's change — remembered from lead.responsible_changed, or seen as a
    current responsible that is neither the original nor our pick — is never overridden.
    """
    if changed_by_person:
        return Assignment(None, "the responsible was changed by a person")
    if current == pick and pick is not None:
        return Assignment(None, "already assigned")
    if original is not None and current != original:
        return Assignment(None, "the responsible was changed after the lead arrived")
    if pick is None:
        return Assignment(None, "nobody on shift and no fallback user")
    return Assignment(SetResponsible(lead_id=lead_id, user_id=pick, action_key=action_key(RULE, lead_id, "assign")),
                      "assigned")


def group_active(s: DistributionSettings) -> bool:
    return s.enabled and bool(s.managers)
