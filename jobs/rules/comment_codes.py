"""COMMENT_CODES (seed 003): callback and refusal reasons use the canonical short codes.

Where the reason lives: for a refusal («Отказ», or the CRM's own lost stage) it is the loss
reason; for «Просил перезвонить» the configured lead field, else the lead's latest text note.
A reason may go on after its code («Другое: уехали», «пн 18:00»), not before it. A specific
date and time («15.03 18:00», «15.03.2026 в 18:00») is a code of its own.

A callback code also says when to call back (seed 003): «Презент» in a month, «Скидывает» at
once, a weekday or a date with a time at that moment (callback_time).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from reglament.calendar import WorkCalendar
from reglament.crm import CALLBACK_AT, Action, LeadSnapshot, SetLeadField, SetTaskDue
from reglament.discipline_settings import Alert, DisciplineSettings, Outcome
from reglament.rule_settings import RuleSettings
from reglament.names import norm, same_name
from reglament.violations import Violation

RULE = "COMMENT_CODES"


def kind_of(status: str, lost: bool, settings: DisciplineSettings) -> str | None:
    """"callback", "refusal" or None for a status this rule does not look at."""
    s = settings.comment_codes
    if same_name(status, s.callback_status):
        return "callback"
    if lost or any(same_name(status, x) for x in s.refusal_statuses):
        return "refusal"
    return None


# «15.03 18:00», «15.03.2026 в 18:00», «15.03.26 18.00»: a specific date and time.
DATE_TIME = re.compile(r"^(\d{1,2})\.(\d{1,2})(?:\.(\d{2}|\d{4}))?\s*(?:в\s*)?(\d{1,2})[:.](\d{2})(?!\d)")
WEEKDAYS = {"пн": 0, "вт": 1, "ср": 2, "чт": 3, "пт": 4, "сб": 5, "вск": 6, "вс": 6}
TIME = re.compile(r"(?<!\d)(\d{1,2})[:.](\d{2})(?!\d)")


def matches(reason: str | None, codes: list[str]) -> bool:
    r = norm(reason or "")
    if not r:
        return False
    if DATE_TIME.match(r):
        return True
    for code in codes:
        c = norm(code)
        if r == c:
            return True
        if r.startswith(c) and (not c[-1].isalnum() or not r[len(c)].isalnum()):
            return True
    return False


def decide(lead_id: int, status: str, lost: bool, reason: str | None, manager: int | None, changed_at: datetime,
           settings: DisciplineSettings, link: str = "") -> Outcome:
    s = settings.comment_codes
    kind = kind_of(status, lost, settings)
    if not s.enabled or kind is None or not manager or manager in settings.ignore_users:
        return Outcome()
    codes = s.callback_codes if kind == "callback" else s.refusal_codes
    if matches(reason, codes):
        return Outcome()
    key = f"{RULE}:{lead_id}:{kind}:{int(changed_at.timestamp())}"
    shown = reason or "не указана"
    v = Violation(rule=RULE, key=key, at=changed_at.timestamp(), manager_id=manager, lead_id=lead_id, link=link,
                  details=f"«{status}»: причина «{shown}» не по кодам", extra={"reason": reason, "kind": kind})
    text = s.text.format(status=status, reason=shown, codes=", ".join(f"«{c}»" for c in codes), link=link)
    return Outcome(violations=(v,), alerts=(Alert("manager", manager, s.subject, text, key, lead_id),))


def callback_time(reason: str | None, changed_at: datetime, calendar: WorkCalendar,
                  settings: DisciplineSettings) -> datetime | None:
    """When the callback is due by its code (seed 003); None for a code that names no time."""
    r = norm(reason or "")
    s = settings.comment_codes
    if not r:
        return None
    local = changed_at.astimezone(calendar.tz)
    if m := DATE_TIME.match(r):
        day, month, year, hour, minute = (int(x) if x else None for x in m.groups())
        year = (year + 2000 if year < 100 else year) if year else local.year
        try:
            at = local.replace(year=year, month=month, day=day, hour=hour, minute=minute, second=0, microsecond=0)
        except ValueError:
            return None
        if m.group(3) is None and at < local - timedelta(days=1):
            at = at.replace(year=year + 1)  # «15.01 10:00» written in December means next January
        return at
    if matches(r, s.present_codes):
        return calendar.add_days(changed_at, s.present_days, working=False)
    if matches(r, s.at_once_codes):
        return calendar.next_opening(changed_at)
    words = r.replace(",", " ").split()
    if words and words[0].rstrip(".") in WEEKDAYS:
        ahead = (WEEKDAYS[words[0].rstrip(".")] - local.weekday()) % 7 or 7
        day = local + timedelta(days=ahead)
        if t := TIME.search(r):
            return day.replace(hour=int(t[1]), minute=int(t[2]), second=0, microsecond=0)
        return calendar.next_opening(day.replace(hour=0, minute=0, second=0, microsecond=0))
    return None


def schedule_callback(snapshot: LeadSnapshot, at: datetime, rules: RuleSettings, key: str) -> list[Action]:
    """The callback time a code gave: into the lead's callback field when it is empty, and onto
    Reglament's own open callback task (a person's task keeps the time the person chose)."""
    lead = snapshot.lead
    actions: list[Action] = []
    if lead.value(CALLBACK_AT) is None and rules.fields.mapped().get(CALLBACK_AT):
        actions.append(SetLeadField(lead_id=lead.id, field=CALLBACK_AT, value=at, action_key=f"{key}:field"))
    template = rules.template_for(lead.status)
    for t in snapshot.open_tasks:
        if (t.id in snapshot.own_task_ids and template is not None
                and same_name(rules.important.strip(t.text), template.task) and t.due != at):
            actions.append(SetTaskDue(task_id=t.id, lead_id=lead.id, due=at, action_key=f"{key}:due:{t.id}"))
    return actions
