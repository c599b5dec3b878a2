"""When a task is due: a template's due rule or a cadence step, worked out on the calendar.

Due times are never in the past: anything earlier than now becomes the next working moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from reglament.rule_settings import (AfterDue, BeforeFieldDue, DaysDue, FieldDue, FirstContactDue, HoursDue,
                                     RuleSettings, TaskTemplate, parse_step, step_delta)
from jobs.rules import first_contact as fc
from reglament.calendar import WorkCalendar
from reglament.crm import Lead


@dataclass(frozen=True)
class Due:
    at: datetime
    missing_field: str | None = None  # set when the template's field was empty or past and the fallback was used


def moment(value: object, calendar: WorkCalendar) -> tuple[datetime | None, bool]:
    """A lead value as (instant, date_only). Naive values are read in the account's zone;
    a date is its local midnight. Anything else is (None, False)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None, False
    if isinstance(value, datetime):
        return (value.replace(tzinfo=calendar.tz) if value.tzinfo is None else value), False
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=calendar.tz), True
    return None, False


def not_before(at: datetime, calendar: WorkCalendar, now: datetime) -> datetime:
    return calendar.next_opening(now) if at < now else at


def after_step(calendar: WorkCalendar, since: datetime, step: str) -> datetime:
    """The moment one cadence step ("1h", "1d", "2wd") after `since`, on a working moment."""
    n, unit = parse_step(step)
    if unit in ("m", "h"):
        return calendar.add_working(since, step_delta(step))
    return calendar.add_days(since, n, working=(unit == "wd"))


def template_due(template: TaskTemplate, lead: Lead, settings: RuleSettings, calendar: WorkCalendar,
                 base: datetime, now: datetime) -> Due:
    """Due time of a non-cadence template, counted from `base` (when the trigger happened)."""
    rule = template.due
    if isinstance(rule, DaysDue):
        return Due(not_before(calendar.add_days(base, rule.days, rule.at), calendar, now))
    if isinstance(rule, HoursDue):
        return Due(not_before(calendar.add_working(base, timedelta(hours=rule.hours)), calendar, now))
    if isinstance(rule, AfterDue):
        return Due(not_before(after_step(calendar, base, rule.step), calendar, now))
    if isinstance(rule, FirstContactDue):
        d = settings.distribution
        _, source = fc.resolve_source([fc.field_value(lead.custom, d.source_field),
                                       fc.field_value(lead.custom, d.utm_field)], d)
        arrived = lead.created_at or base
        return Due(not_before(fc.deadline(arrived, fc.sla_minutes(source, d), calendar), calendar, now))
    if isinstance(rule, (FieldDue, BeforeFieldDue)):
        value, date_only = moment(lead.value(rule.field), calendar)
        if value is not None and value > now:
            if isinstance(rule, FieldDue):
                # The time the client named is kept as is, even outside working hours.
                return Due(value)
            n, unit = parse_step(rule.offset)
            back = calendar.shift_days(value, -n) if unit == "d" else value - step_delta(rule.offset)
            # A date-only field (end of subscription) means that whole day: start of its work.
            # A moment (a class) must be preceded: the last working moment before it.
            at = calendar.next_opening(back) if date_only else calendar.previous_closing(back)
            return Due(not_before(at, calendar, now))
        fallback = template.fallback or settings.fallback_due
        fake = template.model_copy(update={"due": fallback})
        return Due(template_due(fake, lead, settings, calendar, base, now).at, missing_field=rule.field)
    raise ValueError(f"template_due does not handle due kind {rule.kind!r}")
