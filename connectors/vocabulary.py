"""An account's names in a CRM-neutral shape, and the check every connector runs on them:
which names the rules use (RuleSettings.used_names) the account does not have.

A connector reads its CRM's pipelines, stages, users, task types, loss reasons and lead
fields, fills a Vocabulary and calls `problems`; the wording of `reglament check` is the
same whatever the CRM."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reglament import names as kinds
from reglament.names import NameProblem, NameUse, same_name
from reglament.rule_settings import RuleSettings


def listing(found: Iterable[str]) -> str:
    return ", ".join(f"«{n}»" for n in found) or "(none)"


def find(mapping: Mapping[Any, str], name: str | None) -> Any:
    """The key whose name is `name` (case, spaces and ё aside); None when absent."""
    if not name:
        return None
    return next((i for i, n in mapping.items() if same_name(n, name)), None)


@dataclass
class Vocabulary:
    pipelines: dict[Any, str]                        # pipeline id → name
    statuses: dict[Any, dict[Any, str]]              # pipeline id → stage id → name
    closed: frozenset = frozenset()                  # the CRM's own won/lost stage ids
    users: dict[Any, str] = field(default_factory=dict)
    task_types: dict[Any, str] | None = None         # None: the CRM has no task types (any name is cosmetic)
    loss_reasons: dict[Any, str] | None = None       # None: any text is a valid loss reason
    lead_fields: dict[str, str] = field(default_factory=dict)  # field name → "date", "datetime" or another type
    date_types: frozenset[str] = frozenset({"date", "datetime"})

    def status_names(self, pipeline_ids: Iterable[Any]) -> list[str]:
        return list(dict.fromkeys(n for p in pipeline_ids for n in self.statuses.get(p, {}).values()))


def problems(settings: RuleSettings, departments: Iterable[Any], v: Vocabulary) -> list[NameProblem]:
    """Every name the rules use that the account lacks, with the names it has; optional ones marked."""
    watched = find(v.pipelines, settings.pipeline) if settings.pipeline else None
    scope = ([watched], f"pipeline «{v.pipelines[watched]}»") if watched is not None \
        else (list(v.pipelines), "any pipeline")
    found = []
    for use in settings.used_names(departments):
        problem = unresolved(use, v, scope)
        if problem and use.fallback:
            found.append(NameProblem(f"{use.where}: {problem}; without it {use.fallback}", optional=True))
        elif problem:
            found.append(NameProblem(f"{use.where}: {problem}"))
    open_stages = [n for p in scope[0] for i, n in v.statuses.get(p, {}).items() if i not in v.closed]
    for status in settings.without_next_step(dict.fromkeys(open_stages)):
        found.append(NameProblem(f"rules.statuses: status «{status}» has no next step (no template and no "
                                 "default_task): its leads get no current task", optional=True))
    mapped = settings.fields.mapped()
    for status, template in settings.statuses.items():
        due_field = getattr(template.due, "field", None)
        if due_field and due_field not in mapped:
            found.append(NameProblem(f"rules.statuses.«{status}».due: uses {due_field}, "
                                     "which rules.fields does not map"))
    return found


def unresolved(use: NameUse, v: Vocabulary, scope: tuple[list, str]) -> str | None:
    """What is wrong with one name, or None when the account has it. `scope`: the pipelines
    a status with no pipeline of its own must be in, and how to call them."""
    name = use.name
    if use.kind == kinds.PIPELINE:
        if find(v.pipelines, name) is None:
            return f"pipeline «{name}» not found; the account has: {listing(v.pipelines.values())}"
    elif use.kind == kinds.STATUS:
        pipelines, where = scope
        if use.pipeline:
            found = find(v.pipelines, use.pipeline)
            if found is None:
                return None  # the pipeline's own setting reports it
            pipelines, where = [found], f"pipeline «{v.pipelines[found]}»"
        if not any(find(v.statuses.get(p, {}), name) is not None for p in pipelines):
            return f"status «{name}» is not in {where}; statuses: {listing(v.status_names(pipelines))}"
    elif use.kind == kinds.TASK_TYPE:
        if v.task_types is not None and find(v.task_types, name) is None:
            return f"task type «{name}» not found; task types: {listing(v.task_types.values())}"
    elif use.kind == kinds.LOSS_REASON:
        if v.loss_reasons is not None and find(v.loss_reasons, name) is None:
            return f"loss reason «{name}» not found; loss reasons: {listing(v.loss_reasons.values())}"
    elif use.kind == kinds.USER:
        if find(v.users, name) is None:
            return f"user «{name}» not found; users: {listing(v.users.values())}"
    elif use.kind in (kinds.LEAD_FIELD, kinds.DATE_FIELD):
        found_type = next((t for n, t in v.lead_fields.items() if same_name(n, name)), None)
        if found_type is None:
            return f"lead field «{name}» not found; lead fields: {listing(v.lead_fields)}"
        if use.kind == kinds.DATE_FIELD and found_type not in v.date_types:
            return f"lead field «{name}» is of type {found_type}, a date or date-time field is needed"
    return None


class Cached:
    """An account's vocabulary: kept in this object and in Redis for `ttl` seconds, read from
    the CRM (`read()`) when neither has it, and read again at once when a name is not found."""

    def __init__(self, r, key: str, ttl: float, read, load):
        self.r, self.key, self.ttl, self.read, self.load = r, key, ttl, read, load
        self.value = None
        self.read_at = 0.0

    def get(self, refresh: bool = False):
        if self.value is not None and not refresh and time.monotonic() - self.read_at < self.ttl:
            return self.value
        raw = None if refresh else self.r.get(self.key)
        if raw is not None:
            self.value = self.load(raw)
        else:
            self.value = self.read()
            self.r.set(self.key, self.value.to_json(), ex=int(self.ttl))
        self.read_at = time.monotonic()
        return self.value

    def lookup(self, find):
        """(find(vocabulary), vocabulary), reading the vocabulary again once when find gives None."""
        names = self.get()
        found = find(names)
        if found is None:
            names = self.get(refresh=True)
            found = find(names)
        return found, names
