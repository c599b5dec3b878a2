"""Settings of the task rules (NEXT_TASK, STATUS_TASKS, TERMINAL, REDIAL), with the
defaults of REGULATIONS.md and seed 003.

Everything is written by name — statuses, task types, loss reasons — as the managers see
it in the CRM; ids are resolved against the account elsewhere. Names match ignoring
case, repeated spaces and ё/е. Custom lead values use our logical names
(reglament.crm.LOGICAL_FIELDS).

Durations ("steps") are strings: "30m" / "3h" working minutes / hours on the account's
calendar; "1d" calendar days (same local time, rolled forward to a working date);
"2wd" working days.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Iterable
from datetime import timedelta
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from reglament.names import (DATE_FIELD, LEAD_FIELD, LOSS_REASON, PIPELINE, STATUS, TASK_TYPE, USER, NameUse, norm,
                             same_name)
from reglament.calls_settings import CallsSettings
from reglament.discipline_settings import DisciplineSettings
from reglament.distribution_settings import DistributionSettings

from reglament.crm import CALLBACK_AT, LOGICAL_FIELDS, SUBSCRIPTION_END, TRIAL_AT

# --- small value types ----------------------------------------------------------------

_STEP = re.compile(r"^(\d+)\s*(m|h|d|wd)$")
_TIME = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")


def parse_step(step: str) -> tuple[int, str]:
    """'3h' → (3, 'h'). Units: m, h (working time), d (calendar days), wd (working days)."""
    m = _STEP.match(step.strip())
    if not m:
        raise ValueError(f"{step!r} is not a step like 30m, 3h, 1d or 2wd")
    return int(m[1]), m[2]


def step_delta(step: str) -> timedelta:
    """The plain length of an m/h/d step (for offsets and windows, not on the calendar)."""
    n, unit = parse_step(step)
    if unit == "wd":
        raise ValueError(f"{step!r}: working days have no fixed length here")
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]


def _check_step(v: str) -> str:
    parse_step(v)
    return v


def _check_offset(v: str) -> str:
    step_delta(v)
    return v


def _check_time(v: str | None) -> str | None:
    if v is not None and not _TIME.match(v):
        raise ValueError(f"{v!r} is not a time like 10:00")
    return v


Step = Annotated[str, AfterValidator(_check_step)]
Offset = Annotated[str, AfterValidator(_check_offset)]      # m, h or d — a step back in time
LocalTime = Annotated[str | None, AfterValidator(_check_time)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- due rules ------------------------------------------------------------------------

class CadenceDue(Model):
    """Due by the redial cadence (the step after the lead's current attempt)."""
    kind: Literal["cadence"]


class FieldDue(Model):
    """Due exactly at the time in a lead field (the time the client named) — kept as is,
    even outside working hours."""
    kind: Literal["field"]
    field: str


class BeforeFieldDue(Model):
    """Due `offset` before the time in a lead field, moved back into working hours."""
    kind: Literal["before_field"]
    field: str
    offset: Offset = "1d"


class DaysDue(Model):
    """Due n working days after the trigger, at `at` or at the trigger's local time."""
    kind: Literal["days"]
    days: int = Field(ge=0)
    at: LocalTime = None


class HoursDue(Model):
    """Due after this much working time from the trigger."""
    kind: Literal["hours"]
    hours: float = Field(gt=0)


class AfterDue(Model):
    """Due one step after the trigger: "30d" calendar days (rolled to a working date), "2wd"
    working days, "3h" working hours."""
    kind: Literal["after"]
    step: Step


class FirstContactDue(Model):
    """Due at the lead's FIRST_CONTACT_SLA deadline (by its source, in working time from its arrival)."""
    kind: Literal["first_contact"]


DueRule = Annotated[Union[CadenceDue, FieldDue, BeforeFieldDue, DaysDue, HoursDue, AfterDue, FirstContactDue],
                    Field(discriminator="kind")]
Fallback = Annotated[Union[DaysDue, HoursDue], Field(discriminator="kind")]


class TaskTemplate(Model):
    task: str = Field(min_length=1)
    type: str | None = "Звонок"
    important: bool = False
    due: DueRule
    fallback: Fallback | None = None  # when the due field is empty or past; None = settings.fallback_due


# --- the important marker -------------------------------------------------------------

class ImportantMarker(Model):
    task_type: str | None = Field(
        "Важный звонок",
        description="Task type for important tasks, if the account has it; set null to always use the prefix.")
    prefix: str = Field("❗ ВАЖНО: ", description="Otherwise, this goes in front of the task text.")

    def render(self, text: str, task_type: str | None, available_types: Collection[str]) -> tuple[str, str | None]:
        """(text, type) for an important task: the configured type when the account has it,
        else the prefix in front of the text. The executor calls this with the account's
        task type names when it applies a CreateTask with important=True."""
        if self.task_type and any(same_name(self.task_type, t) for t in available_types):
            return text, self.task_type
        return (text if text.startswith(self.prefix) else self.prefix + text), task_type

    def strip(self, text: str) -> str:
        """The task text without the prefix (to recognize a task we made important)."""
        return text[len(self.prefix):] if text.startswith(self.prefix) else text


# --- REDIAL ---------------------------------------------------------------------------

class Redial(Model):
    status: str = Field("Недозвон", description="The status whose leads follow the redial cadence.")
    entry_statuses: list[str] = Field(
        default_factory=list,
        description="Statuses where a failed outbound call starts the cadence and moves the lead to `status` "
                    "(e.g. your first stage, «Новая заявка»). Leads in other statuses are left to the manager.")
    task: str = Field("Дозвониться", description="Text of the redial task.")
    type: str | None = Field("Звонок", description="Type of the redial task.")
    cadence: list[Step] = Field(
        default_factory=lambda: ["1h", "3h", "1d", "7d", "3h", "30d", "3h"],
        description="Wait after failed attempt Н1, Н2, … before the next call, counted from that attempt.")
    max_failures: int = Field(7, ge=1, description="The failed attempt after whose wait (the last cadence step) "
                                                   "the lead goes to final_status, unless a call got through.")
    final_status: str = Field("Отказ", description="Status after the last failed attempt (must be terminal).")
    loss_reason: str | None = Field("Не дозвонились 7 раз", description="Loss reason set with final_status.")
    attempt_format: str = Field("Н{n}", description="How the attempt number is written in the lead (Cyrillic Н).")
    early_tolerance: Offset = Field(
        "10m",
        description="A failed call this much before the current step's task is due still counts as the next "
                    "attempt; an earlier one is noted in the lead but does not advance Н.")
    same_attempt_within: Offset = Field(
        "30m",
        description="Failure signals this close to the last counted one are the same attempt "
                    "(the call, the task closed for it, the status change).")
    not_reached_results: list[str] = Field(
        default_factory=lambda: ["не дозвон", "недозвон", "не взял", "не отвеча", "занято", "сбросил",
                                 "недоступен", "вне зоны"],
        description="A redial task closed with a result containing one of these (or a code like «Н3») "
                    "counts as a failed attempt.")

    @model_validator(mode="after")
    def _lengths(self) -> "Redial":
        # The wait after the last attempt is the last step: a list one shorter repeats it.
        if len(self.cadence) < self.max_failures - 1:
            raise ValueError(f"cadence needs at least max_failures - 1 = {self.max_failures - 1} steps")
        if "{n}" not in self.attempt_format:
            raise ValueError("attempt_format must contain {n}")
        return self

    def attempt_label(self, n: int) -> str:
        return self.attempt_format.format(n=n)

    def step_after(self, attempt: int) -> str:
        """The wait after failed attempt n (1-based); past the end, the last step repeats."""
        return self.cadence[min(max(attempt, 1), len(self.cadence)) - 1]


# --- notes ----------------------------------------------------------------------------

# Placeholders each note may use; checked when the settings load.
NOTE_FIELDS = {
    "next_task": {"rule", "task", "due"},
    "next_task_fallback": {"rule", "task", "due", "field"},
    "redial_next": {"rule", "attempt", "task", "due"},
    "redial_counted": {"rule", "attempt"},
    "redial_moved": {"rule", "status"},
    "redial_final": {"rule", "attempt", "status", "reason"},
    "redial_last": {"rule", "attempt", "task", "due", "status"},
    "redial_early": {"rule", "attempt", "due"},
    "redial_reset": {"rule", "attempt"},
}


class NoteTexts(Model):
    next_task: str = "Reglament ({rule}): у сделки не было открытой задачи — создана задача «{task}» на {due}."
    next_task_fallback: str = ("Reglament ({rule}): у сделки не было открытой задачи — создана задача «{task}» "
                               "на {due} (в сделке не заполнено или уже прошло: {field}).")
    redial_next: str = "Reglament ({rule}): недозвон {attempt} — следующая попытка «{task}» на {due}."
    redial_counted: str = ("Reglament ({rule}): недозвон {attempt} засчитан; новая задача не создана — "
                           "у сделки уже есть открытая задача.")
    redial_moved: str = "Сделка переведена в статус «{status}»."
    redial_final: str = "Reglament ({rule}): недозвон {attempt} — сделка переведена в «{status}», причина «{reason}»."
    redial_last: str = ("Reglament ({rule}): недозвон {attempt} — последняя попытка «{task}» до {due}; "
                        "если не дозвониться, сделка перейдёт в «{status}».")
    redial_early: str = ("Reglament ({rule}): недозвон раньше срока следующей попытки ({due}) — не засчитан, "
                         "счётчик остаётся {attempt}.")
    redial_reset: str = "Reglament ({rule}): разговор состоялся — счётчик недозвонов ({attempt}) сброшен."

    @model_validator(mode="after")
    def _placeholders(self) -> "NoteTexts":
        for name, allowed in NOTE_FIELDS.items():
            used = {f for _, f, _, _ in string.Formatter().parse(getattr(self, name)) if f}
            if used - allowed:
                raise ValueError(f"{name}: unknown placeholder(s) {sorted(used - allowed)}; "
                                 f"use {', '.join('{' + a + '}' for a in sorted(allowed))}")
        return self


# --- where the logical lead fields live in the CRM ------------------------------------

class LeadFields(Model):
    """The CRM custom field (by its name as the CRM shows it) behind each logical lead field;
    null = not kept in this account (rules that need it fall back or do nothing)."""
    callback_at: str | None = Field("Дата перезвона", description="date/time: when the client asked to be called back")
    trial_at: str | None = Field("Дата пробного", description="date/time: the booked trial class")
    subscription_end: str | None = Field("Окончание абонемента", description="date: the end of the subscription")
    redial_attempt: str | None = Field("Попытка дозвона", description="text: the redial attempt «Н1»…«Н7»")
    redial_last_at: str | None = Field("Последний недозвон",
                                       description="date/time: when the last counted failed call happened")

    def mapped(self) -> dict[str, str]:
        """Logical name → CRM field name, for the fields this account keeps."""
        return {k: v for k, v in self.model_dump().items() if v}


assert set(LeadFields.model_fields) == set(LOGICAL_FIELDS), "LeadFields must name every logical field"
# The logical fields that hold a date or a moment (their CRM fields must be date fields).
DATE_LOGICAL_FIELDS = frozenset(k for k, what in LOGICAL_FIELDS.items() if what.startswith("date"))


# --- all of it ------------------------------------------------------------------------

def _default_statuses() -> dict[str, TaskTemplate]:
    t = TaskTemplate.model_validate
    return {
        "Новая заявка": t({"task": "Связаться: первый контакт", "due": {"kind": "first_contact"}}),
        "Недозвон": t({"task": "Дозвониться", "due": {"kind": "cadence"}}),
        "Просил перезвонить": t({"task": "Перезвон", "important": True,
                                 "due": {"kind": "field", "field": CALLBACK_AT}}),
        "Записался на пробное": t({"task": "Напомнить",
                                   "due": {"kind": "before_field", "field": TRIAL_AT, "offset": "1d"}}),
        "Не пришел на пробное": t({"task": "Записать", "due": {"kind": "days", "days": 1}}),
        "Пришел на пробное": t({"task": "Продать", "due": {"kind": "days", "days": 1}}),
        "Принимает решение": t({"task": "Продать", "due": {"kind": "days", "days": 2}}),
        "Клиент": t({"task": "Продление",
                     "due": {"kind": "before_field", "field": SUBSCRIPTION_END, "offset": "7d"}}),
        # Seed 003's «Презент» code: the incubated client is offered something again in a month.
        "Инкубатор": t({"task": "Презент", "due": {"kind": "after", "step": "30d"}}),
    }


class RuleSettings(Model):
    notes: bool = Field(True, description="Write a note into the lead whenever a rule changes something.")
    pipeline: str | None = Field(None, description="The pipeline (by name) whose leads the rules look after; "
                                                    "null = every pipeline.")
    fields: LeadFields = Field(default_factory=LeadFields,
                               description="The CRM lead fields (by name) behind Reglament's logical fields.")
    sweep_interval_minutes: int = Field(10, ge=0, description="How often the sweep looks for active leads without "
                                                              "an open task; 0 = never.")
    statuses: dict[str, TaskTemplate] = Field(
        default_factory=_default_statuses,
        description="STATUS_TASKS: status name → the next task. due.kind: cadence (redial steps) | "
                    "field (at the time in a lead field) | before_field (offset before it) | "
                    "days (n working days later, optional at: HH:MM) | hours (working hours later) | "
                    "after (a step: 30d, 2wd, 3h) | first_contact (the FIRST_CONTACT_SLA deadline). "
                    "fallback: used when the due field is empty or past.")
    default_task: TaskTemplate | None = Field(
        default_factory=lambda: TaskTemplate.model_validate(
            {"task": "Договориться о следующем шаге", "due": {"kind": "days", "days": 1}}),
        description="Task for active statuses missing from the table (every active lead has one current "
                    "task); null = none, and `reglament check` warns about each such status.")
    terminal_statuses: list[str] = Field(
        default_factory=lambda: ["Отказ", "Расторгнут договор", "Завершил"],
        description="TERMINAL: leads here need no task; their open tasks are left alone.")
    crm_closed_is_terminal: bool = Field(True, description="The CRM's own won/lost stages are terminal too.")
    fallback_due: Fallback = Field(
        default_factory=lambda: HoursDue(kind="hours", hours=2),
        description="Due rule when a template's field is empty or already past.")
    field_labels: dict[str, str] = Field(
        default_factory=lambda: {CALLBACK_AT: "время перезвона", TRIAL_AT: "дата пробного занятия",
                                 SUBSCRIPTION_END: "окончание абонемента"},
        description="How lead fields are called in notes.")
    important: ImportantMarker = Field(default_factory=ImportantMarker,
                                       description="How an important task (e.g. «Перезвон») is marked.")
    redial: Redial = Field(default_factory=Redial, description="REDIAL: the cadence of failed calls.")
    note_texts: NoteTexts = Field(default_factory=NoteTexts, description="Texts of the notes (Russian).")
    # Other rule families keep their settings in sections of their own modules.
    calls: CallsSettings = Field(default_factory=CallsSettings,
                                 description="MISSED_CALL, FAILED_CALL_MESSAGE, WHATSAPP_SLA.")
    discipline: DisciplineSettings = Field(
        default_factory=DisciplineSettings,
        description="NO_POSTPONE, TASK_RESULT, OVERDUE, TASK_NAME, COMMENT_CODES, INCUBATOR, UNPAID_INVOICE, DIGEST.")
    distribution: DistributionSettings = Field(default_factory=DistributionSettings,
                                               description="DISTRIBUTION, FIRST_CONTACT_SLA, shift start.")

    @model_validator(mode="after")
    def _consistent(self) -> "RuleSettings":
        terminal = {norm(s) for s in self.terminal_statuses}
        seen: dict[str, str] = {}
        for name, template in self.statuses.items():
            if norm(name) in seen:
                raise ValueError(f"statuses: «{name}» and «{seen[norm(name)]}» are the same status")
            seen[norm(name)] = name
            if norm(name) in terminal:
                raise ValueError(f"statuses: «{name}» is terminal and cannot have a task")
            if template.due.kind == "cadence":
                if not same_name(name, self.redial.status):
                    raise ValueError(f"statuses: «{name}» uses due kind cadence, which only "
                                     f"redial.status «{self.redial.status}» may use")
                if not same_name(template.task, self.redial.task):
                    raise ValueError(f"statuses: «{name}» task «{template.task}» differs from "
                                     f"redial.task «{self.redial.task}»")
        if norm(self.redial.final_status) not in terminal:
            raise ValueError(f"redial.final_status «{self.redial.final_status}» must be one of terminal_statuses")
        if norm(self.redial.status) in terminal:
            raise ValueError(f"redial.status «{self.redial.status}» cannot be terminal")
        return self

    def without_next_step(self, statuses: Iterable[str]) -> list[str]:
        """The active statuses (of these, as the CRM names them) that no template and no
        default_task give a next step: their leads would have no current task."""
        return [name for name in statuses
                if self.template_for(name) is None and not any(same_name(name, t) for t in self.terminal_statuses)]

    def template_for(self, status: str) -> TaskTemplate | None:
        """The status's task template, else default_task (None for a status with no task)."""
        for name, template in self.statuses.items():
            if same_name(name, status):
                return template
        return self.default_task

    def field_label(self, field: str) -> str:
        return self.field_labels.get(field, field)

    def used_names(self, departments: Iterable[Any] = ()) -> list[NameUse]:
        """Every CRM name the rules use — statuses, task types, lead fields, users, loss
        reasons — with where each is set, for a connector to resolve (`reglament check`, the
        service's start). `departments` are the account's (reglament.config.Department):
        their heads and managers are users too. Names of disabled rules are left out."""
        used: list[NameUse] = [NameUse("rules.pipeline", PIPELINE, self.pipeline)] if self.pipeline else []
        used += [NameUse(f"rules.statuses.«{n}»", STATUS, n) for n in self.statuses]
        used += [NameUse("rules.terminal_statuses", STATUS, n) for n in self.terminal_statuses]
        r = self.redial
        used += [NameUse("rules.redial.status", STATUS, r.status),
                 NameUse("rules.redial.final_status", STATUS, r.final_status)]
        used += [NameUse("rules.redial.entry_statuses", STATUS, n) for n in r.entry_statuses]
        used += [NameUse(f"rules.statuses.«{n}».type", TASK_TYPE, t.type) for n, t in self.statuses.items() if t.type]
        if self.default_task and self.default_task.type:
            used.append(NameUse("rules.default_task.type", TASK_TYPE, self.default_task.type))
        if r.type:
            used.append(NameUse("rules.redial.type", TASK_TYPE, r.type))
        if self.important.task_type:
            used.append(NameUse("rules.important.task_type", TASK_TYPE, self.important.task_type,
                                fallback=f"important tasks get the prefix «{self.important.prefix.strip()}»"))
        if r.loss_reason:
            used.append(NameUse("rules.redial.loss_reason", LOSS_REASON, r.loss_reason))
        used += [NameUse(f"rules.fields.{logical}", DATE_FIELD if logical in DATE_LOGICAL_FIELDS else LEAD_FIELD, name)
                 for logical, name in self.fields.mapped().items()]
        used += self.discipline.used_names() + self.distribution.used_names(self.pipeline) + self.calls.used_names()
        for n, d in enumerate(departments):
            where = f"departments[{n}] ({d.name})"
            used.append(NameUse(f"{where}.head", USER, d.head))
            used += [NameUse(f"{where}.managers", USER, m) for m in d.managers]
        return used


def load(data: dict[str, Any] | None) -> RuleSettings:
    """Settings from the account's `rules:` mapping (missing keys take the defaults)."""
    return RuleSettings.model_validate(data or {})


# --- the commented YAML for `reglament init` -------------------------------------------

def _scalar(v: Any) -> str:
    text = yaml.safe_dump(v, allow_unicode=True, default_flow_style=True, sort_keys=False, width=10_000)
    return text.removesuffix("...\n").strip()


def _comment(lines: list[str], pad: str, text: str | None) -> None:
    if text:
        lines.extend(f"{pad}# {line}" for line in _wrap(text, 96 - len(pad)))


def _wrap(text: str, width: int) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return out + [line] if line else out


def _flat(v: Any) -> bool:
    """Small enough to read on one line in flow style."""
    if isinstance(v, BaseModel):
        v = v.model_dump(mode="json", exclude_none=True)
    values = v.values() if isinstance(v, dict) else v
    return all(not isinstance(x, (dict, list)) for x in values) and len(_scalar(v)) <= 80


def _emit(model: BaseModel, lines: list[str], level: int, comments: bool) -> None:
    pad = "  " * level
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if comments:
            _comment(lines, pad, info.description)
        key = _scalar(name)
        if isinstance(value, BaseModel) and not _flat(value):
            lines.append(f"{pad}{key}:")
            _emit(value, lines, level + 1, comments)
        elif isinstance(value, BaseModel):
            lines.append(f"{pad}{key}: {_scalar(value.model_dump(mode='json', exclude_none=True))}")
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            lines.append(f"{pad}{key}:")
            for k, v in value.items():
                lines.append(f"{pad}  {_scalar(k)}:")
                _emit_compact(v, lines, level + 2)
        elif isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:")
            lines.extend(f"{pad}  {_scalar(k)}: {_scalar(v)}" for k, v in value.items())
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")


def _emit_compact(model: BaseModel, lines: list[str], level: int) -> None:
    # Table rows: one key per line, nested rules in flow style, `important: false` left out.
    pad = "  " * level
    for k, v in model.model_dump(mode="json", exclude_none=True).items():
        if k == "important" and not v:
            continue
        lines.append(f"{pad}{_scalar(k)}: {_scalar(v)}")


def defaults_yaml(indent: int = 0) -> str:
    """The default settings as a commented YAML block, for `reglament init`. `indent` levels
    (two spaces each) let it sit under an account's `rules:` key."""
    lines = ["# Task rules: NEXT_TASK, STATUS_TASKS, TERMINAL, REDIAL (see REGULATIONS.md).",
             "# Names are matched against the CRM ignoring case; lead fields use Reglament's logical names."]
    _emit(RuleSettings(), lines, 0, comments=True)
    pad = "  " * indent
    return "\n".join(pad + line for line in lines) + "\n"
