"""Settings of the calls and chats rules (MISSED_CALL, FAILED_CALL_MESSAGE, WHATSAPP_SLA): the
section `rules.calls` of an account.

Texts are Russian and may use the placeholders {client_name}, {manager} and {lead_link}
(checked when the settings load). Durations are plain numbers of minutes; the SLA
intervals are counted in *working* minutes on the account's calendar.
"""

from __future__ import annotations

import string

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reglament.names import TASK_TYPE, NameUse

PLACEHOLDERS = frozenset({"client_name", "manager", "lead_link"})


def check_placeholders(text: str, where: str) -> None:
    used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    unknown = used - PLACEHOLDERS
    if "" in used:
        raise ValueError(f"{where}: empty placeholder {{}}; use {{client_name}}, {{manager}} or {{lead_link}}")
    if unknown:
        raise ValueError(f"{where}: unknown placeholder(s) {sorted(unknown)}; "
                         "use {client_name}, {manager} or {lead_link}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _placeholders(self):
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, str) and name.endswith(("_text", "_subject", "message")):
                check_placeholders(value, name)
            if isinstance(value, list) and name.endswith("_values"):
                for v in value:
                    check_placeholders(str(v), name)
        return self


class MissedCall(_Model):
    enabled: bool = Field(True, description="MISSED_CALL: react to missed incoming calls.")
    task_text: str = Field("Перезвонить", min_length=1, description="Text of the callback task.")
    task_type: str | None = Field("Звонок", description="Type of the callback task (null = the CRM's default).")
    create_lead_for_unknown: bool = Field(
        True, description="A missed call from a number with no open lead creates a new lead: linked to the "
                          "client's contact when the number has one (a returning client), else with a new contact.")
    new_lead_name: str = Field("Пропущенный звонок {phone}",
                               description="Name of that new lead; {phone} is the caller's number.")
    message_client: bool = Field(True, description="Send the client a message after a missed call.")
    client_message: str = Field(
        "Здравствуйте{client_name}! Вы звонили нам, но мы не успели ответить. Перезвоним вам в ближайшее "
        "рабочее время.",
        description="The message to the client (WhatsApp via Wazzup, else SMS). {client_name} is «, Имя» "
                    "when the name is known, else empty.")
    wazzup_template: str | None = Field(
        None, description="WABA template id to send through Wazzup instead of the text (SMS still gets the text).")
    wazzup_template_values: list[str] = Field(default_factory=list,
                                              description="Values of the template's variables, in order.")
    message_window_minutes: int = Field(
        24 * 60, ge=0, description="At most one such message per client within this many minutes.")
    alert_manager: bool = Field(True, description="Alert the lead's responsible manager (Telegram, else e-mail).")
    alert_subject: str = Field("Пропущенный звонок", description="Subject of the alert.")
    alert_text: str = Field("{manager}, пропущенный звонок от клиента {client_name}. Перезвоните: {lead_link}",
                            description="Text of the alert.")
    close_result: str = Field("Разговор состоялся",
                              description="Result the callback task is closed with after a conversation.")
    replaced_result: str = Field(
        "Заменена задачей «Перезвонить»: пропущенный звонок клиента",
        description="Result Reglament's own open task is closed with when the callback becomes the lead's one task.")
    note_text: str = Field(
        "Reglament (MISSED_CALL): пропущенный звонок — не удалось доставить уведомление менеджеру {manager}.",
        description="Note left in the lead when no channel could alert the manager.")


class FailedCallMessage(_Model):
    enabled: bool = Field(True, description="FAILED_CALL_MESSAGE: message the client after a failed outbound call.")
    client_message: str = Field(
        "Здравствуйте{client_name}! Мы не смогли до вас дозвониться. Когда вам удобно поговорить?",
        description="The message (WhatsApp via Wazzup, else SMS).")
    wazzup_template: str | None = Field(None, description="WABA template id for Wazzup (SMS still gets the text).")
    wazzup_template_values: list[str] = Field(default_factory=list,
                                              description="Values of the template's variables, in order.")
    same_attempt_minutes: int = Field(
        30, ge=0, description="Failure reports of one number this close together are one attempt (the telephony "
                              "webhook and amoCRM's call note for the same call): one message.")


class WhatsappSla(_Model):
    enabled: bool = Field(True, description="WHATSAPP_SLA: answer a client's WhatsApp message in time.")
    answer_minutes: float = Field(5, gt=0, description="Working minutes to answer a client's message.")
    escalate_minutes: float | None = Field(
        10, gt=0, description="Working minutes after the first alert before the head of department is alerted; "
                              "null = never.")
    chat_types: list[str] = Field(default_factory=lambda: ["whatsapp"],
                                  description="Wazzup chat types the SLA watches.")
    alert_subject: str = Field("Клиент ждёт ответа в WhatsApp", description="Subject of the alert to the manager.")
    alert_text: str = Field("{manager}, клиент {client_name} ждёт ответа в WhatsApp больше 5 минут: {lead_link}",
                            description="Text of the alert to the manager.")
    escalation_subject: str = Field("Нет ответа клиенту в WhatsApp", description="Subject of the escalation.")
    escalation_text: str = Field(
        "Менеджер {manager} не ответил клиенту {client_name} в WhatsApp: {lead_link}",
        description="Text of the escalation to the head of the manager's department.")
    chat_cache_minutes: int = Field(60, ge=1, description="How long a chat's lead and manager (found by the phone "
                                                           "through amoCRM contacts) are kept in Redis.")


class CallsSettings(_Model):
    missed_call: MissedCall = Field(default_factory=MissedCall, description="MISSED_CALL")
    failed_call_message: FailedCallMessage = Field(default_factory=FailedCallMessage,
                                                   description="FAILED_CALL_MESSAGE")
    whatsapp_sla: WhatsappSla = Field(default_factory=WhatsappSla, description="WHATSAPP_SLA")

    def used_names(self) -> list[NameUse]:
        """The CRM names these rules use: the callback task's type."""
        m = self.missed_call
        return [NameUse("rules.calls.missed_call.task_type", TASK_TYPE, m.task_type)] \
            if m.enabled and m.task_type else []
