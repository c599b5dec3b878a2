"""The audit: a dry run of the sweep over one account — every lead that breaks NEXT_TASK,
STATUS_TASKS or REDIAL and what Reglament would do about it — as a table, CSV or JSON.

It is the sweep's own plan (jobs.sweep.plan), so it lists exactly the leads the sweep then
fixes; `apply` hands that plan to the sweep's apply.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from jobs import sweep
from jobs.executor import Executor, Planned
from jobs.rules.notes import when
from reglament.rule_settings import RuleSettings
from reglament.crm import CRM, AddNote, CreateTask, LeadSnapshot, SetLeadField, SetLeadStatus

FORMATS = ("table", "csv", "json")
HEADERS = {"lead_id": "Сделка", "name": "Название", "status": "Статус", "responsible": "Ответственный",
           "rules": "Правила", "problem": "Нарушение", "fix": "Что сделает Reglament", "url": "Ссылка"}


@dataclass(frozen=True)
class Finding:
    lead_id: int
    name: str
    status: str
    responsible: str
    rules: str      # rule codes, e.g. "NEXT_TASK, STATUS_TASKS"
    problem: str    # in the managers' words
    fix: str        # what Reglament would do, in the managers' words
    url: str


@dataclass
class Audit:
    checked: int
    plans: list[Planned]
    findings: list[Finding]


def run(executor: Executor, crm, now: datetime | None = None) -> Audit:
    """Changes nothing. `crm` is the account's CRM interface (names and links come from it)."""
    counted = sweep.SweepResult()
    plans = list(sweep.plan(executor, crm, now, counted))
    return Audit(counted.checked, plans, [finding(p, executor.settings, executor, crm) for p in plans]
                 + [crowded(s, crm) for s in counted.crowded])


def apply(executor: Executor, audit: Audit) -> sweep.SweepResult:
    return sweep.apply(executor, audit.plans)


def rules_of(p: Planned, settings: RuleSettings) -> list[str]:
    codes = list(dict.fromkeys(a.rule for a in p.actions))
    template = settings.template_for(p.snapshot.lead.status)
    if template is not None and "NEXT_TASK" in codes:
        if template.due.kind == "cadence":
            codes.append("REDIAL")
        elif template is not settings.default_task:
            codes.append("STATUS_TASKS")
    return codes


def finding(p: Planned, settings: RuleSettings, executor: Executor, crm: CRM) -> Finding:
    lead = p.snapshot.lead
    user = getattr(crm, "user_name", lambda i: str(i or ""))
    url = getattr(crm, "lead_url", lambda i: "")
    problem = "нет открытой задачи" if not p.snapshot.open_tasks else "—"
    return Finding(lead_id=lead.id, name=lead.name, status=lead.status, responsible=user(lead.responsible_id),
                   rules=", ".join(rules_of(p, settings)), problem=problem,
                   fix="; ".join(describe(a, settings, executor, user) for a in p.actions), url=url(lead.id))


def crowded(snapshot: LeadSnapshot, crm: CRM) -> Finding:
    """A lead with two or more open tasks made by people: listed, never changed."""
    lead, tasks = snapshot.lead, snapshot.people_tasks()
    return Finding(lead_id=lead.id, name=lead.name, status=lead.status, responsible=crm.user_name(lead.responsible_id),
                   rules="NEXT_TASK", problem=f"{len(tasks)} открытых задачи вместо одной: "
                                             + ", ".join(f"«{t.text}»" for t in tasks),
                   fix="ничего: задачи менеджеров не трогаем, нарушение записано", url=crm.lead_url(lead.id))


def describe(a, settings: RuleSettings, executor: Executor, user) -> str:
    if isinstance(a, CreateTask):
        kind = f" ({a.task_type})" if a.task_type else ""
        important = ", важная" if a.important else ""
        return (f"создать задачу «{a.text}»{kind}{important} на {when(a.due, executor.calendar)}, "
                f"ответственный {user(a.responsible_id) or '—'}")
    if isinstance(a, SetLeadStatus):
        reason = f", причина «{a.loss_reason}»" if a.loss_reason else ""
        return f"перевести в статус «{a.status}»{reason}"
    if isinstance(a, SetLeadField):
        name = settings.fields.mapped().get(a.field, a.field)
        return f"очистить поле «{name}»" if a.value is None else f"записать в поле «{name}»: {a.value}"
    if isinstance(a, AddNote):
        return "оставить примечание"
    return type(a).__name__


def render(findings: Sequence[Finding], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(f) for f in findings], ensure_ascii=False, indent=2) + "\n"
    rows = [[str(getattr(f, k)) for k in HEADERS] for f in findings]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(HEADERS.values())
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "table":
        columns = [k for k in HEADERS if k != "url"]  # links make the table too wide; CSV and JSON have them
        table = [[HEADERS[k] for k in columns]] + [[str(getattr(f, k)) for k in columns] for f in findings]
        widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}; use {', '.join(FORMATS)}")
