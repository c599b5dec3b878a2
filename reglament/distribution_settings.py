"""Settings of DISTRIBUTION, FIRST_CONTACT_SLA and the shift-start list: the section
`rules.distribution` of an account.

Managers, statuses, pipelines and fields are written by name, as people see them in the
CRM. A shift is "HH:MM-HH:MM" in the account's time zone; an end at or before the start
runs past midnight ("20:00-08:00"); several spans of one day are separated by commas.
Durations ("15m", "4h") are *working* minutes / hours on the account's calendar.

Texts are Russian and may use {manager}, {lead_link}, {lead_name}, {source}, {deadline},
{count} and {list} (checked when the settings load).
"""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reglament.names import LEAD_FIELD, PIPELINE, STATUS, USER, NameUse

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PLACEHOLDERS = frozenset({"manager", "lead_link", "lead_name", "source", "deadline", "count", "list"})
_SPAN = re.compile(r"^\s*([01]?\d|2[0-4]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)\s*$")
_DURATION = re.compile(r"^\s*(\d+)\s*(m|h)\s*$")


def parse_duration(value: str) -> int:
    """'15m' → 15, '4h' → 240 (minutes)."""
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a duration like 15m or 4h")
    return int(m[1]) * (60 if m[2] == "h" else 1)


def parse_spans(value: str) -> list[tuple[int, int]]:
    """'09:00-13:00, 14:00-18:00' → [(540, 780), (840, 1080)]; '20:00-08:00' → [(1200, 1920)]
    (minutes after the day's local midnight; an end past 1440 belongs to the next day)."""
    spans = []
    for part in value.split(","):
        m = _SPAN.match(part)
        if not m:
            raise ValueError(f"{part.strip()!r} is not a shift like 09:00-18:00")
        start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
        if start >= 1440 or end > 1440:
            raise ValueError(f"{part.strip()!r}: hours go up to 24:00")
        if end <= start:
            end += 1440  # overnight
        spans.append((start, end))
    return spans


def _check_text(text: str, where: str) -> None:
    used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    unknown = used - PLACEHOLDERS
    if "" in used or unknown:
        raise ValueError(f"{where}: unknown placeholder(s) {sorted(unknown or {''})}; "
                         f"use {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Manager(_Model):
    name: str = Field(min_length=1, description="The manager's CRM user name.")
    weight: int = Field(1, ge=1, le=100, description="Share of new leads: a manager with 2 gets twice as many "
                                                     "as one with 1.")
    shifts: dict[str, str | None] | None = Field(
        None, description="Weekly shifts: weekday (mon..sun) → \"09:00-18:00\" (several spans separated by commas, "
                          "\"20:00-08:00\" runs past midnight); a weekday left out or null is a day off. "
                          "null = the account's working hours (with its holidays).")

    @field_validator("shifts")
    @classmethod
    def _shifts(cls, v):
        if v is None:
            return v
        unknown = set(v) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekday(s) {sorted(unknown)}; use {', '.join(WEEKDAYS)}")
        for spans in v.values():
            if spans:
                parse_spans(spans)
        return v


class Source(_Model):
    first_contact: str = Field("4h", description="FIRST_CONTACT_SLA for leads of this source: working time from "
                                                 "arrival to the first call, message or note (\"15m\", \"4h\").")
    priority: int = Field(100, description="Place in the shift-start list: smaller comes first.")
    aliases: list[str] = Field(default_factory=list,
                               description="Other values of the source field / utm_source that mean this source.")

    @field_validator("first_contact")
    @classmethod
    def _duration(cls, v):
        parse_duration(v)
        return v


class Texts(_Model):
    alert_subject: str = Field("Нет первого контакта с новой заявкой",
                               description="Subject of the alert to the manager when the first contact is late.")
    alert_text: str = Field(
        "{manager}, по новой заявке «{lead_name}» (источник: {source}) нет ни звонка, ни сообщения, ни "
        "комментария, а срок первого контакта истёк {deadline}. Свяжитесь с клиентом: {lead_link}",
        description="The alert to the manager.")
    escalation_subject: str = Field("Новая заявка без первого контакта",
                                    description="Subject of the alert to the head of department.")
    escalation_text: str = Field(
        "Менеджер {manager} не связался с клиентом по новой заявке «{lead_name}» (источник: {source}); срок "
        "первого контакта истёк {deadline}. Сделка: {lead_link}",
        description="The alert to the head of department.")
    note_text: str = Field(
        "Reglament: срок первого контакта истёк {deadline}, а связи с клиентом не было. Позвоните клиенту.",
        description="Note in the lead when no channel carries the alert.")
    violation_text: str = Field("Нет первого контакта с новой заявкой (источник: {source}) до {deadline}",
                                description="How the violation reads in the digest.")
    shift_start_subject: str = Field("Начало смены: необработанные заявки",
                                     description="Subject of the shift-start message.")
    shift_start_text: str = Field(
        "{manager}, смена началась. Необработанных заявок: {count}. Начните по порядку:\n{list}",
        description="The shift-start message; {list} is one line per lead, in priority order.")
    shift_start_empty: str = Field("{manager}, смена началась. Необработанных заявок нет.",
                                   description="The shift-start message when there is nothing untouched.")

    @model_validator(mode="after")
    def _placeholders(self):
        for name in type(self).model_fields:
            _check_text(getattr(self, name), name)
        return self


class DistributionSettings(_Model):
    """DISTRIBUTION, FIRST_CONTACT_SLA and the shift-start list."""

    enabled: bool = Field(True, description="DISTRIBUTION: give new leads a responsible manager round-robin "
                                            "(only when `managers` is not empty).")
    pipeline: str | None = Field(None, description="The pipeline (by name) where new leads arrive; null = "
                                                   "`rules.pipeline`, else the account's main pipeline.")
    status: str | None = Field(None, description="The status (by name) where new leads arrive; null = the "
                                                 "pipeline's first status («Новая заявка»).")
    managers: list[Manager] = Field(
        default_factory=list,
        description="The group that shares new leads: [{name, weight, shifts}]. Empty = no distribution.")
    fallback_user: str | None = Field(
        None, description="Who gets a new lead when nobody of the group is on shift (CRM user name); null = "
                          "leave the lead's responsible as it is.")
    first_contact_enabled: bool = Field(True, description="FIRST_CONTACT_SLA: watch the first contact of new "
                                                          "leads.")
    first_contact: str = Field("4h", description="FIRST_CONTACT_SLA for sources not listed in `sources` "
                                                 "(working time, \"4h\", \"30m\").")
    source_field: str | None = Field("Источник", description="The lead field (by name) that holds the lead's "
                                                            "source; null = none.")
    utm_field: str | None = Field("utm_source", description="The lead field with the UTM source, read when the "
                                                           "source field is empty; null = none.")
    sources: dict[str, Source] = Field(
        default_factory=lambda: {
            "Реклама": Source(first_contact="15m", priority=10,
                              aliases=["Яндекс.Директ", "yandex", "direct", "google", "vk_ads", "Контекст"]),
            "Сайт": Source(first_contact="1h", priority=20, aliases=["site", "Заявка с сайта", "tilda"]),
        },
        description="Per lead source (matched by name or alias against the source field, utm_source, then the "
                    "pipeline name): its first-contact time and shift-start priority.")
    escalation_after: str | None = Field(
        "1h", description="After the alert to the manager, this much working time later the head of department "
                          "is alerted if there is still no contact; null = never.")
    contact_kinds: list[Literal["comment", "message", "incoming_call", "outgoing_call"]] = Field(
        default_factory=lambda: ["comment", "message", "outgoing_call", "incoming_call"],
        description="What a person of ours does on the lead that counts as contact: a comment, a message sent "
                    "(SMS), a call out, a call in (only when it talked).")
    new_first: bool = Field(True, description="Shift-start list: leads still in the arrival status come before "
                                              "the others.")
    oldest_first: bool = Field(True, description="Shift-start list: within a priority, the oldest lead first "
                                                 "(false = the newest first).")
    shift_start_message: bool = Field(True, description="Send each manager the list of untouched leads when "
                                                        "their shift opens.")
    queue_days: int = Field(30, ge=1, description="Untouched leads older than this many days leave the list.")
    texts: Texts = Field(default_factory=Texts, description="Texts of alerts and messages (Russian).")

    @field_validator("first_contact", "escalation_after")
    @classmethod
    def _duration(cls, v):
        if v is not None:
            parse_duration(v)
        return v

    @model_validator(mode="after")
    def _unique(self):
        names = [" ".join(m.name.casefold().replace("ё", "е").split()) for m in self.managers]
        if len(names) != len(set(names)):
            raise ValueError("managers: a manager is listed twice")
        return self

    def used_names(self, pipeline: str | None = None) -> list[NameUse]:
        """The CRM names DISTRIBUTION and FIRST_CONTACT_SLA use; `pipeline` is rules.pipeline,
        where new leads arrive when this section names none."""
        w = "rules.distribution"
        used: list[NameUse] = []
        group = self.enabled and bool(self.managers)
        if group or self.first_contact_enabled:
            if self.pipeline:
                used.append(NameUse(f"{w}.pipeline", PIPELINE, self.pipeline))
            if self.status:
                used.append(NameUse(f"{w}.status", STATUS, self.status, self.pipeline or pipeline))
        if group:
            used += [NameUse(f"{w}.managers[{n}].name", USER, m.name) for n, m in enumerate(self.managers)]
            if self.fallback_user:
                used.append(NameUse(f"{w}.fallback_user", USER, self.fallback_user))
        if self.first_contact_enabled and self.source_field:
            used.append(NameUse(f"{w}.source_field", LEAD_FIELD, self.source_field))
        if self.first_contact_enabled and self.utm_field:
            used.append(NameUse(f"{w}.utm_field", LEAD_FIELD, self.utm_field,
                                fallback="a lead with an empty source field has its pipeline's name as its source"))
        return used
