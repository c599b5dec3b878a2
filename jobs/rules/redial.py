"""REDIAL: failed calls follow the cadence 1 h, 3 h, 1 d, 7 d, 3 h, 30 d, 3 h after the last
attempt; at the end of the wait after the 7th failure the lead goes to «Отказ» with «Не
дозвонились 7 раз», unless a call got through.

The cadence is followed, not advisory: a failure before the current step is due (less
`early_tolerance`) is noted in the lead but not counted, so seven dials in one afternoon
are not seven attempts. The 7th failure gets a last «Дозвониться» task and a timer
(RecheckAt) for the end of its wait; the timer or the sweep then makes the final move.

State lives in the lead: REDIAL_ATTEMPT («Н3» = three failures counted) and REDIAL_LAST_AT
(when the last counted failure happened).

A failure signal is any of
  - call.failed: an outbound call not reached or busy, for a lead in redial.status or an
    entry status;
  - task.updated: the redial task («Дозвониться») completed with a not-reached result,
    for a lead in redial.status or an entry status;
  - lead.status_changed / lead.added: the lead is now in redial.status (a manager moving
    it there is how seed 003 records «Н1»).
One attempt often produces several signals (the call, the task closed for it, the status
change). A signal no later than REDIAL_LAST_AT + same_attempt_within, or a task closed
after a failure was already counted for it, is the attempt already counted: nothing is
counted again, only what is still missing is re-emitted under the same keys (a retried
job after a partial apply completes it; a duplicate delivery changes nothing).

A new failure n: the attempt fields, the next redial task due one cadence step after the
failure (unless the lead already has an open task — never a second), the move into
redial.status for an entry status, and a note. At n = max_failures: final status with
its loss reason instead of a task. A call that got through (either direction) ends the
cadence: both fields are cleared.

Keys are REDIAL:<lead>:<Нn>:<attempt time>:<what>, so the same failure always yields the
same keys and a new series of failures never reuses an old series' keys.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import partial

from jobs.rules.due import after_step, moment, not_before
from jobs.rules.notes import note, when
from reglament.rule_settings import RuleSettings, step_delta
from reglament.names import norm, same_name
from jobs.rules.terminal import is_terminal
from reglament.calendar import WorkCalendar
from reglament.crm import (CALL_FAILED, CALL_TALKED, LEAD_ADDED, LEAD_STATUS_CHANGED, REDIAL_ATTEMPT,
                           REDIAL_LAST_AT, SWEEP, TASK_UPDATED, Action, CallStatus, CompleteTask, CreateTask, Lead,
                           LeadSnapshot, RecheckAt, RuleEvent, SetLeadField, SetLeadStatus, action_key)

RULE = "REDIAL"
KINDS = frozenset({CALL_FAILED, CALL_TALKED, TASK_UPDATED, LEAD_STATUS_CHANGED, LEAD_ADDED, SWEEP})
_CODE = re.compile(r"^[нh]\s?\d+\b")  # «Н3» written as the result (Cyrillic or Latin)


def attempt_of(lead: Lead) -> int:
    """Failures counted so far: «Н3», "3" or 3 → 3; empty → 0."""
    v = lead.value(REDIAL_ATTEMPT)
    if isinstance(v, int):
        return max(v, 0)
    m = re.search(r"\d+", str(v)) if v is not None else None
    return int(m[0]) if m else 0


def last_attempt_at(lead: Lead, calendar: WorkCalendar) -> datetime | None:
    return moment(lead.value(REDIAL_LAST_AT), calendar)[0]


def running(lead: Lead, settings: RuleSettings) -> bool:
    """The lead's cadence runs: in the redial status with attempts counted (INCUBATOR leaves it alone)."""
    return same_name(lead.status, settings.redial.status) and attempt_of(lead) >= 1


def in_scope(lead: Lead, settings: RuleSettings) -> bool:
    r = settings.redial
    return same_name(lead.status, r.status) or any(same_name(lead.status, s) for s in r.entry_statuses)


def not_reached(result: str | None, settings: RuleSettings) -> bool:
    """Does a task result say the client was not reached?"""
    if not result:
        return False
    text = norm(result)
    return bool(_CODE.match(text)) or any(norm(m) in text for m in settings.redial.not_reached_results)


def failure_at(event: RuleEvent, snapshot: LeadSnapshot, settings: RuleSettings) -> datetime | None:
    """When the failure this event reports happened; None if it reports none (or not for us)."""
    lead, r = snapshot.lead, settings.redial
    if event.kind == CALL_FAILED and event.call and event.call.failed and in_scope(lead, settings):
        return event.call.at
    if (event.kind == TASK_UPDATED and event.task and event.task.is_completed
            and same_name(settings.important.strip(event.task.text), r.task)
            and not_reached(event.task.result, settings) and in_scope(lead, settings)):
        return event.at
    if event.kind in (LEAD_STATUS_CHANGED, LEAD_ADDED) and same_name(lead.status, r.status):
        return event.at
    return None


def claims(event: RuleEvent, snapshot: LeadSnapshot, settings: RuleSettings) -> bool:
    """True when REDIAL owns this event's next task, so NEXT_TASK must stay out of it."""
    return not is_terminal(snapshot.lead, settings) and failure_at(event, snapshot, settings) is not None


def cadence_due(lead: Lead, settings: RuleSettings, calendar: WorkCalendar, base: datetime,
                now: datetime) -> datetime:
    """Due time of the redial task for the lead's current attempt (for NEXT_TASK's cadence
    templates): one step after the last counted failure, or after `base` if none is recorded."""
    n = max(attempt_of(lead), 1)
    since = last_attempt_at(lead, calendar) or base
    return not_before(after_step(calendar, since, settings.redial.step_after(n)), calendar, now)


def final_due(lead: Lead, settings: RuleSettings, calendar: WorkCalendar) -> datetime | None:
    """When a lead at the last attempt goes to final_status: the end of the last wait."""
    r = settings.redial
    last_at = last_attempt_at(lead, calendar)
    if attempt_of(lead) < r.max_failures or last_at is None:
        return None
    return after_step(calendar, _minute(last_at), r.step_after(r.max_failures))


def decide(event: RuleEvent, snapshot: LeadSnapshot, settings: RuleSettings, calendar: WorkCalendar,
           now: datetime) -> list[Action]:
    if event.kind not in KINDS:
        return []
    lead = snapshot.lead
    if is_terminal(lead, settings):
        return []
    if event.kind == CALL_TALKED:
        return _reset(event, lead, settings, calendar)
    if event.kind == SWEEP:
        return _finish(snapshot, settings, calendar, now)
    t = failure_at(event, snapshot, settings)
    if t is None:
        return []

    r = settings.redial
    # Whole minutes: the cadence needs no more, and a CRM date field that drops seconds
    # must still give back the very value the keys were made from.
    t = _minute(t)
    counted, last_at = attempt_of(lead), last_attempt_at(lead, calendar)
    last_at = _minute(last_at) if last_at else None
    covered = counted >= 1 and last_at is not None and (
        t <= last_at + step_delta(r.same_attempt_within)
        or (event.kind == TASK_UPDATED and event.task.created_at is not None and event.task.created_at <= last_at))
    if not covered and counted >= 1 and last_at is not None:
        next_due = after_step(calendar, last_at, r.step_after(counted))
        if t < next_due - step_delta(r.early_tolerance):
            return _early(event, snapshot, settings, calendar, t, next_due, now)
    n, at = (counted, last_at) if covered else (counted + 1, t)
    label = r.attempt_label(n)
    key = partial(action_key, RULE, lead.id, label, at)

    fields: list[Action] = []
    if norm(str(lead.value(REDIAL_ATTEMPT) or "")) != norm(label):
        fields.append(SetLeadField(lead_id=lead.id, field=REDIAL_ATTEMPT, value=label, action_key=key("attempt")))
    if last_at != at:
        fields.append(SetLeadField(lead_id=lead.id, field=REDIAL_LAST_AT, value=at, action_key=key("last_at")))

    due = after_step(calendar, at, r.step_after(n))
    if n > r.max_failures or (n == r.max_failures and due <= now):
        return [*fields, *_final(snapshot, settings, label, key)]

    # Lead changes first (the executor should send them in one request), then the task:
    # a retry after a partial apply then sees the attempt as counted and completes it.
    actions: list[Action] = list(fields)
    texts: list[tuple[str, dict]] = []
    if not same_name(lead.status, r.status):
        actions.append(SetLeadStatus(lead_id=lead.id, status=r.status, action_key=key("status")))
    last = n == r.max_failures
    if last:  # the last wait: the lead goes to final_status at its end unless a call gets through
        actions.append(RecheckAt(lead_id=lead.id, at=due, action_key=key("recheck")))
    if not snapshot.open_tasks:
        task_due = not_before(due, calendar, now)
        actions.append(CreateTask(lead_id=lead.id, text=r.task, task_type=r.type, due=task_due,
                                  responsible_id=lead.responsible_id, action_key=key("task")))
        values = dict(rule=RULE, attempt=label, task=r.task, due=when(task_due, calendar))
        texts.append(("redial_last", values | {"status": r.final_status}) if last else ("redial_next", values))
        note_key = key("note-task")
    else:
        if not covered:
            texts.append(("redial_counted", dict(rule=RULE, attempt=label)))
        note_key = key("note")
    if texts and not same_name(lead.status, r.status):
        texts.append(("redial_moved", dict(rule=RULE, status=r.status)))
    if texts:
        actions += note(settings, lead.id, note_key, *texts)
    return actions


def _early(event: RuleEvent, snapshot: LeadSnapshot, settings: RuleSettings, calendar: WorkCalendar,
           t: datetime, next_due: datetime, now: datetime) -> list[Action]:
    """A failure before the current step is due: noted, not counted. A redial task closed
    for it is opened again for the step's time, so the lead keeps its one task."""
    lead, r = snapshot.lead, settings.redial
    if event.kind not in (CALL_FAILED, TASK_UPDATED):
        return []  # a status change back into the redial status inside a wait: nothing to say
    label = r.attempt_label(attempt_of(lead))
    key = partial(action_key, RULE, lead.id, "early", t)
    actions: list[Action] = []
    if not snapshot.open_tasks:
        actions.append(CreateTask(lead_id=lead.id, text=r.task, task_type=r.type,
                                  due=not_before(next_due, calendar, now), responsible_id=lead.responsible_id,
                                  action_key=key("task")))
    return actions + note(settings, lead.id, key("note"),
                          ("redial_early", dict(rule=RULE, attempt=label, due=when(next_due, calendar))))


def _final(snapshot: LeadSnapshot, settings: RuleSettings, label: str, key) -> list[Action]:
    """The end of the cadence: final_status with its loss reason; Reglament's own open redial
    task is closed with the reason, so nothing is left open on a closed lead."""
    lead, r = snapshot.lead, settings.redial
    closes = [CompleteTask(task_id=t.id, lead_id=lead.id, result=r.loss_reason or r.final_status,
                           action_key=key(f"close-{t.id}"))
              for t in snapshot.open_tasks
              if t.id in snapshot.own_task_ids and same_name(settings.important.strip(t.text), r.task)]
    return [SetLeadStatus(lead_id=lead.id, status=r.final_status, loss_reason=r.loss_reason, action_key=key("final")),
            *closes,
            *note(settings, lead.id, key("final-note"),
                  ("redial_final", dict(rule=RULE, attempt=label, status=r.final_status, reason=r.loss_reason or "")))]


def finishing(snapshot: LeadSnapshot, settings: RuleSettings, calendar: WorkCalendar, now: datetime) -> bool:
    """The lead's last wait is over: REDIAL moves it to final_status now (NEXT_TASK stays out)."""
    due = final_due(snapshot.lead, settings, calendar)
    return due is not None and due <= now and same_name(snapshot.lead.status, settings.redial.status)


def _finish(snapshot: LeadSnapshot, settings: RuleSettings, calendar: WorkCalendar, now: datetime) -> list[Action]:
    """The sweep, or the timer at the end of the last wait: a lead still at the last attempt
    goes to final_status."""
    if not finishing(snapshot, settings, calendar, now):
        return []
    lead = snapshot.lead
    label = settings.redial.attempt_label(attempt_of(lead))
    key = partial(action_key, RULE, lead.id, label, _minute(last_attempt_at(lead, calendar)))
    return _final(snapshot, settings, label, key)


def _minute(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def _reset(event: RuleEvent, lead: Lead, settings: RuleSettings, calendar: WorkCalendar) -> list[Action]:
    call = event.call
    if call is None or call.status is not CallStatus.TALKED:
        return []
    counted, last_at = attempt_of(lead), last_attempt_at(lead, calendar)
    if counted == 0 and last_at is None:
        return []
    if last_at is not None and call.at <= last_at:
        return []  # an older call (a late or replayed delivery) cannot end a newer series
    key = partial(action_key, RULE, lead.id, "reset", call.id)
    return [SetLeadField(lead_id=lead.id, field=REDIAL_ATTEMPT, value=None, action_key=key("attempt")),
            SetLeadField(lead_id=lead.id, field=REDIAL_LAST_AT, value=None, action_key=key("last_at")),
            *note(settings, lead.id, key("note"),
                  ("redial_reset", dict(rule=RULE, attempt=settings.redial.attempt_label(counted))))]
