"""How names written in the configuration meet names in the CRM: «Принимает  Решение» is
«принимает решение», «ё» is «е»; and what a name a rule uses is (NameUse), so that
every connector resolves the same list."""

from __future__ import annotations

from typing import NamedTuple


def norm(name: str) -> str:
    return " ".join(name.casefold().replace("ё", "е").split())


def same_name(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and norm(a) == norm(b)


# What kind of CRM name a setting holds; a connector resolves each kind against the account.
PIPELINE = "pipeline"
STATUS = "status"            # in NameUse.pipeline (a pipeline's name), else in the watched pipelines
TASK_TYPE = "task_type"
LEAD_FIELD = "lead_field"    # a lead custom field, by the name the CRM shows
DATE_FIELD = "date_field"    # a lead custom field that must hold a date or a date and time
USER = "user"
LOSS_REASON = "loss_reason"
# The kinds one rule's settings name (an unknown one stops that rule only, jobs/names.py);
# a pipeline is every rule's (an unknown one stops the account, jobs/deferral.py).
RULE_KINDS = frozenset({STATUS, TASK_TYPE, LEAD_FIELD, DATE_FIELD, USER, LOSS_REASON})
LEAD = "lead"                # not a name: UnknownName's kind for a lead that is gone


class NameUse(NamedTuple):
    """One name a rule uses: where it is set (e.g. "rules.discipline.incubator.status"), its
    kind and the name. The settings list them (RuleSettings.used_names); `reglament check`
    and the service's start resolve them through the account's connector."""
    where: str
    kind: str
    name: str
    pipeline: str | None = None   # for a status: the pipeline it must be in; None = the watched ones
    fallback: str | None = None   # set for an optional name: what the rule does when the CRM lacks it


class NameProblem(str):
    """A line of `reglament check`: a name the CRM lacks, with the names it has. `optional`
    when the rule works without it (NameUse.fallback): a notice, not an error."""
    optional: bool = False

    def __new__(cls, text: str, optional: bool = False) -> "NameProblem":
        line = super().__new__(cls, text)
        line.optional = optional
        return line
