"""Settings of the discipline rules (the section `rules.discipline`): NO_POSTPONE, TASK_RESULT,
OVERDUE, TASK_NAME, COMMENT_CODES, INCUBATOR, UNPAID_INVOICE and the heads' DIGEST.

Defaults come from REGULATIONS.md and seeds 000, 003, 004. Names (statuses, fields, task
types, codes) are written as the managers see them in the CRM and compared ignoring case,
repeated spaces and ё/е. Texts are Russian templates; their placeholders are checked when the
settings load.

Also here: what the pure decision functions of jobs/rules/{no_postpone,...}.py return
(`Outcome`: violations to record, CRM actions, alerts to people).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reglament.names import DATE_FIELD, LEAD_FIELD, STATUS, TASK_TYPE, NameUse
from reglament.violations import Violation


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_placeholders(model: BaseModel, allowed: dict[str, set[str]]) -> None:
    for name, fields in allowed.items():
        used = {f for _, f, _, _ in string.Formatter().parse(getattr(model, name)) if f}
        if used - fields:
            raise ValueError(f"{name}: unknown placeholder(s) {sorted(used - fields)}; "
                             f"use {', '.join('{' + a + '}' for a in sorted(fields))}")


class NoPostpone(_Model):
    enabled: bool = Field(True, description="NO_POSTPONE: a moved task deadline is a violation.")
    revert: bool = Field(False, description="Put the deadline back where it was (the manager must close the task "
                                            "with a result and open a new one instead).")
    only_later: bool = Field(True, description="Count only moves to a later time; moving a task earlier is allowed.")
    tolerance_minutes: int = Field(1, ge=0, description="Moves shorter than this are ignored.")
    allowed_tasks: list[str] = Field(
        default_factory=lambda: ["Продление"],
        description="Task names that may be moved (seed 003: «Продление» may move while the subscription lasts).")
    subject: str = Field("Перенос срока задачи", description="Alert subject.")
    text: str = Field(
        "Срок задачи «{task}» перенесён с {before} на {after}. Переносить задачи нельзя: закройте задачу "
        "с результатом и поставьте новую. Сделка: {link}",
        description="Alert to the manager. Placeholders: {task} {before} {after} {link}.")


class TaskResult(_Model):
    enabled: bool = Field(True, description="TASK_RESULT: a task completed without a result is a violation.")
    min_length: int = Field(1, ge=1, description="A result shorter than this many characters counts as empty.")
    subject: str = Field("Задача закрыта без результата", description="Alert subject.")
    text: str = Field(
        "Задача «{task}» закрыта без результата. Допишите в сделку, чем закончился шаг. Сделка: {link}",
        description="Reminder to the manager. Placeholders: {task} {link}.")


class Overdue(_Model):
    enabled: bool = Field(True, description="OVERDUE: the periodic check of open tasks past their deadline.")
    interval_minutes: int = Field(10, ge=1, description="How often the discipline sweep runs.")
    grace_minutes: int = Field(15, ge=0, description="A task is overdue this long after its deadline.")
    escalate_after_minutes: int = Field(120, ge=0, description="Overdue this long → the head is told too; "
                                                               "0 = never escalate.")
    subject: str = Field("Просроченная задача", description="Reminder subject.")
    text: str = Field("Задача «{task}» просрочена (срок был {due}). Выполните её и закройте с результатом. "
                      "Сделка: {link}", description="Reminder to the manager. Placeholders: {task} {due} {link}.")
    escalation_subject: str = Field("Эскалация: просроченная задача", description="Escalation subject.")
    escalation_text: str = Field(
        "У менеджера {manager} задача «{task}» просрочена с {due}. Сделка: {link}",
        description="Escalation to the head. Placeholders: {manager} {task} {due} {link}.")


def _vague_names() -> list[str]:
    return ["Связаться", "Задача", "Позвонить", "Набрать", "Звонок", "Связаться с клиентом", "Написать",
            "Уточнить", "Контроль", "Follow up", "Follow-up", "Напоминание", "Сделать"]


class TaskName(_Model):
    enabled: bool = Field(True, description="TASK_NAME: a task created by a person must state the goal.")
    vague_names: list[str] = Field(default_factory=_vague_names,
                                   description="Task names that do not state the goal of the next step.")
    subject: str = Field("Неконкретное название задачи", description="Alert subject.")
    text: str = Field("Название задачи «{task}» не говорит, что нужно сделать. Укажите цель шага "
                      "(например, «Перезвон: согласовать дату пробного»). Сделка: {link}",
                      description="Alert to the manager. Placeholders: {task} {link}.")


def _callback_codes() -> list[str]:
    return ["Не удобно", "Болели", "Уезжали", "Думает", "Уточнить ФИО", "Уточнить ДР", "Маленький", "Вых.",
            "Выходные", "Будни", "пн", "вт", "ср", "чт", "пт", "сб", "вск", "Презент", "Скидывает", "Другое:"]


def _refusal_codes() -> list[str]:
    return ["Больше 7", "Клиент", "Дубль", "Не звонить", "Друг", "Неправильный номер", "Номер набран не правильно",
            "Номер не используется", "Номер не существует", "Не оставляли номер", "Имя контакта неверное",
            "Колл-центр", "Не дозвонились 7 раз"]


class CommentCodes(_Model):
    enabled: bool = Field(True, description="COMMENT_CODES: callback and refusal reasons use the canonical codes.")
    callback_status: str = Field("Просил перезвонить", description="The callback status.")
    callback_codes: list[str] = Field(default_factory=_callback_codes,
                                      description="Codes for a callback (seed 003). A reason may continue after "
                                                  "the code («Другое: уехал на дачу», «пн 18:00»).")
    present_codes: list[str] = Field(default_factory=lambda: ["Презент"],
                                     description="Callback codes that mean «call again in present_days».")
    present_days: int = Field(30, ge=1, description="«Презент»: the callback is due this many days later.")
    at_once_codes: list[str] = Field(default_factory=lambda: ["Скидывает"],
                                     description="Callback codes that mean «call back at once» (seed 003).")
    callback_field: str | None = Field(
        "Причина перезвона",
        description="Lead field (by name) with the callback reason; when null or absent from the account, the "
                    "lead's latest text note is the reason.")
    check_after_minutes: int = Field(
        5, ge=0, description="The reason is checked this long after the status change (the manager writes it "
                             "right after); 0 = at once.")
    refusal_statuses: list[str] = Field(default_factory=lambda: ["Отказ"],
                                        description="Refusal statuses; the CRM's own lost stage counts too.")
    refusal_codes: list[str] = Field(default_factory=_refusal_codes,
                                     description="Loss reasons (amoCRM «Причина отказа») that are canonical codes.")
    subject: str = Field("Причина не по кодам", description="Alert subject.")
    text: str = Field("Сделка переведена в «{status}» с причиной «{reason}», а это не код из регламента. "
                      "Допустимые: {codes}. Сделка: {link}",
                      description="Alert to the manager. Placeholders: {status} {reason} {codes} {link}.")


class Incubator(_Model):
    enabled: bool = Field(True, description="INCUBATOR: leads with no meeting a month after they arrived.")
    after_days: int = Field(30, ge=1, description="Days after the lead arrived.")
    status: str = Field("Инкубатор", description="The status they move to.")
    meeting_task_types: list[str] = Field(default_factory=lambda: ["Встреча"],
                                          description="An open task of these types is a scheduled meeting.")
    meeting_statuses: list[str] = Field(
        default_factory=lambda: ["Записался на пробное", "Пришел на пробное", "Принимает решение", "Клиент"],
        description="Leads in these statuses have had their meeting and stay.")
    meeting_field: str | None = Field("Дата пробного", description="A date in this lead field means a meeting "
                                                                   "is scheduled.")
    skip_running_cadence: bool = Field(
        True, description="A lead whose redial cadence runs (in the redial status with attempts counted) is left "
                          "to REDIAL, which ends it in its final status; INCUBATOR never undoes it.")
    note: str = Field("Reglament (INCUBATOR): за {days} дней встреча не назначена — сделка переведена в «{status}».",
                      description="Note written into the lead. Placeholders: {days} {status}.")
    closed_result: str = Field("Сделка переведена в «Инкубатор»",
                               description="Result Reglament's own open task is closed with when the lead moves; "
                                           "the status's next step (e.g. «Презент») follows.")
    violation: bool = Field(True, description="Also record a violation against the responsible manager.")


class UnpaidInvoice(_Model):
    enabled: bool = Field(True, description="UNPAID_INVOICE: remind about invoices sent and not paid in time.")
    status_field: str = Field("Статус счёта", description="Lead field with the invoice status.")
    sent_values: list[str] = Field(default_factory=lambda: ["Выставлен", "Отправлен"],
                                   description="Values of status_field meaning «sent, not paid yet».")
    due_field: str = Field("Срок оплаты", description="Lead field (date) with the invoice's due date.")
    promised_field: str | None = Field("Обещанная дата оплаты",
                                       description="Lead field (date) with the date the client promised to pay.")
    task: str = Field("Напомнить клиенту об оплате счёта", description="The reminder task for the manager.")
    task_type: str | None = Field("Звонок", description="Type of the reminder task.")
    task_due_hours: float = Field(2, gt=0, description="The task is due this many working hours later.")
    replaced_result: str = Field("Заменена напоминанием об оплате счёта",
                                 description="Result Reglament's own open task is closed with when the reminder "
                                             "becomes the lead's one task.")
    alert_subject: str = Field("Счёт не оплачен", description="Alert when a manager's own task stays the one task.")
    alert_text: str = Field("Клиент не оплатил счёт ({what} {date}). Напомните об оплате: {link}",
                            description="Alert text. Placeholders: {what} {date} {link}.")


class Digest(_Model):
    enabled: bool = Field(True, description="DIGEST: each head gets the day's violations of their managers.")
    at: str = Field("09:30", pattern=r"^([01]?\d|2[0-3]):[0-5]\d$",
                    description="Local time (working days only) the digest for the previous working day goes out.")
    worst_cases: int = Field(5, ge=0, description="How many worst cases (leads with most violations) to list.")
    subject: str = Field("Нарушения регламента за {date}", description="Subject. Placeholders: {date} {department}.")

    @model_validator(mode="after")
    def _texts(self) -> "Digest":
        _check_placeholders(self, {"subject": {"date", "department"}})
        return self


RULE_TITLES = {
    "NO_POSTPONE": "Перенос срока", "TASK_RESULT": "Без результата", "OVERDUE": "Просрочка",
    "TASK_NAME": "Название задачи", "COMMENT_CODES": "Не по кодам", "INCUBATOR": "Инкубатор",
    "UNPAID_INVOICE": "Неоплаченный счёт", "WHATSAPP_SLA": "Ответ в WhatsApp", "MISSED_CALL": "Пропущенный",
    "FIRST_CONTACT_SLA": "Первый контакт",
}


class DisciplineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ignore_users: list[int] = Field(default_factory=list,
                                    description="CRM user ids whose actions are never violations (robots, "
                                                "integrations); user 0 (amoCRM's robot) is always ignored.")
    fallback_note: bool = Field(True, description="When no channel (Telegram, e-mail) reaches a manager, the "
                                                  "reminder goes to the outbox and a short note on the lead — "
                                                  "never a task: the lead keeps its one current task.")
    retention_days: int = Field(90, ge=1, description="How long violations are kept.")
    rule_titles: dict[str, str] = Field(default_factory=lambda: dict(RULE_TITLES),
                                        description="Short Russian titles of the rule codes in digests.")
    no_postpone: NoPostpone = Field(default_factory=NoPostpone, description="NO_POSTPONE.")
    task_result: TaskResult = Field(default_factory=TaskResult, description="TASK_RESULT.")
    overdue: Overdue = Field(default_factory=Overdue, description="OVERDUE.")
    task_name: TaskName = Field(default_factory=TaskName, description="TASK_NAME.")
    comment_codes: CommentCodes = Field(default_factory=CommentCodes, description="COMMENT_CODES.")
    incubator: Incubator = Field(default_factory=Incubator, description="INCUBATOR.")
    unpaid_invoice: UnpaidInvoice = Field(default_factory=UnpaidInvoice, description="UNPAID_INVOICE.")
    digest: Digest = Field(default_factory=Digest, description="DIGEST: the heads' digest.")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        # `fallback_task` made a reminder into a second open task; files written before keep working.
        if isinstance(data, dict) and "fallback_task" in data:
            data = {k: v for k, v in data.items() if k != "fallback_task"} | {
                "fallback_note": data.get("fallback_note", data["fallback_task"])}
        return data

    @model_validator(mode="after")
    def _texts(self) -> "DisciplineSettings":
        _check_placeholders(self.no_postpone, {"text": {"task", "before", "after", "link"}})
        _check_placeholders(self.task_result, {"text": {"task", "link"}})
        _check_placeholders(self.unpaid_invoice, {"alert_text": {"what", "date", "link"}})
        _check_placeholders(self.overdue, {"text": {"task", "due", "link"},
                                           "escalation_text": {"manager", "task", "due", "link"}})
        _check_placeholders(self.task_name, {"text": {"task", "link"}})
        _check_placeholders(self.comment_codes, {"text": {"status", "reason", "codes", "link"}})
        _check_placeholders(self.incubator, {"note": {"days", "status"}})
        return self

    def title(self, rule: str) -> str:
        return self.rule_titles.get(rule, rule)

    def used_names(self) -> list[NameUse]:
        """The CRM names the enabled rules of this section use (statuses in the watched pipelines)."""
        w = "rules.discipline"
        used: list[NameUse] = []
        c = self.comment_codes
        if c.enabled:
            used.append(NameUse(f"{w}.comment_codes.callback_status", STATUS, c.callback_status))
            used += [NameUse(f"{w}.comment_codes.refusal_statuses", STATUS, n) for n in c.refusal_statuses]
            if c.callback_field:
                used.append(NameUse(f"{w}.comment_codes.callback_field", LEAD_FIELD, c.callback_field,
                                    fallback="the lead's latest comment is read as the reason"))
        i = self.incubator
        if i.enabled:
            used.append(NameUse(f"{w}.incubator.status", STATUS, i.status))
            used += [NameUse(f"{w}.incubator.meeting_statuses", STATUS, n) for n in i.meeting_statuses]
            used += [NameUse(f"{w}.incubator.meeting_task_types", TASK_TYPE, n) for n in i.meeting_task_types]
            if i.meeting_field:
                used.append(NameUse(f"{w}.incubator.meeting_field", DATE_FIELD, i.meeting_field))
        u = self.unpaid_invoice
        if u.enabled:
            used += [NameUse(f"{w}.unpaid_invoice.status_field", LEAD_FIELD, u.status_field),
                     NameUse(f"{w}.unpaid_invoice.due_field", DATE_FIELD, u.due_field)]
            if u.promised_field:
                used.append(NameUse(f"{w}.unpaid_invoice.promised_field", DATE_FIELD, u.promised_field))
            if u.task_type:
                used.append(NameUse(f"{w}.unpaid_invoice.task_type", TASK_TYPE, u.task_type))
        return used


# --- what the decisions return -----------------------------------------------------------

@dataclass(frozen=True)
class Alert:
    """A message to a person: the lead's manager or their head."""
    to: Literal["manager", "head"]
    user_id: int | None            # the manager (for "head": the manager whose head is told)
    subject: str
    text: str
    key: str                       # once per key and person
    lead_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    violations: tuple[Violation, ...] = ()
    actions: tuple = ()            # reglament.crm actions
    alerts: tuple[Alert, ...] = ()
    remember: dict = field(default_factory=dict)  # rule memory to store (e.g. a task's known deadline)

    def __add__(self, other: "Outcome") -> "Outcome":
        return Outcome(self.violations + other.violations, self.actions + other.actions,
                       self.alerts + other.alerts, {**self.remember, **other.remember})

    def __bool__(self) -> bool:
        return bool(self.violations or self.actions or self.alerts)
