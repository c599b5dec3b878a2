"""REDIAL as tables of cases (Moscow, RU holidays, 09:00-18:00). 2026-03-16 is a Monday."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from jobs.rules import decide_all, redial
from reglament.rule_settings import RuleSettings
from reglament.crm import (LEAD_STATUS_CHANGED, REDIAL_ATTEMPT, REDIAL_LAST_AT, SWEEP, TASK_UPDATED, CallDirection,
                           CallStatus, CompleteTask, RecheckAt)
from tests.rules.rule_factory import (CAL, MANAGER, SETTINGS, AddNote, CreateTask, SetLeadField, SetLeadStatus, applied,
                          call_event, event, lead, m, of, only, snap, task)

LONG_AGO = m(2026, 3, 2, 10, 0)


def decide(ev, snapshot, settings=SETTINGS, now=None):
    return redial.decide(ev, snapshot, settings, CAL, now or ev.at)


def nedozvon(attempt: int = 0, last_at=None, status="Недозвон"):
    fields = {REDIAL_ATTEMPT: f"Н{attempt}", REDIAL_LAST_AT: last_at or LONG_AGO} if attempt else {}
    return lead(status, **fields)


def field_values(actions):
    return {a.field: a.value for a in of(actions, SetLeadField)}


# failures counted before, the failed call's time, the attempt written, the next task's due
CADENCE = [
    pytest.param(0, m(2026, 3, 16, 10), "Н1", m(2026, 3, 16, 11), id="Н1-1h"),
    pytest.param(0, m(2026, 3, 13, 17, 30), "Н1", m(2026, 3, 16, 9, 30), id="Н1-friday-17:30-monday-09:30"),
    pytest.param(1, m(2026, 3, 16, 11), "Н2", m(2026, 3, 16, 14), id="Н2-3h"),
    pytest.param(1, m(2026, 3, 16, 16), "Н2", m(2026, 3, 17, 10), id="Н2-3h-over-night"),
    pytest.param(2, m(2026, 3, 16, 14), "Н3", m(2026, 3, 17, 14), id="Н3-1d"),
    pytest.param(2, m(2026, 3, 13, 15), "Н3", m(2026, 3, 16, 15), id="Н3-1d-from-friday-rolls-to-monday"),
    pytest.param(2, m(2026, 3, 5, 15), "Н3", m(2026, 3, 6, 15), id="Н3-1d-thursday-friday"),
    pytest.param(2, m(2026, 3, 6, 15), "Н3", m(2026, 3, 10, 15), id="Н3-1d-skips-holiday-monday"),
    pytest.param(3, m(2026, 3, 17, 14), "Н4", m(2026, 3, 24, 14), id="Н4-7d"),
    pytest.param(4, m(2026, 3, 24, 14), "Н5", m(2026, 3, 24, 17), id="Н5-3h"),
    pytest.param(4, m(2026, 3, 24, 16, 30), "Н5", m(2026, 3, 25, 10, 30), id="Н5-3h-over-night"),
    pytest.param(5, m(2026, 3, 24, 17), "Н6", m(2026, 4, 23, 17), id="Н6-30d"),
    pytest.param(5, m(2026, 4, 1, 11), "Н6", m(2026, 5, 4, 11), id="Н6-30d-lands-on-may-holidays"),
]


@pytest.mark.parametrize("before, at, label, due", CADENCE)
@pytest.mark.parametrize("status", [CallStatus.NOT_REACHED, CallStatus.BUSY])
def test_failed_call_follows_cadence(before, at, label, due, status):
    actions = decide(call_event(at, status), snap(nedozvon(before)))
    created = only(actions, CreateTask)
    assert (created.text, created.due, created.task_type) == ("Дозвониться", due, "Звонок")
    assert created.responsible_id == MANAGER and not created.important
    assert field_values(actions) == {REDIAL_ATTEMPT: label, REDIAL_LAST_AT: at}
    assert of(actions, SetLeadStatus) == []
    assert only(actions, AddNote).text == \
        f"Reglament (REDIAL): недозвон {label} — следующая попытка «Дозвониться» на {due:%d.%m %H:%M}."
    assert all(f":{label}:" in a.action_key for a in actions)


@pytest.mark.parametrize("open_tasks", [(), (task(),)], ids=["no-task", "with-open-task"])
def test_seventh_failure_starts_the_last_wait(open_tasks):
    at, end = m(2026, 4, 23, 17), m(2026, 4, 24, 11)  # the seventh wait: 3 working hours
    actions = decide(call_event(at), snap(nedozvon(6), open_tasks))
    assert of(actions, SetLeadStatus) == []
    assert field_values(actions) == {REDIAL_ATTEMPT: "Н7", REDIAL_LAST_AT: at}
    assert only(actions, RecheckAt).at == end
    if open_tasks:
        assert of(actions, CreateTask) == []
    else:
        assert (only(actions, CreateTask).text, only(actions, CreateTask).due) == ("Дозвониться", end)
        assert only(actions, AddNote).text == ("Reglament (REDIAL): недозвон Н7 — последняя попытка «Дозвониться» "
                                               "до 24.04 11:00; если не дозвониться, сделка перейдёт в «Отказ».")


def test_at_the_end_of_the_last_wait_the_lead_goes_to_otkaz_and_our_task_is_closed():
    at = m(2026, 4, 23, 17)
    started = snap(nedozvon(6))
    waiting = applied(started, decide(call_event(at), started), task_id=950)
    waiting = replace(waiting, own_task_ids=frozenset({950}))
    assert decide(event(SWEEP, m(2026, 4, 24, 10, 59)), waiting) == []  # not yet
    actions = decide(event(SWEEP, m(2026, 4, 24, 11)), waiting)
    final = only(actions, SetLeadStatus)
    assert (final.status, final.loss_reason) == ("Отказ", "Не дозвонились 7 раз")
    assert only(actions, CompleteTask).task_id == 950 and only(actions, CompleteTask).result == "Не дозвонились 7 раз"
    assert only(actions, AddNote).text == ("Reglament (REDIAL): недозвон Н7 — сделка переведена в «Отказ», "
                                           "причина «Не дозвонились 7 раз».")
    # NEXT_TASK stays out: no new «Дозвониться» for a lead that is leaving the cadence.
    both = decide_all(event(SWEEP, m(2026, 4, 24, 11)), waiting, SETTINGS, CAL, m(2026, 4, 24, 11))
    assert of(both, CreateTask) == []


def test_a_call_that_got_through_in_the_last_wait_keeps_the_lead():
    at = m(2026, 4, 23, 17)
    waiting = applied(snap(nedozvon(6)), decide(call_event(at), snap(nedozvon(6))))
    talked = applied(waiting, decide(call_event(m(2026, 4, 24, 10), CallStatus.TALKED), waiting))
    assert decide(event(SWEEP, m(2026, 4, 24, 12)), talked) == []


def test_an_eighth_failure_after_the_last_wait_ends_at_once():
    done = decide(call_event(m(2026, 4, 24, 12)), snap(nedozvon(7, m(2026, 4, 23, 17))))
    assert only(done, SetLeadStatus).status == "Отказ"


def test_after_otkaz_lead_is_terminal():
    at = m(2026, 4, 23, 17)
    waiting = applied(snap(nedozvon(6)), decide(call_event(at), snap(nedozvon(6))))
    done = applied(waiting, decide(event(SWEEP, m(2026, 4, 24, 11)), waiting))
    assert done.lead.status == "Отказ"
    assert decide_all(event(SWEEP, m(2026, 4, 24, 12)), done, SETTINGS, CAL, m(2026, 4, 24, 12)) == []


@pytest.mark.parametrize("minutes_after, counted", [(5, "Н1"), (20, "Н1"), (49, "Н1"), (50, "Н2"), (65, "Н2")])
def test_a_failure_before_the_step_is_due_is_noted_not_counted(minutes_after, counted):
    """Н1 at 10:00: the next attempt is due at 11:00 (the 1 h wait), 10 minutes early still counts."""
    first = m(2026, 3, 16, 10)
    base = snap(nedozvon(1, first), [task()])
    actions = decide(call_event(first + timedelta(minutes=minutes_after)), base)
    if counted == "Н1":
        assert of(actions, SetLeadField) == [] and of(actions, CreateTask) == []
        if minutes_after > 30:  # within 30 minutes it is the same attempt, nothing to say
            assert "не засчитан" in only(actions, AddNote).text and "16.03 11:00" in only(actions, AddNote).text
    else:
        assert field_values(actions)[REDIAL_ATTEMPT] == "Н2"


def test_seven_failed_calls_in_one_hour_are_at_most_two_attempts():
    snapshot = snap(lead("Недозвон"))
    start = m(2026, 3, 16, 10)
    for i in range(7):
        snapshot = applied(snapshot, decide(call_event(start + timedelta(minutes=9 * i)), snapshot))
    assert snapshot.lead.status == "Недозвон"
    assert snapshot.lead.fields[REDIAL_ATTEMPT] in ("Н1", "Н2")
    assert len(snapshot.open_tasks) == 1


def test_a_redial_task_closed_early_is_opened_again_for_its_time():
    first = m(2026, 3, 16, 10)
    closed = task(completed=True, result="не дозвонился", created_at=m(2026, 3, 16, 10, 1))
    actions = decide(event(TASK_UPDATED, m(2026, 3, 16, 10, 40), task=closed), snap(nedozvon(1, first)))
    assert of(actions, SetLeadField) == []
    assert (only(actions, CreateTask).text, only(actions, CreateTask).due) == ("Дозвониться", m(2026, 3, 16, 11))


def test_open_task_counts_but_never_a_second_task():
    actions = decide(call_event(m(2026, 3, 16, 11)), snap(nedozvon(1), [task()]))
    assert of(actions, CreateTask) == []
    assert field_values(actions)[REDIAL_ATTEMPT] == "Н2"
    assert "новая задача не создана" in only(actions, AddNote).text


@pytest.mark.parametrize("ev, the_lead", [
    pytest.param(call_event(m(2026, 3, 16, 10), CallStatus.NOT_REACHED, CallDirection.IN), nedozvon(1),
                 id="missed-incoming-is-not-redial"),
    pytest.param(call_event(m(2026, 3, 16, 10), CallStatus.OTHER), nedozvon(1), id="voicemail-or-wrong-number"),
    pytest.param(call_event(m(2026, 3, 16, 10)), lead("Клиент"), id="status-out-of-scope"),
    pytest.param(call_event(m(2026, 3, 16, 10)), lead("Новая заявка"), id="entry-status-not-configured"),
    pytest.param(call_event(m(2026, 3, 16, 10)), lead("Отказ"), id="terminal"),
    pytest.param(call_event(m(2026, 3, 16, 10)), lead("Недозвон", closed="lost"), id="crm-lost"),
    pytest.param(event(SWEEP, m(2026, 3, 16, 10)), nedozvon(1), id="sweep-is-next-task-business"),
    pytest.param(event(TASK_UPDATED, m(2026, 3, 16, 10), task=task(completed=True, result="Записали на субботу")),
                 nedozvon(1), id="redial-task-closed-as-reached"),
    pytest.param(event(TASK_UPDATED, m(2026, 3, 16, 10), task=task(completed=False, result=None)),
                 nedozvon(1), id="redial-task-edited-not-completed"),
    pytest.param(event(TASK_UPDATED, m(2026, 3, 16, 10), task=task(text="Перезвон", completed=True,
                                                                   result="не дозвонился")),
                 nedozvon(1), id="other-task-closed-not-reached"),
])
def test_not_a_redial_failure(ev, the_lead):
    assert decide(ev, snap(the_lead)) == []


@pytest.mark.parametrize("text, result", [
    ("Дозвониться", "Не дозвонился"),
    ("дозвониться", "недозвон"),
    ("❗ ВАЖНО: Дозвониться", "не взял трубку"),
    ("Дозвониться", "Н2"),
    ("Дозвониться", "занято"),
])
def test_redial_task_closed_as_not_reached_counts(text, result):
    closed_at = m(2026, 3, 16, 11, 5)
    done = task(text=text, completed=True, result=result, created_at=m(2026, 3, 16, 10, 1))
    actions = decide(event(TASK_UPDATED, closed_at, task=done), snap(nedozvon(1, m(2026, 3, 16, 10))))
    assert field_values(actions) == {REDIAL_ATTEMPT: "Н2", REDIAL_LAST_AT: closed_at}
    assert only(actions, CreateTask).due == m(2026, 3, 16, 14, 5)


def test_task_closed_after_its_call_was_counted_is_the_same_attempt():
    # 11:00 the call fails while the 10:01 task is open: Н2 counted, no task.
    call_at = m(2026, 3, 16, 11)
    before = snap(nedozvon(1, m(2026, 3, 16, 10)), [task(created_at=m(2026, 3, 16, 10, 1))], last_task_id=900)
    by_call = decide(call_event(call_at), before)
    after_call = applied(before, by_call)
    # 12:40 the manager closes that task «не дозвонился» — long after the window, still Н2.
    closed = event(TASK_UPDATED, m(2026, 3, 16, 12, 40),
                   task=task(completed=True, result="не дозвонился", created_at=m(2026, 3, 16, 10, 1)))
    actions = decide(closed, snap(after_call.lead, (), last_task_id=900))
    assert of(actions, SetLeadField) == [] and of(actions, SetLeadStatus) == []
    created = only(actions, CreateTask)
    assert created.due == m(2026, 3, 16, 14)            # 3 h after the 11:00 call
    assert created.action_key == f"REDIAL:501:Н2:{call_at:%Y%m%d}T080000Z:task"


def test_signals_of_one_attempt_within_the_window_count_once():
    call_at = m(2026, 3, 16, 10)
    first = decide(call_event(call_at), snap(nedozvon(0)))
    state = applied(snap(nedozvon(0)), first)
    # The manager also closes nothing but re-sets the status a minute later; and dials again: busy.
    assert decide(event(LEAD_STATUS_CHANGED, m(2026, 3, 16, 10, 1)), state) == []
    assert decide(call_event(m(2026, 3, 16, 10, 3), CallStatus.BUSY), state) == []


def test_moved_to_nedozvon_by_manager_counts_first_failure():
    fri = m(2026, 3, 13, 17, 30)
    actions = decide(event(LEAD_STATUS_CHANGED, fri), snap(lead("Недозвон")))
    assert field_values(actions) == {REDIAL_ATTEMPT: "Н1", REDIAL_LAST_AT: fri}
    assert only(actions, CreateTask).due == m(2026, 3, 16, 9, 30)


def test_entry_status_moves_lead_into_nedozvon():
    settings = RuleSettings(redial={"entry_statuses": ["Новая заявка"]})
    actions = decide(call_event(m(2026, 3, 16, 10)), snap(lead("Новая заявка")), settings)
    assert only(actions, SetLeadStatus).status == "Недозвон"
    assert only(actions, SetLeadStatus).loss_reason is None
    assert only(actions, CreateTask).due == m(2026, 3, 16, 11)
    assert only(actions, AddNote).text.endswith("Сделка переведена в статус «Недозвон».")
    # Lead changes come before the task, the note last.
    assert [type(a).__name__ for a in actions] == ["SetLeadField", "SetLeadField", "SetLeadStatus", "CreateTask",
                                                   "AddNote"]
    # The status change that follows (our own move) is the same attempt.
    state = applied(snap(lead("Новая заявка")), actions)
    assert decide(event(LEAD_STATUS_CHANGED, m(2026, 3, 16, 10, 0)), state, settings) == []


# --- a call that got through ------------------------------------------------------------

@pytest.mark.parametrize("direction", [CallDirection.OUT, CallDirection.IN])
def test_talked_call_resets_counter(direction):
    actions = decide(call_event(m(2026, 3, 17, 10), CallStatus.TALKED, direction, id="c-ok"),
                     snap(nedozvon(3, m(2026, 3, 16, 14))))
    assert field_values(actions) == {REDIAL_ATTEMPT: None, REDIAL_LAST_AT: None}
    assert of(actions, CreateTask) == [] and of(actions, SetLeadStatus) == []
    assert only(actions, AddNote).text == "Reglament (REDIAL): разговор состоялся — счётчик недозвонов (Н3) сброшен."
    assert {a.action_key for a in actions} == {"REDIAL:501:reset:c-ok:attempt", "REDIAL:501:reset:c-ok:last_at",
                                               "REDIAL:501:reset:c-ok:note"}


@pytest.mark.parametrize("the_lead", [
    pytest.param(nedozvon(0), id="nothing-to-reset"),
    pytest.param(nedozvon(3, m(2026, 3, 17, 12)), id="older-call-than-last-failure"),
    pytest.param(lead("Отказ", **{REDIAL_ATTEMPT: "Н7"}), id="terminal"),
])
def test_talked_call_without_effect(the_lead):
    assert decide(call_event(m(2026, 3, 17, 10), CallStatus.TALKED), snap(the_lead)) == []


def test_new_series_after_reset_uses_new_keys():
    first = decide(call_event(m(2026, 3, 16, 10)), snap(nedozvon(0)))
    later = decide(call_event(m(2026, 3, 20, 10)), snap(nedozvon(0)))
    assert {a.action_key for a in first}.isdisjoint({a.action_key for a in later})


# --- duplicate delivery and retries -----------------------------------------------------

def test_duplicate_delivery_yields_identical_keys():
    ev, before = call_event(m(2026, 3, 16, 11), id="c-42"), snap(nedozvon(1, m(2026, 3, 16, 10)))
    once, twice = decide(ev, before), decide(ev, before, now=m(2026, 3, 16, 11, 2))
    assert once == twice
    assert [a.action_key for a in once] == [
        "REDIAL:501:Н2:20260316T080000Z:attempt", "REDIAL:501:Н2:20260316T080000Z:last_at",
        "REDIAL:501:Н2:20260316T080000Z:task", "REDIAL:501:Н2:20260316T080000Z:note-task"]


def test_duplicate_after_apply_changes_nothing():
    ev, before = call_event(m(2026, 3, 16, 11)), snap(nedozvon(1, m(2026, 3, 16, 10)))
    assert decide(ev, applied(before, decide(ev, before))) == []


def test_retry_after_partial_apply_completes_with_same_keys():
    ev, before = call_event(m(2026, 3, 16, 11)), snap(nedozvon(1, m(2026, 3, 16, 10)))
    full = decide(ev, before)
    fields_only = applied(before, of(full, SetLeadField))      # the job died before the task
    retry = decide(ev, fields_only)
    assert retry == [a for a in full if isinstance(a, (CreateTask, AddNote))]


def test_notes_off():
    actions = decide(call_event(m(2026, 3, 16, 11)), snap(nedozvon(1)), RuleSettings(notes=False))
    assert of(actions, AddNote) == [] and len(of(actions, CreateTask)) == 1


def test_all_rules_together_make_one_task_per_failure():
    actions = decide_all(call_event(m(2026, 3, 16, 11)), snap(nedozvon(1)), SETTINGS, CAL, m(2026, 3, 16, 11))
    assert only(actions, CreateTask).rule == "REDIAL"


@pytest.mark.parametrize("value, expected", [(None, 0), ("", 0), ("Н3", 3), ("H4", 4), ("5", 5), (6, 6), ("Н", 0)])
def test_attempt_parsing(value, expected):
    assert redial.attempt_of(lead("Недозвон", **{REDIAL_ATTEMPT: value})) == expected


def test_seconds_are_dropped_so_a_minute_precision_field_keeps_keys_stable():
    at = m(2026, 3, 16, 11) + timedelta(seconds=42, microseconds=7)
    before = snap(nedozvon(1, m(2026, 3, 16, 10)))
    full = decide(call_event(at), before)
    assert field_values(full)[REDIAL_LAST_AT] == m(2026, 3, 16, 11)
    retry = decide(call_event(at), applied(before, of(full, SetLeadField)))
    assert retry == [a for a in full if isinstance(a, (CreateTask, AddNote))]
